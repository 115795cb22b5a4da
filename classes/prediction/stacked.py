"""Many compact models on the same images, fast (the evaluation path of script4).

The straightforward way (load each ``.keras`` model, call it on batches of
64) spends most of its time outside the useful arithmetic. This path reads
the weights (the ``.npy`` release files load in about a millisecond, a
``.keras`` file in seconds), folds each BatchNormalization into the
convolution before it (:mod:`classes.prediction.folding`), and evaluates the
folded models with one of two engines that give the same responses (both
equal the Keras models within float32 rounding):

- ``"kernel"`` (:mod:`classes.prediction.kernel`): a small C kernel, compiled on
  first use for the CPU's instruction set (AVX-512, AVX2, or portable vector
  code for any other CPU), that runs one model on one image at a time with
  layer 0 and layer 1 fused in cache, one thread per core. Layer 0's output
  (``112 x 112 x K0``) never goes out to memory; on the 2-core machine this
  project targets, writing it and reading it back was what held the
  TensorFlow engine below half of the matmul rate. Needs a C compiler.
- ``"tensorflow"`` (:mod:`classes.prediction.graph`): one traced TensorFlow graph
  evaluates a group of models (8 by default) of any sizes on a batch of
  images (16 by default); oneDNN fuses each convolution with its bias and
  ReLU. Runs anywhere, and on a GPU when TensorFlow sees one.

``engine="auto"`` (the default) takes TensorFlow where TensorFlow sees a
GPU, else the kernel where it can run, and says nothing about its choice;
:func:`classes.prediction.kernel.kernel_unavailable_reason` tells why the
kernel cannot run. Choices measured on the 2-core CPU are in
``benchmarks/README.md``: for the TensorFlow engine, stacking several
models' layer 0 into one wide convolution was slower than one convolution
per model, 16 images per call balanced call overhead against cache misses,
and XLA (``jit_compile``) was not used (its CPU depthwise convolution was two
orders of magnitude slower).

Outputs equal the Keras models' within float32 rounding: over the 177
scorable released models on their 600 held-out images the largest deviation
was 1.1e-5 of the response s.d. (kernel) and 1.5e-5 (TensorFlow).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from classes.compact.architecture import (
    ModelId,
    load_nums_filters,
    load_weights_npy,
    model_id,
    nums_filters_from_weights,
    parse_model_stem,
)
from classes.data.preprocessing import check_images
from classes.prediction.folding import (
    FoldedModel,
    compact_model_flops,
    fold_weights,
    weights_of,
)
from classes.prediction.graph import positive_int, predict_with_graph
from classes.prediction.kernel import (
    kernel_isa,
    kernel_unavailable_reason,
    predict_with_kernel,
    prepare_kernel_model,
)
from classes.runtime.quiet_tensorflow import tf

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_GROUP_SIZE",
    "ENGINES",
    "StackedModels",
    "compact_model_flops",
    "predict_models_on_images",
    "predict_stacked",
    "resolve_engine",
    "stack_compact_models",
    "tensorflow_sees_a_gpu",
]

DEFAULT_BATCH_SIZE = 16
DEFAULT_GROUP_SIZE = 8
ENGINES = ("auto", "kernel", "tensorflow")


@dataclass(frozen=True)
class StackedModels:
    """Compact models prepared for :func:`predict_stacked`.

    Attributes:
        models: the folded models, in the order given.
    """

    models: tuple[FoldedModel, ...]
    # Per engine, the models laid out for it; made on first use, so each
    # run builds only what its engine reads.
    _layouts: dict = field(default_factory=dict, repr=False, compare=False)

    def layout(self, engine: str):
        """The models as ``engine`` ("kernel" or "tensorflow") reads them.

        Returns:
            "kernel": a list of :class:`classes.prediction.kernel.KernelModel`
            for the instruction set chosen now (:func:`classes.prediction.kernel.kernel_isa`);
            "tensorflow": per model, its folded arrays as TensorFlow constants.
        """
        # Channels are padded to the instruction set's vector width: one layout per set.
        key = f"kernel-{kernel_isa()}" if engine == "kernel" else engine
        if key not in self._layouts:
            if engine == "kernel":
                self._layouts[key] = [prepare_kernel_model(model) for model in self.models]
            else:
                self._layouts[key] = tuple(
                    tuple(tf.constant(array) for array in model.arrays) for model in self.models
                )
        return self._layouts[key]

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def nums_filters(self) -> np.ndarray:
        """int array ``(num_models, 5)``."""
        return np.array([model.nums_filters for model in self.models], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def flops_per_image(self) -> int:
        """Useful FLOPs of all models on one image (:func:`compact_model_flops`)."""
        return int(np.sum(compact_model_flops(self.nums_filters)))


def stack_compact_models(models_or_weight_lists, names=None) -> StackedModels:
    """Prepares compact models for joint evaluation.

    Args:
        models_or_weight_lists: a sequence of Keras compact models and/or
            ``get_weights()`` lists (36 arrays each, e.g. from
            :func:`classes.compact.architecture.load_weights_npy`). Models of any
            sizes and sessions can be mixed.
        names: optional labels, one per model, used in error messages and
            kept in ``StackedModels.names``.

    Returns:
        A :class:`StackedModels`.

    Raises:
        ValueError: no models; ``names`` of the wrong length; a weight list
            that is not a compact model's (count, shapes, non-finite values).
    """
    if isinstance(models_or_weight_lists, (str, bytes)) or not hasattr(
        models_or_weight_lists, "__len__"
    ):
        raise ValueError(
            "stack_compact_models takes a list of Keras compact models or of their "
            f"get_weights() lists; got {type(models_or_weight_lists).__name__}."
        )
    items = list(models_or_weight_lists)
    if not items:
        raise ValueError("stack_compact_models needs at least one model; got an empty list.")
    if names is None:
        names = [f"#{index}" for index in range(len(items))]
    names = [str(name) for name in names]
    if len(names) != len(items):
        raise ValueError(f"Got {len(names)} names for {len(items)} models.")
    return StackedModels(
        tuple(fold_weights(weights_of(item), name) for item, name in zip(items, names, strict=True))
    )


def tensorflow_sees_a_gpu() -> bool:
    """Whether TensorFlow lists a GPU (then ``"auto"`` runs the TensorFlow engine there)."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_engine(engine: str) -> str:
    """The engine that ``engine`` means here: ``"kernel"`` or ``"tensorflow"``.

    Args:
        engine: one of :data:`ENGINES`; ``"auto"`` takes TensorFlow where
            TensorFlow sees a GPU, else the kernel where it can run.

    Raises:
        ValueError: an unknown engine, or ``"kernel"`` where the kernel
            cannot run (the message says why).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    if engine == "tensorflow" or (engine == "auto" and tensorflow_sees_a_gpu()):
        return "tensorflow"
    reason = kernel_unavailable_reason()
    if reason is None:
        return "kernel"
    if engine == "kernel":
        raise ValueError(
            f"The compiled kernel cannot run here: {reason}. Use engine 'tensorflow' "
            "(or 'auto'), which gives the same responses."
        )
    return "tensorflow"


def predict_stacked(
    stacked: StackedModels,
    images,
    batch_size: int = DEFAULT_BATCH_SIZE,
    group_size: int = DEFAULT_GROUP_SIZE,
    show_progress: bool = False,
    engine: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Responses of every stacked model to every image.

    Args:
        stacked: from :func:`stack_compact_models`.
        images: recentred ``(num_images, 112, 112, 3)`` (raw pixels minus
            the RGB means; see :func:`classes.data.preprocessing.recenter_images`).
        batch_size: images per graph call (TensorFlow) or per job (kernel).
        group_size: models per graph call (TensorFlow engine only).
        show_progress: show a tqdm bar (over models with the kernel, over
            graph calls with TensorFlow).
        engine: ``"auto"``, ``"kernel"`` or ``"tensorflow"`` (see the module
            docstring); the responses are the same within float32 rounding.
        threads: kernel worker threads; None uses every CPU this process
            may use.

    Returns:
        float32 ``(num_models, num_images)``; ``(num_models, 0)`` for no images.

    Raises:
        ValueError: ``stacked`` is not a StackedModels; images of the wrong
            shape, dtype or range (e.g. raw uint8 pixels); non-positive sizes;
            an unknown engine, or ``"kernel"`` where it cannot run.
    """
    if not isinstance(stacked, StackedModels):
        raise ValueError(
            f"predict_stacked takes the StackedModels of stack_compact_models; got "
            f"{type(stacked).__name__}."
        )
    batch_size = positive_int(batch_size, "batch_size")
    group_size = positive_int(group_size, "group_size")
    if threads is not None:
        threads = positive_int(threads, "threads")
    engine = resolve_engine(engine)
    images = check_images(images, "recentered")
    num_images = images.shape[0]
    if num_images == 0:
        return np.zeros((stacked.num_models, 0), dtype=np.float32)
    if engine == "kernel":
        return predict_with_kernel(
            stacked.layout("kernel"), images, images_per_job=batch_size, threads=threads,
            show_progress=show_progress,
        )
    return predict_with_graph(stacked.layout("tensorflow"), images, batch_size, group_size, show_progress)


def _as_model_id(identifier) -> ModelId:
    if isinstance(identifier, ModelId):
        return model_id(identifier.session_id, identifier.neuron)
    if isinstance(identifier, str):
        return parse_model_stem(identifier)
    if isinstance(identifier, (tuple, list)) and len(identifier) == 2:
        return model_id(*identifier)
    raise ValueError(
        "Model ids must be ModelId, (session, neuron) pairs or names like "
        f"'compact_model_190923_neuron4'; got {identifier!r}."
    )


def _load_checked_weights(identifier: ModelId, data_root) -> list[np.ndarray]:
    """A released model's ``.npy`` weights, checked against its nums_filters file.

    Raises:
        ValueError: the two release files disagree on the filter counts.
    """
    weights = load_weights_npy(identifier, data_root)
    stated = load_nums_filters(identifier, data_root)
    counts = nums_filters_from_weights(weights)
    if counts != stated:
        raise ValueError(
            f"Weights of {identifier} have filter counts {counts} but its "
            f"nums_filters file says {stated}; the release files disagree."
        )
    return weights


def predict_models_on_images(
    model_ids,
    images,
    data_root=None,
    batch_size: int | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
    show_progress: bool = False,
    timings: dict | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """Loads released compact models from their ``.npy`` weights and predicts.

    Args:
        model_ids: ``ModelId`` values (:func:`classes.compact.architecture.model_id`),
            ``(session, neuron)`` pairs or model names.
        images: recentred ``(num_images, 112, 112, 3)``.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        batch_size: images per graph call; None uses ``DEFAULT_BATCH_SIZE``.
        group_size: models per graph call.
        show_progress: show a tqdm bar.
        timings: optional dict; ``"load weights"`` and ``"predict"`` seconds
            are added to it.
        engine: see :func:`predict_stacked`.

    Returns:
        float32 ``(num_models, num_images)``, rows in the order of ``model_ids``.

    Raises:
        ValueError: unknown model id; corrupt weights; bad images; an
            unknown engine or one that cannot run here.
        FileNotFoundError: a model's weight file is missing from the release.
    """
    identifiers = [_as_model_id(identifier) for identifier in model_ids]
    if not identifiers:
        raise ValueError("predict_models_on_images needs at least one model id.")
    images = check_images(images, "recentered")
    timings = timings if timings is not None else {}
    start = time.perf_counter()
    weight_lists = [_load_checked_weights(identifier, data_root) for identifier in identifiers]
    stacked = stack_compact_models(weight_lists, names=[str(identifier) for identifier in identifiers])
    middle = time.perf_counter()
    predictions = predict_stacked(
        stacked,
        images,
        batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
        group_size=group_size,
        show_progress=show_progress,
        engine=engine,
    )
    timings["load weights"] = timings.get("load weights", 0.0) + middle - start
    timings["predict"] = timings.get("predict", 0.0) + time.perf_counter() - middle
    return predictions

"""Shared compact models evaluated fast: BatchNormalization folded, one engine.

A released shared compact model (:mod:`classes.compact.shared_model`) run
as Keras layers spends much of its time on separate BatchNormalization and
ReLU passes over ``112x112xK`` maps (K up to 200). Its BatchNormalizations
are folded into the convolutions by the same function as a compact model's
(:func:`classes.prediction.folding.fold_shared_model`). The readout is a 1x1
``mixing_stage`` to 219 channels, then a 28x28 valid ``spatial_pool_stage``
depthwise conv: a matmul and a weighted spatial sum per output.

The engines are those of compact models
(:func:`classes.prediction.stacked.resolve_engine`): the compiled kernel
(:mod:`classes.prediction.kernel`, which runs the trunk like a compact model's
and the readout in cache) or one ``tf.function``, traced once with the filter
counts left unknown for all 56 models (the linear, no-ReLU, teacher gets its
own trace).

Outputs equal the Keras model's within float32 rounding
(``tests/test_shared_compact_model.py``).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from classes.data.preprocessing import check_images
from classes.prediction.folding import FoldedSharedModel, fold_shared_model
from classes.prediction.graph import positive_int, trunk_forward, trunk_signature
from classes.prediction.kernel import predict_with_kernel, prepare_kernel_model
from classes.prediction.stacked import resolve_engine
from classes.runtime.quiet_tensorflow import tf

DEFAULT_BATCH_SIZE = 16


def _forward(images, weights, relu: bool):
    """``(n, 219)`` responses of one folded shared model."""
    activity = trunk_forward(images, weights, tf.nn.relu if relu else tf.identity)
    mixing, mixing_bias, pool, pool_bias = weights[14:18]
    mixed = tf.tensordot(activity, mixing, axes=[[3], [0]]) + mixing_bias
    return tf.reduce_sum(mixed * pool, axis=(1, 2)) + pool_bias


def _signature() -> list:
    spec = tf.TensorSpec
    readout = [spec((None, None)), spec((None,)), spec((28, 28, None)), spec((None,))]
    return [spec((None, 112, 112, 3)), [*trunk_signature(), *readout]]


_FUNCTIONS: dict[bool, object] = {}


def _function(relu: bool):
    if relu not in _FUNCTIONS:
        _FUNCTIONS[relu] = tf.function(
            lambda images, weights: _forward(images, weights, relu), input_signature=_signature()
        )
    return _FUNCTIONS[relu]


def predict_shared_fast(
    model_or_folded,
    images,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool = False,
    engine: str = "auto",
) -> np.ndarray:
    """Responses of a shared compact model, BN folded, through the kernel or one traced graph.

    Args:
        model_or_folded: a loaded shared compact model or its
            :class:`FoldedSharedModel`.
        images: recentred ``(num_images, 112, 112, 3)``.
        batch_size: images per graph call (16 keeps the ``112x112xK``
            activity of layer 0 near the cache for K up to 200) or per
            kernel job.
        show_progress: show a tqdm bar over batches (the kernel's counts
            the one model).
        engine: ``"auto"``, ``"kernel"`` or ``"tensorflow"``
            (:func:`classes.prediction.stacked.resolve_engine`).

    Returns:
        float32 ``(num_images, 219)``, the Keras model's outputs within
        float32 rounding.

    Raises:
        ValueError: not a shared compact model; images of the wrong shape or
            range; a non-positive batch size; an unknown engine, or
            ``"kernel"`` where it cannot run.
    """
    folded = model_or_folded
    if not isinstance(folded, FoldedSharedModel):
        folded = fold_shared_model(model_or_folded)
    batch_size = positive_int(batch_size, "batch_size")
    images = check_images(images, "recentered")
    num_outputs = folded.arrays[-1].shape[0]
    if len(images) == 0:
        return np.zeros((0, num_outputs), np.float32)
    if resolve_engine(engine) == "kernel":
        responses = predict_with_kernel([prepare_kernel_model(folded)], images, images_per_job=batch_size,
                                        show_progress=show_progress)
        return np.ascontiguousarray(responses.T)
    weights = [tf.constant(array) for array in folded.arrays]
    function = _function(folded.relu)
    outputs = np.empty((len(images), num_outputs), np.float32)
    starts = range(0, len(images), int(batch_size))
    for start in tqdm(starts, desc=f"{folded.name or 'shared model'}", leave=False, disable=not show_progress):
        batch = tf.constant(np.asarray(images[start : start + batch_size], np.float32))
        outputs[start : start + len(batch)] = function(batch, weights).numpy()
    return outputs

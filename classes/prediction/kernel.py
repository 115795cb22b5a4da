"""A compiled kernel for many compact models on many images, on any CPU.

TensorFlow runs a compact model layer by layer, so layer 0's output
(``112 x 112 x K0`` floats, ~2.4 MB per image and model) goes out to memory
and comes back for layer 1; on the 2-core machine this project targets that
traffic costs about as much as the arithmetic. ``kernel.c`` instead
computes layer 0 a few rows at a time and feeds layer 1 while the rows are in
cache (see the comment at its top). It is compiled on first use for the
best instruction set the CPU has (``avx512``, ``avx2`` or ``portable``; see
:mod:`classes.runtime.native`, which also caches the library and honours
``COWLEY2023_KERNEL_ISA``) and loaded with ctypes; ctypes releases the GIL, so
one thread per core evaluates its own (model, image batch) pairs.

It serves compact models (one response per image) and shared compact models
(their trunk is a compact model's; their readout, a 1x1 mixing to 219
channels and a 28x28 spatial pool per output, runs in the kernel too).

Where it cannot run (no C compiler, a failed compilation, a forced
instruction set this CPU lacks), :func:`kernel_unavailable_reason` says why
and :mod:`classes.prediction.stacked` uses its TensorFlow graph, which gives
the same responses (both equal the Keras models within float32 rounding).
``COWLEY2023_FAST_KERNEL=0`` turns the kernel off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.prediction.folding import FoldedModel, FoldedSharedModel
from classes.prediction.winograd import INPUT_TRANSFORM, transformed_kernel0
from classes.runtime.native import NativeUnavailable, chosen_isa, compile_and_load

__all__ = [
    "LAYER_SIDES",
    "KernelModel",
    "aligned_workspace",
    "default_threads",
    "kernel_isa",
    "kernel_unavailable_reason",
    "padded_count",
    "predict_with_kernel",
    "prepare_kernel_model",
    "zero_padded",
]

SOURCE = Path(__file__).with_name("kernel.c")
LIBRARY_NAME = "fast_kernel"
# Side of each layer's square map (layers 0-4), as kernel.c computes them.
LAYER_SIDES = (112, 56, 28, 28, 28)

# kernel_layer0.h's input transform, shared by every model.
_INPUT_TRANSFORM = np.ascontiguousarray(INPUT_TRANSFORM, dtype=np.float32)

# Per instruction set: the loaded library, or why it cannot run (not retried).
_libraries: dict[str, ctypes.CDLL] = {}
_failures: dict[str, str] = {}
_lock = threading.Lock()


class _ModelStruct(ctypes.Structure):
    # Mirrors compact_model_t in kernel.c.
    _fields_ = [
        ("channels", ctypes.c_int * 5),
        ("relu", ctypes.c_int),
        ("outputs", ctypes.c_int),
        ("kernel0", ctypes.c_void_p),
        ("bias0", ctypes.c_void_p),
        ("depthwise", ctypes.c_void_p * 4),
        ("pointwise", ctypes.c_void_p * 4),
        ("bias", ctypes.c_void_p * 4),
        ("readout", ctypes.c_void_p),
        ("mixing", ctypes.c_void_p),
        ("pool", ctypes.c_void_p),
        ("output_bias", ctypes.c_void_p),
        ("input_transform", ctypes.c_void_p),
    ]


class SampleStruct(ctypes.Structure):
    # Mirrors layer_sample_t in kernel.c.
    _fields_ = [
        ("positions", ctypes.c_void_p),
        ("count", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("features", ctypes.c_void_p),
        ("stride", ctypes.c_long),
    ]


def _declare(library: ctypes.CDLL) -> ctypes.CDLL:
    model = ctypes.POINTER(_ModelStruct)
    library.compact_activity.argtypes = [
        model, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(SampleStruct), ctypes.c_void_p,
        ctypes.c_long,
    ]
    library.compact_activity.restype = None
    library.kernel_vector_width.restype = ctypes.c_int
    library.compact_workspace_floats.argtypes = [model]
    library.compact_workspace_floats.restype = ctypes.c_long
    library.compact_predict.argtypes = [
        model, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long,
    ]
    library.compact_predict.restype = None
    return library


def kernel_isa() -> str:
    """The instruction set the kernel is built for here (:func:`classes.runtime.native.chosen_isa`).

    Raises:
        NativeUnavailable: ``COWLEY2023_KERNEL_ISA`` names an unknown set or one this CPU lacks.
    """
    return chosen_isa()


def _load_library(isa: str | None = None) -> ctypes.CDLL:
    """The kernel compiled for ``isa`` (None: :func:`kernel_isa`), loaded once.

    Raises:
        NativeUnavailable: it cannot run here; the message says why (a clause).
    """
    if os.environ.get("COWLEY2023_FAST_KERNEL", "1") == "0":
        raise NativeUnavailable("it is turned off (COWLEY2023_FAST_KERNEL=0)")
    isa = kernel_isa() if isa is None else isa
    with _lock:
        if isa in _failures:
            raise NativeUnavailable(_failures[isa])
        if isa not in _libraries:
            try:
                _libraries[isa] = _declare(compile_and_load(SOURCE, LIBRARY_NAME, isa, contract=True))
            except NativeUnavailable as error:
                _failures[isa] = str(error)
                raise
    return _libraries[isa]


def kernel_unavailable_reason(isa: str | None = None) -> str | None:
    """None when the compiled kernel can run here (for ``isa``; None: the chosen one), else why not."""
    try:
        _load_library(isa)
    except NativeUnavailable as error:
        return str(error)
    return None


def library_or_error(isa: str | None = None) -> ctypes.CDLL:
    try:
        return _load_library(isa)
    except NativeUnavailable as error:
        raise RuntimeError(f"The compiled kernel cannot run here: {error}.") from None


def padded_count(count: int, lanes: int) -> int:
    """``count`` rounded up to a multiple of ``lanes`` (the kernels' channel padding)."""
    return -(-count // lanes) * lanes


def zero_padded(array: np.ndarray, shape: tuple) -> np.ndarray:
    """``array`` in the corner of a float32 zero array of ``shape`` (padded channels carry zero weights)."""
    result = np.zeros(shape, dtype=np.float32)
    result[tuple(slice(0, size) for size in array.shape)] = array
    return result


def _trunk_layout(arrays, counts, lanes: int) -> list[np.ndarray]:
    """Layers 0-4 padded to ``lanes``: kernel0 (Winograd-transformed), bias0, 4 depthwise, 4 pointwise, 4 biases."""
    padded = [padded_count(count, lanes) for count in counts]
    layout = [transformed_kernel0(arrays[0].reshape(5, 5, 3, counts[0]), padded[0]), zero_padded(arrays[1], (padded[0],))]
    depthwise, pointwise, biases = [], [], []
    for layer in range(1, 5):
        kernel, weights, bias = arrays[3 * layer - 1 : 3 * layer + 2]
        depthwise.append(zero_padded(kernel.reshape(25, counts[layer - 1]), (25, padded[layer - 1])))
        pointwise.append(zero_padded(weights.reshape(counts[layer - 1], counts[layer]), (padded[layer - 1], padded[layer])))
        biases.append(zero_padded(bias, (padded[layer],)))
    return layout + depthwise + pointwise + biases


def _shared_readout(arrays, channels: int, lanes: int) -> list[np.ndarray]:
    """mixing ``(K4p, Op)``, pool ``(784, Op)`` and the output bias of a shared model's readout.

    The mixing bias is folded into the output bias in float64:
    ``sum_p pool[p, o] * (mixed[p, o] + b[o]) = sum_p pool[p, o] * mixed[p, o] + b[o] * sum_p pool[p, o]``.
    """
    mixing, mixing_bias, pool, pool_bias = arrays[14:18]
    outputs = padded_count(mixing.shape[1], lanes)
    pool = pool.reshape(-1, mixing.shape[1])
    output_bias = pool_bias.astype(np.float64) + mixing_bias.astype(np.float64) * pool.astype(np.float64).sum(axis=0)
    return [zero_padded(mixing, (channels, outputs)), zero_padded(pool, (pool.shape[0], outputs)), output_bias.astype(np.float32)]


class KernelModel:
    """One folded compact or shared compact model laid out for ``kernel.c``.

    Attributes:
        name: the folded model's label.
        nums_filters: ``(K0, ..., K4)``, unpadded.
        outputs: responses per image (1, or 219 for a shared model).
        isa: the instruction set it is laid out (channels padded) for.
        workspace_floats: scratch floats one call needs.
    """

    def __init__(self, folded: FoldedModel | FoldedSharedModel, isa: str, library: ctypes.CDLL):
        lanes = int(library.kernel_vector_width())
        arrays = folded.arrays
        shared = isinstance(folded, FoldedSharedModel)
        counts = [array.shape[-1] for array in (arrays[1], arrays[4], arrays[7], arrays[10], arrays[13])]
        trunk = _trunk_layout(arrays, counts, lanes)
        channels = [trunk[1].shape[0]] + [bias.shape[0] for bias in trunk[10:14]]
        if shared:
            readout = None
            mixing, pool, output_bias = _shared_readout(arrays, channels[4], lanes)
            self.outputs = int(arrays[15].shape[0])
        else:
            readout = zero_padded(arrays[14], (28, 28, channels[4]))
            mixing = pool = None
            output_bias = np.asarray(arrays[15], np.float32).reshape(1)
            self.outputs = 1
        self.nums_filters = tuple(int(count) for count in counts)
        self._arrays = [*trunk, readout, mixing, pool, output_bias]  # kept alive for the pointers
        self.name, self.isa, self._library = folded.name, isa, library

        def address(array):
            return None if array is None else array.ctypes.data

        self.struct = _ModelStruct(
            (ctypes.c_int * 5)(*channels), int(folded.relu) if shared else 1, self.outputs,
            address(trunk[0]), address(trunk[1]),
            *[(ctypes.c_void_p * 4)(*[address(array) for array in trunk[start : start + 4]]) for start in (2, 6, 10)],
            address(readout), address(mixing), address(pool), address(output_bias), address(_INPUT_TRANSFORM),
        )
        self.workspace_floats = int(library.compact_workspace_floats(ctypes.byref(self.struct)))

    def predict(self, images: np.ndarray, workspace: np.ndarray, responses: np.ndarray) -> None:
        """Writes the responses to ``images`` into the view ``responses`` ``(outputs, len(images))``."""
        self._library.compact_predict(
            ctypes.byref(self.struct), images.ctypes.data, len(images), workspace.ctypes.data,
            responses.ctypes.data, responses.strides[0] // responses.itemsize,
        )


    def activity(self, images: np.ndarray, workspace: np.ndarray, samples, responses: np.ndarray) -> None:
        """:meth:`predict`, and each layer's activity at the positions of ``samples`` (5 ``SampleStruct``)."""
        self._library.compact_activity(
            ctypes.byref(self.struct), images.ctypes.data, len(images), workspace.ctypes.data, samples,
            responses.ctypes.data, responses.strides[0] // responses.itemsize,
        )


def prepare_kernel_model(folded: FoldedModel | FoldedSharedModel, isa: str | None = None) -> KernelModel:
    """:class:`KernelModel` of a folded model for ``isa`` (None: :func:`kernel_isa`).

    Raises:
        RuntimeError: the kernel cannot run here (the message says why).
    """
    library = library_or_error(isa)
    return KernelModel(folded, kernel_isa() if isa is None else isa, library)


def aligned_workspace(floats: int) -> np.ndarray:
    """An uninitialised float32 workspace of ``floats`` starting on a 64-byte boundary.

    Every map in the workspace is a multiple of 16 floats long, so with an
    aligned start each vector load of the AVX-512 kernel stays within one
    cache line; NumPy starts large arrays 16 bytes past a boundary about as
    often as on one, and loads that straddle two lines made the kernel slower.
    """
    raw = np.empty(floats + 16, dtype=np.float32)
    offset = (-raw.ctypes.data % 64) // 4
    return raw[offset : offset + floats]


def default_threads() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def predict_with_kernel(
    models: list[KernelModel],
    images: np.ndarray,
    images_per_job: int = 16,
    threads: int | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Responses of every model to every image through ``kernel.c``.

    Args:
        models: from :func:`prepare_kernel_model`.
        images: checked, recentred float32 ``(num_images, 112, 112, 3)``.
        images_per_job: images one thread takes for one model at a time.
        threads: worker threads; None uses every CPU this process may use.
        show_progress: tqdm bar over models.

    Returns:
        float32 ``(num_rows, num_images)``: each model's outputs (one row for
        a compact model, 219 for a shared one), in order.

    Raises:
        RuntimeError: the kernel cannot run here (the message says why).
    """
    library_or_error()
    images = np.ascontiguousarray(images, dtype=np.float32)
    num_images = images.shape[0]
    starts = np.cumsum([0] + [model.outputs for model in models])
    responses = np.zeros((starts[-1], num_images), dtype=np.float32)
    # Model by model: the threads share one model's weights in cache, and the
    # bar counts models.
    jobs = [
        (index, start, min(start + images_per_job, num_images))
        for index in range(len(models))
        for start in range(0, num_images, images_per_job)
    ]
    local = threading.local()

    def run(job):
        index, start, stop = job
        model = models[index]
        workspace = getattr(local, "workspace", None)
        if workspace is None or workspace.size < model.workspace_floats:
            workspace = local.workspace = aligned_workspace(model.workspace_floats)
        # Rows of the C-ordered result, strided by num_images: the kernel writes into them.
        model.predict(images[start:stop], workspace, responses[starts[index] : starts[index + 1], start:stop])
        return stop

    with (
        ThreadPoolExecutor(max_workers=threads or default_threads()) as pool,
        tqdm(total=len(models), desc="fast predict", unit="model", disable=not show_progress) as progress,
    ):
        for stop in pool.map(run, jobs):
            # Only finished models move the bar: tqdm redraws on every update
            # call, even update(0), which printed "0/33" once per job in a log.
            if stop == num_images:
                progress.update(1)
    return responses

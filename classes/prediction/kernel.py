"""A compiled kernel for many compact models on many images (AVX-512 CPUs).

TensorFlow runs a compact model layer by layer, so layer 0's output
(``112 x 112 x K0`` floats, ~2.4 MB per image and model) goes out to memory
and comes back for layer 1; on the 2-core machine this project targets that
traffic costs about as much as the arithmetic. ``kernel.c`` instead
computes layer 0 a few rows at a time and feeds layer 1 while the rows are in
cache (see the comment at its top). It is compiled on first use with the
system's C compiler (``cc``, or ``$CC``) into a cache folder and loaded with
ctypes; ctypes releases the GIL, so one thread per core evaluates its own
(model, image batch) pairs.

It is used only where it can run: x86-64 with AVX-512F and FMA, a C compiler
present, compilation succeeded. Otherwise :func:`kernel_unavailable_reason`
says why and :mod:`classes.prediction.stacked` uses its TensorFlow graph, which
gives the same responses (both equal the Keras models within float32
rounding). ``COWLEY2023_FAST_KERNEL=0`` turns the kernel off. The compiled
library goes to the project's cache (:func:`classes.runtime.paths.default_cache_dir`,
subfolder ``kernels``), named by a hash of the source and flags;
``COWLEY2023_KERNEL_CACHE`` puts it elsewhere.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.prediction.folding import FoldedModel
from classes.runtime.outputs import write_atomically
from classes.runtime.paths import default_cache_dir

__all__ = [
    "KernelModel",
    "cpu_supports_kernel",
    "kernel_unavailable_reason",
    "predict_with_kernel",
    "default_threads",
    "prepare_kernel_model",
]

SOURCE = Path(__file__).with_name("kernel.c")
COMPILE_FLAGS = ("-O3", "-std=c99", "-mavx512f", "-mfma", "-shared", "-fPIC")
LANES = 16

_library = None
_library_error: str | None = None
_library_lock = threading.Lock()


class _ModelStruct(ctypes.Structure):
    # Mirrors compact_model_t in kernel.c.
    _fields_ = [
        ("channels", ctypes.c_int * 5),
        ("kernel0", ctypes.c_void_p),
        ("bias0", ctypes.c_void_p),
        ("depthwise", ctypes.c_void_p * 4),
        ("pointwise", ctypes.c_void_p * 4),
        ("bias", ctypes.c_void_p * 4),
        ("readout", ctypes.c_void_p),
        ("readout_bias", ctypes.c_float),
    ]


def cpu_supports_kernel() -> str | None:
    """None when this CPU has what the kernel was written for (x86-64, AVX-512F, FMA), else why not."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the CPU is {platform.machine()}, not x86-64"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "the CPU's instruction sets cannot be read (/proc/cpuinfo)"
    missing = [flag for flag in ("avx512f", "fma") if flag not in flags]
    if missing:
        return f"the CPU lacks {', '.join(missing)}"
    return None


def _cache_folder() -> Path:
    configured = os.environ.get("COWLEY2023_KERNEL_CACHE")
    return Path(configured).expanduser() if configured else default_cache_dir() / "kernels"


def _compile(compiler: str) -> Path:
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(COMPILE_FLAGS).encode()).hexdigest()[:16]
    folder = _cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "cowley2023-kernels"
        folder.mkdir(parents=True, exist_ok=True)
    library = folder / f"fast_kernel_{digest}.so"
    if library.exists():
        return library
    # Written atomically: a concurrent process never loads half a library.
    def compile_to(temporary):
        result = subprocess.run(
            [compiler, *COMPILE_FLAGS, "-o", str(temporary), str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[-500:]}")

    return write_atomically(library, compile_to)


def _load_library():
    """(the loaded library or None, None or why it cannot run here)."""
    global _library, _library_error
    if os.environ.get("COWLEY2023_FAST_KERNEL", "1") == "0":
        return None, "it is turned off (COWLEY2023_FAST_KERNEL=0)"
    with _library_lock:
        if _library is None and _library_error is None:
            _library, _library_error = _compile_and_load()
    return _library, _library_error


def _compile_and_load():
    reason = cpu_supports_kernel()
    if reason is not None:
        return None, reason
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc, gcc or $CC) was found"
    try:
        library = ctypes.CDLL(str(_compile(compiler)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        return None, f"compiling {SOURCE.name} failed ({error})"
    library.compact_workspace_floats.argtypes = [ctypes.POINTER(ctypes.c_int)]
    library.compact_workspace_floats.restype = ctypes.c_long
    library.compact_predict.argtypes = [
        ctypes.POINTER(_ModelStruct),
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    library.compact_predict.restype = None
    return library, None


def kernel_unavailable_reason() -> str | None:
    """None when the compiled kernel can run here, else why not (a clause)."""
    return _load_library()[1]


def _padded(count: int) -> int:
    return -(-count // LANES) * LANES


def _pad(array: np.ndarray, shape: tuple) -> np.ndarray:
    result = np.zeros(shape, dtype=np.float32)
    result[tuple(slice(0, size) for size in array.shape)] = array
    return result


class KernelModel:
    """One folded model laid out for ``kernel.c`` (channels padded to 16).

    Attributes:
        name: the folded model's label.
        workspace_floats: scratch floats one call needs.
    """

    def __init__(self, folded: FoldedModel, library):
        counts = folded.nums_filters
        padded = [_padded(count) for count in counts]
        arrays = folded.arrays
        kernel0 = _pad(arrays[0].reshape(75, counts[0]), (75, padded[0]))
        keep = [kernel0, _pad(arrays[1], (padded[0],))]
        depthwise, pointwise, biases = [], [], []
        for layer in range(1, 5):
            kernel, weights, bias = arrays[3 * layer - 1 : 3 * layer + 2]
            depthwise.append(_pad(kernel.reshape(25, counts[layer - 1]), (25, padded[layer - 1])))
            pointwise.append(
                _pad(weights.reshape(counts[layer - 1], counts[layer]), (padded[layer - 1], padded[layer]))
            )
            biases.append(_pad(bias, (padded[layer],)))
        readout = _pad(arrays[14], (28, 28, padded[4]))
        self._arrays = keep + depthwise + pointwise + biases + [readout]
        self.name = folded.name
        self.struct = _ModelStruct(
            (ctypes.c_int * 5)(*padded),
            kernel0.ctypes.data,
            keep[1].ctypes.data,
            (ctypes.c_void_p * 4)(*[array.ctypes.data for array in depthwise]),
            (ctypes.c_void_p * 4)(*[array.ctypes.data for array in pointwise]),
            (ctypes.c_void_p * 4)(*[array.ctypes.data for array in biases]),
            readout.ctypes.data,
            float(arrays[15][0]),
        )
        self.workspace_floats = int(library.compact_workspace_floats(self.struct.channels))


def _library_or_error():
    library, reason = _load_library()
    if library is None:
        raise RuntimeError(f"The compiled kernel cannot run here: {reason}.")
    return library


def prepare_kernel_model(folded: FoldedModel) -> KernelModel:
    """:class:`KernelModel` of a folded model; RuntimeError if the kernel cannot run here."""
    return KernelModel(folded, _library_or_error())


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
        float32 ``(num_models, num_images)``.
    """
    library = _library_or_error()
    images = np.ascontiguousarray(images, dtype=np.float32)
    num_images = images.shape[0]
    responses = np.zeros((len(models), num_images), dtype=np.float32)
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
            workspace = local.workspace = np.empty(model.workspace_floats, dtype=np.float32)
        # A row slice of the C-ordered result is contiguous: the kernel writes into it.
        library.compact_predict(
            ctypes.byref(model.struct), images[start:stop].ctypes.data, stop - start,
            workspace.ctypes.data, responses[index, start:stop].ctypes.data,
        )
        return stop

    with (
        ThreadPoolExecutor(max_workers=threads or default_threads()) as pool,
        tqdm(total=len(models), desc="fast predict", unit="model", disable=not show_progress) as progress,
    ):
        for stop in pool.map(run, jobs):
            progress.update(int(stop == num_images))
    return responses

"""Compiled C kernels: built on first use, cached, loaded with ctypes.

The project's hot loops (many compact models on many images, a training
step of a student) are small C files compiled on the user's machine with the
system's C compiler (``cc``, or ``$CC``) for the best instruction set the CPU
has, cached under :func:`classes.runtime.paths.default_cache_dir` (subfolder
``kernels``; ``COWLEY2023_KERNEL_CACHE`` puts them elsewhere) by a hash of
the source and flags, and loaded with ctypes, which releases the GIL during
calls.

Instruction sets, best first: ``avx512`` (x86-64 with AVX-512F and FMA),
``avx2`` (x86-64 with AVX2 and FMA) and ``portable`` (any CPU: GCC vector
extensions lowered to what the target has, e.g. NEON on aarch64).
``COWLEY2023_KERNEL_ISA=avx512|avx2|portable`` forces one (for tests and
benchmarks); forcing one this CPU lacks is an error that says so.

Compiled as ISO C99, GCC does not fuse ``a * b + c`` on vector extensions
into FMA instructions (``-ffp-contract=off`` is its default in ISO modes);
``contract=True`` asks for ``-ffp-contract=fast``, which the inference kernel
(``classes/prediction/kernel.c``) is written for.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from classes.runtime.outputs import write_atomically
from classes.runtime.paths import default_cache_dir

__all__ = ["ISAS", "NativeUnavailable", "available_isas", "chosen_isa", "compile_and_load"]

ISAS = ("avx512", "avx2", "portable")
ISA_VARIABLE = "COWLEY2023_KERNEL_ISA"
HEADER = Path(__file__).with_name("vectors.h")  # vector types every kernel includes
_ISA_FLAGS = {
    "avx512": ("-mavx512f", "-mfma", "-DVEC=16"),
    "avx2": ("-mavx2", "-mfma", "-DVEC=8"),
    "portable": ("-DVEC=8",),
}
_BASE_FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")


class NativeUnavailable(RuntimeError):
    """A compiled kernel cannot run here; the message says why (a clause)."""


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def available_isas() -> list[str]:
    """The instruction sets this CPU runs, best first (always ends with ``portable``)."""
    isas = []
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags = _cpu_flags()
        if {"avx512f", "fma"} <= flags:
            isas.append("avx512")
        if {"avx2", "fma"} <= flags:
            isas.append("avx2")
    return isas + ["portable"]


def chosen_isa() -> str:
    """``$COWLEY2023_KERNEL_ISA`` when set, else the best of :func:`available_isas`.

    Raises:
        NativeUnavailable: the variable names an unknown set, or one this CPU lacks.
    """
    forced = os.environ.get(ISA_VARIABLE, "").strip()
    if not forced:
        return available_isas()[0]
    if forced not in ISAS:
        raise NativeUnavailable(f"{ISA_VARIABLE}={forced} is not one of {', '.join(ISAS)}")
    if forced not in available_isas():
        raise NativeUnavailable(f"{ISA_VARIABLE}={forced} was asked for, but this CPU lacks it")
    return forced


def _cache_folder() -> Path:
    configured = os.environ.get("COWLEY2023_KERNEL_CACHE")
    folder = Path(configured).expanduser() if configured else default_cache_dir() / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "cowley2023-kernels"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _build(compiler: str, source: Path, flags: tuple, name: str) -> Path:
    """The cached library of ``source`` built with ``flags`` (built now if missing).

    Raises:
        NativeUnavailable: the compiler failed (its last lines of output say why).
    """
    # The shared header and the headers beside the source (the kernel's parts) are part of the
    # library: an edit to any of them must rebuild it.
    parts = [source, HEADER, *sorted(source.parent.glob("*.h"))]
    digest = hashlib.sha256(b"".join(part.read_bytes() for part in parts) + " ".join(flags).encode()).hexdigest()[:16]
    library = _cache_folder() / f"{name}_{digest}.so"
    if library.exists():
        return library

    def compile_to(temporary):
        result = subprocess.run([compiler, *flags, "-o", str(temporary), str(source)],
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise NativeUnavailable(f"{compiler} failed: {result.stderr.strip()[-500:]}")

    # Written atomically: a concurrent process never loads half a library.
    return write_atomically(library, compile_to)


def compile_and_load(
    source: Path, name: str, isa: str | None = None, openmp: bool = False, contract: bool = False
) -> ctypes.CDLL:
    """Compiles ``source`` for ``isa`` (once; cached) and loads it.

    Args:
        source: the C file.
        name: the library's name stem in the cache folder.
        isa: one of :data:`ISAS`; None for :func:`chosen_isa`.
        openmp: compile with ``-fopenmp`` where the compiler supports it
            (without it the same source runs on one thread).
        contract: compile with ``-ffp-contract=fast``, so that multiply-adds
            become fused (FMA) instructions where the instruction set has them.

    Returns:
        The loaded library.

    Raises:
        NativeUnavailable: no C compiler, the compilation failed, or the
            instruction set cannot run here; the message says which.
    """
    isa = chosen_isa() if isa is None else isa
    if isa not in available_isas():
        raise NativeUnavailable(f"the CPU lacks the {isa} instruction set")
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise NativeUnavailable("no C compiler (cc, gcc or $CC) was found")
    flags = _BASE_FLAGS + ("-I", str(HEADER.parent)) + _ISA_FLAGS[isa] + (("-ffp-contract=fast",) if contract else ())
    try:
        if openmp:
            try:
                return ctypes.CDLL(str(_build(compiler, source, (*flags, "-fopenmp"), f"{name}_{isa}_omp")))
            except NativeUnavailable:
                pass  # e.g. a compiler without OpenMP: one thread instead
        return ctypes.CDLL(str(_build(compiler, source, flags, f"{name}_{isa}")))
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as error:
        raise NativeUnavailable(f"compiling {source.name} for {isa} failed ({error})") from None

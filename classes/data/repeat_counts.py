"""Per-image repeat counts, recovered from the repeat-averaged responses.

A repeat-averaged response is the mean of an image's integer spike counts
over its repeats, so ``average x n`` is an integer for the image's true
repeat count ``n``, for every neuron at once. The recovered count of an
image is the smallest ``n`` that makes every neuron's average times ``n`` an
integer within float64 rounding. On the two sessions whose raw repeats are
released (201016, 210325) the recovered counts equal the raw files' counts
image for image (``tests/test_repeat_counts.py``).

Nothing derived is kept in git: counts are computed on first use and cached
as ``.npy`` in :func:`classes.runtime.paths.default_cache_dir`, named by the
response file's SHA-256 (like the decoded images of
:mod:`classes.data.images`). A cached file is checked against the averages
each time it is read and recomputed when it does not fit them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.data.data_root import sha256_of_file
from classes.data.responses import load_repeat_averaged, response_path
from classes.runtime.outputs import write_npy
from classes.runtime.paths import default_cache_dir

__all__ = ["DEFAULT_MAX_COUNT", "recover_repeat_counts", "repeat_counts", "repeat_counts_fit"]

# Larger than any count in the release (33, session 211008).
DEFAULT_MAX_COUNT = 200
# Rounding allowance of "average x n is an integer", in units of float64 eps
# times the product's magnitude: the average is one division of an integer
# sum, so the product is within a few eps of that integer.
_ROUNDING_ULPS = 16


def _integral(products: np.ndarray) -> np.ndarray:
    allowance = _ROUNDING_ULPS * np.finfo(np.float64).eps * np.maximum(np.abs(products), 1.0)
    return np.abs(products - np.round(products)) <= allowance


def _check_averages(averaged) -> np.ndarray:
    averaged = np.asarray(averaged, dtype=np.float64)
    if averaged.ndim != 2 or averaged.shape[1] == 0:
        raise ValueError(f"averaged responses must be (num_neurons, num_images); got shape {averaged.shape}.")
    if not np.all(np.isfinite(averaged)) or np.any(averaged < 0):
        raise ValueError("averaged responses must be finite, non-negative means of spike counts.")
    return averaged


def repeat_counts_fit(averaged, counts) -> bool:
    """Whether ``counts`` make every average an integer sum (the recovery's condition).

    Args:
        averaged: ``(num_neurons, num_images)`` repeat-averaged spike counts.
        counts: ``(num_images,)`` repeat counts.
    """
    averaged = _check_averages(averaged)
    counts = np.asarray(counts)
    if counts.shape != averaged.shape[1:] or not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 1):
        return False
    return bool(np.all(_integral(averaged * counts[None, :])))


def recover_repeat_counts(averaged, max_count: int = DEFAULT_MAX_COUNT) -> np.ndarray:
    """Each image's repeat count from repeat-averaged integer spike counts.

    Args:
        averaged: ``(num_neurons, num_images)``, each entry a mean of integer
            spike counts over the image's repeats (the same repeats for
            every neuron).
        max_count: the largest count tried.

    Returns:
        int64 ``(num_images,)``: per image the smallest ``n`` in
        ``1..max_count`` that makes every neuron's average times ``n`` an
        integer within float64 rounding.

    Raises:
        ValueError: negative or non-finite averages; an image whose averages
            are all 0 (any count fits it); an image that no count up to
            ``max_count`` fits.
    """
    averaged = _check_averages(averaged)
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1; got {max_count}.")
    silent = np.flatnonzero(np.all(averaged == 0, axis=0))
    if silent.size:
        raise ValueError(
            f"Cannot recover the repeat count of images {(silent + 1)[:10].tolist()} (1-based): every "
            "neuron's average is 0 there, which any count fits."
        )
    counts = np.zeros(averaged.shape[1], dtype=np.int64)
    for count in range(1, max_count + 1):
        open_images = np.flatnonzero(counts == 0)
        if open_images.size == 0:
            break
        fits = np.all(_integral(averaged[:, open_images] * count), axis=0)
        counts[open_images[fits]] = count
    unresolved = np.flatnonzero(counts == 0)
    if unresolved.size:
        raise ValueError(
            f"No repeat count up to {max_count} makes the averages of images {(unresolved + 1)[:10].tolist()} "
            "(1-based) means of integer spike counts; these are not repeat-averaged spike counts."
        )
    return counts


def _cache_file(path: Path, cache_dir) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"repeat_counts_{path.stem}_{sha256_of_file(path)[:16]}.npy"


def _read_cached(cached: Path, averaged) -> np.ndarray | None:
    """Cached counts that still fit the averages, or None (missing, unreadable or wrong)."""
    if not cached.is_file():
        return None
    try:
        counts = np.load(cached, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    return counts if repeat_counts_fit(averaged, counts) else None


def repeat_counts(session_id, data_root=None, use_cache: bool = True, cache_dir=None) -> np.ndarray:
    """Per-image repeat counts of a session, recovered from its averaged responses.

    Args:
        session_id: e.g. ``"190923"``.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        use_cache: read and keep the counts in ``cache_dir`` (see the module
            doc); False recovers them every call.
        cache_dir: cache folder; default :func:`default_cache_dir`.

    Returns:
        int64 ``(num_images_in_file,)``, in the response file's image order.

    Raises:
        ValueError: unknown session; counts not recoverable.
        FileNotFoundError: the session's averaged responses are not in the release.
    """
    averaged = load_repeat_averaged(session_id, data_root)
    if not use_cache:
        return recover_repeat_counts(averaged)
    cached = _cache_file(response_path(session_id, "repeat_averaged", data_root), cache_dir)
    counts = _read_cached(cached, averaged)
    if counts is None:
        counts = recover_repeat_counts(averaged)
        write_npy(cached, counts)
    return counts

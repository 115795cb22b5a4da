"""The decode cache: a session's images decoded once, kept as ``.npy``, checked on every load.

The images of a zip, decoded to uint8 ``(num_images, 112, 112, 3)``
(:mod:`classes.data.images`), are kept in the cache folder
(:func:`classes.runtime.paths.default_cache_dir`) as
``<zip stem>_<zip sha256[:16]>_<array sha256[:16]>.npy``: named by the zip
they came from and by the SHA-256 of the array that was written. Every load
hashes the array again (about 30 ms for a session's 45 MB) and compares, so
a cache file whose bytes changed since it was written (a bad disk, a stray
write) is never used: it is removed with a one-line warning and the zip is
decoded again. :func:`verify_decode_caches` (the scripts' ``--verify``)
checks every cache file at once.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np

from classes.runtime.outputs import write_npy
from classes.runtime.paths import default_cache_dir

_DIGEST_LENGTH = 16
_CACHE_NAME = re.compile(r"^images_\w+_[0-9a-f]{16}_(?P<digest>[0-9a-f]{16})\.npy$")


def array_digest(array: np.ndarray) -> str:
    """The first 16 hex digits of the SHA-256 of an array's bytes (C order)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()[:_DIGEST_LENGTH]


def _cache_folder(cache_dir) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def _intact(path: Path) -> np.ndarray | None:
    """The cached array, memory-mapped, when its bytes match the digest in its name; else None."""
    match = _CACHE_NAME.match(path.name)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if match is None or array.dtype != np.uint8 or array.ndim != 4 or array_digest(array) != match["digest"]:
        return None
    return array


def _discard(path: Path, zip_path: Path) -> None:
    print(f"warning: the decode cache {path} is corrupt (its bytes do not match its checksum); "
          f"decoding {zip_path.name} again.", file=sys.stderr)
    path.unlink(missing_ok=True)


def load_or_decode(zip_path: Path, zip_digest: str, decode, cache_dir=None) -> np.ndarray:
    """A zip's decoded images from the cache, or decoded by ``decode()`` and cached.

    Args:
        zip_path: the image zip.
        zip_digest: its SHA-256 (hex); names the cache file.
        decode: ``decode()`` returns all the zip's images, uint8.
        cache_dir: the cache folder; None for :func:`default_cache_dir`.

    Returns:
        uint8 ``(num_images, 112, 112, 3)``, memory-mapped when read from the cache.
    """
    folder = _cache_folder(cache_dir)
    prefix = f"{zip_path.stem}_{zip_digest[:_DIGEST_LENGTH]}"
    for path in sorted(folder.glob(f"{prefix}_*.npy")):
        array = _intact(path)
        if array is not None:
            return array
        _discard(path, zip_path)
    decoded = decode()
    write_npy(folder / f"{prefix}_{array_digest(decoded)}.npy", decoded)
    return decoded


def verify_decode_caches(cache_dir=None) -> tuple[int, list[str]]:
    """Checks every decode cache file; removes the corrupt ones (rebuilt when next needed).

    Args:
        cache_dir: the cache folder; None for :func:`default_cache_dir`.

    Returns:
        ``(number of intact files, one line per corrupt file removed)``.
    """
    folder = _cache_folder(cache_dir)
    intact, removed = 0, []
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
        if not _CACHE_NAME.match(path.name):
            continue
        if _intact(path) is None:
            path.unlink(missing_ok=True)
            removed.append(f"corrupt decode cache removed (rebuilt when next needed): {path}")
        else:
            intact += 1
    return intact, removed

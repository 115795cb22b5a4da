"""Images of a recording session, read straight from the release's zips.

Each zip ``data_V4_responses/images/images_<session>.zip`` holds JPEGs
``image0001.jpg`` ... (1-based, 112x112x3), sometimes inside a top folder,
sometimes not, and not always in order. Decoded arrays are cached as ``.npy``
files named by the zip's SHA-256 and checked on every load
(:mod:`classes.data.decode_cache`), so a second run does not decode again.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root, sessions_in_folder, sha256_of_file
from classes.data.decode_cache import load_or_decode
from classes.data.release_files import known_sha256, verified_release_file
from classes.data.sessions import get_session

IMAGE_SIZE = 112
_IMAGE_NAME = re.compile(r"(?:^|/)image(\d+)\.jpg$", re.IGNORECASE)


def image_zip_path(session_id: str | int, data_root=None) -> Path:
    """Returns the path of a session's image zip.

    Returns:
        The path, checked against the release's ``MANIFEST.sha256`` the
        first time it is used (:func:`classes.data.release_files.verified_release_file`).

    Raises:
        ValueError: unknown session; the zip does not match the manifest.
        FileNotFoundError: the zip is not in the release at hand; the
            message names the sessions whose zips are present.
    """
    session = get_session(session_id)
    root = resolve_data_root(data_root)
    folder = root / "data_V4_responses" / "images"
    path = folder / f"images_{session.session_id}.zip"
    if not path.is_file():
        present = sorted(
            name.removeprefix("images_").removesuffix(".zip")
            for name in (os.listdir(folder) if folder.is_dir() else [])
            if name.endswith(".zip")
        )
        raise FileNotFoundError(
            f"The images of session {session.session_id} are not in this "
            f"release: {path} does not exist. Zips present for sessions: "
            f"{', '.join(present) or 'none'}. Responses and models still load "
            "for this session; image-based results need the zip from "
            "cowleygroup/V4_compact_models."
        )
    return verified_release_file(path, root)


def available_image_sessions(data_root=None) -> list[str]:
    """Sessions whose image zip is present, sorted."""
    folder = resolve_data_root(data_root) / "data_V4_responses" / "images"
    return sessions_in_folder(folder, "images_", ".zip")


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(
            f"{path} is not a readable zip ({error}). The file is corrupt or "
            "truncated; download it again or run a script with --verify."
        ) from None
    return archive


def _index_members(archive: zipfile.ZipFile, path: Path) -> dict[int, str]:
    members = {}
    for name in archive.namelist():
        match = _IMAGE_NAME.search(name)
        if match:
            members[int(match.group(1))] = name
    if not members:
        raise ValueError(f"{path} holds no image####.jpg files.")
    return members


def _decode(archive: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    from PIL import Image

    try:
        data = archive.read(member)
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as error:  # zlib, CRC and PIL errors all mean corruption
        raise ValueError(
            f"Could not decode {member} in {path} ({error}); the zip is "
            "corrupt or truncated."
        ) from None
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(
            f"{member} in {path} has shape {array.shape}; expected "
            f"({IMAGE_SIZE}, {IMAGE_SIZE}, 3)."
        )
    return array


def count_images(session_id: str | int, data_root=None) -> int:
    """Number of images in a session's zip."""
    path = image_zip_path(session_id, data_root)
    with _open_zip(path) as archive:
        return len(_index_members(archive, path))


def _decode_all(path: Path) -> np.ndarray:
    with _open_zip(path) as archive:
        members = _index_members(archive, path)
        count = max(members)
        missing = sorted(set(range(1, count + 1)) - set(members))
        if missing:
            raise ValueError(
                f"{path} lacks images {missing[:5]}...; it is incomplete."
            )
        images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        for number in range(1, count + 1):
            images[number - 1] = _decode(archive, members[number], path)
    return images


def load_images(
    session_id: str | int,
    indices=None,
    data_root=None,
    use_cache: bool = True,
    cache_dir=None,
    size: int | None = None,
) -> np.ndarray:
    """Reads a session's images as raw uint8 pixels.

    Args:
        session_id: e.g. ``"190923"``.
        indices: 1-based image numbers (``image0001.jpg`` is 1), any order;
            None reads all.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        use_cache: keep the decoded zip as ``.npy`` in ``cache_dir`` keyed by
            the zip's SHA-256, and read from it (checked) on later calls.
        cache_dir: cache folder; default
            :func:`classes.runtime.paths.default_cache_dir`.
        size: resize to ``(size, size)`` (bilinear) when given, e.g. 224 for
            the ensemble's ResNet50 stage. None keeps 112x112.

    Returns:
        uint8 array ``(num_images, 112, 112, 3)`` (or ``size`` x ``size``).

    Raises:
        ValueError: unknown session; indices out of range; corrupt zip.
        FileNotFoundError: the session's zip is not in the release.
    """
    path = image_zip_path(session_id, data_root)
    all_images = _cached_images(path, cache_dir) if use_cache else None
    if indices is None:
        images = np.array(all_images) if all_images is not None else _decode_all(path)
    else:
        images = _select_images(path, all_images, indices, session_id)
    if size is not None and size != IMAGE_SIZE:
        images = resize_images(images, size)
    return images


def _cached_images(path: Path, cache_dir) -> np.ndarray:
    """All of a zip's images from the decode cache (:mod:`classes.data.decode_cache`), decoding them if needed."""
    digest = known_sha256(path) or sha256_of_file(path)
    return load_or_decode(path, digest, lambda: _decode_all(path), cache_dir)


def _select_images(path: Path, all_images, indices, session_id) -> np.ndarray:
    """The images numbered ``indices`` (1-based), from ``all_images`` or decoded from the zip.

    Raises:
        ValueError: non-integer indices, or indices out of range.
    """
    numbers = np.asarray(indices).reshape(-1)
    if numbers.size and not np.issubdtype(numbers.dtype, np.integer):
        raise ValueError("Image indices must be integers (1-based).")
    if all_images is not None:
        count = all_images.shape[0]
    else:
        with _open_zip(path) as archive:
            count = len(_index_members(archive, path))
    if numbers.size and (numbers.min() < 1 or numbers.max() > count):
        raise ValueError(
            f"Image indices are 1-based and session {session_id} has "
            f"{count} images; got indices from {numbers.min()} to "
            f"{numbers.max()}."
        )
    if all_images is not None:
        return np.array(all_images[numbers - 1])
    if not numbers.size:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    with _open_zip(path) as archive:
        members = _index_members(archive, path)
        return np.stack([_decode(archive, members[int(number)], path) for number in numbers])


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resizes uint8 images ``(N, H, W, 3)`` to ``(N, size, size, 3)``, bilinear."""
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
            for image in images
        ]
    ) if len(images) else np.empty((0, size, size, 3), np.uint8)

"""Every model's responses to the release's images and to the dot screen, cached per model.

The explorer's candidate images are the release's zips: all their images
(12 zips, 12,640 images in this release) or, with ``pool_size``, a seeded
random subset of them plus the held-out half of every test session whose zip
is present (so the held-out scores need no second pass). The screen's single
dots (:func:`classes.analysis.dot_detector.screen_stimuli`, script8's
screen: black and white dots of radii 2, 4, 8 px on a 7 x 7 grid) follow
the images in the same forward passes.

Responses come from :func:`classes.prediction.predict` (the fast engine),
a chunk of models over blocks of images at a time, each distinct image once
(903 of the release's 12,640 images repeat another). Each model's responses
are saved as ``<folder>/<stem>.npy`` (float32, images then dots) as soon as
its chunk is done, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.analysis.dot_detector import screen_stimuli
from classes.compact.architecture import ModelId, load_weights_npy
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import RecentringBuffer
from classes.data.sessions import TEST_SESSIONS, held_out_indices
from classes.prediction import predict
from classes.prediction.stacked import stack_compact_models
from classes.runtime import outputs

SCREEN_GRID = 7
SCREEN_RADII = (2.0, 4.0, 8.0)
# Models evaluated together, and images per forward call (bounds memory: a
# block of recentred float32 images is BLOCK * 150 kB).
CHUNK = 8
BLOCK = 2000


@dataclass
class ImageSet:
    """The candidate images and the dot screen, in the order of the cached responses.

    Attributes:
        images: raw uint8 ``(N, 112, 112, 3)``.
        sources: int64 ``(N, 2)``: (session as int, 1-based image number), sorted.
        normal: bool ``(N,)``: from a zip of normal images only (the dot
            selectivity's natural reference, as in script8).
        dots: uint8 ``(D, 112, 112, 3)``, the screen's dot images.
        dot_labels: ``(polarity, radius, (row, column))`` per dot image.
        tag: names the cache folder (the pool's settings).
    """

    images: np.ndarray
    sources: np.ndarray
    normal: np.ndarray
    dots: np.ndarray
    dot_labels: list
    tag: str

    def index_of(self, session: str, numbers) -> np.ndarray:
        """Positions of ``session``'s 1-based image ``numbers`` in :attr:`images`.

        Raises:
            ValueError: an image is not in the set.
        """
        keys = self.sources[:, 0] * 100000 + self.sources[:, 1]
        wanted = int(session) * 100000 + np.asarray(numbers, dtype=np.int64)
        positions = np.searchsorted(keys, wanted)
        if np.any(positions >= len(keys)) or np.any(keys[np.minimum(positions, len(keys) - 1)] != wanted):
            raise ValueError(f"some images of session {session} are not among the explorer's images.")
        return positions


def load_image_set(data_root, pool_size: int | None = None, seed: int = 0) -> ImageSet:
    """The release's images (all, or ``pool_size`` of them plus the held-out halves) and the dots.

    Raises:
        FileNotFoundError: the data root holds no image zips.
    """
    sessions = available_image_sessions(data_root)
    if not sessions:
        raise FileNotFoundError(
            f"the data root {data_root} holds no image zips (data_V4_responses/images/images_<session>.zip); "
            "the explorer shows each model's responses to the release's images, so it needs them. "
            "Point --data-root at a complete release.")
    images, sources = load_image_pool(sessions, data_root, size=pool_size, seed=seed)
    if pool_size is not None:
        images, sources = _add_held_out(images, sources, sessions, data_root)
    order = np.lexsort((sources[:, 1], sources[:, 0]))
    normal_sessions = {int(session) for session in normal_image_sessions(data_root)}
    dots, labels = screen_stimuli(SCREEN_GRID, SCREEN_RADII)
    tag = "all" if pool_size is None else f"pool{pool_size}_seed{seed}"
    return ImageSet(images[order], sources[order], np.isin(sources[order, 0], list(normal_sessions)),
                    dots, labels, tag)


def _add_held_out(images, sources, sessions, data_root):
    for session in (session for session in TEST_SESSIONS if session in sessions):
        numbers = held_out_indices(session)[1] + 1
        present = set(sources[sources[:, 0] == int(session), 1].tolist())
        missing = np.array([number for number in numbers if number not in present], dtype=np.int64)
        if missing.size:
            images = np.concatenate([images, load_images(session, missing, data_root=data_root)])
            sources = np.concatenate([sources, np.stack([np.full(missing.size, int(session)), missing], 1)])
    return images, sources


def response_folder(cache_dir, image_set: ImageSet) -> Path:
    """``<cache>/responses_<tag>``, holding ``sources.npy`` and one ``<stem>.npy`` per model.

    Raises:
        ValueError: the folder holds responses to a different image set.
    """
    folder = Path(cache_dir) / f"responses_{image_set.tag}"
    sources_file = folder / "sources.npy"
    if sources_file.is_file():
        if not np.array_equal(np.load(sources_file), image_set.sources):
            raise ValueError(f"{folder} holds responses to other images (has the release changed?); delete it.")
    else:
        outputs.write_npy(sources_file, image_set.sources)
    return folder


def distinct_images(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first of each set of identical images, and where every image's copy is.

    The release's zips share some images (903 of 12,640 repeat another), so
    the response pass predicts each distinct image once.

    Args:
        images: ``(N, ...)`` any dtype.

    Returns:
        ``(first, copy_of)``: int64 positions of the distinct images (increasing)
        and, per image, its index into ``first``; ``images[first][copy_of]``
        equals ``images``.
    """
    first_of: dict[bytes, list[int]] = {}
    first, copy_of = [], np.empty(len(images), dtype=np.int64)
    for index, image in enumerate(images):
        image = np.ascontiguousarray(image)
        candidates = first_of.setdefault(hashlib.sha256(memoryview(image).cast("B")).digest(), [])
        # Equal digests are compared pixel by pixel: a collision cannot merge two images.
        match = next((slot for slot in candidates if np.array_equal(images[first[slot]], image)), None)
        if match is None:
            match = len(first)
            first.append(index)
            candidates.append(match)
        copy_of[index] = match
    return np.asarray(first, dtype=np.int64), copy_of


def compute_responses(models: list[ModelId], image_set: ImageSet, folder: Path, data_root) -> None:
    """Responses of every model without a cached file, saved per model (resumable, progress bar).

    Each distinct stimulus is predicted once (:func:`distinct_images`); the
    saved rows hold every image and dot in the image set's order.
    """
    pending = [identifier for identifier in models if not (folder / f"{identifier.stem}.npy").is_file()]
    if not pending:
        return
    everything = np.concatenate([image_set.images, image_set.dots])
    first, copy_of = distinct_images(everything)
    stimuli = everything[first]
    del everything  # about 0.5 GB for the whole release
    # One buffer for every block, and each chunk's models loaded and folded once for all blocks.
    buffer = RecentringBuffer()
    with tqdm(total=len(pending) * len(stimuli), desc="model responses to images and dots", unit="response",
              unit_scale=True) as bar:
        for start_model in range(0, len(pending), CHUNK):
            chunk = pending[start_model:start_model + CHUNK]
            stacked = stack_compact_models([load_weights_npy(identifier, data_root) for identifier in chunk],
                                           names=[str(identifier) for identifier in chunk])
            parts = []
            for start in range(0, len(stimuli), BLOCK):
                block = buffer.recentred(stimuli[start:start + BLOCK])
                parts.append(predict(stacked, block))
                bar.update(len(chunk) * len(block))
            for identifier, row in zip(chunk, np.concatenate(parts, axis=1), strict=True):
                outputs.write_npy(folder / f"{identifier.stem}.npy", row[copy_of].astype(np.float32))


def load_responses(models: list[ModelId], image_set: ImageSet, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cached responses: ``(images (M, N), dots (M, D))``, float32.

    Raises:
        ValueError: a model's file does not match the image set.
    """
    rows = [np.load(folder / f"{identifier.stem}.npy") for identifier in models]
    expected = len(image_set.images) + len(image_set.dots)
    for identifier, row in zip(models, rows, strict=True):
        if row.shape != (expected,):
            raise ValueError(f"{folder}/{identifier.stem}.npy holds {row.shape} responses, not {expected}; delete it.")
    matrix = np.stack(rows) if rows else np.zeros((0, expected), np.float32)
    return matrix[:, :len(image_set.images)], matrix[:, len(image_set.images):]

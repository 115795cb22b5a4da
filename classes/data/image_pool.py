"""The image pool that compact models are distilled on.

The paper distils each compact model on 12 million images that were never
released (SPEC section 2). The pool here is what the release allows: every
image in the release's image zips, each in three variants (the original,
its gaudy version, and its left-right mirror image), with the held-out
(second) halves of the test sessions kept out, because those images score
the models against V4 (SPEC section 1). About 10,800 base images, so about
32,500 pool entries with all 12 zips present.

A pool entry is ``(session index, image number, variant index)``; images are
read from the release's zips (through the decode cache of
:mod:`classes.data.images`) when a batch is asked for, and returned recentred.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classes.data.images import available_image_sessions, count_images, load_images
from classes.data.preprocessing import gaudy_images, recenter_images
from classes.data.sessions import TEST_SESSIONS, get_session, held_out_indices

VARIANTS = ("original", "gaudy", "flipped")


def make_variant(raw_images: np.ndarray, variant: str) -> np.ndarray:
    """One variant of raw images.

    Args:
        raw_images: uint8 ``(num_images, 112, 112, 3)``.
        variant: ``"original"``, ``"gaudy"`` (each channel thresholded at its
            mean, no blur) or ``"flipped"`` (mirrored left to right).

    Returns:
        uint8 array of the same shape.
    """
    if variant == "original":
        return raw_images
    if variant == "gaudy":
        return gaudy_images(raw_images)
    if variant == "flipped":
        return np.ascontiguousarray(raw_images[:, :, ::-1, :])
    raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}.")


@dataclass
class ImagePool:
    """A list of pool entries and the means to load them.

    Attributes:
        sessions: session ids that ``entries[:, 0]`` indexes.
        entries: int64 ``(num_entries, 3)``: session index, 1-based image
            number, variant index into ``VARIANTS``.
        data_root: the release folder (None: resolved as usual).
    """

    sessions: tuple
    entries: np.ndarray
    data_root: Path | None = None
    _base_images: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.entries)

    def subset(self, indices) -> ImagePool:
        """A pool of the chosen entries, in the given order (sharing the image cache)."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImagePool(self.sessions, self.entries[indices], self.data_root, self._base_images)

    def fingerprint(self) -> str:
        """A short hash of the sessions and entries; equal pools give equal hashes."""
        digest = hashlib.sha256()
        digest.update(",".join(self.sessions).encode())
        digest.update(np.ascontiguousarray(self.entries, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        """Entries per session and per variant, for logs and result files."""
        per_session = {
            session: int(np.sum(self.entries[:, 0] == index))
            for index, session in enumerate(self.sessions)
        }
        per_variant = {
            variant: int(np.sum(self.entries[:, 2] == index))
            for index, variant in enumerate(VARIANTS)
        }
        base = len(np.unique(self.entries[:, :2], axis=0)) if len(self) else 0
        return {
            "num_entries": len(self),
            "num_base_images": base,
            "per_session": per_session,
            "per_variant": per_variant,
        }

    def _session_images(self, session_index: int) -> np.ndarray:
        # A session's images are decoded once and kept (all of them, so that
        # subsets sharing this cache find every image): reading through
        # load_images per batch would hash the zip every time.
        if session_index not in self._base_images:
            self._base_images[session_index] = load_images(
                self.sessions[session_index], data_root=self.data_root
            )
        return self._base_images[session_index]

    def load(self, indices=None) -> np.ndarray:
        """Recentred images of chosen entries.

        Args:
            indices: positions in this pool; None for all.

        Returns:
            float32 ``(num_chosen, 112, 112, 3)``, in the order asked.
        """
        chosen = self.entries if indices is None else self.entries[np.asarray(indices, dtype=np.int64)]
        raw = np.empty((len(chosen), 112, 112, 3), dtype=np.uint8)
        for session_index in np.unique(chosen[:, 0]):
            images = self._session_images(int(session_index))
            in_session = np.flatnonzero(chosen[:, 0] == session_index)
            numbers = chosen[in_session, 1]
            if numbers.min() < 1 or numbers.max() > len(images):
                raise ValueError(
                    f"Pool entries name images up to {numbers.max()} of session "
                    f"{self.sessions[session_index]}, which has {len(images)}."
                )
            for variant_index, variant in enumerate(VARIANTS):
                rows = in_session[chosen[in_session, 2] == variant_index]
                if len(rows):
                    raw[rows] = make_variant(images[chosen[rows, 1] - 1], variant)
        return recenter_images(raw)


def pool_image_numbers(session_id: str, data_root=None) -> np.ndarray:
    """1-based numbers of a session's images that may enter the pool.

    All images of the zip, except the held-out (second) half of a test
    session's images.
    """
    count = count_images(session_id, data_root)
    numbers = np.arange(1, count + 1)
    if get_session(session_id).session_id in TEST_SESSIONS:
        _, evaluation = held_out_indices(session_id)
        numbers = np.setdiff1d(numbers, evaluation + 1)
    return numbers


def build_image_pool(
    data_root=None,
    sessions=None,
    variants=VARIANTS,
    max_images_per_session: int | None = None,
    seed: int = 0,
) -> ImagePool:
    """The distillation pool, shuffled once.

    Args:
        data_root: the release folder.
        sessions: session ids to draw from; None for every zip present.
        variants: which of ``VARIANTS`` to include.
        max_images_per_session: keep only the first this many allowed images
            of each session (small runs); None for all.
        seed: seed of the shuffle, so that consecutive entries mix sessions
            and variants.

    Returns:
        An :class:`ImagePool`.

    Raises:
        ValueError: unknown variant, empty choice.
        FileNotFoundError: a chosen session's zip is absent.
    """
    present = available_image_sessions(data_root)
    chosen = present if sessions is None else [get_session(s).session_id for s in sessions]
    if not chosen:
        raise FileNotFoundError(
            "No image zips in data_V4_responses/images/ of the release; the "
            "distillation pool needs at least one."
        )
    unknown = [variant for variant in variants if variant not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {VARIANTS}; got {variants!r}.")
    if max_images_per_session is not None and max_images_per_session < 1:
        raise ValueError(f"max_images_per_session must be positive; got {max_images_per_session}.")
    rows = []
    for session_index, session in enumerate(chosen):
        numbers = pool_image_numbers(session, data_root)
        if max_images_per_session is not None:
            numbers = numbers[:max_images_per_session]
        for variant in variants:
            block = np.empty((len(numbers), 3), dtype=np.int64)
            block[:, 0] = session_index
            block[:, 1] = numbers
            block[:, 2] = VARIANTS.index(variant)
            rows.append(block)
    entries = np.concatenate(rows)
    order = np.random.default_rng(seed).permutation(len(entries))
    return ImagePool(tuple(chosen), entries[order], data_root)

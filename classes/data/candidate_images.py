"""Candidate normal images for preferred-stimulus searches (Fig. 2, SPEC section 7).

A model's maximizing normal images are its top images among a large pool;
here the pool is every image in the release's zips (12 zips, 12,640
images), or only the zips whose images are all normal ones (5 zips, 5,600
images) for the percent changes over random normal images.
"""

from __future__ import annotations

import re

import numpy as np

from classes.data.images import available_image_sessions, count_images, load_images
from classes.data.sessions import get_session


def normal_image_sessions(data_root=None) -> list[str]:
    """Sessions whose zip is present and whose images are all normal images.

    Taken from the session table's image types (``"normal (1,200)"`` and no
    other type); other zips also hold synthesized, gaudy or Bashivan et al.
    images.
    """
    return [
        session
        for session in available_image_sessions(data_root)
        if re.fullmatch(r"normal \([\d,]+\)", get_session(session).image_types.strip())
    ]


def load_image_pool(sessions, data_root=None, size: int | None = None, seed: int = 0):
    """Images of several sessions as one candidate pool.

    Args:
        sessions: session ids whose zips to read (all their images).
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        size: keep a random subset of this many images (seeded); None keeps
            every image.
        seed: seed of that subset.

    Returns:
        ``(images, sources)``: raw uint8 ``(N, 112, 112, 3)`` and an int array
        ``(N, 2)`` of (session id as int, 1-based image number).

    Raises:
        ValueError: ``size`` is not a positive integer.
        FileNotFoundError: a session's zip is missing.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}.")
    counts = {session: count_images(session, data_root) for session in sessions}
    sources = np.array(
        [(int(session), number) for session in sessions for number in range(1, counts[session] + 1)],
        dtype=np.int64,
    ).reshape(-1, 2)
    if size is not None:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(sources))[: int(size)])
        sources = sources[chosen]
    images = np.empty((len(sources), 112, 112, 3), np.uint8)
    for session in sessions:
        rows = np.flatnonzero(sources[:, 0] == int(session))
        if rows.size:
            images[rows] = load_images(session, sources[rows, 1], data_root=data_root)
    return images, sources

"""Normal (natural) images of the release, drawn at random for model analyses.

Script 7 (CKA, signal correlation) and script 8 (the dot screen) compare
models on normal images only: those of the sessions whose readme row lists
only normal images (190923, 201025, 210224, 210225, 210621) and whose zip is
present.
"""

from __future__ import annotations

import re

import numpy as np

from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import SESSIONS


def normal_image_pool(data_root) -> list[tuple[str, int]]:
    """(session, 1-based image number) of every normal image in the release's zips.

    Sessions whose readme row lists only normal images, and whose zip is
    present, in the session table's order.

    Args:
        data_root: the release folder.

    Returns:
        List of ``(session_id, image_number)``.

    Raises:
        FileNotFoundError: no all-normal-image session's zip is present.
    """
    present = set(available_image_sessions(data_root))
    sessions = [
        session.session_id
        for session in SESSIONS.values()
        if re.fullmatch(r"normal \([\d,]+\)", session.image_types) and session.session_id in present
    ]
    if not sessions:
        raise FileNotFoundError(
            "No image zip of an all-normal-image session is in the release "
            "(data_V4_responses/images/images_<session>.zip for 190923, 201025, 210224, "
            "210225 or 210621); CKA and signal correlation need normal images."
        )
    return [(session, number) for session in sessions
            for number in range(1, SESSIONS[session].num_images_in_file + 1)]


def load_normal_images(num_images: int, seed: int, data_root) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """A seeded random draw of normal images, recentred for the compact models.

    Args:
        num_images: how many images to draw (without replacement).
        seed: seed of the draw.
        data_root: the release folder.

    Returns:
        ``(images, picked)``: recentred images ``(num_images, 112, 112, 3)``,
        grouped by session in pool order, and their ``(session_id,
        image_number)`` in the same order.

    Raises:
        ValueError: ``num_images`` exceeds the normal images in the release.
        FileNotFoundError: no all-normal-image session's zip is present.
    """
    pool = normal_image_pool(data_root)
    if num_images > len(pool):
        raise ValueError(f"--num-images {num_images} exceeds the {len(pool)} normal images in the release.")
    generator = np.random.default_rng(seed)
    chosen = sorted(generator.choice(len(pool), size=num_images, replace=False))
    picked = [pool[index] for index in chosen]
    parts = []
    for session in dict.fromkeys(session for session, _ in picked):
        numbers = [number for name, number in picked if name == session]
        parts.append(load_images(session, numbers, data_root=data_root))
    return recenter_images(np.concatenate(parts)), picked

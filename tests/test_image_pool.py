"""The image pool (the base images of the image stream), on the release."""

from __future__ import annotations

import numpy as np
import pytest

from classes.data.image_pool import VARIANTS, build_image_pool, pool_image_numbers
from classes.data.images import load_images
from classes.data.preprocessing import gaudy_images, recenter_images


def test_pool_keeps_held_out_halves_out_and_makes_variants(data_root):
    assert np.array_equal(pool_image_numbers("190923", data_root), np.arange(1, 601))
    assert np.array_equal(pool_image_numbers("210224", data_root), np.arange(1, 801))
    pool = build_image_pool(data_root, sessions=["190923", "210224"], max_images_per_session=5, seed=1)
    assert len(pool) == 2 * 5 * 3
    assert pool.describe()["per_variant"] == {variant: 10 for variant in VARIANTS}
    images = pool.load(np.arange(len(pool)))
    for position in (0, 7, 29):
        session_index, number, variant = pool.entries[position]
        raw = load_images(pool.sessions[session_index], [number], data_root=data_root)
        expected = {"original": raw, "gaudy": gaudy_images(raw), "flipped": raw[:, :, ::-1]}[VARIANTS[variant]]
        np.testing.assert_array_equal(images[position], recenter_images(expected)[0])
    assert pool.fingerprint() == build_image_pool(data_root, ["190923", "210224"], max_images_per_session=5,
                                                  seed=1).fingerprint()
    with pytest.raises(ValueError, match="variants"):
        build_image_pool(data_root, sessions=["190923"], variants=("sepia",))

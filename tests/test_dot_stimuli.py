"""The dot-stimulus generator draws what is asked, where it is asked."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from classes.analysis.dot_stimuli import (
    BLACK,
    GRAY,
    WHITE,
    blank_image,
    dot_image,
    grid_centers,
    random_dot_centers,
    single_dot_images,
)

# Lattice points within a circle of radius r (Gauss circle problem): N(1..5).
GAUSS_CIRCLE = {1: 5, 2: 13, 3: 29, 4: 49, 5: 81}


def components(image, background=GRAY):
    labels, count = ndimage.label(np.any(image != background, axis=-1))
    return labels, count


@pytest.mark.parametrize("radius", [1, 2, 3, 4, 5])
def test_one_dot_has_the_radius_and_place_asked(radius):
    image = dot_image([[40, 70]], radius, dot_value=BLACK)
    labels, count = components(image)
    assert count == 1
    assert np.sum(labels == 1) == GAUSS_CIRCLE[radius]
    rows, columns = np.nonzero(labels == 1)
    assert (rows.mean(), columns.mean()) == pytest.approx((40, 70))
    assert rows.max() - rows.min() == columns.max() - columns.min() == 2 * radius
    assert np.all(image[labels == 1] == BLACK) and np.all(image[labels == 0] == GRAY)


def test_several_dots_counted_and_placed():
    centers = np.array([[10, 10], [10, 60], [80, 30], [100, 100]])
    image = dot_image(centers, 3, dot_value=WHITE)
    labels, count = components(image)
    assert count == 4
    found = np.array(ndimage.center_of_mass(labels > 0, labels, range(1, count + 1)))
    for center in centers:
        assert np.min(np.hypot(*(found - center).T)) < 1e-9
    assert np.sum(labels > 0) == 4 * GAUSS_CIRCLE[3]


def test_rgb_values_and_blank():
    image = dot_image([[56, 56]], 2, dot_value=(255, 0, 10), background=(0, 0, 0))
    assert tuple(image[56, 56]) == (255, 0, 10) and tuple(image[0, 0]) == (0, 0, 0)
    blank = blank_image()
    assert blank.shape == (1, 112, 112, 3) and np.all(blank == GRAY)


def test_grid_centers_are_the_28x28_cell_centres():
    centers = grid_centers(28)
    assert centers.shape == (28, 28, 2)
    assert centers[0, 0].tolist() == [1.5, 1.5]
    assert centers[27, 27].tolist() == [109.5, 109.5]
    assert centers[3, 5].tolist() == [13.5, 21.5]
    images = single_dot_images(centers[[0, 13, 27], [0, 20, 5]], 1.5)
    assert images.shape == (3, 112, 112, 3)
    for image, center in zip(images, centers[[0, 13, 27], [0, 20, 5]], strict=True):
        labels, count = components(image)
        assert count == 1
        rows, columns = np.nonzero(labels)
        assert (rows.mean(), columns.mean()) == pytest.approx(tuple(center))


def test_random_dots_are_separate_and_inside():
    generator = np.random.default_rng(0)
    for number in (1, 5, 12):
        centers = random_dot_centers(number, 4, generator)
        assert centers.shape == (number, 2)
        assert np.all((centers >= 4) & (centers <= 107))
        distances = np.hypot(*(centers[:, None] - centers[None]).transpose(2, 0, 1))
        assert np.all(distances[~np.eye(number, dtype=bool)] >= 10)
        _, count = components(dot_image(centers, 4))
        assert count == number


def test_random_dots_from_candidates():
    generator = np.random.default_rng(1)
    candidates = grid_centers(28)[10:18, 10:18].reshape(-1, 2)
    centers = random_dot_centers(4, 2, generator, candidates)
    assert all(any(np.allclose(center, candidate) for candidate in candidates) for center in centers)
    # Two candidates 4 px apart cannot hold two separate dots of radius 2.
    assert random_dot_centers(2, 2, generator, candidates[:2], max_tries=5) is None
    assert random_dot_centers(70, 2, generator, candidates) is None


def _greedy_reference(pool, num_dots, separation):
    """Each pool entry in turn, kept when far enough from every one kept before (the plain loop)."""
    chosen = []
    for center in pool:
        if all(np.hypot(*(center - other)) >= separation for other in chosen):
            chosen.append(center)
            if len(chosen) == num_dots:
                return np.array(chosen)
    return None


@pytest.mark.parametrize("seed", range(6))
def test_random_dots_equal_the_plain_greedy_draw(seed):
    # The same generator calls as the plain loop, so the same dots (or None).
    for number, radius, with_candidates in ((3, 4, False), (8, 2, True), (12, 7, False), (30, 7, True), (40, 6, True)):
        candidates = grid_centers(28).reshape(-1, 2)[::3] if with_candidates else None
        generator, reference = np.random.default_rng(seed), np.random.default_rng(seed)
        got = random_dot_centers(number, radius, generator, candidates, max_tries=3)
        expected = None
        for _ in range(3):
            if with_candidates:
                allowed = candidates[np.all((candidates >= radius) & (candidates <= 111 - radius), axis=1)]
                pool = allowed[reference.permutation(len(allowed))]
            else:
                pool = reference.uniform(radius, 111 - radius, size=(50 * number, 2))
            expected = _greedy_reference(pool, number, 2 * radius + 2.0)
            if expected is not None:
                break
        assert (got is None) == (expected is None)
        if got is not None:
            np.testing.assert_array_equal(got, expected)
            assert np.all((got >= radius) & (got <= 111 - radius))  # every dot wholly inside


def test_errors():
    with pytest.raises(ValueError, match="radius"):
        dot_image([[1, 1]], 0)
    with pytest.raises(ValueError, match="dot_value"):
        dot_image([[1, 1]], 2, dot_value=300)
    with pytest.raises(ValueError, match="background"):
        dot_image([[1, 1]], 2, background=12.5)
    with pytest.raises(ValueError, match="num_dots"):
        random_dot_centers(0, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="grid_size"):
        grid_centers(0)

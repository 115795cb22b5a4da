"""Linear CKA (Fig. 3c): invariances, the Gram route, storage, model activity."""

from __future__ import annotations

import numpy as np
import pytest

from classes.analysis.cka import (
    GramStore,
    center_gram,
    centered_gram,
    cka_from_grams,
    cka_matrix,
    linear_cka,
    normalized_gram,
    position_subset,
)


def reference_cka(x, y):
    """Kornblith et al. (2019) eq. for linear CKA, written out independently."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    hsic_xy = np.trace(x @ x.T @ y @ y.T)
    return hsic_xy / np.sqrt(np.trace(x @ x.T @ x @ x.T) * np.trace(y @ y.T @ y @ y.T))


@pytest.fixture
def activities():
    generator = np.random.default_rng(0)
    shared = generator.standard_normal((40, 5))
    x = shared @ generator.standard_normal((5, 12)) + 0.5 * generator.standard_normal((40, 12))
    y = shared @ generator.standard_normal((5, 9)) + generator.standard_normal((40, 9))
    return x, y


def test_matches_numpy_reference_and_gram_route(activities):
    x, y = activities
    expected = reference_cka(x, y)
    assert 0.2 < expected < 0.95
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-10)
    assert cka_from_grams(x @ x.T, y @ y.T) == pytest.approx(expected, rel=1e-10)
    assert float(np.sum(normalized_gram(x) * normalized_gram(y))) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("num_images", [2, 3, 40, 101])
def test_float32_gram_matches_float64_numpy(num_images):
    # ReLU-like activity: positive with a mean far above its spread, where
    # centring after the product would lose the float32 digits.
    generator = np.random.default_rng(num_images)
    features = np.abs(generator.standard_normal((num_images, 300))) + 5.0
    centred = features - features.mean(axis=0)
    expected = centred @ centred.T
    gram = centered_gram(features.astype(np.float32), np.float32)
    assert gram.dtype == np.float32 and gram.shape == (num_images, num_images)
    np.testing.assert_allclose(gram, expected, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(gram, gram.T, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_float32_gram_overwrites_its_input_only_when_asked(layout):
    generator = np.random.default_rng(7)
    whole = (np.abs(generator.standard_normal((30, 200))) + 3.0).astype(np.float32)
    features = whole if layout == "contiguous" else whole[:, ::2]
    kept = features.copy()
    reference = centered_gram(features.astype(np.float64))
    np.testing.assert_allclose(centered_gram(features, np.float32), reference, atol=1e-5 * np.abs(reference).max())
    np.testing.assert_array_equal(features, kept)
    gram = normalized_gram(features, overwrite=True)
    np.testing.assert_allclose(gram, reference / np.linalg.norm(reference), atol=1e-6)
    np.testing.assert_allclose(features, kept - kept.mean(axis=0), atol=1e-5)  # centred in place


def test_single_features_give_squared_correlation():
    generator = np.random.default_rng(1)
    x = generator.standard_normal(30)
    y = 0.3 * x + generator.standard_normal(30)
    assert linear_cka(x[:, None], y[:, None]) == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)


def test_invariances(activities):
    x, y = activities
    generator = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(generator.standard_normal((12, 12)))
    reference = linear_cka(x, y)
    assert linear_cka(x @ rotation, y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x + 3.0, y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0)
    # Not invariant to anisotropic scaling: the test can fail.
    stretched = x * np.linspace(0.1, 10, 12)
    assert abs(linear_cka(stretched, y) - reference) > 1e-3


def test_multidimensional_activity_is_flattened(activities):
    x, y = activities
    assert linear_cka(x.reshape(40, 3, 4), y) == pytest.approx(linear_cka(x, y))


def test_center_gram_and_errors(activities):
    x, _ = activities
    centred = center_gram(x @ x.T)
    np.testing.assert_allclose(centred.sum(axis=0), 0, atol=1e-9)
    with pytest.raises(ValueError, match="same images"):
        linear_cka(x, x[:10])
    with pytest.raises(ValueError, match="at least 2"):
        linear_cka(x[:1], x[:1])
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((5, 2), np.nan), x[:5])
    assert np.isnan(linear_cka(np.ones((6, 2)), x[:6]))


def test_cka_matrix_equals_pairwise():
    generator = np.random.default_rng(3)
    activities = [generator.standard_normal((25, count)) for count in (3, 10, 6, 1)]
    activities.append(activities[1] @ np.linalg.qr(generator.standard_normal((10, 10)))[0])
    grams = np.stack([normalized_gram(activity) for activity in activities])
    matrix = cka_matrix(grams, columns=7)
    for first in range(5):
        for second in range(5):
            expected = linear_cka(activities[first], activities[second])
            assert matrix[first, second] == pytest.approx(expected, rel=2e-5)
    assert matrix[1, 4] == pytest.approx(1.0, rel=1e-5)


def test_constant_activity_gives_nan_not_a_number():
    generator = np.random.default_rng(4)
    grams = np.stack([normalized_gram(generator.standard_normal((10, 3))), normalized_gram(np.ones((10, 3)))])
    matrix = cka_matrix(grams)
    assert matrix[0, 0] == pytest.approx(1.0)
    assert np.isnan(matrix[0, 1]) and np.isnan(matrix[1, 1])


def test_position_subset():
    chosen = position_subset(112, 112, 512, seed=0)
    assert chosen.size == 512 and np.all(np.diff(chosen) > 0) and chosen.max() < 112 * 112
    np.testing.assert_array_equal(chosen, position_subset(112, 112, 512, seed=0))
    assert not np.array_equal(chosen, position_subset(112, 112, 512, seed=1))
    np.testing.assert_array_equal(position_subset(28, 28, 1000), np.arange(784))
    with pytest.raises(ValueError, match="num_positions must be positive"):
        position_subset(28, 28, 0)


def test_gram_store_resumes_and_resets(tmp_path):
    gram = np.eye(4, dtype=np.float32)
    store = GramStore(tmp_path, {"images": [1, 2, 3, 4]}, num_models=3, num_images=4, num_layers=2)
    store.store(1, [gram, 2 * gram], responses=np.arange(4))
    del store
    again = GramStore(tmp_path, {"images": [1, 2, 3, 4]}, num_models=3, num_images=4, num_layers=2)
    np.testing.assert_array_equal(again.done, [False, True, False])
    np.testing.assert_array_equal(again.grams[1][1], 2 * gram)
    np.testing.assert_array_equal(again.responses[1], np.arange(4))
    del again
    other = GramStore(tmp_path, {"images": [1, 2, 3, 5]}, num_models=3, num_images=4, num_layers=2)
    assert not other.done.any()

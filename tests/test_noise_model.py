"""The noise model of the approximate noise-corrected R2 and its validation."""

from __future__ import annotations

import numpy as np
import pytest

from classes.data.responses import load_raw
from classes.scoring import metrics
from classes.scoring.noise_model import (
    CHOSEN_ESTIMATOR,
    ESTIMATORS,
    approximate_noise,
    calibrated_fano_factor,
    count_spread_fano_factors,
    fano_factors,
)
from classes.scoring.noise_validation import (
    half_repeat_stand_in,
    leave_one_session_out,
    subsample_repeats,
)


def test_approximate_noise_of_each_estimator():
    means = np.array([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])
    counts = np.array([2, 5, 3])
    noise, repeats = approximate_noise(means, "poisson", counts, 6, 0.5)
    np.testing.assert_allclose(noise, [2.0, 4.0])
    assert repeats == 6.0
    noise, repeats = approximate_noise(means, "poisson_per_image", counts, 6, 0.5)
    np.testing.assert_allclose(noise, [2.0, 4.0])
    np.testing.assert_array_equal(repeats, [[2, 5, 3]])
    noise, repeats = approximate_noise(means, "fano_per_image", counts, 6, 0.5)
    np.testing.assert_allclose(noise, [1.0, 2.0])
    with pytest.raises(ValueError, match="estimator must be one of"):
        approximate_noise(means, "gamma", counts, 6, 0.5)
    with pytest.raises(ValueError, match="fano_factor must be positive"):
        approximate_noise(means, "fano_per_image", counts, 6, 0.0)


def test_fano_factor_of_simulated_counts():
    # Negative binomial spike counts with variance = 1.5 x mean: Fano factor 1.5.
    generator = np.random.default_rng(0)
    rate = np.exp(generator.normal(1.0, 0.4, size=(50, 400)))
    success = 1 / 1.5
    raw = generator.negative_binomial(rate[..., None] * success / (1 - success), success, size=rate.shape + (8,))
    assert np.median(fano_factors(raw.astype(float))) == pytest.approx(1.5, rel=0.05)


def test_count_spread_recovers_a_known_fano_factor():
    # sigma2 = F x mean with F = 0.8; the spread of the averages grows as sigma2 / n_j.
    generator = np.random.default_rng(1)
    counts = generator.integers(4, 29, size=4000)
    signal = 3.0 + generator.normal(size=(30, 4000))
    averages = signal + generator.normal(size=signal.shape) * np.sqrt(0.8 * 3.0 / counts)
    assert np.median(count_spread_fano_factors(averages, counts)) == pytest.approx(0.8, rel=0.1)
    with pytest.raises(ValueError, match="counts are all equal"):
        count_spread_fano_factors(averages, np.full(4000, 7))


def test_stand_in_halves_the_repeats(data_root):
    raw = load_raw("210325", data_root)
    stand_in = half_repeat_stand_in(raw)
    counts = metrics.count_repeats(raw)[0]
    np.testing.assert_array_equal(stand_in.counts, counts - counts // 2)
    image = 3
    np.testing.assert_allclose(stand_in.predictor[:, image], raw[:, image, : counts[image] // 2].mean(axis=1))
    np.testing.assert_allclose(stand_in.means[:, image], raw[:, image, counts[image] // 2 : counts[image]].mean(axis=1))


def test_subsampling_keeps_the_asked_counts_of_real_repeats(data_root):
    raw = load_raw("201016", data_root)[:5]
    asked = np.minimum(3, metrics.count_repeats(raw)[0])
    kept = subsample_repeats(raw, asked, np.random.default_rng(0))
    np.testing.assert_array_equal(metrics.count_repeats(kept)[0], asked)
    for image in (0, 100):
        assert set(kept[0, image][~np.isnan(kept[0, image])]) <= set(raw[0, image][~np.isnan(raw[0, image])])


def test_reported_estimator_validates_best_and_meets_the_goal(data_root):
    results = leave_one_session_out(data_root)
    assert set(results) == {"201016", "210325"}
    for session, entry in results.items():
        assert entry["calibrated_on"] == [other for other in results if other != session]
        chosen = entry[CHOSEN_ESTIMATOR]
        assert abs(chosen["median_bias"]) <= 0.01, session  # the goal
        for estimator in ESTIMATORS:
            assert abs(chosen["median_bias"]) <= abs(entry[estimator]["median_bias"])
        assert entry["poisson"]["median_bias"] > 0.02  # the plain Poisson reads high, as reported before
    assert calibrated_fano_factor(data_root) == pytest.approx(
        np.nanmedian(np.concatenate([fano_factors(load_raw(session, data_root)) for session in results])))
    assert 0.8 < calibrated_fano_factor(data_root) < 1.0

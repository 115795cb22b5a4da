"""Metrics against known answers, simulations and a direct NumPy reference."""

import numpy as np
import pytest

from classes.scoring import metrics


def simulate(true_r2, num_neurons=300, num_images=200, num_repeats=8,
             noise="gaussian", seed=0, counts=None):
    """Repeats with a known signal and a prediction whose R2 with it is true_r2.

    ``counts`` (one per image) keeps only the first ``counts[j]`` repeats of
    image j (NaN after them), ``num_repeats`` being their maximum.
    """
    generator = np.random.default_rng(seed)
    signal = generator.standard_normal((num_neurons, num_images))
    # Orthogonalise the independent part so that r(prediction, signal)^2 is exact per neuron.
    independent = generator.standard_normal((num_neurons, num_images))
    signal -= signal.mean(1, keepdims=True)
    independent -= independent.mean(1, keepdims=True)
    independent -= (np.sum(independent * signal, 1) / np.sum(signal**2, 1))[:, None] * signal
    signal /= signal.std(1, keepdims=True)
    independent /= independent.std(1, keepdims=True)
    prediction = np.sqrt(true_r2) * signal + np.sqrt(1 - true_r2) * independent
    if noise == "poisson":
        rate = np.exp(0.5 * signal + 1.0)
        repeats = generator.poisson(rate[..., None], size=rate.shape + (num_repeats,)).astype(float)
        # The Poisson rate is a monotone, not linear, function of the signal: use the rate.
        prediction = np.sqrt(true_r2) * (rate - rate.mean(1, keepdims=True)) / rate.std(1, keepdims=True) \
            + np.sqrt(1 - true_r2) * independent
    else:
        repeats = signal[..., None] + 2.0 * generator.standard_normal(signal.shape + (num_repeats,))
    if counts is not None:
        repeats = np.where(np.arange(num_repeats)[None, None, :] < np.asarray(counts)[None, :, None], repeats, np.nan)
    return prediction, repeats


@pytest.mark.parametrize("true_r2", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_noise_corrected_r2_is_unbiased_where_naive_r2_is_not(true_r2, noise):
    prediction, repeats = simulate(true_r2, noise=noise, num_repeats=4, seed=int(true_r2 * 10))
    estimate = metrics.noise_corrected_r2(prediction, repeats)
    naive = metrics.raw_r2(prediction, np.nanmean(repeats, axis=2))
    assert abs(np.mean(estimate) - true_r2) < 0.02
    assert np.mean(naive) < true_r2 - 0.03


def test_noise_corrected_r2_matches_direct_formula():
    generator = np.random.default_rng(1)
    repeats = generator.normal(size=(3, 40, 5))
    prediction = generator.normal(size=(3, 40))
    for neuron in range(3):
        y = repeats[neuron].mean(1) - repeats[neuron].mean()
        x = prediction[neuron] - prediction[neuron].mean()
        sigma2 = repeats[neuron].var(axis=1, ddof=1).mean()
        n, m = 5, 40
        expected = ((x @ y) ** 2 - sigma2 / n * (x @ x)) / (
            (x @ x) * (y @ y) - (m - 1) * sigma2 / n * (x @ x))
        assert metrics.noise_corrected_r2(prediction, repeats)[neuron] == pytest.approx(expected, rel=1e-12)


def test_noiseless_perfect_prediction_gives_one():
    generator = np.random.default_rng(2)
    signal = generator.normal(size=(4, 50))
    repeats = np.repeat(signal[..., None], 6, axis=2)
    repeats[..., 0] += 1e-9 * generator.normal(size=signal.shape)  # non-zero, negligible noise
    assert np.allclose(metrics.noise_corrected_r2(3 * signal + 1, repeats), 1.0, atol=1e-6)


def test_shuffled_prediction_gives_about_zero():
    prediction, repeats = simulate(0.8, num_neurons=400, seed=3)
    shuffled = np.random.default_rng(4).permuted(prediction, axis=1)
    assert abs(np.mean(metrics.noise_corrected_r2(shuffled, repeats))) < 0.02


def test_nan_padding_equals_trimmed_array():
    generator = np.random.default_rng(5)
    repeats = generator.poisson(4.0, size=(5, 60, 6)).astype(float)
    prediction = generator.normal(size=(5, 60))
    padded = np.concatenate([repeats, np.full((5, 60, 3), np.nan)], axis=2)
    assert np.allclose(metrics.noise_corrected_r2(prediction, padded),
                       metrics.noise_corrected_r2(prediction, repeats), rtol=0, atol=1e-12)
    assert np.allclose(metrics.snr(padded), metrics.snr(repeats), atol=1e-12)


def test_uneven_repeats_use_median_count_and_nan_mean():
    repeats = np.array([[[1.0, 3.0, np.nan], [2.0, 2.0, 5.0], [0.0, 4.0, np.nan], [7.0, 1.0, 1.0]]])
    means, noise, counts = metrics.repeat_statistics(repeats)
    assert np.allclose(means[0], [2.0, 3.0, 2.0, 3.0])
    assert counts[0] == 2.5
    expected_variances = [2.0, 3.0, 8.0, 12.0]
    assert noise[0] == pytest.approx(np.mean(expected_variances))


def test_snr_matches_direct_numpy():
    generator = np.random.default_rng(6)
    repeats = generator.poisson(3.0, size=(4, 80, 7)).astype(float)
    repeats += np.arange(80)[None, :, None] % 5
    for neuron in range(4):
        means = repeats[neuron].mean(1)
        sigma2 = repeats[neuron].var(axis=1, ddof=1).mean()
        expected = (means.var() - 79 / 80 * sigma2 / 7) / sigma2
        assert metrics.snr(repeats)[neuron] == pytest.approx(expected, rel=1e-12)


def test_snr_is_near_zero_for_pure_noise_and_positive_for_signal():
    generator = np.random.default_rng(7)
    noise_only = generator.normal(size=(200, 100, 10))
    assert abs(np.mean(metrics.snr(noise_only))) < 0.01
    _, repeats = simulate(0.5, seed=8)
    assert np.mean(metrics.snr(repeats)) == pytest.approx(0.25, abs=0.03)  # signal var 1, noise var 4


def test_pearson_and_raw_r2_match_numpy():
    generator = np.random.default_rng(9)
    x, y = generator.normal(size=(2, 3, 30))
    for neuron in range(3):
        expected = np.corrcoef(x[neuron], y[neuron])[0, 1]
        assert metrics.pearson_r(x, y)[neuron] == pytest.approx(expected)
        assert metrics.raw_r2(x, y)[neuron] == pytest.approx(expected**2)


def test_split_half_reliability_and_brainscore_r2():
    prediction, repeats = simulate(0.5, num_neurons=200, num_repeats=10, seed=10)
    reliability = metrics.split_half_reliability(repeats, num_splits=20)
    # True reliability of a 10-repeat mean with signal 1 and noise 4: 1 / (1 + 4/10).
    assert np.mean(reliability) == pytest.approx(1 / 1.4, abs=0.02)
    assert np.mean(metrics.brainscore_r2(prediction, repeats, num_splits=20)) == pytest.approx(0.5, abs=0.03)


def test_poisson_noise_variance_is_mean_count():
    means = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    assert np.allclose(metrics.poisson_noise_variance(means), [2.0, 2.0])


@pytest.mark.parametrize("call", [
    lambda: metrics.pearson_r(np.zeros((2, 10)), np.zeros((3, 10))),
    lambda: metrics.noise_corrected_r2(np.zeros((2, 10)), np.zeros((2, 10))[..., None, None]),
    lambda: metrics.noise_corrected_r2(np.zeros((1, 2)), np.ones((1, 2, 3))),
    lambda: metrics.repeat_statistics(np.full((1, 3, 2), np.nan)),
    lambda: metrics.split_half_reliability(np.ones((1, 5, 1))),
])
def test_bad_shapes_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("true_r2", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_per_image_counts_keep_r2_unbiased_where_the_median_count_does_not(true_r2, noise):
    counts = np.random.default_rng(11).integers(2, 13, size=200)
    prediction, repeats = simulate(true_r2, noise=noise, num_repeats=12, seed=int(true_r2 * 10), counts=counts)
    estimate = metrics.noise_corrected_r2(prediction, repeats)
    assert abs(np.mean(estimate) - true_r2) < 0.02
    if noise == "gaussian":  # noise variance 4: 1/median count understates mean(1/n_j) a lot
        means, noise_variance, median_count = metrics.repeat_statistics(repeats)
        with_median = metrics.noise_corrected_r2_from_summary(prediction, means, noise_variance, median_count)
        assert np.mean(with_median) < 0.9 * true_r2


def test_per_image_formula_matches_a_direct_computation():
    generator = np.random.default_rng(12)
    counts = generator.integers(2, 9, size=30)
    repeats = generator.normal(size=(2, 30, 8))
    repeats = np.where(np.arange(8)[None, None, :] < counts[None, :, None], repeats, np.nan)
    prediction = generator.normal(size=(2, 30))
    for neuron in range(2):
        rows = [repeats[neuron, image, : counts[image]] for image in range(30)]
        y = np.array([row.mean() for row in rows])
        y -= y.mean()
        x = prediction[neuron] - prediction[neuron].mean()
        sigma2 = np.mean([row.var(ddof=1) for row in rows])
        v = sigma2 / counts
        expected = ((x @ y) ** 2 - np.sum(x**2 * v)) / ((x @ x) * (y @ y - 29 / 30 * v.sum()))
        assert metrics.noise_corrected_r2(prediction, repeats)[neuron] == pytest.approx(expected, rel=1e-12)
        snr_expected = (np.mean(y**2) - 29 / 30 * v.mean()) / sigma2
        assert metrics.snr(repeats)[neuron] == pytest.approx(snr_expected, rel=1e-12)


def test_equal_per_image_counts_equal_the_one_count_formula():
    generator = np.random.default_rng(13)
    prediction, means = generator.normal(size=(2, 3, 50))
    noise = np.array([0.5, 2.0, 1.0])
    one_count = metrics.noise_corrected_r2_from_summary(prediction, means, noise, 6)
    np.testing.assert_allclose(metrics.noise_corrected_r2_from_summary(prediction, means, noise, np.full((1, 50), 6)),
                               one_count, rtol=1e-12)
    np.testing.assert_allclose(metrics.noise_corrected_r2_from_summary(prediction, means, noise, np.full((3, 50), 6.0)),
                               one_count, rtol=1e-12)
    np.testing.assert_allclose(metrics.snr_from_summary(means, noise, np.full((1, 50), 6)),
                               metrics.snr_from_summary(means, noise, 6), rtol=1e-12)


# Issue 16: each of these used to give NaN, -inf or numpy's own message.
@pytest.mark.parametrize("call, message", [
    (lambda: metrics.pearson_r(np.array([[1.0, np.nan, 3.0, 4.0]]), np.ones((1, 4))),
     "predictions must be finite; 1 value\\(s\\) are not, the first at neuron 0, image 1"),
    (lambda: metrics.noise_corrected_r2(np.array([[1.0, 2.0, np.nan]]), np.ones((1, 3, 2))), "predictions must be finite"),
    (lambda: metrics.noise_corrected_r2_from_summary(np.ones((1, 4)), [[1.0, np.inf, 0.0, 2.0]], 1.0, 2),
     "means must be finite"),
    (lambda: metrics.noise_corrected_r2(np.arange(8.0).reshape(2, 4), np.ones((2, 4, 1))),
     "at least one image with 2 or more repeats"),
    (lambda: metrics.snr(np.ones((1, 4, 1))), "at least one image with 2 or more repeats"),
    (lambda: metrics.noise_corrected_r2_from_summary(np.ones((3, 5)), np.ones((3, 5)), [1.0, 2.0], 4),
     "noise_variance must be a scalar or one value per neuron \\(3,\\)"),
    (lambda: metrics.noise_corrected_r2_from_summary(np.ones((2, 5)), np.ones((2, 5)), [1.0, -0.5], 4),
     "noise_variance must be finite and non-negative"),
    (lambda: metrics.snr_from_summary(np.ones((2, 5)), 1.0, 0), "num_repeats must be finite and at least 1"),
    (lambda: metrics.snr_from_summary(np.ones((2, 5)), 1.0, [3, 4, 5]), "one value per neuron must have shape \\(2,\\)"),
    (lambda: metrics.noise_corrected_r2_from_summary(np.ones((2, 5)), np.ones((2, 5)), 1.0, np.ones((2, 4))),
     "per-image num_repeats must be"),
    (lambda: metrics.split_half_reliability(np.ones((1, 5, 4)), num_splits=0), "num_splits must be a positive integer"),
    (lambda: metrics.split_half_reliability(np.ones((1, 5, 4)), num_splits=2.5), "num_splits must be a positive integer"),
    (lambda: metrics.noise_corrected_r2(np.ones((1, 4)), np.full((1, 4, 2), np.inf)), "repeats must be finite"),
])
def test_bad_values_raise_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_nan_is_returned_only_where_the_score_is_undefined():
    means = np.random.default_rng(14).normal(size=(2, 20))
    constant = np.ones((2, 20))
    assert np.all(np.isnan(metrics.pearson_r(constant, means)))
    assert np.all(np.isnan(metrics.noise_corrected_r2_from_summary(constant, means, 1.0, 5)))
    assert np.all(np.isposinf(metrics.snr_from_summary(means, 0.0, 5)))  # no trial noise: infinite SNR

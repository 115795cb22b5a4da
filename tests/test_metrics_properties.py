"""Property-based tests (hypothesis) of classes.scoring.metrics: shapes, NaN padding, invariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from classes.scoring import metrics

VALUES = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)
SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def summaries(draw, max_neurons=4, max_images=25):
    """``(predictions, means, noise_variance (N,), counts (1, M))`` with non-constant rows."""
    num_neurons = draw(st.integers(1, max_neurons))
    num_images = draw(st.integers(3, max_images))
    # A fixed pattern under the drawn values keeps rows from being constant, so few draws are rejected.
    pattern = np.linspace(-1.0, 1.0, num_images)
    predictions = draw(arrays(np.float64, (num_neurons, num_images), elements=VALUES)) + 3 * pattern
    means = draw(arrays(np.float64, (num_neurons, num_images), elements=VALUES)) + 3 * np.cos(4 * pattern)
    for row in (*predictions, *means):
        assume(np.std(row) > 0.1)
    noise = draw(arrays(np.float64, (num_neurons,), elements=st.floats(0, 5, width=64)))
    counts = draw(arrays(np.int64, (1, num_images), elements=st.integers(1, 20)))
    return predictions, means, noise, counts


@st.composite
def raw_repeats(draw):
    """Raw repeats ``(N, M, R)`` of small integer counts, NaN-padded, >= 2 repeats per image."""
    num_neurons, num_images, max_repeats = draw(st.integers(1, 3)), draw(st.integers(3, 15)), draw(st.integers(2, 6))
    values = draw(arrays(np.float64, (num_neurons, num_images, max_repeats), elements=st.integers(0, 9).map(float)))
    values += np.arange(num_images)[None, :, None] % 4 + np.arange(max_repeats) % 2
    counts = draw(arrays(np.int64, (num_images,), elements=st.integers(2, max_repeats)))
    padded = np.where(np.arange(max_repeats)[None, None, :] < counts[None, :, None], values, np.nan)
    means = np.nanmean(padded, axis=2)
    assume(np.all(np.std(means, axis=1) > 0.1))
    assume(np.all(np.nanmean(np.nanvar(padded, axis=2, ddof=1), axis=1) > 0.05))
    return padded


def _close(first, second, rtol=1e-7):
    first, second = np.asarray(first), np.asarray(second)
    finite = np.isfinite(first) & np.isfinite(second)
    assert np.array_equal(np.isfinite(first), np.isfinite(second))
    np.testing.assert_allclose(first[finite], second[finite], rtol=rtol, atol=1e-9 * (1 + np.abs(second[finite]).max(initial=0)))


@SETTINGS
@given(summaries())
def test_every_score_has_one_value_per_neuron(data):
    predictions, means, noise, counts = data
    num_neurons = len(predictions)
    for scores in (metrics.pearson_r(predictions, means), metrics.raw_r2(predictions, means),
                   metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts),
                   metrics.snr_from_summary(means, noise + 0.1, counts)):
        assert scores.shape == (num_neurons,)
    single = metrics.noise_corrected_r2_from_summary(predictions[0], means[0], noise[0], counts)
    assert single.shape == (1,)
    _close(single, metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts)[:1])


@SETTINGS
@given(summaries(), st.floats(0.1, 10), st.booleans(), st.floats(-100, 100))
def test_noise_corrected_r2_is_invariant_to_affine_transforms_of_the_prediction(data, scale, flip, shift):
    predictions, means, noise, counts = data
    transformed = (-scale if flip else scale) * predictions + shift
    _close(metrics.noise_corrected_r2_from_summary(transformed, means, noise, counts),
           metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts), rtol=1e-6)
    _close(metrics.raw_r2(transformed, means), metrics.raw_r2(predictions, means), rtol=1e-6)
    _close(metrics.pearson_r(transformed, means), (-1 if flip else 1) * metrics.pearson_r(predictions, means), rtol=1e-6)


@SETTINGS
@given(summaries(), st.floats(0.1, 10), st.floats(-100, 100))
def test_noise_corrected_r2_and_snr_do_not_depend_on_the_response_units(data, scale, shift):
    predictions, means, noise, counts = data
    # Responses in other units: means scaled and shifted, trial variance scaled by the square.
    _close(metrics.noise_corrected_r2_from_summary(predictions, scale * means + shift, scale**2 * noise, counts),
           metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts), rtol=1e-6)
    _close(metrics.snr_from_summary(scale * means + shift, scale**2 * (noise + 0.1), counts),
           metrics.snr_from_summary(means, noise + 0.1, counts), rtol=1e-6)


@SETTINGS
@given(summaries())
def test_pearson_and_raw_r2_are_symmetric(data):
    predictions, means, _, _ = data
    _close(metrics.pearson_r(predictions, means), metrics.pearson_r(means, predictions), rtol=1e-12)
    _close(metrics.raw_r2(predictions, means), metrics.raw_r2(means, predictions), rtol=1e-12)
    assert np.all(np.abs(metrics.pearson_r(predictions, means)) <= 1 + 1e-12)


@SETTINGS
@given(summaries(), st.integers(1, 20))
def test_equal_counts_estimator_equals_the_general_one(data, count):
    predictions, means, noise, counts = data
    per_image = np.full(counts.shape, count)
    _close(metrics.noise_corrected_r2_from_summary(predictions, means, noise, per_image),
           metrics.noise_corrected_r2_from_summary(predictions, means, noise, count), rtol=1e-9)
    _close(metrics.noise_corrected_r2_from_summary(predictions, means, noise, np.full(len(noise), count)),
           metrics.noise_corrected_r2_from_summary(predictions, means, noise, count), rtol=1e-9)
    _close(metrics.snr_from_summary(means, noise + 0.1, per_image), metrics.snr_from_summary(means, noise + 0.1, count),
           rtol=1e-9)


@SETTINGS
@given(summaries())
def test_without_noise_the_corrected_r2_is_the_raw_r2(data):
    predictions, means, noise, counts = data
    _close(metrics.noise_corrected_r2_from_summary(predictions, means, np.zeros_like(noise), counts),
           metrics.raw_r2(predictions, means), rtol=1e-9)


@SETTINGS
@given(summaries(), st.randoms(use_true_random=False))
def test_scores_follow_a_reordering_of_neurons_and_images(data, random):
    predictions, means, noise, counts = data
    neurons = np.array(random.sample(range(len(noise)), len(noise)))
    images = np.array(random.sample(range(counts.shape[1]), counts.shape[1]))
    reference = metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts)
    reordered = metrics.noise_corrected_r2_from_summary(predictions[neurons][:, images], means[neurons][:, images],
                                                        noise[neurons], counts[:, images])
    _close(reordered, reference[neurons], rtol=1e-9)


@SETTINGS
@given(raw_repeats(), st.integers(1, 4))
def test_nan_padding_of_the_repeats_changes_nothing(repeats, extra):
    padded = np.concatenate([repeats, np.full(repeats.shape[:2] + (extra,), np.nan)], axis=2)
    predictions = np.arange(repeats.shape[1], dtype=float)[None].repeat(len(repeats), axis=0) ** 1.5
    for first, second in zip(metrics.repeat_statistics(padded), metrics.repeat_statistics(repeats), strict=True):
        _close(first, second, rtol=1e-12)
    np.testing.assert_array_equal(metrics.count_repeats(padded), metrics.count_repeats(repeats))
    _close(metrics.noise_corrected_r2(predictions, padded), metrics.noise_corrected_r2(predictions, repeats), rtol=1e-12)
    _close(metrics.snr(padded), metrics.snr(repeats), rtol=1e-12)


@SETTINGS
@given(raw_repeats())
def test_raw_repeat_scores_equal_the_summary_scores_with_per_image_counts(repeats):
    predictions = np.sin(np.arange(repeats.shape[1], dtype=float))[None].repeat(len(repeats), axis=0)
    means, noise, _ = metrics.repeat_statistics(repeats)
    counts = metrics.count_repeats(repeats)
    assert counts.shape == repeats.shape[:2] and np.all(counts >= 2)
    _close(metrics.noise_corrected_r2(predictions, repeats),
           metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts), rtol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@given(summaries(max_neurons=3, max_images=10), st.data())
@settings(max_examples=20, deadline=None)
def test_a_single_non_finite_prediction_is_refused(bad, data, draw):
    predictions, means, noise, counts = data
    neuron = draw.draw(st.integers(0, len(predictions) - 1))
    image = draw.draw(st.integers(0, predictions.shape[1] - 1))
    predictions = predictions.copy()
    predictions[neuron, image] = bad
    with pytest.raises(ValueError, match=f"first at neuron {neuron}, image {image}"):
        metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts)
    with pytest.raises(ValueError, match="predictions must be finite"):
        metrics.pearson_r(predictions, means)

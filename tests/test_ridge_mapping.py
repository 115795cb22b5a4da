"""Ridge mapping: closed form, cross-validation against a naive reference, no leakage."""

import numpy as np
import pytest

from classes.scoring import metrics
from classes.scoring.ridge_mapping import (
    RidgeMapping,
    cross_validated_noise_corrected_r2,
    cross_validated_predictions,
    fit_ridge,
    gram_matrix,
    kfold_indices,
    select_penalties,
)


def closed_form(features, responses, penalty):
    """(X'X + penalty I)^-1 X'y on centred data, and the intercept."""
    x = features - features.mean(0)
    y = (responses - responses.mean(1, keepdims=True)).T
    weights = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ y)
    return weights, responses.mean(1) - features.mean(0) @ weights


@pytest.mark.parametrize("num_images, num_features", [(40, 120), (150, 30)])
def test_fit_ridge_equals_the_closed_form(num_images, num_features):
    generator = np.random.default_rng(num_features)
    features = generator.standard_normal((num_images, num_features)) + 2.0
    responses = generator.standard_normal((3, num_images)) + 5.0
    coefficients, intercepts = fit_ridge(features, responses, 7.5)
    reference, reference_intercepts = closed_form(features, responses, 7.5)
    np.testing.assert_allclose(coefficients, reference, atol=1e-10)
    np.testing.assert_allclose(intercepts, reference_intercepts, atol=1e-10)


def test_fit_ridge_uses_each_neurons_own_penalty():
    generator = np.random.default_rng(0)
    features = generator.standard_normal((50, 4, 5))  # flattened inside
    responses = generator.standard_normal((2, 50))
    coefficients, _ = fit_ridge(features, responses, [0.5, 80.0])
    flat = features.reshape(50, -1)
    for neuron, penalty in enumerate([0.5, 80.0]):
        reference, _ = closed_form(flat, responses[neuron : neuron + 1], penalty)
        np.testing.assert_allclose(coefficients[:, neuron], reference[:, 0], atol=1e-10)


def test_penalty_scores_equal_a_naive_refit_per_fold():
    generator = np.random.default_rng(3)
    features = generator.standard_normal((60, 25))
    responses = features @ generator.standard_normal((25, 2)) + generator.standard_normal((60, 2))
    responses = responses.T
    relative = np.array([0.01, 1.0, 100.0])
    candidates, correlations = select_penalties(gram_matrix(features), responses, relative, 4, seed=5)
    out_of_fold = np.zeros((3,) + responses.shape)
    for test in kfold_indices(60, 4, seed=5):
        train = np.setdiff1d(np.arange(60), test)
        for index, penalty in enumerate(candidates):
            weights, intercept = closed_form(features[train], responses[:, train], penalty)
            out_of_fold[index][:, test] = (features[test] @ weights + intercept).T
    reference = np.stack([metrics.pearson_r(prediction, responses) for prediction in out_of_fold])
    np.testing.assert_allclose(correlations, reference, atol=1e-10)
    # The grid is relative to the mean eigenvalue of the centred Gram matrix.
    centred = features - features.mean(0)
    np.testing.assert_allclose(candidates, relative * np.sum(centred**2) / 60)


def test_noisier_neurons_get_larger_penalties_and_prediction_matches_fit_ridge():
    generator = np.random.default_rng(1)
    features = generator.standard_normal((120, 300))
    signal = features @ (generator.standard_normal(300) / np.sqrt(300))
    responses = np.stack([signal, signal + 3 * generator.standard_normal(120)])
    mapping = RidgeMapping().fit(features, responses)
    assert mapping.penalties[0] == mapping.candidate_penalties[0]
    assert mapping.penalties[1] > 10 * mapping.penalties[0]
    coefficients, intercepts = fit_ridge(features, responses, mapping.penalties)
    new = generator.standard_normal((7, 300))
    np.testing.assert_allclose(mapping.predict(new), (new @ coefficients + intercepts).T, atol=1e-9)


def test_cross_validated_predictions_never_see_their_own_images():
    generator = np.random.default_rng(2)
    features = generator.standard_normal((50, 20))
    responses = generator.standard_normal((3, 50))
    predictions = cross_validated_predictions(features, responses, num_folds=5, seed=0)
    test = kfold_indices(50, 5, seed=0)[2]
    changed = responses.copy()
    changed[:, test] += 100.0 * generator.standard_normal((3, len(test)))
    again = cross_validated_predictions(features, changed, num_folds=5, seed=0)
    np.testing.assert_allclose(again[:, test], predictions[:, test], atol=1e-9)
    assert not np.allclose(np.delete(again, test, 1), np.delete(predictions, test, 1))


def test_cross_validated_r2_is_high_for_a_linear_neuron_and_low_for_noise():
    generator = np.random.default_rng(4)
    features = generator.standard_normal((200, 10))
    rate = np.exp(0.4 * features @ generator.standard_normal(10) / np.sqrt(10) + 1.5)
    repeats = generator.poisson(rate[None, :, None], size=(1, 200, 10)).astype(float)
    noise = generator.poisson(4.0, size=(1, 200, 10)).astype(float)
    means = np.concatenate([repeats, noise]).mean(2)
    r2 = cross_validated_noise_corrected_r2(features, means, metrics.poisson_noise_variance(means), 10)
    assert r2[0] > 0.7 and r2[1] < 0.2


@pytest.mark.parametrize("call, message", [
    (lambda: fit_ridge(np.zeros((10, 3)), np.zeros((2, 9)), 1.0), "to match the features"),
    (lambda: fit_ridge(np.full((10, 3), np.nan), np.zeros((2, 10)), 1.0), "NaN"),
    (lambda: fit_ridge(np.zeros((10, 3)), np.zeros((2, 10)), 0.0), "positive"),
    (lambda: RidgeMapping(num_folds=5).fit(np.zeros((8, 3)), np.zeros((1, 8))), "too few"),
    (lambda: RidgeMapping().predict(np.zeros((8, 3))), "Call fit"),
])
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()

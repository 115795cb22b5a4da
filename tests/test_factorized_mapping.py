"""Factorized (spatial x mixing) mapping: recovery of a planted rank-one readout."""

import numpy as np
import pytest

from classes.scoring.factorized_mapping import (
    FactorizedMapping,
    Regularization,
    cross_validated_predictions,
)

HEIGHT, WIDTH, CHANNELS = 8, 8, 12
CENTRES = [(2, 2), (5, 4), (3, 6)]


@pytest.fixture(scope="module")
def planted():
    """Three neurons, each a Gaussian spatial blob times a random channel mix, plus noise."""
    generator = np.random.default_rng(0)
    features = generator.standard_normal((500, HEIGHT, WIDTH, CHANNELS)).astype(np.float32)
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    spatial = np.stack([np.exp(-((rows - a) ** 2 + (columns - b) ** 2) / 2.0) for a, b in CENTRES])
    mixing = generator.standard_normal((3, CHANNELS))
    signal = np.einsum("mhwc,nhw,nc->nm", features, spatial, mixing)
    noise = 0.5 * signal.std(1, keepdims=True) * generator.standard_normal(signal.shape)
    responses = 3.0 * (signal + noise) + 10.0
    return features, responses, signal, spatial, mixing


def absolute_correlation(first, second):
    return abs(np.corrcoef(np.ravel(first), np.ravel(second))[0, 1])


def test_recovers_a_planted_rank_one_mapping(planted):
    features, responses, signal, spatial, mixing = planted
    mapping = FactorizedMapping(grid=[Regularization(1e-3, 1e-2, 1e-3)], num_steps=200)
    mapping.fit(features[:400], responses[:, :400])
    predictions = mapping.predict(features[400:])
    for neuron in range(3):
        assert absolute_correlation(mapping.spatial[neuron], spatial[neuron]) > 0.95
        assert absolute_correlation(mapping.mixing[neuron], mixing[neuron]) > 0.97
        assert np.corrcoef(predictions[neuron], signal[neuron, 400:])[0, 1] > 0.95
    # Predictions come back in the responses' units, not z-scored ones.
    assert abs(predictions.mean() - responses[:, 400:].mean()) < 1.0


def test_cross_validation_rejects_a_crippling_regulariser(planted):
    features, responses, _, _, _ = planted
    crippling = Regularization(spatial_l1=50.0, laplacian=50.0, mixing_l2=50.0)
    mapping = FactorizedMapping(grid=[crippling, Regularization(1e-3, 1e-2, 1e-3)],
                                num_folds=3, num_steps=100)
    mapping.fit(features[:300], responses[:, :300])
    assert mapping.cv_correlations.shape == (2, 3)
    assert np.all(mapping.chosen == 1)
    assert np.all(mapping.cv_correlations[1] > mapping.cv_correlations[0] + 0.3)


def test_stronger_l1_gives_a_sparser_mask(planted):
    features, responses, _, _, _ = planted
    masks = {}  # 12 = the number of locations inside each blob's 1-sigma disc, roughly
    for strength in (1e-4, 0.3):
        mapping = FactorizedMapping(grid=[Regularization(strength, 0.0, 1e-3)], num_steps=150)
        masks[strength] = np.abs(mapping.fit(features[:300], responses[:1, :300]).spatial[0])
    def share_outside_receptive_field(mask):
        return np.sort(mask.ravel())[:-12].sum() / mask.sum()
    assert share_outside_receptive_field(masks[0.3]) < 0.5 * share_outside_receptive_field(masks[1e-4])


def test_cross_validated_predictions_cover_every_image(planted):
    features, responses, signal, _, _ = planted
    predictions = cross_validated_predictions(
        features[:300], responses[:1, :300], num_folds=3,
        grid=[Regularization(1e-3, 1e-2, 1e-3)], num_steps=150,
    )
    assert predictions.shape == (1, 300) and np.all(np.isfinite(predictions))
    assert np.corrcoef(predictions[0], signal[0, :300])[0, 1] > 0.85


@pytest.mark.parametrize("call, message", [
    (lambda: FactorizedMapping().fit(np.zeros((20, 5)), np.zeros((1, 20))), "feature maps"),
    (lambda: FactorizedMapping().predict(np.zeros((2, 3, 3, 2))), "Call fit"),
    (lambda: FactorizedMapping(grid=[]), "non-empty"),
    (lambda: Regularization(-1.0, 0.0, 0.0), "non-negative"),
    (lambda: FactorizedMapping(num_steps=0), "num_steps"),
])
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_predict_checks_the_map_shape(planted):
    features, responses, _, _, _ = planted
    mapping = FactorizedMapping(grid=[Regularization(1e-3, 1e-2, 1e-3)], num_steps=2)
    mapping.fit(features[:64], responses[:, :64])
    with pytest.raises(ValueError, match="was fit on"):
        mapping.predict(features[:4, :4])

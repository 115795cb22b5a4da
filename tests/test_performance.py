"""Scoring against the real release: sizes, the Poisson check, session scores."""

import re

import numpy as np
import pytest

from classes.compact.architecture import all_model_ids, load_nums_filters, model_file
from classes.compact.model_size import compact_parameter_count, ensemble_parameter_count
from classes.data.repeat_counts import repeat_counts
from classes.data.responses import load_held_out, load_raw
from classes.ensemble.predictions import load_ensemble_predictions
from classes.scoring import metrics
from classes.scoring.noise_model import calibrated_fano_factor
from classes.scoring.performance import (
    noise_corrected_r2_held_out,
    poisson_approximation_check,
    score_session,
)


def test_parameter_formula_equals_every_released_summary(data_root):
    models = all_model_ids()
    assert len(models) == 219
    for identifier in models:
        text = model_file(identifier, "summary", data_root).read_text(encoding="utf-8")
        total = int(re.search(r"Total params:\s*([\d,]+)", text).group(1).replace(",", ""))
        assert compact_parameter_count(load_nums_filters(identifier, data_root)) == total, identifier


def test_ensemble_parameter_count_from_summary(data_root):
    counts = ensemble_parameter_count(data_root)
    assert counts["resnet50_stage"] == 6_345_600
    assert counts["member"] == 2_252_248 + 5_120
    assert counts["member_summary_total"] == 4_509_618
    assert counts["ensemble"] == 6_345_600 + 25 * 2_257_368


def test_poisson_check_uses_exact_noise_from_raw_repeats(data_root):
    check = poisson_approximation_check("210325", data_root)
    raw = load_raw("210325", data_root)
    neuron = 7
    counts = np.sum(~np.isnan(raw[neuron]), axis=1)
    direct = np.mean([np.var(raw[neuron, image, : counts[image]], ddof=1) for image in range(raw.shape[1])])
    assert check["noise_variance_exact"][neuron] == pytest.approx(direct)
    assert check["noise_variance_poisson"][neuron] == pytest.approx(np.nanmean(raw[neuron], axis=1).mean())
    assert 0.5 < check["median_fano_factor"] < 1.5
    assert check["snr_correlation"] > 0.8
    assert check["median_abs_r2_difference"] < 0.1


def test_score_session_matches_metrics_directly(data_root):
    _, means, _ = load_held_out("190923", data_root)
    predictions = means[[2, 5]] + np.random.default_rng(0).normal(size=(2, means.shape[1]))
    scores = score_session(predictions, "190923", neurons=[2, 5], data_root=data_root)
    assert np.allclose(scores["pearson_r"], metrics.pearson_r(predictions, means[[2, 5]]))
    expected = metrics.noise_corrected_r2_from_summary(
        predictions, means[[2, 5]], means[[2, 5]].mean(axis=1), 14)
    assert np.allclose(scores["noise_corrected_r2_poisson"], expected)
    assert np.all(np.isnan(scores["noise_corrected_r2_exact"]))
    assert "responses_190923.npy" in scores["exact_note"]
    # The reported estimator: sigma2 = F x mean count, each held-out image with its recovered count.
    fano, counts = calibrated_fano_factor(data_root), repeat_counts("190923", data_root)[600:]
    x = predictions - predictions.mean(axis=1, keepdims=True)
    for row, neuron in enumerate([2, 5]):
        y = means[neuron] - means[neuron].mean()
        v = fano * means[neuron].mean() / counts
        direct = ((x[row] @ y) ** 2 - np.sum(x[row] ** 2 * v)) / ((x[row] @ x[row]) * (y @ y - 599 / 600 * v.sum()))
        assert scores["noise_corrected_r2"][row] == pytest.approx(direct, rel=1e-10)
    np.testing.assert_array_equal(noise_corrected_r2_held_out(predictions, "190923", [2, 5], data_root),
                                  scores["noise_corrected_r2"])


def test_score_session_rejects_wrong_shape(data_root):
    with pytest.raises(ValueError, match="must be"):
        score_session(np.zeros((33, 599)), "190923", data_root=data_root)


def test_ensemble_predictions_checked(tmp_path, data_root):
    with pytest.raises(FileNotFoundError, match="ensemble_predictions_190923.npy"):
        load_ensemble_predictions(tmp_path, "190923")
    np.save(tmp_path / "ensemble_predictions_190923.npy", np.zeros((33, 10)))
    with pytest.raises(ValueError, match="shape"):
        load_ensemble_predictions(tmp_path, "190923")
    full = np.arange(33 * 1200, dtype=float).reshape(33, 1200)
    np.save(tmp_path / "ensemble_predictions_190923.npy", full)
    assert np.array_equal(load_ensemble_predictions(tmp_path, "190923"), full[:, 600:])

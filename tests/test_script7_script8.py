"""Dot analysis (ablation, invariance) and quick runs of script7 and script8."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classes.analysis.dot_analysis import (
    ResponseFunction,
    build_probe_set,
    compare_to_intact,
    dot_selectivity_index,
    filters_ablated,
    invariance_index,
)
from classes.analysis.dot_stimuli import GRAY, grid_centers, single_dot_images


def test_invariance_index_known_values():
    intact = [1.0, 5.0, 3.0]  # range 4
    assert invariance_index([2.0, 2.0, 2.0], intact) == pytest.approx(1.0)  # flat after ablation
    assert invariance_index([0.0, 4.0, 2.0], intact) == pytest.approx(0.0)  # same range, shifted
    assert invariance_index([1.0, 3.0, 2.0], intact) == pytest.approx(0.5)
    assert invariance_index([0.0, 8.0, 1.0], intact) == pytest.approx(-1.0)  # size matters more
    assert invariance_index([1.0, np.nan, 2.0], intact) == pytest.approx(0.75)  # NaN entries ignored
    assert np.isnan(invariance_index([1.0, 2.0], [3.0, 3.0]))


def test_dot_selectivity_known_values():
    natural = [0.0, 1.0, 2.0]
    assert dot_selectivity_index([3.0, 0.5], natural) == pytest.approx(2.0)
    assert dot_selectivity_index([2.0], natural) == pytest.approx(1.0)
    assert np.isnan(dot_selectivity_index([2.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match="at least one dot response"):
        dot_selectivity_index([], natural)


def test_probe_set_layout_and_evaluation():
    candidates = grid_centers(28)[10:16, 10:16].reshape(-1, 2)
    probe = build_probe_set([1, 3], [[50, 50], [54, 54]], [1, 2], 2.0, candidates, num_draws=3, dot_value=0, seed=0)
    # blank, 2 radii x 2 places (radius-major), 2 numbers x 3 draws (number-major)
    assert probe.images.shape == (1 + 2 * 2 + 2 * 3, 112, 112, 3) and probe.images.dtype == np.uint8
    np.testing.assert_array_equal(probe.radii, [1.0, 3.0])
    np.testing.assert_array_equal(probe.numbers, [1, 2])
    assert (probe.num_centers, probe.num_draws, probe.number_valid.shape) == (2, 3, (2, 3))
    assert probe.number_valid.all()
    dark = (probe.images[..., 0] == 0).sum(axis=(1, 2))
    # Pixels within r of an integer centre: 5 for r = 1, 29 for r = 3; within 2 of a
    # half-integer grid centre: 12 per dot (the dots never touch).
    np.testing.assert_array_equal(dark, [0, 5, 5, 29, 29, 12, 12, 12, 24, 24, 24])
    assert np.all(probe.images[0] == GRAY)
    assert probe.images[1][50, 50, 0] == 0 and probe.images[2][54, 54, 0] == 0
    assert [len(centers) for centers in probe.number_centers] == [1, 1, 1, 2, 2, 2]
    for centers in probe.number_centers:
        assert all(any(np.allclose(center, candidate) for candidate in candidates) for center in centers)
    # blank, radius 1 at two places, radius 3 at two places, 3 draws of 1 dot, 3 draws of 2 dots
    responses = np.array([1.0, 2.0, 4.0, 5.0, 7.0, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0])
    result = probe.evaluate(responses)
    np.testing.assert_allclose(result["size_tuning"], [3.0, 6.0])
    np.testing.assert_allclose(result["number_tuning"], [5.0, 2.0])
    assert result["baseline"] == 1.0 and result["mean_drive"] == pytest.approx(3.5)
    flattened = probe.evaluate(np.array([1.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0]))
    compared = compare_to_intact(flattened, result)
    assert compared["size_invariance"] == pytest.approx(1.0)
    assert compared["number_invariance"] == pytest.approx(1 - 1 / 3)
    assert compared["retained_drive"] == pytest.approx(2.0 / 3.5)
    with pytest.raises(ValueError, match="Expected 11 responses"):
        probe.evaluate(responses[:-1])


@pytest.fixture(scope="module")
def dot_model(data_root):
    from classes.compact.architecture import all_model_ids
    from classes.compact.model import load_compact_model

    identifier = all_model_ids()[100]
    return load_compact_model(identifier.session_id, identifier.neuron, "npy", data_root=data_root)


@pytest.mark.parametrize("layer, filters", [(0, [0, 3]), (3, [0])])
def test_ablation_equals_zeroing_keras_weights(dot_model, layer, filters):
    """In-place ablation = the library's ablate_filters = zeroing the weights by hand."""
    from classes.compact.model import build_compact_model
    from classes.compact.tools import ablate_filters, nums_filters_of, predict_responses
    from classes.data.preprocessing import recenter_images

    raw = single_dot_images(grid_centers(4).reshape(-1, 2)[:6], 3.0)
    images = recenter_images(raw)
    response_function = ResponseFunction(dot_model, batch_size=4)
    intact = response_function(raw)

    weights = dot_model.get_weights()
    index = 0 if layer == 0 else 6 + 7 * (layer - 1) + 1  # conv kernel or pointwise kernel
    weights[index][..., filters] = 0.0
    by_hand = build_compact_model(nums_filters_of(dot_model))
    by_hand.set_weights(weights)
    expected = predict_responses(by_hand, images)

    with filters_ablated(dot_model, layer, filters):
        ablated = response_function(raw)
    np.testing.assert_allclose(ablated, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predict_responses(ablate_filters(dot_model, layer, filters), images),
                               expected, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(ablated - intact)) > 1e-4
    np.testing.assert_allclose(response_function(raw), intact, rtol=1e-6, atol=1e-6)


def test_cumulative_ablation_of_a_whole_layer_flattens_tuning(dot_model):
    from classes.analysis.dot_analysis import cumulative_ablation, num_filters

    probe = build_probe_set([1, 4, 10], [[56, 56]], [1, 2], 3.0, grid_centers(28)[8:20, 8:20].reshape(-1, 2),
                            num_draws=1, dot_value=0, seed=0)
    response_function = ResponseFunction(dot_model)
    count = num_filters(dot_model, 2)
    steps = cumulative_ablation(dot_model, response_function, probe, 2, range(count), threshold=1.0)
    assert steps[0]["ablated"] == [] and steps[0]["size_invariance"] == pytest.approx(0.0)
    assert steps[0]["retained_drive"] == pytest.approx(1.0)
    # With every filter of a layer silenced, the output no longer depends on the image.
    assert steps[-1]["ablated"] == list(range(count))
    assert steps[-1]["size_invariance"] == pytest.approx(1.0, abs=1e-6)
    assert steps[-1]["retained_drive"] == pytest.approx(0.0, abs=1e-6)


def test_synthesis_raises_the_response(dot_model):
    from classes.analysis.dot_analysis import synthesize_maximizing_image

    start = np.random.default_rng(3).uniform(128, 178, size=(1, 112, 112, 3))
    image, response = synthesize_maximizing_image(dot_model, num_steps=15, seed=3)
    assert image.dtype == np.uint8 and image.shape == (112, 112, 3)
    response_function = ResponseFunction(dot_model)
    assert response_function(image[None])[0] == pytest.approx(response, abs=0.05 * abs(response) + 0.05)
    assert response > response_function(np.round(start).astype(np.uint8))[0] + 0.1


def test_ablation_errors(dot_model):
    with pytest.raises(ValueError, match="filters"):
        with filters_ablated(dot_model, 2, [500]):
            pass
    with pytest.raises(ValueError, match="layer"):
        with filters_ablated(dot_model, 7, [0]):
            pass


@pytest.mark.slow
def test_script7_quick(tmp_path, data_root):
    import script7_filter_analysis

    summary = script7_filter_analysis.main(
        ["--quick", "--num-models", "4", "--num-images", "24", "--out", str(tmp_path), "--data-root", str(data_root)]
    )
    assert summary["num_models"] == 4 and summary["num_images"] == 24
    for stem in ("fig3a_filters_per_layer", "fig3b_kernel_similarity", "fig3c_cka", "signal_correlation"):
        assert (tmp_path / f"{stem}.png").is_file() and (tmp_path / f"{stem}.pdf").is_file()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["cka"]["num_pairs"] == 6
    assert not (tmp_path / "gram_cache").exists()
    matrices = np.load(tmp_path / "matrices.npz")
    np.testing.assert_allclose(np.diagonal(matrices["cka"], axis1=1, axis2=2), 1.0, rtol=1e-5)
    assert matrices["responses"].shape == (4, 24)
    # The reported rho^2 is the mean squared correlation of the stored responses.
    correlation = np.corrcoef(matrices["responses"].astype(np.float64))
    expected = np.mean(correlation[np.triu_indices(4, k=1)] ** 2)
    assert saved["signal_correlation"]["mean_r2"] == pytest.approx(expected, rel=1e-6)
    statuses = {row["quantity"]: row["status"] for row in summary["comparison"]}
    assert statuses["CKA model pairs per layer"] == "differs"  # 4 models, not 219


@pytest.mark.slow
def test_script8_quick(tmp_path, data_root):
    import script8_dot_detector

    summary = script8_dot_detector.main(
        ["--quick", "--num-models", "3", "--num-natural", "10", "--grid", "4", "--radii", "1,4,12",
         "--ablation-layers", "3", "--steps", "3", "--out", str(tmp_path), "--data-root", str(data_root)]
    )
    for stem in ("fig4a_maximizing_images", "fig4b_dot_tuning", "fig4c_ext5c_filter_invariance",
                 "fig4de_cumulative_ablation", "ext_fig6_dot_selective_models"):
        assert (tmp_path / f"{stem}.png").is_file()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["chosen_model"] == summary["model"]
    session, neuron = saved["chosen_model"].split("/")  # "<session>/<neuron>", as --model takes it
    assert saved["chosen_model_screen"]["session"] == session and saved["chosen_model_screen"]["neuron"] == int(neuron)
    assert len(saved["location_map"]) == 4
    candidates = saved["model_choice"]["candidates"]
    assert sum(row["studied"] for row in candidates) == 1
    assert [row["model"] for row in candidates if row["studied"]] == [saved["chosen_model"]]
    assert (tmp_path / "candidates.csv").is_file()
    assert summary["comparison"][0]["quantity"].startswith("studied model has the Fig. 4 model's published")
    steps = saved["cumulative_ablation"]["layer2"]
    assert steps[0]["ablated"] == [] and len(steps) >= 2
    screen = (tmp_path / "screen.csv").read_text().splitlines()
    assert len(screen) == 1 + 3


def test_scripts_reject_bad_input(tmp_path, capsys):
    import script7_filter_analysis
    import script8_dot_detector

    # argparse errors: exit status 2 and the reason on stderr.
    with pytest.raises(SystemExit) as exit_info:
        script7_filter_analysis.main(["--num-images", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--num-images must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        script8_dot_detector.main(["--radii", "1,x", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "expected comma-separated numbers, got '1,x'" in capsys.readouterr().err
    # Bad models are refused before the data root is looked up or --out is made.
    with pytest.raises(SystemExit, match=r"^error: --model: cannot read '190923/999' as session/neuron"):
        script8_dot_detector.main(["--quick", "--num-models", "2", "--model", "190923/999",
                                   "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match=r"^error: --model 190923/neuron1 is not among the screened models"):
        script8_dot_detector.main(["--num-models", "2", "--model", "190923/1", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match=r"^error: --num-models must be at least 2 \(script 7 compares pairs"):
        script7_filter_analysis.main(["--num-models", "1", "--out", str(tmp_path / "c")])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("script_name", ["script7_filter_analysis", "script8_dot_detector"])
@pytest.mark.parametrize("count", ["0", "-3"])
def test_num_models_must_be_positive(tmp_path, script_name, count):
    import importlib

    script = importlib.import_module(script_name)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--num-models", count, "--out", str(tmp_path / "out")])
    message = exit_info.value.code
    assert message == f"error: --num-models must be a positive number of models (1-219); got {count}."
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_screen_stimuli_and_receptive_field():
    from classes.analysis.dot_detector import receptive_field_cells, screen_stimuli

    images, labels = screen_stimuli(2, [2.0, 6.0])
    assert images.shape == (2 * 2 * 4, 112, 112, 3) and len(labels) == 16
    # polarity-major, then radius, then the 2 x 2 grid's cells (centres 27.5 and 83.5)
    assert labels[0] == ("black", 2.0, (27.5, 27.5)) and labels[5] == ("black", 6.0, (27.5, 83.5))
    assert labels[8][0] == "white" and images[8][27, 27, 0] == 255 and images[0][27, 27, 0] == 0
    np.testing.assert_array_equal((images[:4, ..., 0] == 0).sum(axis=(1, 2)), [12] * 4)
    location = np.array([[0.0, 1.0], [2.0, 4.0]])
    centers = grid_centers(2)
    cells, mask = receptive_field_cells(location, 0.0, centers)
    np.testing.assert_array_equal(mask, [[False, False], [True, True]])
    np.testing.assert_array_equal(cells, [[83.5, 27.5], [83.5, 83.5]])
    cells, mask = receptive_field_cells(location, 5.0, centers)  # nothing above the blank
    assert not mask.any() and cells.shape == (0, 2)


def test_signal_correlation_and_filters_per_layer_known_values():
    from classes.analysis.layer_comparison import filters_per_layer, signal_correlation

    signal = signal_correlation([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0]])
    # pairs (0, 1), (0, 2), (1, 2): r = 1, -1, -1
    np.testing.assert_allclose(signal["squared"], [1.0, 1.0, 1.0])
    assert signal["mean_r2"] == pytest.approx(1.0) and signal["mean_r"] == pytest.approx(-1 / 3)
    filters = filters_per_layer([[50, 40, 3, 6, 3], [60, 44, 9, 8, 3], [52, 41, 5, 10, 4]])
    np.testing.assert_array_equal(filters["medians"], [52, 41, 5, 8, 3])
    np.testing.assert_array_equal(filters["minimum"], [50, 40, 3, 6, 3])
    np.testing.assert_allclose(filters["means"], [54, 125 / 3, 17 / 3, 8, 10 / 3])


def test_normal_images_come_from_all_normal_sessions(data_root):
    from classes.data.images import load_images
    from classes.data.normal_images import load_normal_images, normal_image_pool
    from classes.data.preprocessing import recenter_images

    pool = normal_image_pool(data_root)
    assert len(pool) == 5600
    assert list(dict.fromkeys(session for session, _ in pool)) == [
        "190923", "201025", "210224", "210225", "210621"]
    images, picked = load_normal_images(3, 0, data_root)
    assert images.shape == (3, 112, 112, 3) and len(picked) == 3
    assert picked == sorted(picked, key=pool.index)
    session, number = picked[0]
    np.testing.assert_array_equal(images[0], recenter_images(load_images(session, [number], data_root=data_root))[0])
    with pytest.raises(ValueError, match="exceeds the 5600 normal images"):
        load_normal_images(5601, 0, data_root)

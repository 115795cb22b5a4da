"""End-to-end runs of script5 (shared compact models) and script6 (synthesis), kept small."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import script5_shared_compact_perf as script5
import script6_synthesize as script6


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_script5_scores_match_a_direct_computation(data_root, tmp_path):
    from classes.compact.model import load_compact_model
    from classes.compact.shared_model import load_shared_compact_model, predict_shared
    from classes.compact.tools import predict_responses
    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images
    from classes.data.responses import load_held_out
    from classes.scoring.metrics import pearson_r

    summary = script5.main([
        "--teachers", "from_ensemble_model", "--filters", "5", "--sessions", "190923,211022",
        "--neurons", "0,1", "--order-images-per-session", "20",
        "--data-root", str(data_root), "--out", str(tmp_path),
    ])
    for name in ("per_neuron.csv", "summary.csv", "order_check.csv", "summary.json",
                 "fig3de_shared_compact_performance.png", "fig3de_shared_compact_performance.pdf"):
        assert (tmp_path / name).is_file(), name
    rows = read_csv(tmp_path / "per_neuron.csv")
    assert {(row["teacher"], row["session"], row["neuron"]) for row in rows} == {
        ("individual compact models", "190923", "0"), ("individual compact models", "190923", "1"),
        ("from_ensemble_model", "190923", "0"), ("from_ensemble_model", "190923", "1")}
    assert any("211022" in note and "cannot be scored" in note for note in summary["notes"])

    _, means, numbers = load_held_out("190923", data_root)
    images = recenter_images(load_images("190923", numbers, data_root=data_root))
    compact = predict_responses(load_compact_model("190923", 1, data_root=data_root), images)
    shared = predict_shared(load_shared_compact_model("from_ensemble_model", 5, data_root), images)[:, 1]
    by_key = {(row["teacher"], row["neuron"]): row for row in rows}
    np.testing.assert_allclose(float(by_key[("individual compact models", "1")]["pearson_r"]),
                               pearson_r(compact, means[1])[0], atol=1e-4)
    np.testing.assert_allclose(float(by_key[("from_ensemble_model", "1")]["pearson_r"]),
                               pearson_r(shared, means[1])[0], atol=1e-4)
    # The noise-corrected R2 is script4's estimator (the one function every script calls).
    from classes.scoring.performance import noise_corrected_r2_held_out

    np.testing.assert_allclose(float(by_key[("from_ensemble_model", "1")]["noise_corrected_r2"]),
                               noise_corrected_r2_held_out(shared[None], "190923", [1], data_root)[0], atol=1e-3)
    order = read_csv(tmp_path / "order_check.csv")
    assert len(order) == 4  # 190923's two neurons and 211022's two
    # Each shared output correlates best with its own neuron's compact model.
    assert all(row["best_match"] == "True" for row in order)
    assert np.median([float(row["correlation"]) for row in order]) > 0.6


@pytest.mark.slow
def test_script5_takes_script4s_predictions_and_scores_them_the_same(data_root, tmp_path):
    import script4_compact_perf as script4

    common = ["--sessions", "190923", "--data-root", str(data_root)]
    script4.main([*common, "--neurons", "0,1,3", "--out", str(tmp_path / "script4_compact_perf")])
    shared = ["--teachers", "from_ensemble_model", "--filters", "5", "--order-images-per-session", "5", *common]
    reused = script5.main([*shared, "--neurons", "0,3", "--out", str(tmp_path / "script5_shared_compact_perf")])
    assert reused["compact_held_out_predictions"].startswith("taken from")
    assert reused["compact_held_out_predictions_reused"] is True
    alone = script5.main([*shared, "--neurons", "0,3", "--script4-dir", str(tmp_path / "none"),
                          "--out", str(tmp_path / "alone")])
    assert alone["compact_held_out_predictions"].startswith("predicted here (no held_out_predictions.npz")
    assert alone["compact_held_out_predictions_reused"] is False
    rows = [read_csv(tmp_path / folder / "per_neuron.csv") for folder in ("script5_shared_compact_perf", "alone")]
    assert len(rows[0]) == len(rows[1]) == 4
    for taken, predicted in zip(*rows, strict=True):
        assert (taken["teacher"], taken["neuron"]) == (predicted["teacher"], predicted["neuron"])
        np.testing.assert_allclose(float(taken["pearson_r"]), float(predicted["pearson_r"]), atol=1e-6)
        np.testing.assert_allclose(float(taken["noise_corrected_r2"]), float(predicted["noise_corrected_r2"]),
                                   atol=1e-6)
    # A neuron script4 did not predict: script5 predicts them all itself.
    more = script5.main([*shared, "--neurons", "0,2", "--out", str(tmp_path / "script5_shared_compact_perf")])
    assert "lacks session 190923's neurons [2]" in more["compact_held_out_predictions"]


def test_script5_rejects_bad_choices(tmp_path):
    with pytest.raises(SystemExit, match="from_ensemble_model"):
        script5.main(["--teachers", "from_alexnet", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="200"):
        script5.main(["--filters", "7", "--out", str(tmp_path)])


def test_order_check_finds_a_permutation():
    from classes.scoring.shared_performance import order_check

    generator = np.random.default_rng(0)
    compact = generator.normal(size=(50, 4))
    shared = compact[:, [0, 2, 1, 3]] + 0.1 * generator.normal(size=(50, 4))
    result = order_check(shared, compact)
    np.testing.assert_array_equal(result["matched"], [True, False, False, True])
    assert result["matched_fraction"] == 0.5
    in_order = order_check(compact + 0.1 * generator.normal(size=(50, 4)), compact)
    assert in_order["matched_fraction"] == 1.0 and in_order["min_correlation"] > 0.9


@pytest.mark.slow
def test_script6_default_run_writes_images_figures_and_changes(data_root, tmp_path):
    from classes.analysis.causal_images import predict_raw
    from classes.compact.model import load_compact_model

    record = script6.main([
        "--session", "201025", "--neuron", "27", "--steps", "20", "--num-images", "2", "--num-minimizing", "1",
        "--pool-size", "200", "--num-base-images", "2", "--num-smooth-images", "1", "--smooth-patches", "2",
        "--saliency-stride", "28", "--max-pixel-change", "6",
        "--data-root", str(data_root), "--out", str(tmp_path),
    ])
    stem = "compact_model_201025_neuron27"
    for name in (f"fig2a_synthesized_{stem}.png", f"top_images_{stem}.pdf", f"adversarial_{stem}.png",
                 f"saliency_{stem}.png", f"smooth_minus_{stem}.png", f"percent_changes_{stem}.png",
                 f"synthesized_minimizing_{stem}.png", "summary.json"):
        assert (tmp_path / name).is_file(), name
    images = np.load(tmp_path / f"synthesized_maximizing_{stem}.npy")
    assert images.shape == (2, 112, 112, 3) and images.dtype == np.uint8
    model = load_compact_model("201025", 27, data_root=data_root)
    np.testing.assert_allclose(record["synthesized_maximizing_responses"], predict_raw(model, images), rtol=1e-5)
    assert np.min(record["synthesized_maximizing_responses"]) > record["pool"]["normal_max"]
    for direction in ("increase", "decrease"):
        assert np.max(record["adversarial"][direction]["max_pixel_change"]) <= 6.0 + 1e-3
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["calibration"]["slope"] > 0
    assert saved["percent_changes"]["maximizing_synthesized"]["calibrated"]["mean"] > 0
    assert saved["percent_changes"]["adversarial_decrease"]["calibrated"]["mean"] < 0


@pytest.mark.slow
def test_script6_all_is_resumable(data_root, tmp_path, capsys):
    arguments = ["--all", "--models", "190923/2,211022/1", "--steps", "5", "--pool-size", "40",
                 "--data-root", str(data_root), "--out", str(tmp_path)]
    record = script6.main(arguments)
    for stem in ("compact_model_190923_neuron2", "compact_model_211022_neuron1"):
        assert np.load(tmp_path / "all" / f"{stem}.npy").shape == (1, 112, 112, 3)
        assert json.loads((tmp_path / "all" / f"{stem}.json").read_text())["steps"] == 5
    assert record["across_models"]["num_models"] == 2
    assert record["across_models"]["maximizing_synthesized"]["calibrated"]["n"] == 1  # 211022 uncalibrated
    assert (tmp_path / "ext_data_fig3_sheet.png").is_file()
    from classes.compact.model import load_compact_model
    from classes.data.preprocessing import recenter_images

    # The minimizing image of each model, for the explorer: its recorded response is the Keras model's.
    minimizing = tmp_path / "all" / "compact_model_190923_neuron2_minimize.npy"
    image = np.load(minimizing)
    saved = json.loads(minimizing.with_suffix(".json").read_text())
    assert image.shape == (112, 112, 3) and image.dtype == np.uint8 and saved["steps"] == 5
    model = load_compact_model("190923", 2, data_root=data_root)
    keras = float(model.predict(recenter_images(image[None]), verbose=0)[0, 0])
    assert saved["response"] == pytest.approx(keras, abs=1e-4) and saved["response"] < saved["initial_response"]
    assert (tmp_path / "all" / "compact_model_211022_neuron1_minimize.npy").is_file()
    before = [(tmp_path / "all" / name).stat().st_mtime_ns
              for name in ("compact_model_190923_neuron2.npy", minimizing.name)]
    capsys.readouterr()
    script6.main(arguments)
    assert "2 of 2 models already done" in capsys.readouterr().out
    assert [(tmp_path / "all" / name).stat().st_mtime_ns
            for name in ("compact_model_190923_neuron2.npy", minimizing.name)] == before


def test_script6_rejects_bad_arguments(tmp_path, capsys):
    # An argument error: argparse's exit status 2 and its message, before any data is looked for.
    with pytest.raises(SystemExit) as raised:
        script6.main(["--steps", "0", "--out", str(tmp_path)])
    assert raised.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="neurons 0..32"):
        script6.main(["--session", "190923", "--neuron", "40", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="session/neuron"):
        script6.main(["--all", "--models", "190923-2", "--out", str(tmp_path)])


def test_all_records_round_trip_and_resume_marker(tmp_path):
    from classes.analysis.synthesis_sheet import (
        is_done,
        load_records,
        make_record,
        summarize_records,
        write_record,
    )
    from classes.compact.architecture import model_id

    identifier = model_id("190923", 2)
    normal = np.array([1.0, 2.0, 3.0])  # mean 2, max 3, range 2
    record = make_record(identifier, 5.0, 0.5, normal, (1.0, 2.0), "fit half", {"steps": 7, "seed": 0})
    # Raw: (3-2)/2 and (5-2)/2; calibrated through 1 + 2x: (7-5)/5 and (11-5)/5.
    np.testing.assert_allclose([record["maximizing_normal_raw"], record["maximizing_synthesized_raw"]], [50, 150])
    np.testing.assert_allclose([record["maximizing_normal_calibrated"],
                                record["maximizing_synthesized_calibrated"]], [40, 120])
    np.testing.assert_allclose(record["maximizing_synthesized_percent_of_range"], 150)
    image = np.full((1, 112, 112, 3), 7, np.uint8)
    # A record without its image (an interrupted write) does not count as done.
    (tmp_path / f"{identifier.stem}.json").write_text("{}")
    assert not is_done(tmp_path, identifier)
    write_record(tmp_path, identifier, image, record)
    assert is_done(tmp_path, identifier)
    records, images = load_records(tmp_path)
    assert records == [json.loads(json.dumps(record))] and list(images) == [2]
    np.testing.assert_array_equal(images[2], image[0])
    across = summarize_records(records)
    assert across["num_models"] == 1 and across["synthesized_above_top_normal"] == 1.0
    np.testing.assert_allclose(across["maximizing_synthesized"]["calibrated"]["mean"], 120)
    assert summarize_records([]) is None
    with pytest.raises(ValueError, match="uint8"):
        write_record(tmp_path, identifier, image.astype(np.float32), record)


def test_models_flag_reads_both_spellings():
    # script6's --models goes through parse_model_list.
    from classes.compact.architecture import model_id
    from classes.compact.choice import parse_model_list

    assert parse_model_list("190923/2, compact_model_201025_neuron27,190923/neuron2") == [
        model_id("190923", 2), model_id("201025", 27)]
    assert len(parse_model_list("all")) == 219
    with pytest.raises(ValueError, match="--models: cannot read '190923-2' as session/neuron"):
        parse_model_list("190923-2")
    with pytest.raises(ValueError, match="--models chose no model"):
        parse_model_list(" , ")

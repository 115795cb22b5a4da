"""script4 end to end on a few real models, both evaluation paths."""

import csv
import json

import numpy as np
import pytest

import script4_compact_perf as script4
from classes.compact.model import load_compact_model
from classes.compact.tools import predict_responses
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images


def read(out):
    with open(out / "per_neuron.csv") as stream:
        rows = list(csv.DictReader(stream))
    return rows, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_root):
    runs = {}
    for name, path, engine in (("keras", "keras", "auto"), ("fast", "fast", "auto"),
                               ("fast-tensorflow", "fast", "tensorflow")):
        out = tmp_path_factory.mktemp(name)
        script4.main(["--sessions", "190923,211022", "--neurons", "0,4", "--path", path,
                      "--engine", engine, "--out", str(out), "--batch-size", "40"])
        runs[name] = read(out) + (out,)
    return runs


def test_outputs_written_and_labelled(two_runs):
    rows, summary, out = two_runs["fast"]
    assert [(row["session"], row["neuron"]) for row in rows] == [
        ("190923", "0"), ("190923", "4"), ("211022", "0"), ("211022", "4")]
    for stem in ("fig1i_model_sizes", "fig1h_compact_performance"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").stat().st_size > 0
    statuses = {row["quantity"]: row["status"] for row in summary["comparison"]}
    assert statuses["ensemble median noise-corrected R2"] == "not computable"
    assert statuses["compact median noise-corrected R2"] == "approximate"
    assert statuses["ensemble parameters"] == "reproduced"
    assert any("211022" in note and "images_211022.zip" in note for note in summary["notes"])
    assert rows[2]["pearson_r"] == ""  # 211022 cannot be scored
    assert rows[0]["parameters"] and int(rows[0]["convolutional_filters"]) > 0
    assert len(summary["poisson_checks"]) == 2
    # The reported estimator's validation, per raw-repeat session; the goal is |median bias| <= 0.01.
    assert set(summary["noise_model_validation"]) == {"201016", "210325"}
    for entry in summary["noise_model_validation"].values():
        assert abs(entry["median_bias"]) <= 0.01 and 0 < entry["p90_abs_error"] < 0.5
    assert summary["noise_model"]["estimator"] == "fano_per_image"
    scored = [row for row in rows if row["noise_corrected_r2"]]
    assert len(scored) == 2 and all(row["noise_corrected_r2_poisson"] for row in scored)
    quantities = [row["quantity"] for row in summary["comparison"]]
    assert quantities.index("compact median noise-corrected R2, plain Poisson") == \
        quantities.index("compact median noise-corrected R2") + 1


@pytest.mark.parametrize("name", ["fast", "fast-tensorflow"])
def test_fast_and_keras_paths_agree(two_runs, name):
    fast_rows, summary, _ = two_runs[name]
    keras_rows, keras_summary, _ = two_runs["keras"]
    for fast, reference in zip(fast_rows[:2], keras_rows[:2], strict=True):
        assert float(fast["pearson_r"]) == pytest.approx(float(reference["pearson_r"]), abs=1e-5)
        assert float(fast["raw_r2"]) == pytest.approx(float(reference["raw_r2"]), abs=1e-5)
    assert keras_summary["evaluation_path"] == "keras"
    assert summary["evaluation_path"].startswith("fast (")
    if name == "fast-tensorflow":
        assert summary["evaluation_path"] == "fast (tensorflow engine)"


def test_scores_match_a_direct_computation(two_runs, data_root):
    rows, _, _ = two_runs["keras"]
    images = recenter_images(load_images("190923", np.arange(601, 1201), data_root=data_root))
    predictions = predict_responses(load_compact_model("190923", 4), images)
    from classes.data.responses import load_repeat_averaged

    means = load_repeat_averaged("190923")[4, 600:]
    assert float(rows[1]["pearson_r"]) == pytest.approx(np.corrcoef(predictions, means)[0, 1], abs=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (["--sessions", "210224"], "not a test session"),
    (["--sessions", "999999"], "Unknown session"),
    (["--sessions", "190923", "--neurons", "33"], "neurons 0..32"),
    (["--sessions", "190923", "--neurons", "a,b"], "comma-separated integers"),
])
def test_bad_arguments_exit_with_a_message(arguments, message, tmp_path, capsys, data_root):
    with pytest.raises(SystemExit) as raised:
        script4.main(arguments + ["--out", str(tmp_path)])
    assert message in str(raised.value.code)

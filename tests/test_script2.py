"""script2 (Fig. 1b): the no-weights path on the release, and a tiny end-to-end run."""

import csv
import json

import numpy as np
import pytest

import script2_taskdriven_vs_ensemble as script2
from classes.data.images import load_images
from classes.data.responses import load_repeat_averaged
from classes.ensemble.architecture import TINY_CONFIG, build_member
from classes.ensemble.embeddings import member_embeddings
from classes.ensemble.files import save_member
from classes.ensemble.taskdriven_features import random_patch_features
from classes.scoring import metrics
from classes.scoring.ridge_mapping import RidgeMapping


@pytest.fixture
def no_keras_cache(tmp_path, monkeypatch):
    """Keras's own weights cache pointed at an empty folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def test_without_weights_it_checks_the_architecture_and_names_what_is_missing(
        tmp_path, data_root, no_keras_cache):
    summary = script2.main(["--out", str(tmp_path)])
    statuses = {row["quantity"]: row for row in summary["comparison"]}
    for quantity in ("ensemble member layers (names, types, shapes, parameters, inputs)",
                     "ensemble member parameters", "member optimizer slots (SGD momentum)",
                     "ResNet50 stage (cut at conv4_block4_out) parameters"):
        assert statuses[quantity]["status"] == "reproduced", quantity
    assert statuses["ResNet50 stage (cut at conv4_block4_out) parameters"]["reproduced"] == "6,345,600"
    figure_rows = [row for row in summary["comparison"] if "median noise-corrected R2" in row["quantity"]]
    assert [row["published"] for row in figure_rows] == [0.61, 0.43, 0.46, 0.59, 0.61]
    for row in figure_rows:
        assert row["status"] == "not computable" and row["reproduced"] is None
        assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in row["note"]
    assert "ensemble_model_member<i>.keras" in statuses["ensemble ridge median noise-corrected R2"]["note"]
    assert any("ensemble members missing" in note for note in summary["notes"])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["comparison"] == json.loads(json.dumps(summary["comparison"]))
    assert not (tmp_path / "per_neuron.csv").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_root):
    members_dir = tmp_path_factory.mktemp("members")
    member = build_member(TINY_CONFIG, seed=31490)
    save_member(member, members_dir / "ensemble_model_member0.keras")
    out = tmp_path_factory.mktemp("out")
    summary = script2.main([
        "--out", str(out), "--features", "random", "--ensemble-dir", str(members_dir),
        "--sessions", "190923,211022", "--max-images", "40", "--skip-architecture-check",
        "--factorized-steps", "60",
    ])
    with open(out / "per_neuron.csv") as stream:
        rows = list(csv.DictReader(stream))
    return summary, rows, member, out


@pytest.mark.slow
def test_tiny_end_to_end_writes_every_model_and_mapping(tiny_run):
    summary, rows, _, out = tiny_run
    assert len(rows) == 33 * 2 * 2  # 190923's neurons x (features, ensemble) x (ridge, factorized)
    assert {(row["model"], row["mapping"]) for row in rows} == {
        ("random_features", "ridge"), ("random_features", "factorized"),
        ("ensemble", "ridge"), ("ensemble", "factorized")}
    assert all(row["session"] == "190923" and row["evaluation_images"] == "40" for row in rows)
    assert all(np.isfinite(float(row["noise_corrected_r2_poisson"])) for row in rows)
    for row in summary["comparison"]:  # random features are never compared with the paper
        assert row["status"] == "not computable" and "NOT ResNet50" in row["note"]
    assert any("images_211022.zip" in note for note in summary["notes"])
    assert (out / "fig1b_taskdriven_vs_ensemble.png").stat().st_size > 0


@pytest.mark.slow
def test_tiny_ensemble_ridge_scores_match_a_direct_computation(tiny_run, data_root):
    _, rows, member, _ = tiny_run
    numbers = np.concatenate([np.arange(1, 41), np.arange(601, 641)])
    features = random_patch_features(load_images("190923", numbers, data_root=data_root), 16)
    embeddings = member_embeddings(member, features)
    responses = load_repeat_averaged("190923", data_root)
    predictions = RidgeMapping().fit(embeddings[:40], responses[:, :40]).predict(embeddings[40:])
    means = responses[:, 600:640]
    expected = metrics.noise_corrected_r2_from_summary(
        predictions, means, metrics.poisson_noise_variance(means), 14)
    reproduced = [float(row["noise_corrected_r2_poisson"]) for row in rows
                  if row["model"] == "ensemble" and row["mapping"] == "ridge"]
    np.testing.assert_allclose(reproduced, expected, atol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (["--sessions", "210224"], "--sessions"),
    (["--mappings", "lasso"], "--mappings"),
    (["--resnet50-weights", "/nonexistent/resnet50.h5"], "does not exist"),
    (["--features", "random", "--ensemble-dir", "/nonexistent"], "does not exist"),
])
def test_bad_arguments_exit_with_a_message(arguments, message, tmp_path, data_root):
    with pytest.raises(SystemExit) as raised:
        script2.main(arguments + ["--out", str(tmp_path), "--skip-architecture-check"])
    assert message in str(raised.value.code)

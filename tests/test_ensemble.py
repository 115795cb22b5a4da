"""Ensemble members, their training (tiny configurations) and the ResNet50 stage."""

import json

import numpy as np
import pytest

from classes.ensemble.architecture import (
    FULL_CONFIG,
    READOUT_LAYERS,
    TINY_CONFIG,
    build_member,
    member_config_of,
    parameter_counts,
    reset_readout,
)
from classes.ensemble.embeddings import (
    ensemble_mapped_predictions,
    member_embeddings,
    member_outputs,
)
from classes.ensemble.files import (
    find_member_files,
    load_ensemble,
    load_member,
    member_file_name,
    save_member,
)
from classes.ensemble.optimization import TrainingSchedule, masked_mean_squared_error
from classes.ensemble.summary import (
    compare_with_summary,
    parse_summary_tables,
    release_member_table,
    release_summary_path,
)
from classes.ensemble.training import train_member
from classes.ensemble.training_data import (
    SessionData,
    poisson_validation,
    validation_score,
    zscored_targets,
)
from classes.runtime.quiet_tensorflow import keras
from classes.scoring import metrics
from classes.scoring.ridge_mapping import RidgeMapping

TINY = TINY_CONFIG


# --- Architecture against the release's summary ---------------------------------


def test_member_matches_the_release_summary_exactly(data_root):
    member = build_member(FULL_CONFIG, seed=31490)
    table = release_member_table(data_root)
    assert len(table) == 40 and table[-1].name == "embeddings"
    assert compare_with_summary(member, table) == []
    counts = parameter_counts(member)
    assert counts == {"trainable": 2_252_248, "non_trainable": 5_120, "optimizer": 2_252_250,
                      "total_with_optimizer": 4_509_618}
    assert member.output_shape == (None, 200)
    assert member.get_layer("layer4_add").output.shape == (None, 7, 7, 512)


def test_a_different_member_is_told_apart_from_the_summary(data_root):
    problems = compare_with_summary(
        build_member(TINY), release_member_table(data_root)
    )
    assert any("initial_conv_layer: output shape (None, 14, 14, 32)" in line for line in problems)
    assert any("parameters" in line for line in problems)


def test_seeds_make_members_reproducible_and_distinct():
    first = build_member(TINY, seed=31490)
    again = build_member(TINY, seed=31490)
    other = build_member(TINY, seed=31491)
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])
    assert member_config_of(first) == TINY


def test_reset_readout_touches_only_the_readout():
    member = build_member(TINY, seed=1)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in member.layers}
    reset_readout(member, seed=99)
    for layer in member.layers:
        changed = any(not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights(), strict=True))
        assert changed == (layer.name in READOUT_LAYERS), layer.name


# --- Files -----------------------------------------------------------------------


def random_features(num_images, seed=0):
    generator = np.random.default_rng(seed)
    return np.maximum(generator.standard_normal((num_images,) + TINY.feature_shape), 0).astype(np.float32)


def test_save_and_load_round_trip(tmp_path):
    members = [build_member(TINY, seed=seed) for seed in (5, 6)]
    for index, member in zip((10, 2), members, strict=True):
        save_member(member, tmp_path / member_file_name(index))
    found = find_member_files(tmp_path)
    assert [path.name for path in found] == [
        "ensemble_model_member2.keras", "ensemble_model_member10.keras"]
    loaded = load_ensemble(tmp_path)
    for original, reloaded in zip(members[::-1], loaded, strict=True):
        for a, b in zip(original.get_weights(), reloaded.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    features = random_features(5)
    np.testing.assert_allclose(member_outputs(loaded[0], features),
                               np.asarray(members[1](features, training=False)), atol=1e-5)
    assert member_embeddings(loaded[1], features).shape == (5, 7, 7, 32)


def test_missing_or_corrupt_member_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_member_files(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="ensemble_model_member<i>.keras"):
        find_member_files(tmp_path)
    (tmp_path / "ensemble_model_member0.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        load_member(tmp_path / "ensemble_model_member0.keras")
    member = build_member(TINY)
    with pytest.raises(ValueError, match=r"\(num_images, 14, 14, 16\)"):
        member_outputs(member, np.zeros((2, 14, 14, 1024), np.float32))


def test_ensemble_prediction_is_the_mean_over_members():
    members = [build_member(TINY, seed=seed) for seed in (1, 2)]
    fit, evaluation = random_features(60, 1), random_features(10, 2)
    responses = np.random.default_rng(3).poisson(4.0, (4, 60)).astype(float)
    combined = ensemble_mapped_predictions(members, fit, responses, evaluation, RidgeMapping)
    separate = [RidgeMapping().fit(member_embeddings(m, fit), responses)
                .predict(member_embeddings(m, evaluation)) for m in members]
    np.testing.assert_allclose(combined, np.mean(separate, axis=0), atol=1e-10)
    assert not np.allclose(separate[0], separate[1])


# --- Training pieces -------------------------------------------------------------


def test_zscored_targets_and_masked_loss():
    responses = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    targets = zscored_targets(responses, 4)
    expected = (responses[0] - responses[0].mean()) / responses[0].std()
    np.testing.assert_allclose(targets[:, 0], expected, rtol=1e-6)
    assert np.all(np.isnan(targets[:, 1:]))  # a constant neuron and the unused outputs
    predictions = np.arange(16, dtype=np.float32).reshape(4, 4) / 10
    loss = np.asarray(masked_mean_squared_error(targets, predictions))
    np.testing.assert_allclose(loss, (predictions[:, 0] - expected) ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match="only 1 outputs"):
        zscored_targets(responses, 1)


def test_paper_schedule():
    schedule = TrainingSchedule()
    assert (schedule.momentum, schedule.clipvalue, schedule.num_epochs) == (0.75, 0.5, 5)
    assert [round(schedule.learning_rate(e), 6) for e in range(3)] == [2.0, 1.7, 1.445]
    assert [schedule.passes(e) for e in range(5)] == [1, 2, 3, 4, 5]


def synthetic_session(session_id, num_images, num_neurons, seed):
    """Responses that a member can learn: counts driven by pooled features."""
    generator = np.random.default_rng(seed)
    features = random_features(num_images, seed)
    pooled = features.reshape(num_images, 7, 2, 7, 2, 16).mean((2, 4)).reshape(num_images, -1)
    weights = generator.standard_normal((num_neurons, pooled.shape[1])) / np.sqrt(pooled.shape[1])
    return SessionData(session_id, features, np.exp(weights @ pooled.T) * 4.0)


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory):
    """The same member trained uninterrupted, and interrupted after one session then resumed."""
    sessions = {name: synthetic_session(name, 128, neurons, seed)
                for name, neurons, seed in (("a", 20, 1), ("b", 30, 2))}
    held = synthetic_session("v", 80, 12, 3)
    validation = poisson_validation("v", held.features, held.responses, num_repeats=5)
    schedule = TrainingSchedule(num_epochs=2, initial_learning_rate=0.1, batch_size=16)
    runs = {}
    for name, stops in (("whole", [None]), ("resumed", [1, None])):
        out = tmp_path_factory.mktemp(name)
        runs[name] = [train_member(0, ["a", "b"], sessions.__getitem__, validation, out, TINY,
                                   schedule, stop_after=stop, show_progress=False) for stop in stops]
        runs[name].append(out)
    return runs, validation


@pytest.mark.slow
def test_training_follows_the_schedule_and_the_loss_falls(training_runs):
    runs, _ = training_runs
    log = runs["whole"][0]
    assert log["status"] == "finished"
    history = log["history"]
    assert [step["passes"] for step in history] == [1, 1, 2, 2]
    assert [step["learning_rate"] for step in history] == pytest.approx([0.1, 0.1, 0.085, 0.085])
    assert sorted(step["session"] for step in history[:2]) == ["a", "b"]
    for step in history[2:]:  # within a session the readout is fresh, then learns
        assert step["pass_losses"][1] < 0.96 * step["pass_losses"][0]
    assert history[-1]["pass_losses"][-1] < 0.96 * history[0]["pass_losses"][0]


@pytest.mark.slow
def test_the_saved_member_is_the_best_on_validation(training_runs):
    runs, validation = training_runs
    log, out = runs["whole"][0], runs["whole"][-1]
    scores = [step["validation_median_r2"] for step in log["history"]]
    assert log["best_validation_median_r2"] == max(scores)
    best = scores.index(max(scores))
    assert log["best_at"][:2] == [log["history"][best]["epoch"], log["history"][best]["position"]]
    member = load_member(out / "ensemble_model_member0.keras")
    assert validation_score(member, validation)[0] == pytest.approx(max(scores), abs=1e-6)
    written = json.loads((out / "training_log_member0.json").read_text())
    assert written["best_validation_median_r2"] == pytest.approx(max(scores))


@pytest.mark.slow
def test_resuming_continues_where_it_stopped(training_runs):
    runs, _ = training_runs
    first, second, out = runs["resumed"]
    assert first["status"] == "stopped" and len(first["history"]) == 1
    assert second["status"] == "finished"
    whole = runs["whole"][0]
    assert [s["session"] for s in second["history"]] == [s["session"] for s in whole["history"]]
    for resumed, reference in zip(second["history"], whole["history"], strict=True):
        assert resumed["pass_losses"] == pytest.approx(reference["pass_losses"], rel=1e-4)
    resumed_member = load_member(out / "ensemble_model_member0.keras")
    reference_member = load_member(runs["whole"][-1] / "ensemble_model_member0.keras")
    for a, b in zip(resumed_member.get_weights(), reference_member.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_poisson_validation_is_labelled_approximate():
    means = np.random.default_rng(0).poisson(3.0, (4, 30)).astype(float)
    validation = poisson_validation("210224", np.zeros((30, 14, 14, 16)), means, 9)
    np.testing.assert_allclose(validation.noise_variance, metrics.poisson_noise_variance(means))
    assert "approximate" in validation.label


# --- The training entry point on the release (tiny) ------------------------------


@pytest.mark.slow
def test_train_entry_point_tiny_on_the_release(tmp_path, data_root, capsys):
    from code_train_ensemble_model import train

    arguments = ["--out", str(tmp_path), "--members", "1", "--epochs", "1", "--tiny",
                 "--strategy", "mirrored", "--no-progress"]
    (log,) = train.main(arguments)
    assert log["status"] == "finished" and log["sessions"] == ["210305", "190925"]
    assert len(log["history"]) == 2 and "NOT ResNet50" in log["features"]
    assert any("skipped" in note for note in log["notes"])
    member = load_member(tmp_path / "ensemble_model_member0.keras")
    assert member.input_shape == (None,) + TINY.feature_shape
    (again,) = train.main(arguments)  # a finished run is not trained again
    assert again["history"] == log["history"]
    with pytest.raises(SystemExit) as raised:
        train.main(arguments[:-1] + ["--epochs", "2"])
    assert "other settings" in str(raised.value.code)
    with pytest.raises(SystemExit) as raised:
        train.main(["--out", str(tmp_path / "x"), "--sessions", "201016"])
    assert "images_201016.zip" in str(raised.value.code)


# --- The ResNet50 stage ------------------------------------------------------------


@pytest.mark.slow
def test_resnet50_cut_from_a_weights_file(tmp_path, data_root):
    from classes.ensemble.taskdriven_features import build_feature_extractor, extract_features

    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))
    path = tmp_path / "resnet50.weights.h5"
    base.save_weights(path)
    extractor = build_feature_extractor("resnet50", path)
    np.testing.assert_array_equal(extractor.get_layer("conv4_block4_3_conv").get_weights()[0],
                                  base.get_layer("conv4_block4_3_conv").get_weights()[0])
    text = release_summary_path(data_root).read_text(encoding="utf-8")
    assert compare_with_summary(extractor, parse_summary_tables(text)[0]) == []
    images = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    features = extract_features(extractor, images)
    assert features.shape == (2, 14, 14, 1024) and features.min() >= 0


def test_missing_resnet50_weights_name_the_file(tmp_path, monkeypatch):
    from classes.ensemble.taskdriven_features import build_feature_extractor

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        build_feature_extractor("resnet50")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_feature_extractor("resnet50", tmp_path / "absent.h5")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a Keras .h5"):
        build_feature_extractor("resnet50", tmp_path / "weights.bin")


def test_random_patch_features_are_a_fixed_projection_of_patches():
    from classes.ensemble.taskdriven_features import random_patch_features

    images = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    features = random_patch_features(images, num_channels=5, seed=4)
    assert features.shape == (3, 14, 14, 5)
    np.testing.assert_array_equal(features, random_patch_features(images, num_channels=5, seed=4))
    generator = np.random.default_rng(4)
    projection = generator.standard_normal((192, 5)) / np.sqrt(192)
    offsets = generator.uniform(-0.5, 0.5, 5)
    patch = images[1, 16:24, 40:48].astype(np.float64) / 127.5 - 1.0  # patch row 2, column 5
    np.testing.assert_allclose(features[1, 2, 5], np.maximum(patch.reshape(-1) @ projection + offsets, 0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="0..255"):
        random_patch_features(images.astype(np.float32) - 200)

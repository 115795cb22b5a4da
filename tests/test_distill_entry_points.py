"""The distillation pool and the four resumable stages, CI-sized (--tiny), on the release."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classes.compact.model import load_nums_filters, model_id
from classes.compact.tools import nums_filters_of, predict_responses
from classes.data.image_pool import VARIANTS, build_image_pool, pool_image_numbers, split_pool
from classes.data.images import load_images
from classes.data.preprocessing import gaudy_images, recenter_images
from classes.data.responses import load_held_out
from classes.runtime.quiet_tensorflow import keras
from classes.training.pruning_rebuild import mask_pruned_filters


def test_pool_keeps_held_out_halves_out_and_makes_variants(data_root):
    assert np.array_equal(pool_image_numbers("190923", data_root), np.arange(1, 601))
    assert np.array_equal(pool_image_numbers("210224", data_root), np.arange(1, 801))
    pool = build_image_pool(data_root, sessions=["190923", "210224"], max_images_per_session=5, seed=1)
    assert len(pool) == 2 * 5 * 3
    assert pool.describe()["per_variant"] == {variant: 10 for variant in VARIANTS}
    positions = np.arange(len(pool))
    images = pool.load(positions)
    for position in (0, 7, 29):
        session_index, number, variant = pool.entries[position]
        raw = load_images(pool.sessions[session_index], [number], data_root=data_root)
        expected = {"original": raw, "gaudy": gaudy_images(raw), "flipped": raw[:, :, ::-1]}[VARIANTS[variant]]
        np.testing.assert_array_equal(images[position], recenter_images(expected)[0])
    training, validation = split_pool(pool, 3, seed=2)
    assert len(training) + len(validation) == len(pool) and len(validation) == 9
    base = {tuple(entry) for entry in validation.entries[:, :2]}
    assert base.isdisjoint({tuple(entry) for entry in training.entries[:, :2]})
    assert pool.fingerprint() == build_image_pool(data_root, ["190923", "210224"], max_images_per_session=5,
                                                  seed=1).fingerprint()
    with pytest.raises(ValueError, match="variants"):
        build_image_pool(data_root, sessions=["190923"], variants=("sepia",))
    with pytest.raises(ValueError, match="num_validation_base_images"):
        split_pool(pool, 10)


@pytest.mark.slow
def test_tiny_pipeline_runs_resumes_and_skips(data_root, tmp_path):
    from code_distill_and_prune import distill, evaluate, prune, retrain

    common = ["--tiny", "--out", str(tmp_path), "--data-root", str(data_root), "--session", "190923",
              "--neuron", "0"]
    folder = tmp_path / "190923_neuron0"
    with pytest.raises(SystemExit, match="no finished distillation"):
        prune.main(common)

    distill.main(common + ["--stop-after-chunks", "1"])
    state = json.loads((folder / "distill" / "state.json").read_text())
    assert (state["chunks_done"], state["finished"], state["images_seen"]) == (1, False, 16)
    distill.main(common)
    resumed = json.loads((folder / "distill" / "state.json").read_text())
    assert (resumed["chunks_done"], resumed["finished"], resumed["images_seen"]) == (2, True, 32)
    assert resumed["history"][0] == state["history"][0]  # chunk 1 was not trained again
    assert len(list((tmp_path / "teacher_responses").glob("train_*.npy"))) == 2
    assert distill.main(common)[0]["finished"]  # a finished neuron is skipped

    with pytest.raises(SystemExit, match="contradicts"):
        prune.main(common + ["--num-filters", "8"])
    prune.main(common)
    record = json.loads((folder / "prune" / "pruning.json").read_text())
    assert all(3 <= count <= 4 for count in record["nums_filters"])
    student = keras.models.load_model(folder / "distill" / "student.keras", compile=False)
    pruned = keras.models.load_model(folder / "prune" / "pruned.keras", compile=False)
    assert nums_filters_of(pruned) == record["nums_filters"]
    images = recenter_images(load_images("190923", [601, 650, 700, 1200], data_root=data_root))
    np.testing.assert_allclose(predict_responses(pruned, images),
                               predict_responses(mask_pruned_filters(student, record["kept"]), images),
                               rtol=1e-4, atol=1e-5)

    # The teacher's own network for the neuron, pruned the same way.
    prune.main(common + ["--source", "teacher"])
    teacher_record = json.loads((folder / "prune_teacher" / "pruning.json").read_text())
    assert teacher_record["unpruned_nums_filters"] == [200, 200, 200, 100, 100]
    assert all(count >= 3 for count in teacher_record["nums_filters"])

    retrain.main(common)
    retrained = keras.models.load_model(folder / "retrain" / "retrained.keras", compile=False)
    assert nums_filters_of(retrained) == record["nums_filters"]

    evaluate.main(common)
    evaluation = json.loads((folder / "evaluation.json").read_text())
    released = evaluation["models"]["released_compact_model"]
    assert released["nums_filters"] == load_nums_filters(model_id("190923", 0), data_root)
    for name in ("distilled", "pruned_before_retraining", "retrained", "released_compact_model"):
        assert 0.0 <= evaluation["models"][name]["r2_teacher_held_out"] <= 1.0
    # The teacher's Pearson r against V4 on the first 24 held-out images, recomputed here.
    teacher = np.load(tmp_path / "teacher_responses" / "heldout_190923_24.npy")[:, 0]
    _, means, _ = load_held_out("190923", data_root)
    expected = np.corrcoef(teacher, means[0, :24])[0, 1]
    assert evaluation["teacher"]["pearson_r"] == pytest.approx(expected, rel=1e-6)
    assert evaluation["models"]["teacher_network_pruned"]["nums_filters"] == teacher_record["nums_filters"]
    assert (tmp_path / "evaluation_summary.csv").is_file() and (tmp_path / "comparison.txt").is_file()


def test_teacher_neuron_model_equals_the_teacher_column(data_root):
    from classes.training.distillation import (
        load_teacher_model,
        predict_teacher,
        teacher_neuron_model,
    )

    teacher = load_teacher_model(data_root)
    images = recenter_images(load_images("201025", [610, 1100], data_root=data_root))
    expected = predict_teacher(teacher, images)
    for column in (0, 33 + 5, 218):
        network = teacher_neuron_model(teacher, column)
        assert nums_filters_of(network) == [200, 200, 200, 100, 100]
        np.testing.assert_allclose(predict_responses(network, images), expected[:, column], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="column"):
        teacher_neuron_model(teacher, 219)


def test_stages_reject_bad_neurons(data_root, tmp_path):
    from code_distill_and_prune import distill

    with pytest.raises(SystemExit, match="neurons 0..32"):
        distill.main(["--tiny", "--out", str(tmp_path), "--session", "190923", "--neuron", "40"])
    with pytest.raises(SystemExit, match="no compact models"):
        distill.main(["--tiny", "--out", str(tmp_path), "--session", "190925", "--neuron", "0"])

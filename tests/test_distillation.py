"""Distillation on the image stream (SPEC section 2): smoothing, schedule, the loop, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from classes.compact.model import build_compact_model
from classes.data.image_stream import ImageStream
from classes.prediction import predict
from classes.runtime.keras_files import load_keras_file
from classes.training.distillation import initial_student_weights
from classes.training.stream_distillation import (
    LabelledStream,
    StreamTraining,
    block_order,
    pruning_set,
    train_on_stream,
)
from classes.training.student import smooth_weights
from classes.training.teacher import Teacher, TeacherCache
from classes.training.trainers import make_trainer

NUMS = [4, 4, 4, 4, 4]
BLOCK = 16


def test_smoothing_matches_scipy_on_layers_1_to_4_and_the_readout_maps_only():
    counts = [3, 4, 5, 6, 2]
    generator = np.random.default_rng(2)
    weights = [generator.normal(size=w.shape).astype(np.float32) for w in build_compact_model(counts).get_weights()]
    smoothed = smooth_weights(weights, 0.5)
    depthwise = {6: 3, 13: 4, 20: 5, 27: 6}  # get_weights() index of layer i's depthwise kernel: its input filters
    for index, channels in depthwise.items():
        for channel in range(channels):
            expected = gaussian_filter(weights[index][:, :, channel, 0], 0.5, mode="reflect")
            np.testing.assert_allclose(smoothed[index][:, :, channel, 0], expected, rtol=1e-5, atol=1e-6)
    maps = weights[34].reshape(28, 28, 2)
    for channel in range(2):
        expected = gaussian_filter(maps[:, :, channel], 0.5, mode="reflect")
        np.testing.assert_allclose(smoothed[34].reshape(28, 28, 2)[:, :, channel], expected, rtol=1e-5, atol=1e-6)
    for index in set(range(36)) - set(depthwise) - {34}:  # layer 0, pointwise, biases, BN, readout bias
        np.testing.assert_array_equal(smoothed[index], weights[index])
    for index, array in enumerate(smooth_weights(weights, 0)):
        np.testing.assert_array_equal(array, weights[index])
    with pytest.raises(ValueError, match="sigma"):
        smooth_weights(weights, -1)


def test_chunks_follow_the_paper_by_default_and_refuse_a_budget_below_one_block():
    paper = StreamTraining(num_images=12_000_000).chunks(2000)
    assert len(paper) == 24 and {len(chunk) for chunk in paper} == {250} and paper[-1].stop == 6000
    small = StreamTraining(num_images=100).chunks(16)  # 6 blocks (rounded down), at least one per chunk
    assert [list(chunk) for chunk in small] == [[block] for block in range(6)]
    assert [len(c) for c in StreamTraining(num_images=160, chunk_images=50).chunks(16)] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="below one block of 16"):
        StreamTraining(num_images=15).chunks(16)
    for arguments in ({"num_images": 0}, {"num_images": 10, "batch_size": 0}, {"num_images": 10, "seed": -1},
                      {"num_images": 10, "smoothing_sigma": -0.5}, {"num_images": 10, "chunk_images": 0}):
        with pytest.raises(ValueError):
            StreamTraining(**arguments)


def test_block_order_depends_on_seed_and_block_only():
    first = block_order(3, 7, 50)
    assert sorted(first) == list(range(50))
    np.testing.assert_array_equal(first, block_order(3, 7, 50))
    assert not np.array_equal(first, block_order(3, 8, 50)) and not np.array_equal(first, block_order(4, 7, 50))


@pytest.fixture(scope="module")
def source(data_root, tmp_path_factory):
    stream = ImageStream(seed=2, block_size=BLOCK, data_root=data_root, num_validation=24)
    teacher = Teacher("compact", "190923/0", data_root=data_root)
    return LabelledStream(stream, TeacherCache(tmp_path_factory.mktemp("cache"), teacher, stream), 0)


def test_the_loop_lowers_the_loss_on_a_planted_teacher(source, tmp_path):
    initial = initial_student_weights(NUMS, 0)
    trainer = make_trainer(initial, "kernel", 1e-3, BLOCK)
    state = train_on_stream(trainer, source, StreamTraining(num_images=16 * BLOCK, chunk_images=4 * BLOCK,
                                                            batch_size=BLOCK), tmp_path, show_progress=False)
    images, targets = source.validation

    def error(weights):
        return float(np.mean((predict([weights], images)[0] - targets) ** 2))

    assert error(trainer.get_weights()) < 0.85 * error(initial)
    curve = state["learning_curve"]
    assert [point["images_seen"] for point in curve] == [0, 64, 128, 192, 256] and state["finished"]
    assert all(0 <= point["r2_validation"] <= 1 for point in curve)
    final = load_keras_file(tmp_path / "model.keras").get_weights()
    for ours, reference in zip(final, trainer.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, reference)


class Interrupted(Exception):
    pass


class InterruptedTrainer:
    """A trainer that stops (like a killed process) before its step number ``steps``."""

    def __init__(self, trainer, steps: int):
        self.trainer, self.steps = trainer, steps

    def train_step(self, images, targets):
        if self.steps == 0:
            raise Interrupted
        self.steps -= 1
        return self.trainer.train_step(images, targets)

    def __getattr__(self, name):
        return getattr(self.trainer, name)


def _run(source, folder, engine, training, interrupt_at=None):
    # One thread: the kernel's multi-threaded reductions are not bit-reproducible from run to run.
    trainer = make_trainer(initial_student_weights(NUMS, 1), engine, 1e-3, 8, threads=1)
    if interrupt_at is not None:
        trainer = InterruptedTrainer(trainer, interrupt_at)
    return train_on_stream(trainer, source, training, folder, settings={"learning_rate": 1e-3}, show_progress=False)


@pytest.mark.parametrize("engine", ["kernel", "keras"])
def test_a_resumed_run_ends_where_an_uninterrupted_one_ends(source, tmp_path, engine):
    training = StreamTraining(num_images=3 * BLOCK, batch_size=8, seed=4)  # 3 chunks of one block, 2 steps each
    complete = _run(source, tmp_path / "complete", engine, training)
    folder = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        _run(source, folder, engine, training, interrupt_at=3)  # in the second chunk
    state = json.loads((folder / "state.json").read_text())
    assert (state["chunks_done"], state["trainer_state"], state["finished"]) == (1, "trainer_chunk0001.npz", False)
    resumed = _run(source, folder, engine, training)
    assert resumed["finished"] and resumed["images_seen"] == 3 * BLOCK
    drop = ("seconds", "cpu_seconds")
    assert ([{k: v for k, v in point.items() if k not in drop} for point in resumed["learning_curve"]]
            == [{k: v for k, v in point.items() if k not in drop} for point in complete["learning_curve"]])
    assert sorted(path.name for path in folder.glob("trainer_*")) == ["trainer_chunk0003.npz"]
    with np.load(folder / "trainer_chunk0003.npz") as ours, np.load(tmp_path / "complete/trainer_chunk0003.npz") as ref:
        assert ours.files == ref.files
        for name in ref.files:
            if engine == "kernel":
                np.testing.assert_array_equal(ours[name], ref[name], err_msg=name)
            else:
                np.testing.assert_allclose(ours[name], ref[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_resume_with_other_settings_is_refused_naming_the_change(source, tmp_path):
    training = StreamTraining(num_images=BLOCK, batch_size=8)
    _run(source, tmp_path, "kernel", training)
    with pytest.raises(ValueError, match=r"num_images: 16 -> 32\); delete that folder"):
        _run(source, tmp_path, "kernel", StreamTraining(num_images=2 * BLOCK, batch_size=8))
    with pytest.raises(ValueError, match=r"smoothing_sigma: 0.5 -> 0.25"):
        _run(source, tmp_path, "kernel", StreamTraining(num_images=BLOCK, batch_size=8, smoothing_sigma=0.25))
    calls = []
    trainer = make_trainer(initial_student_weights(NUMS, 1), "kernel", 1e-3, 8)
    trainer.train_step = lambda *batch: calls.append(1)
    assert train_on_stream(trainer, source, training, tmp_path, settings={"learning_rate": 1e-3},
                           show_progress=False)["finished"]
    assert calls == []  # a finished run is not trained again


def test_pruning_set_adds_mirror_images_labelled_by_the_teacher(source):
    images, targets, mirrored = pruning_set(source, 48)
    assert mirrored and images.shape == (48, 112, 112, 3) and targets.shape == (48,)
    np.testing.assert_array_equal(images[24:], images[:24, :, ::-1])
    np.testing.assert_allclose(targets[24:], source.cache.teacher.responses(images[24:])[0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(targets[:24], source.validation[1])
    images, _, mirrored = pruning_set(source, 24)
    assert not mirrored and len(images) == 24


def test_the_cosine_schedule_gives_each_chunk_its_known_factor_and_refuses_unknown_schedules():
    cosine = StreamTraining(num_images=10, learning_rate_schedule="cosine")
    expected = [(1 + np.cos(np.pi * (chunk + 0.5) / 4)) / 2 for chunk in range(4)]  # 0.962, 0.691, 0.309, 0.038
    np.testing.assert_allclose([cosine.learning_rate_factor(chunk, 4) for chunk in range(4)], expected, rtol=1e-12)
    assert StreamTraining(num_images=10).learning_rate_factor(3, 4) == 1.0
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine; got 'linear'"):
        StreamTraining(num_images=10, learning_rate_schedule="linear")


@pytest.mark.parametrize("engine", ["kernel", "keras"])
def test_a_learning_rate_factor_steps_as_a_trainer_made_with_the_scaled_rate(source, engine):
    images, targets = source.block(0)
    scaled = make_trainer(initial_student_weights(NUMS, 5), engine, 1e-3, 8, threads=1)
    scaled.set_learning_rate_factor(0.25)
    reference = make_trainer(initial_student_weights(NUMS, 5), engine, 2.5e-4, 8, threads=1)
    for trainer in (scaled, reference):
        for start in (0, 8):
            trainer.train_step(images[start:start + 8], targets[start:start + 8])
    for ours, theirs in zip(scaled.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_a_cosine_run_records_each_chunks_rate_and_refuses_a_resume_without_it(source, tmp_path):
    training = StreamTraining(num_images=2 * BLOCK, batch_size=8, learning_rate_schedule="cosine")
    state = _run(source, tmp_path, "kernel", training)
    assert [point.get("learning_rate") for point in state["learning_curve"]] == pytest.approx(
        [None, 1e-3 * (1 + np.cos(np.pi / 4)) / 2, 1e-3 * (1 + np.cos(3 * np.pi / 4)) / 2], rel=1e-9)
    with pytest.raises(ValueError, match=r"learning_rate_schedule: cosine -> constant"):
        _run(source, tmp_path, "kernel", StreamTraining(num_images=2 * BLOCK, batch_size=8))


def test_a_run_saved_before_schedules_existed_resumes_as_constant(source, tmp_path):
    training = StreamTraining(num_images=BLOCK, batch_size=8)
    _run(source, tmp_path, "kernel", training)
    state = json.loads((tmp_path / "state.json").read_text())
    del state["learning_rate_schedule"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert _run(source, tmp_path, "kernel", training)["finished"]
    with pytest.raises(ValueError, match=r"learning_rate_schedule: constant -> cosine"):
        _run(source, tmp_path, "kernel", StreamTraining(num_images=BLOCK, batch_size=8, learning_rate_schedule="cosine"))

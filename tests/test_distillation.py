"""Distillation (SPEC section 2): training steps, smoothing, schedule, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from classes.compact.model import build_compact_model
from classes.compact.tools import get_kernels, predict_responses
from classes.runtime.quiet_tensorflow import keras
from classes.training import checkpoints
from classes.training.distillation import (
    DistillationConfig,
    block_slices,
    compile_student,
    distill,
    load_checkpoint,
    smooth_compact_model,
    teacher_output_index,
    train_on_block,
    training_schedule,
)

NUMS = [3, 3, 3, 3, 3]


class SyntheticPool:
    """Stands in for ImagePool: fixed random images in memory."""

    def __init__(self, count, seed=0):
        generator = np.random.default_rng(seed)
        self.images = generator.uniform(-100, 100, (count, 112, 112, 3)).astype(np.float32)
        # A smooth function of the images for the student to learn.
        self.targets = self.images[:, 40:72, 40:72, 0].mean(axis=(1, 2)) / 10
        self.seed = seed

    def __len__(self):
        return len(self.images)

    def load(self, positions=None):
        return self.images if positions is None else self.images[positions]

    def fingerprint(self):
        return f"synthetic{len(self)}_{self.seed}"


def targets_for(pool, config, calls=None):
    slices = block_slices(len(pool), config.block_size)

    def targets(block):
        if calls is not None:
            calls.append(block)
        return pool.targets[slices[block]]

    return targets


def fresh_student(seed=0):
    keras.utils.set_random_seed(seed)
    return build_compact_model(NUMS)


def test_tiny_student_loss_falls():
    pool = SyntheticPool(32)
    student = compile_student(fresh_student(), 1e-4)
    losses = [train_on_block(student, pool.images, pool.targets, 32)[0] for _ in range(5)]
    assert losses[-1] < 0.8 * losses[0]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))
    with pytest.raises(ValueError, match="targets"):
        train_on_block(student, pool.images, pool.targets[:-1], 16)


def test_smoothing_leaves_layer0_and_smooths_the_rest():
    model = fresh_student(1)
    generator = np.random.default_rng(2)
    model.set_weights([generator.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    before = {layer: get_kernels(model, layer) for layer in (0, 1, 2, 3, 4, "readout")}
    batch_norm = [model.get_layer(f"layer{layer}_bn").get_weights() for layer in range(5)]
    smooth_compact_model(model, 0.5)
    after = {layer: get_kernels(model, layer) for layer in (0, 1, 2, 3, 4, "readout")}
    np.testing.assert_array_equal(after[0]["kernel"], before[0]["kernel"])
    np.testing.assert_array_equal(after[0]["bias"], before[0]["bias"])
    for layer in range(1, 5):
        for channel in range(NUMS[layer - 1]):
            expected = gaussian_filter(before[layer]["depthwise"][:, :, channel, 0], 0.5, mode="reflect")
            np.testing.assert_allclose(after[layer]["depthwise"][:, :, channel, 0], expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(after[layer]["depthwise"], before[layer]["depthwise"])
        np.testing.assert_array_equal(after[layer]["pointwise"], before[layer]["pointwise"])
        np.testing.assert_array_equal(after[layer]["bias"], before[layer]["bias"])
    maps_before = before["readout"]["kernel"].reshape(28, 28, NUMS[4])
    maps_after = after["readout"]["kernel"].reshape(28, 28, NUMS[4])
    for channel in range(NUMS[4]):
        expected = gaussian_filter(maps_before[:, :, channel], 0.5, mode="reflect")
        np.testing.assert_allclose(maps_after[:, :, channel], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after["readout"]["bias"], before["readout"]["bias"])
    for layer in range(5):
        for array, old in zip(model.get_layer(f"layer{layer}_bn").get_weights(), batch_norm[layer], strict=True):
            np.testing.assert_array_equal(array, old)


def test_schedule_visits_every_block_once_per_epoch():
    config = DistillationConfig(block_size=10, blocks_per_chunk=2, epochs=3)
    chunks = training_schedule(45, config)  # 5 blocks, the last of 5 images
    sequence = [pair for chunk in chunks for pair in chunk]
    assert len(sequence) == 15 and [len(chunk) for chunk in chunks] == [2] * 7 + [1]
    for epoch in range(3):
        assert sorted(block for e, block in sequence if e == epoch) == [0, 1, 2, 3, 4]
    assert [s.stop - s.start for s in block_slices(45, 10)] == [10, 10, 10, 10, 5]
    capped = training_schedule(45, DistillationConfig(block_size=10, blocks_per_chunk=2, epochs=3, max_blocks=7))
    assert [pair for chunk in capped for pair in chunk] == sequence[:7]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_size"):
        DistillationConfig(batch_size=0)
    with pytest.raises(ValueError, match="learning_rate"):
        DistillationConfig(learning_rate=0)
    with pytest.raises(ValueError, match="max_blocks"):
        DistillationConfig(max_blocks=0)


def test_teacher_columns_follow_the_shared_models_neuron_order():
    assert teacher_output_index("190923", 0) == 0
    assert teacher_output_index("201025", 0) == 33
    assert teacher_output_index("210225", 0) == 33 + 89
    assert teacher_output_index("211022", 41) == 218
    with pytest.raises(ValueError):
        teacher_output_index("190923", 33)


def test_resume_continues_where_it_stopped(tmp_path):
    pool = SyntheticPool(16, seed=3)
    config = DistillationConfig(block_size=8, blocks_per_chunk=1, epochs=1, batch_size=8, seed=5)
    complete, complete_state = distill(fresh_student(), pool, targets_for(pool, config), config,
                                       tmp_path / "complete", show_progress=False)
    assert complete_state["finished"] and complete_state["chunks_done"] == 2

    first_calls, second_calls = [], []
    folder = tmp_path / "resumed"
    _, state = distill(fresh_student(), pool, targets_for(pool, config, first_calls), config,
                       folder, stop_after_chunks=1, show_progress=False)
    assert not state["finished"] and state["chunks_done"] == 1 and state["images_seen"] == 8
    assert json.loads((folder / "state.json").read_text())["checkpoint"] == "checkpoint_chunk0001.keras"
    # Another configuration or architecture is refused, not mixed in.
    other = DistillationConfig(block_size=8, blocks_per_chunk=1, epochs=2, batch_size=8, seed=5)
    with pytest.raises(ValueError, match="config"):
        distill(fresh_student(), pool, targets_for(pool, other), other, folder, show_progress=False)
    with pytest.raises(ValueError, match="initial_nums_filters"):
        distill(build_compact_model([4, 3, 3, 3, 3]), pool, targets_for(pool, config), config,
                folder, show_progress=False)
    # A different initial model must not matter: the checkpoint is what resumes.
    resumed, state = distill(fresh_student(seed=99), pool, targets_for(pool, config, second_calls), config,
                             folder, show_progress=False)
    assert state["finished"] and state["chunks_done"] == 2 and state["images_seen"] == 16
    order = [block for chunk in training_schedule(16, config) for _, block in chunk]
    assert first_calls == order[:1] and second_calls == order[1:]
    assert [entry["chunk"] for entry in state["history"]] == [1, 2]
    for ours, reference in zip(resumed.get_weights(), complete.get_weights(), strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert int(resumed.optimizer.iterations) == int(complete.optimizer.iterations) == 2
    # Only the latest checkpoint is kept.
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == ["checkpoint_chunk0002.keras"]
    # Finished: a rerun trains nothing and returns the saved model.
    calls = []
    again, state = distill(fresh_student(), pool, targets_for(pool, config, calls), config,
                           folder, show_progress=False)
    assert calls == [] and state["finished"]
    np.testing.assert_array_equal(predict_responses(again, pool.images[:4]),
                                  predict_responses(resumed, pool.images[:4]))


def test_a_crash_before_the_state_is_written_resumes_like_an_uninterrupted_run(tmp_path, monkeypatch):
    pool = SyntheticPool(16, seed=3)
    config = DistillationConfig(block_size=8, blocks_per_chunk=1, epochs=1, batch_size=8, seed=5)
    complete, _ = distill(fresh_student(), pool, targets_for(pool, config), config, tmp_path / "complete",
                          show_progress=False)
    write_json = checkpoints.write_json

    def die_at_the_second_state(path, data):
        if (path.parent / "checkpoint_chunk0002.keras").is_file():
            raise RuntimeError("killed")
        return write_json(path, data)

    monkeypatch.setattr(checkpoints, "write_json", die_at_the_second_state)
    folder = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="killed"):
        distill(fresh_student(), pool, targets_for(pool, config), config, folder, show_progress=False)
    # Chunk 2's model was written, its state was not: the state still names chunk 1, whose file is kept.
    state = json.loads((folder / "state.json").read_text())
    assert (state["chunks_done"], state["checkpoint"], state["finished"]) == (1, "checkpoint_chunk0001.keras", False)
    assert (folder / "checkpoint_chunk0001.keras").is_file() and (folder / "checkpoint_chunk0002.keras").is_file()
    monkeypatch.undo()
    calls = []
    resumed, state = distill(fresh_student(seed=99), pool, targets_for(pool, config, calls), config, folder,
                             show_progress=False)
    assert state["finished"] and state["images_seen"] == 16 and len(calls) == 1
    for ours, reference in zip(resumed.get_weights(), complete.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, reference)
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == ["checkpoint_chunk0002.keras"]


def test_save_load_round_trip(tmp_path):
    pool = SyntheticPool(8, seed=6)
    student = compile_student(fresh_student(), 1e-4)
    train_on_block(student, pool.images, pool.targets, 8)
    student.save(tmp_path / "student.keras")
    loaded = load_checkpoint(tmp_path, "student.keras")
    np.testing.assert_array_equal(predict_responses(loaded, pool.images), predict_responses(student, pool.images))
    assert int(loaded.optimizer.iterations) == 1
    for ours, reference in zip(loaded.optimizer.variables, student.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path, "absent.keras")

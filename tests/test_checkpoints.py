"""The resumable-training mechanism (classes/training/checkpoints.py) on a toy loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classes.training import checkpoints
from classes.training.checkpoints import RunFolder, refuse_changed_settings, setting_differences

SETTINGS = {"config": {"epochs": 3, "shape": (2, 2), "rate": 0.5}, "data": "pool-a"}


def toy_step(weights: np.ndarray, step: int) -> np.ndarray:
    """A deterministic update that depends on the step, like a seeded batch order."""
    noise = np.random.default_rng([7, step]).normal(size=weights.shape)
    return 0.9 * weights + 0.1 * noise


def train_toy(folder, num_steps: int, stop_after: int | None = None) -> np.ndarray:
    """A resumable loop written the way distill and train_member use RunFolder."""
    run = RunFolder(folder, ("weights_step",), remedy="delete the folder to start over")
    state = run.read_state()
    if state is None:
        weights, state = np.zeros(4), dict(SETTINGS, steps_done=0, weights_file=None)
    else:
        run.check_settings(state, SETTINGS)
        weights = np.load(run.named_file(state["weights_file"]))
    last = num_steps if stop_after is None else min(num_steps, state["steps_done"] + stop_after)
    for step in range(state["steps_done"], last):
        weights = toy_step(weights, step)
        state["weights_file"] = f"weights_step{step + 1:04d}.npy"
        run.write_file(state["weights_file"], lambda path, weights=weights: np.save(path, weights))
        state["steps_done"] = step + 1
        run.commit(state, [state["weights_file"]])
    return weights


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole = train_toy(tmp_path / "whole", 5)
    reference = np.zeros(4)
    for step in range(5):
        reference = toy_step(reference, step)
    np.testing.assert_array_equal(whole, reference)
    for stop in (2, 2, None):
        resumed = train_toy(tmp_path / "resumed", 5, stop_after=stop)
    np.testing.assert_array_equal(resumed, whole)
    # Files the state no longer names are gone; the state names the last one.
    assert sorted(path.name for path in (tmp_path / "resumed").iterdir()) == ["state.json", "weights_step0005.npy"]


def test_a_crash_before_the_state_is_written_leaves_the_previous_pair(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    train_toy(folder, 5, stop_after=2)
    before = json.loads((folder / "state.json").read_text())

    def crash(*arguments, **keywords):
        raise RuntimeError("killed")

    # The third step's weights are written, then the process dies before its state.
    monkeypatch.setattr(checkpoints, "write_json", crash)
    with pytest.raises(RuntimeError, match="killed"):
        train_toy(folder, 5, stop_after=1)
    assert json.loads((folder / "state.json").read_text()) == before
    assert (folder / before["weights_file"]).is_file() and (folder / "weights_step0003.npy").is_file()
    monkeypatch.undo()
    np.testing.assert_array_equal(train_toy(folder, 5), train_toy(tmp_path / "whole", 5))
    assert not (folder / "weights_step0003.npy").exists()


def test_a_crash_inside_a_file_write_leaves_no_file(tmp_path):
    run = RunFolder(tmp_path, ("part",), remedy="start over")

    def half_write(path):
        path.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run.write_file("part1.txt", half_write)
    assert list(tmp_path.iterdir()) == []


def test_changed_settings_are_refused_naming_what_changed(tmp_path):
    train_toy(tmp_path, 3, stop_after=1)
    run = RunFolder(tmp_path, ("weights_step",), remedy="delete the folder to start over")
    state = run.read_state()
    run.check_settings(state, SETTINGS)  # tuples match the lists JSON stored
    changed = {"config": {"epochs": 4, "shape": (2, 2)}, "data": "pool-b"}
    with pytest.raises(ValueError) as raised:
        run.check_settings(state, changed, remedy="pass --restart")
    message = str(raised.value)
    assert "\n" not in message and message.endswith("; pass --restart.")
    assert "config.epochs: 3 -> 4" in message and "config.rate: 0.5 -> absent" in message
    assert "data: pool-a -> pool-b" in message and "shape" not in message
    assert setting_differences({"a": 1}, {"a": 1, "b": [1]}) == ["b: absent -> [1]"]
    with pytest.raises(ValueError, match=r"^somewhere holds a run made with other settings \(a: 1 -> 2\); fix\.$"):
        refuse_changed_settings({"a": 1}, {"a": 2}, "somewhere", "fix")


def test_unreadable_state_and_missing_files_say_what_to_do(tmp_path):
    run = RunFolder(tmp_path, (), remedy="delete the folder to start over")
    assert run.read_state() is None
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable training state.*delete the folder"):
        run.read_state()
    (tmp_path / "state.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        run.read_state()
    with pytest.raises(FileNotFoundError, match="missing though .*state.json names it"):
        run.named_file("absent.npy")

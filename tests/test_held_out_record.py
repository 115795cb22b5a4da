"""script4's record of held-out predictions: what script5 takes from it, and every reason it does not."""

from __future__ import annotations

import numpy as np
import pytest

from classes.compact.architecture import ModelId
from classes.data.sessions import held_out_indices
from classes.scoring.held_out_record import (
    FILE_NAME,
    load_held_out_predictions,
    save_held_out_predictions,
)

ROOT = "/data/release"


@pytest.fixture
def record(tmp_path):
    """Session 190923's neurons 4, 0, 7 and 201025's neuron 2, with predictions that name their row."""
    count = held_out_indices("190923")[1].size
    predictions = {"190923": ([4, 0, 7], np.arange(3)[:, None] + np.zeros((3, count), np.float32)),
                   "201025": ([2], np.full((1, held_out_indices("201025")[1].size), 9.0, np.float32))}
    save_held_out_predictions(tmp_path, predictions, "kernel", ROOT)
    return tmp_path


def test_the_predictions_of_the_asked_models_come_back_in_their_order(record):
    models = [ModelId("190923", 7), ModelId("201025", 2), ModelId("190923", 4)]
    chosen, reason = load_held_out_predictions(record, models, ["190923", "201025"], "kernel", ROOT)
    assert reason == ""
    assert chosen["190923"].dtype == np.float32
    np.testing.assert_array_equal(chosen["190923"][:, 0], [2, 0])
    np.testing.assert_array_equal(chosen["201025"][:, :3], 9.0)
    # Only the sessions asked for.
    assert set(load_held_out_predictions(record, models, ["201025"], "kernel", ROOT)[0]) == {"201025"}


@pytest.mark.parametrize("change, expected", [
    ({"engine": "tensorflow"}, "engine 'kernel', not 'tensorflow'"),
    ({"data_root": "/elsewhere"}, "data_root '/data/release', not '/elsewhere'"),
    ({"models": [ModelId("190923", 5)]}, "lacks session 190923's neurons [5]"),
    ({"sessions": ["210225"]}, "no predictions for session 210225"),
])
def test_anything_that_differs_is_a_reason_to_predict(record, change, expected):
    models = change.get("models", [ModelId("190923", 0)])
    chosen, reason = load_held_out_predictions(record, models, change.get("sessions", ["190923"]),
                                               change.get("engine", "kernel"), change.get("data_root", ROOT))
    assert chosen is None
    assert expected in reason


def test_other_images_missing_files_and_unreadable_files_are_reasons(record, tmp_path):
    with np.load(record / FILE_NAME) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["images_190923"] = arrays["images_190923"][::-1]
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / FILE_NAME, **arrays)
    models = [ModelId("190923", 0)]
    assert "other images" in load_held_out_predictions(other, models, ["190923"], "kernel", ROOT)[1]
    assert f"no {FILE_NAME}" in load_held_out_predictions(tmp_path / "none", models, ["190923"], "kernel", ROOT)[1]
    (other / FILE_NAME).write_bytes(b"not a zip")
    chosen, reason = load_held_out_predictions(other, models, ["190923"], "kernel", ROOT)
    assert chosen is None and "cannot be read" in reason

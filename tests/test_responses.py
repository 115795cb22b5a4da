"""Released V4 responses: shapes, NaN padding, repeat averages, splits, errors."""

from __future__ import annotations

import numpy as np
import pytest

from classes.data.responses import (
    available_response_sessions,
    load_held_out,
    load_raw,
    load_repeat_averaged,
    load_training,
    repeat_average,
    response_path,
)
from classes.data.sessions import SESSIONS, get_session

RAW_SESSIONS = ("201016", "210325")


def _tmp_data_root(tmp_path, data_root, kind_folder: str):
    """A data root whose ``kind_folder`` is a real, empty folder to fill."""
    root = tmp_path / "release"
    folder = root / "data_V4_responses" / kind_folder
    folder.mkdir(parents=True)
    (root / "data_compact_models").mkdir()
    (root / "data_compact_models" / "models_keras").symlink_to(
        data_root / "data_compact_models" / "models_keras"
    )
    return root, folder


@pytest.mark.parametrize("session_id", list(SESSIONS))
def test_repeat_averaged_shape_matches_table(data_root, session_id):
    responses = load_repeat_averaged(session_id, data_root)
    session = get_session(session_id)
    assert responses.shape == (session.num_neurons, session.num_images_in_file)
    assert responses.dtype == np.float64
    assert np.all(np.isfinite(responses))
    # Spike counts averaged over repeats are non-negative.
    assert responses.min() >= 0


def test_every_session_has_repeat_averaged_file(data_root):
    assert available_response_sessions("repeat_averaged", data_root) == sorted(SESSIONS)
    assert available_response_sessions("raw", data_root) == list(RAW_SESSIONS)


@pytest.mark.parametrize("session_id, max_repeats", [("201016", 10), ("210325", 10)])
def test_raw_shape_and_trailing_nan_padding(data_root, session_id, max_repeats):
    raw = load_raw(session_id, data_root)
    session = get_session(session_id)
    assert raw.shape == (session.num_neurons, session.num_images_in_file, max_repeats)
    missing = np.isnan(raw)
    counts = np.sum(~missing, axis=2)
    # Trailing only: the first `count` repeats hold numbers, the rest NaN.
    positions = np.arange(max_repeats)
    expected_missing = positions[None, None, :] >= counts[:, :, None]
    np.testing.assert_array_equal(missing, expected_missing)
    assert counts.min() >= 1
    # Repeat counts are per image, shared by every neuron of the session.
    assert np.all(counts == counts[:1])
    observed = raw[~missing]
    np.testing.assert_array_equal(observed, np.round(observed))  # spike counts
    assert observed.min() >= 0


@pytest.mark.parametrize("session_id", RAW_SESSIONS)
def test_repeat_average_of_raw_equals_released_file(data_root, session_id):
    raw = load_raw(session_id, data_root)
    released = load_repeat_averaged(session_id, data_root)
    # Exact: the release's repeat-averaged file is the NaN-mean of its raw file.
    np.testing.assert_array_equal(repeat_average(raw), released)
    np.testing.assert_array_equal(np.nanmean(raw, axis=2), released)


def test_repeat_average_synthetic_known_answer():
    raw = np.array([[[1.0, 2.0, np.nan], [4.0, np.nan, np.nan]], [[0.0, 0.0, 3.0], [np.nan] * 3]])
    averaged = repeat_average(raw)
    np.testing.assert_array_equal(averaged[0], [1.5, 4.0])
    assert averaged[1, 0] == 1.0
    assert np.isnan(averaged[1, 1])
    with pytest.raises(ValueError, match="neurons, images, repeats"):
        repeat_average(np.zeros((3, 4)))


@pytest.mark.parametrize("session_id", ["190923", "211022"])
def test_load_held_out_halves(data_root, session_id):
    full = load_repeat_averaged(session_id, data_root)
    fit, evaluation, numbers = load_held_out(session_id, data_root)
    half = full.shape[1] // 2
    assert fit.shape == evaluation.shape == (full.shape[0], half)
    np.testing.assert_array_equal(fit, full[:, :half])
    np.testing.assert_array_equal(evaluation, full[:, half:])
    np.testing.assert_array_equal(numbers, np.arange(half + 1, full.shape[1] + 1))


def test_load_held_out_raw_of_test_session_is_missing(data_root):
    # No test session's raw repeats are in this release snapshot.
    with pytest.raises(FileNotFoundError, match="201016, 210325"):
        load_held_out("190923", data_root, kind="raw")


def test_load_held_out_refuses_training_session(data_root):
    with pytest.raises(ValueError, match="not a held-out test session"):
        load_held_out("201016", data_root)


def test_load_training_skips_left_out_images(data_root):
    responses, numbers = load_training("190925", data_root)
    full = load_repeat_averaged("190925", data_root)
    assert responses.shape == (36, 900)
    np.testing.assert_array_equal(responses[:, :600], full[:, :600])
    np.testing.assert_array_equal(responses[:, 600:], full[:, 900:])
    assert numbers[599] == 600 and numbers[600] == 901


def test_missing_raw_file_lists_present_sessions(data_root):
    with pytest.raises(FileNotFoundError) as error:
        load_raw("211022", data_root)
    message = str(error.value)
    assert "responses_211022.npy" in message
    assert "201016, 210325" in message


def test_unknown_session_and_kind(data_root):
    with pytest.raises(ValueError, match="Unknown session"):
        load_repeat_averaged("999999", data_root)
    with pytest.raises(ValueError, match="kind must be one of"):
        response_path("190923", "averaged", data_root)


@pytest.mark.parametrize("keep_bytes", [50, 1000, -8])
def test_truncated_npy_raises_value_error(tmp_path, data_root, keep_bytes):
    root, folder = _tmp_data_root(tmp_path, data_root, "responses_repeat_averaged")
    source = data_root / "data_V4_responses" / "responses_repeat_averaged" / "responses_190923.npy"
    content = source.read_bytes()
    (folder / source.name).write_bytes(content[:keep_bytes])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_repeat_averaged("190923", root)


def test_file_with_wrong_shape_raises_value_error(tmp_path, data_root):
    root, folder = _tmp_data_root(tmp_path, data_root, "responses_repeat_averaged")
    # 190923's responses saved under 201025's name: 33 neurons, not 89.
    source = data_root / "data_V4_responses" / "responses_repeat_averaged" / "responses_190923.npy"
    np.save(folder / "responses_201025.npy", np.load(source))
    with pytest.raises(ValueError, match=r"expects \(89, 1200\)"):
        load_repeat_averaged("201025", root)


def test_tmp_root_lists_only_its_own_files(tmp_path, data_root):
    root, folder = _tmp_data_root(tmp_path, data_root, "responses_raw")
    source = data_root / "data_V4_responses" / "responses_raw" / "responses_210325.npy"
    (folder / source.name).symlink_to(source)
    np.testing.assert_array_equal(load_raw("210325", root), load_raw("210325", data_root))
    with pytest.raises(FileNotFoundError, match="raw responses here: 210325\\."):
        load_raw("201016", root)


@pytest.mark.parametrize("call", ["load_held_out", "available_response_sessions"])
def test_unknown_kind_raises_value_error(data_root, call):
    with pytest.raises(ValueError, match="kind must be one of"):
        if call == "load_held_out":
            load_held_out("190923", data_root, kind="averaged")
        else:
            available_response_sessions("averaged", data_root)

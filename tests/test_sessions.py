"""The encoded session table against the release's readme, and its splits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from classes.data import sessions
from classes.data.sessions import (
    SESSIONS,
    TEST_SESSIONS,
    get_session,
    held_out_indices,
    training_image_indices,
)

_README = "data_V4_responses/readme.txt"
# A table row: session, animal, split, neurons, repeats, images, image types.
_ROW = re.compile(
    r"^(\d{6})\s+(WE|PE|RA)\s+(train|test|validation)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.+?)\s*$"
)


def _readme_rows(data_root) -> list[tuple]:
    """Parses the readme's data table into tuples, in file order."""
    text = (data_root / _README).read_text()
    _, table = text.split("Data table:", 1)
    rows = []
    for line in table.splitlines():
        match = _ROW.match(line.strip())
        if match:
            session_id, animal, split, neurons, repeats, images, types = match.groups()
            # The readme pads with tabs and, once (211103), a double space.
            types = " ".join(types.split())
            rows.append(
                (session_id, animal, split, int(neurons), int(repeats), int(images), types)
            )
    return rows


def _encoded_rows() -> list[tuple]:
    return [
        (
            session.session_id,
            session.animal,
            session.split,
            session.num_neurons,
            session.num_repeats,
            session.num_images,
            session.image_types,
        )
        for session in SESSIONS.values()
    ]


def test_readme_table_has_fifty_rows(data_root):
    rows = _readme_rows(data_root)
    assert len(rows) == 50
    assert len({row[0] for row in rows}) == 50


def test_encoded_table_equals_readme_line_by_line(data_root):
    readme_rows = _readme_rows(data_root)
    encoded_rows = _encoded_rows()
    assert len(encoded_rows) == len(readme_rows)
    for encoded, released in zip(encoded_rows, readme_rows, strict=True):
        assert encoded == released


def test_fifty_sessions_and_splits():
    assert len(SESSIONS) == 50
    splits = [session.split for session in SESSIONS.values()]
    # The readme labels 44 sessions train and 210325 (Bashivan images) test;
    # the paper's 45 training sessions are all but the 4 held out and 210224.
    assert splits.count("train") == 44
    assert splits.count("validation") == 1
    assert splits.count("test") == 5
    training = [s for s in SESSIONS if s not in TEST_SESSIONS and s != "210224"]
    assert len(training) == 45
    test_ids = [s.session_id for s in SESSIONS.values() if s.split == "test"]
    # 210325 (Bashivan images) is labelled test but has no compact models.
    assert sorted(test_ids) == sorted(TEST_SESSIONS + ("210325",))
    assert {session.animal for session in SESSIONS.values()} == {"WE", "PE", "RA"}
    assert sessions.VALIDATION_SESSION == "210224"
    assert get_session("210224").split == "validation"


def test_compact_model_sessions_sum_to_219_neurons():
    assert sum(get_session(session).num_neurons for session in TEST_SESSIONS) == 219
    assert [get_session(s).num_neurons for s in TEST_SESSIONS] == [33, 89, 55, 42]


@pytest.mark.parametrize(
    "session_id, neurons, repeats, images",
    [("190923", 33, 14, 1200), ("201025", 89, 12, 1200), ("210225", 55, 6, 1200), ("211022", 42, 20, 1600)],
)
def test_test_sessions_known_rows(session_id, neurons, repeats, images):
    session = get_session(session_id)
    assert (session.num_neurons, session.num_repeats, session.num_images) == (
        neurons,
        repeats,
        images,
    )
    assert session.num_images_in_file == images
    assert session.is_held_out_test


def test_images_in_file_differ_where_images_were_left_out():
    for session_id in ("190924", "190925", "190926", "190927", "190928", "190929"):
        assert get_session(session_id).num_images == 900
        assert get_session(session_id).num_images_in_file == 1200
    for session_id in ("201016", "201017"):
        assert get_session(session_id).num_images == 900
        assert get_session(session_id).num_images_in_file == 600
    differing = {s.session_id for s in SESSIONS.values() if s.num_images != s.num_images_in_file}
    assert len(differing) == 8


def test_get_session_accepts_int_and_padded_string():
    assert get_session(190923) is get_session("190923")
    assert get_session(" 211022 ").num_neurons == 42


@pytest.mark.parametrize("bad", ["190930", "abc", 0, ""])
def test_unknown_session_raises_value_error_naming_known_sessions(bad):
    with pytest.raises(ValueError) as error:
        get_session(bad)
    message = str(error.value)
    assert "Unknown session" in message
    assert "190923" in message and "211103" in message
    assert "Held-out test sessions" in message


@pytest.mark.parametrize(
    "session_id, half, total", [("190923", 600, 1200), ("201025", 600, 1200), ("210225", 600, 1200), ("211022", 800, 1600)]
)
def test_held_out_indices_known_answers(session_id, half, total):
    fit, evaluation = held_out_indices(session_id)
    np.testing.assert_array_equal(fit, np.arange(half))
    np.testing.assert_array_equal(evaluation, np.arange(half, total))
    assert np.intersect1d(fit, evaluation).size == 0


@pytest.mark.parametrize("session_id", ["210224", "210325", "190924"])
def test_held_out_indices_refuses_other_sessions(session_id):
    with pytest.raises(ValueError, match="not a held-out test session"):
        held_out_indices(session_id)


def test_training_image_indices_known_answers():
    indices = training_image_indices("190925")
    assert indices.shape == (900,)
    assert indices[0] == 0 and indices[599] == 599 and indices[600] == 900 and indices[-1] == 1199
    assert not np.any((indices >= 600) & (indices < 900))
    np.testing.assert_array_equal(training_image_indices("201016"), np.arange(600))
    np.testing.assert_array_equal(training_image_indices("211103"), np.arange(3000))
    np.testing.assert_array_equal(training_image_indices("210303"), np.arange(2049))
    # The gap applies to the six WE training sessions only, not to 190923.
    np.testing.assert_array_equal(training_image_indices("190923"), np.arange(1200))


def test_training_image_counts_match_table_except_short_files():
    for session in SESSIONS.values():
        count = len(training_image_indices(session.session_id))
        if session.session_id in ("201016", "201017"):
            # The readme counts 900 images, but the released files hold 600.
            assert count == 600
        else:
            assert count == session.num_images

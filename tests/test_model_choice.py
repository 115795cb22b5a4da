"""Choosing models from command-line text (classes/compact/choice.py)."""

import pytest

from classes.compact.choice import choose_from, choose_test_models, parse_neurons


def test_choose_from_keeps_order_drops_duplicates_and_converts():
    assert choose_from("200, 5,200", (5, 10, 200), "filters", int) == [200, 5]
    assert choose_from("all", ("a", "b"), "teachers") == ["a", "b"]


@pytest.mark.parametrize("text, message", [("7", "is not one of"), ("x", "is not valid"), (" , ", "chose nothing")])
def test_choose_from_rejects_bad_items(text, message):
    with pytest.raises(ValueError, match=message):
        choose_from(text, (5, 10, 200), "filters", int)


def test_choose_test_models_order_and_counts():
    given = choose_test_models("201025,190923", "0,2")
    assert [(item.session_id, item.neuron) for item in given] == [
        ("201025", 0), ("201025", 2), ("190923", 0), ("190923", 2)]
    released = choose_test_models("201025,190923", "0,2", release_order=True)
    assert [item.session_id for item in released] == ["190923", "190923", "201025", "201025"]
    # Every neuron of the four test sessions: the 219 compact models.
    assert len(choose_test_models("all", "all")) == 219
    assert parse_neurons("all", "190923") == list(range(33))


@pytest.mark.parametrize(
    "sessions, neurons, message",
    [("201016", "all", "not a test session"), ("190923", "zero", "comma-separated integers"),
     ("190923", " ", "No models chosen")],
)
def test_choose_test_models_rejects_bad_choices(sessions, neurons, message):
    with pytest.raises(ValueError, match=message):
        choose_test_models(sessions, neurons)


def test_neuron_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="33"):
        choose_test_models("190923", "33")

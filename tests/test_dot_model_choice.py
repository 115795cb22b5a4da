"""Choosing the Fig. 4 dot detector by the published facts (classes/analysis/dot_model_choice.py)."""

from __future__ import annotations

import pytest

from classes.analysis.dot_model_choice import CRITERIA, Candidate, centre_right, choose_candidate
from classes.reporting.published import published


def candidate(index, met, radius=5.0, dots=3, selectivity=2.0, measured=True):
    row = {"model": f"201025/{index}", "dot_selectivity": selectivity, "preferred_radius_px": radius,
           "preferred_dots_count": dots}
    row.update({name: position < met for position, name in enumerate(CRITERIA)})
    return Candidate(index, row, intact={} if measured else None)


def test_centre_right_is_right_of_centre_in_the_middle_rows():
    assert centre_right(55.5, 61.5)  # one and a half 4-px cells right of the centre (55.5)
    assert centre_right(40.0, 100.0)
    assert not centre_right(55.5, 57.5)  # less than one cell right
    assert not centre_right(55.5, 40.0)  # left
    assert not centre_right(20.0, 80.0)  # top third
    assert not centre_right(90.0, 80.0)  # bottom third


def test_choice_prefers_criteria_then_published_preference_then_selectivity():
    most = candidate(1, met=5, radius=4.0, dots=5)
    closer = candidate(2, met=5, radius=5.0, dots=4, selectivity=1.1)
    assert choose_candidate([most, closer, candidate(3, met=4)]) is closer
    assert choose_candidate([candidate(4, met=4, selectivity=9.0), most]) is most
    tie = candidate(5, met=5, radius=5.0, dots=4, selectivity=3.0)
    assert choose_candidate([closer, tie]) is tie
    assert choose_candidate([candidate(6, met=5, measured=False)]) is None
    assert closer.distance == pytest.approx(0 / 5 + 1 / 3)


def test_published_facts_are_registered():
    for key in ("dot_detector_layer3_filters", "dot_detector_preferred_dots", "dot_detector_preferred_radius",
                "dot_detector_preferred_location", "dot_detector_animal"):
        assert published(key).source.startswith(("Fig. 4", "Ext. Data Fig."))

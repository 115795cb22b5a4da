"""Tables of script 8's model choice: the candidates for the paper's Fig. 4 dot detector.

The choice itself is in :mod:`classes.analysis.dot_model_choice`; its
criteria come from the published facts of :mod:`classes.reporting.published`.
"""

from __future__ import annotations

import numpy as np

from classes.analysis.dot_model_choice import CRITERIA, MIN_LAYER2_FILTERS, DotDetectorChoice
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published

FACT_KEYS = ("dot_detector_layer3_filters", "dot_detector_preferred_dots", "dot_detector_preferred_radius",
             "dot_detector_preferred_location", "dot_detector_animal")
# How each fact reads in a table cell: "{value}" goes in place.
FACT_FORMATS = ("paper layer 3: {value} filters", "{value} dots", "radius {value} px", "{value}")


def published_facts(with_sources: bool = False) -> str:
    """The four usable facts about the Fig. 4 model, e.g. "paper layer 3: at least 12 filters; ..."."""
    return "; ".join(form.format(value=published(key).value) + (f" ({published(key).source})" if with_sources else "")
                     for key, form in zip(FACT_KEYS[:4], FACT_FORMATS, strict=True))


def chosen_model_name(choice: DotDetectorChoice) -> str:
    """``"<session>/<neuron>"`` of the studied model (as ``--model`` takes it)."""
    return choice.chosen.row["model"]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "-" if value is None else format(value, fmt)


def format_candidates(choice: DotDetectorChoice) -> str:
    """The candidates table printed by script 8, with the criteria it used."""
    lines = [f"Which model is the paper's Fig. 4 dot detector? Published facts: {published_facts(True)}.",
             "Criteria (this project's reading of them):"]
    lines += [f"  {number}. {text}" for number, text in enumerate(CRITERIA.values(), start=1)]
    lines.append(f"  Not used: {published('dot_detector_animal').value} ({published('dot_detector_animal').source}); "
                 "the paper does not say which animal those were.")
    lines.append(f"{choice.num_enough_filters} of {choice.num_screened} screened models have >= {MIN_LAYER2_FILTERS} "
                 f"filters in code layer2; {len(choice.candidates)} measured (chosen by: {choice.how}):")
    lines.append(f"  {'model':11s} {'animal':6s} {'layer2':>6s} {'selectivity':>11s} {'dots':>5s} {'radius px':>9s} "
                 f"{'peak (row, column) px':>22s}  criteria met")
    ordered = sorted(choice.candidates, key=lambda candidate: (-candidate.met, candidate.distance))
    for candidate in ordered:
        row = candidate.row
        peak = ("-" if row.get("peak_row_px") is None
                else f"({row['peak_row_px']:.1f}, {row['peak_column_px']:.1f})")
        met = "".join(str(number) for number, name in enumerate(CRITERIA, start=1) if row.get(name))
        mark = "  <- studied" if candidate is choice.chosen else ""
        lines.append(f"  {row['model']:11s} {row['animal']:6s} {row['layer2_filters_count']:>6d} "
                     f"{row['dot_selectivity']:>11.2f} {_cell(row, 'preferred_dots_count', 'd'):>5s} "
                     f"{_cell(row, 'preferred_radius_px', 'g'):>9s} {peak:>22s}  {candidate.met}/{len(CRITERIA)}"
                     f" ({met or 'none'}){mark}")
    return "\n".join(lines)


def candidate_rows(choice: DotDetectorChoice) -> list[dict]:
    """Rows of ``candidates.csv``: every measured candidate, its measurements and criteria."""
    columns = ("model", "animal", "layer2_filters_count", "dot_selectivity", "preferred_dots_count",
               "preferred_radius_px", "peak_row_px", "peak_column_px", *CRITERIA)
    return [{**{column: candidate.row.get(column) for column in columns}, "criteria_met": candidate.met,
             "studied": candidate is choice.chosen} for candidate in choice.candidates]


def choice_comparison_row(choice: DotDetectorChoice) -> dict:
    """The comparison row: does the studied model have the published Fig. 4 model's properties?"""
    row = choice.chosen.row
    reproduced = (f"{row['model']}: {row['layer2_filters_count']} filters, {row.get('preferred_dots_count', '-')} "
                  f"dots, radius {_cell(row, 'preferred_radius_px', 'g')} px, peak at "
                  f"({_cell(row, 'peak_row_px', '.1f')}, {_cell(row, 'peak_column_px', '.1f')}) px")
    all_met = choice.chosen.met == len(CRITERIA)
    return comparison_row(
        "studied model has the Fig. 4 model's published properties (layer-3 filters, dots, radius, location)",
        published_facts(), reproduced, "reproduced" if all_met else "differs",
        f"chosen by {choice.how}; {choice.chosen.met} of {len(CRITERIA)} criteria met (thresholds are this "
        f"project's: see the candidates table); dot selectivity {np.nan_to_num(row['dot_selectivity']):.2f}",
    )

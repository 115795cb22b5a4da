"""Which compact model is the paper's Fig. 4 dot detector? Choosing it by the published facts.

The paper does not name the model it studies in Fig. 4; it states facts
about it (registry keys of :mod:`classes.reporting.published`):

- ``dot_detector_layer3_filters``: paper layer 3 (code ``layer2``) has at
  least 12 filters (Fig. 4e ranks them and calls 12 the strongest);
- ``dot_detector_preferred_dots``: its preferred stimuli hold two to five
  dots, about three;
- ``dot_detector_preferred_radius``: it prefers dots of radius about 5 px;
- ``dot_detector_preferred_location``: centre-right of the image;
- ``dot_detector_animal``: it matched a neuron of another animal than the five
  dot detectors of Ext. Data Fig. 6. The paper does not say which animal
  those five were, so this fact cannot single out a released model; the
  table shows each candidate's animal and this module does not use it.

Criteria, as this project reads them (:data:`CRITERIA`): at least 12 filters
in code layer2; dot-selective (selectivity > 1 in the screen); number-tuning
peak at 2-5 dots; size-tuning peak at radius 3-7 px; location-tuning peak
right of the image centre by at least one 28-grid cell (4 px) and inside the
middle third of the rows. Only models that pass the first two (cheap,
from the screen) have their tuning measured. The chosen model meets most
criteria; ties go to the smaller distance to the published preference
(``|radius - 5| / 5 + |dots - 3| / 3``), then to the higher dot selectivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from classes.analysis.dot_analysis import ResponseFunction
from classes.analysis.dot_detector import DotTuning, Screen, measure_dot_tuning
from classes.analysis.dot_stimuli import IMAGE_SIZE, grid_centers
from classes.compact.architecture import load_nums_filters
from classes.compact.model import load_compact_model
from classes.data.sessions import get_session

MIN_LAYER2_FILTERS = 12
PREFERRED_DOTS = (2, 5)
PREFERRED_RADIUS = (3.0, 7.0)
PUBLISHED_RADIUS, PUBLISHED_DOTS = 5.0, 3.0
# One cell of the paper's 28 x 28 location grid.
CENTRE_RIGHT_MARGIN = IMAGE_SIZE / 28
CRITERIA = {
    "layer2_filters": f"at least {MIN_LAYER2_FILTERS} filters in paper layer 3 (code layer2)",
    "dot_selective": "dot selectivity > 1 (a dot drives it more than any natural image of the screen)",
    "preferred_dots": f"number-tuning peak at {PREFERRED_DOTS[0]}-{PREFERRED_DOTS[1]} dots",
    "preferred_radius": f"size-tuning peak at radius {PREFERRED_RADIUS[0]:g}-{PREFERRED_RADIUS[1]:g} px",
    "centre_right": "location peak right of centre by >= 4 px, in the middle third of the rows",
}


@dataclass
class Candidate:
    """One model considered for Fig. 4, with the facts measured on it.

    Attributes:
        index: its position among the screened models.
        row: its row of the candidates table (:meth:`table_row`'s source).
        tuning: its location map and probe set (None when not measured).
        intact: its intact size and number tuning (None when not measured).
    """

    index: int
    row: dict
    tuning: DotTuning | None = None
    intact: dict | None = None

    @property
    def met(self) -> int:
        """How many :data:`CRITERIA` it meets."""
        return sum(bool(self.row.get(name, False)) for name in CRITERIA)

    @property
    def distance(self) -> float:
        """Distance of its preferences to the published ones (module doc); inf when not measured."""
        if self.intact is None:
            return float("inf")
        return (abs(self.row["preferred_radius_px"] - PUBLISHED_RADIUS) / PUBLISHED_RADIUS
                + abs(self.row["preferred_dots_count"] - PUBLISHED_DOTS) / PUBLISHED_DOTS)


def centre_right(row: float, column: float) -> bool:
    """Whether a location (pixels) is centre-right (module doc)."""
    centre = (IMAGE_SIZE - 1) / 2
    return bool(column - centre >= CENTRE_RIGHT_MARGIN and IMAGE_SIZE / 3 - 0.5 <= row <= 2 * IMAGE_SIZE / 3 - 0.5)


def screen_candidates(screen: Screen, data_root, requested: int | None = None) -> list[Candidate]:
    """The screened models that pass the cheap criteria (or only ``requested``), tuning not yet measured."""
    indices = range(len(screen.models)) if requested is None else [requested]
    candidates = []
    for index in indices:
        identifier, screen_row = screen.models[index], screen.rows[index]
        layer2 = int(load_nums_filters(identifier, data_root)[2])
        row = {"model": f"{identifier.session_id}/{identifier.neuron}",
               "animal": get_session(identifier.session_id).animal, "layer2_filters_count": layer2,
               "dot_selectivity": screen_row["dot_selectivity"],
               "layer2_filters": layer2 >= MIN_LAYER2_FILTERS, "dot_selective": screen_row["dot_selectivity"] > 1}
        if requested is not None or (row["layer2_filters"] and row["dot_selective"]):
            candidates.append(Candidate(index, row))
    return candidates


def measure_candidate(candidate: Candidate, screen: Screen, data_root, grid: int, radii, numbers, num_draws: int,
                      seed: int) -> Candidate:
    """Measures a candidate's location, size and number tuning and fills in its criteria.

    Args:
        candidate: from :func:`screen_candidates`.
        screen: the screen it comes from (its best dot's polarity and radius).
        data_root: the release folder.
        grid, radii, numbers, num_draws, seed: as for
            :func:`classes.analysis.dot_detector.measure_dot_tuning`.

    Returns:
        The candidate, with ``tuning``, ``intact`` and its row completed.
    """
    identifier, screen_row = screen.models[candidate.index], screen.rows[candidate.index]
    model = load_compact_model(identifier.session_id, identifier.neuron, "npy", data_root=data_root)
    response_function = ResponseFunction(model)
    tuning = measure_dot_tuning(response_function, screen_row["best_polarity"], screen_row["best_radius"], grid,
                                radii, numbers, num_draws, seed)
    intact = tuning.probe.evaluate(response_function(tuning.probe.images))
    number_tuning = np.nan_to_num(intact["number_tuning"], nan=-np.inf)
    dots = int(tuning.probe.numbers[int(np.argmax(number_tuning))])
    radius = float(tuning.probe.radii[int(np.argmax(intact["size_tuning"]))])
    row_px, column_px = (float(value) for value in grid_centers(grid)[tuning.peak])
    candidate.row.update({
        "preferred_dots_count": dots, "preferred_radius_px": radius,
        "peak_row_px": row_px, "peak_column_px": column_px,
        "preferred_dots": PREFERRED_DOTS[0] <= dots <= PREFERRED_DOTS[1],
        "preferred_radius": PREFERRED_RADIUS[0] <= radius <= PREFERRED_RADIUS[1],
        "centre_right": centre_right(row_px, column_px),
    })
    candidate.tuning, candidate.intact = tuning, intact
    return candidate


def choose_candidate(candidates: list[Candidate]) -> Candidate | None:
    """Most criteria met, then the smallest distance to the published preference, then the highest selectivity."""
    measured = [candidate for candidate in candidates if candidate.intact is not None]
    if not measured:
        return None
    return min(measured, key=lambda candidate: (-candidate.met, candidate.distance,
                                                -np.nan_to_num(candidate.row["dot_selectivity"], nan=-np.inf)))


@dataclass
class DotDetectorChoice:
    """The studied model and how it was chosen.

    Attributes:
        chosen: the studied model, its tuning measured.
        candidates: every candidate measured (the chosen one among them).
        how: ``"published facts"``, ``"--model"`` or the fallback's reason.
        num_screened: models screened.
        num_enough_filters: of those, models with at least
            :data:`MIN_LAYER2_FILTERS` filters in code layer2.
    """

    chosen: Candidate
    candidates: list[Candidate]
    how: str
    num_screened: int
    num_enough_filters: int


def choose_dot_detector(screen: Screen, data_root, grid: int, radii, numbers, num_draws: int, seed: int,
                        requested: int | None = None) -> DotDetectorChoice:
    """Measures the candidates (or the ``--model``) and chooses the studied dot detector.

    Args:
        screen: the screen of the models.
        data_root: the release folder.
        grid, radii, numbers, num_draws, seed: the tuning settings
            (:func:`classes.analysis.dot_detector.measure_dot_tuning`).
        requested: index of a model asked for with ``--model``; None to
            choose by the published facts.

    Returns:
        The :class:`DotDetectorChoice`. When no screened model passes the
        first two criteria, the most dot-selective model is studied and
        ``how`` says so.
    """
    def measure(candidate):
        return measure_candidate(candidate, screen, data_root, grid, radii, numbers, num_draws, seed)

    candidates = [measure(candidate) for candidate in tqdm(screen_candidates(screen, data_root, requested),
                                                           desc="candidate dot detectors (tuning)")]
    chosen = choose_candidate(candidates)
    how = "--model" if requested is not None else "published facts"
    if chosen is None:
        chosen = measure(screen_candidates(screen, data_root, int(screen.order[0]))[0])
        candidates.append(chosen)
        how = (f"most dot-selective: no screened model has >= {MIN_LAYER2_FILTERS} filters in code layer2 "
               "and dot selectivity > 1")
    enough = sum(int(load_nums_filters(identifier, data_root)[2]) >= MIN_LAYER2_FILTERS
                 for identifier in screen.models)
    return DotDetectorChoice(chosen, candidates, how, len(screen.models), enough)

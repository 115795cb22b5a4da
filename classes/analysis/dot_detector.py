"""Finding the dot-detecting compact model and probing it (Fig. 4, Ext. Data Fig. 5-6).

The steps of ``script8_dot_detector.py``, on top of the definitions of
:mod:`classes.analysis.dot_analysis`:

1. :func:`screen_models`: every model sees single dots of each polarity and
   radius on a grid, and normal images; its dot selectivity ranks it.
2. :func:`measure_dot_tuning`: the chosen model's response to its preferred
   dot at each cell of a location grid, its receptive field, and the probe
   set (size tuning around the peak, number tuning inside the field).
3. :func:`ablation_study`: every filter of some layers ablated alone, then
   a layer's filters ablated cumulatively until dot-size invariance.

Layer numbering: paper layers 1-5 are the code's ``layer0``..``layer4``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from classes.analysis.dot_analysis import (
    ProbeSet,
    ResponseFunction,
    ablation_scan,
    build_probe_set,
    cumulative_ablation,
    dot_selectivity_index,
)
from classes.analysis.dot_stimuli import BLACK, WHITE, blank_image, grid_centers, single_dot_images
from classes.compact.architecture import ModelId
from classes.data.normal_images import load_normal_images
from classes.data.preprocessing import recenter_images, uncenter_images
from classes.prediction import predict

__all__ = [
    "POLARITIES",
    "AblationStudy",
    "DotTuning",
    "Screen",
    "ablation_study",
    "measure_dot_tuning",
    "receptive_field_cells",
    "screen_models",
    "screen_stimuli",
    "screened_index",
]

POLARITIES = {"black": BLACK, "white": WHITE}


@dataclass
class Screen:
    """Every screened model's responses to dots and normal images.

    Attributes:
        models: the screened model ids.
        rows: one dict per model: ``dot_selectivity``, the largest dot and
            natural responses, the mean natural response, the best dot
            (``best_polarity``, ``best_radius``, ``best_row``,
            ``best_column``) and ``best_natural_image`` (``session/number``).
        natural: the normal images, uncentred uint8 ``(num_natural, 112, 112, 3)``.
        natural_responses: ``(num_models, num_natural)``.
        dots: the dot images, uint8 ``(num_dots, 112, 112, 3)``.
        labels: ``(polarity, radius, (row, column))`` of each dot image.
    """

    models: list[ModelId]
    rows: list[dict]
    natural: np.ndarray
    natural_responses: np.ndarray
    dots: np.ndarray
    labels: list[tuple]

    @property
    def order(self) -> np.ndarray:
        """Model indices, most dot-selective first (an undefined selectivity last)."""
        return np.argsort([-row["dot_selectivity"] if np.isfinite(row["dot_selectivity"]) else np.inf
                           for row in self.rows])


@dataclass
class DotTuning:
    """The chosen model's location map, receptive field and probe set.

    Attributes:
        location: ``(grid, grid)`` responses to the preferred dot at each cell.
        peak: ``(row, column)`` of the best cell.
        rf_mask: ``(grid, grid)`` cells of the receptive field.
        probe: the stimuli of the size and number tuning.
    """

    location: np.ndarray
    peak: tuple
    rf_mask: np.ndarray
    probe: ProbeSet


@dataclass
class AblationStudy:
    """Single-filter and cumulative ablations of the chosen model.

    Attributes:
        intact: the intact model's :meth:`ProbeSet.evaluate`.
        ablations: one row per filter ablated alone (:func:`ablation_scan`).
        cumulative: code layer -> the steps of :func:`cumulative_ablation`.
    """

    intact: dict
    ablations: list[dict]
    cumulative: dict[int, list[dict]]


def screened_index(identifier: ModelId, models: list[ModelId]) -> int:
    """Position of ``--model`` among the screened models.

    Raises:
        ValueError: the model is not screened (a ``--num-models`` subset).
    """
    if identifier not in models:
        raise ValueError(f"--model {identifier} is not among the screened models; drop --num-models.")
    return models.index(identifier)


def screen_stimuli(grid: int, radii) -> tuple[np.ndarray, list[tuple]]:
    """Single dots of each polarity and radius at each cell of a ``grid`` x ``grid`` grid.

    Returns:
        ``(images, labels)``: uint8 ``(2 * len(radii) * grid**2, 112, 112, 3)``
        (polarity-major, then radius, then cell) and ``(polarity, radius,
        (row, column))`` of each image.
    """
    centers = grid_centers(grid).reshape(-1, 2)
    images, labels = [], []
    for polarity, value in POLARITIES.items():
        for radius in radii:
            images.append(single_dot_images(centers, radius, value))
            labels += [(polarity, radius, tuple(center)) for center in centers]
    return np.concatenate(images), labels


def _screen_row(identifier: ModelId, dot_responses, natural_responses, labels, picked) -> dict:
    """One model's row of the screen (see :class:`Screen`)."""
    polarity, radius, center = labels[int(np.argmax(dot_responses))]
    session, number = picked[int(np.argmax(natural_responses))]
    return {
        "session": identifier.session_id, "neuron": identifier.neuron,
        "dot_selectivity": dot_selectivity_index(dot_responses, natural_responses),
        "max_dot_response": dot_responses.max(), "max_natural_response": natural_responses.max(),
        "mean_natural_response": natural_responses.mean(), "best_polarity": polarity,
        "best_radius": radius, "best_row": center[0], "best_column": center[1],
        "best_natural_image": f"{session}/{number}",
    }


def screen_models(models: list[ModelId], data_root, num_natural: int, seed: int, grid: int, radii) -> Screen:
    """Every model's responses to single dots (:func:`screen_stimuli`) and normal images.

    Args:
        models: the models screened.
        data_root: the release folder.
        num_natural: normal images drawn (at least 2).
        seed: seed of the draw.
        grid: dot positions per side.
        radii: dot radii in pixels.

    Returns:
        The :class:`Screen`.
    """
    recentred, picked = load_normal_images(num_natural, seed, data_root)
    natural = uncenter_images(recentred)
    dots, labels = screen_stimuli(grid, radii)
    stimuli = np.concatenate([recenter_images(dots), recentred])
    responses = predict(list(models), stimuli, data_root=data_root, show_progress=True).astype(np.float64)
    rows = [_screen_row(identifier, row[: len(dots)], row[len(dots):], labels, picked)
            for identifier, row in zip(models, responses, strict=True)]
    return Screen(list(models), rows, natural, responses[:, len(dots):], dots, labels)


def receptive_field_cells(location: np.ndarray, baseline: float, centers: np.ndarray):
    """Grid cells whose driven response (above the blank's) is at least half the peak's.

    Returns:
        ``(centres (K, 2), mask (grid, grid))``; no cells when nothing is driven.
    """
    driven = location - baseline
    mask = driven >= 0.5 * driven.max() if driven.max() > 0 else np.zeros_like(driven, bool)
    return centers[mask], mask


@functools.lru_cache(maxsize=8)
def location_images(grid: int, radius: float, value: int) -> np.ndarray:
    """The location map's stimuli: one dot of ``radius`` and ``value`` at each of the ``grid`` x ``grid`` centres.

    Cached (read-only): models that prefer the same dot share them (the
    explorer tunes all 219 models, whose preferred dots take 6 forms).
    """
    images = single_dot_images(grid_centers(grid).reshape(-1, 2), radius, value)
    images.flags.writeable = False
    return images


def measure_dot_tuning(response_function: ResponseFunction, polarity: str, radius: float, grid: int, radii,
                       numbers, num_draws: int, seed: int) -> DotTuning:
    """The location map of the preferred dot, then the probe set around its peak.

    Args:
        response_function: the chosen model's responses to raw images.
        polarity: its preferred dot's polarity (a key of :data:`POLARITIES`).
        radius: its preferred dot's radius (pixels); also the number stimuli's.
        grid: location cells per side.
        radii: radii of the size tuning, shown at the 3 x 3 cells around the peak.
        numbers: dot counts of the number tuning, placed inside the receptive field.
        num_draws: random placements per dot count.
        seed: seed of the placements.

    Returns:
        The :class:`DotTuning`.
    """
    value = POLARITIES[polarity]
    centers = grid_centers(grid)
    location = response_function(location_images(grid, radius, value)).reshape(grid, grid)
    peak = np.unravel_index(int(np.argmax(location)), location.shape)
    neighbours = [(peak[0] + row, peak[1] + column) for row in (-1, 0, 1) for column in (-1, 0, 1)]
    size_centers = np.array([centers[cell] for cell in neighbours if 0 <= cell[0] < grid and 0 <= cell[1] < grid])
    baseline = float(response_function(blank_image())[0])
    rf_centers, rf_mask = receptive_field_cells(location, baseline, centers)
    probe = build_probe_set(radii, size_centers, numbers, radius, rf_centers, num_draws, value, seed)
    return DotTuning(location, peak, rf_mask, probe)


def ablation_study(model, response_function: ResponseFunction, probe: ProbeSet, ablation_layers,
                   cumulative_layers, threshold: float) -> AblationStudy:
    """Each filter of ``ablation_layers`` ablated alone, then cumulative ablations.

    The filters of each cumulative layer are ablated in the order of their
    single-filter dot-size invariance (highest first; a layer not in
    ``ablation_layers`` is scanned first and its rows added).

    Args:
        model: the chosen compact model (changed in place, then restored).
        response_function: its responses to raw images.
        probe: the probe set of :func:`measure_dot_tuning`.
        ablation_layers: code layers whose filters are ablated one by one.
        cumulative_layers: code layers ablated cumulatively.
        threshold: the dot-size invariance that ends a cumulative ablation.

    Returns:
        The :class:`AblationStudy`.
    """
    intact, ablations = ablation_scan(model, response_function, probe, ablation_layers)
    cumulative = {}
    for layer in cumulative_layers:
        layer_rows = [row for row in ablations if row["layer"] == layer]
        if not layer_rows:
            layer_rows = ablation_scan(model, response_function, probe, [layer])[1]
            ablations += layer_rows
        ranking = sorted(layer_rows, key=lambda row: -np.nan_to_num(row["size_invariance"], nan=-np.inf))
        cumulative[layer] = cumulative_ablation(model, response_function, probe, layer,
                                                [row["filter"] for row in ranking], threshold)
    return AblationStudy(intact, ablations, cumulative)

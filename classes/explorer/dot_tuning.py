"""Each model's dot selectivity and dot tuning (size, location, number), cached.

The definitions are script8's (:mod:`classes.analysis.dot_analysis`,
:mod:`classes.analysis.dot_detector`): the screen's best dot (polarity,
radius) gives the dot selectivity ``(max dot - mean natural) / (max natural
- mean natural)`` against the normal images among the explorer's images;
then :func:`classes.analysis.dot_detector.measure_dot_tuning` maps the
preferred dot over a ``grid`` x ``grid`` grid of locations, and the probe set
gives the size tuning (around the peak) and the number tuning (inside the
receptive field). Responses come from :func:`classes.prediction.predict`.
Each model's record is ``<folder>/<stem>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.analysis.dot_analysis import dot_selectivity_index
from classes.analysis.dot_detector import measure_dot_tuning
from classes.compact.architecture import ModelId, load_weights_npy
from classes.data.preprocessing import RecentringBuffer
from classes.prediction import predict
from classes.prediction.stacked import stack_compact_models
from classes.runtime import outputs

# script8's size and number tuning, with fewer random placements per number.
RADII = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
NUMBERS = (1, 2, 3, 4, 6, 8, 12, 16)
NUM_DRAWS = 5


def fast_response_function(identifier: ModelId, data_root, buffer: RecentringBuffer | None = None):
    """``raw uint8 images (N, 112, 112, 3) -> float64 (N,)`` responses of one model (fast engine).

    The model is loaded and folded once for all calls; the recentred images
    go to ``buffer`` (a new one when None), which models can share: fresh
    memory for every call was a third of the explorer's dot tuning.
    """
    stacked = stack_compact_models([load_weights_npy(identifier, data_root)], names=[str(identifier)])
    buffer = buffer or RecentringBuffer()

    def respond(raw_images) -> np.ndarray:
        return predict(stacked, buffer.recentred(raw_images))[0].astype(np.float64)

    return respond


def best_dot(dot_responses, dot_labels) -> dict:
    """The screen's dot that drives the model most: polarity, radius, row, column."""
    polarity, radius, (row, column) = dot_labels[int(np.argmax(dot_responses))]
    return {"best_polarity": polarity, "best_radius": float(radius), "best_row": float(row),
            "best_column": float(column)}


def measure_model(identifier: ModelId, dot_responses, normal_responses, dot_labels, grid: int, seed: int,
                  data_root, buffer: RecentringBuffer | None = None) -> dict:
    """One model's dot record: selectivity, best dot, location map, size and number tuning."""
    record = {"dot_selectivity": dot_selectivity_index(dot_responses, normal_responses),
              **best_dot(dot_responses, dot_labels), "grid": grid}
    respond = fast_response_function(identifier, data_root, buffer)
    tuning = measure_dot_tuning(respond, record["best_polarity"], record["best_radius"], grid, RADII, NUMBERS,
                                NUM_DRAWS, seed)
    evaluated = tuning.probe.evaluate(respond(tuning.probe.images))
    return record | {
        "location": tuning.location.tolist(), "peak": [int(value) for value in tuning.peak],
        "receptive_field": tuning.rf_mask.astype(int).tolist(), "baseline": evaluated["baseline"],
        "radii": list(RADII), "size_tuning": evaluated["size_tuning"].tolist(),
        "numbers": list(NUMBERS), "number_tuning": evaluated["number_tuning"].tolist(),
    }


def dot_records(models: list[ModelId], dot_responses: np.ndarray, normal_responses: np.ndarray, dot_labels,
                folder: Path, grid: int, seed: int, data_root) -> dict[str, dict]:
    """Every model's dot record, cached per model (resumable, progress bar).

    Args:
        models: the models, in the row order of the two response arrays.
        dot_responses: ``(M, D)`` responses to the screen's dots.
        normal_responses: ``(M, num_normal)`` responses to normal images.
        dot_labels: the screen's labels.
        folder: the cache folder.
        grid, seed: location grid per side; seed of the number stimuli.

    Returns:
        stem -> record (:func:`measure_model`).
    """
    records, pending = {}, []
    for row, identifier in enumerate(models):
        path = folder / f"{identifier.stem}.json"
        if path.is_file():
            records[identifier.stem] = json.loads(path.read_text())
        else:
            pending.append((row, identifier))
    buffer = RecentringBuffer()
    for row, identifier in tqdm(pending, desc="dot tuning", disable=not pending):
        record = measure_model(identifier, dot_responses[row], normal_responses[row], dot_labels, grid, seed,
                               data_root, buffer)
        outputs.write_json(folder / f"{identifier.stem}.json", record)
        records[identifier.stem] = json.loads((folder / f"{identifier.stem}.json").read_text())
    return records

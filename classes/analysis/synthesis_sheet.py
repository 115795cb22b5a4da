"""The resumable per-model records of ``script6_synthesize.py --all``.

Each model gets ``<folder>/<stem>.json`` (its numbers) and ``<stem>.npy``
(its maximizing synthesized image, uint8 ``(1, 112, 112, 3)``), both written
atomically, the ``.npy`` last: a model counts as done only when both exist,
so an interrupted run redoes at most the model it was working on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classes.compact.model import ModelId, all_model_ids
from classes.reporting.comparison import comparison_row
from classes.runtime import outputs
from classes.scoring.percent_changes import (
    KINDS,
    format_change,
    format_published,
    percent_changes,
    status_against,
    summarize,
)
from classes.scoring.percent_changes import PUBLISHED as PUBLISHED_CHANGES

CHANGES = ("maximizing_normal", "maximizing_synthesized")


def record_paths(folder: Path, identifier: ModelId) -> tuple[Path, Path]:
    """``(image .npy, record .json)`` of one model."""
    return folder / f"{identifier.stem}.npy", folder / f"{identifier.stem}.json"


def is_done(folder: Path, identifier: ModelId) -> bool:
    """Whether both of a model's files exist."""
    return all(path.is_file() for path in record_paths(folder, identifier))


def make_record(identifier: ModelId, synthesized_response: float, initial_response: float,
                normal_responses, calibration, calibration_note: str, settings: dict) -> dict:
    """One model's numbers: responses and the percent changes (all :data:`KINDS`).

    Args:
        synthesized_response: response to the saved (uint8) synthesized image.
        initial_response: response to the starting noise.
        normal_responses: ``(pool,)`` responses to the random normal images.
        calibration: ``(intercept, slope)`` or None.
        settings: e.g. steps, seed, grayscale; copied into the record.
    """
    normal_responses = np.asarray(normal_responses, np.float64)
    reference = float(normal_responses.mean())
    top = float(normal_responses.max())
    record = {
        "model": str(identifier), "session": identifier.session_id, "neuron": identifier.neuron,
        "synthesized_response": float(synthesized_response), "initial_response": float(initial_response),
        "normal_mean": reference, "normal_min": float(normal_responses.min()), "normal_max": top,
        "pool_size": int(normal_responses.size), **settings,
        "calibration": None if calibration is None else [float(value) for value in calibration],
        "calibration_note": calibration_note,
    }
    for name, value in (("maximizing_normal", top), ("maximizing_synthesized", synthesized_response)):
        changes = percent_changes(value, reference, normal_responses, calibration)
        record.update({f"{name}_{kind}": float(changes[kind]) for kind in KINDS})
    return record


def write_record(folder: Path, identifier: ModelId, image: np.ndarray, record: dict) -> None:
    """Writes the record, then the image (whose presence marks the model done).

    Raises:
        ValueError: the image is not one uint8 ``(1, 112, 112, 3)`` image.
    """
    image = np.asarray(image)
    if image.shape != (1, 112, 112, 3) or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (1, 112, 112, 3); got {image.dtype} {image.shape}.")
    image_path, record_path = record_paths(folder, identifier)
    outputs.write_json(record_path, record)
    outputs.write_npy(image_path, image)


def load_records(folder: Path) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Finished models, in :func:`classes.compact.model.all_model_ids` order.

    Returns:
        ``(records, images)``: the JSON records and a dict from the model's
        index among the 219 to its uint8 image ``(112, 112, 3)``.
    """
    records, images = [], {}
    if not Path(folder).is_dir():
        return records, images
    for index, identifier in enumerate(all_model_ids()):
        if is_done(folder, identifier):
            image_path, record_path = record_paths(folder, identifier)
            records.append(json.loads(record_path.read_text()))
            images[index] = np.load(image_path)[0]
    return records, images


def _number(value) -> float:
    return np.nan if value is None else float(value)


def summarize_records(records: list[dict]) -> dict | None:
    """Across-model percent changes (Fig. 2b-c counterpart); None for no records."""
    if not records:
        return None
    summary = {
        "num_models": len(records),
        "synthesized_above_top_normal": float(np.mean(
            [item["synthesized_response"] > item["normal_max"] for item in records])),
        "pool_sizes": sorted({item["pool_size"] for item in records}),
        "steps": sorted({item["steps"] for item in records}),
    }
    for name in CHANGES:
        summary[name] = {kind: summarize([_number(item[f"{name}_{kind}"]) for item in records])
                         for kind in KINDS}
    return summary


def per_model_changes(records: list[dict], name: str, kind: str = "calibrated") -> np.ndarray:
    """float64 ``(num_records,)`` of one percent change, NaN where missing."""
    return np.array([_number(item[f"{name}_{kind}"]) for item in records], np.float64)


def across_model_rows(across: dict) -> list[dict]:
    """Comparison rows of the across-model percent changes against Fig. 2b-c."""
    row = comparison_row
    table = []
    for name, label in (("maximizing_normal", "ACROSS MODELS: max. normal vs random normal"),
                        ("maximizing_synthesized", "ACROSS MODELS: max. synthesized vs random normal")):
        calibrated = across[name]["calibrated"]
        table.append(row(
            label, format_published(name), format_change(calibrated),
            status_against(PUBLISHED_CHANGES[name][0], calibrated["mean"]),
            f"{across['num_models']} models; model-predicted, calibrated to spike counts (211022's models "
            f"cannot be calibrated); raw-output formula {format_change(across[name]['raw'])}; % of normal "
            f"range {format_change(across[name]['percent_of_range'])}; pool {across['pool_sizes']} normal "
            "images; published: real neurons"))
    table.append(row("ACROSS MODELS: synthesized response above top normal image", "synthesized > normal",
                     f"{100 * across['synthesized_above_top_normal']:.0f}% of models", "approximate",
                     "published: +152.8% vs +137.3% on average for real neurons"))
    return table

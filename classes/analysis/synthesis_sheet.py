"""The resumable per-model records of ``script6_synthesize.py --all``, and the loops that make them.

Each model gets ``<folder>/<stem>.json`` (its numbers) and ``<stem>.npy``
(its maximizing synthesized image, uint8 ``(1, 112, 112, 3)``), both written
atomically, the ``.npy`` last: a model counts as done only when both exist,
so an interrupted run redoes at most the model it was working on. Its
minimizing image (same settings) is ``<stem>_minimize.npy`` (uint8
``(112, 112, 3)``) with ``<stem>_minimize.json`` (its response, the start's,
the settings and the climb; :func:`synthesize_direction`), made the same way; the explorer
(``script9_explorer.py``) shows both images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.analysis.causal_images import predict_raw
from classes.analysis.synthesis import synthesize_compact_models
from classes.compact.architecture import ModelId, all_model_ids, load_weights_npy
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.runtime import outputs
from classes.scoring.calibration import calibrate_models, pool_responses
from classes.scoring.percent_changes import KINDS, percent_changes, summarize

CHANGES = ("maximizing_normal", "maximizing_synthesized")
# Random normal images of the pool each model's percent changes are taken over.
SHEET_POOL_SIZE = 1000
# Models whose pool and calibration predictions run together.
CHUNK = 16
# Models whose gradient ascents run side by side in one graph (2 cores).
SYNTHESIS_GROUP = 2


def record_paths(folder: Path, identifier: ModelId) -> tuple[Path, Path]:
    """``(image .npy, record .json)`` of one model."""
    return folder / f"{identifier.stem}.npy", folder / f"{identifier.stem}.json"


def is_done(folder: Path, identifier: ModelId) -> bool:
    """Whether both of a model's files exist."""
    return all(path.is_file() for path in record_paths(folder, identifier))


def synthesize_group(group: list[ModelId], data_root, direction: str, num_steps: int, seed: int,
                     grayscale: bool) -> list[tuple]:
    """One image per model of ``group``, stepped side by side from their ``.npy`` weights.

    Returns:
        Per model ``(identifier, image, response, result)``: the image rounded
        to uint8 ``(1, 112, 112, 3)``, the model's response to that saved
        image, and the :class:`classes.analysis.synthesis.SynthesisResult`.
    """
    weight_lists = [load_weights_npy(identifier, data_root) for identifier in group]
    results = synthesize_compact_models(weight_lists, direction=direction, num_steps=num_steps, seed=seed,
                                        grayscale=grayscale, group_size=len(group))
    synthesized = []
    for identifier, weights, result in zip(group, weight_lists, results, strict=True):
        image = np.round(result.images).astype(np.uint8)
        synthesized.append((identifier, image, float(predict_raw(weights, image)[0]), result))
    return synthesized


def direction_paths(folder: Path, identifier: ModelId, direction: str) -> tuple[Path, Path]:
    """``(image .npy, record .json)`` of one model's image made by :func:`synthesize_direction`."""
    return folder / f"{identifier.stem}_{direction}.npy", folder / f"{identifier.stem}_{direction}.json"


def direction_done(folder: Path, identifier: ModelId, direction: str) -> bool:
    """Whether both files of a model's :func:`synthesize_direction` image exist."""
    return all(path.is_file() for path in direction_paths(folder, identifier, direction))


def synthesize_direction(pending: list[ModelId], folder: Path, data_root, direction: str, num_steps: int, seed: int,
                         grayscale: bool = False, source: str = "script6_synthesize.py --all") -> None:
    """One synthesized image per model, :data:`SYNTHESIS_GROUP` models at a time, each saved when done.

    Writes :func:`direction_paths`: the uint8 ``(112, 112, 3)`` image and a
    record with its response (to the saved, rounded image), the start's
    response, the settings, ``source`` and the response at every step.

    Args:
        pending: models to do.
        folder: where the files go.
        direction: ``"maximize"`` or ``"minimize"``.
        num_steps, seed, grayscale: synthesis settings.
        source: what made the image, kept in the record.
    """
    with tqdm(total=len(pending), desc=f"{direction[:-1]}ing images", disable=not pending) as bar:
        for start in range(0, len(pending), SYNTHESIS_GROUP):
            group = pending[start : start + SYNTHESIS_GROUP]
            for identifier, image, response, result in synthesize_group(group, data_root, direction, num_steps,
                                                                         seed, grayscale):
                record = {"model": str(identifier), "direction": direction, "response": response,
                          "initial_response": float(result.initial_responses[0]), "steps": num_steps, "seed": seed,
                          "grayscale": grayscale, "source": source,
                          "trajectory": [float(value) for value in result.trajectory[:, 0]]}
                image_path, record_path = direction_paths(folder, identifier, direction)
                outputs.write_json(record_path, record)
                outputs.write_npy(image_path, image[0])
            bar.update(len(group))


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
    """Finished models, in :func:`classes.compact.architecture.all_model_ids` order.

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


def load_across_models(folder: Path) -> tuple[dict | None, list[str]]:
    """Across-model percent changes of the records in ``folder``, and a note when there are none.

    Returns:
        ``(across, notes)``: :func:`summarize_records`' result and a list
        holding the note that the changes come from ``--all`` (empty when
        there are records).
    """
    across = summarize_records(load_records(folder)[0])
    if across is not None:
        return across, []
    return None, ["across-model percent changes (Fig. 2b-c counterpart) come from --all; "
                  f"no --all results in {folder} yet"]


def per_model_changes(records: list[dict], name: str, kind: str = "calibrated") -> np.ndarray:
    """float64 ``(num_records,)`` of one percent change, NaN where missing."""
    return np.array([_number(item[f"{name}_{kind}"]) for item in records], np.float64)


def synthesize_sheet(pending: list[ModelId], folder: Path, data_root, num_steps: int, seed: int, grayscale: bool,
                     pool_size: int = SHEET_POOL_SIZE) -> None:
    """One maximizing image and record per model, each saved as soon as it is done (resumable).

    Models are synthesized :data:`SYNTHESIS_GROUP` at a time from their
    ``.npy`` weights (:func:`classes.analysis.synthesis.synthesize_compact_models`,
    traced once for all models; the images are those of
    :func:`classes.analysis.synthesis.synthesize_images` on each model alone,
    bit for bit).

    Args:
        pending: models to do.
        folder: where :func:`write_record` writes.
        num_steps, seed, grayscale: synthesis settings (one image per model).
        pool_size: random normal images (seeded) for the percent changes.
    """
    pool, _ = load_image_pool(normal_image_sessions(data_root), data_root, size=pool_size, seed=seed)
    settings = {"steps": num_steps, "seed": seed, "grayscale": grayscale}
    with tqdm(total=len(pending), desc="models") as bar:
        # Pool and calibration predictions of a chunk of models run together
        # (stacked fast path); each finished group is saved at once (resumable).
        for first in range(0, len(pending), CHUNK):
            chunk = pending[first : first + CHUNK]
            normal = pool_responses(chunk, pool, data_root, show_progress=False)
            calibrations = calibrate_models(chunk, data_root)
            for start in range(0, len(chunk), SYNTHESIS_GROUP):
                group = chunk[start : start + SYNTHESIS_GROUP]
                synthesized = synthesize_group(group, data_root, "maximize", num_steps, seed, grayscale)
                for row, (identifier, image, response, result) in enumerate(synthesized):
                    record = make_record(identifier, response, float(result.initial_responses[0]),
                                         normal[start + row], *calibrations[identifier.stem], settings)
                    write_record(folder, identifier, image, record)
                bar.update(len(group))


def sheet_notes(records: list[dict]) -> list[str]:
    """Notes on models not done yet and on models that cannot be calibrated."""
    notes = []
    if len(records) < 219:
        notes.append(f"{219 - len(records)} of 219 models have no synthesized image yet (run --all again to resume)")
    uncalibrated = sum(item["calibration"] is None for item in records)
    if uncalibrated:
        notes.append(f"{uncalibrated} models (session 211022) cannot be calibrated to spike counts: their "
                     "session's image zip is not in the release; they count in the raw and %-of-range rows only")
    return notes

"""Each model's maximizing and minimizing synthesized images, reused or made, cached.

The maximizing image is the one ``script6_synthesize.py --all`` saved
(``<script6 out>/all/<stem>.npy``, 300 steps, seed 0) when it exists;
otherwise it, and always the minimizing image, is synthesized here by
:func:`classes.analysis.synthesis.synthesize_images` (SPEC section 7) with
the same settings and cached as ``<folder>/<stem>_<direction>.npy``
(uint8 ``(112, 112, 3)``) and ``.json`` (its response, the start's response,
the settings, where it came from and the climb), the ``.npy`` written last
so that an interrupted build redoes at most one image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.analysis import synthesis_sheet
from classes.analysis.synthesis import synthesize_images
from classes.compact.architecture import ModelId
from classes.compact.model import load_compact_model
from classes.data.preprocessing import recenter_images
from classes.prediction import predict
from classes.runtime import outputs

DIRECTIONS = ("maximize", "minimize")


def _paths(folder: Path, identifier: ModelId, direction: str) -> tuple[Path, Path]:
    return folder / f"{identifier.stem}_{direction}.npy", folder / f"{identifier.stem}_{direction}.json"


def _from_script6(script6_folder, identifier: ModelId) -> dict | None:
    """The model's ``script6 --all`` image and record, or None when it has none."""
    if script6_folder is None or not synthesis_sheet.is_done(Path(script6_folder), identifier):
        return None
    image_path, record_path = synthesis_sheet.record_paths(Path(script6_folder), identifier)
    record = json.loads(record_path.read_text())
    return {"image": np.load(image_path)[0], "response": float(record["synthesized_response"]),
            "initial_response": float(record["initial_response"]), "steps": int(record["steps"]),
            "seed": int(record["seed"]), "source": f"script6_synthesize.py --all ({record_path.parent})",
            "trajectory": None}


def _from_cache(folder: Path, identifier: ModelId, direction: str) -> dict | None:
    image_path, record_path = _paths(folder, identifier, direction)
    if not (image_path.is_file() and record_path.is_file()):
        return None
    return json.loads(record_path.read_text()) | {"image": np.load(image_path)}


def _synthesize(identifier: ModelId, direction: str, steps: int, seed: int, folder: Path, data_root) -> dict:
    model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
    result = synthesize_images(model, num_images=1, direction=direction, num_steps=steps, seed=seed)
    image = np.round(result.images[0]).astype(np.uint8)
    # The saved image is rounded to whole pixels; its response is the one shown.
    response = float(predict([identifier], recenter_images(image[None]), data_root=data_root)[0, 0])
    record = {"response": response, "initial_response": float(result.initial_responses[0]), "steps": steps,
              "seed": seed, "source": "synthesized by script9_explorer.py",
              "trajectory": [float(value) for value in result.trajectory[:, 0]]}
    image_path, record_path = _paths(folder, identifier, direction)
    outputs.write_json(record_path, record)
    outputs.write_npy(image_path, image)
    return record | {"image": image}


def synthesized_images(models: list[ModelId], folder: Path, script6_folder, data_root, steps: int,
                       seed: int = 0) -> dict[str, dict]:
    """Both synthesized images of every model: reused, cached or made now (progress bar).

    Args:
        models: the models.
        folder: the cache folder of the images made here.
        script6_folder: ``script6_synthesize.py --all``'s ``all/`` folder (or None).
        data_root: the release.
        steps, seed: synthesis settings of the images made here (script6's: 300, 0).

    Returns:
        stem -> direction -> dict with ``image`` (uint8 ``(112, 112, 3)``),
        ``response``, ``initial_response``, ``steps``, ``seed``, ``source``
        and ``trajectory`` (the response at each step; None for script6's).
    """
    found, jobs = {}, []
    for identifier in models:
        found[identifier.stem] = {}
        for direction in DIRECTIONS:
            reused = _from_script6(script6_folder, identifier) if direction == "maximize" else None
            record = reused or _from_cache(folder, identifier, direction)
            if record is None:
                jobs.append((identifier, direction))
            else:
                found[identifier.stem][direction] = record
    for identifier, direction in tqdm(jobs, desc="synthesized images", disable=not jobs):
        found[identifier.stem][direction] = _synthesize(identifier, direction, steps, seed, folder, data_root)
    return found

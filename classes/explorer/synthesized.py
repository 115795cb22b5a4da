"""Each model's maximizing and minimizing synthesized images, reused or made, cached.

``script6_synthesize.py --all`` saves both for every model (``<script6
out>/all/<stem>.npy`` with its record, and ``<stem>_minimize.npy`` with its
record; 300 steps, seed 0); the explorer reuses them when they exist.
Otherwise an image is synthesized here by
:func:`classes.analysis.synthesis_sheet.synthesize_direction` (SPEC section
7, the same settings, models stepped two at a time) and cached as
``<folder>/<stem>_<direction>.npy`` (uint8 ``(112, 112, 3)``) and ``.json``
(its response, the start's response, the settings, where it came from and
the climb), the ``.npy`` written last so that an interrupted build redoes at
most one pair of models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classes.analysis import synthesis_sheet
from classes.compact.architecture import ModelId

DIRECTIONS = ("maximize", "minimize")
SOURCE = "synthesized by script9_explorer.py"


def _from_script6(script6_folder, identifier: ModelId, direction: str) -> dict | None:
    """The model's ``script6 --all`` image and record in ``direction``, or None when it has none."""
    if script6_folder is None:
        return None
    folder = Path(script6_folder)
    if direction == "minimize":
        record = _from_cache(folder, identifier, direction)
        return None if record is None else record | {"source": f"script6_synthesize.py --all ({folder})"}
    if not synthesis_sheet.is_done(folder, identifier):
        return None
    image_path, record_path = synthesis_sheet.record_paths(folder, identifier)
    record = json.loads(record_path.read_text())
    return {"image": np.load(image_path)[0], "response": float(record["synthesized_response"]),
            "initial_response": float(record["initial_response"]), "steps": int(record["steps"]),
            "seed": int(record["seed"]), "source": f"script6_synthesize.py --all ({record_path.parent})",
            "trajectory": None}


def _from_cache(folder: Path, identifier: ModelId, direction: str) -> dict | None:
    if not synthesis_sheet.direction_done(folder, identifier, direction):
        return None
    image_path, record_path = synthesis_sheet.direction_paths(folder, identifier, direction)
    return json.loads(record_path.read_text()) | {"image": np.load(image_path)}


def synthesized_images(models: list[ModelId], folder: Path, script6_folder, data_root, steps: int,
                       seed: int = 0) -> dict[str, dict]:
    """Both synthesized images of every model: reused, cached or made now (progress bars).

    Args:
        models: the models.
        folder: the cache folder of the images made here.
        script6_folder: ``script6_synthesize.py --all``'s ``all/`` folder (or None).
        data_root: the release.
        steps, seed: synthesis settings of the images made here (script6's: 300, 0).

    Returns:
        stem -> direction -> dict with ``image`` (uint8 ``(112, 112, 3)``),
        ``response``, ``initial_response``, ``steps``, ``seed``, ``source``
        and ``trajectory`` (the response at each step; None for script6's
        maximizing images, whose records do not keep it).
    """
    found = {identifier.stem: {} for identifier in models}
    for direction in DIRECTIONS:
        pending = []
        for identifier in models:
            record = _from_script6(script6_folder, identifier, direction) or _from_cache(folder, identifier, direction)
            if record is None:
                pending.append(identifier)
            else:
                found[identifier.stem][direction] = record
        synthesis_sheet.synthesize_direction(pending, Path(folder), data_root, direction, steps, seed, source=SOURCE)
        for identifier in pending:
            found[identifier.stem][direction] = _from_cache(Path(folder), identifier, direction)
    return found

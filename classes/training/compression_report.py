"""Scoring the stages of a compression run: student, pruned, retrained (issue 17).

Each model (a ``get_weights()`` list, or a released model's id for the
released compact model of the same neuron) and the teacher are scored:

- R2 (squared Pearson r) against the teacher on the stream's validation
  images (the images of the learning curve; never trained on);
- on the held-out half of the neuron's test session (the images of the
  session's second half, :func:`classes.data.sessions.held_out_indices`,
  never in the stream): R2 against the teacher, and against the V4
  responses Pearson r and the APPROXIMATE noise-corrected R2 of
  :func:`classes.scoring.performance.score_session` (its
  ``noise_corrected_r2``, labelled ``NOISE_CORRECTED_LABEL`` as in
  ``script4_compact_perf.py``: the release lacks the test sessions' raw
  repeats);
- filters per layer and convolutional filters
  (:func:`classes.compact.tools.count_convolutional_filters`).

A session whose images are not in the release (211022) cannot be scored on
its held-out half; the record says so in ``notes`` and keeps the
validation scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from classes.compact.architecture import ModelId, load_nums_filters, nums_filters_from_weights
from classes.compact.tools import count_convolutional_filters
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.prediction import predict
from classes.scoring.performance import NOISE_CORRECTED_LABEL, score_session
from classes.training.pruning import squared_correlation

# score_session's names of the V4 scores reported here (the noise-corrected R2 script4 reports).
V4_SCORES = {"pearson_r": "pearson_r", "noise_corrected_r2": "noise_corrected_r2"}
EVALUATION_FILE = "evaluation.json"


def unscorable_note(session_id: str, data_root=None) -> str | None:
    """Why the session's held-out half cannot be scored, or None when it can."""
    if session_id in available_image_sessions(data_root):
        return None
    return (f"session {session_id}: its images (data_V4_responses/images/images_{session_id}.zip) are not in the "
            "release, so R2 vs the teacher on its held-out half and the scores vs V4 (Pearson r, noise-corrected "
            "R2) cannot be computed; only R2 vs the teacher on the stream's validation images is reported")


def held_out_images(session_id: str, data_root=None) -> np.ndarray:
    """The recentred images of a test session's held-out (second) half, in file order."""
    _, evaluation = held_out_indices(session_id)
    return recenter_images(load_images(session_id, evaluation + 1, data_root=data_root))


def _filters(model, data_root) -> dict:
    counts = load_nums_filters(model, data_root) if isinstance(model, ModelId) else nums_filters_from_weights(model)
    return {"nums_filters": [int(count) for count in counts],
            "convolutional_filters": int(count_convolutional_filters(counts))}


def score_models(models: dict, teacher, column: int, identifier: ModelId, validation, data_root=None) -> dict:
    """Scores each model and the teacher (see the module docstring).

    Args:
        models: name -> a compact model's ``get_weights()`` list or a
            released model's :class:`classes.compact.architecture.ModelId`.
        teacher: the :class:`classes.training.teacher.Teacher`.
        column: the neuron's row of the teacher's responses.
        identifier: the neuron.
        validation: ``(images, targets)``, the stream's validation images
            and the teacher's responses to them.

    Returns:
        ``{"models": name -> scores, "notes": [...]}``; each model's scores:
        ``nums_filters``, ``convolutional_filters``, ``r2_teacher_validation``
        and, where the held-out half can be scored, ``r2_teacher_held_out``,
        ``pearson_r``, ``noise_corrected_r2``; ``"teacher"`` gets the V4
        scores.
    """
    names = list(models)
    images, targets = validation
    rows = predict([models[name] for name in names], images, data_root=data_root)
    scores = {name: {**_filters(models[name], data_root), "r2_teacher_validation": squared_correlation(row, targets)}
              for name, row in zip(names, rows, strict=True)}
    note = unscorable_note(identifier.session_id, data_root)
    if note is not None:
        return {"models": scores, "notes": [note]}
    images = held_out_images(identifier.session_id, data_root)
    teacher_row = teacher.responses(images)[column]
    rows = np.concatenate([predict([models[name] for name in names], images, data_root=data_root),
                           teacher_row[None]])
    scores["teacher"] = {}
    versus_v4 = score_session(rows, identifier.session_id, neurons=[identifier.neuron] * len(rows),
                              data_root=data_root)
    for index, name in enumerate([*names, "teacher"]):
        scores[name]["r2_teacher_held_out"] = squared_correlation(rows[index], teacher_row)
        for key, source in V4_SCORES.items():
            scores[name][key] = float(versus_v4[source][index])
    return {"models": scores, "notes": []}


def stage_cost(state: dict | None) -> dict | None:
    """Images and seconds (wall and CPU) a stage's state records; None for a stage not run."""
    if state is None:
        return None
    images = state.get("images_seen", state.get("num_images"))
    return {"images": images, "seconds": state["seconds"], "cpu_seconds": state["cpu_seconds"]}


def neuron_record(identifier: ModelId, teacher, scores: dict, states: dict) -> dict:
    """The JSON record of one neuron's run.

    Args:
        identifier: the neuron.
        teacher: the :class:`classes.training.teacher.Teacher`.
        scores: from :func:`score_models`.
        states: stage name (``distill``, ``prune``, ``retrain``) -> its
            state (None when not run).

    Returns:
        dict: ``model``, ``session``, ``neuron``, ``teacher``, ``noise_corrected_r2_label``,
        ``models`` (scores), ``costs`` (per stage: images, seconds,
        cpu_seconds), ``learning_curves`` (distill, retrain), ``pruning``
        (nums_filters, kept, per-layer criteria), ``notes``.
    """
    describe = {key: value for key, value in teacher.describe().items() if key != "weight_file"}
    curves = {stage: states[stage]["learning_curve"] for stage in ("distill", "retrain") if states.get(stage)}
    prune = states.get("prune") or {}
    return {
        "model": str(identifier),
        "session": identifier.session_id,
        "neuron": identifier.neuron,
        "teacher": describe,
        "noise_corrected_r2_label": NOISE_CORRECTED_LABEL,
        "models": scores["models"],
        "costs": {stage: stage_cost(state) for stage, state in states.items()},
        "learning_curves": curves,
        "pruning": {key: prune[key] for key in ("nums_filters", "kept", "layers", "num_images", "mirrored")
                    if key in prune},
        "notes": scores["notes"],
    }


def results_key(record: dict) -> str:
    """``<session>_neuron<k>``, prefixed ``planted_`` for a compact (planted-truth) teacher."""
    prefix = "planted_" if record["teacher"]["kind"] == "compact" else ""
    return f"{prefix}{record['session']}_neuron{record['neuron']}"


def collect_records(output_dir) -> dict:
    """Every neuron's evaluation record under ``output_dir``, keyed by :func:`results_key`, sorted."""
    records = [json.loads(path.read_text()) for path in sorted(Path(output_dir).glob(f"*/{EVALUATION_FILE}"))]
    return {results_key(record): record for record in records}

"""Shared compact models against real V4 responses (Fig. 3d-e), and their neuron order.

Each shared compact model (a teacher and K shared filters) predicts the
held-out half of every test session with images in the release; the chosen
neurons are taken from its 219 outputs and scored as the individual compact
models are (:func:`classes.scoring.performance.score_session`). The order
check correlates each shared output with every chosen compact model on
held-out images, to confirm that output ``i`` is compact model ``i``'s
neuron. Used by ``script5_shared_compact_perf.py``; its figure and tables are
in :mod:`classes.figures.shared_perf`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from classes.compact.architecture import ModelId, all_model_ids
from classes.compact.shared_model import load_shared_compact_model
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.prediction import predict
from classes.prediction.folding import fold_shared_model
from classes.prediction.shared import predict_shared_fast
from classes.scoring.percent_changes import summarize
from classes.scoring.performance import NOISE_CORRECTED_LABEL, score_session

METRICS = ("noise_corrected_r2", "pearson_r", "raw_r2")
COMPACT_LABEL = "individual compact models"


def scoreable_sessions(models: list[ModelId], data_root) -> tuple[list[str], list[str]]:
    """The chosen sessions whose images are in the release, and notes on the rest.

    Args:
        models: the chosen compact models, session by session.
        data_root: the release's folder.

    Returns:
        ``(scored_sessions, notes)``: sessions in the order chosen, and one
        note per session without images plus one on the noise correction.

    Raises:
        ValueError: no chosen session has its images in the release.
    """
    present = set(available_image_sessions(data_root))
    chosen = list(dict.fromkeys(identifier.session_id for identifier in models))
    notes = []
    for session in chosen:
        if session not in present:
            count = sum(identifier.session_id == session for identifier in models)
            notes.append(f"session {session}: its images (data_V4_responses/images/images_{session}.zip) are not "
                         f"in the release, so its {count} neurons cannot be scored (they are in the order check)")
    scored = [session for session in chosen if session in present]
    if not scored:
        raise ValueError("None of the chosen sessions has its image zip in the release; nothing can be scored.")
    notes.append(f"noise-corrected R2 is {NOISE_CORRECTED_LABEL}: the test sessions' raw repeats are not in the release")
    return scored, notes


@dataclass
class EvaluationImages:
    """Recentred held-out images of the scored sessions and the order-check images.

    Attributes:
        held_out: session -> float32 ``(num_images, 112, 112, 3)``.
        order_images: the first ``order_count`` held-out images of every
            scored session, concatenated.
        evaluation_images: every session's held-out images, concatenated.
        offsets: ``(num_sessions + 1,)`` start of each session's block in
            ``evaluation_images``.
        order_rows: rows of ``evaluation_images`` that are ``order_images``.
    """

    held_out: dict
    order_images: np.ndarray
    evaluation_images: np.ndarray
    offsets: np.ndarray
    order_rows: np.ndarray


def load_evaluation_images(sessions: list[str], data_root, order_count: int) -> EvaluationImages:
    """Held-out images of ``sessions`` (images 601-1200) and the order-check set."""
    held_out = {}
    for session in sessions:
        _, evaluation = held_out_indices(session)
        held_out[session] = recenter_images(load_images(session, evaluation + 1, data_root=data_root))
    order_images = np.concatenate([held_out[session][:order_count] for session in sessions])
    offsets = np.cumsum([0] + [len(held_out[session]) for session in sessions])
    order_rows = np.concatenate([offsets[index] + np.arange(min(order_count, len(held_out[session])))
                                 for index, session in enumerate(sessions)])
    return EvaluationImages(held_out, order_images, np.concatenate([held_out[session] for session in sessions]),
                            offsets, order_rows)


def score_rows(predictions_by_session: dict, models: list[ModelId], data_root, label: dict) -> list[dict]:
    """Per-neuron rows of one predictor.

    Args:
        predictions_by_session: session -> ``(num_neurons, num_images)``
            predictions of that session's chosen neurons on its held-out images.
        models: the chosen compact models.
        label: columns put first in every row (``teacher``, ``num_filters``).

    Returns:
        One dict per neuron with ``label``, ``session``, ``neuron`` and the
        :data:`METRICS`.
    """
    rows = []
    for session, predictions in predictions_by_session.items():
        neurons = [identifier.neuron for identifier in models if identifier.session_id == session]
        scores = score_session(predictions, session, neurons=neurons, data_root=data_root)
        for index, neuron in enumerate(neurons):
            rows.append(label | {"session": session, "neuron": neuron}
                        | {metric: float(scores[metric][index]) for metric in METRICS})
    return rows


def score_compact_models(models: list[ModelId], images: EvaluationImages, data_root, engine: str,
                         timings: dict, reused: dict | None = None) -> tuple[list[dict], np.ndarray]:
    """The individual compact models on their session's held-out half and the order-check images.

    Args:
        engine: the :func:`classes.prediction.predict` engine.
        timings: accumulates ``predict``'s timings.
        reused: optional session -> held-out predictions of that session's
            ``models`` (script4's, :func:`classes.scoring.held_out_record.load_held_out_predictions`);
            those sessions predict the order-check images only.

    Returns:
        ``(rows, order_outputs)``: per-neuron rows (:func:`score_rows`) and
        float32 ``(num_order_images, num_models)`` outputs for the order check.
    """
    order_images = images.order_images
    order_outputs = np.empty((len(order_images), len(models)), np.float32)
    predictions_by_session = {}
    for session in dict.fromkeys(identifier.session_id for identifier in models):
        positions = [index for index, identifier in enumerate(models) if identifier.session_id == session]
        held_out = images.held_out.get(session)
        known = (reused or {}).get(session) if held_out is not None else None
        chosen = order_images if held_out is None or known is not None else np.concatenate([held_out, order_images])
        # Each engine uses its own measured default batch size.
        predictions = predict([models[index] for index in positions], chosen, engine=engine,
                              data_root=data_root, timings=timings, show_progress=True)
        order_outputs[:, positions] = predictions[:, -len(order_images):].T
        if held_out is not None:
            predictions_by_session[session] = known if known is not None else predictions[:, : len(held_out)]
    rows = score_rows(predictions_by_session, models, data_root, {"teacher": COMPACT_LABEL, "num_filters": None})
    return rows, order_outputs


def score_shared_models(pairs: list[tuple], models: list[ModelId], images: EvaluationImages, compact_order,
                        data_root, batch_size: int) -> tuple[list[dict], dict]:
    """Scores shared compact models and checks their output order.

    Args:
        pairs: ``(teacher, K)`` of the shared models.
        compact_order: the compact models' order-check outputs
            (:func:`score_compact_models`).
        batch_size: images per graph call.

    Returns:
        ``(rows, order_results)``: per-neuron rows and ``(teacher, K)`` ->
        :func:`order_check` result.
    """
    columns = np.array([all_model_ids().index(identifier) for identifier in models])
    sessions = list(images.held_out)
    rows, order_results = [], {}
    for teacher, count in tqdm(pairs, desc="shared compact models"):
        # Folded BN and one traced graph for all 56 models (classes/prediction/shared.py).
        folded = fold_shared_model(load_shared_compact_model(teacher, count, data_root))
        predictions = predict_shared_fast(folded, images.evaluation_images, batch_size)
        by_session = {}
        for index, session in enumerate(sessions):
            session_columns = [columns[position] for position, identifier in enumerate(models)
                               if identifier.session_id == session]
            block = predictions[images.offsets[index] : images.offsets[index + 1]]
            by_session[session] = block[:, session_columns].T
        rows += score_rows(by_session, models, data_root, {"teacher": teacher, "num_filters": count})
        order_results[(teacher, count)] = order_check(predictions[images.order_rows][:, columns], compact_order)
    return rows, order_results


def order_check(shared_outputs, compact_outputs) -> dict:
    """Matches each shared output to the compact models on the same images.

    Args:
        shared_outputs, compact_outputs: ``(num_images, num_neurons)``, the
            chosen neurons in the same order.

    Returns:
        dict: per-neuron ``diagonal`` correlations, ``matched`` (whether the
        matching compact model is the best-correlated one), their summaries,
        and the median absolute off-diagonal correlation.
    """
    def standardize(values):
        values = values - values.mean(axis=0)
        norms = np.linalg.norm(values, axis=0)
        return values / np.where(norms > 0, norms, np.nan)

    correlations = standardize(np.asarray(shared_outputs, np.float64)).T @ standardize(
        np.asarray(compact_outputs, np.float64))
    diagonal = np.diag(correlations)
    filled = np.where(np.isfinite(correlations), correlations, -np.inf)
    matched = np.argmax(filled, axis=1) == np.arange(len(diagonal))
    off_diagonal = correlations[~np.eye(len(diagonal), dtype=bool)]
    return {
        "diagonal": diagonal,
        "matched": matched,
        "median_correlation": float(np.nanmedian(diagonal)),
        "min_correlation": float(np.nanmin(diagonal)),
        "matched_fraction": float(np.mean(matched)),
        "median_abs_off_diagonal": float(np.nanmedian(np.abs(off_diagonal))) if off_diagonal.size else np.nan,
    }


def order_check_rows(order_results: dict, models: list[ModelId]) -> list[dict]:
    """One row per shared model and neuron: its order-check correlation and whether it matched best."""
    return [{"teacher": teacher, "num_filters": count, "session": identifier.session_id,
             "neuron": identifier.neuron, "correlation": result["diagonal"][index],
             "best_match": bool(result["matched"][index])}
            for (teacher, count), result in order_results.items() for index, identifier in enumerate(models)]


def summary_table(rows: list[dict], predictors: list[tuple], order_results: dict) -> list[dict]:
    """Mean, s.e.m. and median of every metric per predictor, with the order check.

    Args:
        rows: per-neuron rows with ``teacher``, ``num_filters`` and the
            :data:`METRICS`.
        predictors: ``(teacher, K)`` pairs in the order wanted; the
            individual compact models are ``(COMPACT_LABEL, None)``.
        order_results: ``(teacher, K)`` -> :func:`order_check` result.

    Returns:
        One dict per predictor.
    """
    order_keys = ("median_correlation", "min_correlation", "matched_fraction", "median_abs_off_diagonal")
    summary_rows = []
    for teacher, count in predictors:
        chosen = [row for row in rows if row["teacher"] == teacher and row["num_filters"] == count]
        entry = {"teacher": teacher, "num_filters": count, "num_neurons": len(chosen)}
        for metric in METRICS:
            stats = summarize([row[metric] for row in chosen])
            entry.update({f"{metric}_mean": stats["mean"], f"{metric}_sem": stats["sem"],
                          f"{metric}_median": stats["median"]})
        result = order_results.get((teacher, count))
        entry.update({f"order_{key}": None if result is None else result[key] for key in order_keys})
        summary_rows.append(entry)
    return summary_rows

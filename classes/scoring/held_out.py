"""Compact models (and the ensemble) scored on their sessions' held-out images.

Each released compact model predicts the held-out half of its own test
session's images (the second half in file order; the first half fitted the
ensemble's linear mapping the compact models were distilled from), and is
scored per neuron with :func:`classes.scoring.performance.score_session`.
The ensemble's predictions, where a user supplies them, are scored on the
same neurons so the two can be compared (Fig. 1h).
"""

from __future__ import annotations

import time

import numpy as np

from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.prediction import predict
from classes.scoring.performance import score_session

SCORE_KEYS = ("pearson_r", "raw_r2", "noise_corrected_r2", "snr", "noise_corrected_r2_poisson", "snr_poisson",
              "noise_corrected_r2_exact")


def score_models_on_held_out(
    models,
    engine: str = "auto",
    batch_size: int | None = None,
    data_root=None,
    timings: dict | None = None,
    show_progress: bool = False,
    predictions_by_session: dict | None = None,
) -> tuple[list[dict], list[str]]:
    """Predicts and scores the held-out half of every model's own session.

    Args:
        models: :class:`classes.compact.architecture.ModelId` values of released
            compact models, any test sessions.
        engine: an engine of :func:`classes.prediction.predict` (``"keras"``
            calls the ``.keras`` models; the others give the same responses
            within float32 rounding).
        batch_size: images per forward pass; None for the engine's default.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        timings: optional dict; seconds spent in ``"load images"``,
            ``"load weights"`` and ``"predict"`` are added to it.
        show_progress: show a progress bar while predicting.
        predictions_by_session: optional dict; each scored session's
            ``(neurons, predictions (num_models, num_images))`` is put in it
            (script4 keeps them for script5:
            :mod:`classes.scoring.held_out_record`).

    Returns:
        ``(rows, notes)``: one dict per scored model, session by session in
        the order the sessions first appear in ``models``, with ``session``,
        ``neuron`` and the :data:`SCORE_KEYS`; ``notes`` say which sessions
        could not be scored (image zip missing) and where the exact
        noise-corrected R2 is not computable.
    """
    timings = timings if timings is not None else {}
    timings.setdefault("load images", 0.0)
    rows, notes = [], []
    present = set(available_image_sessions(data_root))
    for session in dict.fromkeys(identifier.session_id for identifier in models):
        session_models = [identifier for identifier in models if identifier.session_id == session]
        if session not in present:
            notes.append(
                f"session {session}: its images (data_V4_responses/images/images_{session}.zip) "
                f"are not in the release, so its {len(session_models)} models cannot be scored"
            )
            continue
        predictions = _predict_held_out(session, session_models, engine, batch_size, data_root, timings,
                                        show_progress)
        neurons = [identifier.neuron for identifier in session_models]
        if predictions_by_session is not None:
            predictions_by_session[session] = (neurons, predictions)
        scores = score_session(predictions, session, neurons=neurons, data_root=data_root)
        for index, identifier in enumerate(session_models):
            row = {"session": session, "neuron": identifier.neuron}
            row.update({key: scores[key][index] for key in SCORE_KEYS})
            rows.append(row)
        if scores["exact_note"]:
            notes.append(f"session {session}: exact noise-corrected R2 not computable: {scores['exact_note']}")
    return rows, notes


def _predict_held_out(session, session_models, engine, batch_size, data_root, timings, show_progress):
    start = time.perf_counter()
    _, evaluation = held_out_indices(session)
    images = recenter_images(load_images(session, evaluation + 1, data_root=data_root))
    timings["load images"] += time.perf_counter() - start
    return predict(session_models, images, engine=engine, batch_size=batch_size, data_root=data_root,
                   timings=timings, show_progress=show_progress)


def score_ensemble(rows: list[dict], ensemble_predictions: dict, data_root=None) -> dict:
    """Scores the ensemble on the neurons of ``rows`` and compares it with them.

    Adds ``ensemble_noise_corrected_r2`` (the project's approximation,
    :func:`classes.scoring.performance.noise_corrected_r2_held_out`) and
    ``ensemble_pearson_r`` to every row.

    Args:
        rows: from :func:`score_models_on_held_out`.
        ensemble_predictions: session -> the ensemble's ``(num_neurons,
            num_held_out_images)`` predictions for all the session's neurons
            (:func:`classes.ensemble.predictions.load_ensemble_predictions`),
            for every session of ``rows``.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.

    Returns:
        dict over the neurons where both are finite: ``ensemble_median_r2``,
        ``compact_minus_ensemble`` (difference of the medians) and ``rho``
        (Pearson correlation of the per-neuron noise-corrected R2).
    """
    for session in dict.fromkeys(row["session"] for row in rows):
        chosen = [row for row in rows if row["session"] == session]
        neurons = [row["neuron"] for row in chosen]
        scores = score_session(ensemble_predictions[session][neurons], session, neurons=neurons,
                               data_root=data_root)
        for index, row in enumerate(chosen):
            row["ensemble_noise_corrected_r2"] = scores["noise_corrected_r2"][index]
            row["ensemble_pearson_r"] = scores["pearson_r"][index]
    compact = np.array([row["noise_corrected_r2"] for row in rows])
    ensemble = np.array([row["ensemble_noise_corrected_r2"] for row in rows])
    valid = np.isfinite(compact) & np.isfinite(ensemble)
    return {
        "ensemble_median_r2": float(np.median(ensemble[valid])),
        "compact_minus_ensemble": float(np.median(compact[valid]) - np.median(ensemble[valid])),
        "rho": float(np.corrcoef(compact[valid], ensemble[valid])[0, 1]),
    }

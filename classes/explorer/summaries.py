"""What each neuron page and the index say about a model, from the cached results.

Scores are script4's: the held-out half of the model's own session, scored
by :func:`classes.scoring.performance.score_session` (Pearson r and the
noise-corrected R2, approximate under a Poisson noise model, as labelled
there); the predictions are the model's cached responses to those images.
Signal correlation between two models is the Pearson correlation of their
responses to the same images (all the explorer's images).
"""

from __future__ import annotations

import numpy as np

from classes.analysis.layer_comparison import signal_correlation
from classes.compact.architecture import ModelId, load_nums_filters
from classes.compact.model_size import compact_parameter_count
from classes.compact.tools import count_convolutional_filters
from classes.data.images import available_image_sessions
from classes.data.responses import load_held_out
from classes.data.sessions import get_session
from classes.scoring.performance import NOISE_CORRECTED_LABEL, score_session

NUM_EXTREMES = 8
NUM_SIMILAR = 6
NUM_QUANTILES = 101


def held_out_scores(models: list[ModelId], image_set, responses: np.ndarray, data_root) -> dict[str, dict]:
    """Each model's held-out predictions, V4 responses and scores (script4's), or why there are none.

    Returns:
        stem -> dict: ``pearson_r``, ``noise_corrected_r2`` (approximate),
        ``raw_r2``, ``predictions``, ``observed`` (lists over held-out
        images), or ``note`` alone when the session's images are missing.
    """
    present = set(available_image_sessions(data_root))
    scores = {}
    for session in dict.fromkeys(identifier.session_id for identifier in models):
        rows = [row for row, identifier in enumerate(models) if identifier.session_id == session]
        if session not in present:
            note = (f"No held-out scores: the images of session {session} (images_{session}.zip) are not in "
                    "the release, so the model's predictions for them cannot be computed.")
            scores.update({models[row].stem: {"note": note} for row in rows})
            continue
        _, observed, numbers = load_held_out(session, data_root)
        predictions = responses[rows][:, image_set.index_of(session, numbers)]
        neurons = [models[row].neuron for row in rows]
        result = score_session(predictions, session, neurons=neurons, data_root=data_root)
        for position, row in enumerate(rows):
            scores[models[row].stem] = {
                "pearson_r": float(result["pearson_r"][position]),
                "noise_corrected_r2": float(result["noise_corrected_r2"][position]),
                "raw_r2": float(result["raw_r2"][position]), "label": NOISE_CORRECTED_LABEL,
                "predictions": predictions[position].tolist(), "observed": observed[neurons[position]].tolist(),
            }
    return scores


def signal_correlations(responses: np.ndarray) -> np.ndarray:
    """Signal correlations of every two models (:func:`classes.analysis.layer_comparison.signal_correlation`): ``(M, M)``."""
    if len(responses) < 2:
        return np.ones((len(responses), len(responses)))
    return signal_correlation(responses)["matrix"]


def similar_models(correlations: np.ndarray, row: int, count: int = NUM_SIMILAR) -> list[tuple[int, float]]:
    """The ``count`` other models whose responses correlate most with model ``row``: (row, r)."""
    order = [other for other in np.argsort(-np.nan_to_num(correlations[row], nan=-2.0)) if other != row]
    return [(int(other), float(correlations[row, other])) for other in order[:count]]


def natural_extremes(responses_row: np.ndarray, count: int = NUM_EXTREMES) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``count`` images with the highest responses (best first) and the lowest (lowest first)."""
    order = np.argsort(responses_row, kind="stable")
    return order[::-1][:count], order[:count]


def model_facts(identifier: ModelId, data_root) -> dict:
    """Session, animal, filter counts and sizes of one model."""
    counts = load_nums_filters(identifier, data_root)
    return {"id": f"{identifier.session_id}/{identifier.neuron}", "stem": identifier.stem,
            "page": f"{identifier.session_id}_neuron{identifier.neuron}",
            "session": identifier.session_id, "neuron": identifier.neuron,
            "animal": get_session(identifier.session_id).animal, "nums_filters": [int(k) for k in counts],
            "parameters": int(compact_parameter_count(counts)),
            "convolutional_filters": int(count_convolutional_filters(counts))}


def response_quantiles(responses_row: np.ndarray) -> list[float]:
    """The 0th..100th percentiles of a model's responses to the images (the page's percentile scale)."""
    return np.percentile(np.asarray(responses_row, np.float64), np.linspace(0, 100, NUM_QUANTILES)).tolist()


def _finite(value):
    return None if value is None or not np.isfinite(value) else float(value)


def index_row(facts: dict, scores: dict, dots: dict, synthesized: dict) -> dict:
    """One model's entry in the index's table of filters and sorts (NaN as None)."""
    return {key: facts[key] for key in ("id", "page", "session", "neuron", "animal", "convolutional_filters",
                                        "nums_filters", "parameters")} | {
        "pearson_r": _finite(scores.get("pearson_r")), "noise_corrected_r2": _finite(scores.get("noise_corrected_r2")),
        "dot_selectivity": _finite(dots["dot_selectivity"]),
        "best_dot": f"{dots['best_polarity']} r={dots['best_radius']:g}",
        "maximizing_response": _finite(synthesized["maximize"]["response"]),
    }

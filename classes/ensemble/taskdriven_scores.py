"""Task-driven features and the ensemble scored on a test session's held-out half.

Fig. 1b's procedure (SPEC section 4): the first half of a test session's
images (file order) fits a linear mapping from model features to each neuron
and the second half is scored, per neuron, with Pearson r, raw R2 and the
noise-corrected R2 under a Poisson noise model (the test sessions' raw
repeats are not in the release). The ensemble maps each member's embeddings
and averages the members' predictions
(:func:`classes.ensemble.embeddings.ensemble_mapped_predictions`).
"""

from __future__ import annotations

import numpy as np

from classes.data.images import load_images
from classes.data.responses import load_repeat_averaged
from classes.data.sessions import get_session, held_out_indices
from classes.ensemble.embeddings import ensemble_mapped_predictions
from classes.scoring import metrics
from classes.scoring.factorized_mapping import FactorizedMapping
from classes.scoring.ridge_mapping import RidgeMapping

MAPPINGS = ("ridge", "factorized")


def make_mapping(kind: str, factorized_steps: int = 300):
    """An unfitted linear mapping from features to neurons.

    Args:
        kind: ``"ridge"`` or ``"factorized"``.
        factorized_steps: gradient steps of a factorized fit.

    Returns:
        A :class:`RidgeMapping` or :class:`FactorizedMapping`.
    """
    if kind == "ridge":
        return RidgeMapping()
    return FactorizedMapping(num_steps=factorized_steps)


def score_held_out(predictions, means, num_repeats: int) -> dict:
    """Per-neuron scores against repeat-averaged held-out responses.

    Args:
        predictions: ``(num_neurons, num_images)``.
        means: repeat-averaged responses, ``(num_neurons, num_images)``.
        num_repeats: repeats per image of the session (for the Poisson noise model).

    Returns:
        ``pearson_r``, ``raw_r2`` and ``noise_corrected_r2_poisson``, each ``(num_neurons,)``.
    """
    noise = metrics.poisson_noise_variance(means)
    return {
        "pearson_r": metrics.pearson_r(predictions, means),
        "raw_r2": metrics.raw_r2(predictions, means),
        "noise_corrected_r2_poisson": metrics.noise_corrected_r2_from_summary(
            predictions, means, noise, num_repeats
        ),
    }


def evaluate_session(session_id, features_of, members, mappings, *, feature_model: str,
                     factorized_steps: int = 300, max_images: int | None = None, data_root=None) -> list[dict]:
    """Per-neuron rows for one session: the features and the ensemble, for every mapping.

    Args:
        session_id: a held-out test session whose images are in the release.
        features_of: ``features_of(raw images)`` returning feature maps ``(N, ...)``.
        members: ensemble members; empty scores the features only.
        mappings: names from :data:`MAPPINGS`.
        feature_model: the features' name in the rows (``"resnet50"``, ``"random_features"``).
        factorized_steps: gradient steps of a factorized fit.
        max_images: use only the first this many images of each half; None uses all.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.

    Returns:
        One dict per (mapping, model, neuron): ``session``, ``neuron``, ``model``,
        ``mapping``, ``fit_images``, ``evaluation_images`` and the scores of
        :func:`score_held_out`.
    """
    session = get_session(session_id)
    fit, evaluation = held_out_indices(session.session_id)
    if max_images:
        fit, evaluation = fit[:max_images], evaluation[:max_images]
    responses = load_repeat_averaged(session.session_id, data_root)
    images = load_images(session.session_id, np.concatenate([fit, evaluation]) + 1, data_root=data_root)
    features = features_of(images)
    fit_features, evaluation_features = features[: len(fit)], features[len(fit):]
    fit_responses, means = responses[:, fit], responses[:, evaluation]
    rows = []
    for mapping in mappings:
        def new_mapping(mapping=mapping):
            return make_mapping(mapping, factorized_steps)

        results = {feature_model: new_mapping().fit(fit_features, fit_responses).predict(evaluation_features)}
        if members:
            results["ensemble"] = ensemble_mapped_predictions(
                members, fit_features, fit_responses, evaluation_features, new_mapping
            )
        for model, predictions in results.items():
            scores = score_held_out(predictions, means, session.num_repeats)
            for neuron in range(session.num_neurons):
                rows.append({"session": session.session_id, "neuron": neuron, "model": model,
                             "mapping": mapping, "fit_images": len(fit), "evaluation_images": len(evaluation),
                             **{key: value[neuron] for key, value in scores.items()}})
    return rows

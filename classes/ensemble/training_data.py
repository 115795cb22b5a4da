"""What an ensemble member is trained and selected on (SPEC section 4).

Each training session brings its own neurons, whose repeat-averaged
responses are z-scored per neuron into the targets of the first outputs of
the readout. The validation session (210224) scores a member by the median
noise-corrected R2 of a cross-validated ridge mapping from its embeddings;
the weights with the best score are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.ensemble.embeddings import member_embeddings
from classes.runtime.quiet_tensorflow import keras
from classes.scoring import metrics
from classes.scoring.ridge_mapping import cross_validated_noise_corrected_r2


@dataclass
class SessionData:
    """One training session's inputs.

    Attributes:
        session_id: e.g. ``"190925"``.
        features: ``(num_images, *feature_shape)`` ResNet50 (or stand-in) maps.
        responses: repeat-averaged ``(num_neurons, num_images)``.
    """

    session_id: str
    features: np.ndarray
    responses: np.ndarray


@dataclass
class ValidationData:
    """The validation session's inputs for the model-selection score.

    Attributes:
        features: ``(num_images, *feature_shape)``.
        means: repeat-averaged responses ``(num_neurons, num_images)``.
        noise_variance: trial variance per neuron ``(num_neurons,)``.
        num_repeats: repeats per image (scalar or per neuron).
        label: how the noise was obtained (e.g. the Poisson approximation).
    """

    session_id: str
    features: np.ndarray
    means: np.ndarray
    noise_variance: np.ndarray
    num_repeats: float | np.ndarray
    label: str = ""
    num_folds: int = 5


def zscored_targets(responses, num_outputs: int) -> np.ndarray:
    """Per-neuron z-scored responses as targets, padded with NaN.

    Args:
        responses: ``(num_neurons, num_images)``.
        num_outputs: the readout's outputs (200 for the paper's member).

    Returns:
        float32 ``(num_images, num_outputs)``; columns beyond the session's
        neurons, and neurons that never vary, are NaN (left out of the loss).
    """
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim != 2:
        raise ValueError(f"responses must be (num_neurons, num_images); got {responses.shape}.")
    num_neurons, num_images = responses.shape
    if num_neurons > num_outputs:
        raise ValueError(
            f"The session has {num_neurons} neurons but the readout only {num_outputs} outputs."
        )
    if not np.all(np.isfinite(responses)):
        raise ValueError("responses contain NaN or infinite values.")
    std = responses.std(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        zscored = (responses - responses.mean(axis=1, keepdims=True)) / std
    zscored[np.squeeze(std, 1) == 0] = np.nan
    targets = np.full((num_images, num_outputs), np.nan, np.float32)
    targets[:, :num_neurons] = zscored.T
    return targets


def validation_score(member: keras.Model, validation: ValidationData, seed: int = 0):
    """Median noise-corrected R2 of a cross-validated ridge mapping from the
    member's embeddings on the validation session.

    Returns:
        ``(median, per-neuron R2 (num_neurons,))``.
    """
    embeddings = member_embeddings(member, validation.features)
    r2 = cross_validated_noise_corrected_r2(
        embeddings, validation.means, validation.noise_variance, validation.num_repeats,
        num_folds=validation.num_folds, seed=seed,
    )
    return float(np.nanmedian(r2)), r2


def poisson_validation(session_id, features, means, num_repeats, num_folds: int = 5) -> ValidationData:
    """Validation data with the Poisson noise approximation.

    The validation session's raw repeats are not released, so its trial
    variance is approximated by the mean count (APPROXIMATE; see
    :func:`classes.scoring.metrics.poisson_noise_variance`) and the repeats by the
    session table's count.
    """
    means = np.asarray(means, dtype=np.float64)
    return ValidationData(
        session_id=str(session_id),
        features=features,
        means=means,
        noise_variance=metrics.poisson_noise_variance(means),
        num_repeats=num_repeats,
        label="approximate (Poisson noise model: trial variance = mean count)",
        num_folds=num_folds,
    )

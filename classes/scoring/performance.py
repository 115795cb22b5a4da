"""Scoring model predictions against a test session's held-out V4 responses.

The release holds raw repeats for only two sessions (201016, 210325), none of
the four test sessions. Exact noise-corrected R2 therefore cannot be computed
on the test sessions; this module scores them with

- Pearson r and raw R2 against the repeat-averaged responses (exact);
- THE approximate noise-corrected R2 of the project,
  :func:`noise_corrected_r2_held_out`: trial variance = F x mean count (F
  calibrated on the raw-repeat sessions), each image with its own repeat
  count recovered from the averaged responses (:mod:`classes.scoring.noise_model`;
  validated in :mod:`classes.scoring.noise_validation`);
- beside it, the plain Poisson approximation (trial variance = mean count,
  repeats from the session table), as reported before the noise model was
  validated;

and measures how good the Poisson approximation is on the two sessions whose
raw repeats are present (:func:`poisson_approximation_check`).
"""

from __future__ import annotations

import numpy as np

from classes.data.repeat_counts import repeat_counts
from classes.data.responses import available_response_sessions, load_held_out, load_raw
from classes.data.sessions import get_session, held_out_indices
from classes.scoring import metrics
from classes.scoring.noise_model import (
    CHOSEN_ESTIMATOR,
    RAW_REPEAT_SESSIONS,
    approximate_noise,
    calibrated_fano_factor,
)
from classes.scoring.noise_validation import half_repeat_stand_in

NOISE_CORRECTED_LABEL = ("approximate (trial variance = F x mean count, F from the raw-repeat sessions "
                         "201016 and 210325; per-image repeat counts)")
POISSON_LABEL = "approximate (Poisson noise model)"
SNR_THRESHOLD = 0.15
# The sessions whose raw repeats the release holds (none of the test sessions).
POISSON_CHECK_SESSIONS = RAW_REPEAT_SESSIONS


def _held_out_means(predictions, session_id, neurons, data_root) -> tuple:
    """``(session, neuron indices, held-out means, float64 predictions)``, shapes checked."""
    session = get_session(session_id)
    _, means, _ = load_held_out(session.session_id, data_root)
    neurons = np.arange(len(means)) if neurons is None else np.asarray(neurons, dtype=int)
    means = means[neurons]
    predictions = np.asarray(predictions, dtype=np.float64)
    if predictions.shape != means.shape:
        raise ValueError(
            f"predictions for session {session.session_id} must be {means.shape} "
            f"(neurons, held-out images); got {predictions.shape}."
        )
    return session, neurons, means, predictions


def held_out_noise(means, session_id, data_root=None, estimator: str = CHOSEN_ESTIMATOR) -> tuple:
    """sigma2 and repeat counts of a test session's held-out half under ``estimator``.

    Args:
        means: the chosen neurons' held-out repeat-averaged responses ``(N, M)``.
        session_id: one of the four held-out test sessions.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        estimator: one of :data:`classes.scoring.noise_model.ESTIMATORS`.

    Returns:
        ``(noise_variance (N,), num_repeats)`` for
        :func:`classes.scoring.metrics.noise_corrected_r2_from_summary`.
    """
    session = get_session(session_id)
    _, evaluation = held_out_indices(session.session_id)
    counts = repeat_counts(session.session_id, data_root)[evaluation]
    fano = calibrated_fano_factor(data_root) if estimator == "fano_per_image" else 1.0
    return approximate_noise(means, estimator, counts, session.num_repeats, fano)


def noise_corrected_r2_held_out(predictions, session_id, neurons=None, data_root=None) -> np.ndarray:
    """THE approximate noise-corrected R2 of predictions of a test session's held-out half.

    The estimator every script reports (:data:`NOISE_CORRECTED_LABEL`;
    :data:`classes.scoring.noise_model.CHOSEN_ESTIMATOR`).

    Args:
        predictions: ``(num_neurons, num_held_out_images)``, the chosen
            neurons in order, images in the held-out half's order.
        session_id: one of the four held-out test sessions.
        neurons: 0-based indices of the session's neurons that the rows of
            ``predictions`` belong to; None for all, in order.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.

    Returns:
        ``(num_neurons,)``.

    Raises:
        ValueError: predictions of the wrong shape or not finite; not a test session.
    """
    session, _, means, predictions = _held_out_means(predictions, session_id, neurons, data_root)
    noise, counts = held_out_noise(means, session.session_id, data_root)
    return metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts)


def score_session(predictions, session_id, neurons=None, data_root=None) -> dict:
    """Per-neuron scores of predictions for a test session's held-out half.

    Args:
        predictions, session_id, neurons, data_root: as for
            :func:`noise_corrected_r2_held_out`.

    Returns:
        dict of ``(num_neurons,)`` arrays: ``pearson_r``, ``raw_r2``,
        ``noise_corrected_r2`` and ``snr`` (the project's approximation,
        :func:`noise_corrected_r2_held_out`), ``noise_corrected_r2_poisson``
        and ``snr_poisson`` (plain Poisson), and ``noise_corrected_r2_exact``
        (all NaN when the session's raw repeats are absent, with the reason
        in ``exact_note``).

    Raises:
        ValueError: predictions of the wrong shape or not finite.
    """
    session, neurons, means, predictions = _held_out_means(predictions, session_id, neurons, data_root)
    noise, counts = held_out_noise(means, session.session_id, data_root)
    poisson, table = held_out_noise(means, session.session_id, data_root, estimator="poisson")
    scores = {
        "pearson_r": metrics.pearson_r(predictions, means),
        "raw_r2": metrics.raw_r2(predictions, means),
        "noise_corrected_r2": metrics.noise_corrected_r2_from_summary(predictions, means, noise, counts),
        "snr": metrics.snr_from_summary(means, noise, counts),
        "noise_corrected_r2_poisson": metrics.noise_corrected_r2_from_summary(predictions, means, poisson, table),
        "snr_poisson": metrics.snr_from_summary(means, poisson, table),
    }
    if session.session_id in available_response_sessions("raw", data_root):
        _, raw, _ = load_held_out(session.session_id, data_root, kind="raw")
        scores["noise_corrected_r2_exact"] = metrics.noise_corrected_r2(predictions, raw[neurons])
        scores["exact_note"] = ""
    else:
        scores["noise_corrected_r2_exact"] = np.full(len(means), np.nan)
        scores["exact_note"] = (
            f"raw repeats of {session.session_id} are not in the release "
            f"(data_V4_responses/responses_raw/responses_{session.session_id}.npy)"
        )
    return scores


def poisson_approximation_checks(data_root=None, sessions=POISSON_CHECK_SESSIONS) -> list[dict]:
    """:func:`poisson_approximation_check` on every session of ``sessions`` with raw repeats.

    Args:
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        sessions: sessions to check; those whose raw repeats are not in the
            release are left out.

    Returns:
        One result per checked session, in the order of ``sessions``.
    """
    present = set(available_response_sessions("raw", data_root))
    return [poisson_approximation_check(session, data_root) for session in sessions if session in present]


def poisson_approximation_check(session_id, data_root=None) -> dict:
    """How well the plain Poisson noise model stands in for the measured noise.

    On a session whose raw repeats are present, compares per neuron the
    exact trial variance and SNR (from the repeats, each image with its own
    count) with the plain Poisson approximation (variance = mean count,
    n = the session table's repeat count), and the noise-corrected R2 each
    gives for the half-repeat stand-in model
    (:func:`classes.scoring.noise_validation.half_repeat_stand_in`).

    Returns:
        dict with per-neuron arrays (``noise_variance_exact``,
        ``noise_variance_poisson``, ``snr_exact``, ``snr_poisson``,
        ``r2_exact``, ``r2_poisson``) and summaries: median Fano factor
        (exact variance / mean count), median and 90th-percentile absolute
        SNR difference, correlation of SNRs, median and max absolute R2
        difference (median, 90th percentile and max over neurons).
    """
    session = get_session(session_id)
    raw = load_raw(session.session_id, data_root)
    means, noise_exact, repeats_exact = metrics.repeat_statistics(raw)
    noise_poisson = metrics.poisson_noise_variance(means)
    snr_exact = metrics.snr_from_summary(means, noise_exact, metrics.count_repeats(raw))
    snr_poisson = metrics.snr_from_summary(means, noise_poisson, session.num_repeats)
    stand_in = half_repeat_stand_in(raw)
    r2_exact = stand_in.exact_r2()
    r2_poisson = stand_in.approximate_r2("poisson", session.num_repeats - session.num_repeats // 2, 1.0)
    valid = np.isfinite(snr_exact) & np.isfinite(snr_poisson)
    snr_difference = np.abs(snr_exact - snr_poisson)[valid]
    r2_difference = np.abs(r2_exact - r2_poisson)
    with np.errstate(invalid="ignore", divide="ignore"):
        fano = noise_exact / noise_poisson
    return {
        "session": session.session_id,
        "num_neurons": int(raw.shape[0]),
        "num_images": int(raw.shape[1]),
        "median_repeats_exact": float(np.median(repeats_exact)),
        "repeats_session_table": session.num_repeats,
        "noise_variance_exact": noise_exact,
        "noise_variance_poisson": noise_poisson,
        "snr_exact": snr_exact,
        "snr_poisson": snr_poisson,
        "r2_exact": r2_exact,
        "r2_poisson": r2_poisson,
        "median_fano_factor": float(np.nanmedian(fano)),
        "median_abs_snr_difference": float(np.median(snr_difference)),
        "p90_abs_snr_difference": float(np.percentile(snr_difference, 90)),
        "snr_correlation": float(np.corrcoef(snr_exact[valid], snr_poisson[valid])[0, 1]),
        "median_abs_r2_difference": float(np.nanmedian(r2_difference)),
        "max_abs_r2_difference": float(np.nanmax(r2_difference)),
        "p90_abs_r2_difference": float(np.nanpercentile(r2_difference, 90)),
        "median_r2_exact": float(np.nanmedian(r2_exact)),
        "median_r2_poisson": float(np.nanmedian(r2_poisson)),
    }

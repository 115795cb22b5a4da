"""Noise models for the noise-corrected R2 of sessions without raw repeats.

The noise-corrected R2 (:func:`classes.scoring.metrics.noise_corrected_r2_from_summary`)
needs each neuron's trial-to-trial variance sigma2 and each image's repeat
count. The release holds raw repeats for two sessions only (201016 and
210325, both monkey PE), none of the test sessions, so for the test sessions
both are estimated:

- repeat counts: recovered per image from the averaged responses
  (:mod:`classes.data.repeat_counts`, exact on the two raw-repeat sessions);
- sigma2 under one of the :data:`ESTIMATORS`:

  ``poisson``: trial variance = mean count (Fano factor 1), one count per
  session (the session table's); the plain Poisson model.
  ``poisson_per_image``: the same variance, each image with its own count.
  ``fano_per_image``: trial variance = F x mean count, F the median Fano
  factor (exact sigma2 / mean count) over the neurons of the raw-repeat
  sessions, each image with its own count. The estimator the project
  reports (:data:`CHOSEN_ESTIMATOR`): it validates best
  (:mod:`classes.scoring.noise_validation`).

The Fano factor F of monkey PE is transferred to monkey WE (190923). The
reason, and the alternative tried (F of a session from how the spread of its
averaged responses grows with 1/n_j, :func:`count_spread_fano_factors`), are
in :func:`classes.scoring.noise_validation.monkey_we_check`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from classes.data.responses import available_response_sessions, load_raw
from classes.scoring import metrics

__all__ = [
    "CHOSEN_ESTIMATOR",
    "ESTIMATORS",
    "ESTIMATOR_LABELS",
    "RAW_REPEAT_SESSIONS",
    "approximate_noise",
    "calibrated_fano_factor",
    "count_spread_fano_factors",
    "fano_factors",
]

# The sessions whose raw repeats the release holds (none of the test sessions).
RAW_REPEAT_SESSIONS = ("201016", "210325")
ESTIMATORS = ("poisson", "poisson_per_image", "fano_per_image")
CHOSEN_ESTIMATOR = "fano_per_image"
ESTIMATOR_LABELS = {
    "poisson": "plain Poisson (variance = mean count, the session table's repeats)",
    "poisson_per_image": "Poisson, per-image repeat counts",
    "fano_per_image": "variance = F x mean count (F from the raw-repeat sessions), per-image repeat counts",
}


def fano_factors(raw) -> np.ndarray:
    """Each neuron's Fano factor: exact trial variance over mean count.

    Args:
        raw: ``(num_neurons, num_images, max_repeats)``, NaN past each image's repeats.

    Returns:
        ``(num_neurons,)``: sigma2 of :func:`classes.scoring.metrics.repeat_statistics`
        over the mean of the repeat means (NaN for a neuron that never fired).
    """
    means, noise_variance, _ = metrics.repeat_statistics(raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        return noise_variance / means.mean(axis=1)


def session_fano_factor(raw) -> float:
    """The median over neurons of :func:`fano_factors`."""
    return float(np.nanmedian(fano_factors(raw)))


@lru_cache(maxsize=8)
def _calibrated_fano_factor(data_root_key, sessions: tuple) -> float:
    present = set(available_response_sessions("raw", data_root_key))
    chosen = [session for session in sessions if session in present]
    if not chosen:
        raise ValueError(
            f"No raw repeats of {', '.join(sessions)} in this release: the Fano factor of the noise model "
            "cannot be calibrated (data_V4_responses/responses_raw/)."
        )
    return float(np.nanmedian(np.concatenate([fano_factors(load_raw(session, data_root_key))
                                              for session in chosen])))


def calibrated_fano_factor(data_root=None, sessions=RAW_REPEAT_SESSIONS) -> float:
    """F of ``fano_per_image``: the median Fano factor over all neurons of ``sessions``.

    Computed from the released raw repeats on first use (once per process).

    Args:
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        sessions: sessions with raw repeats to calibrate on.

    Raises:
        ValueError: none of ``sessions`` has raw repeats in the release.
    """
    return _calibrated_fano_factor(None if data_root is None else str(data_root), tuple(sessions))


def approximate_noise(means, estimator: str, counts, table_count: float, fano_factor: float) -> tuple:
    """sigma2 and repeat counts of an estimator, for :func:`metrics.noise_corrected_r2_from_summary`.

    Args:
        means: repeat-averaged responses ``(N, M)``.
        estimator: one of :data:`ESTIMATORS`.
        counts: ``(M,)`` per-image repeat counts.
        table_count: the one repeat count of ``poisson`` (the session table's).
        fano_factor: F of ``fano_per_image``.

    Returns:
        ``(noise_variance (N,), num_repeats)``: a scalar count for
        ``poisson``, per-image ``(1, M)`` counts otherwise.

    Raises:
        ValueError: unknown estimator or non-positive F.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}.")
    if not np.isfinite(fano_factor) or fano_factor <= 0:
        raise ValueError(f"fano_factor must be positive; got {fano_factor}.")
    poisson = metrics.poisson_noise_variance(means)
    if estimator == "poisson":
        return poisson, float(table_count)
    per_image = np.asarray(counts, dtype=np.float64)[None, :]
    return (poisson if estimator == "poisson_per_image" else fano_factor * poisson), per_image


def count_spread_fano_factors(means, counts) -> np.ndarray:
    """Per-neuron Fano factors from how the spread of averaged responses grows with 1/n_j.

    Over images, E[(y_j - mean y)^2] = signal variance + sigma2 / n_j when
    the counts do not depend on the image, so the least-squares slope of
    the squared deviations on 1/n_j estimates sigma2; divided by the mean
    count it is a Fano factor. Needs counts that vary (it is noisy unless
    they vary widely, as in 190923).

    Args:
        means: ``(N, M)`` repeat-averaged responses.
        counts: ``(M,)`` per-image repeat counts.

    Returns:
        ``(N,)``.

    Raises:
        ValueError: all counts are equal.
    """
    means = np.asarray(means, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if np.ptp(counts) == 0:
        raise ValueError("The counts are all equal: the spread cannot be regressed on 1/n.")
    inverse = 1.0 / counts
    centred = inverse - inverse.mean()
    squared = (means - means.mean(axis=1, keepdims=True)) ** 2
    slopes = squared @ centred / np.sum(centred**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return slopes / means.mean(axis=1)

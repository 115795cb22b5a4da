"""How good the approximate noise-corrected R2 is, measured where raw repeats exist.

The stand-in model (:func:`half_repeat_stand_in`) predicts each image with
the mean of the first half of its repeats and is scored against the other
half, so its noise is independent of the target's. Its exact noise-corrected
R2 (target sigma2 from the repeats, per-image counts) is compared per
neuron with the approximation of each estimator of
:mod:`classes.scoring.noise_model` given only the target's averages and
counts: error = approximate minus exact.

- :func:`leave_one_session_out`: F calibrated on one raw-repeat session,
  the other session scored (both monkey PE, like 201025 and 210225).
- :func:`monkey_we_check`: for 190923 (monkey WE), whose counts vary widely
  (4-28 repeats): F transferred from monkey PE against F estimated from
  190923's own count spread (:func:`classes.scoring.noise_model.count_spread_fano_factors`),
  both validated by subsampling the raw-repeat sessions to a 190923-like
  count pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.data.repeat_counts import repeat_counts
from classes.data.responses import available_response_sessions, load_raw, load_repeat_averaged
from classes.data.sessions import get_session
from classes.scoring import metrics
from classes.scoring.noise_model import (
    CHOSEN_ESTIMATOR,
    ESTIMATORS,
    RAW_REPEAT_SESSIONS,
    approximate_noise,
    calibrated_fano_factor,
    count_spread_fano_factors,
    fano_factors,
    session_fano_factor,
)

WE_SESSION = "190923"


@dataclass
class StandIn:
    """The half-repeat stand-in model and its target (the other half of the repeats).

    Attributes:
        predictor: ``(N, M)`` mean of the first ``n_j // 2`` repeats.
        means: ``(N, M)`` target means (the remaining repeats).
        noise_variance: ``(N,)`` the target's exact sigma2.
        counts: ``(M,)`` the target's repeats per image.
    """

    predictor: np.ndarray
    means: np.ndarray
    noise_variance: np.ndarray
    counts: np.ndarray

    def exact_r2(self) -> np.ndarray:
        """The stand-in's exact noise-corrected R2, per neuron."""
        return metrics.noise_corrected_r2_from_summary(self.predictor, self.means, self.noise_variance,
                                                       self.counts[None, :])

    def approximate_r2(self, estimator: str, table_count: float, fano_factor: float) -> np.ndarray:
        """Its noise-corrected R2 with sigma2 and counts of ``estimator`` instead."""
        noise, counts = approximate_noise(self.means, estimator, self.counts, table_count, fano_factor)
        return metrics.noise_corrected_r2_from_summary(self.predictor, self.means, noise, counts)


def half_repeat_stand_in(raw) -> StandIn:
    """Splits each image's repeats in a predicting half and a target half.

    Args:
        raw: ``(N, M, R)`` with NaN past each image's repeats; the same
            counts for every neuron and at least 3 repeats per image.

    Raises:
        ValueError: counts that differ between neurons or fall below 3.
    """
    raw = np.asarray(raw, dtype=np.float64)
    counts = metrics.count_repeats(raw)
    if np.any(counts != counts[:1]) or np.any(counts < 3):
        raise ValueError("The stand-in needs the same repeat counts for every neuron, at least 3 per image.")
    rank = np.arange(raw.shape[2])[None, None, :]
    first_half = counts[..., None] // 2
    predictor = np.nanmean(np.where(rank < first_half, raw, np.nan), axis=2)
    target = np.where(rank >= first_half, raw, np.nan)
    means, noise_variance, _ = metrics.repeat_statistics(target)
    return StandIn(predictor, means, noise_variance, metrics.count_repeats(target)[0])


def validation_errors(approximate, exact) -> dict:
    """Per-neuron error summaries of approximate minus exact (neurons where both are finite)."""
    error = np.asarray(approximate) - np.asarray(exact)
    error = error[np.isfinite(error)]
    return {"median_bias": float(np.median(error)), "p90_abs_error": float(np.percentile(np.abs(error), 90)),
            "num_neurons": int(error.size)}


def leave_one_session_out(data_root=None, sessions=RAW_REPEAT_SESSIONS) -> dict:
    """Every estimator on each raw-repeat session, F calibrated on the other sessions.

    Returns:
        session -> ``{"fano_factor": F used, "median_exact_r2": ..., estimator -> validation_errors
        with "median_r2"}``; sessions without raw repeats are left out, and
        with a single such session F is calibrated on itself (noted as
        ``"calibrated_on"``).
    """
    present = [session for session in sessions if session in set(available_response_sessions("raw", data_root))]
    raws = {session: load_raw(session, data_root) for session in present}
    results = {}
    for session in present:
        others = [other for other in present if other != session] or [session]
        fano = float(np.nanmedian(np.concatenate([fano_factors(raws[other]) for other in others])))
        stand_in = half_repeat_stand_in(raws[session])
        exact = stand_in.exact_r2()
        table = get_session(session).num_repeats
        entry = {"calibrated_on": others, "fano_factor": fano, "median_exact_r2": float(np.nanmedian(exact))}
        for estimator in ESTIMATORS:
            approximate = stand_in.approximate_r2(estimator, table - table // 2, fano)
            entry[estimator] = validation_errors(approximate, exact) | {"median_r2": float(np.nanmedian(approximate))}
        results[session] = entry
    return results


def subsample_repeats(raw, counts, generator) -> np.ndarray:
    """Keeps a random ``counts[j]`` of image j's repeats (the rest NaN, real repeats first)."""
    real = ~np.isnan(raw[0])
    order = np.argsort(generator.random(real.shape) + 2.0 * ~real, axis=1)
    shuffled = np.take_along_axis(raw, order[None], axis=2)
    return np.where(np.arange(raw.shape[2])[None, None, :] < np.asarray(counts)[None, :, None], shuffled, np.nan)


def _we_like_draw(raw, fano_transferred: float, generator, lowest: int) -> dict:
    """One subsampling of a raw-repeat session to a wide count pattern; both F choices scored."""
    available = metrics.count_repeats(raw)[0]
    pattern = generator.integers(lowest, available + 1)
    subsampled = subsample_repeats(raw, pattern, generator)
    means = metrics.repeat_statistics(subsampled)[0]
    fano_spread = float(np.nanmedian(count_spread_fano_factors(means, pattern)))
    stand_in = half_repeat_stand_in(subsampled)
    exact = stand_in.exact_r2()
    return {
        "inverse_count_cv": float(np.std(1 / pattern) / np.mean(1 / pattern)),
        "fano_count_spread": fano_spread,
        "transferred": validation_errors(stand_in.approximate_r2("fano_per_image", 1, fano_transferred), exact),
        "count_spread": validation_errors(stand_in.approximate_r2("fano_per_image", 1, fano_spread), exact),
    }


def monkey_we_check(data_root=None, num_draws: int = 10, num_bootstrap: int = 200, seed: int = 0) -> dict:
    """Transfer F to 190923 (monkey WE), or estimate it from 190923's count spread?

    Two measurements: (1) 190923's own count-spread F (median over neurons,
    with a 90% bootstrap interval over images) next to the PE sessions' F;
    (2) on each raw-repeat session, ``num_draws`` subsamplings keeping 3 to
    n_j repeats per image at random (1/n_j then varies about as much as in
    190923), scoring the stand-in with F transferred from the other session
    and with F from the subsample's own count spread.

    Returns:
        dict: ``we_count_spread_fano`` (median, 5th and 95th percentile),
        ``pe_fano`` (session -> F), ``we_inverse_count_cv`` and
        ``we_count_range`` (190923's smallest and largest count), and per session
        the mean over draws of each choice's median bias and 90th-percentile
        |error|, and the s.d. over draws of the median bias.
    """
    generator = np.random.default_rng(seed)
    averaged = load_repeat_averaged(WE_SESSION, data_root)
    counts = repeat_counts(WE_SESSION, data_root)
    draws = [generator.integers(0, len(counts), len(counts)) for _ in range(num_bootstrap)]
    boot = [np.nanmedian(count_spread_fano_factors(averaged[:, rows], counts[rows])) for rows in draws]
    present = [session for session in RAW_REPEAT_SESSIONS if session in set(available_response_sessions("raw", data_root))]
    raws = {session: load_raw(session, data_root) for session in present}
    pe_fano = {session: session_fano_factor(raw) for session, raw in raws.items()}
    result = {
        "we_count_spread_fano": {"median": float(np.nanmedian(count_spread_fano_factors(averaged, counts))),
                                 "p5": float(np.percentile(boot, 5)), "p95": float(np.percentile(boot, 95))},
        "we_inverse_count_cv": float(np.std(1 / counts) / np.mean(1 / counts)),
        "we_count_range": [int(counts.min()), int(counts.max())],
        "pe_fano": pe_fano, "sessions": {},
    }
    for session, raw in raws.items():
        transferred = float(np.mean([pe_fano[other] for other in pe_fano if other != session] or [pe_fano[session]]))
        runs = [_we_like_draw(raw, transferred, generator, lowest=3) for _ in range(num_draws)]
        summary = {"inverse_count_cv": float(np.mean([run["inverse_count_cv"] for run in runs]))}
        for choice in ("transferred", "count_spread"):
            biases = [run[choice]["median_bias"] for run in runs]
            summary[choice] = {"median_bias": float(np.mean(biases)), "median_bias_sd": float(np.std(biases)),
                               "p90_abs_error": float(np.mean([run[choice]["p90_abs_error"] for run in runs]))}
        summary["fano_count_spread_sd"] = float(np.std([run["fano_count_spread"] for run in runs]))
        result["sessions"][session] = summary
    return result


def validate_noise_model(data_root=None) -> dict:
    """Everything script4 reports on the noise model: F, both validations, the chosen estimator's errors.

    Returns:
        dict: ``estimator`` (the chosen one), ``fano_factor`` (F used for
        the test sessions) and ``calibrated_on``, ``leave_one_session_out``
        (:func:`leave_one_session_out`), ``validation`` (session ->
        ``median_bias`` and ``p90_abs_error`` of the chosen estimator) and
        ``monkey_we`` (:func:`monkey_we_check`); only ``estimator`` when no
        raw repeats are in the release.
    """
    present = [session for session in RAW_REPEAT_SESSIONS if session in set(available_response_sessions("raw", data_root))]
    if not present:
        return {"estimator": CHOSEN_ESTIMATOR}
    loso = leave_one_session_out(data_root)
    return {
        "estimator": CHOSEN_ESTIMATOR,
        "fano_factor": calibrated_fano_factor(data_root),
        "calibrated_on": present,
        "leave_one_session_out": loso,
        "validation": {session: {key: entry[CHOSEN_ESTIMATOR][key] for key in ("median_bias", "p90_abs_error")}
                       for session, entry in loso.items()},
        "monkey_we": monkey_we_check(data_root),
    }

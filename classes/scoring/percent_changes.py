"""Percent changes of model responses, and their comparison with Fig. 2.

The paper reports percent changes of real V4 firing rates (Fig. 2b-f):
maximizing normal and synthesized images against random normal images,
adversarial and smooth- images against their base images. Compact models
output centred values (means over normal images near 0, some negative), so
the plain formula ``100 * (r - r_ref) / r_ref`` on raw outputs is undefined
for most models. Three versions are kept, named by :data:`KINDS`:

- ``calibrated`` (headline): outputs mapped to predicted spike counts by a
  least-squares line fitted on the model's own session
  (:func:`spike_count_calibration`), then the plain formula;
- ``raw``: the plain formula on raw outputs, NaN where the reference is not
  positive;
- ``percent_of_range``: change over the model's response range on normal
  images.

The published values they are compared with are in
:mod:`classes.reporting.published`.
"""

from __future__ import annotations

import numpy as np

KINDS = ("calibrated", "raw", "percent_of_range")


def percent_change(responses, reference) -> np.ndarray:
    """``100 * (responses - reference) / reference``, NaN where reference <= 0.

    A percent change is only meaningful against a positive reference (a
    firing rate); near-zero or negative references give NaN, not nonsense.
    """
    responses = np.asarray(responses, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reference > 0, 100.0 * (responses - reference) / reference, np.nan)


def percent_of_normal_range(responses, reference, normal_responses) -> np.ndarray:
    """Change as a percentage of the model's response range on normal images.

    ``100 * (responses - reference) / (max - min of normal_responses)``,
    defined whatever the sign of the mean response.

    Args:
        responses: responses to the test images, any shape.
        reference: reference response(s), broadcastable to ``responses``.
        normal_responses: the model's responses to a pool of normal images.

    Raises:
        ValueError: the normal responses are constant.
    """
    normal_responses = np.asarray(normal_responses, dtype=np.float64)
    spread = normal_responses.max() - normal_responses.min()
    if not spread > 0:
        raise ValueError("normal_responses are constant; the model's response range is zero.")
    return 100.0 * (np.asarray(responses, np.float64) - np.asarray(reference, np.float64)) / spread


def spike_count_calibration(predictions, responses) -> tuple[float, float]:
    """Least-squares line from a model's output to its neuron's spike counts.

    ``responses ~ intercept + slope * predictions``, fitted on images with
    recorded responses (a test session's fit half). The least-squares slope
    (cov/var) shrinks as the prediction gets noisier, so calibrated changes
    are conservative.

    Args:
        predictions: model outputs ``(M,)``.
        responses: the neuron's repeat-averaged responses ``(M,)``.

    Returns:
        ``(intercept, slope)``.

    Raises:
        ValueError: unequal or too short vectors; constant predictions.
    """
    x = np.asarray(predictions, np.float64).reshape(-1)
    y = np.asarray(responses, np.float64).reshape(-1)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(
            f"predictions and responses must be equal-length vectors of 3+ images; got {x.shape}, {y.shape}."
        )
    if not np.ptp(x) > 0:
        raise ValueError("predictions are constant; the calibration line is undefined.")
    slope = float(np.cov(x, y, bias=True)[0, 1] / np.var(x))
    return float(y.mean() - slope * x.mean()), slope


def calibrated_percent_change(responses, reference, intercept: float, slope: float) -> np.ndarray:
    """Percent change of predicted spike counts (see :func:`spike_count_calibration`)."""
    return percent_change(
        intercept + slope * np.asarray(responses, np.float64),
        intercept + slope * np.asarray(reference, np.float64),
    )


def percent_changes(responses, reference, normal_responses, calibration) -> dict:
    """All three versions (:data:`KINDS`) of responses against reference(s).

    Args:
        calibration: ``(intercept, slope)`` or None (then ``calibrated`` is
            NaN).

    Returns:
        dict kind -> float64 array shaped like ``responses``.
    """
    changes = {
        "raw": percent_change(responses, reference),
        "percent_of_range": percent_of_normal_range(responses, reference, normal_responses),
    }
    if calibration is None:
        changes["calibrated"] = np.full(np.shape(responses), np.nan)
    else:
        changes["calibrated"] = calibrated_percent_change(responses, reference, *calibration)
    return changes


def summarize(values) -> dict:
    """Mean, s.e.m. and median over the finite values, and how many there were."""
    values = np.asarray(values, np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"n": 0, "total": int(values.size), "mean": np.nan, "sem": np.nan, "median": np.nan}
    sem = finite.std(ddof=1) / np.sqrt(finite.size) if finite.size > 1 else np.nan
    return {"n": int(finite.size), "total": int(values.size), "mean": float(finite.mean()),
            "sem": float(sem), "median": float(np.median(finite))}


def status_against(published: float, reproduced: float) -> str:
    """``approximate`` when of the same sign and within a factor of 1.5, else ``differs``.

    The values compared are model-predicted counterparts of changes the
    paper measured in real neurons, so none is called ``reproduced``; a
    factor of 1.5 keeps, e.g., +252% against the published +137% a
    difference rather than an approximation.
    """
    if reproduced is None or not np.isfinite(reproduced):
        return "not computable"
    return "approximate" if 2.0 / 3.0 <= reproduced / published <= 1.5 else "differs"


def format_change(summary: dict) -> str:
    """``+12.3% +/- 4.5% (median +10.0%, n=9)`` from :func:`summarize`'s dict."""
    if summary["n"] == 0:
        return "n/a"
    sem = f" +/- {summary['sem']:.1f}%" if np.isfinite(summary["sem"]) else ""
    return f"{summary['mean']:+.1f}%{sem} (median {summary['median']:+.1f}%, n={summary['n']})"


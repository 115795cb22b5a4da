"""Metrics comparing model predictions with V4 responses (SPEC section 5).

Pure NumPy, vectorised over neurons. Conventions: ``predictions`` and
repeat-averaged ``responses`` are ``(num_neurons, num_images)``; raw
``repeats`` are ``(num_neurons, num_images, max_repeats)`` with NaN where an
image had fewer repeats. 1-D inputs are treated as one neuron.
"""

from __future__ import annotations

import numpy as np


def _as_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be (num_neurons, num_images); got shape {array.shape}.")
    return array


def _as_repeats(repeats) -> np.ndarray:
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim == 2:
        repeats = repeats[None]
    if repeats.ndim != 3:
        raise ValueError(
            f"repeats must be (num_neurons, num_images, max_repeats); got shape {repeats.shape}."
        )
    return repeats


def _check_pair(first, second, first_name, second_name):
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} {first.shape} and {second_name} {second.shape} must have "
            "the same (num_neurons, num_images)."
        )
    if first.shape[1] < 3:
        raise ValueError(f"Need at least 3 images; got {first.shape[1]}.")


def pearson_r(predictions, responses) -> np.ndarray:
    """Pearson correlation across images, per neuron.

    Returns:
        ``(num_neurons,)``; NaN for a constant row.
    """
    x = _as_2d(predictions, "predictions")
    y = _as_2d(responses, "responses")
    _check_pair(x, y, "predictions", "responses")
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(x * y, axis=1) / denominator


def raw_r2(predictions, responses) -> np.ndarray:
    """Squared Pearson correlation per neuron (model-vs-model comparisons)."""
    return pearson_r(predictions, responses) ** 2


def repeat_statistics(repeats) -> tuple:
    """Per-neuron summaries of raw repeats, NaN-aware.

    Returns:
        ``(means (N, M), noise_variance (N,), num_repeats (N,))``: the
        repeat means; the mean over images of each image's repeat variance
        (ddof 1; images with fewer than 2 repeats are left out); the median
        count of non-NaN repeats over images.

    Raises:
        ValueError: an image of some neuron has no repeat at all.
    """
    repeats = _as_repeats(repeats)
    counts = np.sum(~np.isnan(repeats), axis=2)
    if np.any(counts == 0):
        raise ValueError("Every image needs at least one non-NaN repeat.")
    means = np.nansum(repeats, axis=2) / counts
    squared = np.nansum((repeats - means[..., None]) ** 2, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        variances = np.where(counts > 1, squared / np.maximum(counts - 1, 1), np.nan)
    noise_variance = np.nanmean(variances, axis=1)
    num_repeats = np.median(counts, axis=1)
    return means, noise_variance, num_repeats


def noise_corrected_r2_from_summary(predictions, means, noise_variance, num_repeats) -> np.ndarray:
    """Noise-corrected R2 (Pospisil & Bair 2021, r2_ER) from summaries.

    With m images, x the centred prediction, y the centred repeat mean,
    sigma2 the trial-to-trial variance and n the repeats per image::

        r2 = [(sum x*y)^2 - sigma2/n * sum x^2]
             / [sum x^2 * sum y^2 - (m - 1) * sigma2/n * sum x^2]

    Not clipped: values may fall outside 0..1 by chance.

    Args:
        predictions: ``(N, M)``.
        means: repeat means ``(N, M)``.
        noise_variance: sigma2 per neuron ``(N,)`` (or a scalar).
        num_repeats: n per neuron ``(N,)`` (or a scalar).

    Returns:
        ``(N,)``.
    """
    x = _as_2d(predictions, "predictions")
    y = _as_2d(means, "means")
    _check_pair(x, y, "predictions", "means")
    num_images = x.shape[1]
    noise = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (x.shape[0],))
    repeats = np.broadcast_to(np.asarray(num_repeats, dtype=np.float64), (x.shape[0],))
    if np.any(repeats < 1):
        raise ValueError(f"num_repeats must be at least 1; got {repeats.min()}.")
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    sum_xy = np.sum(x * y, axis=1)
    sum_xx = np.sum(x * x, axis=1)
    sum_yy = np.sum(y * y, axis=1)
    noise_of_mean = noise / repeats
    numerator = sum_xy**2 - noise_of_mean * sum_xx
    denominator = sum_xx * sum_yy - (num_images - 1) * noise_of_mean * sum_xx
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def noise_corrected_r2(predictions, repeats) -> np.ndarray:
    """Noise-corrected R2 (r2_ER) of predictions against raw repeats.

    Args:
        predictions: ``(N, M)``.
        repeats: ``(N, M, max_repeats)``, trailing NaN allowed.

    Returns:
        ``(N,)``; see :func:`noise_corrected_r2_from_summary`.
    """
    means, noise_variance, num_repeats = repeat_statistics(repeats)
    return noise_corrected_r2_from_summary(predictions, means, noise_variance, num_repeats)


def snr_from_summary(means, noise_variance, num_repeats) -> np.ndarray:
    """Signal-to-noise ratio (Pospisil 2021) from summaries.

    ``(var(means) - (m - 1)/m * sigma2/n) / sigma2``, where var has ddof 0
    over the m images: the unbiased stimulus (signal) variance over the
    trial variance. 0.15 is a usable threshold.
    """
    y = _as_2d(means, "means")
    num_images = y.shape[1]
    noise = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (y.shape[0],))
    repeats = np.broadcast_to(np.asarray(num_repeats, dtype=np.float64), (y.shape[0],))
    signal = y.var(axis=1) - (num_images - 1) / num_images * noise / repeats
    with np.errstate(invalid="ignore", divide="ignore"):
        return signal / noise


def snr(repeats) -> np.ndarray:
    """Per-neuron SNR from raw repeats ``(N, M, R)``; see :func:`snr_from_summary`."""
    means, noise_variance, num_repeats = repeat_statistics(repeats)
    return snr_from_summary(means, noise_variance, num_repeats)


def poisson_noise_variance(means) -> np.ndarray:
    """Trial variance under a Poisson noise model: the mean spike count.

    An APPROXIMATION for sessions whose raw repeats are not released: each
    image's trial variance is taken equal to its mean count, so sigma2 is
    the mean over images of the repeat-averaged responses.

    Args:
        means: repeat-averaged responses ``(N, M)``.

    Returns:
        ``(N,)``.
    """
    return _as_2d(means, "means").mean(axis=1)


def split_half_reliability(repeats, num_splits: int = 50, seed: int = 0) -> np.ndarray:
    """Spearman-Brown-corrected split-half correlation, averaged over splits.

    For each split, each image's available repeats are shuffled and divided
    in two halves; the correlation r across images between the half means
    is corrected to full length as 2r / (1 + r).

    Args:
        repeats: ``(N, M, R)`` with at least 2 repeats per image.
        num_splits: random splits to average.
        seed: random seed.

    Returns:
        ``(N,)``.
    """
    repeats = _as_repeats(repeats)
    counts = np.sum(~np.isnan(repeats), axis=2)
    if np.any(counts < 2):
        raise ValueError("Split-half reliability needs at least 2 repeats per image.")
    generator = np.random.default_rng(seed)
    # NaNs sort last, so the first `count` entries of each (neuron, image) are real.
    ordered = np.sort(repeats, axis=2)
    max_repeats = repeats.shape[2]
    corrected = np.empty((num_splits, repeats.shape[0]))
    for split in range(num_splits):
        keys = generator.random(ordered.shape)
        keys[np.arange(max_repeats)[None, None, :] >= counts[..., None]] = np.inf
        order = np.argsort(keys, axis=2)
        shuffled = np.take_along_axis(ordered, order, axis=2)
        rank = np.arange(max_repeats)[None, None, :]
        half = counts[..., None] // 2
        first = np.where(rank < half, shuffled, np.nan)
        second = np.where((rank >= half) & (rank < counts[..., None]), shuffled, np.nan)
        r = pearson_r(np.nanmean(first, axis=2), np.nanmean(second, axis=2))
        corrected[split] = 2 * r / (1 + r)
    return corrected.mean(axis=0)


def brainscore_r2(predictions, repeats, num_splits: int = 50, seed: int = 0) -> np.ndarray:
    """BrainScore-style R2: r(model, repeat mean)^2 / split-half reliability."""
    means, _, _ = repeat_statistics(repeats)
    return raw_r2(predictions, means) / split_half_reliability(repeats, num_splits, seed)

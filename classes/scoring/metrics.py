"""Metrics comparing model predictions with V4 responses (SPEC section 5).

Pure NumPy, vectorised over neurons. Conventions: ``predictions`` and
repeat-averaged ``responses`` are ``(num_neurons, num_images)``; raw
``repeats`` are ``(num_neurons, num_images, max_repeats)`` with NaN where an
image had fewer repeats. 1-D inputs are treated as one neuron.

Repeat counts (``num_repeats``) are a scalar, one per neuron ``(N,)``, or one
per image as a 2-D ``(N, M)`` or ``(1, M)`` array; with per-image counts the
noise variance of image j's mean is ``sigma2 / n_j``.

Input rules: predictions and responses must be finite (a NaN prediction
raises ``ValueError`` naming the neuron and image, rather than turning that
neuron's score into NaN unnoticed); NaN in raw ``repeats`` only pads the
repeat axis. Noise variances must be finite and non-negative, repeat counts
finite and at least 1. For valid inputs a score is NaN (or infinite) only
where it is undefined: a constant prediction, a zero denominator, an SNR
without trial noise.
"""

from __future__ import annotations

import numpy as np


def _as_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be (num_neurons, num_images); got shape {array.shape}.")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        neuron, image = bad[0]
        raise ValueError(
            f"{name} must be finite; {len(bad)} value(s) are not, the first at neuron {neuron}, "
            f"image {image} ({array[neuron, image]})."
        )
    return array


def _as_repeats(repeats) -> np.ndarray:
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim == 2:
        repeats = repeats[None]
    if repeats.ndim != 3:
        raise ValueError(
            f"repeats must be (num_neurons, num_images, max_repeats); got shape {repeats.shape}."
        )
    if np.any(np.isinf(repeats)):
        raise ValueError("repeats must be finite (NaN only pads images with fewer repeats).")
    return repeats


def _check_pair(first, second, first_name, second_name):
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} {first.shape} and {second_name} {second.shape} must have "
            "the same (num_neurons, num_images)."
        )
    if first.shape[1] < 3:
        raise ValueError(f"Need at least 3 images; got {first.shape[1]}.")


def _per_neuron_noise(noise_variance, num_neurons: int) -> np.ndarray:
    """sigma2 as ``(N, 1)``: a scalar or one finite, non-negative value per neuron."""
    noise = np.asarray(noise_variance, dtype=np.float64)
    if noise.ndim > 1 or (noise.ndim == 1 and noise.shape[0] != num_neurons):
        raise ValueError(
            f"noise_variance must be a scalar or one value per neuron ({num_neurons},); got shape {noise.shape}."
        )
    if not np.all(np.isfinite(noise)) or np.any(noise < 0):
        raise ValueError(f"noise_variance must be finite and non-negative; got minimum {np.min(noise)}.")
    return np.broadcast_to(noise, (num_neurons,))[:, None]


def _repeat_counts(num_repeats, shape: tuple) -> np.ndarray:
    """Repeat counts as ``(N, M)``: a scalar, ``(N,)`` per neuron, or ``(N, M)``/``(1, M)`` per image."""
    counts = np.asarray(num_repeats, dtype=np.float64)
    num_neurons, num_images = shape
    if counts.ndim == 1:
        if counts.shape[0] != num_neurons:
            raise ValueError(
                f"num_repeats of one value per neuron must have shape ({num_neurons},); got {counts.shape} "
                "(per-image counts are 2-D: (num_neurons, num_images) or (1, num_images))."
            )
        counts = counts[:, None]
    elif counts.ndim == 2 and counts.shape not in ((num_neurons, num_images), (1, num_images)):
        raise ValueError(f"per-image num_repeats must be ({num_neurons}, {num_images}) or (1, {num_images}); "
                         f"got {counts.shape}.")
    elif counts.ndim > 2:
        raise ValueError(f"num_repeats must be a scalar, (N,) or (N, M); got shape {counts.shape}.")
    if not np.all(np.isfinite(counts)) or np.any(counts < 1):
        raise ValueError(f"num_repeats must be finite and at least 1; got minimum {np.min(counts)}.")
    return np.broadcast_to(counts, shape)


def pearson_r(predictions, responses) -> np.ndarray:
    """Pearson correlation across images, per neuron.

    Returns:
        ``(num_neurons,)``; NaN for a constant row.

    Raises:
        ValueError: shapes differ, fewer than 3 images, or a non-finite value.
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


def count_repeats(repeats) -> np.ndarray:
    """Non-NaN repeats per neuron and image: int ``(N, M)`` of raw ``(N, M, R)``."""
    return np.sum(~np.isnan(_as_repeats(repeats)), axis=2)


def repeat_statistics(repeats) -> tuple:
    """Per-neuron summaries of raw repeats, NaN-aware.

    Returns:
        ``(means (N, M), noise_variance (N,), num_repeats (N,))``: the
        repeat means; the mean over images of each image's repeat variance
        (ddof 1; images with fewer than 2 repeats are left out); the median
        count of non-NaN repeats over images (per-image counts:
        :func:`count_repeats`).

    Raises:
        ValueError: an image of some neuron has no repeat at all, or no image
            of some neuron has 2 repeats (its noise variance is undefined).
    """
    repeats = _as_repeats(repeats)
    present = ~np.isnan(repeats)
    counts = np.sum(present, axis=2)
    if np.any(counts == 0):
        raise ValueError("Every image needs at least one non-NaN repeat.")
    if np.any(np.all(counts < 2, axis=1)):
        raise ValueError("The noise variance needs at least one image with 2 or more repeats for every neuron.")
    # Sums with the NaN padding set to 0 (what np.nansum does, without its copies).
    means = np.where(present, repeats, 0.0).sum(axis=2) / counts
    squared = np.where(present, (repeats - means[..., None]) ** 2, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        variances = np.where(counts > 1, squared / np.maximum(counts - 1, 1), np.nan)
    noise_variance = np.nanmean(variances, axis=1)
    num_repeats = np.median(counts, axis=1)
    return means, noise_variance, num_repeats


def noise_corrected_r2_from_summary(predictions, means, noise_variance, num_repeats) -> np.ndarray:
    """Noise-corrected R2 (Pospisil & Bair 2021, r2_ER) from summaries, per-image counts allowed.

    With m images, x the centred prediction, y the centred repeat mean and
    v_j = sigma2 / n_j the noise variance of image j's mean (sigma2 the
    trial-to-trial variance, n_j the image's repeats)::

        r2 = [(sum x*y)^2 - sum x_j^2 v_j]
             / [sum x^2 * (sum y^2 - (m - 1)/m * sum v_j)]

    Each bracket is the unbiased estimate of its noise-free value, since
    E[(sum x*y)^2] adds sum x_j^2 v_j and E[sum y^2] adds (1 - 1/m) sum v_j.
    With equal counts n this is the SPEC's formula
    ``[(sum x*y)^2 - sigma2/n sum x^2] / [sum x^2 sum y^2 - (m - 1) sigma2/n sum x^2]``.
    Not clipped: values may fall outside 0..1 by chance.

    Args:
        predictions: ``(N, M)``.
        means: repeat means ``(N, M)``.
        noise_variance: sigma2 per neuron ``(N,)`` (or a scalar).
        num_repeats: see the module doc: scalar, ``(N,)``, or per image
            ``(N, M)``/``(1, M)``.

    Returns:
        ``(N,)``.

    Raises:
        ValueError: see the module doc's input rules.
    """
    x = _as_2d(predictions, "predictions")
    y = _as_2d(means, "means")
    _check_pair(x, y, "predictions", "means")
    noise_of_mean = _per_neuron_noise(noise_variance, x.shape[0]) / _repeat_counts(num_repeats, x.shape)
    num_images = x.shape[1]
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    sum_xx = np.sum(x * x, axis=1)
    numerator = np.sum(x * y, axis=1) ** 2 - np.sum(x * x * noise_of_mean, axis=1)
    denominator = sum_xx * (np.sum(y * y, axis=1) - (num_images - 1) / num_images * noise_of_mean.sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def noise_corrected_r2(predictions, repeats) -> np.ndarray:
    """Noise-corrected R2 (r2_ER) of predictions against raw repeats, each image with its own count.

    Args:
        predictions: ``(N, M)``.
        repeats: ``(N, M, max_repeats)``, trailing NaN allowed.

    Returns:
        ``(N,)``; see :func:`noise_corrected_r2_from_summary` (with sigma2 of
        :func:`repeat_statistics` and the counts of :func:`count_repeats`).
    """
    means, noise_variance, _ = repeat_statistics(repeats)
    return noise_corrected_r2_from_summary(predictions, means, noise_variance, count_repeats(repeats))


def snr_from_summary(means, noise_variance, num_repeats) -> np.ndarray:
    """Signal-to-noise ratio (Pospisil 2021) from summaries.

    ``(var(means) - (m - 1)/m * mean_j(sigma2 / n_j)) / sigma2``, where var
    has ddof 0 over the m images: the unbiased stimulus (signal) variance
    over the trial variance. 0.15 is a usable threshold.

    Args:
        means: ``(N, M)``.
        noise_variance: sigma2, scalar or ``(N,)``.
        num_repeats: as for :func:`noise_corrected_r2_from_summary`.

    Raises:
        ValueError: see the module doc's input rules.
    """
    y = _as_2d(means, "means")
    noise = _per_neuron_noise(noise_variance, y.shape[0])
    noise_of_mean = noise / _repeat_counts(num_repeats, y.shape)
    num_images = y.shape[1]
    signal = y.var(axis=1) - (num_images - 1) / num_images * noise_of_mean.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return signal / noise[:, 0]


def snr(repeats) -> np.ndarray:
    """Per-neuron SNR from raw repeats ``(N, M, R)``, each image with its own count."""
    means, noise_variance, _ = repeat_statistics(repeats)
    return snr_from_summary(means, noise_variance, count_repeats(repeats))


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
        num_splits: random splits to average, at least 1.
        seed: random seed.

    Returns:
        ``(N,)``.

    Raises:
        ValueError: fewer than 2 repeats for an image, or ``num_splits`` < 1.
    """
    if isinstance(num_splits, bool) or not isinstance(num_splits, (int, np.integer)) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer; got {num_splits!r}.")
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

"""The dot-detecting compact model: tuning, per-filter ablation, invariance.

Definitions (the project's reading of the paper's Fig. 4 and Ext. Data
Fig. 5; SPEC section 7 says only that a filter's dot-size invariance is "how
much ablating it (kernel weights to 0) flattens the size tuning"):

- Ablating a filter sets its kernel weights to 0 (layer 0: its 5x5x3 conv
  kernel; layers 1-4: its pointwise column), biases and BN untouched, as
  :func:`classes.compact.tools.ablate_filters` does; here it is done in
  place and undone afterwards (:func:`filters_ablated`).
- Size tuning: the model's response to single dots of each radius, averaged
  over a 3 x 3 block of grid locations around its preferred location. Number
  tuning: its response to 1, 2, ... dots of its preferred radius placed at
  random, without overlap, inside its receptive field, averaged over draws.
- Dot-size invariance index of a filter, "how much ablating it flattens the
  size tuning": ``1 - range(r_ablated) / range(r_intact)``, with ``range`` the
  maximum minus the minimum of the size-tuning curve. It is 1 when ablating
  the filter makes the response independent of dot size, 0 when the size
  tuning keeps its range, negative when size matters more after ablation.
  The dot-number invariance index is the same for the number tuning.
  Flattening by silencing (all responses down to the blank's) also gives 1,
  so the mean driven response (response minus the blank's) left after
  ablation, relative to the intact model's, is reported beside it.
- Cumulative ablation: a layer's filters, ordered by their single-filter
  dot-size invariance index (highest first), are ablated one more at a time
  until the index reaches ``threshold`` (1 within a tolerance).
- Dot selectivity of a model: ``(max over dot stimuli - mean over natural
  images) / (max over natural images - mean over natural images)``; above 1,
  some dot drives the model more than any natural image of the pool.

The maximizing synthesized image uses a minimal local version of the
paper's gradient ascent (SPEC section 7), not :mod:`classes.analysis.synthesis`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from classes.analysis.dot_stimuli import blank_image, dot_image, random_dot_centers
from classes.compact.architecture import NUM_LAYERS
from classes.compact.tools import get_kernels, set_kernels
from classes.data.preprocessing import RECENTERED_MAX, RECENTERED_MIN, RGB_MEANS, recenter_images
from classes.prediction import predict
from classes.runtime.quiet_tensorflow import keras, tf


class ResponseFunction:
    """A compact model's responses to raw images, through :func:`classes.prediction.predict`.

    Each call reads the model's current weights, so weights changed in place
    (e.g. by :func:`filters_ablated`) take effect on the next call; many
    variants of the model (e.g. every single-filter ablation) are evaluated
    together by :meth:`many`. The fast path (BN folded, the compiled kernel
    where it runs) gives the Keras model's responses within float32 rounding.
    """

    def __init__(self, model: keras.Model, batch_size: int = 16, engine: str = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive; got {batch_size}.")
        self.model = model
        self.batch_size = batch_size
        self.engine = engine

    def many(self, weight_lists, raw_images) -> np.ndarray:
        """Responses (float64 ``(len(weight_lists), N)``) of several weight lists of the model to raw images."""
        images = recenter_images(raw_images)
        if len(images) == 0:
            return np.zeros((len(weight_lists), 0))
        return predict(list(weight_lists), images, engine=self.engine, batch_size=self.batch_size).astype(np.float64)

    def __call__(self, raw_images) -> np.ndarray:
        """Responses (float64 ``(N,)``) of the model as it is now to raw uint8 images ``(N, 112, 112, 3)``."""
        return self.many([self.model.get_weights()], raw_images)[0]


def _kernel_name(layer: int) -> str:
    if layer not in range(NUM_LAYERS):
        raise ValueError(f"layer must be 0..{NUM_LAYERS - 1}; got {layer!r}.")
    return "kernel" if layer == 0 else "pointwise"


def num_filters(model: keras.Model, layer: int) -> int:
    """Filters of one layer (its kernel's last dimension)."""
    return int(get_kernels(model, layer)[_kernel_name(layer)].shape[-1])


@contextmanager
def filters_ablated(model: keras.Model, layer: int, filters):
    """Sets the kernel weights of some filters of a layer to 0, then restores them.

    Args:
        model: a compact model, changed in place while the context is open.
        layer: 0..4.
        filters: indices of the layer's filters (any iterable; may be empty).
    """
    name = _kernel_name(layer)
    original = get_kernels(model, layer)[name]
    indices = np.atleast_1d(np.asarray(list(filters), dtype=int))
    if indices.size and (indices.min() < 0 or indices.max() >= original.shape[-1]):
        raise ValueError(f"Layer {layer} has filters 0..{original.shape[-1] - 1}; got {indices.tolist()}.")
    zeroed = original.copy()
    zeroed[..., indices] = 0.0
    set_kernels(model, layer, **{name: zeroed})
    try:
        yield model
    finally:
        set_kernels(model, layer, **{name: original})


def tuning_range(tuning) -> float:
    """Maximum minus minimum over the finite entries of a tuning curve (NaN if none)."""
    tuning = np.asarray(tuning, dtype=np.float64)
    finite = tuning[np.isfinite(tuning)]
    return float(finite.max() - finite.min()) if finite.size else float("nan")


def invariance_index(tuning_ablated, tuning_intact) -> float:
    """``1 - range(ablated) / range(intact)`` (module doc); NaN if the intact curve is flat."""
    intact = tuning_range(tuning_intact)
    if not np.isfinite(intact) or intact <= 0:
        return float("nan")
    return float(1.0 - tuning_range(tuning_ablated) / intact)


def dot_selectivity_index(dot_responses, natural_responses) -> float:
    """``(max dots - mean natural) / (max natural - mean natural)`` (module doc)."""
    dots = np.asarray(dot_responses, dtype=np.float64)
    natural = np.asarray(natural_responses, dtype=np.float64)
    if dots.size == 0 or natural.size < 2:
        raise ValueError("Need at least one dot response and two natural-image responses.")
    spread = natural.max() - natural.mean()
    return float((dots.max() - natural.mean()) / spread) if spread > 0 else float("nan")


@dataclass
class ProbeSet:
    """The fixed stimuli whose responses give a model's size and number tuning.

    Images: the blank, then ``len(radii) x len(size_centers)`` single dots
    (radius-major), then ``len(numbers) x num_draws`` multi-dot images
    (number-major; a draw whose dots do not fit is a blank and marked invalid).
    """

    radii: np.ndarray
    numbers: np.ndarray
    num_centers: int
    num_draws: int
    images: np.ndarray
    number_valid: np.ndarray
    number_centers: list = field(default_factory=list)

    def evaluate(self, responses) -> dict:
        """Size and number tuning, the blank's response and the mean driven response."""
        responses = np.asarray(responses, dtype=np.float64)
        if responses.shape != (len(self.images),):
            raise ValueError(f"Expected {len(self.images)} responses; got shape {responses.shape}.")
        baseline = responses[0]
        size_end = 1 + len(self.radii) * self.num_centers
        size_tuning = responses[1:size_end].reshape(len(self.radii), self.num_centers).mean(axis=1)
        by_number = np.where(self.number_valid, responses[size_end:].reshape(self.number_valid.shape), np.nan)
        counts = self.number_valid.sum(axis=1)
        number_tuning = np.where(counts > 0, np.nansum(by_number, axis=1) / np.maximum(counts, 1), np.nan)
        return {
            "baseline": float(baseline),
            "size_tuning": size_tuning,
            "number_tuning": number_tuning,
            "mean_drive": float(np.mean(size_tuning) - baseline),
        }


def compare_to_intact(result: dict, intact: dict) -> dict:
    """Invariance indices of an ablated model's tuning against the intact model's."""
    drive = intact["mean_drive"]
    return {
        "size_invariance": invariance_index(result["size_tuning"], intact["size_tuning"]),
        "number_invariance": invariance_index(result["number_tuning"], intact["number_tuning"]),
        "retained_drive": result["mean_drive"] / drive if drive > 0 else float("nan"),
    }


def build_probe_set(
    radii, size_centers, numbers, number_radius: float, number_candidates,
    num_draws: int, dot_value, seed: int = 0,
) -> ProbeSet:
    """Stimuli for size tuning (single dots around a location) and number tuning.

    Args:
        radii: dot radii for the size tuning (pixels).
        size_centers: ``(C, 2)`` centres where each radius is shown; the size
            tuning averages over them.
        numbers: dot counts for the number tuning.
        number_radius: radius of the dots of the number stimuli.
        number_candidates: ``(K, 2)`` allowed centres of those dots (e.g. the
            grid cells of the model's receptive field).
        num_draws: random placements per number.
        dot_value: the dots' pixel value (0 black, 255 white).
    """
    generator = np.random.default_rng(seed)
    radii = np.asarray(radii, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=int)
    size_centers = np.asarray(size_centers, dtype=np.float64).reshape(-1, 2)
    images = [blank_image()[0]]
    images += [dot_image(center[None], radius, dot_value) for radius in radii for center in size_centers]
    valid = np.zeros((len(numbers), num_draws), dtype=bool)
    placed = []
    for row, number in enumerate(numbers):
        for draw in range(num_draws):
            centers = random_dot_centers(int(number), number_radius, generator, number_candidates)
            valid[row, draw] = centers is not None
            placed.append(centers)
            images.append(dot_image(centers if centers is not None else np.empty((0, 2)), number_radius, dot_value))
    return ProbeSet(radii, numbers, len(size_centers), num_draws, np.stack(images), valid, placed)


def ablation_scan(model, response_function: ResponseFunction, probe: ProbeSet, layers=range(NUM_LAYERS)):
    """Every filter of the given layers ablated alone: invariance indices and tuning.

    Every ablated model is evaluated in one :meth:`ResponseFunction.many` call.

    Returns:
        ``(intact, rows)``: the intact model's :meth:`ProbeSet.evaluate`, and
        one dict per filter with ``layer``, ``filter``, its dot-size and
        dot-number invariance indices, the retained mean drive and the
        ablated model's tuning curves.
    """
    jobs = [(layer, index) for layer in layers for index in range(num_filters(model, layer))]
    responses = response_function.many([model.get_weights()] + _ablated_weights(model, jobs), probe.images)
    intact = probe.evaluate(responses[0])
    rows = [_ablation_row(layer, index, probe.evaluate(row), intact)
            for (layer, index), row in zip(jobs, responses[1:], strict=True)]
    return intact, rows


def _ablated_weights(model, jobs) -> list[list[np.ndarray]]:
    """The model's weights with each job's ``(layer, filters)`` ablated (filters an int or a list)."""
    weight_lists = []
    for layer, filters in jobs:
        with filters_ablated(model, layer, np.atleast_1d(filters).tolist()):
            weight_lists.append(model.get_weights())
    return weight_lists


def _ablation_row(layer, index, result, intact) -> dict:
    return {
        "layer": layer,
        "filter": index,
        **compare_to_intact(result, intact),
        "size_tuning": result["size_tuning"],
        "number_tuning": result["number_tuning"],
        "baseline": result["baseline"],
    }


def cumulative_ablation(
    model, response_function: ResponseFunction, probe: ProbeSet, layer: int, order, threshold: float = 0.95
) -> list[dict]:
    """Ablates a layer's filters one more at a time, in ``order``, until invariance >= threshold.

    Every step is evaluated in one :meth:`ResponseFunction.many` call (each
    model's responses do not depend on the others'), then the steps after
    the first that reaches ``threshold`` are dropped.

    Returns:
        One dict per step (step 0 is the intact model): the filters ablated
        so far, :meth:`ProbeSet.evaluate` of the ablated model and
        :func:`compare_to_intact`. Stops after the first step whose dot-size
        invariance index reaches ``threshold``, or when every filter in
        ``order`` is ablated.
    """
    order = [int(index) for index in order]
    jobs = [(layer, order[:count]) for count in range(len(order) + 1)]
    responses = response_function.many([model.get_weights()] + _ablated_weights(model, jobs), probe.images)
    intact = probe.evaluate(responses[0])
    steps = []
    for count, row in enumerate(responses[1:]):
        result = probe.evaluate(row)
        steps.append({"ablated": order[:count], **result, **compare_to_intact(result, intact)})
        if count > 0 and steps[-1]["size_invariance"] >= threshold:
            break
    return steps


def _gaussian_blur(images, sigma: float = 1.0):
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).astype(np.float32)
    kernel = tf.constant(np.tile((weights[:, None] * weights[None, :])[:, :, None, None], (1, 1, 3, 1)))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def synthesize_maximizing_image(model: keras.Model, num_steps: int = 200, seed: int = 0):
    """Gradient ascent on the image (SPEC section 7, minimal local version).

    Starts from uniform noise in 128..178 (raw), then per step: gradient of
    the output, divided by its RMS (+1e-5), blurred (sigma 1), 10 pixel units
    up, clipped to the valid range; every 50 steps the image is blurred
    (sigma 1); the best image seen is kept.

    Returns:
        ``(raw uint8 image (112, 112, 3), its response)``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive; got {num_steps}.")
    generator = np.random.default_rng(seed)
    start = generator.uniform(128, 178, size=(1, 112, 112, 3)).astype(np.float32) - RGB_MEANS
    image = tf.Variable(start)
    low = tf.constant(-RGB_MEANS.reshape(1, 1, 1, 3))
    high = tf.constant((255.0 - RGB_MEANS).reshape(1, 1, 1, 3))

    @tf.function
    def step(blur_image):
        with tf.GradientTape() as tape:
            response = model(image, training=False)[0, 0]
        gradient = tape.gradient(response, image)
        gradient = gradient / (tf.sqrt(tf.reduce_mean(gradient**2)) + 1e-5)
        updated = image + 10.0 * _gaussian_blur(gradient)
        updated = tf.cond(blur_image, lambda: _gaussian_blur(updated), lambda: updated)
        image.assign(tf.clip_by_value(updated, low, high))
        return response

    best_response, best_image = -np.inf, start
    for index in range(num_steps):
        current = image.numpy()
        response = float(step(tf.constant((index + 1) % 50 == 0)))
        if response > best_response:
            best_response, best_image = response, current
    final = float(model(image, training=False)[0, 0])
    if final > best_response:
        best_response, best_image = final, image.numpy()
    best_image = np.clip(best_image, RECENTERED_MIN, RECENTERED_MAX)
    raw = np.clip(np.round(best_image[0] + RGB_MEANS), 0, 255).astype(np.uint8)
    return raw, best_response

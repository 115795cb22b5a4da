"""Images for the causal tests of Fig. 2 and Ext. Data Fig. 4 (SPEC section 7).

- Adversarial images: from a base image, climb (or descend) the model's
  output in small gradient steps until the largest pixel change would pass a
  threshold; the returned image stays within it.
- Saliency maps: replace a small patch centred at each location of a grid by
  its Gaussian-smoothed version and map the change in output.
- smooth- images: greedily smooth the non-overlapping patches that lower the
  output most; the control smooths as many random patches.

Percent changes of the responses are in :mod:`classes.scoring.percent_changes`, the
candidate image pool in :mod:`classes.data.candidate_images`.

Images go in and out as raw pixels (0..255, ``(N, 112, 112, 3)``); models
see them recentred. Every model is a Keras model on recentred images; pick
the unit of a multi-output model with ``output_index``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.analysis import compact_graph
from classes.analysis.synthesis import response_function
from classes.analysis.synthesis_loop import gaussian_blur
from classes.data.preprocessing import RGB_MEANS, check_images
from classes.runtime.quiet_tensorflow import tf

DEFAULT_MAX_PIXEL_CHANGE = 20.0
DEFAULT_SALIENCY_PATCH = 15
DEFAULT_SALIENCY_STRIDE = 4
DEFAULT_SMOOTH_PATCH = 16
DEFAULT_SMOOTH_SIGMA = 3.0
DEFAULT_NUM_SMOOTHED_PATCHES = 10
_LOW = tf.constant(-RGB_MEANS, dtype=tf.float32)
_HIGH = tf.constant(255.0 - RGB_MEANS, dtype=tf.float32)


def predict_raw(model, images, output_index: int = 0, batch_size: int = 128) -> np.ndarray:
    """Responses of one model unit to raw images.

    Compact models share one graph (:func:`classes.analysis.compact_graph.compact_response_function`,
    the same responses bit for bit); any other model gets its own.

    Args:
        model: a Keras model on recentred images, or a compact model's weight list.
        images: raw ``(N, 112, 112, 3)`` in 0..255, uint8 or float.
        output_index: unit of a multi-output model.
        batch_size: images per forward pass.

    Returns:
        float32 ``(N,)``.
    """
    images = check_images(images, "raw")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    respond = _compiled_response(model, output_index)
    responses = [
        np.asarray(respond(tf.constant(images[start : start + batch_size].astype(np.float32) - RGB_MEANS)))
        for start in range(0, len(images), int(batch_size))
    ]
    return np.concatenate(responses).astype(np.float32) if responses else np.zeros(0, np.float32)


_LAST_COMPILED: dict = {}


def _compiled_response(model, output_index: int):
    # Compact models share one graph. Otherwise one compiled forward pass for
    # the most recent (model, unit), any batch size, so that a large pool in
    # chunks traces once; only one is kept (it holds the model; scripts go
    # through hundreds of models).
    if isinstance(model, (list, tuple)) or (compact_graph.is_compact_model(model) and output_index == 0):
        weights, function = compact_graph.compact_weights(model), compact_graph.compact_response_function()
        return lambda batch: function(batch, weights)
    key = (id(model), int(output_index))
    if _LAST_COMPILED.get("key") != key or _LAST_COMPILED.get("model") is not model:
        _LAST_COMPILED.clear()
        _LAST_COMPILED.update(
            key=key, model=model, function=tf.function(
                response_function(model, output_index),
                input_signature=[tf.TensorSpec([None, 112, 112, 3], tf.float32)],
            ),
        )
    return _LAST_COMPILED["function"]


def _as_raw_batch(images, name: str) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    return check_images(array, "raw", name).astype(np.float32)


@dataclass
class AdversarialResult:
    """Adversarial images and what they did.

    Attributes:
        images: raw float32 ``(N, 112, 112, 3)``.
        responses, base_responses: float32 ``(N,)``.
        max_pixel_change: float32 ``(N,)``, largest absolute raw pixel change
            from the base image (never above the threshold).
        num_steps: int ``(N,)``, gradient steps taken.
    """

    images: np.ndarray
    responses: np.ndarray
    base_responses: np.ndarray
    max_pixel_change: np.ndarray
    num_steps: np.ndarray


def adversarial_images(
    model,
    base_images,
    direction: str = "increase",
    max_pixel_change: float = DEFAULT_MAX_PIXEL_CHANGE,
    step_size: float = 1.0,
    method: str = "sign",
    max_steps: int = 1000,
    output_index: int = 0,
) -> AdversarialResult:
    """Pushes a model's output up or down with small pixel changes.

    Each step moves every image along its gradient: ``"sign"`` moves each
    pixel by ``step_size`` in the direction of its gradient's sign;
    ``"normalized"`` scales the gradient so its largest entry is
    ``step_size``. Pixels are clipped to 0..255. An image stops at the last
    step whose largest absolute change from its base is at most
    ``max_pixel_change`` (raw pixel units), so the threshold is respected.

    Args:
        model: Keras model on recentred images.
        base_images: raw ``(N, 112, 112, 3)`` (or one image).
        direction: ``"increase"`` or ``"decrease"``.
        max_pixel_change: threshold on the largest absolute pixel change.
        step_size: pixel units per step (at most this much per pixel).
        method: ``"sign"`` or ``"normalized"``.
        max_steps: upper bound on steps.
        output_index: unit of a multi-output model.

    Returns:
        An :class:`AdversarialResult`.

    Raises:
        ValueError: bad settings or images.
    """
    _check_adversarial_settings(direction, method, max_pixel_change, step_size, max_steps)
    base = _as_raw_batch(base_images, "base_images")
    sign = 1.0 if direction == "increase" else -1.0
    climb = make_adversarial_climber(response_function(model, output_index), sign, step_size, method,
                                     float(max_pixel_change))
    images, steps = climb(tf.constant(base - RGB_MEANS), tf.constant(int(max_steps), tf.int32))
    raw = np.clip(images.numpy() + RGB_MEANS, 0.0, 255.0).astype(np.float32)
    return AdversarialResult(
        images=raw,
        responses=predict_raw(model, raw, output_index),
        base_responses=predict_raw(model, base, output_index),
        max_pixel_change=np.abs(raw - base).max(axis=(1, 2, 3)).astype(np.float32),
        num_steps=steps.numpy(),
    )


def _check_adversarial_settings(direction, method, max_pixel_change, step_size, max_steps) -> None:
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}.")
    if method not in ("sign", "normalized"):
        raise ValueError(f"method must be 'sign' or 'normalized', got {method!r}.")
    if not max_pixel_change > 0 or not step_size > 0:
        raise ValueError(
            f"max_pixel_change and step_size must be positive; got {max_pixel_change!r}, {step_size!r}."
        )
    if isinstance(max_steps, bool) or int(max_steps) < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")


def make_adversarial_climber(respond, sign: float, step_size: float, method: str, threshold: float):
    """Compiles the adversarial step loop of :func:`adversarial_images`.

    Args:
        respond: recentred images -> responses (``response_function``).
        sign: +1 to increase the response, -1 to decrease it.
        step_size, method: as in :func:`adversarial_images`.
        threshold: the largest allowed absolute pixel change.

    Returns:
        A ``tf.function`` ``(recentred base images, step limit) -> (images,
        steps)``: the last accepted images (recentred) and the steps each took.
    """

    @tf.function
    def climb(base_recentred, limit):
        images = base_recentred
        active = tf.ones(tf.shape(images)[:1], tf.bool)
        steps = tf.zeros(tf.shape(images)[:1], tf.int32)
        for _ in tf.range(limit):
            if not tf.reduce_any(active):
                break
            values = respond(images)
            # tf.gradients, as in classes.analysis.synthesis: a tape fails inside graph loops.
            gradient = tf.gradients(tf.reduce_sum(values), images)[0]
            if method == "sign":
                move = tf.sign(gradient)
            else:
                largest = tf.reduce_max(tf.abs(gradient), axis=[1, 2, 3], keepdims=True)
                move = gradient / tf.maximum(largest, 1e-12)
            candidate = tf.clip_by_value(images + sign * step_size * move, _LOW, _HIGH)
            change = tf.reduce_max(tf.abs(candidate - base_recentred), axis=[1, 2, 3])
            moved = tf.reduce_max(tf.abs(candidate - images), axis=[1, 2, 3]) > 0
            accept = active & (change <= threshold) & moved
            images = tf.where(accept[:, None, None, None], candidate, images)
            steps += tf.cast(accept, tf.int32)
            active = accept
        return images, steps

    return climb


def smoothed(images, sigma: float = DEFAULT_SMOOTH_SIGMA) -> np.ndarray:
    """Gaussian-smoothed raw images (per channel, mirrored edges), float32."""
    return gaussian_blur(_as_raw_batch(images, "images"), sigma).numpy()


def _check_patch(patch_size, stride=1):
    for name, value in (("patch_size", patch_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 112:
            raise ValueError(f"{name} must be an integer in 1..112, got {value!r}.")


@dataclass
class SaliencyResult:
    """A saliency map: output change when a patch at each location is smoothed.

    Attributes:
        change: float32 ``(G, G)``, response with the patch smoothed minus the
            base response; row i, column j is the patch centred at
            ``(centres[i], centres[j])``. Negative where smoothing lowers it.
        centres: int ``(G,)`` pixel coordinates of the patch centres.
        base_response: the unmodified image's response.
    """

    change: np.ndarray
    centres: np.ndarray
    base_response: float


def saliency_map(
    model,
    image,
    patch_size: int = DEFAULT_SALIENCY_PATCH,
    stride: int = DEFAULT_SALIENCY_STRIDE,
    sigma: float = DEFAULT_SMOOTH_SIGMA,
    output_index: int = 0,
    batch_size: int = 128,
) -> SaliencyResult:
    """Maps where smoothing a small patch changes a model's output.

    For each centre of a grid with spacing ``stride`` pixels (starting at
    ``stride // 2``), the ``patch_size`` x ``patch_size`` square centred
    there (cut at the image border) is replaced by the same square of the
    Gaussian-smoothed image.

    Args:
        model: Keras model on recentred images.
        image: one raw image ``(112, 112, 3)``.
        patch_size: side of the smoothed square (odd sizes centre exactly).
        stride: grid spacing; 4 gives a 28 x 28 map.
        sigma: s.d. of the smoothing Gaussian, pixels.

    Returns:
        A :class:`SaliencyResult`.
    """
    _check_patch(patch_size, stride)
    original = _as_raw_batch(image, "image")
    if len(original) != 1:
        raise ValueError(f"saliency_map takes one image; got {len(original)}.")
    blurred = smoothed(original, sigma)[0]
    original = original[0]
    centres = np.arange(stride // 2, 112, stride)
    half = patch_size // 2
    base_response = float(predict_raw(model, original[None], output_index)[0])
    positions = [(row, column) for row in centres for column in centres]
    changes = []
    for start in range(0, len(positions), batch_size):
        batch = np.repeat(original[None], len(positions[start : start + batch_size]), axis=0)
        for index, (row, column) in enumerate(positions[start : start + batch_size]):
            rows = slice(max(row - half, 0), min(row - half + patch_size, 112))
            columns = slice(max(column - half, 0), min(column - half + patch_size, 112))
            batch[index, rows, columns] = blurred[rows, columns]
        changes.append(predict_raw(model, batch, output_index, batch_size) - base_response)
    change = np.concatenate(changes).reshape(len(centres), len(centres))
    return SaliencyResult(change.astype(np.float32), centres, base_response)


def patch_grid(patch_size: int = DEFAULT_SMOOTH_PATCH) -> list[tuple[slice, slice]]:
    """Non-overlapping square patches tiling the (centred) image, row by row."""
    _check_patch(patch_size)
    count = 112 // patch_size
    offset = (112 - count * patch_size) // 2
    starts = offset + patch_size * np.arange(count)
    return [
        (slice(row, row + patch_size), slice(column, column + patch_size))
        for row in starts
        for column in starts
    ]


@dataclass
class SmoothResult:
    """A smooth- image (or its random-patch control).

    Attributes:
        image: raw float32 ``(112, 112, 3)``.
        response, base_response: responses to it and to the base image.
        patches: indices into :func:`patch_grid` of the smoothed patches, in
            the order they were chosen.
        trajectory: float32 response after each added patch.
    """

    image: np.ndarray
    response: float
    base_response: float
    patches: list
    trajectory: np.ndarray


def _check_count(num_patches, available):
    if isinstance(num_patches, bool) or not isinstance(num_patches, (int, np.integer)):
        raise ValueError(f"num_patches must be an integer, got {num_patches!r}.")
    if not 1 <= num_patches <= available:
        raise ValueError(f"num_patches must be in 1..{available} for this patch size; got {num_patches}.")


def smooth_minus_image(
    model,
    image,
    num_patches: int = DEFAULT_NUM_SMOOTHED_PATCHES,
    patch_size: int = DEFAULT_SMOOTH_PATCH,
    sigma: float = DEFAULT_SMOOTH_SIGMA,
    output_index: int = 0,
) -> SmoothResult:
    """Greedily smooths the patches that lower the output most.

    Each round tries every patch of :func:`patch_grid` not yet smoothed
    (replacing it by the same patch of the Gaussian-smoothed base image) and
    keeps the one whose smoothing gives the lowest response.

    Returns:
        A :class:`SmoothResult`.
    """
    tiles = patch_grid(patch_size)
    _check_count(num_patches, len(tiles))
    original = _as_raw_batch(image, "image")
    if len(original) != 1:
        raise ValueError(f"smooth_minus_image takes one image; got {len(original)}.")
    blurred = smoothed(original, sigma)[0]
    current = original[0].copy()
    base_response = float(predict_raw(model, original, output_index)[0])
    chosen, trajectory = [], []
    for _ in range(num_patches):
        remaining = [index for index in range(len(tiles)) if index not in chosen]
        candidates = np.repeat(current[None], len(remaining), axis=0)
        for position, index in enumerate(remaining):
            rows, columns = tiles[index]
            candidates[position, rows, columns] = blurred[rows, columns]
        responses = predict_raw(model, candidates, output_index)
        best = int(np.argmin(responses))
        chosen.append(remaining[best])
        current = candidates[best]
        trajectory.append(float(responses[best]))
    return SmoothResult(current, trajectory[-1], base_response, chosen, np.array(trajectory, np.float32))


def random_smooth_image(
    model,
    image,
    num_patches: int = DEFAULT_NUM_SMOOTHED_PATCHES,
    patch_size: int = DEFAULT_SMOOTH_PATCH,
    sigma: float = DEFAULT_SMOOTH_SIGMA,
    seed: int = 0,
    output_index: int = 0,
) -> SmoothResult:
    """Control for :func:`smooth_minus_image`: smooths random patches."""
    tiles = patch_grid(patch_size)
    _check_count(num_patches, len(tiles))
    original = _as_raw_batch(image, "image")
    blurred = smoothed(original, sigma)[0]
    chosen = [int(index) for index in np.random.default_rng(seed).permutation(len(tiles))[:num_patches]]
    steps = np.repeat(original, num_patches, axis=0)
    current = original[0].copy()
    for position, index in enumerate(chosen):
        rows, columns = tiles[index]
        current[rows, columns] = blurred[rows, columns]
        steps[position] = current
    responses = predict_raw(model, np.concatenate([original, steps]), output_index)
    return SmoothResult(current, float(responses[-1]), float(responses[0]), chosen, responses[1:])

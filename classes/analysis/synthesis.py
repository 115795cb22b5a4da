"""Preferred-stimulus synthesis by gradient ascent (SPEC section 7; Fig. 2a).

The recipe: start from uniform noise in 128..178 per raw pixel; at each step
take the gradient of the model's output with respect to the (recentred)
image, divide it by its root-mean-square (+1e-5), blur it with a Gaussian of
sigma 1 pixel over space (per channel), move 10 pixel units up the gradient
(down to minimize) and clip to the valid pixel range (raw 0..255). Every 50
steps the image itself is blurred with sigma 1. The best image seen is kept.

The whole inner loop runs as one compiled ``tf.function`` (a graph
``while`` loop over a chunk of steps), batched over several images, so no
Python-level work happens per step. Images go in and out as raw pixels
(float32, 0..255); the model sees them recentred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from classes.data.preprocessing import RGB_MEANS
from classes.runtime.quiet_tensorflow import keras, tf

# Default step count, chosen from measurements on released compact models
# (see script6_synthesize.py's docstring): the best response reaches about
# 98% of its 1000-step value by 300 steps for the models measured.
DEFAULT_NUM_STEPS = 300
STEP_SIZE = 10.0
BLUR_EVERY = 50
BLUR_SIGMA = 1.0
GRADIENT_SIGMA = 1.0
NOISE_RANGE = (128.0, 178.0)
_RMS_EPSILON = 1e-5
_DIRECTIONS = ("maximize", "minimize")

_LOW = tf.constant(-RGB_MEANS, dtype=tf.float32)
_HIGH = tf.constant(255.0 - RGB_MEANS, dtype=tf.float32)
_MEANS = tf.constant(RGB_MEANS, dtype=tf.float32)


def gaussian_kernel_1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """A normalised 1-D Gaussian, radius ``int(truncate * sigma + 0.5)``.

    The same kernel as ``scipy.ndimage.gaussian_filter`` uses.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(images, sigma: float):
    """Blurs each channel of a batch over space with a Gaussian.

    Edges are mirrored (``scipy.ndimage`` mode ``"reflect"``), so the result
    equals ``gaussian_filter(images, sigma=(0, sigma, sigma, 0))``.

    Args:
        images: float32 tensor or array ``(N, H, W, C)``.
        sigma: Gaussian s.d. in pixels.

    Returns:
        float32 tensor ``(N, H, W, C)``.
    """
    images = tf.convert_to_tensor(images, dtype=tf.float32)
    kernel = gaussian_kernel_1d(sigma)
    radius = (len(kernel) - 1) // 2
    channels = images.shape[-1]
    if radius > min(images.shape[1], images.shape[2]) - 1:
        raise ValueError(f"sigma {sigma} is too large for images of size {images.shape[1:3]}.")
    # Separable: one pass along rows, one along columns, each a depthwise conv.
    rows = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, channels, 1)))
    columns = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, channels, 1)))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID")


def response_function(model, output_index: int = 0):
    """Wraps a model as ``recentred images (N,112,112,3) -> responses (N,)``.

    Args:
        model: a compact model (one output) or a shared compact model (219
            outputs), or any Keras model taking recentred 112x112x3 images.
        output_index: which output unit to use.

    Raises:
        ValueError: the model is not a Keras model with such an output.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}.")
    outputs = model.outputs
    shape = tuple(outputs[0].shape) if len(outputs) == 1 else None
    if shape is None or len(shape) != 2:
        raise ValueError(
            f"model must have one output (num_images, num_outputs); it has {outputs}."
        )
    if isinstance(output_index, bool) or not 0 <= int(output_index) < shape[1]:
        raise ValueError(f"output_index must be in 0..{shape[1] - 1}; got {output_index!r}.")
    index = int(output_index)

    def respond(images):
        return model(images, training=False)[:, index]

    return respond


@dataclass
class SynthesisResult:
    """Synthesized images and their responses.

    Attributes:
        images: float32 raw pixels ``(num_images, 112, 112, 3)`` in 0..255,
            the best image seen for each start.
        responses: float32 ``(num_images,)``, the model's response to
            ``images``.
        initial_responses: float32 ``(num_images,)``, responses to the
            starting noise.
        trajectory: float32 ``(num_steps, num_images)``, the response of the
            current image at each step (before that step's update).
        direction: ``"maximize"`` or ``"minimize"``.
        seed: the noise seed.
    """

    images: np.ndarray
    responses: np.ndarray
    initial_responses: np.ndarray
    trajectory: np.ndarray
    direction: str
    seed: int
    settings: dict = field(default_factory=dict)


def initial_noise(num_images: int, seed: int, grayscale: bool = False) -> np.ndarray:
    """Uniform noise in 128..178 per raw pixel, float32 ``(N, 112, 112, 3)``.

    With ``grayscale`` the three channels of each pixel are equal.
    """
    if isinstance(num_images, bool) or int(num_images) < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}.")
    generator = np.random.default_rng(seed)
    channels = 1 if grayscale else 3
    noise = generator.uniform(*NOISE_RANGE, size=(int(num_images), 112, 112, channels))
    return np.repeat(noise, 3 // channels, axis=-1).astype(np.float32)


def _check_settings(direction, num_steps, step_size, blur_every):
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}.")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}.")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}.")
    if isinstance(blur_every, bool) or not isinstance(blur_every, (int, np.integer)) or blur_every < 1:
        raise ValueError(f"blur_every must be a positive integer, got {blur_every!r}.")


def make_step_runner(respond, sign: float, step_size: float, gradient_sigma: float, grayscale: bool):
    """Compiles the synthesis loop for one response function.

    Returns:
        A ``tf.function`` ``(images, best_images, best_values, num_steps) ->
        (images, best_images, best_values, trajectory)`` running
        ``num_steps`` gradient steps in a graph loop, on recentred images.
        ``best_values`` holds ``sign * response``, so larger is better in
        both directions.
    """
    sign = tf.constant(sign, tf.float32)

    @tf.function(reduce_retracing=True)
    def run_steps(images, best_images, best_values, num_steps):
        trajectory = tf.TensorArray(tf.float32, size=num_steps)
        for step in tf.range(num_steps):
            values = respond(images)
            # Each image's output depends on that image only (BN in inference
            # mode), so the gradient of the sum is every per-image gradient.
            # Graph-mode tf.gradients, because a GradientTape inside a graph
            # while loop returns None for the loop variable (TF 2.21).
            gradient = tf.gradients(tf.reduce_sum(values), images)[0]
            trajectory = trajectory.write(step, values)
            improved = sign * values > best_values
            best_images = tf.where(improved[:, None, None, None], images, best_images)
            best_values = tf.where(improved, sign * values, best_values)
            rms = tf.sqrt(tf.reduce_mean(tf.square(gradient), axis=[1, 2, 3], keepdims=True))
            gradient = gradient / (rms + _RMS_EPSILON)
            if grayscale:
                # Project onto the gray direction: equal change in every channel.
                gradient = tf.repeat(tf.reduce_mean(gradient, axis=-1, keepdims=True), 3, axis=-1)
            gradient = gaussian_blur(gradient, gradient_sigma)
            images = tf.clip_by_value(images + sign * step_size * gradient, _LOW, _HIGH)
        return images, best_images, best_values, trajectory.stack()

    return run_steps


def synthesize_images(
    model,
    num_images: int = 9,
    direction: str = "maximize",
    num_steps: int = DEFAULT_NUM_STEPS,
    seed: int = 0,
    grayscale: bool = False,
    output_index: int = 0,
    step_size: float = STEP_SIZE,
    blur_every: int = BLUR_EVERY,
    blur_sigma: float = BLUR_SIGMA,
    gradient_sigma: float = GRADIENT_SIGMA,
    initial_images=None,
    progress=None,
) -> SynthesisResult:
    """Synthesizes images that drive a model's output up (or down).

    Args:
        model: a Keras model on recentred images (compact or shared).
        num_images: images synthesized at once, one noise start each.
        direction: ``"maximize"`` or ``"minimize"``.
        num_steps: gradient steps.
        seed: seed of the starting noise; the same seed gives the same
            images.
        grayscale: keep the three channels of every pixel equal.
        output_index: output unit of a multi-output model.
        step_size: pixel units per step (10 in the paper).
        blur_every: blur the image every this many steps (50).
        blur_sigma: s.d. of that blur (1 pixel).
        gradient_sigma: s.d. of the gradient's blur (1 pixel).
        initial_images: optional raw start images ``(N, 112, 112, 3)`` in
            0..255 instead of noise (then ``num_images`` and ``seed`` only
            label the result).
        progress: optional tqdm bar, advanced by the number of steps run.

    Returns:
        A :class:`SynthesisResult`; ``images`` are raw float32 in 0..255.

    Raises:
        ValueError: bad settings or model.
    """
    _check_settings(direction, num_steps, step_size, blur_every)
    respond = response_function(model, output_index)
    sign = 1.0 if direction == "maximize" else -1.0
    images = tf.constant(starting_images(num_images, seed, grayscale, initial_images) - RGB_MEANS)
    initial_responses = np.asarray(respond(images))
    run_steps = make_step_runner(respond, sign, float(step_size), float(gradient_sigma), grayscale)
    best_images, trajectory = _climb(respond, run_steps, images, sign * initial_responses, sign, num_steps,
                                     blur_every, blur_sigma, progress)
    raw_best = np.clip(best_images.numpy() + RGB_MEANS, 0.0, 255.0).astype(np.float32)
    responses = np.asarray(respond(tf.constant(raw_best - RGB_MEANS)))
    return SynthesisResult(
        images=raw_best, responses=responses, initial_responses=initial_responses.astype(np.float32),
        trajectory=trajectory, direction=direction, seed=int(seed),
        settings={"num_steps": int(num_steps), "step_size": float(step_size), "blur_every": int(blur_every),
                  "blur_sigma": float(blur_sigma), "gradient_sigma": float(gradient_sigma),
                  "grayscale": bool(grayscale), "noise_range": list(NOISE_RANGE), "output_index": int(output_index)},
    )


def starting_images(num_images: int, seed: int, grayscale: bool, initial_images=None) -> np.ndarray:
    """Raw float32 start images ``(N, 112, 112, 3)``: :func:`initial_noise` or ``initial_images``.

    Raises:
        ValueError: ``initial_images`` of the wrong shape or outside 0..255.
    """
    if initial_images is None:
        return initial_noise(num_images, seed, grayscale)
    raw = np.asarray(initial_images, dtype=np.float32)
    if raw.ndim != 4 or raw.shape[1:] != (112, 112, 3):
        raise ValueError(f"initial_images must be (N, 112, 112, 3); got {raw.shape}.")
    if raw.min() < 0 or raw.max() > 255:
        raise ValueError("initial_images must be raw pixels in 0..255.")
    return raw


def _climb(respond, run_steps, images, initial_values, sign, num_steps, blur_every, blur_sigma, progress):
    # Chunks of blur_every steps run in the graph; the image blur between
    # chunks and the progress bar run here. Returns the best recentred images
    # (tensor) and the trajectory, float32 (num_steps, num_images).
    best_images = images
    best_values = tf.constant(initial_values)
    trajectories = []
    done = 0
    while done < num_steps:
        chunk = min(blur_every, num_steps - done)
        images, best_images, best_values, trajectory = run_steps(
            images, best_images, best_values, tf.constant(chunk, tf.int32)
        )
        trajectories.append(trajectory.numpy())
        done += chunk
        if done % blur_every == 0:
            images = tf.clip_by_value(gaussian_blur(images, blur_sigma), _LOW, _HIGH)
        if progress is not None:
            progress.update(chunk)
    # The image after the last update has not been scored yet.
    final_values = respond(images)
    improved = sign * final_values > best_values
    best_images = tf.where(improved[:, None, None, None], images, best_images)
    return best_images, np.concatenate(trajectories).astype(np.float32)

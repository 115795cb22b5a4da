"""Preferred-stimulus synthesis by gradient ascent (SPEC section 7; Fig. 2a).

The recipe: start from uniform noise in 128..178 per raw pixel; at each step
take the gradient of the model's output with respect to the (recentred)
image, divide it by its root-mean-square (+1e-5), blur it with a Gaussian of
sigma 1 pixel over space (per channel), move 10 pixel units up the gradient
(down to minimize) and clip to the valid pixel range (raw 0..255). Every 50
steps the image itself is blurred with sigma 1. The best image seen is kept.

The whole inner loop runs as one compiled ``tf.function`` (a graph
``while`` loop over a chunk of steps; :mod:`classes.analysis.synthesis_loop`),
batched over several images, so no Python-level work happens per step; for
compact models it is traced once for every model and several models can be
stepped together (:func:`synthesize_compact_models`), with the same images
bit for bit. Images go in and out as raw pixels (float32, 0..255); the
model sees them recentred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from classes.analysis.compact_graph import compact_weights, is_compact_model
from classes.analysis.synthesis_loop import (
    GradientAscent,
    compact_step_runner,
    make_step_runner,
    respond_compact,
)
from classes.runtime.quiet_tensorflow import keras

# Default step count, chosen from measurements on released compact models
# (see script6_synthesize.py's docstring): the best response reaches about
# 98% of its 1000-step value by 300 steps for the models measured.
DEFAULT_NUM_STEPS = 300
STEP_SIZE = 10.0
BLUR_EVERY = 50
BLUR_SIGMA = 1.0
GRADIENT_SIGMA = 1.0
NOISE_RANGE = (128.0, 178.0)
_DIRECTIONS = ("maximize", "minimize")


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

    A compact model runs through the loop traced once for every compact
    model (:mod:`classes.analysis.compact_graph`: the same images bit for bit).

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
    sign = 1.0 if direction == "maximize" else -1.0
    start = starting_images(num_images, seed, grayscale, initial_images)
    if is_compact_model(model) and output_index == 0:
        respond, weights = respond_compact, compact_weights(model)
        run_steps = compact_step_runner(1, sign, float(step_size), float(gradient_sigma), grayscale)
    else:
        respond_to, weights = response_function(model, output_index), ()
        respond = lambda images, weights: respond_to(images)  # noqa: E731 (a Keras model ignores weights)
        run_steps = make_step_runner(respond, 1, sign, float(step_size), float(gradient_sigma), grayscale)
    settings = _settings(num_steps, step_size, blur_every, blur_sigma, gradient_sigma, grayscale, output_index)
    climb = GradientAscent(respond, run_steps, sign, num_steps, blur_every, blur_sigma, progress)
    return _results(climb.run([weights], [start]), direction, seed, settings)[0]


def synthesize_compact_models(
    weight_lists,
    direction: str = "maximize",
    num_steps: int = DEFAULT_NUM_STEPS,
    seed: int = 0,
    grayscale: bool = False,
    group_size: int = 2,
    progress=None,
) -> list[SynthesisResult]:
    """One synthesized image per compact model, ``group_size`` models stepped together.

    Every model starts from the same noise (``seed``), as
    :func:`synthesize_images` with ``num_images=1`` would, and gets the
    same images bit for bit: each model's steps are the same operations
    (:mod:`classes.analysis.compact_graph`), only run side by side, and the
    loop is traced once for all models (per group size).

    Args:
        weight_lists: per model its 36 ``get_weights()`` arrays (e.g.
            :func:`classes.compact.architecture.load_weights_npy`).
        direction, num_steps, seed, grayscale: as for :func:`synthesize_images`.
        group_size: models per graph call (2 suits 2 cores).
        progress: optional tqdm bar, advanced by models finished.

    Returns:
        One :class:`SynthesisResult` (one image) per model, in order.

    Raises:
        ValueError: bad settings, group size or weights.
    """
    _check_settings(direction, num_steps, STEP_SIZE, BLUR_EVERY)
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}.")
    sign = 1.0 if direction == "maximize" else -1.0
    start = initial_noise(1, seed, grayscale)
    settings = _settings(num_steps, STEP_SIZE, BLUR_EVERY, BLUR_SIGMA, GRADIENT_SIGMA, grayscale, 0)
    results = []
    for first in range(0, len(weight_lists), group_size):
        group = [compact_weights(weights) for weights in weight_lists[first : first + group_size]]
        run_steps = compact_step_runner(len(group), sign, STEP_SIZE, GRADIENT_SIGMA, grayscale)
        climb = GradientAscent(respond_compact, run_steps, sign, num_steps, BLUR_EVERY, BLUR_SIGMA, None)
        results += _results(climb.run(group, [start] * len(group)), direction, seed, settings)
        if progress is not None:
            progress.update(len(group))
    return results


def _results(climbed, direction: str, seed: int, settings: dict) -> list[SynthesisResult]:
    return [SynthesisResult(images=images, responses=responses, initial_responses=initial, trajectory=trajectory,
                            direction=direction, seed=int(seed), settings=dict(settings))
            for initial, images, responses, trajectory in climbed]


def _settings(num_steps, step_size, blur_every, blur_sigma, gradient_sigma, grayscale, output_index) -> dict:
    return {"num_steps": int(num_steps), "step_size": float(step_size), "blur_every": int(blur_every),
            "blur_sigma": float(blur_sigma), "gradient_sigma": float(gradient_sigma),
            "grayscale": bool(grayscale), "noise_range": list(NOISE_RANGE), "output_index": int(output_index)}


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

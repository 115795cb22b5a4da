"""The distillation student without Keras: its size, the smoothing applied while it trains (SPEC section 2).

A student is a compact model with 100 filters per layer
(:data:`STUDENT_FILTERS`; :func:`parse_student_filters` reads other counts
from a command line). After every chunk of training images, the 5x5
depthwise kernels of layers 1-4 and the 28x28 readout map of every layer-4
filter are smoothed with a Gaussian of sigma 0.5 pixels; layer 0's kernels,
the pointwise weights, biases and BatchNormalization are left alone.
:func:`smooth_weights` works on a ``get_weights()`` list, so it serves every
training engine: the trainers of :mod:`classes.training.trainers` through
``get_weights``/``set_weights``, and :class:`classes.training.torch_trainer.TorchTrainer`
on machines without TensorFlow (``code_distill_and_prune/gpu_distill.py``).
The Keras-initialised student is :func:`classes.training.distillation.initial_student_weights`;
:func:`seeded_student_weights` draws from the same distributions with NumPy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from classes.compact.architecture import (
    NUM_LAYERS,
    OUTPUT_SIZE,
    WEIGHTS_PER_MODEL,
    check_nums_filters,
    first_weight_index,
    nums_filters_from_weights,
)

STUDENT_FILTERS = 100
SMOOTHING_SIGMA = 0.5
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
PAPER_CHUNKS = 24  # 12M images in 500,000-image chunks
# The SPEC gives no border rule for smoothing a 5x5 kernel; "reflect" keeps
# a kernel's sum, so smoothing does not shrink the weights chunk after chunk.
SMOOTHING_MODE = "reflect"
READOUT_INDEX = WEIGHTS_PER_MODEL - 2


def smooth_weights(weights, sigma: float = SMOOTHING_SIGMA) -> list[np.ndarray]:
    """Smooths the spatial kernels of layers 1-4 and the readout maps.

    Each 5x5 depthwise kernel ``(5, 5, K_{i-1}, 1)`` of layers 1-4 and each
    layer-4 filter's 28x28 readout map (the readout kernel
    ``(28 * 28 * K4, 1)`` in channels-last order) is filtered with
    ``scipy.ndimage.gaussian_filter`` (sigma pixels, border mode
    ``SMOOTHING_MODE``). Every other array is returned unchanged.

    Args:
        weights: a compact model's 36 ``get_weights()`` arrays.
        sigma: Gaussian sigma in pixels; 0 returns copies unchanged.

    Returns:
        A new list of 36 float32 arrays.

    Raises:
        ValueError: weights that are not a compact model's, or a negative sigma.
    """
    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(f"A compact model has {WEIGHTS_PER_MODEL} weight arrays; got {len(weights)}.")
    if sigma < 0:
        raise ValueError(f"The smoothing sigma must be >= 0; got {sigma!r}.")
    smoothed = [np.array(array, dtype=np.float32) for array in weights]
    if sigma == 0:
        return smoothed
    for layer in range(1, NUM_LAYERS):
        index = first_weight_index(layer)  # the depthwise kernel
        smoothed[index] = gaussian_filter(smoothed[index], sigma=(sigma, sigma, 0, 0), mode=SMOOTHING_MODE)
    readout = smoothed[READOUT_INDEX]
    maps = readout.reshape(OUTPUT_SIZE, OUTPUT_SIZE, -1)
    smoothed[READOUT_INDEX] = gaussian_filter(maps, sigma=(sigma, sigma, 0), mode=SMOOTHING_MODE).reshape(
        readout.shape
    )
    return smoothed


def positive_integer(value, name: str) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)

def chunk_plan(num_images: int, block_size: int, chunk_images: int | None = None) -> tuple[int, int]:
    """``(blocks in the budget, blocks per chunk)``: the schedule of every distillation (CPU and GPU).

    Args:
        num_images: the image budget; whole blocks of it are trained.
        block_size: images per block.
        chunk_images: images per chunk; None for the paper's 24 chunks of the budget.

    Raises:
        ValueError: a block size that is not a positive integer, or a budget below one block.
    """
    block_size = positive_integer(block_size, "The block size")
    if num_images < block_size:
        raise ValueError(f"The image budget ({num_images}) is below one block of {block_size} images; "
                         f"give at least {block_size}.")
    num_blocks = num_images // block_size
    if chunk_images is None:
        return num_blocks, max(1, round(num_blocks / PAPER_CHUNKS))
    return num_blocks, min(num_blocks, max(1, round(chunk_images / block_size)))

def learning_rate_factor(schedule: str, chunk: int, num_chunks: int) -> float:
    """What chunk ``chunk`` (0-based) of ``num_chunks`` multiplies the learning rate by.

    ``"constant"`` is the paper's (1 throughout, over 12M images).
    ``"cosine"``, ``(1 + cos(pi (chunk + 1/2) / num_chunks)) / 2``, is for
    budgets far below the paper's, where a constant rate high enough to learn
    quickly leaves the last chunks' weights swinging. It is constant within
    a chunk, so a run resumed at a chunk trains exactly as an uninterrupted one.

    Raises:
        ValueError: an unknown schedule.
    """
    if schedule not in LEARNING_RATE_SCHEDULES:
        raise ValueError(f"The learning-rate schedule must be one of {', '.join(LEARNING_RATE_SCHEDULES)}; "
                         f"got {schedule!r}.")
    if schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (chunk + 0.5) / num_chunks))


def parse_student_filters(text: str, flag: str = "--student-filters") -> list[int]:
    """``"100"`` or ``"K0,K1,K2,K3,K4"`` -> five filter counts.

    Raises:
        ValueError: not one or five positive integers.
    """
    counts = [part.strip() for part in str(text).split(",")]
    if len(counts) not in (1, 5) or not all(count.isdigit() and int(count) > 0 for count in counts):
        raise ValueError(f"{flag} takes one positive count or five (K0,...,K4); got {text!r}.")
    return check_nums_filters([int(count) for count in counts] * (5 if len(counts) == 1 else 1))


def seeded_student_weights(nums_filters, seed: int) -> list[np.ndarray]:
    """A student initialised as Keras initialises one, drawn with NumPy.

    Kernels Glorot uniform (Keras's fans: ``receptive field x channels``
    in and out), biases and BN betas and moving means 0, gammas and moving
    variances 1: the distribution of
    :func:`classes.training.distillation.initial_student_weights`, other
    values (that one needs Keras).

    Args:
        nums_filters: ``[K0..K4]``.
        seed: seeds the draws.

    Returns:
        36 float32 arrays in ``get_weights()`` order.
    """
    counts = check_nums_filters(nums_filters)
    generator = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return generator.uniform(-limit, limit, shape).astype(np.float32)

    def batch_norm(count):
        return [np.ones(count, np.float32), np.zeros(count, np.float32), np.zeros(count, np.float32),
                np.ones(count, np.float32)]

    weights = [glorot((5, 5, 3, counts[0]), 75, 25 * counts[0]), np.zeros(counts[0], np.float32),
               *batch_norm(counts[0])]
    for previous, count in zip(counts[:-1], counts[1:], strict=True):
        weights += [glorot((5, 5, previous, 1), 25 * previous, 25), glorot((1, 1, previous, count), previous, count),
                    np.zeros(count, np.float32), *batch_norm(count)]
    readout = 28 * 28 * counts[-1]
    weights += [glorot((readout, 1), readout, 1), np.zeros(1, np.float32)]
    nums_filters_from_weights(weights)  # checks the count of arrays
    return weights

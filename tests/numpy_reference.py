"""A compact model's forward pass in plain NumPy: the tests' independent reference.

Written from the architecture (SPEC section 2) alone, without TensorFlow,
Keras or any of the project's prediction code, in float64:

- layer 0: 5x5 convolution with bias, "same" padding, stride 1;
- layers 1-4: 5x5 depthwise convolution (no bias), stride 2 for layers 1
  and 2 and 1 for layers 3 and 4, then a 1x1 pointwise convolution with bias;
- after every convolution, BatchNormalization in inference mode
  (``gamma * (x - moving_mean) / sqrt(moving_variance + 1e-3) + beta``) and
  ReLU;
- readout: the 28x28xK4 activity flattened channels last (row-major), times
  a ``(28*28*K4, 1)`` weight vector, plus a bias.

Keras "same" padding pads ``max((out - 1) * stride + 5 - size, 0)`` pixels
in total with the odd one after: 2 before and 2 after at stride 1, and 1
before and 2 after at stride 2 on the model's even sizes (112, 56). The
convolutions are im2col products (a strided window view, one matrix product
per layer), so a model of the largest released size runs on 8 images in
well under a second.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

KERNEL_SIZE = 5
STRIDES = (1, 2, 2, 1, 1)
BN_EPSILON = 1e-3
WEIGHTS_PER_MODEL = 36
IMAGES_PER_CHUNK = 8


def compact_forward_numpy(weights, images) -> np.ndarray:
    """A compact model's responses to recentred images, in float64.

    Args:
        weights: the model's ``get_weights()`` list, 36 arrays in Keras's
            order: layer 0 (kernel ``(5, 5, 3, K0)``, bias, gamma, beta,
            moving mean, moving variance); layers 1-4 (depthwise kernel
            ``(5, 5, K_{i-1}, 1)``, pointwise kernel ``(1, 1, K_{i-1}, K_i)``,
            bias, gamma, beta, moving mean, moving variance); readout kernel
            ``(28*28*K4, 1)`` and bias ``(1,)``.
        images: recentred ``(num_images, 112, 112, 3)``.

    Returns:
        float64 ``(num_images,)``.

    Raises:
        ValueError: not 36 weight arrays, or images not ``(N, 112, 112, 3)``.
    """
    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(f"A compact model has {WEIGHTS_PER_MODEL} weight arrays; got {len(weights)}.")
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1:] != (112, 112, 3):
        raise ValueError(f"images must be (num_images, 112, 112, 3); got {images.shape}.")
    weights = [np.asarray(array, dtype=np.float64) for array in weights]
    # Chunks bound the im2col matrix of layer 0 (8 images x 112 x 112 x 75 values).
    chunks = [_forward(weights, images[start : start + IMAGES_PER_CHUNK])
              for start in range(0, len(images), IMAGES_PER_CHUNK)]
    return np.concatenate(chunks) if chunks else np.zeros(0)


def _forward(weights: list[np.ndarray], images: np.ndarray) -> np.ndarray:
    kernel, bias = weights[0], weights[1]
    activity = batch_norm_relu(full_convolution(images, kernel) + bias, weights[2:6])
    for layer in range(1, 5):
        depthwise, pointwise, bias, *batch_norm = weights[6 + 7 * (layer - 1) : 6 + 7 * layer]
        activity = depthwise_convolution(activity, depthwise[..., 0], STRIDES[layer])
        activity = activity @ pointwise[0, 0] + bias
        activity = batch_norm_relu(activity, batch_norm)
    readout, readout_bias = weights[34], weights[35]
    return activity.reshape(len(activity), -1) @ readout[:, 0] + readout_bias[0]


def batch_norm_relu(activity: np.ndarray, batch_norm) -> np.ndarray:
    """BatchNormalization in inference mode (``[gamma, beta, moving_mean, moving_variance]``), then ReLU."""
    gamma, beta, moving_mean, moving_variance = batch_norm
    normalized = gamma * (activity - moving_mean) / np.sqrt(moving_variance + BN_EPSILON) + beta
    return np.maximum(normalized, 0.0)


def _windows(activity: np.ndarray, stride: int) -> np.ndarray:
    """``(N, H_out, W_out, C, 5, 5)`` windows of the activity, zero-padded as Keras "same"."""
    size = activity.shape[1]
    output = -(-size // stride)
    total = max((output - 1) * stride + KERNEL_SIZE - size, 0)
    before, after = total // 2, total - total // 2
    padded = np.pad(activity, ((0, 0), (before, after), (before, after), (0, 0)))
    windows = sliding_window_view(padded, (KERNEL_SIZE, KERNEL_SIZE), axis=(1, 2))
    return windows[:, ::stride, ::stride][:, :output, :output]


def full_convolution(activity: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full 5x5 convolution, stride 1: im2col rows ``(i, j, c)`` times ``kernel`` ``(5, 5, C, K)``."""
    windows = _windows(activity, 1)
    num_images, height, width, channels = windows.shape[:4]
    columns = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, KERNEL_SIZE * KERNEL_SIZE * channels)
    result = columns @ kernel.reshape(-1, kernel.shape[-1])
    return result.reshape(num_images, height, width, kernel.shape[-1])


def depthwise_convolution(activity: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise 5x5 convolution: each channel with its own ``kernel[:, :, c]`` (``(5, 5, C)``)."""
    # Plain einsum walks the strided view in place; optimize=True copied it
    # into a contraction order 30x slower.
    return np.einsum("nhwcij,ijc->nhwc", _windows(activity, stride), kernel)

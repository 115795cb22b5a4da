"""The kernel's layer 0 by Winograd F(4, 5): the transforms against the plain sums, and the
compiled layer 0 against a float64 NumPy convolution of the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from classes.compact.model import build_compact_model
from classes.data.preprocessing import RECENTERED_MAX, RECENTERED_MIN
from classes.prediction.activity import layer_activity
from classes.prediction.winograd import (
    INPUT_TRANSFORM,
    filter_transform,
    output_transform,
    transformed_kernel0,
)


def correlation(inputs: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``y[i] = sum_k taps[k] inputs[i + k]`` for the 4 outputs, in float64."""
    return np.stack([(inputs[..., i : i + 5] * taps).sum(-1) for i in range(4)], -1)


def test_transforms_give_the_row_correlation_exactly_in_float64():
    generator = np.random.default_rng(0)
    inputs, taps = generator.normal(size=(500, 8)), generator.normal(size=(500, 5))
    winograd = ((taps @ filter_transform().T) * (inputs @ INPUT_TRANSFORM.T)) @ output_transform().T
    np.testing.assert_allclose(winograd, correlation(inputs, taps), rtol=0, atol=1e-10)


def test_float32_error_is_about_that_of_the_direct_sum():
    """Recentred pixels and layer-0-sized weights: errors within 1e-5 of the outputs' spread."""
    generator = np.random.default_rng(1)
    inputs = generator.uniform(RECENTERED_MIN, RECENTERED_MAX, (20000, 8)).astype(np.float32)
    taps = generator.normal(0.0, 0.05, (20000, 5)).astype(np.float32)
    exact = correlation(inputs.astype(np.float64), taps.astype(np.float64))
    single = lambda matrix: matrix.astype(np.float32)  # noqa: E731
    winograd = ((taps @ single(filter_transform()).T) * (inputs @ single(INPUT_TRANSFORM).T)) @ single(output_transform()).T
    assert np.max(np.abs(winograd - exact)) < 1e-5 * exact.std()


def test_transformed_kernel_holds_each_kernel_row_transformed_and_zero_padding():
    generator = np.random.default_rng(2)
    kernel = generator.normal(size=(5, 5, 3, 7))
    transformed = transformed_kernel0(kernel, 16)
    assert transformed.shape == (8, 5, 3, 16) and transformed.dtype == np.float32
    np.testing.assert_allclose(transformed[:, 3, 1, 4], filter_transform() @ kernel[3, :, 1, 4], rtol=1e-6)
    assert not transformed[..., 7:].any()


def numpy_layer0(weights, images: np.ndarray) -> np.ndarray:
    """Conv 5x5 "same" + batch normalization (epsilon 1e-3) + ReLU in float64: ``(N, 112, 112, K0)``."""
    kernel, bias, gamma, beta, mean, variance = (np.asarray(array, np.float64) for array in weights[:6])
    padded = np.pad(images.astype(np.float64), ((0, 0), (2, 2), (2, 2), (0, 0)))
    total = np.zeros(images.shape[:3] + (kernel.shape[-1],))
    for dy in range(5):
        for dx in range(5):
            total += padded[:, dy : dy + 112, dx : dx + 112, :] @ kernel[dy, dx]
    normalized = (total + bias - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    return np.maximum(normalized, 0.0)


@pytest.mark.parametrize("filters", [1, 16, 21, 50])
def test_compiled_layer0_equals_a_float64_convolution(kernel_isa, filters):
    """Filter counts below, at and across the vector widths; the borders included."""
    generator = np.random.default_rng(filters)
    model = build_compact_model([filters, 3, 2, 2, 2])
    weights = model.get_weights()
    weights[0] = generator.normal(0.0, 0.05, weights[0].shape)
    weights[1:6] = [generator.normal(0.0, 0.5, (filters,)), generator.uniform(0.5, 1.5, (filters,)),
                    generator.normal(0.0, 0.2, (filters,)), generator.normal(0.0, 0.2, (filters,)),
                    generator.uniform(0.5, 1.5, (filters,))]
    model.set_weights([np.asarray(array, np.float32) for array in weights])
    images = generator.uniform(RECENTERED_MIN, RECENTERED_MAX, (2, 112, 112, 3)).astype(np.float32)
    reference = numpy_layer0(model.get_weights(), images)
    activity = layer_activity(model, images, 0, engine="kernel").reshape(reference.shape)
    assert np.max(np.abs(activity - reference)) < 2e-5 * reference.std()

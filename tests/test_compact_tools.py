"""The tools of ``classes.compact.tools`` on the first released model: responses, layer activity, readout, ablation.

Each against an independent reference: the model called directly, SciPy's
correlation for the depthwise kernels, weights zeroed by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from classes.compact.model import build_compact_model
from classes.compact.tools import (
    ablate_filters,
    depthwise_activity,
    get_kernels,
    layer_activity,
    nums_filters_of,
    predict_responses,
    readout_maps,
)
from classes.runtime.quiet_tensorflow import keras
from tests.test_compact_model import keras_responses

# Keras warns that a loaded model's input structure is a list; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")


def test_predict_responses_matches_direct_call(first_model, images_190923):
    images = images_190923
    expected = keras_responses(first_model, images)
    np.testing.assert_allclose(predict_responses(first_model, images), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        predict_responses(first_model, images, batch_size=3), expected, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="recenter_images"):
        predict_responses(first_model, np.zeros((2, 112, 112, 3), np.uint8))


@pytest.mark.parametrize(
    "layer, size, filters", [(0, 112, 48), (1, 56, 60), (2, 28, 3), (3, 28, 3), (4, 28, 3)]
)
def test_layer_activity_shapes(first_model, few_images, layer, size, filters):
    for stage in ("conv", "bn", "act"):
        activity = layer_activity(first_model, few_images, layer, stage)
        assert activity.shape == (3, size, size, filters)
        assert activity.dtype == np.float32


def test_layer_activity_stages_follow_batch_norm_and_relu(first_model, few_images):
    conv = layer_activity(first_model, few_images, 2, "conv")
    normalized = layer_activity(first_model, few_images, 2, "bn")
    active = layer_activity(first_model, few_images, 2, "act")
    gamma, beta, mean, variance = first_model.get_layer("layer2_bn").get_weights()
    reference = gamma * (conv - mean) / np.sqrt(variance + 1e-3) + beta
    np.testing.assert_allclose(normalized, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(active, np.maximum(normalized, 0), rtol=1e-6, atol=1e-6)


def test_layer_activity_rejects_bad_layer(first_model, few_images):
    with pytest.raises(ValueError, match="layer must be"):
        layer_activity(first_model, few_images, 5)
    with pytest.raises(ValueError, match="stage"):
        layer_activity(first_model, few_images, 1, "pool")


def _same_padding(length: int, stride: int, kernel: int = 5) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial axis."""
    output = -(-length // stride)
    total = max((output - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("layer, channel", [(1, 7), (2, 13), (3, 1), (4, 2)])
def test_depthwise_activity_equals_scipy_reference(first_model, few_images, layer, channel):
    images = few_images[:2]
    depthwise = depthwise_activity(first_model, images, layer)
    previous = layer_activity(first_model, images, layer - 1, "act")
    kernel = get_kernels(first_model, layer)["depthwise"][:, :, channel, 0]
    stride = 2 if layer in (1, 2) else 1
    assert depthwise.shape == (2, previous.shape[1] // stride, previous.shape[2] // stride,
                               previous.shape[3])  # fmt: skip
    before, after = _same_padding(previous.shape[1], stride)
    for image in range(2):
        padded = np.pad(previous[image, :, :, channel].astype(np.float64), [(before, after)] * 2)
        # A Keras convolution is a cross-correlation, sampled every `stride` pixels.
        reference = correlate2d(padded, kernel.astype(np.float64), mode="valid")[::stride, ::stride]
        scale = max(np.abs(reference).max(), 1e-6)
        np.testing.assert_allclose(depthwise[image, :, :, channel], reference, atol=1e-5 * scale)


def test_depthwise_then_pointwise_gives_layer_output(first_model, few_images):
    depthwise = depthwise_activity(first_model, few_images, 3)
    kernels = get_kernels(first_model, 3)
    combined = depthwise @ kernels["pointwise"][0, 0] + kernels["bias"]
    conv = layer_activity(first_model, few_images, 3, "conv")
    np.testing.assert_allclose(combined, conv, rtol=1e-4, atol=1e-4 * np.abs(conv).max())


def test_depthwise_activity_rejects_layer_zero(first_model, few_images):
    with pytest.raises(ValueError, match="layers 1..4"):
        depthwise_activity(first_model, few_images, 0)


def test_readout_maps_reshape_beta_kernel(first_model, few_images):
    maps = readout_maps(first_model)
    kernel, bias = first_model.get_layer("Beta").get_weights()
    num_filters = 3
    assert maps.shape == (num_filters, 28, 28)
    for filter_index in range(num_filters):
        for row in range(0, 28, 3):
            for column in range(28):
                flat = (row * 28 + column) * num_filters + filter_index
                assert maps[filter_index, row, column] == kernel[flat, 0]
    # The output is each layer-4 map weighted by its readout map, summed.
    activity = layer_activity(first_model, few_images, 4, "act")
    summed = np.einsum("nyxk,kyx->n", activity.astype(np.float64), maps) + bias[0]
    np.testing.assert_allclose(summed, keras_responses(first_model, few_images), rtol=1e-4, atol=1e-4)


def _manually_ablated(model, layer: int, filter_index: int) -> keras.Model:
    weights = [array.copy() for array in model.get_weights()]
    # Layer 0's conv kernel is weights[0]; layer i's pointwise is 6 + 7 (i-1) + 1.
    position = 0 if layer == 0 else 6 + 7 * (layer - 1) + 1
    weights[position][..., filter_index] = 0.0
    rebuilt = build_compact_model(nums_filters_of(model))
    rebuilt.set_weights(weights)
    return rebuilt


@pytest.mark.parametrize("layer, filter_index", [(0, 5), (1, 30), (2, 1), (4, 0)])
def test_ablate_filters_equals_zeroing_weights(first_model, few_images, layer, filter_index):
    before = keras_responses(first_model, few_images)
    ablated = ablate_filters(first_model, layer, filter_index)
    result = keras_responses(ablated, few_images)
    np.testing.assert_allclose(
        result, keras_responses(_manually_ablated(first_model, layer, filter_index), few_images),
        rtol=1e-6, atol=1e-6,
    )  # fmt: skip
    # The given model is untouched, and the ablation changed something.
    np.testing.assert_array_equal(keras_responses(first_model, few_images), before)
    assert not np.allclose(result, before)


def test_ablate_several_filters_and_range_check(first_model, few_images):
    ablated = ablate_filters(first_model, 3, [0, 2])
    pointwise = get_kernels(ablated, 3)["pointwise"]
    assert np.all(pointwise[..., [0, 2]] == 0) and np.any(pointwise[..., 1] != 0)
    with pytest.raises(ValueError, match=r"filters 0\.\.2"):
        ablate_filters(first_model, 3, 3)

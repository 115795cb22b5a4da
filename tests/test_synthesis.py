"""Preferred-stimulus synthesis (classes/analysis/synthesis.py) on toy and released models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from classes.analysis.synthesis import initial_noise, response_function, synthesize_images
from classes.analysis.synthesis_loop import gaussian_blur, gaussian_kernel_1d
from classes.data.preprocessing import RGB_MEANS
from classes.runtime.quiet_tensorflow import keras


def linear_model(weights: np.ndarray) -> keras.Model:
    """Output = sum(weights * recentred image): a constant gradient."""
    inputs = keras.Input(shape=(112, 112, 3))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(flat))
    dense.set_weights([weights.reshape(-1, 1).astype(np.float32), np.zeros(1, np.float32)])
    return model


@pytest.fixture(scope="module")
def released_model(data_root):
    from classes.compact.model import load_compact_model

    return load_compact_model("190923", 0, data_root=data_root)


@pytest.fixture(scope="module")
def natural_responses(released_model, data_root):
    from classes.analysis.causal_images import predict_raw
    from classes.data.images import load_images

    images = load_images("190923", np.arange(601, 1201, 6), data_root=data_root)
    return predict_raw(released_model, images)


def test_gaussian_kernel_matches_scipy_radius_and_sums_to_one():
    kernel = gaussian_kernel_1d(1.0)
    assert kernel.shape == (9,)
    np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-6)
    impulse = np.zeros(21)
    impulse[10] = 1.0
    np.testing.assert_allclose(kernel, gaussian_filter(impulse, 1.0)[6:15], atol=1e-7)


def test_gaussian_blur_equals_scipy_reflect_mode():
    images = np.random.default_rng(1).normal(size=(2, 30, 40, 3)).astype(np.float32)
    for sigma in (1.0, 2.5):
        expected = gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect")
        np.testing.assert_allclose(gaussian_blur(images, sigma).numpy(), expected, atol=1e-5)


def test_initial_noise_range_seed_and_grayscale():
    noise = initial_noise(3, seed=5)
    assert noise.shape == (3, 112, 112, 3) and noise.dtype == np.float32
    assert 128.0 <= noise.min() and noise.max() <= 178.0
    np.testing.assert_array_equal(noise, initial_noise(3, seed=5))
    assert not np.array_equal(noise, initial_noise(3, seed=6))
    gray = initial_noise(2, seed=0, grayscale=True)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    assert not np.array_equal(noise[..., 0], noise[..., 1])


def test_one_step_equals_numpy_reference_on_a_linear_model():
    weights = np.random.default_rng(2).normal(size=(112, 112, 3)).astype(np.float32)
    model = linear_model(weights)
    start = np.full((1, 112, 112, 3), 150.0, np.float32)
    result = synthesize_images(model, num_steps=1, initial_images=start, blur_every=1000)
    gradient = weights / (np.sqrt(np.mean(weights**2)) + 1e-5)
    blurred = gaussian_filter(gradient, sigma=(1, 1, 0), mode="reflect")
    recentred = np.clip(start[0] - RGB_MEANS + 10.0 * blurred, -RGB_MEANS, 255.0 - RGB_MEANS)
    np.testing.assert_allclose(result.images[0], recentred + RGB_MEANS, atol=1e-3)
    np.testing.assert_allclose(result.responses[0], np.sum(weights * recentred), rtol=1e-4)
    assert result.trajectory.shape == (1, 1)
    np.testing.assert_allclose(result.trajectory[0, 0], np.sum(weights * (start[0] - RGB_MEANS)), rtol=1e-4)


def test_minimizing_steps_down_and_grayscale_projects_gradient():
    weights = np.random.default_rng(3).normal(size=(112, 112, 3)).astype(np.float32)
    model = linear_model(weights)
    start = np.full((1, 112, 112, 3), 150.0, np.float32)
    down = synthesize_images(model, num_steps=1, direction="minimize", initial_images=start, blur_every=1000)
    assert down.responses[0] < down.initial_responses[0]
    gray = synthesize_images(model, num_steps=3, initial_images=start, grayscale=True, blur_every=2)
    np.testing.assert_allclose(gray.images[..., 0], gray.images[..., 1], atol=1e-3)
    np.testing.assert_allclose(gray.images[..., 0], gray.images[..., 2], atol=1e-3)


def test_bad_settings_raise_clear_errors():
    model = linear_model(np.ones((112, 112, 3), np.float32))
    with pytest.raises(ValueError, match="direction"):
        synthesize_images(model, direction="up", num_steps=1)
    with pytest.raises(ValueError, match="num_steps"):
        synthesize_images(model, num_steps=0)
    with pytest.raises(ValueError, match="output_index"):
        synthesize_images(model, num_steps=1, output_index=1)
    with pytest.raises(ValueError, match="keras.Model"):
        response_function(lambda images: images)
    with pytest.raises(ValueError, match="0..255"):
        synthesize_images(model, num_steps=1, initial_images=np.full((1, 112, 112, 3), 300.0))


@pytest.mark.slow
def test_synthesis_drives_a_released_model_beyond_natural_images(released_model, natural_responses):
    steps = 30
    result = synthesize_images(released_model, num_images=2, num_steps=steps, seed=3)
    assert result.images.shape == (2, 112, 112, 3)
    assert result.images.min() >= 0.0 and result.images.max() <= 255.0
    # Well above: every synthesized image beats the best of 100 natural images
    # by more than the natural images' whole range.
    spread = natural_responses.max() - natural_responses.min()
    assert result.responses.min() > natural_responses.max() + spread
    # The best image is kept: nothing on the way scored higher.
    assert np.all(result.responses >= result.trajectory.max(axis=0) - 1e-3)
    assert result.trajectory.shape == (steps, 2)

    again = synthesize_images(released_model, num_images=2, num_steps=steps, seed=3)
    np.testing.assert_allclose(again.images, result.images, atol=1e-3)
    other = synthesize_images(released_model, num_images=2, num_steps=steps, seed=4)
    assert np.abs(other.images - result.images).mean() > 1.0

    minimum = synthesize_images(released_model, num_images=1, num_steps=steps, seed=3, direction="minimize")
    assert minimum.responses[0] < natural_responses.min()
    assert minimum.images.min() >= 0.0 and minimum.images.max() <= 255.0


def keras_wrapped(model):
    """The model inside another Keras model: not recognised as compact, so it takes the per-model Keras path."""
    inputs = keras.Input(shape=(112, 112, 3))
    return keras.Model(inputs, model(inputs))


def test_compact_graph_equals_the_keras_model_bit_for_bit(released_model):
    from classes.analysis.compact_graph import (
        compact_forward,
        compact_response_function,
        compact_weights,
    )
    from classes.runtime.quiet_tensorflow import tf

    images = tf.constant(initial_noise(2, 5) - RGB_MEANS)
    weights = compact_weights(released_model)
    np.testing.assert_array_equal(compact_forward(images, weights), released_model(images, training=False))

    def with_gradient(respond):
        values = respond(images)
        return values, tf.gradients(tf.reduce_sum(values), images)[0]

    keras_graph = tf.function(lambda: with_gradient(lambda batch: released_model(batch, training=False)[:, 0]))()
    compact_graph = tf.function(lambda: with_gradient(lambda batch: compact_forward(batch, weights)[:, 0]))()
    for keras_tensor, compact_tensor in zip(keras_graph, compact_graph, strict=True):
        np.testing.assert_array_equal(compact_tensor, keras_tensor)
    np.testing.assert_array_equal(compact_response_function()(images, weights), keras_graph[0])


def test_models_stepped_together_get_the_images_each_gets_alone(data_root):
    from classes.analysis.causal_images import predict_raw
    from classes.analysis.synthesis import synthesize_compact_models
    from classes.compact.architecture import load_weights_npy, model_id
    from classes.compact.model import model_from_weights

    weight_lists = [load_weights_npy(model_id(session, neuron), data_root)
                    for session, neuron in (("190923", 3), ("201025", 40), ("210225", 7))]
    # 55 steps: one image blur (every 50 steps) and a chunk after it.
    together = synthesize_compact_models(weight_lists, num_steps=55, seed=2, group_size=2)
    assert len(together) == 3
    for weights, result in zip(weight_lists, together, strict=True):
        wrapped = keras_wrapped(model_from_weights(weights))
        alone = synthesize_images(wrapped, num_images=1, num_steps=55, seed=2)
        for field in ("images", "responses", "initial_responses", "trajectory"):
            np.testing.assert_array_equal(getattr(result, field), getattr(alone, field))
        saved = np.round(result.images).astype(np.uint8)
        np.testing.assert_array_equal(predict_raw(weights, saved), predict_raw(wrapped, saved))
    assert not np.array_equal(together[0].images, together[1].images)

"""Preferred-stimulus synthesis (classes/analysis/synthesis.py) on toy and released models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from classes.analysis.synthesis import (
    gaussian_blur,
    gaussian_kernel_1d,
    initial_noise,
    response_function,
    synthesize_images,
)
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

"""Every evaluation path against an independent NumPy forward pass.

The reference (:mod:`tests.numpy_reference`) is plain float64 NumPy written
from the architecture, sharing no code with Keras, the BN folding or the
engines. Keras (:func:`classes.compact.tools.predict_responses` on the
``.keras`` models), the TensorFlow engine and the C kernel engine
(:func:`classes.prediction.predict`) must each match it on released models
of different sizes and on random models with random filter counts and
random BatchNormalization statistics.

Tolerance: per model, the largest deviation over the images must stay below
1e-4 of the reference responses' s.d. over the images. Measured: every path
is within 4e-6 of it (float32 rounding); a reference with the stride-2
padding swapped (2 before, 1 after) or BN epsilon 1e-5 is off by 0.2 to 3.
"""

from __future__ import annotations

import numpy as np
import pytest

from classes.compact.architecture import all_model_ids, load_nums_filters, load_weights_npy
from classes.compact.model import build_compact_model, load_compact_model
from classes.compact.model_size import compact_parameter_count
from classes.compact.tools import predict_responses
from classes.data.images import load_images
from classes.data.preprocessing import RECENTERED_MAX, RECENTERED_MIN, recenter_images
from classes.prediction import predict
from classes.prediction.kernel import kernel_unavailable_reason
from tests.numpy_reference import (
    STRIDES,
    batch_norm_relu,
    compact_forward_numpy,
    depthwise_convolution,
    full_convolution,
)

TOLERANCE = 1e-4  # of the reference responses' s.d. over the images
ENGINES = ("keras", "tensorflow", "kernel")
# Random filter counts: below, at and across multiples of 16 (the kernel's
# vector width) and the extremes 1 and 70, then random ones in 1..70.
FIXED_COUNTS = ([1, 1, 1, 1, 1], [15, 16, 17, 31, 33], [70, 64, 48, 47, 49], [33, 2, 70, 1, 16])
NUM_RANDOM_COUNTS = 3


def responses(engine: str, keras_models, model_inputs, images) -> np.ndarray:
    """``(num_models, num_images)`` responses of one evaluation path."""
    if engine == "keras":
        return np.stack([predict_responses(model, images) for model in keras_models])
    if engine == "kernel" and kernel_unavailable_reason() is not None:
        pytest.skip(f"the compiled kernel cannot run here: {kernel_unavailable_reason()}")
    return predict(model_inputs, images, engine=engine)


def assert_matches_reference(predictions, reference):
    assert predictions.shape == reference.shape
    spread = reference.std(axis=1)
    # A nearly flat response would make the tolerance meaningless.
    assert np.all(spread > 0.05 * np.abs(reference).max(axis=1)), spread
    relative = np.max(np.abs(predictions - reference), axis=1) / spread
    assert np.all(relative < TOLERANCE), relative


@pytest.fixture(scope="module")
def released(data_root):
    """The smallest and largest K0 and the fewest and most parameters among the 219 models.

    In the release: 211022/27 [15, 3, 3, 7, 4] (smallest K0 and fewest
    parameters), 201025/24 [58, 61, 3, 3, 4] and 201025/51 [48, 69, 74, 46, 3].
    """
    identifiers = all_model_ids()
    counts = np.array([load_nums_filters(identifier, data_root) for identifier in identifiers])
    parameters = compact_parameter_count(counts)
    chosen = dict.fromkeys(int(index) for index in (
        np.argmin(counts[:, 0]), np.argmax(counts[:, 0]), np.argmin(parameters), np.argmax(parameters)))
    chosen = [identifiers[index] for index in chosen]
    images = recenter_images(load_images("190923", np.arange(601, 609), data_root=data_root))
    weights = [load_weights_npy(identifier, data_root) for identifier in chosen]
    return {
        "ids": chosen,
        "keras": [load_compact_model(item.session_id, item.neuron, data_root=data_root) for item in chosen],
        "images": images,
        "reference": np.stack([compact_forward_numpy(item, images) for item in weights]),
    }


def random_weights(counts, generator, images) -> list[np.ndarray]:
    """A compact model's 36 weight arrays, random, with random BN statistics.

    The moving statistics are drawn around each channel's mean and variance
    on ``images`` (as training leaves them): BN then neither saturates nor
    flattens the activity, so the responses vary across images and the
    tolerance, relative to their s.d., stays meaningful.
    """
    def kernel(*shape):
        return generator.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)

    def batch_norm(activity):
        mean, spread = activity.mean(axis=(0, 1, 2)), activity.std(axis=(0, 1, 2)) + 1e-3
        size = activity.shape[-1]
        return [generator.uniform(0.3, 2.0, size), generator.uniform(0.0, 1.0, size),
                mean + generator.normal(0.0, 0.5, size) * spread,
                spread**2 * generator.uniform(0.5, 2.0, size)]

    weights = [kernel(5, 5, 3, counts[0]), generator.normal(0.0, 0.5, counts[0])]
    activity = full_convolution(images.astype(np.float64), weights[0]) + weights[1]
    weights += batch_norm(activity)
    activity = batch_norm_relu(activity, weights[2:])
    for layer, (previous, current) in enumerate(zip(counts[:-1], counts[1:], strict=True), start=1):
        arrays = [kernel(5, 5, previous, 1), kernel(1, 1, previous, current), generator.normal(0.0, 0.5, current)]
        activity = depthwise_convolution(activity, arrays[0][..., 0], STRIDES[layer]) @ arrays[1][0, 0] + arrays[2]
        arrays += batch_norm(activity)
        activity = batch_norm_relu(activity, arrays[3:])
        weights += arrays
    weights += [kernel(28 * 28 * counts[-1], 1), generator.normal(0.0, 0.5, 1)]
    return [array.astype(np.float32) for array in weights]


@pytest.fixture(scope="module")
def random_models():
    generator = np.random.default_rng(11)
    images = generator.uniform(RECENTERED_MIN, RECENTERED_MAX, (8, 112, 112, 3)).astype(np.float32)
    images[0] = 0.0  # a flat image: only biases and BN shifts reach the output
    all_counts = [*FIXED_COUNTS, *generator.integers(1, 71, (NUM_RANDOM_COUNTS, 5)).tolist()]
    weights = [random_weights(counts, generator, images) for counts in all_counts]
    keras_models = []
    for counts, arrays in zip(all_counts, weights, strict=True):
        model = build_compact_model(counts)
        model.set_weights(arrays)
        keras_models.append(model)
    return {
        "weights": weights,
        "keras": keras_models,
        "images": images,
        "reference": np.stack([compact_forward_numpy(arrays, images) for arrays in weights]),
    }


def test_reference_pads_as_keras_same():
    # Ones through an all-ones 5x5 kernel: each output counts the pixels its
    # window covers inside the image, so the corners show the padding.
    ones = np.ones((1, 112, 112, 1))
    full = full_convolution(ones, np.ones((5, 5, 1, 1)))[0, :, :, 0]
    assert full[0, 0] == 9 and full[2, 2] == 25 and full[-1, -1] == 9
    strided = depthwise_convolution(ones, np.ones((5, 5, 1)), 2)[0, :, :, 0]
    # Stride 2 on 112: 1 pixel before, 2 after, so the first window covers
    # rows -1..3 (4 inside) and the last rows 109..113 (3 inside).
    assert strided.shape == (56, 56)
    assert strided[0, 0] == 16 and strided[-1, -1] == 9 and strided[1, 1] == 25


@pytest.mark.parametrize("engine", ENGINES)
def test_released_models_match_the_numpy_reference(released, engine):
    predictions = responses(engine, released["keras"], released["ids"], released["images"])
    assert_matches_reference(predictions, released["reference"])


@pytest.mark.parametrize("engine", ENGINES)
def test_random_models_match_the_numpy_reference(random_models, engine):
    predictions = responses(engine, random_models["keras"], random_models["weights"], random_models["images"])
    assert_matches_reference(predictions, random_models["reference"])

"""Layer activity from the compiled kernel and the TensorFlow engine against the Keras layers.

The reference is the Keras model's own ``layer{i}_act`` outputs
(:func:`classes.compact.tools.layer_activity`), on released models and on
random models whose filter counts are not multiples of any vector width,
for each instruction set this CPU runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from classes.analysis.cka import position_subset
from classes.compact.model import build_compact_model, load_compact_model
from classes.compact.tools import layer_activity as keras_layer_activity
from classes.data.preprocessing import RECENTERED_MAX, RECENTERED_MIN
from classes.prediction import predict
from classes.prediction.activity import layer_activity, sampled_activity

SIDES = (112, 56, 28, 28, 28)


def random_model(counts, seed: int):
    """A compact model with Keras's random kernels and random BN statistics (so no layer is flat)."""
    generator = np.random.default_rng(seed)
    model = build_compact_model(counts)
    weights = model.get_weights()
    # gamma, beta, moving mean, moving variance of layer 0, then of layers 1-4.
    for gamma in (2, 9, 16, 23, 30):
        size = weights[gamma].shape
        weights[gamma : gamma + 4] = [generator.uniform(0.5, 1.5, size), generator.normal(0.0, 0.2, size),
                                      generator.normal(0.0, 0.2, size), generator.uniform(0.5, 1.5, size)]
    model.set_weights([np.asarray(array, np.float32) for array in weights])
    return model


@pytest.fixture(scope="module")
def models(data_root):
    released = [load_compact_model(session, neuron, "npy", data_root=data_root) for session, neuron in
                (("190923", 0), ("201025", 27))]
    return released + [random_model(counts, seed) for seed, counts in enumerate(([1, 17, 3, 70, 9], [33, 5, 21, 1, 2]))]


@pytest.fixture(scope="module")
def images():
    generator = np.random.default_rng(3)
    return generator.uniform(RECENTERED_MIN, RECENTERED_MAX, (3, 112, 112, 3)).astype(np.float32)


def assert_close_to_keras(activity, reference):
    assert activity.shape == reference.shape
    spread = max(float(reference.std()), 1e-3)
    assert np.max(np.abs(activity - reference)) <= 2e-5 * spread + 1e-6


def test_kernel_layer_activity_equals_the_keras_layers(models, images, kernel_isa):
    for model in models:
        for layer in range(5):
            reference = keras_layer_activity(model, images, layer)
            assert_close_to_keras(layer_activity(model, images, layer, engine="kernel", batch_size=2), reference)


def test_tensorflow_layer_activity_equals_the_keras_layers(models, images):
    for model in models:
        for layer in (0, 1, 4):
            reference = keras_layer_activity(model, images, layer)
            assert_close_to_keras(layer_activity(model, images, layer, engine="tensorflow", batch_size=2), reference)


def test_sampled_positions_are_the_whole_map_at_those_positions(models, images, kernel_isa):
    model = models[0]
    positions = [position_subset(side, side, 50, seed=5) for side in SIDES]
    features, responses = sampled_activity(model, images, positions, engine="kernel")
    np.testing.assert_array_equal(responses, predict([model.get_weights()], images, engine="kernel")[0])
    for layer, side in enumerate(SIDES):
        whole = layer_activity(model, images, layer, engine="kernel")
        expected = whole.reshape(len(images), side * side, -1)[:, positions[layer]].reshape(len(images), -1)
        np.testing.assert_array_equal(features[layer], expected)
    graph_features, graph_responses = sampled_activity(model, images, positions, engine="tensorflow")
    for kernel_layer, graph_layer in zip(features, graph_features, strict=True):
        assert_close_to_keras(kernel_layer, graph_layer)
    assert_close_to_keras(responses, graph_responses)


def test_threads_and_job_sizes_do_not_change_a_single_bit(models, images, kernel_isa):
    positions = [position_subset(side, side, 40, seed=1) for side in SIDES]
    positions[2] = None
    reference, responses = sampled_activity(models[1], images, positions, engine="kernel", threads=1, batch_size=3)
    assert reference[2] is None
    for threads, batch_size in ((2, 1), (3, 2)):
        features, again = sampled_activity(models[1], images, positions, engine="kernel", threads=threads,
                                           batch_size=batch_size)
        np.testing.assert_array_equal(again, responses)
        for layer in (0, 1, 3, 4):
            np.testing.assert_array_equal(features[layer], reference[layer])


def test_scratch_reused_model_after_model_gives_the_fresh_features(models, images, kernel_isa):
    # Models of different widths in turn (a wide layer after a narrow one grows the scratch, a narrow
    # one after a wide one takes a shorter view of it): every call equals a call without scratch.
    positions = [position_subset(side, side, 30, seed=2) for side in SIDES]
    positions[3] = None
    scratch = [np.empty(0, np.float32) for _ in SIDES]
    for model in (models[2], models[0], models[3], models[2]):
        fresh, fresh_responses = sampled_activity(model, images, positions, engine="kernel")
        features, responses = sampled_activity(model, images, positions, engine="kernel", scratch=scratch)
        np.testing.assert_array_equal(responses, fresh_responses)
        assert features[3] is None
        for layer in (0, 1, 2, 4):
            np.testing.assert_array_equal(features[layer], fresh[layer])
            assert np.shares_memory(features[layer], scratch[layer])


@pytest.mark.parametrize("positions, message", [
    ([np.array([3, 1])] + [None] * 4, "increasing"),
    ([np.array([112 * 112])] + [None] * 4, "112x112"),
    ([None, np.array([-1])] + [None] * 3, "56x56"),
    ([None] * 4, "one entry per layer"),
])
def test_bad_positions_are_refused(models, images, positions, message):
    with pytest.raises(ValueError, match=message):
        sampled_activity(models[0], images, positions)


def test_unknown_layer_is_refused(models, images):
    with pytest.raises(ValueError, match="layer must be 0..4"):
        layer_activity(models[0], images, 5)

"""Pruning (SPEC section 6): selection rules, statistics, and the rebuilt network."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classes.compact.model import build_compact_model
from classes.compact.tools import (
    depthwise_activity,
    get_kernels,
    layer_activity,
    nums_filters_of,
    predict_responses,
    set_kernels,
)
from classes.runtime.quiet_tensorflow import keras
from classes.training.pruning import (
    largest_passing_count,
    prune_compact_model,
    prune_last_layer,
    prune_through_next_layer,
    select_filters,
)
from classes.training.pruning_rebuild import (
    check_kept,
    mask_pruned_filters,
    prune_weights,
    rebuild_pruned_model,
)
from classes.training.pruning_statistics import (
    collect_pruning_statistics,
    depthwise_variance,
)

NUMS = [6, 5, 4, 5, 6]
KEPT = [[0, 2, 5], [1, 2, 4], [0, 3], [0, 1, 4], [1, 3, 4, 5]]


def random_model(nums=NUMS, seed=0):
    """A compact model with random weights and non-trivial BN statistics."""
    keras.utils.set_random_seed(seed)
    model = build_compact_model(nums)
    generator = np.random.default_rng(seed)
    weights = []
    for array, variable in zip(model.get_weights(), model.weights, strict=True):
        name = variable.path
        if "moving_variance" in name:
            weights.append(generator.uniform(0.5, 2.0, array.shape).astype(np.float32))
        elif "moving_mean" in name or "beta" in name.split("/")[-1] or name.endswith("bias"):
            weights.append(generator.normal(0, 0.3, array.shape).astype(np.float32))
        elif "gamma" in name:
            weights.append(generator.uniform(0.5, 1.5, array.shape).astype(np.float32))
        else:
            weights.append(generator.normal(0, 0.2, array.shape).astype(np.float32))
    model.set_weights(weights)
    return model


def random_images(count, seed=1):
    generator = np.random.default_rng(seed)
    return generator.uniform(-100, 100, (count, 112, 112, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def images():
    return random_images(6)


def test_rebuilt_weights_are_the_kept_slices(model):
    weights = model.get_weights()
    pruned = prune_weights(weights, KEPT)
    k = [np.array(indices) for indices in KEPT]
    np.testing.assert_array_equal(pruned[0], weights[0][:, :, :, k[0]])
    np.testing.assert_array_equal(pruned[4], weights[4][k[0]])  # layer-0 moving mean
    # layer 2: depthwise keeps layer 1's kept filters; pointwise rows x columns
    np.testing.assert_array_equal(pruned[13], weights[13][:, :, k[1], :])
    np.testing.assert_array_equal(pruned[14], weights[14][0, 0][np.ix_(k[1], k[2])][None, None])
    np.testing.assert_array_equal(pruned[15], weights[15][k[2]])
    np.testing.assert_array_equal(pruned[19], weights[19][k[2]])  # layer-2 moving variance
    readout = weights[34].reshape(28, 28, NUMS[4])
    np.testing.assert_array_equal(pruned[34].reshape(28, 28, -1), readout[:, :, k[4]])
    assert pruned[35] == weights[35]
    assert [array.shape for array in pruned] == [
        variable.shape for variable in build_compact_model([3, 3, 2, 3, 4]).weights
    ]


def test_rebuilt_network_matches_masked_network(model, images):
    smaller = rebuild_pruned_model(model, KEPT)
    masked = mask_pruned_filters(model, KEPT)
    assert nums_filters_of(smaller) == [3, 3, 2, 3, 4]
    expected = predict_responses(masked, images)
    np.testing.assert_allclose(predict_responses(smaller, images), expected, rtol=1e-4, atol=1e-4)
    # the removed filters mattered: the unmasked model answers differently
    assert np.max(np.abs(predict_responses(model, images) - expected)) > 1e-2
    for layer in range(5):
        removed = np.setdiff1d(np.arange(NUMS[layer]), KEPT[layer])
        activity = layer_activity(masked, images[:2], layer)
        assert np.all(activity[..., removed] == 0.0)
        np.testing.assert_allclose(
            layer_activity(smaller, images[:2], layer), activity[..., KEPT[layer]],
            rtol=1e-4, atol=1e-4,
        )


def test_kept_indices_are_validated():
    with pytest.raises(ValueError, match="at least one"):
        check_kept([[0], [], [0], [0], [0]], NUMS)
    with pytest.raises(ValueError, match="0..3"):
        check_kept([[0], [0], [4], [0], [0]], NUMS)
    with pytest.raises(ValueError, match="distinct"):
        check_kept([[0, 0], [0], [0], [0], [0]], NUMS)
    with pytest.raises(ValueError, match="5 index arrays"):
        check_kept([[0]] * 4, NUMS)


def test_statistics_match_direct_computation(model, images):
    statistics = collect_pruning_statistics(model, images, batch_size=4)
    for layer in range(1, 5):
        depthwise = depthwise_activity(model, images, layer).astype(np.float64)
        flat = depthwise.reshape(-1, depthwise.shape[-1])
        np.testing.assert_allclose(statistics.gram[layer], flat.T @ flat, rtol=1e-4)
        np.testing.assert_allclose(depthwise_variance(statistics, layer), flat.var(axis=0), rtol=1e-3)
        output = layer_activity(model, images, layer, stage="conv").astype(np.float64)
        np.testing.assert_allclose(
            statistics.output_sum[layer], output.reshape(-1, NUMS[layer]).sum(0), rtol=1e-4, atol=1e-2
        )
    np.testing.assert_allclose(
        statistics.contributions.sum(axis=1) + statistics.readout_bias,
        predict_responses(model, images), rtol=1e-4, atol=1e-4,
    )


@pytest.mark.parametrize("layer", [0, 2, 3])
def test_fraction_of_variance_matches_masked_network(model, images, layer):
    """The Gram-matrix shortcut equals 1 - ||y_full - y_pruned||^2 / ||y_full - mean||^2."""
    from classes.training.pruning import fraction_of_variance

    statistics = collect_pruning_statistics(model, images, batch_size=4)
    removed = np.array([1, 3]) if NUMS[layer] > 3 else np.array([1])
    kept_outputs = np.array([0, 2, 3])
    kept = [np.arange(count) for count in NUMS]
    kept[layer] = np.setdiff1d(kept[layer], removed)
    masked = mask_pruned_filters(model, kept)
    full = layer_activity(model, images, layer + 1, "conv")[..., kept_outputs].astype(np.float64)
    pruned = layer_activity(masked, images, layer + 1, "conv")[..., kept_outputs].astype(np.float64)
    direct = 1 - np.sum((full - pruned) ** 2) / np.sum((full - full.mean(axis=(0, 1, 2))) ** 2)
    rows = get_kernels(model, layer + 1)["pointwise"][0, 0][:, kept_outputs]
    shortcut = fraction_of_variance(statistics, layer + 1, rows, kept_outputs, removed)
    assert direct < 0.999  # the removal changes the output
    np.testing.assert_allclose(shortcut, direct, rtol=1e-4, atol=1e-5)


def test_scores_and_order_follow_depthwise_variance_times_pointwise_norm(model, images):
    statistics = collect_pruning_statistics(model, images, batch_size=3)
    kept_outputs = np.array([0, 1, 4])
    pointwise = get_kernels(model, 4)["pointwise"]
    _, details = prune_through_next_layer(statistics, 3, pointwise, kept_outputs)
    depthwise = depthwise_activity(model, images, 4).reshape(-1, NUMS[3]).astype(np.float64)
    expected = depthwise.var(axis=0) * np.sum(pointwise[0, 0][:, kept_outputs] ** 2, axis=1)
    np.testing.assert_allclose(details["scores"], expected, rtol=1e-3)
    np.testing.assert_array_equal(details["order"], np.argsort(expected, kind="stable"))


@pytest.mark.parametrize("max_count", [0, 1, 2, 7, 100])
def test_binary_search_returns_largest_passing_count(max_count):
    for largest in range(max_count + 1):
        calls = []

        def passes(count, largest=largest, calls=calls):
            calls.append(count)
            return count <= largest

        assert largest_passing_count(passes, max_count) == largest
        assert 0 not in calls
        assert len(calls) <= math.ceil(math.log2(max_count + 1)) + 1
    with pytest.raises(ValueError):
        largest_passing_count(lambda count: True, -1)


def test_last_layer_drops_weakest_while_correlation_stays_high():
    generator = np.random.default_rng(3)
    signals = generator.normal(size=(500, 8))
    scales = np.array([3.0, 0.05, 2.0, 0.1, 1.0, 0.02, 0.6, 0.3])
    contributions = signals * scales
    teacher = contributions[:, [0, 2, 4, 6]].sum(axis=1) + generator.normal(0, 0.5, 500)
    kept, details = prune_last_layer(contributions, teacher)

    def r2(values):
        return np.corrcoef(values, teacher)[0, 1] ** 2

    order = np.argsort(contributions.std(axis=0))
    full = r2(contributions.sum(axis=1))
    expected_removed = 0
    for count in range(1, 8 - 3 + 1):
        if r2(contributions[:, order[count:]].sum(axis=1)) > 0.9 * full:
            expected_removed = count
        else:
            break
    assert details["num_removed"] == expected_removed
    np.testing.assert_array_equal(kept, np.sort(order[expected_removed:]))
    assert {1, 3, 5}.isdisjoint(kept)  # the three weakest go
    assert 0 in kept and 2 in kept
    assert details["r2_kept"] > 0.9 * details["r2_full"]


def test_keep_at_least_three_filters_per_layer(model, images):
    statistics = collect_pruning_statistics(model, images, batch_size=6)
    pointwise = [None] + [get_kernels(model, layer)["pointwise"] for layer in range(1, 5)]
    teacher = predict_responses(model, images)
    everything_goes = select_filters(statistics, pointwise, teacher,
                                     correlation_fraction=-np.inf, variance_fraction=-np.inf)
    assert everything_goes.nums_filters == [3, 3, 3, 3, 3]
    nothing_goes = select_filters(statistics, pointwise, teacher,
                                  correlation_fraction=1.0, variance_fraction=1.0)
    assert nothing_goes.nums_filters == NUMS
    small = random_model([5, 2, 4, 3, 4], seed=5)
    small_statistics = collect_pruning_statistics(small, images, batch_size=6)
    small_pointwise = [None] + [get_kernels(small, layer)["pointwise"] for layer in range(1, 5)]
    result = select_filters(small_statistics, small_pointwise, predict_responses(small, images),
                            correlation_fraction=-np.inf, variance_fraction=-np.inf)
    assert result.nums_filters == [3, 2, 3, 3, 3]


def test_prune_compact_model_removes_silent_filters_and_rebuilds(images):
    model = random_model(seed=7)
    # Filters 1 and 4 of layer 3 reach nothing: their pointwise rows in layer 4 are zero.
    kernels = get_kernels(model, 4)
    kernels["pointwise"][:, :, [1, 4], :] = 0.0
    set_kernels(model, 4, pointwise=kernels["pointwise"])
    teacher = predict_responses(model, images) + np.random.default_rng(0).normal(0, 0.01, len(images))
    smaller, result = prune_compact_model(model, images, teacher, batch_size=3)
    assert {1, 4}.isdisjoint(result.kept[3])
    assert result.details[3]["fraction_of_variance"] > 0.9
    for layer, indices in enumerate(result.kept):
        assert min(3, NUMS[layer]) <= len(indices) <= NUMS[layer]
    assert nums_filters_of(smaller) == result.nums_filters
    np.testing.assert_allclose(
        predict_responses(smaller, images),
        predict_responses(mask_pruned_filters(model, result.kept), images),
        rtol=1e-4, atol=1e-4,
    )
    with pytest.raises(ValueError, match="teacher responses"):
        prune_compact_model(model, images, teacher[:-1])

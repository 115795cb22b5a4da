"""Kernel similarity (Fig. 3b) and the permutation test of script7."""

from __future__ import annotations

import numpy as np
import pytest

from classes.analysis.kernel_similarity import (
    all_pair_similarities,
    kernel_similarity,
    kernels_from_weights,
    permutation_test,
    random_kernel_similarity,
    sample_pair_similarities,
)


def test_known_values():
    identity = np.eye(2)
    diagonal = np.array([[1.0, 1.0]])
    # Each kernel's best match has |cos| = 1/sqrt(2), both ways.
    assert kernel_similarity(identity, diagonal) == pytest.approx(1 / np.sqrt(2))
    # A -> B: [1,0] matches itself (1); B -> A: mean(1, 0) = 0.5.
    assert kernel_similarity([[1.0, 0.0]], identity) == pytest.approx(0.75)
    # Orthogonal kernels share nothing.
    assert kernel_similarity([[1.0, 0.0]], [[0.0, 3.0]]) == pytest.approx(0.0)


def test_self_similarity_is_one_and_order_sign_scale_invariant():
    generator = np.random.default_rng(1)
    kernels_a = generator.standard_normal((12, 25))
    kernels_b = generator.standard_normal((7, 25))
    assert kernel_similarity(kernels_a, kernels_a) == pytest.approx(1.0)
    reference = kernel_similarity(kernels_a, kernels_b)
    assert 0 < reference < 1
    permuted = kernels_a[generator.permutation(12)]
    flipped = kernels_b * np.array([1, -1, 1, -1, 1, 1, -1])[:, None] * 3.5
    assert kernel_similarity(permuted, flipped) == pytest.approx(reference)
    assert kernel_similarity(kernels_b, kernels_a) == pytest.approx(reference)
    # A changed kernel changes the value: the measure is not constant.
    changed = kernels_b.copy()
    changed[0] = kernels_a[0]
    assert kernel_similarity(kernels_a, changed) > reference


def test_errors():
    with pytest.raises(ValueError, match="same length"):
        kernel_similarity(np.ones((3, 25)), np.ones((3, 75)))
    with pytest.raises(ValueError, match="zero"):
        kernel_similarity(np.zeros((3, 25)), np.ones((3, 25)))
    with pytest.raises(ValueError, match="layer"):
        kernels_from_weights([np.zeros(1)] * 36, 5)
    with pytest.raises(ValueError, match="36"):
        kernels_from_weights([np.zeros((5, 5, 3, 4))], 0)
    with pytest.raises(ValueError, match="two models"):
        sample_pair_similarities([[np.ones((2, 25))]], num_runs=3)


def test_all_pairs_match_pairwise_loop():
    generator = np.random.default_rng(2)
    models = [[generator.standard_normal((count, 25))] for count in (3, 8, 5, 4)]
    values = all_pair_similarities(models, 0)
    rows, columns = np.triu_indices(4, k=1)
    expected = [kernel_similarity(models[a][0], models[b][0]) for a, b in zip(rows, columns, strict=True)]
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_baseline_grows_with_kernel_counts():
    # The maximum over more candidates is larger by chance: why counts must match.
    generator = np.random.default_rng(3)
    few = np.mean([random_kernel_similarity(3, 3, 25, generator) for _ in range(200)])
    many = np.mean([random_kernel_similarity(50, 50, 25, generator) for _ in range(200)])
    assert 0.2 < few < many < 0.8


def test_sampling_draws_distinct_pairs_and_matching_baseline():
    generator = np.random.default_rng(4)
    models = [[generator.standard_normal((4, 25)), generator.standard_normal((6, 75))] for _ in range(5)]
    result = sample_pair_similarities(models, num_runs=40, seed=0)
    assert result["similarity"].shape == result["baseline"].shape == (40, 2)
    assert np.all(result["models"][:, 0] != result["models"][:, 1])
    first, second = result["models"][7]
    assert result["similarity"][7, 1] == pytest.approx(kernel_similarity(models[first][1], models[second][1]))
    again = sample_pair_similarities(models, num_runs=40, seed=0)
    np.testing.assert_array_equal(again["baseline"], result["baseline"])


def test_permutation_test():
    generator = np.random.default_rng(5)
    separated = permutation_test(generator.normal(1, 1, 200), generator.normal(0, 1, 200), 500, seed=0)
    assert separated["difference"] == pytest.approx(1.0, abs=0.25)
    assert separated["p_value"] == pytest.approx(1 / 501)
    same = permutation_test(generator.normal(0, 1, 200), generator.normal(0, 1, 200), 500, seed=0)
    assert same["p_value"] > 0.05
    # Exhaustive check on a tiny case: groups {3, 4} vs {1, 2}; 6 splits, 2 as extreme.
    tiny = permutation_test([3.0, 4.0], [1.0, 2.0], 4000, seed=1)
    assert tiny["difference"] == pytest.approx(2.0)
    assert tiny["p_value"] == pytest.approx(2 / 6, abs=0.03)


def test_kernels_from_weights_match_keras_layers(data_root):
    from classes.compact.architecture import all_model_ids, load_weights_npy
    from classes.compact.model import load_compact_model
    from classes.compact.tools import get_kernels

    identifier = all_model_ids()[0]
    weights = load_weights_npy(identifier, data_root)
    model = load_compact_model(identifier.session_id, identifier.neuron, "npy", data_root=data_root)
    layer0 = kernels_from_weights(weights, 0)
    keras_kernel = get_kernels(model, 0)["kernel"]
    assert layer0.shape == (keras_kernel.shape[-1], 75)
    np.testing.assert_allclose(layer0[2], keras_kernel[..., 2].reshape(-1), rtol=1e-6)
    for layer in range(1, 5):
        kernels = kernels_from_weights(weights, layer)
        depthwise = get_kernels(model, layer)["depthwise"]
        assert kernels.shape == (depthwise.shape[2], 25)
        np.testing.assert_allclose(kernels[-1], depthwise[:, :, -1, 0].reshape(-1), rtol=1e-6)
        assert kernel_similarity(kernels, kernels) == pytest.approx(1.0)
        shuffled = kernels[np.random.default_rng(layer).permutation(len(kernels))]
        assert kernel_similarity(kernels, shuffled) == pytest.approx(1.0)

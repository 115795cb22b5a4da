"""Compact models compared layer by layer (Fig. 3a-c): filters, kernels, activity, outputs.

The computations of ``script7_filter_analysis.py``:

- filters per layer over models (Fig. 3a);
- kernel similarity of the same layer in two models, over random pairs
  and over all pairs, against standard-normal kernels
  (:mod:`classes.analysis.kernel_similarity`, Fig. 3b);
- linear CKA of the same layer's activity in two models, over all pairs,
  from normalized Gram matrices kept on disk (:mod:`classes.analysis.cka`,
  Fig. 3c);
- the signal correlation between the models' outputs on the same images.

Layer numbering: paper layer = code layer + 1 (paper 1-5 = ``layer0``..``layer4``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.analysis.cka import GramStore, cka_matrix, normalized_gram, position_subset
from classes.analysis.kernel_similarity import (
    all_pair_similarities,
    kernels_from_weights,
    permutation_test,
    sample_pair_similarities,
)
from classes.compact.architecture import NUM_LAYERS, ModelId, load_weights_npy
from classes.prediction.activity import sampled_activity

__all__ = [
    "CKA_GROUPS",
    "KERNEL_GROUPS",
    "MAP_SIZES",
    "cka_analysis",
    "compute_grams",
    "filters_per_layer",
    "kernel_similarity_analysis",
    "signal_correlation",
]

# Side of each layer's square feature map (code layers 0..4).
MAP_SIZES = (112, 56, 28, 28, 28)
# The layer groups the paper contrasts, in code numbering: paper layers 2-3
# vs 4-5 (kernel similarity) and 1-2 vs 3-4 (CKA).
KERNEL_GROUPS = ((1, 2), (3, 4))
CKA_GROUPS = ((0, 1), (2, 3))


def filters_per_layer(nums_filters) -> dict:
    """Median, mean, minimum and maximum over models of the filters per layer.

    Args:
        nums_filters: ``(num_models, 5)`` filters per code layer.

    Returns:
        ``{"medians", "means", "minimum", "maximum"}``, each ``(5,)``.
    """
    nums_filters = np.asarray(nums_filters)
    return {
        "medians": np.median(nums_filters, axis=0),
        "means": nums_filters.mean(axis=0),
        "minimum": nums_filters.min(axis=0),
        "maximum": nums_filters.max(axis=0),
    }


def _standard_deviation(values: np.ndarray) -> np.ndarray:
    """Sample s.d. per layer over rows; zeros for a single row (no spread to estimate)."""
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(NUM_LAYERS)


def kernel_similarity_analysis(models: list[ModelId], data_root, num_runs: int, num_permutations: int,
                               seed: int) -> dict:
    """Fig. 3b: kernel similarity per layer over random and all pairs of models.

    Args:
        models: the compact models compared (at least two).
        data_root: the release folder.
        num_runs: random model pairs (the paper: 500).
        num_permutations: permutations of each test.
        seed: seed of the pairs, the baseline kernels and the permutations.

    Returns:
        ``sampled`` (from :func:`sample_pair_similarities`), ``all_pairs``
        ``(5, num_pairs)``, per-layer ``mean``, ``sd``, ``baseline_mean``,
        ``baseline_sd``, ``all_pairs_mean`` ``(5,)``, and the permutation
        tests of :data:`KERNEL_GROUPS` on the similarity (``test``) and on
        the similarity minus its baseline (``test_above_baseline``).
    """
    kernels = []
    for identifier in tqdm(models, desc="kernels"):
        weights = load_weights_npy(identifier, data_root)
        kernels.append([kernels_from_weights(weights, layer) for layer in range(NUM_LAYERS)])
    sampled = sample_pair_similarities(kernels, num_runs=num_runs, seed=seed)
    all_pairs = np.stack([all_pair_similarities(kernels, layer) for layer in range(NUM_LAYERS)])
    similarity, baseline = sampled["similarity"], sampled["baseline"]
    first, second = (list(group) for group in KERNEL_GROUPS)
    adjusted = similarity - baseline
    return {
        "sampled": sampled,
        "all_pairs": all_pairs,
        "mean": similarity.mean(axis=0),
        "sd": _standard_deviation(similarity),
        "baseline_mean": baseline.mean(axis=0),
        "baseline_sd": _standard_deviation(baseline),
        "all_pairs_mean": all_pairs.mean(axis=1),
        "test": permutation_test(similarity[:, first], similarity[:, second], num_permutations, seed),
        "test_above_baseline": permutation_test(adjusted[:, first], adjusted[:, second], num_permutations, seed),
    }


def compute_grams(models: list[ModelId], data_root, images: np.ndarray, image_ids: list[str], folder: Path,
                  num_positions: int, seed: int, batch_size: int, timings: dict[str, float]) -> GramStore:
    """Every model's normalized Gram matrices per layer and its outputs, stored in ``folder``.

    A store left by an interrupted run with the same models, images,
    positions and seed is resumed (the models already done are skipped).

    Args:
        models: the compact models.
        data_root: the release folder.
        images: recentred normal images ``(M, 112, 112, 3)``.
        image_ids: ``"session/number"`` of each image (part of the store's key).
        folder: where the store lives (``<out>/gram_cache``).
        num_positions: spatial positions per layer (:func:`position_subset`).
        seed: seed of the positions.
        batch_size: images per forward-pass job (:func:`classes.prediction.activity.sampled_activity`).
        timings: seconds per step; ``"load models"``, ``"forward passes"``
            and ``"Gram matrices"`` are added to.

    Returns:
        The :class:`GramStore`, every model done.
    """
    positions = [position_subset(size, size, num_positions, seed) for size in MAP_SIZES]
    key = {"models": [str(identifier) for identifier in models], "images": image_ids,
           "positions": num_positions, "seed": seed}
    store = GramStore(folder, key, len(models), len(images), NUM_LAYERS)
    if store.done.any():
        print(f"resuming: {int(store.done.sum())} of {len(models)} models already in {store.folder}")
    scratch = [np.empty(0, np.float32) for _ in range(NUM_LAYERS)]  # one model's activity at a time, reused
    for index, identifier in enumerate(tqdm(models, desc="models (activity, Gram)")):
        if store.done[index]:
            continue
        start = time.perf_counter()
        weights = load_weights_npy(identifier, data_root)
        middle = time.perf_counter()
        features, responses = sampled_activity(weights, images, positions, batch_size=batch_size, scratch=scratch)
        after = time.perf_counter()
        # The features are this loop's scratch: centred in place.
        store.store(index, [normalized_gram(layer, overwrite=True) for layer in features], responses)
        for name, seconds in (("load models", middle - start), ("forward passes", after - middle),
                              ("Gram matrices", time.perf_counter() - after)):
            timings[name] = timings.get(name, 0.0) + seconds
    return store


def cka_analysis(store: GramStore, num_permutations: int, seed: int) -> dict:
    """Fig. 3c: linear CKA of each layer over all pairs of models, and the test of :data:`CKA_GROUPS`.

    Args:
        store: every model's normalized Gram matrices (:func:`compute_grams`).
        num_permutations: permutations of the test.
        seed: seed of the permutations.

    Returns:
        ``matrices`` ``(5, num_models, num_models)``, ``values`` ``(5,
        num_pairs)`` in ``np.triu_indices`` order, per-layer ``mean``, ``sd``
        and ``median`` (NaN ignored), ``num_pairs`` and the permutation ``test``.
    """
    rows, columns = np.triu_indices(store.done.size, k=1)
    matrices = np.stack([cka_matrix(store.grams[layer]) for layer in range(NUM_LAYERS)])
    values = matrices[:, rows, columns]
    first, second = (list(group) for group in CKA_GROUPS)
    return {
        "matrices": matrices,
        "values": values,
        "mean": np.nanmean(values, axis=1),
        "sd": np.nanstd(values, axis=1, ddof=1),
        "median": np.nanmedian(values, axis=1),
        "num_pairs": int(values.shape[1]),
        "test": permutation_test(values[first], values[second], num_permutations, seed),
    }


def signal_correlation(responses) -> dict:
    """Pearson correlations between the outputs of every pair of models on the same images.

    Args:
        responses: ``(num_models, num_images)`` model outputs.

    Returns:
        ``mean_r2``, ``median_r2`` and ``mean_r`` over pairs (NaN ignored),
        ``squared`` ``(num_pairs,)`` in ``np.triu_indices`` order and the
        correlation ``matrix`` ``(num_models, num_models)``.
    """
    responses = np.asarray(responses, dtype=np.float64)
    correlation = np.corrcoef(responses)
    rows, columns = np.triu_indices(len(responses), k=1)
    squared = correlation[rows, columns] ** 2
    return {
        "mean_r2": float(np.nanmean(squared)),
        "median_r2": float(np.nanmedian(squared)),
        "mean_r": float(np.nanmean(correlation[rows, columns])),
        "squared": squared,
        "matrix": correlation,
    }

"""Kernel similarity between the kernels of one layer in two compact models.

Fig. 3b of the paper compares the kernels of the same layer across compact
models, against kernels drawn from a standard normal distribution as a
baseline, over random pairs of models (500 runs, mean and s.d.). SPEC.md
does not spell out the similarity itself; this module implements the
project's reading of the paper's methods, stated exactly here:

Kernels of a layer (code numbering, paper layer = code layer + 1):

- layer 0: the full 5x5x3 Conv2D kernel of each output filter, a vector of
  75 numbers (``K0`` kernels);
- layers 1-4: the 5x5 depthwise (spatial) kernel applied to each input
  filter, a vector of 25 numbers (``K_{layer-1}`` kernels). The pointwise
  weights are not compared: they mix input filters whose order is arbitrary
  in each model, so they have no counterpart across models.

For kernels ``a_1..a_p`` of model A and ``b_1..b_q`` of model B, let
``C[j, k] = |a_j . b_k| / (||a_j|| ||b_k||)``, the absolute cosine
similarity. The similarity of A to B is ``s(A->B) = mean_j max_k C[j, k]``:
each kernel of A is matched to its most similar kernel of B. The kernel
similarity is the symmetrised ``S(A, B) = (s(A->B) + s(B->A)) / 2``.

Why these choices: ``S`` lies in [0, 1]; ``S(A, A) = 1``; it does not depend
on the order of the filters (each model orders its filters arbitrarily); the
absolute value makes it blind to a kernel's sign, which the network can
absorb elsewhere (a depthwise kernel's sign into the pointwise weights, a
layer-0 kernel's sign into a negative BN gamma), and the cosine makes it
blind to a kernel's scale, which BN removes. Kernels whose norm is 0 (none
in the release) are left out.

Baseline: the same ``S`` for kernels drawn i.i.d. from a standard normal,
with the same kernel counts and length as the two models compared (the
maximum over more candidates is larger by chance, so counts must match).
"""

from __future__ import annotations

import numpy as np

# classes.compact.architecture.NUM_LAYERS, repeated so this pure-NumPy module does
# not import TensorFlow.
NUM_LAYERS = 5

# Index of each layer's kernel in a get_weights() list (SPEC section 2):
# conv kernel first, then per separable layer 7 arrays starting with depthwise.
_KERNEL_INDEX = {0: 0, **{layer: 6 + 7 * (layer - 1) for layer in range(1, NUM_LAYERS)}}


def kernels_from_weights(weights, layer: int) -> np.ndarray:
    """The kernels of one layer as rows, from a ``get_weights()`` list.

    Args:
        weights: the 36 arrays of a compact model (Keras ``get_weights()``
            order, as :func:`classes.compact.architecture.load_weights_npy` returns).
        layer: 0..4 (code numbering).

    Returns:
        float64 ``(num_kernels, kernel_length)``: ``(K0, 75)`` for layer 0
        (5x5x3 flattened row-major over height, width, channel) and
        ``(K_{layer-1}, 25)`` for layers 1-4.

    Raises:
        ValueError: unknown layer or a weight list of the wrong length/shape.
    """
    if layer not in _KERNEL_INDEX:
        raise ValueError(f"layer must be 0..{NUM_LAYERS - 1}; got {layer!r}.")
    if len(weights) != 36:
        raise ValueError(f"A compact model has 36 weight arrays; got {len(weights)}.")
    kernel = np.asarray(weights[_KERNEL_INDEX[layer]], dtype=np.float64)
    if layer == 0:
        if kernel.ndim != 4 or kernel.shape[:3] != (5, 5, 3):
            raise ValueError(f"layer-0 kernel must be (5, 5, 3, K0); got {kernel.shape}.")
        return np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)
    if kernel.ndim != 4 or kernel.shape[:2] != (5, 5) or kernel.shape[-1] != 1:
        raise ValueError(f"layer-{layer} depthwise kernel must be (5, 5, K, 1); got {kernel.shape}.")
    return np.moveaxis(kernel[..., 0], -1, 0).reshape(kernel.shape[2], -1)


def _unit_rows(kernels, name: str) -> np.ndarray:
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 2 or kernels.shape[0] == 0:
        raise ValueError(f"{name} must be (num_kernels >= 1, kernel_length); got {kernels.shape}.")
    if not np.all(np.isfinite(kernels)):
        raise ValueError(f"{name} holds NaN or infinite weights.")
    norms = np.linalg.norm(kernels, axis=1)
    kept = norms > 0
    if not np.any(kept):
        raise ValueError(f"every kernel of {name} is zero; a similarity is undefined.")
    return kernels[kept] / norms[kept, None]


def kernel_similarity(kernels_a, kernels_b) -> float:
    """Symmetrised best-match absolute cosine similarity (see module doc).

    Args:
        kernels_a: ``(p, length)``, one kernel per row.
        kernels_b: ``(q, length)``.

    Returns:
        ``S(A, B)`` in [0, 1].

    Raises:
        ValueError: different kernel lengths, empty or all-zero kernels.
    """
    unit_a = _unit_rows(kernels_a, "kernels_a")
    unit_b = _unit_rows(kernels_b, "kernels_b")
    if unit_a.shape[1] != unit_b.shape[1]:
        raise ValueError(
            f"Kernels must have the same length to be compared; got {unit_a.shape[1]} "
            f"and {unit_b.shape[1]} (compare the same layer of two models)."
        )
    cosines = np.abs(unit_a @ unit_b.T)
    # Rounding can push a self-match a hair above 1.
    cosines = np.minimum(cosines, 1.0)
    return float(0.5 * (cosines.max(axis=1).mean() + cosines.max(axis=0).mean()))


def random_kernel_similarity(
    num_kernels_a: int, num_kernels_b: int, kernel_length: int, generator: np.random.Generator
) -> float:
    """Baseline ``S`` for standard-normal kernels of the given counts and length."""
    if min(num_kernels_a, num_kernels_b, kernel_length) < 1:
        raise ValueError("Kernel counts and length must be positive.")
    return kernel_similarity(
        generator.standard_normal((num_kernels_a, kernel_length)),
        generator.standard_normal((num_kernels_b, kernel_length)),
    )


def sample_pair_similarities(
    kernels_per_model: list[list[np.ndarray]],
    num_runs: int = 500,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The paper's sampling: random pairs of models, per layer, with baseline.

    Each run draws two distinct models uniformly at random, computes ``S``
    for every layer, and the baseline ``S`` of standard-normal kernels with
    the same counts and lengths as that pair's kernels.

    Args:
        kernels_per_model: for each model, a list of 5 arrays from
            :func:`kernels_from_weights` (layers 0..4).
        num_runs: pairs drawn (the paper used 500).
        seed: random seed.

    Returns:
        ``{"models": (runs, 2) int, "similarity": (runs, 5),
        "baseline": (runs, 5)}``.
    """
    num_models = len(kernels_per_model)
    if num_models < 2:
        raise ValueError(f"Need at least two models to form pairs; got {num_models}.")
    if num_runs < 1:
        raise ValueError(f"num_runs must be positive; got {num_runs}.")
    num_layers = len(kernels_per_model[0])
    generator = np.random.default_rng(seed)
    pairs = np.stack([generator.choice(num_models, size=2, replace=False) for _ in range(num_runs)])
    similarity = np.empty((num_runs, num_layers))
    baseline = np.empty((num_runs, num_layers))
    for run, (first, second) in enumerate(pairs):
        for layer in range(num_layers):
            kernels_a = kernels_per_model[first][layer]
            kernels_b = kernels_per_model[second][layer]
            similarity[run, layer] = kernel_similarity(kernels_a, kernels_b)
            baseline[run, layer] = random_kernel_similarity(
                len(kernels_a), len(kernels_b), kernels_a.shape[1], generator
            )
    return {"models": pairs, "similarity": similarity, "baseline": baseline}


def all_pair_similarities(kernels_per_model: list[list[np.ndarray]], layer: int) -> np.ndarray:
    """``S`` for every unordered pair of models in one layer.

    Returns:
        ``(num_models * (num_models - 1) / 2,)`` in the order of
        ``np.triu_indices(num_models, k=1)``.
    """
    units = [_unit_rows(kernels[layer], f"layer-{layer} kernels") for kernels in kernels_per_model]
    stacked = np.concatenate(units)
    bounds = np.cumsum([0] + [len(unit) for unit in units])
    num_models = len(units)
    # directed[a, b] = s(a -> b); one model's rows at a time keeps memory small
    # (all kernels of all models at once would be a ~10,000 x 10,000 matrix).
    directed = np.empty((num_models, num_models))
    for model, unit in enumerate(units):
        cosines = np.minimum(np.abs(unit @ stacked.T), 1.0)
        best = np.maximum.reduceat(cosines, bounds[:-1], axis=1)
        directed[model] = best.mean(axis=0)
    rows, columns = np.triu_indices(num_models, k=1)
    return 0.5 * (directed[rows, columns] + directed[columns, rows])


def permutation_test(
    group_a, group_b, num_permutations: int = 10_000, seed: int = 0, chunk: int = 100
) -> dict[str, float]:
    """Two-sided permutation test of a difference of means between two groups.

    Used by script7 to compare layer groups (e.g. the similarities of paper
    layers 2-3 pooled against those of layers 4-5). Statistic: ``mean(a) -
    mean(b)``. The group labels are shuffled ``num_permutations`` times;
    ``p = (1 + #{|shuffled| >= |observed|}) / (1 + num_permutations)``, so
    the smallest reachable p is ``1 / (1 + num_permutations)``.

    Args:
        group_a: 1-D values (NaN are dropped).
        group_b: 1-D values.

    Returns:
        ``{"difference", "p_value", "num_permutations", "size_a", "size_b"}``.
    """
    values_a = np.asarray(group_a, dtype=np.float64).reshape(-1)
    values_b = np.asarray(group_b, dtype=np.float64).reshape(-1)
    values_a, values_b = values_a[np.isfinite(values_a)], values_b[np.isfinite(values_b)]
    if values_a.size < 1 or values_b.size < 1:
        raise ValueError("Both groups need at least one finite value.")
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be positive; got {num_permutations}.")
    pooled = np.concatenate([values_a, values_b])
    size_a, total = values_a.size, pooled.sum()
    observed = values_a.mean() - values_b.mean()
    generator = np.random.default_rng(seed)
    exceed = 0
    done = 0
    while done < num_permutations:
        count = min(chunk, num_permutations - done)
        order = np.tile(np.arange(pooled.size), (count, 1))
        generator.permuted(order, axis=1, out=order)
        order = order[:, :size_a]
        sums_a = pooled[order].sum(axis=1)
        shuffled = sums_a / size_a - (total - sums_a) / values_b.size
        # A small tolerance counts ties as extreme despite rounding.
        exceed += int(np.sum(np.abs(shuffled) >= abs(observed) - 1e-12))
        done += count
    return {
        "difference": float(observed),
        "p_value": (1 + exceed) / (1 + num_permutations),
        "num_permutations": int(num_permutations),
        "size_a": int(values_a.size),
        "size_b": int(values_b.size),
    }

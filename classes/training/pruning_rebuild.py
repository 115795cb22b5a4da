"""Cutting filters out of a compact model: the smaller network and the masked one.

Removing filter ``j`` of layer ``i`` removes, in layer ``i``, its output
weights (layer 0: its 5x5x3 kernel; layers 1-4: its pointwise column), its
bias and its four BN entries, and, in the layer that reads it, its depthwise
kernel and pointwise row in layer ``i+1`` (for layer 4: its 28x28 map in
the readout ``Beta``) (SPEC section 6).

Two views of the same pruning, whose outputs are equal:

- :func:`rebuild_pruned_model`: a smaller compact model built with the kept
  weights;
- :func:`mask_pruned_filters`: the original architecture with every removed
  weight set to zero (BN gamma and beta included, so a removed filter's
  activity is exactly 0).

``kept`` is a list of five index arrays, one per layer, of the filters that
stay, in any order (they are sorted).
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import (
    LAYER0_ARRAYS,
    NUM_LAYERS,
    OUTPUT_SIZE,
    SEPARABLE_ARRAYS,
    first_weight_index,
    nums_filters_from_weights,
)
from classes.compact.model import model_from_weights
from classes.runtime.quiet_tensorflow import keras


def check_kept(kept, nums_filters) -> list[np.ndarray]:
    """Validates the kept filters of every layer.

    Args:
        kept: five sequences of filter indices.
        nums_filters: ``[K0..K4]`` of the unpruned model.

    Returns:
        Five sorted int arrays.

    Raises:
        ValueError: wrong count of layers, an empty layer, an index out of
            range or repeated.
    """
    if len(kept) != NUM_LAYERS:
        raise ValueError(f"kept must hold {NUM_LAYERS} index arrays (one per layer); got {len(kept)}.")
    checked = []
    for layer, (indices, count) in enumerate(zip(kept, nums_filters, strict=True)):
        indices = np.sort(np.asarray(indices, dtype=np.int64).reshape(-1))
        if indices.size == 0:
            raise ValueError(f"Layer {layer} must keep at least one filter.")
        if indices[0] < 0 or indices[-1] >= count or np.any(np.diff(indices) == 0):
            raise ValueError(
                f"Kept filters of layer {layer} must be distinct indices in 0..{count - 1}; "
                f"got {indices.tolist()}."
            )
        checked.append(indices)
    return checked


def removed_filters(kept, nums_filters) -> list[np.ndarray]:
    """The complement of ``kept`` in every layer."""
    kept = check_kept(kept, nums_filters)
    return [np.setdiff1d(np.arange(count), indices) for indices, count in zip(kept, nums_filters, strict=True)]


def prune_weights(weights, kept) -> list[np.ndarray]:
    """Slices a ``get_weights()`` list down to the kept filters.

    Args:
        weights: the 36 arrays of a compact model.
        kept: see :func:`check_kept`.

    Returns:
        The 36 arrays of the smaller model.
    """
    counts = nums_filters_from_weights(weights)
    kept = check_kept(kept, counts)
    pruned = [weights[0][..., kept[0]]] + [array[kept[0]] for array in weights[1:LAYER0_ARRAYS]]
    for layer in range(1, NUM_LAYERS):
        first = first_weight_index(layer)
        inputs, outputs = kept[layer - 1], kept[layer]
        depthwise, pointwise = weights[first], weights[first + 1]
        pruned.append(depthwise[:, :, inputs, :])
        pruned.append(pointwise[:, :, inputs, :][..., outputs])
        pruned.extend(array[outputs] for array in weights[first + 2:first + SEPARABLE_ARRAYS])
    readout, readout_bias = weights[-2], weights[-1]
    maps = readout.reshape(OUTPUT_SIZE, OUTPUT_SIZE, counts[-1])
    pruned.append(maps[..., kept[-1]].reshape(-1, 1))
    pruned.append(readout_bias)
    return [np.array(array, dtype=np.float32) for array in pruned]


def mask_weights(weights, kept) -> list[np.ndarray]:
    """Zeros every weight of the removed filters (same shapes as ``weights``)."""
    counts = nums_filters_from_weights(weights)
    removed = removed_filters(kept, counts)
    masked = [np.array(array, dtype=np.float32) for array in weights]
    masked[0][..., removed[0]] = 0.0
    for offset in (1, 2, 3):  # bias, gamma, beta; the moving statistics may stay
        masked[offset][removed[0]] = 0.0
    for layer in range(1, NUM_LAYERS):
        first = first_weight_index(layer)
        inputs, outputs = removed[layer - 1], removed[layer]
        masked[first][:, :, inputs, :] = 0.0
        masked[first + 1][:, :, inputs, :] = 0.0
        masked[first + 1][..., outputs] = 0.0
        for offset in (2, 3, 4):  # bias, gamma, beta
            masked[first + offset][outputs] = 0.0
    maps = masked[-2].reshape(OUTPUT_SIZE, OUTPUT_SIZE, counts[-1])
    maps[..., removed[-1]] = 0.0
    masked[-2] = maps.reshape(-1, 1)
    return masked


def rebuild_pruned_model(model: keras.Model, kept, name: str | None = None) -> keras.Model:
    """A new, smaller compact model holding the kept filters' weights."""
    return model_from_weights(prune_weights(model.get_weights(), kept), name=name or model.name)


def mask_pruned_filters(model: keras.Model, kept) -> keras.Model:
    """A copy of the model with the removed filters' weights zeroed."""
    return model_from_weights(mask_weights(model.get_weights(), kept), name=model.name)

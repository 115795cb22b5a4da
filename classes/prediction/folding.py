"""Compact-model weights prepared for fast evaluation, and their FLOP count.

The fast evaluation path (:mod:`classes.prediction.stacked`) does not run Keras
layers. It takes each model's ``get_weights()`` list (36 arrays, SPEC
section 2), checks it, and folds every inference-mode BatchNormalization
into the convolution before it:

    BN(z) = gamma * (z - mean) / sqrt(var + 1e-3) + beta = scale * z + shift,

so layer 0's kernel and bias become ``kernel * scale`` and
``(bias - mean) * scale + beta``; in layers 1-4 the depthwise kernel is kept
and the pointwise kernel and bias absorb the scale (BN acts per output
channel, after the pointwise). Folding is done in float64 and rounded once
to float32. The readout is kept as a ``(28, 28, K4)`` map plus its bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from classes.compact.architecture import (
    BN_EPSILON,
    NUM_LAYERS,
    OUTPUT_SIZE,
    STRIDES,
    WEIGHTS_PER_MODEL,
)

KERNEL_TAPS = 5 * 5
# Output side length of each layer (input 112x112; strides 1, 2, 2, 1, 1).
LAYER_SIDES = (112, 56, 28, 28, 28)
# The order of the folded arrays handed to the TensorFlow graph.
FOLDED_NAMES = (
    "kernel0", "bias0",
    "depthwise1", "pointwise1", "bias1",
    "depthwise2", "pointwise2", "bias2",
    "depthwise3", "pointwise3", "bias3",
    "depthwise4", "pointwise4", "bias4",
    "readout_map", "readout_bias",
)


def compact_model_flops(nums_filters) -> int | np.ndarray:
    """Useful floating-point operations of one compact model on one image.

    Counted: every multiply-add of the convolutions and the readout, as a
    dense implementation performs them, at 2 FLOPs each:

    - layer 0: ``112*112 * 5*5*3 * K0``;
    - layer i = 1..4: depthwise ``side_i**2 * 25 * K_{i-1}`` plus pointwise
      ``side_i**2 * K_{i-1} * K_i``, with output sides 56, 28, 28, 28;
    - readout: ``28*28 * K4``.

    Not counted: bias additions, BatchNormalization, ReLU and flattening
    (elementwise; BN is free once folded). Taps that fall on the "same"
    padding at the borders are counted like all others, as a dense
    convolution performs them. The same count rates both evaluation paths.

    Args:
        nums_filters: ``[K0..K4]``, or an integer array ``(num_models, 5)``.

    Returns:
        int for one model; int64 array ``(num_models,)`` for several.

    Raises:
        ValueError: the counts are not positive integers ending in 5 values.
    """
    counts = np.asarray(nums_filters)
    if counts.ndim not in (1, 2) or counts.shape[-1] != NUM_LAYERS:
        raise ValueError(
            f"nums_filters must be [K0..K4] or an array (num_models, 5); got shape {counts.shape}."
        )
    if not np.issubdtype(counts.dtype, np.integer) or np.any(counts < 1):
        raise ValueError(f"Filter counts must be positive integers; got {counts.tolist()}.")
    counts = counts.astype(np.int64)
    multiply_adds = LAYER_SIDES[0] ** 2 * KERNEL_TAPS * 3 * counts[..., 0]
    for layer in range(1, NUM_LAYERS):
        pixels = LAYER_SIDES[layer] ** 2
        previous, current = counts[..., layer - 1], counts[..., layer]
        multiply_adds = multiply_adds + pixels * (KERNEL_TAPS * previous + previous * current)
    multiply_adds = multiply_adds + OUTPUT_SIZE**2 * counts[..., NUM_LAYERS - 1]
    flops = 2 * multiply_adds
    return int(flops) if flops.ndim == 0 else flops


@dataclass(frozen=True)
class FoldedModel:
    """One compact model with its BatchNormalizations folded away.

    Attributes:
        nums_filters: ``(K0, K1, K2, K3, K4)``.
        arrays: float32 arrays in :data:`FOLDED_NAMES` order: kernel0
            ``(5,5,3,K0)``, bias0 ``(K0,)``; per layer i depthwise
            ``(5,5,K_{i-1},1)``, pointwise ``(1,1,K_{i-1},K_i)``, bias
            ``(K_i,)``; readout_map ``(28,28,K4)``, readout_bias ``(1,)``.
        name: a label for messages (e.g. ``"190923/neuron4"``).
    """

    nums_filters: tuple
    arrays: tuple = field(repr=False)
    name: str = ""


def _expect(array, shape, what: str, label: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != tuple(shape):
        raise ValueError(f"{label}: {what} has shape {array.shape}; expected {tuple(shape)}.")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{label}: {what} must hold numbers; got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{label}: {what} holds NaN or infinite values.")
    return array


def _batch_norm_scale_shift(vectors, count: int, layer: int, label: str):
    gamma, beta, mean, variance = (
        _expect(vector, (count,), f"layer {layer} BN {name}", label)
        for vector, name in zip(vectors, ("gamma", "beta", "moving_mean", "moving_variance"), strict=True)
    )
    if np.any(variance + BN_EPSILON <= 0):
        raise ValueError(f"{label}: layer {layer} BN moving_variance is below -{BN_EPSILON}.")
    scale = gamma / np.sqrt(variance + BN_EPSILON)
    return scale, beta - mean * scale


TRUNK_WEIGHTS = WEIGHTS_PER_MODEL - 2


def fold_trunk(weights, label: str = "compact model") -> tuple[list[np.ndarray], list[int]]:
    """Checks layers 0-4 of a compact or shared model and folds their BatchNormalizations.

    The one BN-folding function of the project: compact models
    (:func:`fold_weights`) and shared compact models (:func:`fold_shared_model`)
    have the same trunk, whose ``get_weights()`` arrays come first.

    Args:
        weights: at least the first 34 arrays of ``get_weights()`` (layer 0's
            kernel, bias and BN; per separable layer depthwise, pointwise,
            bias and BN); further arrays are ignored.
        label: names the model in error messages.

    Returns:
        ``(arrays, counts)``: float64 arrays kernel0 ``(5,5,3,K0)``, bias0,
        then per layer 1-4 depthwise ``(5,5,K_prev,1)``, pointwise
        ``(1,1,K_prev,K_i)``, bias; and the filter counts ``[K0..K4]``.

    Raises:
        ValueError: too few arrays, shapes that do not chain, non-finite values.
    """
    if not isinstance(weights, (list, tuple)) or len(weights) < TRUNK_WEIGHTS:
        count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise ValueError(f"{label}: expected the {TRUNK_WEIGHTS} trunk weight arrays first; got {count}.")
    kernel0 = np.asarray(weights[0])
    if kernel0.ndim != 4 or kernel0.shape[:3] != (5, 5, 3) or kernel0.shape[3] < 1:
        raise ValueError(f"{label}: layer 0 kernel has shape {kernel0.shape}; expected (5, 5, 3, K0).")
    counts = [kernel0.shape[3]]
    kernel0 = _expect(kernel0, kernel0.shape, "layer 0 kernel", label)
    bias0 = _expect(weights[1], (counts[0],), "layer 0 bias", label)
    scale, shift = _batch_norm_scale_shift(weights[2:6], counts[0], 0, label)
    folded = [kernel0 * scale, bias0 * scale + shift]
    for layer in range(1, NUM_LAYERS):
        offset = 6 + 7 * (layer - 1)
        previous = counts[-1]
        pointwise = np.asarray(weights[offset + 1])
        if pointwise.ndim != 4 or pointwise.shape[:3] != (1, 1, previous) or pointwise.shape[3] < 1:
            raise ValueError(
                f"{label}: layer {layer} pointwise kernel has shape {pointwise.shape}; "
                f"expected (1, 1, {previous}, K{layer})."
            )
        count = pointwise.shape[3]
        counts.append(count)
        depthwise = _expect(weights[offset], (5, 5, previous, 1), f"layer {layer} depthwise kernel", label)
        pointwise = _expect(pointwise, pointwise.shape, f"layer {layer} pointwise kernel", label)
        bias = _expect(weights[offset + 2], (count,), f"layer {layer} bias", label)
        scale, shift = _batch_norm_scale_shift(weights[offset + 3 : offset + 7], count, layer, label)
        # BN acts per output channel, after the pointwise: the pointwise kernel and bias absorb it.
        folded += [depthwise, pointwise * scale, bias * scale + shift]
    return folded, [int(count) for count in counts]


def _float32(arrays) -> tuple:
    return tuple(np.ascontiguousarray(array, dtype=np.float32) for array in arrays)


def fold_weights(weights, name: str = "") -> FoldedModel:
    """Checks a ``get_weights()`` list and folds its BatchNormalizations.

    Args:
        weights: the 36 arrays of a compact model in Keras ``get_weights()``
            order (SPEC section 2), e.g. from
            :func:`classes.compact.architecture.load_weights_npy`.
        name: label used in error messages.

    Returns:
        A :class:`FoldedModel`.

    Raises:
        ValueError: wrong number of arrays, a shape that does not chain
            (e.g. a pointwise kernel whose input size is not the previous
            layer's filter count), or non-finite values.
    """
    label = f"compact model {name}" if name else "compact model"
    if not isinstance(weights, (list, tuple)) or len(weights) != WEIGHTS_PER_MODEL:
        count = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise ValueError(
            f"{label}: expected a list of {WEIGHTS_PER_MODEL} weight arrays "
            f"(Keras get_weights() order); got {count}."
        )
    folded, counts = fold_trunk(weights, label)
    readout = _expect(
        weights[34], (OUTPUT_SIZE * OUTPUT_SIZE * counts[-1], 1), "readout (Beta) kernel", label
    )
    readout_bias = _expect(weights[35], (1,), "readout (Beta) bias", label)
    # Flatten order is channels last: index (row * 28 + column) * K4 + filter.
    folded += [readout[:, 0].reshape(OUTPUT_SIZE, OUTPUT_SIZE, counts[-1]), readout_bias]
    return FoldedModel(tuple(counts), _float32(folded), name)


@dataclass(frozen=True)
class FoldedSharedModel:
    """A shared compact model (SPEC section 3) with its BatchNormalizations folded away.

    Attributes:
        arrays: float32 arrays: the 14 trunk arrays of :func:`fold_trunk`;
            mixing ``(100, 219)``, mixing bias ``(219,)``, spatial pool map
            ``(28, 28, 219)``, pool bias ``(219,)``.
        relu: whether each layer ends in a ReLU (False for the
            ``linear_from_ensemble_model`` teacher).
        name: the Keras model's name.
    """

    arrays: tuple = field(repr=False)
    relu: bool
    name: str = ""


def _check_shared_layers(model) -> bool:
    """Checks a shared compact model's layer settings; returns whether it has ReLUs."""
    names = {layer.name for layer in model.layers}
    needed = [f"layer{index}_{kind}" for index in range(NUM_LAYERS) for kind in ("conv", "bn")]
    missing = [name for name in needed + ["mixing_stage", "spatial_pool_stage"] if name not in names]
    if missing:
        raise ValueError(f"{model.name} is not a shared compact model: it lacks layers {missing}.")
    relu_layers = [f"layer{index}_act" in names for index in range(NUM_LAYERS)]
    if len(set(relu_layers)) != 1:
        raise ValueError(f"{model.name} has ReLUs in some layers only ({relu_layers}); unsupported.")
    for index in range(NUM_LAYERS):
        layer = model.get_layer(f"layer{index}_conv")
        expected = (STRIDES[index],) * 2
        if layer.padding != "same" or tuple(layer.strides) != expected or not layer.use_bias:
            raise ValueError(f"{model.name}: layer{index}_conv has unexpected settings.")
        if abs(model.get_layer(f"layer{index}_bn").epsilon - BN_EPSILON) > 1e-12:
            raise ValueError(f"{model.name}: layer{index}_bn has epsilon other than {BN_EPSILON}.")
    return bool(relu_layers[0])


def fold_shared_model(model) -> FoldedSharedModel:
    """Folds a loaded shared compact model's BN layers into its convolutions.

    Args:
        model: from :func:`classes.compact.shared_model.load_shared_compact_model`.

    Returns:
        A :class:`FoldedSharedModel`.

    Raises:
        ValueError: the model lacks a shared compact model's layers, or a
            layer has unexpected settings (padding, strides, activation, BN
            epsilon).
    """
    if not (hasattr(model, "layers") and hasattr(model, "get_layer")):
        raise ValueError(f"fold_shared_model takes a keras.Model; got {type(model).__name__}.")
    relu = _check_shared_layers(model)
    folded, _ = fold_trunk(list(model.get_weights()), f"shared compact model {model.name}")
    mixing, mixing_bias = model.get_layer("mixing_stage").get_weights()
    pool, pool_bias = model.get_layer("spatial_pool_stage").get_weights()
    folded += [mixing[0, 0], mixing_bias, pool[:, :, :, 0], pool_bias]
    return FoldedSharedModel(_float32(folded), relu, model.name)


def weights_of(model_or_weights) -> list:
    """A ``get_weights()`` list from a Keras compact model or a weight list."""
    if hasattr(model_or_weights, "get_weights") and callable(model_or_weights.get_weights):
        return list(model_or_weights.get_weights())
    if isinstance(model_or_weights, (list, tuple)):
        return list(model_or_weights)
    raise ValueError(
        "Each model must be a Keras compact model or its get_weights() list of "
        f"{WEIGHTS_PER_MODEL} arrays; got {type(model_or_weights).__name__}."
    )

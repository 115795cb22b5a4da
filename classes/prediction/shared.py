"""Shared compact models evaluated fast: BatchNormalization folded, one graph.

A released shared compact model (:mod:`classes.compact.shared_model`) run
as Keras layers spends much of its time on separate BatchNormalization and
ReLU passes over ``112x112xK`` maps (K up to 200). As in
:mod:`classes.prediction.folding`, each inference-mode BN is folded into the
convolution before it,

    BN(z) = gamma * (z - mean) / sqrt(var + 1e-3) + beta = scale * z + shift,

so layer 0's kernel and bias become ``kernel * scale`` and
``bias * scale + shift``, and in layers 1-4 the pointwise kernel and bias
absorb the scale (BN acts per output channel, after the pointwise). The
readout (1x1 ``mixing_stage`` to 219 channels, then a 28x28 valid
``spatial_pool_stage`` depthwise conv) is a matmul and a weighted spatial
sum. One ``tf.function``, traced once with the filter counts left unknown,
serves all 56 models; the linear (no-ReLU) teacher gets its own trace.

Outputs equal the Keras model's within float32 rounding
(``tests/test_shared_compact_model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from classes.data.preprocessing import check_images
from classes.prediction.graph import SEPARABLE_STRIDES, positive_int, trunk_forward, trunk_signature
from classes.runtime.quiet_tensorflow import keras, tf

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class FoldedSharedModel:
    """A shared compact model with its BatchNormalizations folded away.

    Attributes:
        arrays: float32 arrays: kernel0 ``(5,5,3,K)``, bias0 ``(K,)``; per
            layer 1-4 depthwise ``(5,5,K_prev,1)``, pointwise
            ``(1,1,K_prev,K_i)``, bias ``(K_i,)``; mixing ``(100, 219)``,
            mixing bias ``(219,)``, spatial pool map ``(28, 28, 219)``, pool
            bias ``(219,)``.
        relu: whether each layer ends in a ReLU (False for the
            ``linear_from_ensemble_model`` teacher).
        name: the Keras model's name.
    """

    arrays: tuple = field(repr=False)
    relu: bool
    name: str = ""


def _batch_norm(layer) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, variance = (np.asarray(array, np.float64) for array in layer.get_weights())
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - mean * scale


def fold_shared_model(model: keras.Model) -> FoldedSharedModel:
    """Folds a loaded shared compact model's BN layers into its convolutions.

    Args:
        model: from :func:`classes.compact.shared_model.load_shared_compact_model`.

    Returns:
        A :class:`FoldedSharedModel`.

    Raises:
        ValueError: the model lacks a shared compact model's layers, or a
            layer has unexpected settings (padding, strides, activation).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"fold_shared_model takes a keras.Model; got {type(model).__name__}.")
    names = {layer.name for layer in model.layers}
    needed = [f"layer{index}_{kind}" for index in range(5) for kind in ("conv", "bn")]
    missing = [name for name in needed + ["mixing_stage", "spatial_pool_stage"] if name not in names]
    if missing:
        raise ValueError(f"{model.name} is not a shared compact model: it lacks layers {missing}.")
    relu_layers = [f"layer{index}_act" in names for index in range(5)]
    if len(set(relu_layers)) != 1:
        raise ValueError(f"{model.name} has ReLUs in some layers only ({relu_layers}); unsupported.")
    for index in range(5):
        layer = model.get_layer(f"layer{index}_conv")
        expected = (1, 1) if index == 0 else (SEPARABLE_STRIDES[index - 1],) * 2
        if layer.padding != "same" or tuple(layer.strides) != expected or not layer.use_bias:
            raise ValueError(f"{model.name}: layer{index}_conv has unexpected settings.")
    kernel0, bias0 = (np.asarray(array, np.float64) for array in model.get_layer("layer0_conv").get_weights())
    scale, shift = _batch_norm(model.get_layer("layer0_bn"))
    folded = [kernel0 * scale, bias0 * scale + shift]
    for index in range(1, 5):
        depthwise, pointwise, bias = (
            np.asarray(array, np.float64) for array in model.get_layer(f"layer{index}_conv").get_weights()
        )
        scale, shift = _batch_norm(model.get_layer(f"layer{index}_bn"))
        folded += [depthwise, pointwise * scale, bias * scale + shift]
    mixing, mixing_bias = model.get_layer("mixing_stage").get_weights()
    pool, pool_bias = model.get_layer("spatial_pool_stage").get_weights()
    folded += [mixing[0, 0], mixing_bias, pool[:, :, :, 0], pool_bias]
    arrays = tuple(np.ascontiguousarray(array, dtype=np.float32) for array in folded)
    return FoldedSharedModel(arrays, bool(relu_layers[0]), model.name)


def _forward(images, weights, relu: bool):
    """``(n, 219)`` responses of one folded shared model."""
    activity = trunk_forward(images, weights, tf.nn.relu if relu else tf.identity)
    mixing, mixing_bias, pool, pool_bias = weights[14:18]
    mixed = tf.tensordot(activity, mixing, axes=[[3], [0]]) + mixing_bias
    return tf.reduce_sum(mixed * pool, axis=(1, 2)) + pool_bias


def _signature() -> list:
    spec = tf.TensorSpec
    readout = [spec((None, None)), spec((None,)), spec((28, 28, None)), spec((None,))]
    return [spec((None, 112, 112, 3)), [*trunk_signature(), *readout]]


_FUNCTIONS: dict[bool, object] = {}


def _function(relu: bool):
    if relu not in _FUNCTIONS:
        _FUNCTIONS[relu] = tf.function(
            lambda images, weights: _forward(images, weights, relu), input_signature=_signature()
        )
    return _FUNCTIONS[relu]


def predict_shared_fast(
    model_or_folded, images, batch_size: int = DEFAULT_BATCH_SIZE, show_progress: bool = False
) -> np.ndarray:
    """Responses of a shared compact model, BN folded, in one traced graph.

    Args:
        model_or_folded: a loaded shared compact model or its
            :class:`FoldedSharedModel`.
        images: recentred ``(num_images, 112, 112, 3)``.
        batch_size: images per graph call; 16 keeps the ``112x112xK``
            activity of layer 0 near the cache for K up to 200.
        show_progress: show a tqdm bar over batches.

    Returns:
        float32 ``(num_images, 219)``, the Keras model's outputs within
        float32 rounding.

    Raises:
        ValueError: not a shared compact model; images of the wrong shape or
            range; a non-positive batch size.
    """
    folded = model_or_folded
    if not isinstance(folded, FoldedSharedModel):
        folded = fold_shared_model(model_or_folded)
    batch_size = positive_int(batch_size, "batch_size")
    images = check_images(images, "recentered")
    num_outputs = folded.arrays[-1].shape[0]
    if len(images) == 0:
        return np.zeros((0, num_outputs), np.float32)
    weights = [tf.constant(array) for array in folded.arrays]
    function = _function(folded.relu)
    outputs = np.empty((len(images), num_outputs), np.float32)
    starts = range(0, len(images), int(batch_size))
    for start in tqdm(starts, desc=f"{folded.name or 'shared model'}", leave=False, disable=not show_progress):
        batch = tf.constant(np.asarray(images[start : start + batch_size], np.float32))
        outputs[start : start + len(batch)] = function(batch, weights).numpy()
    return outputs

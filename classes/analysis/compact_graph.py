"""A compact model's Keras forward pass as a function of its weights, traced once for every model.

A Keras model is traced (``tf.function``) for itself: its variables and
filter counts are baked into the graph, so gradient ascent over 219 models
traced 219 graphs. :func:`compact_forward` runs the very operations the
Keras layers of :func:`classes.compact.model.build_compact_model` run
(``keras.ops.conv``, bias added as a ``(1, 1, 1, K)`` tensor,
``keras.ops.batch_normalization`` with the moving statistics,
``keras.ops.relu``, ``keras.ops.separable_conv``, flatten, ``keras.ops.matmul``
and the bias), in the same order, on weights given as arguments with the
filter counts left unknown. One trace then serves every compact model, and
its responses and gradients equal the Keras model's bit for bit, eagerly and
in a graph (``tests/test_synthesis.py`` checks both). BatchNormalization is
not folded here (unlike :mod:`classes.prediction.folding`): folding changes
the rounding, and gradient ascent amplifies rounding differences over its
hundreds of steps.
"""

from __future__ import annotations

from classes.compact.architecture import BN_EPSILON, NUM_LAYERS, STRIDES, WEIGHTS_PER_MODEL
from classes.runtime.quiet_tensorflow import keras, tf

__all__ = ["compact_forward", "compact_response_function", "compact_weights", "is_compact_model", "weights_signature"]

ops = keras.ops
_FLAT_PIXELS = 28 * 28


def weights_signature() -> list:
    """``tf.TensorSpec`` of a compact model's 36 ``get_weights()`` arrays, filter counts unknown."""
    spec = tf.TensorSpec
    vector = spec((None,), tf.float32)
    signature = [spec((5, 5, 3, None), tf.float32), vector, vector, vector, vector, vector]
    for _ in range(1, NUM_LAYERS):
        signature += [spec((5, 5, None, 1), tf.float32), spec((1, 1, None, None), tf.float32)] + [vector] * 5
    return signature + [spec((None, 1), tf.float32), spec((1,), tf.float32)]


def _bias_batch_norm_relu(activity, bias, gamma, beta, mean, variance):
    # As Conv2D/SeparableConv2D.call, BatchNormalization.call (inference) and Activation("relu").
    activity = ops.add(activity, ops.reshape(bias, (1, 1, 1, -1)))
    activity = ops.batch_normalization(x=activity, mean=mean, variance=variance, axis=-1, offset=beta, scale=gamma,
                                       epsilon=BN_EPSILON)
    return ops.relu(activity)


def compact_forward(images, weights):
    """Outputs ``(n, 1)`` of the compact model whose ``get_weights()`` list is ``weights``.

    Args:
        images: recentred float32 ``(n, 112, 112, 3)`` tensor.
        weights: the 36 arrays or tensors (Keras ``get_weights()`` order).
    """
    activity = ops.conv(images, weights[0], strides=1, padding="same", data_format="channels_last", dilation_rate=1)
    activity = _bias_batch_norm_relu(activity, weights[1], *weights[2:6])
    for layer in range(1, NUM_LAYERS):
        offset = 6 + 7 * (layer - 1)
        depthwise, pointwise, bias, gamma, beta, mean, variance = weights[offset : offset + 7]
        activity = ops.separable_conv(activity, depthwise, pointwise, strides=STRIDES[layer], padding="same",
                                      dilation_rate=1, data_format="channels_last")
        activity = _bias_batch_norm_relu(activity, bias, gamma, beta, mean, variance)
    activity = ops.reshape(activity, (-1, _FLAT_PIXELS * tf.shape(activity)[-1]))
    return ops.add(ops.matmul(activity, weights[34]), weights[35])


def is_compact_model(model) -> bool:
    """Whether ``model`` is a Keras compact model (the release's layer names and 36 weight arrays)."""
    if not isinstance(model, keras.Model):
        return False
    names = {layer.name for layer in model.layers}
    needed = {f"layer{index}_{kind}" for index in range(NUM_LAYERS) for kind in ("conv", "bn", "act")}
    return needed | {"Beta"} <= names and len(model.weights) == WEIGHTS_PER_MODEL


def compact_weights(model_or_weights) -> list:
    """A compact model's weights as float32 tensors, in ``get_weights()`` order.

    Args:
        model_or_weights: a Keras compact model or its ``get_weights()`` list.
    """
    weights = model_or_weights.get_weights() if isinstance(model_or_weights, keras.Model) else model_or_weights
    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(f"A compact model has {WEIGHTS_PER_MODEL} weight arrays; got {len(weights)}.")
    return [tf.constant(array, tf.float32) for array in weights]


_RESPONSE_FUNCTION = None


def compact_response_function():
    """``tf.function`` ``(recentred images, weights) -> responses (N,)``, traced once for every compact model."""
    global _RESPONSE_FUNCTION
    if _RESPONSE_FUNCTION is None:
        _RESPONSE_FUNCTION = tf.function(
            lambda images, weights: compact_forward(images, weights)[:, 0],
            input_signature=[tf.TensorSpec((None, 112, 112, 3), tf.float32), weights_signature()],
        )
    return _RESPONSE_FUNCTION

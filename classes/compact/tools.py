"""Working with a compact model: predict, look inside, ablate, count.

Every function takes a Keras compact model as built by
:func:`classes.compact.model.build_compact_model` or loaded from the release.
Images are recentred, ``(num_images, 112, 112, 3)``.
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import NUM_LAYERS
from classes.data.preprocessing import check_images
from classes.runtime.quiet_tensorflow import keras, tf

_LAYER_STAGES = ("conv", "bn", "act")


def _batches(num_images: int, batch_size: int):
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    for start in range(0, num_images, batch_size):
        yield slice(start, min(start + batch_size, num_images))


def _run_in_batches(function, images, batch_size: int) -> np.ndarray:
    images = check_images(images, "recentered")
    outputs = [
        np.asarray(function(tf.constant(images[batch], dtype=tf.float32)))
        for batch in _batches(len(images), batch_size)
    ]
    if not outputs:
        probe = function(tf.zeros((1, 112, 112, 3)))
        return np.zeros((0,) + tuple(probe.shape[1:]), np.float32)
    return np.concatenate(outputs)


def predict_responses(model: keras.Model, images, batch_size: int = 64) -> np.ndarray:
    """Model responses to recentred images.

    Args:
        model: a compact model.
        images: recentred ``(num_images, 112, 112, 3)``.
        batch_size: images per forward pass.

    Returns:
        float32 ``(num_images,)``.
    """
    function = tf.function(lambda batch: model(batch, training=False), jit_compile=False)
    return _run_in_batches(function, images, batch_size)[:, 0]


def layer_activity(
    model: keras.Model, images, layer: int, stage: str = "act", batch_size: int = 64
) -> np.ndarray:
    """Activity of one layer.

    Args:
        layer: 0..4.
        stage: ``"conv"`` (pre-BN), ``"bn"`` or ``"act"`` (after ReLU).

    Returns:
        float32 ``(num_images, height, width, filters)``: 112x112 for layer 0,
        56x56 for layer 1, 28x28 for layers 2-4.
    """
    if layer not in range(NUM_LAYERS) or stage not in _LAYER_STAGES:
        raise ValueError(
            f"layer must be 0..{NUM_LAYERS - 1} and stage one of {_LAYER_STAGES}; "
            f"got layer={layer!r}, stage={stage!r}."
        )
    submodel = keras.Model(model.input, model.get_layer(f"layer{layer}_{stage}").output)
    function = tf.function(lambda batch: submodel(batch, training=False))
    return _run_in_batches(function, images, batch_size)


def depthwise_activity(model: keras.Model, images, layer: int, batch_size: int = 64) -> np.ndarray:
    """Output of the depthwise stage of a separable layer, before the pointwise.

    Args:
        layer: 1..4.

    Returns:
        float32 ``(num_images, height, width, K_{layer-1})``: one map per
        input filter, at the layer's output resolution.
    """
    if layer not in range(1, NUM_LAYERS):
        raise ValueError(f"Depthwise stages exist in layers 1..4; got layer={layer!r}.")
    previous = keras.Model(model.input, model.get_layer(f"layer{layer - 1}_act").output)
    separable = model.get_layer(f"layer{layer}_conv")
    depthwise_kernel = separable.depthwise_kernel
    strides = (1,) + tuple(separable.strides) + (1,)

    def function(batch):
        return tf.nn.depthwise_conv2d(
            previous(batch, training=False), depthwise_kernel, strides, "SAME"
        )

    return _run_in_batches(tf.function(function), images, batch_size)


def readout_maps(model: keras.Model) -> np.ndarray:
    """The readout's spatial map for each layer-4 filter.

    Returns:
        float32 ``(K4, 28, 28)``: Beta's kernel unflattened (channels last).
    """
    kernel = model.get_layer("Beta").get_weights()[0][:, 0]
    num_filters = model.get_layer("layer4_conv").filters
    return np.transpose(kernel.reshape(28, 28, num_filters), (2, 0, 1)).copy()


def get_kernels(model: keras.Model, layer: int) -> dict[str, np.ndarray]:
    """Kernel weights of one layer.

    Returns:
        For layer 0: ``{"kernel": (5,5,3,K0), "bias": (K0,)}``. For layers
        1-4: ``{"depthwise": (5,5,K_prev,1), "pointwise": (1,1,K_prev,K),
        "bias": (K,)}``. For ``layer="readout"``: ``{"kernel":
        (28*28*K4, 1), "bias": (1,)}``.
    """
    if layer == "readout":
        kernel, bias = model.get_layer("Beta").get_weights()
        return {"kernel": kernel, "bias": bias}
    if layer == 0:
        kernel, bias = model.get_layer("layer0_conv").get_weights()
        return {"kernel": kernel, "bias": bias}
    if layer in range(1, NUM_LAYERS):
        depthwise, pointwise, bias = model.get_layer(f"layer{layer}_conv").get_weights()
        return {"depthwise": depthwise, "pointwise": pointwise, "bias": bias}
    raise ValueError(f"layer must be 0..4 or 'readout'; got {layer!r}.")


def set_kernels(model: keras.Model, layer, **weights) -> None:
    """Replaces kernel weights of one layer (names as in :func:`get_kernels`).

    Raises:
        ValueError: unknown name or a shape that differs from the layer's.
    """
    current = get_kernels(model, layer)
    for name, value in weights.items():
        if name not in current:
            raise ValueError(f"Layer {layer} has weights {sorted(current)}; got {name!r}.")
        value = np.asarray(value, dtype=np.float32)
        if value.shape != current[name].shape:
            raise ValueError(
                f"{name} of layer {layer} has shape {current[name].shape}; got {value.shape}."
            )
        current[name] = value
    if layer == "readout":
        model.get_layer("Beta").set_weights([current["kernel"], current["bias"]])
    elif layer == 0:
        model.get_layer("layer0_conv").set_weights([current["kernel"], current["bias"]])
    else:
        model.get_layer(f"layer{layer}_conv").set_weights(
            [current["depthwise"], current["pointwise"], current["bias"]]
        )


def ablate_filters(model: keras.Model, layer: int, filters) -> keras.Model:
    """A copy of the model with chosen filters of one layer zeroed.

    The filter's kernel weights are set to 0 (layer 0: its conv kernel;
    layers 1-4: its pointwise column). Biases and BN are left, as in the
    paper's ablations ("kernel weights set to zero").

    Args:
        layer: 0..4.
        filters: indices of filters in that layer.

    Returns:
        A new model; the given one is unchanged.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernels = get_kernels(copy, layer)
    key = "kernel" if layer == 0 else "pointwise"
    count = kernels[key].shape[-1]
    indices = np.atleast_1d(np.asarray(filters, dtype=int))
    if indices.size and (indices.min() < 0 or indices.max() >= count):
        raise ValueError(f"Layer {layer} has filters 0..{count - 1}; got {indices.tolist()}.")
    kernels[key][..., indices] = 0.0
    set_kernels(copy, layer, **{key: kernels[key]})
    return copy


def count_parameters(model: keras.Model) -> int:
    """All parameters, BN moving statistics included (as Keras ``summary()``)."""
    return int(model.count_params())


def nums_filters_of(model: keras.Model) -> list[int]:
    """``[K0..K4]`` of a built compact model."""
    return [model.get_layer(f"layer{layer}_conv").filters for layer in range(NUM_LAYERS)]


def count_convolutional_filters(nums_filters) -> int:
    """Convolutional filters of a compact model, as the paper counts them.

    The count is ``2*K0 + K1 + K2 + K3 + K4``: each layer's output filters
    (layer 0's full 5x5x3 kernels and each separable layer's pointwise
    filters) plus the K0 spatial depthwise filters of layer 1. It is the
    definition that gives the published median of 164 over the 219 released
    models (``sum(K)`` alone gives 116, counting every depthwise stage 229);
    see ``script4_compact_perf.py``, which reports all three.

    Args:
        nums_filters: ``[K0..K4]`` or an array ``(num_models, 5)``.

    Returns:
        int, or int array ``(num_models,)``.
    """
    counts = np.asarray(nums_filters)
    if counts.shape[-1] != NUM_LAYERS:
        raise ValueError(f"nums_filters must end in {NUM_LAYERS} counts; got shape {counts.shape}.")
    total = counts.sum(axis=-1) + counts[..., 0]
    return int(total) if total.ndim == 0 else total

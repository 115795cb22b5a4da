"""The TensorFlow engine of the fast path: one traced graph for folded models.

One graph evaluates a group of folded compact models (8 by default) of any
sizes on a batch of images (16 by default); oneDNN fuses each convolution
with its bias and ReLU. It is traced once per group size, with the filter
counts left unknown, so no model needs its own tracing. It runs wherever
TensorFlow does; :mod:`classes.prediction.stacked` uses it where TensorFlow
sees a GPU or the compiled kernel (:mod:`classes.prediction.kernel`) cannot
run. The separable trunk (:func:`trunk_forward`) also serves the shared
compact models (:mod:`classes.prediction.shared`).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from classes.runtime.quiet_tensorflow import tf

__all__ = [
    "SEPARABLE_STRIDES",
    "positive_int",
    "predict_with_graph",
    "trunk_activities",
    "trunk_forward",
    "trunk_signature",
]

# Strides of the separable layers 1-4 (layer 0: stride 1).
SEPARABLE_STRIDES = (2, 2, 1, 1)


def positive_int(value, name: str) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def trunk_activities(images, weights, activate=tf.nn.relu) -> list:
    """The activity of each of layers 0-4 of a folded compact network.

    Args:
        images: recentred ``(n, 112, 112, 3)``.
        weights: the first 14 folded arrays (kernel0, bias0, then depthwise,
            pointwise, bias of layers 1-4); further arrays are ignored.
        activate: the nonlinearity after each layer (``tf.identity`` for a
            linear network).

    Returns:
        5 tensors: ``(n, 112, 112, K0)``, ``(n, 56, 56, K1)``, then ``(n, 28, 28, K_i)``.
    """
    kernel0, bias0 = weights[0], weights[1]
    activities = [activate(tf.nn.bias_add(tf.nn.conv2d(images, kernel0, 1, "SAME"), bias0))]
    for layer, stride in zip(range(1, 5), SEPARABLE_STRIDES, strict=True):
        depthwise, pointwise, bias = weights[3 * layer - 1 : 3 * layer + 2]
        # "SAME" here pads like Keras: 1 before and 2 after for stride 2 on even sides.
        activity = tf.nn.depthwise_conv2d(activities[-1], depthwise, (1, stride, stride, 1), "SAME")
        activities.append(activate(tf.nn.bias_add(tf.nn.conv2d(activity, pointwise, 1, "SAME"), bias)))
    return activities


def trunk_forward(images, weights, activate=tf.nn.relu):
    """Layers 0-4 of a folded compact network: ``(n, 28, 28, K4)`` (:func:`trunk_activities`' last)."""
    return trunk_activities(images, weights, activate)[-1]


def trunk_signature() -> list:
    """``tf.TensorSpec`` of the 14 arrays :func:`trunk_forward` reads, filter counts unknown."""
    spec = tf.TensorSpec
    separable = []
    for _ in range(4):
        separable += [spec((5, 5, None, 1)), spec((1, 1, None, None)), spec((None,))]
    return [spec((5, 5, 3, None)), spec((None,)), *separable]


def _one_model_forward(images, weights):
    """Response of one folded model to a batch of recentred images: ``(n,)``."""
    readout_map, readout_bias = weights[-2], weights[-1]
    return tf.reduce_sum(trunk_forward(images, weights) * readout_map, axis=(1, 2, 3)) + readout_bias


def _weights_signature() -> tuple:
    # The order of FOLDED_NAMES: layer 0, four separable layers, readout.
    return (*trunk_signature(), tf.TensorSpec((28, 28, None)), tf.TensorSpec((1,)))


_FORWARD_FUNCTIONS: dict[int, object] = {}


def _forward_function(group_size: int):
    """A graph for ``group_size`` models of any sizes, traced once per size."""
    if group_size not in _FORWARD_FUNCTIONS:

        def forward(images, group):
            return tf.stack([_one_model_forward(images, weights) for weights in group])

        _FORWARD_FUNCTIONS[group_size] = tf.function(
            forward,
            input_signature=[
                tf.TensorSpec((None, 112, 112, 3), tf.float32),
                [_weights_signature()] * group_size,
            ],
            jit_compile=False,
        )
    return _FORWARD_FUNCTIONS[group_size]


def predict_with_graph(tensors, images, batch_size: int, group_size: int, show_progress: bool) -> np.ndarray:
    """Responses of folded models to images through the traced graph.

    Args:
        tensors: per model, its 16 folded arrays (:data:`classes.prediction.folding.FOLDED_NAMES`
            order) as TensorFlow constants.
        images: checked, recentred float32 ``(num_images, 112, 112, 3)``.
        batch_size: images per graph call.
        group_size: models per graph call.
        show_progress: tqdm bar over calls.

    Returns:
        float32 ``(num_models, num_images)``.
    """
    num_models, num_images = len(tensors), images.shape[0]
    predictions = np.zeros((num_models, num_images), dtype=np.float32)
    # Near-equal groups, so at most two graph sizes are ever traced.
    num_groups = -(-num_models // group_size)
    groups = [list(indices) for indices in np.array_split(np.arange(num_models), num_groups)]
    starts = range(0, num_images, batch_size)
    with tqdm(
        total=len(starts) * len(groups), desc="fast predict", unit="call", disable=not show_progress
    ) as progress:
        for start in starts:
            stop = min(start + batch_size, num_images)
            batch = tf.constant(np.asarray(images[start:stop], dtype=np.float32))
            for group in groups:
                function = _forward_function(len(group))
                outputs = function(batch, [tensors[index] for index in group])
                predictions[group, start:stop] = outputs.numpy()
                progress.update(1)
    return predictions

"""Layer activity of compact models, whole or at chosen spatial positions.

Script7's CKA (Fig. 3c) compares the activity of each layer of two models
over the same images, from a fixed random subset of spatial positions
(:func:`classes.analysis.cka.position_subset`). :func:`sampled_activity`
returns that activity and the model's responses in one forward pass, on the
engines of :func:`classes.prediction.predict`:

- ``"kernel"``: the compiled kernel (:func:`classes.prediction.kernel_activity.activity_with_kernel`)
  copies the chosen positions out of the maps it computes anyway; layer 0's
  ``112 x 112 x K0`` map is never held whole (its rows are sampled as they
  enter the kernel's ring of rows).
- ``"tensorflow"``: one traced graph for models of any sizes (filter counts
  unknown) that gathers the positions before they leave TensorFlow.

Both fold BatchNormalization away (:mod:`classes.prediction.folding`), so
their activity equals the Keras model's layer outputs
(:func:`classes.compact.tools.layer_activity`) within float32 rounding;
``tests/test_layer_activity.py`` checks each engine and instruction set.
"""

from __future__ import annotations

import numpy as np

from classes.data.preprocessing import check_images
from classes.prediction.folding import FoldedModel, fold_weights, weights_of
from classes.prediction.graph import positive_int, trunk_activities, trunk_signature
from classes.prediction.kernel import LAYER_SIDES, prepare_kernel_model
from classes.prediction.kernel_activity import activity_with_kernel, checked_positions
from classes.prediction.stacked import resolve_engine
from classes.runtime.quiet_tensorflow import tf

__all__ = ["layer_activity", "sampled_activity"]

_GRAPH_FUNCTION = None


def _graph_function():
    """Responses and the activity at given positions of one folded model, traced once for all sizes."""
    global _GRAPH_FUNCTION
    if _GRAPH_FUNCTION is None:
        spec = tf.TensorSpec
        signature = [spec((None, 112, 112, 3), tf.float32), trunk_signature(), spec((28, 28, None)), spec((1,)),
                     [spec((None,), tf.int64)] * len(LAYER_SIDES)]

        def forward(images, trunk, readout_map, readout_bias, positions):
            activities = trunk_activities(images, trunk)
            count = tf.shape(images)[0]
            responses = tf.reduce_sum(activities[-1] * readout_map, axis=(1, 2, 3)) + readout_bias
            cut = []
            for activity, chosen in zip(activities, positions, strict=True):
                flat = tf.reshape(activity, [count, -1, tf.shape(activity)[-1]])
                cut.append(tf.reshape(tf.gather(flat, chosen, axis=1), [count, -1]))
            return cut, responses

        _GRAPH_FUNCTION = tf.function(forward, input_signature=signature, jit_compile=False)
    return _GRAPH_FUNCTION


def _activity_with_graph(folded: FoldedModel, images: np.ndarray, positions, batch_size: int):
    """:func:`sampled_activity` on the TensorFlow engine."""
    # A skipped layer gathers one position, dropped afterwards.
    gathered = [tf.constant(np.zeros(1, np.int64) if chosen is None else chosen) for chosen in positions]
    arrays = [tf.constant(array) for array in folded.arrays]
    function = _graph_function()
    parts, responses = [[] for _ in positions], []
    for start in range(0, len(images), batch_size):
        cut, output = function(tf.constant(images[start : start + batch_size]), arrays[:14], arrays[14], arrays[15],
                               gathered)
        for layer, tensor in enumerate(cut):
            parts[layer].append(tensor.numpy())
        responses.append(output.numpy())
    features = [None if chosen is None else np.concatenate(part) for chosen, part in zip(positions, parts, strict=True)]
    return features, np.concatenate(responses).astype(np.float32)


def sampled_activity(model, images, positions, engine: str = "auto", batch_size: int = 16,
                     threads: int | None = None,
                     scratch: list[np.ndarray] | None = None) -> tuple[list[np.ndarray | None], np.ndarray]:
    """A compact model's responses and its layers' activity (after ReLU) at chosen positions.

    Args:
        model: a Keras compact model, its ``get_weights()`` list (36 arrays,
            e.g. :func:`classes.compact.architecture.load_weights_npy`) or a
            :class:`classes.prediction.folding.FoldedModel`.
        images: recentred ``(num_images, 112, 112, 3)``.
        positions: 5 entries, per layer (code layers 0-4; maps of
            112 x 112, 56 x 56, then 28 x 28) increasing flat indices
            ``row * side + column``, or None to skip the layer.
        engine: ``"auto"``, ``"kernel"`` or ``"tensorflow"``
            (:func:`classes.prediction.stacked.resolve_engine`).
        batch_size: images per kernel job or graph call.
        threads: kernel worker threads; None uses every CPU this process may use.
        scratch: None, or a list of 5 float32 arrays kept between calls (start
            with empty ones) that the kernel engine writes the features into,
            growing them when needed; the returned features are then views of
            them, overwritten by the next call with the same scratch.

    Returns:
        ``(features, responses)``: per layer float32 ``(num_images, P * K)``,
        position-major then filter (None for a skipped layer), and float32
        ``(num_images,)`` responses.

    Raises:
        ValueError: bad images, positions, sizes or weights; an unknown
            engine or one that cannot run here.
    """
    batch_size = positive_int(batch_size, "batch_size")
    engine = resolve_engine(engine)
    images = check_images(images, "recentered")
    positions = checked_positions(positions)
    folded = model if isinstance(model, FoldedModel) else fold_weights(weights_of(model))
    if engine == "kernel":
        features, responses = activity_with_kernel(prepare_kernel_model(folded), images, positions, batch_size,
                                                   threads, scratch)
        return features, responses[0]
    return _activity_with_graph(folded, images, positions, batch_size)


def layer_activity(model, images, layer: int, engine: str = "auto", batch_size: int = 16) -> np.ndarray:
    """The whole activity map of one layer (after ReLU), like :func:`classes.compact.tools.layer_activity`.

    Args:
        model, images, engine, batch_size: as for :func:`sampled_activity`.
        layer: code layer 0..4.

    Returns:
        float32 ``(num_images, side, side, K_layer)``, side 112, 56 or 28.

    Raises:
        ValueError: an unknown layer, or as :func:`sampled_activity`.
    """
    if layer not in range(len(LAYER_SIDES)):
        raise ValueError(f"layer must be 0..{len(LAYER_SIDES) - 1}; got {layer!r}.")
    side = LAYER_SIDES[layer]
    positions = [np.arange(side * side) if index == layer else None for index in range(len(LAYER_SIDES))]
    features, _ = sampled_activity(model, images, positions, engine, batch_size)
    return features[layer].reshape(len(features[layer]), side, side, -1)

"""What pruning needs to know about a model's activity, in one pass over images.

Pruning layer ``i`` (0..3) looks at the depthwise stage of layer ``i+1``:
``d_j``, the 5x5 depthwise filter of input filter ``j`` applied to layer
``i``'s activity, and the pointwise weights ``w_j`` (row ``j``, one weight per
output filter of layer ``i+1``). Layer ``i+1``'s pre-BN output is

    y = sum_j d_j w_j + bias,

so removing a set ``S`` of layer ``i``'s filters changes it by exactly
``-sum_{j in S} d_j w_j``, whose squared norm over images and positions is

    sum_{j, k in S} G_jk (w_j . w_k),    G_jk = sum over images, positions of d_j d_k.

The Gram matrix ``G`` and a few sums therefore answer every question the
binary search asks without another pass over the images. Layer 4 is pruned
by each filter's contribution to the output: its activity times its readout
map, summed over space, per image.

Depthwise stages use layer ``i``'s activity of the unpruned network; that is
what they see when layers are pruned last first, because pruning layer
``i+1`` and above never changes layers ``0..i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from classes.compact.architecture import NUM_LAYERS
from classes.compact.tools import nums_filters_of, readout_maps
from classes.data.preprocessing import check_images
from classes.runtime.quiet_tensorflow import keras, tf


@dataclass
class PruningStatistics:
    """Sums over images and positions, float64.

    Attributes:
        num_images: images seen.
        positions: per layer 1..4, ``num_images * height * width`` at that
            layer's output resolution (index 0 unused, 0).
        gram: per layer 1..4, ``(K_{i-1}, K_{i-1})`` Gram matrix of the
            depthwise outputs (index 0: None).
        depthwise_sum: per layer 1..4, ``(K_{i-1},)`` sums of the depthwise outputs.
        output_sum: per layer 1..4, ``(K_i,)`` sums of the pre-BN output.
        output_square_sum: per layer 1..4, ``(K_i,)`` sums of its squares.
        contributions: ``(num_images, K4)``: each layer-4 filter's activity
            times its readout map, summed over space.
        readout_bias: the readout's bias (output = contributions summed + bias).
    """

    num_images: int
    positions: list
    gram: list
    depthwise_sum: list
    output_sum: list
    output_square_sum: list
    contributions: np.ndarray
    readout_bias: float


def _statistics_function(model: keras.Model):
    """A tf.function from a batch to every per-batch sum pruning needs."""
    names = [f"layer{layer}_act" for layer in range(NUM_LAYERS)]
    names += [f"layer{layer}_conv" for layer in range(1, NUM_LAYERS)]
    inner = keras.Model(model.input, [model.get_layer(name).output for name in names])
    separables = [model.get_layer(f"layer{layer}_conv") for layer in range(1, NUM_LAYERS)]
    maps = tf.constant(np.transpose(readout_maps(model), (1, 2, 0)))

    @tf.function
    def function(batch):
        outputs = inner(batch, training=False)
        activities, convolutions = outputs[:NUM_LAYERS], outputs[NUM_LAYERS:]
        results = []
        for index, separable in enumerate(separables):
            strides = (1,) + tuple(separable.strides) + (1,)
            depthwise = tf.nn.depthwise_conv2d(
                activities[index], separable.depthwise_kernel, strides, "SAME"
            )
            flat = tf.reshape(depthwise, (-1, depthwise.shape[-1]))
            output = tf.reshape(convolutions[index], (-1, convolutions[index].shape[-1]))
            results.append((
                tf.matmul(flat, flat, transpose_a=True),
                tf.reduce_sum(flat, axis=0),
                tf.reduce_sum(output, axis=0),
                tf.reduce_sum(output * output, axis=0),
                tf.shape(flat)[0],
            ))
        contributions = tf.reduce_sum(activities[-1] * maps[None], axis=(1, 2))
        return results, contributions

    return function


def collect_pruning_statistics(
    model: keras.Model, images, batch_size: int = 32, show_progress: bool = False
) -> PruningStatistics:
    """One pass over held-out images, summing what pruning needs.

    Args:
        model: an unpruned compact model.
        images: recentred ``(num_images, 112, 112, 3)``, at least 2.
        batch_size: images per forward pass (layer 0's activity of a batch
            of 32 with 100 filters takes about 160 MB).

    Returns:
        A :class:`PruningStatistics`.
    """
    images = check_images(images, "recentered")
    if len(images) < 2:
        raise ValueError(f"Pruning statistics need at least 2 images; got {len(images)}.")
    counts = nums_filters_of(model)
    function = _statistics_function(model)
    positions = [0] * NUM_LAYERS
    gram = [None] + [np.zeros((counts[layer - 1],) * 2) for layer in range(1, NUM_LAYERS)]
    depthwise_sum = [None] + [np.zeros(counts[layer - 1]) for layer in range(1, NUM_LAYERS)]
    output_sum = [None] + [np.zeros(counts[layer]) for layer in range(1, NUM_LAYERS)]
    output_square_sum = [None] + [np.zeros(counts[layer]) for layer in range(1, NUM_LAYERS)]
    contributions = []
    for start in tqdm(range(0, len(images), batch_size), desc="pruning statistics",
                      unit="batch", disable=not show_progress):
        batch = tf.constant(images[start:start + batch_size], tf.float32)
        results, batch_contributions = function(batch)
        for layer, (gram_batch, sum_batch, out_sum, out_square, rows) in enumerate(results, start=1):
            gram[layer] += np.asarray(gram_batch, np.float64)
            depthwise_sum[layer] += np.asarray(sum_batch, np.float64)
            output_sum[layer] += np.asarray(out_sum, np.float64)
            output_square_sum[layer] += np.asarray(out_square, np.float64)
            positions[layer] += int(rows)
        contributions.append(np.asarray(batch_contributions, np.float64))
    bias = float(model.get_layer("Beta").get_weights()[1][0])
    return PruningStatistics(
        num_images=len(images),
        positions=positions,
        gram=gram,
        depthwise_sum=depthwise_sum,
        output_sum=output_sum,
        output_square_sum=output_square_sum,
        contributions=np.concatenate(contributions),
        readout_bias=bias,
    )


def depthwise_variance(statistics: PruningStatistics, layer: int) -> np.ndarray:
    """Variance over images and positions of each depthwise output of a layer (1..4)."""
    count = statistics.positions[layer]
    mean = statistics.depthwise_sum[layer] / count
    return np.maximum(np.diag(statistics.gram[layer]) / count - mean**2, 0.0)


def output_variance_total(statistics: PruningStatistics, layer: int, outputs) -> float:
    """``sum over images, positions and the chosen channels of (y_c - mean_c)^2``.

    ``y`` is layer ``layer``'s pre-BN output, ``mean_c`` channel ``c``'s mean
    over images and positions.
    """
    outputs = np.asarray(outputs, dtype=np.int64)
    count = statistics.positions[layer]
    sums = statistics.output_sum[layer][outputs]
    return float(np.sum(statistics.output_square_sum[layer][outputs] - sums**2 / count))


def removed_energy(statistics: PruningStatistics, layer: int, pointwise_rows, removed) -> float:
    """Squared norm, over images, positions, channels, of the removed inputs' share of the output.

    Args:
        layer: the separable layer 1..4 whose inputs are removed.
        pointwise_rows: ``(K_{layer-1}, num_kept_outputs)``: the pointwise
            weights restricted to the layer's kept output filters.
        removed: indices of removed input filters.
    """
    removed = np.asarray(removed, dtype=np.int64)
    if removed.size == 0:
        return 0.0
    rows = np.asarray(pointwise_rows, np.float64)[removed]
    return float(np.sum(statistics.gram[layer][np.ix_(removed, removed)] * (rows @ rows.T)))

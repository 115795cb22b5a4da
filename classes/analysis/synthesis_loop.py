"""The gradient-ascent loop of :mod:`classes.analysis.synthesis`, compiled once.

:func:`make_step_runner` compiles a chunk of steps of the recipe as one
``tf.function`` (a graph ``while`` loop), for a group of members stepped
side by side (several models, or one model's batch of images), so no
Python-level work happens per step; :class:`GradientAscent` runs the chunks
with the image blur between them and keeps the best images. For compact
models :func:`compact_step_runner` takes the weights as arguments
(:mod:`classes.analysis.compact_graph`), so one trace serves every model;
other Keras models get a runner of their own. Also the separable Gaussian
blur of the recipe (:func:`gaussian_blur`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.analysis.compact_graph import compact_forward, weights_signature
from classes.data.preprocessing import RGB_MEANS
from classes.runtime.quiet_tensorflow import tf

__all__ = ["GradientAscent", "compact_step_runner", "gaussian_blur", "gaussian_kernel_1d", "make_step_runner",
           "respond_compact"]

_RMS_EPSILON = 1e-5
_LOW = tf.constant(-RGB_MEANS, dtype=tf.float32)
_HIGH = tf.constant(255.0 - RGB_MEANS, dtype=tf.float32)


def gaussian_kernel_1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """A normalised 1-D Gaussian, radius ``int(truncate * sigma + 0.5)``.

    The same kernel as ``scipy.ndimage.gaussian_filter`` uses.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(images, sigma: float):
    """Blurs each channel of a batch over space with a Gaussian.

    Edges are mirrored (``scipy.ndimage`` mode ``"reflect"``), so the result
    equals ``gaussian_filter(images, sigma=(0, sigma, sigma, 0))``.

    Args:
        images: float32 tensor or array ``(N, H, W, C)``.
        sigma: Gaussian s.d. in pixels.

    Returns:
        float32 tensor ``(N, H, W, C)``.
    """
    images = tf.convert_to_tensor(images, dtype=tf.float32)
    kernel = gaussian_kernel_1d(sigma)
    radius = (len(kernel) - 1) // 2
    channels = images.shape[-1]
    if radius > min(images.shape[1], images.shape[2]) - 1:
        raise ValueError(f"sigma {sigma} is too large for images of size {images.shape[1:3]}.")
    # Separable: one pass along rows, one along columns, each a depthwise conv.
    rows = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, channels, 1)))
    columns = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, channels, 1)))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, columns, [1, 1, 1, 1], "VALID")


def _gradient_step(respond, images, best_images, best_values, sign, step_size, gradient_sigma, grayscale):
    """One step of the recipe on recentred images: ``(images, best_images, best_values, values)``."""
    values = respond(images)
    # Each image's output depends on that image only (BN in inference
    # mode), so the gradient of the sum is every per-image gradient.
    # Graph-mode tf.gradients, because a GradientTape inside a graph
    # while loop returns None for the loop variable (TF 2.21).
    gradient = tf.gradients(tf.reduce_sum(values), images)[0]
    improved = sign * values > best_values
    best_images = tf.where(improved[:, None, None, None], images, best_images)
    best_values = tf.where(improved, sign * values, best_values)
    rms = tf.sqrt(tf.reduce_mean(tf.square(gradient), axis=[1, 2, 3], keepdims=True))
    gradient = gradient / (rms + _RMS_EPSILON)
    if grayscale:
        # Project onto the gray direction: equal change in every channel.
        gradient = tf.repeat(tf.reduce_mean(gradient, axis=-1, keepdims=True), 3, axis=-1)
    gradient = gaussian_blur(gradient, gradient_sigma)
    images = tf.clip_by_value(images + sign * step_size * gradient, _LOW, _HIGH)
    return images, best_images, best_values, values


def make_step_runner(respond, group_size: int, sign: float, step_size: float, gradient_sigma: float,
                     grayscale: bool, input_signature=None):
    """Compiles the synthesis loop for a group of members (models, or one model).

    Args:
        respond: ``(recentred images, weights) -> responses (N,)``, the
            response of one member given its ``weights`` (anything: a
            closure over a Keras model ignores them).
        group_size: members stepped together; their steps are independent
            operations of one graph, which TensorFlow runs side by side.
        input_signature: None (trace per argument structure) or the
            signature of ``run_steps``' five arguments.

    Returns:
        A ``tf.function`` ``(images, best_images, best_values, num_steps,
        weights) -> (images, best_images, best_values, trajectories)``, each
        a list with one entry per member, running ``num_steps`` gradient
        steps in a graph loop on recentred images. ``best_values`` holds
        ``sign * response``, so larger is better in both directions.
    """
    sign = tf.constant(sign, tf.float32)

    def run_steps(images, best_images, best_values, num_steps, weights):
        trajectories = [tf.TensorArray(tf.float32, size=num_steps) for _ in range(group_size)]
        for step in tf.range(num_steps):
            stepped = [
                _gradient_step(lambda batch, member=member: respond(batch, weights[member]), images[member],
                               best_images[member], best_values[member], sign, step_size, gradient_sigma, grayscale)
                for member in range(group_size)
            ]
            images = [item[0] for item in stepped]
            best_images = [item[1] for item in stepped]
            best_values = [item[2] for item in stepped]
            trajectories = [trajectory.write(step, item[3]) for trajectory, item in zip(trajectories, stepped, strict=True)]
        return images, best_images, best_values, [trajectory.stack() for trajectory in trajectories]

    return tf.function(run_steps, input_signature=input_signature, reduce_retracing=True)


_COMPACT_RUNNERS: dict[tuple, object] = {}


def respond_compact(images, weights):
    """A compact model's responses ``(N,)`` from its weights (:func:`classes.analysis.compact_graph.compact_forward`)."""
    return compact_forward(images, weights)[:, 0]


def compact_step_runner(group_size: int, sign: float, step_size: float, gradient_sigma: float, grayscale: bool):
    """:func:`make_step_runner` for compact models given by their weights, traced once per settings and group size."""
    key = (group_size, sign, step_size, gradient_sigma, grayscale)
    if key not in _COMPACT_RUNNERS:
        images = [tf.TensorSpec((None, 112, 112, 3), tf.float32)] * group_size
        values = [tf.TensorSpec((None,), tf.float32)] * group_size
        signature = [images, images, values, tf.TensorSpec((), tf.int32), [weights_signature()] * group_size]
        _COMPACT_RUNNERS[key] = make_step_runner(respond_compact, group_size, sign, step_size, gradient_sigma,
                                                 grayscale, signature)
    return _COMPACT_RUNNERS[key]


@dataclass
class GradientAscent:
    """The loop around ``run_steps``: chunks of ``blur_every`` steps in the graph, the image blur between them."""

    respond: object
    run_steps: object
    sign: float
    num_steps: int
    blur_every: int
    blur_sigma: float
    progress: object

    def run(self, weights, starts) -> list[tuple]:
        """Climbs from raw ``starts`` (one batch per member, the members' ``weights``).

        Returns:
            Per member ``(initial_responses, raw best images float32 in
            0..255, their responses, trajectory (num_steps, num_images))``.
        """
        images = [tf.constant(start - RGB_MEANS) for start in starts]
        initial = [np.asarray(self.respond(batch, member)) for batch, member in zip(images, weights, strict=True)]
        best, trajectories = self._climb(weights, images, [self.sign * values for values in initial])
        results = []
        for member, best_images in enumerate(best):
            raw_best = np.clip(best_images.numpy() + RGB_MEANS, 0.0, 255.0).astype(np.float32)
            responses = np.asarray(self.respond(tf.constant(raw_best - RGB_MEANS), weights[member]))
            results.append((initial[member].astype(np.float32), raw_best, responses, trajectories[member]))
        return results

    def _climb(self, weights, images, initial_values):
        # Returns per member the best recentred images (tensor) and the
        # trajectory, float32 (num_steps, num_images).
        best_images = list(images)
        best_values = [tf.constant(values) for values in initial_values]
        chunks = []
        done = 0
        while done < self.num_steps:
            chunk = min(self.blur_every, self.num_steps - done)
            images, best_images, best_values, trajectories = self.run_steps(
                images, best_images, best_values, tf.constant(chunk, tf.int32), weights)
            chunks.append([trajectory.numpy() for trajectory in trajectories])
            done += chunk
            if done % self.blur_every == 0:
                images = [tf.clip_by_value(gaussian_blur(batch, self.blur_sigma), _LOW, _HIGH) for batch in images]
            if self.progress is not None:
                self.progress.update(chunk)
        final = []
        for member, batch in enumerate(images):
            # The image after the last update has not been scored yet.
            improved = self.sign * self.respond(batch, weights[member]) > best_values[member]
            final.append(tf.where(improved[:, None, None, None], batch, best_images[member]))
        trajectories = [np.concatenate([chunk[member] for chunk in chunks]).astype(np.float32)
                        for member in range(len(images))]
        return final, trajectories

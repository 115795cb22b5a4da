"""One training step of a compact model through the compiled kernel ``train_kernel.c``.

:class:`KernelStep` computes, for a batch of recentred images and target
responses, the mean squared error, the gradient of every trainable weight
and the batch statistics of every BatchNormalization, in training mode, as
Keras does for ``model.train_on_batch`` (SPEC section 2: BN epsilon 1e-3,
batch statistics with the biased variance). The optimizer step lives in
:class:`classes.training.trainers.KernelTrainer`.

The C file runs the step in phases (see its top comment); between them this
module turns batch sums into BatchNormalization coefficients. Layer 0 is
special: its batch statistics and the BatchNormalization terms of its kernel
gradient come from the patch moments of the batch,

    S = sum over positions of patch (75,),  C = sum of patch patch^T (75, 75),

(a patch is the 5x5x3 input window of one output pixel, Keras's kernel
order) with q = W^T patch the convolution without bias over N positions:

    mean(q) = W^T S / N,   E[q^2] = diag(W^T C W) / N,
    dW = (gamma / sigma) (G - mean(dy) S - mean(dy xhat) H),
    H = sum of patch xhat^T = (C W - S mean(q)^T) / sigma,

where G = sum of patch dy^T is what the kernel's backward pass accumulates
and dy is the loss gradient at layer 0's BatchNormalization output. The
gradient of layer 0's convolution bias is exactly 0 (the batch mean removes
it). :func:`patch_moments` assembles S and C from the lag sums the kernel
computes (:mod:`classes.training.patch_moments`).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from classes.compact.architecture import (
    BN_EPSILON,
    NUM_LAYERS,
    WEIGHTS_PER_MODEL,
    first_weight_index,
)
from classes.prediction.kernel import padded_count, zero_padded
from classes.runtime.native import compile_and_load
from classes.training.patch_moments import patch_moments

SOURCE = Path(__file__).with_name("train_kernel.c")
SIDES = (112, 56, 28, 28, 28)
_library_cache: dict[str | None, ctypes.CDLL] = {}


class NetworkStruct(ctypes.Structure):
    """Mirrors ``network_t`` in train_kernel.c."""

    _fields_ = [
        ("channels", ctypes.c_int * 5),
        ("kernel0", ctypes.c_void_p),
        ("scale", ctypes.c_void_p * 5),
        ("shift", ctypes.c_void_p * 5),
        ("depthwise", ctypes.c_void_p * 4),
        ("pointwise", ctypes.c_void_p * 4),
        ("pointwise_t", ctypes.c_void_p * 4),
        ("bias", ctypes.c_void_p * 4),
        ("readout", ctypes.c_void_p),
        ("readout_bias", ctypes.c_float),
        ("threads", ctypes.c_int),
    ]


def load_training_library(isa: str | None = None) -> ctypes.CDLL:
    """The compiled training kernel (built on first use); NativeUnavailable says why it cannot run."""
    if isa not in _library_cache:
        library = compile_and_load(SOURCE, "train_kernel", isa=isa, openmp=True, contract=True)
        pointer, size = ctypes.c_void_p, ctypes.c_long
        library.train_first_work_floats.restype = size
        library.train_backward_first_work_floats.restype = size
        library.train_separable_work_floats.restype = size
        library.train_separable_work_floats.argtypes = [ctypes.c_int, pointer]
        library.train_lag_work_floats.restype = size
        library.train_lag_sum_count.restype = size
        _library_cache[isa] = library
    return _library_cache[isa]


def pointer(array: np.ndarray) -> int:
    """The address of a C-contiguous array's data, for ctypes."""
    return array.ctypes.data


def trainable_indices() -> list[int]:
    """Positions in a compact model's ``get_weights()`` list of its trainable arrays (Keras's order)."""
    indices = [0, 1, 2, 3]
    for layer in range(1, NUM_LAYERS):
        offset = first_weight_index(layer)
        indices += [offset, offset + 1, offset + 2, offset + 3, offset + 4]
    return indices + [WEIGHTS_PER_MODEL - 2, WEIGHTS_PER_MODEL - 1]


def batch_norm_indices(layer: int) -> tuple[int, int, int, int]:
    """Positions of (gamma, beta, moving_mean, moving_variance) of layer ``layer``."""
    # gamma follows layer 0's kernel and bias, a separable layer's depthwise, pointwise and bias
    first = first_weight_index(layer) + (2 if layer == 0 else 3)
    return first, first + 1, first + 2, first + 3


class KernelStep:
    """Loss, gradients and batch statistics of one training step (see the module docstring).

    ``KernelStep.library_check()`` raises NativeUnavailable (with the reason)
    where the compiled kernel cannot run.

    Args:
        nums_filters: ``[K0..K4]`` of the student.
        batch_size: the largest batch a step will get (buffers are sized for it).
        isa: instruction set (:data:`classes.runtime.native.ISAS`); None picks the best.
        threads: OpenMP threads; None leaves the default (every core).
    """

    @staticmethod
    def library_check(isa: str | None = None) -> None:
        """Builds or loads the kernel; NativeUnavailable says why it cannot run here."""
        load_training_library(isa)

    def __init__(self, nums_filters, batch_size: int, isa: str | None = None, threads: int | None = None):
        self.library = load_training_library(isa)
        self.width = int(self.library.train_vector_width())
        self.counts = [int(count) for count in nums_filters]
        self.channels = [padded_count(count, self.width) for count in self.counts]
        self.batch_size = int(batch_size)
        # This step's own thread count (every phase gets it): results do not depend on it.
        self.threads = int(threads) if threads is not None else int(self.library.train_threads())
        if self.threads < 1:
            raise ValueError(f"threads must be a positive integer; got {threads!r}.")
        self._allocate()

    def _allocate(self) -> None:
        batch, channels = self.batch_size, self.channels
        planes = [side * side for side in SIDES]
        self.d = {layer: np.zeros((batch, planes[layer], channels[layer - 1]), np.float32) for layer in range(1, 5)}
        self.z = {layer: np.zeros((batch, planes[layer], channels[layer]), np.float32) for layer in range(1, 5)}
        self.dy = {layer: np.zeros((batch, planes[layer], channels[layer]), np.float32) for layer in range(1, 5)}
        self.dd1 = np.zeros((batch, planes[1], channels[0]), np.float32)
        library, counts = self.library, (ctypes.c_int * 5)(*channels)
        work = [library.train_first_work_floats(channels[0]), library.train_backward_first_work_floats(channels[0]),
                library.train_lag_work_floats()]
        work += [library.train_separable_work_floats(layer, counts) for layer in range(1, 5)]
        self.per_thread = int(max(work))
        self.work = np.zeros(self.threads * self.per_thread, np.float32)
        self.lag_count = int(library.train_lag_sum_count())
        # Per-image sums and gradients, reduced in image order by the kernel (deterministic).
        self.image_sums = np.zeros(batch * max(self.lag_count, 2 * max(channels)), np.float64)
        largest = max(max(channels) ** 2 + max(channels) + 25 * max(channels), 75 * channels[0] + 25 * channels[0],
                      planes[4] * channels[4])
        self.image_grads = np.zeros(batch * largest, np.float32)
        self.outputs = np.zeros(batch, np.float32)
        self.scale = [np.zeros(channel, np.float32) for channel in channels]
        self.shift = [np.zeros(channel, np.float32) for channel in channels]
        self.struct = NetworkStruct()
        self.struct.channels = counts
        self.struct.threads = self.threads

    def load_weights(self, weights) -> None:
        """Takes the student's 36 ``get_weights()`` arrays (Keras order) for the next steps."""
        channels, counts = self.channels, self.counts
        self.weights = [np.asarray(array, np.float32) for array in weights]
        kernel0 = self.weights[0].reshape(75, counts[0])
        self.kernel0 = zero_padded(kernel0, (75, channels[0]))
        self.depthwise, self.pointwise, self.pointwise_t, self.bias = [], [], [], []
        for layer in range(1, 5):
            offset = first_weight_index(layer)
            previous, current = channels[layer - 1], channels[layer]
            self.depthwise.append(zero_padded(self.weights[offset].reshape(25, -1), (25, previous)))
            pointwise = zero_padded(self.weights[offset + 1].reshape(counts[layer - 1], counts[layer]), (previous, current))
            self.pointwise.append(pointwise)
            self.pointwise_t.append(np.ascontiguousarray(pointwise.T))
            self.bias.append(zero_padded(self.weights[offset + 2], (current,)))
        self.readout = zero_padded(self.weights[WEIGHTS_PER_MODEL - 2].reshape(784, counts[4]), (784, channels[4]))
        struct = self.struct
        struct.kernel0 = pointer(self.kernel0)
        for index in range(5):
            struct.scale[index], struct.shift[index] = pointer(self.scale[index]), pointer(self.shift[index])
        for index in range(4):
            struct.depthwise[index] = pointer(self.depthwise[index])
            struct.pointwise[index] = pointer(self.pointwise[index])
            struct.pointwise_t[index] = pointer(self.pointwise_t[index])
            struct.bias[index] = pointer(self.bias[index])
        struct.readout = pointer(self.readout)
        struct.readout_bias = float(self.weights[35][0])

    def _call(self, name: str, *arguments) -> None:
        """Calls a kernel function: arrays and None as pointers, ints as C ints (the C signatures)."""
        converted = []
        for argument in arguments:
            if isinstance(argument, np.ndarray):
                argument = ctypes.c_void_p(argument.ctypes.data)
            elif argument is None:
                argument = ctypes.c_void_p(None)
            elif isinstance(argument, (int, np.integer)) and not isinstance(argument, bool):
                argument = ctypes.c_int(int(argument))
            converted.append(argument)
        getattr(self.library, name)(*converted)

    def _set_batch_norm(self, layer: int, mean: np.ndarray, variance: np.ndarray, offset: np.ndarray) -> None:
        """scale = gamma / sigma; shift = beta - scale * (mean - offset); offset is what z leaves out."""
        gamma_index, beta_index, _, _ = batch_norm_indices(layer)
        count = self.counts[layer]
        sigma = np.sqrt(variance + BN_EPSILON)
        scale = self.weights[gamma_index].astype(np.float64) / sigma
        self.scale[layer][:count] = scale
        self.shift[layer][:count] = self.weights[beta_index] - scale * (mean - offset)

    def _first_statistics(self, images: np.ndarray) -> dict:
        """Layer 0's batch mean and variance from the patch moments (no pass over layer 0)."""
        batch = len(images)
        lag_sums = np.zeros(self.lag_count, np.float64)
        self._call("train_patch_lag_sums", images, batch, lag_sums, self.work, ctypes.c_long(self.per_thread),
                   self.image_sums, self.threads)
        first, second = patch_moments(lag_sums, images)
        kernel = self.weights[0].reshape(75, -1).astype(np.float64)
        count = batch * SIDES[0] ** 2
        mean_q = kernel.T @ first / count
        variance = np.einsum("kc,kl,lc->c", kernel, second, kernel) / count - mean_q**2
        bias = self.weights[1].astype(np.float64)
        self._set_batch_norm(0, mean_q + bias, variance, bias)
        return {"first": first, "second": second, "kernel": kernel, "mean_q": mean_q, "variance": variance,
                "count": count}

    def _statistics(self, sums: np.ndarray, layer: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        channels, used = self.channels[layer], self.counts[layer]
        mean = sums[:used] / count
        variance = sums[channels:channels + used] / count - mean**2
        return mean, variance

    def forward(self, images: np.ndarray) -> dict:
        """Outputs and batch statistics of a batch; fills the activations the backward pass reads."""
        batch = len(images)
        layer0 = self._first_statistics(images)
        statistics = {0: (layer0["mean_q"] + self.weights[1], layer0["variance"])}
        sums = np.zeros(2 * max(self.channels), np.float64)
        self._call("train_forward_first", ctypes.byref(self.struct), images, batch, self.d[1], self.z[1], sums,
                   self.work, ctypes.c_long(self.per_thread), self.image_sums)
        for layer in range(1, 5):
            count = batch * SIDES[layer] ** 2
            mean, variance = self._statistics(sums, layer, count)
            statistics[layer] = (mean, variance)
            self._set_batch_norm(layer, mean, variance, np.zeros_like(mean))
            if layer < 4:
                sums = np.zeros(2 * max(self.channels), np.float64)
                self._call("train_forward_separable", ctypes.byref(self.struct), layer + 1, batch, self.z[layer],
                           self.d[layer + 1], self.z[layer + 1], sums, self.work, ctypes.c_long(self.per_thread),
                           self.image_sums)
        self._call("train_forward_readout", ctypes.byref(self.struct), batch, self.z[4], self.outputs)
        return {"outputs": self.outputs[:batch].copy(), "statistics": statistics, "layer0": layer0}

    def _batch_norm_backward(self, layer: int, sums: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                             count: int) -> dict:
        """BN backward from sums of dy and dy * z: dz = scale * dy + u + w * z (u, w padded)."""
        channels, used = self.channels[layer], self.counts[layer]
        gamma_index, _, _, _ = batch_norm_indices(layer)
        sigma = np.sqrt(variance + BN_EPSILON)
        scale = self.weights[gamma_index].astype(np.float64) / sigma
        sum_dy = sums[:used]
        sum_dy_xhat = (sums[channels:channels + used] - mean * sum_dy) / sigma
        first, second = sum_dy / count, sum_dy_xhat / count
        u = np.zeros(channels, np.float32)
        w = np.zeros(channels, np.float32)
        u[:used] = -scale * first + scale * second * mean / sigma
        w[:used] = -scale * second / sigma
        return {"gamma": sum_dy_xhat, "beta": sum_dy, "u": u, "w": w, "first": first, "second": second,
                "scale": scale, "sigma": sigma}

    def _separable_backward(self, layer: int, batch: int, sums: np.ndarray, statistics: dict,
                            gradients: dict) -> np.ndarray:
        """Gradients of layer ``layer`` (1-4); returns the sums of dy and dy * z of the layer below."""
        counts, channels = self.counts, self.channels
        mean, variance = statistics[layer]
        norm = self._batch_norm_backward(layer, sums, mean, variance, batch * SIDES[layer] ** 2)
        gamma_index, beta_index, _, _ = batch_norm_indices(layer)
        gradients[gamma_index], gradients[beta_index] = norm["gamma"], norm["beta"]
        pointwise = np.zeros((channels[layer - 1], channels[layer]), np.float32)
        bias = np.zeros(channels[layer], np.float32)
        depthwise = np.zeros((25, channels[layer - 1]), np.float32)
        below = np.zeros(2 * max(channels), np.float64)
        previous_z = self.z[layer - 1] if layer >= 2 else None
        previous_dy = self.dy[layer - 1] if layer >= 2 else None
        self._call("train_backward_separable", ctypes.byref(self.struct), layer, batch, self.dy[layer],
                   self.z[layer], norm["u"], norm["w"], self.d[layer], previous_z, pointwise, bias, depthwise,
                   self.dd1, previous_dy, below, self.work, ctypes.c_long(self.per_thread), self.image_sums,
                   self.image_grads)
        offset = first_weight_index(layer)
        gradients[offset + 1] = pointwise[:counts[layer - 1], :counts[layer]].reshape(1, 1, counts[layer - 1], -1)
        gradients[offset + 2] = bias[:counts[layer]]
        if layer >= 2:
            gradients[offset] = depthwise[:, :counts[layer - 1]].reshape(5, 5, -1, 1)
        return below

    def _first_backward(self, images: np.ndarray, forward: dict, gradients: dict) -> None:
        """Layer 0's gradients (and layer 1's depthwise kernel's) from one pass over layer 0."""
        batch, counts, channels = len(images), self.counts, self.channels
        moments = np.zeros((75, channels[0]), np.float32)
        depthwise = np.zeros((25, channels[0]), np.float32)
        sums = np.zeros(2 * max(channels), np.float64)
        self._call("train_backward_first", ctypes.byref(self.struct), images, batch, self.dd1, moments, depthwise,
                   sums, self.work, ctypes.c_long(self.per_thread), self.image_sums, self.image_grads)
        gradients[6] = depthwise[:, :counts[0]].reshape(5, 5, -1, 1)
        layer0 = forward["layer0"]
        norm = self._batch_norm_backward(0, sums, layer0["mean_q"], layer0["variance"], layer0["count"])
        kernel, first, second = layer0["kernel"], layer0["first"], layer0["second"]
        patch_xhat = (second @ kernel - np.outer(first, layer0["mean_q"])) / norm["sigma"]
        accumulated = moments[:, :counts[0]].astype(np.float64)
        kernel_gradient = norm["scale"] * (accumulated - np.outer(first, norm["first"]) - norm["second"] * patch_xhat)
        gradients[0] = kernel_gradient.reshape(self.weights[0].shape)
        gradients[1] = np.zeros(counts[0])  # the batch mean removes the bias: its gradient is 0
        gradients[2], gradients[3] = norm["gamma"], norm["beta"]

    def backward(self, images: np.ndarray, d_outputs: np.ndarray, forward: dict) -> dict:
        """Gradients ``{get_weights() index: array}`` of every trainable array, given d loss / d output."""
        batch, channels = len(images), self.channels
        d_outputs = np.ascontiguousarray(d_outputs, np.float32)
        readout = np.zeros((784, channels[4]), np.float32)
        sums = np.zeros(2 * max(channels), np.float64)
        self._call("train_backward_readout", ctypes.byref(self.struct), batch, self.z[4], d_outputs, readout,
                   self.dy[4], sums, self.work, ctypes.c_long(self.per_thread), self.image_sums, self.image_grads)
        gradients = {34: readout[:, :self.counts[4]].reshape(-1, 1), 35: np.array([d_outputs.sum()])}
        for layer in range(4, 0, -1):
            sums = self._separable_backward(layer, batch, sums, forward["statistics"], gradients)
        self._first_backward(images, forward, gradients)
        return {index: np.asarray(value, np.float32) for index, value in gradients.items()}

    def compute(self, images, targets) -> dict:
        """Mean squared error, gradients and batch statistics of one step (nothing is updated).

        Args:
            images: recentred float32 ``(batch, 112, 112, 3)``, batch <= ``batch_size``.
            targets: ``(batch,)`` teacher responses.

        Returns:
            ``{"loss", "outputs", "gradients": {index: array}, "statistics": {layer: (mean, variance)}}``.
        """
        images = np.ascontiguousarray(images, np.float32)
        targets = np.asarray(targets, np.float64).reshape(-1)
        if images.ndim != 4 or images.shape[1:] != (112, 112, 3) or not 1 <= len(images) <= self.batch_size:
            raise ValueError(f"images must be (1..{self.batch_size}, 112, 112, 3); got {images.shape}.")
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets.")
        forward = self.forward(images)
        errors = forward["outputs"].astype(np.float64) - targets
        gradients = self.backward(images, 2.0 * errors / len(images), forward)
        return {"loss": float(np.mean(errors**2)), "outputs": forward["outputs"], "gradients": gradients,
                "statistics": forward["statistics"]}

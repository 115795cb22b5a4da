"""Training a compact model with PyTorch (a GPU, or the CPU), with Keras's semantics.

The same step as the trainers of :mod:`classes.training.trainers` (SPEC
section 2; the paper's Keras ``fit``), on the PyTorch port of
:mod:`classes.compact.torch_model`, without TensorFlow or Keras, for the
machines that have PyTorch and a GPU but no TensorFlow:

- mean squared error over the batch; BatchNormalization in training mode
  (batch statistics, epsilon 1e-3) with moving statistics updated as
  ``moving = 0.99 moving + 0.01 batch`` (PyTorch's ``momentum=0.01``);
  PyTorch's moving variance takes the batch variance unbiased (times
  ``n / (n - 1)``, ``n`` = images x positions >= 50,176 for a batch of 64),
  Keras's the biased one: the moving variances differ by under 2e-5
  relative;
- Adam with Keras's update ``w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``
  (beta 0.9 and 0.999, eps 1e-7): PyTorch adds eps after the bias
  correction of ``sqrt(v)``, so each step passes it ``eps / sqrt(1 - b2^t)``,
  which makes the two updates equal.

Weights come in and go out as Keras ``get_weights()`` lists (36 arrays,
moving statistics included), so a model trained here loads into the Keras
model and into every other engine.

Example::

    trainer = TorchTrainer(initial_weights, learning_rate=1e-4, device="cuda")
    loss = trainer.train_step(images, targets)   # NCHW float tensors on the device
    weights = trainer.get_weights()
"""

from __future__ import annotations

import math

import numpy as np

from classes.compact.architecture import nums_filters_from_weights
from classes.compact.torch_conversion import (
    keras_weights_from_state_dict,
    state_dict_from_keras_weights,
    torch_model_from_keras_weights,
)
from classes.compact.torch_model import require_torch

BETA_1, BETA_2, EPSILON, MOMENTUM = 0.9, 0.999, 1e-7, 0.99


def set_tf32(enabled: bool) -> str:
    """Allows or forbids TF32 in float32 convolutions and matrix products; returns the setting now in force.

    PyTorch allows TF32 in cuDNN convolutions by default; this project's
    float32 training forbids it unless asked. Uses the ``fp32_precision``
    settings where PyTorch has them (2.9 and later: mixing them with the
    older ``allow_tf32`` flags is an error), else the older flags.
    """
    torch = require_torch()
    convolutions = getattr(torch.backends.cudnn, "conv", None)
    if convolutions is not None and hasattr(convolutions, "fp32_precision"):
        precision = "tf32" if enabled else "ieee"
        convolutions.fp32_precision = precision
        torch.backends.cuda.matmul.fp32_precision = precision
        return f"conv {convolutions.fp32_precision}, matmul {torch.backends.cuda.matmul.fp32_precision}"
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    return f"cudnn allow_tf32 {torch.backends.cudnn.allow_tf32}, matmul allow_tf32 {torch.backends.cuda.matmul.allow_tf32}"


class TorchTrainer:
    """Adam on a PyTorch compact model (see the module docstring).

    Args:
        weights: the student's 36 ``get_weights()`` arrays.
        learning_rate: Adam's learning rate.
        device: a torch device (``"cuda"``, ``"cpu"``).
        fused: PyTorch's fused Adam (one kernel for every array); None: on CUDA only.

    Attributes:
        model: the :class:`classes.compact.torch_model.CompactModelTorch`,
            in training mode.
        iterations: steps taken.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: weights that are not a compact model's.
    """

    engine = "torch"

    def __init__(self, weights, learning_rate: float = 1e-4, device="cpu", fused: bool | None = None):
        torch = require_torch()
        self.device = torch.device(device)
        self.model = torch_model_from_keras_weights(list(weights)).to(self.device)
        for module in self.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0 - MOMENTUM
        self.model.train()
        self.learning_rate = float(learning_rate)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.learning_rate, betas=(BETA_1, BETA_2),
                                          eps=EPSILON,
                                          fused=self.device.type == "cuda" if fused is None else fused)
        self.iterations = 0

    def set_learning_rate_factor(self, factor: float) -> None:
        """Later steps use ``learning_rate * factor`` (a schedule's)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * float(factor)

    def learning_rate_now(self) -> float:
        """The learning rate the next step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def nums_filters(self) -> list[int]:
        return list(self.model.nums_filters)

    def train_step(self, images, targets):
        """One step on a batch.

        Args:
            images: float tensor ``(N, 3, 112, 112)`` on the device, recentred.
            targets: float tensor ``(N,)`` on the device.

        Returns:
            The loss before the update, a 0-d tensor on the device (read it
            with ``float()`` when needed: that waits for the device).
        """
        self.iterations += 1
        for group in self.optimizer.param_groups:
            group["eps"] = EPSILON / math.sqrt(1.0 - BETA_2**self.iterations)
        outputs = self.model(images)[:, 0]
        loss = ((outputs - targets) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def predict(self, images, batch_size: int = 500):
        """The model's responses in inference mode (moving statistics): a float tensor ``(N,)``."""
        torch = require_torch()
        self.model.eval()
        try:
            with torch.no_grad():
                return torch.cat([self.model(images[start:start + batch_size])[:, 0]
                                  for start in range(0, len(images), batch_size)])
        finally:
            self.model.train()

    def get_weights(self) -> list[np.ndarray]:
        """The 36 float32 arrays of Keras's ``get_weights()`` order, moving statistics included."""
        return keras_weights_from_state_dict(self.model.state_dict())

    def set_weights(self, weights) -> None:
        """Replaces the weights in place (same filter counts); Adam's state is kept.

        Raises:
            ValueError: other filter counts.
        """
        if nums_filters_from_weights(weights) != self.nums_filters:
            raise ValueError(f"set_weights: filter counts {nums_filters_from_weights(weights)} differ from "
                             f"the trainer's {self.nums_filters}.")
        # load_state_dict copies into the existing tensors, which Adam's state refers to.
        self.model.load_state_dict(state_dict_from_keras_weights(list(weights)), strict=True)

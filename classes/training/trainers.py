"""Training a compact model on (image, target response) batches: two engines, one interface.

A trainer holds a student's weights (Keras ``get_weights()`` order, SPEC
section 2) and Adam's state, and takes one step per batch: mean squared
error, BatchNormalization in training mode (batch statistics; moving
statistics updated with momentum 0.99), Adam (learning rate 1e-4 in the
paper, beta 0.9 and 0.999, epsilon 1e-7, as Keras's defaults).

- :class:`KernelTrainer`: the compiled training step of
  :mod:`classes.training.kernel_step` plus Adam in NumPy. Several times
  faster than Keras on a CPU (``benchmarks/bench_train.py``).
- :class:`KerasTrainer`: ``model.train_on_batch`` of a compiled Keras model:
  the reference, and the engine on a GPU.

:func:`make_trainer` picks one: ``"auto"`` takes Keras when TensorFlow sees a
GPU, else the kernel where it can run here, else Keras. Both save and load
their whole state (weights, moving statistics, Adam's moments and step
count) as one ``.npz`` file, so a run resumes exactly on either engine.
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import WEIGHTS_PER_MODEL, nums_filters_from_weights
from classes.compact.model import build_compact_model
from classes.runtime.native import NativeUnavailable
from classes.runtime.outputs import write_atomically
from classes.runtime.quiet_tensorflow import keras, tf
from classes.training.kernel_step import KernelStep, batch_norm_indices, trainable_indices

__all__ = [
    "ENGINES",
    "KerasTrainer",
    "KernelTrainer",
    "load_trainer_state",
    "make_trainer",
    "resolve_trainer_engine",
    "save_trainer_state",
]

ENGINES = ("auto", "kernel", "keras")
BETA_1, BETA_2, EPSILON, MOMENTUM = 0.9, 0.999, 1e-7, 0.99


def _check_weights(weights) -> list[np.ndarray]:
    if not isinstance(weights, (list, tuple)) or len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(f"A compact model has {WEIGHTS_PER_MODEL} weight arrays (get_weights() order); "
                         f"got {len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__}.")
    return [np.array(array, dtype=np.float32) for array in weights]


class KernelTrainer:
    """Adam on the compiled kernel's gradients (see the module docstring).

    Args:
        weights: the student's 36 ``get_weights()`` arrays (copied).
        learning_rate: Adam's learning rate.
        batch_size: the largest batch a step will get.
        isa: instruction set of the kernel; None picks the best.
        threads: kernel threads; None uses every core.

    Raises:
        NativeUnavailable: the compiled kernel cannot run here (the message says why).
        ValueError: weights that are not a compact model's.
    """

    engine = "kernel"

    def __init__(self, weights, learning_rate: float = 1e-4, batch_size: int = 64, isa: str | None = None,
                 threads: int | None = None):
        self.weights = _check_weights(weights)
        self.learning_rate, self.batch_size = float(learning_rate), int(batch_size)
        self.step = KernelStep(nums_filters_from_weights(self.weights), batch_size, isa=isa, threads=threads)
        self.moments = {index: np.zeros_like(self.weights[index]) for index in trainable_indices()}
        self.velocities = {index: np.zeros_like(self.weights[index]) for index in trainable_indices()}
        self.iterations = 0
        self.learning_rate_factor = 1.0

    def set_learning_rate_factor(self, factor: float) -> None:
        """Later steps use ``learning_rate * factor`` (a schedule's; not part of the saved state)."""
        self.learning_rate_factor = float(factor)

    @property
    def nums_filters(self) -> list[int]:
        return nums_filters_from_weights(self.weights)

    def train_step(self, images, targets) -> float:
        """One step on a batch; returns the loss before the update (as Keras does)."""
        self.step.load_weights(self.weights)
        result = self.step.compute(images, targets)
        for layer, (mean, variance) in result["statistics"].items():
            _, _, mean_index, variance_index = batch_norm_indices(layer)
            for index, value in ((mean_index, mean), (variance_index, variance)):
                moving = self.weights[index]
                self.weights[index] = (moving * np.float32(MOMENTUM)
                                       + np.asarray(value, np.float32) * np.float32(1 - MOMENTUM))
        self._adam(result["gradients"])
        return result["loss"]

    def _adam(self, gradients: dict) -> None:
        self.iterations += 1
        alpha = np.float32(self.learning_rate * self.learning_rate_factor * np.sqrt(1 - BETA_2**self.iterations) / (1 - BETA_1**self.iterations))
        for index, gradient in gradients.items():
            gradient = np.asarray(gradient, np.float32).reshape(self.weights[index].shape)
            moment, velocity = self.moments[index], self.velocities[index]
            moment += (gradient - moment) * np.float32(1 - BETA_1)
            velocity += (gradient * gradient - velocity) * np.float32(1 - BETA_2)
            self.weights[index] -= moment * alpha / (np.sqrt(velocity) + np.float32(EPSILON))

    def get_weights(self) -> list[np.ndarray]:
        return [array.copy() for array in self.weights]

    def set_weights(self, weights) -> None:
        """Replaces the weights (same filter counts); Adam's state is kept."""
        weights = _check_weights(weights)
        if nums_filters_from_weights(weights) != self.nums_filters:
            raise ValueError(f"set_weights: filter counts {nums_filters_from_weights(weights)} differ from "
                             f"the trainer's {self.nums_filters}.")
        self.weights = weights

    def state(self) -> dict:
        """Everything a resume needs, as arrays (see :func:`save_trainer_state`)."""
        state = {f"weight{index:02d}": array for index, array in enumerate(self.weights)}
        state.update({f"moment{index:02d}": value for index, value in self.moments.items()})
        state.update({f"velocity{index:02d}": value for index, value in self.velocities.items()})
        state["iterations"] = np.array(self.iterations)
        return state

    def load_state(self, state) -> None:
        self.set_weights([state[f"weight{index:02d}"] for index in range(WEIGHTS_PER_MODEL)])
        for index in trainable_indices():
            self.moments[index] = np.array(state[f"moment{index:02d}"], np.float32)
            self.velocities[index] = np.array(state[f"velocity{index:02d}"], np.float32)
        self.iterations = int(state["iterations"])


class KerasTrainer:
    """``model.train_on_batch`` of a compiled Keras compact model (the reference; runs on a GPU too).

    Args, Raises: as :class:`KernelTrainer` (``isa`` and ``threads`` are not used).
    """

    engine = "keras"

    def __init__(self, weights, learning_rate: float = 1e-4, batch_size: int = 64, isa=None, threads=None):
        weights = _check_weights(weights)
        self.learning_rate, self.batch_size = float(learning_rate), int(batch_size)
        self.model = build_compact_model(nums_filters_from_weights(weights), name="student")
        self.model.set_weights(weights)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
        self.model.optimizer.build(self.model.trainable_variables)

    @property
    def nums_filters(self) -> list[int]:
        return nums_filters_from_weights(self.model.get_weights())

    @property
    def iterations(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def set_learning_rate_factor(self, factor: float) -> None:
        """Later steps use ``learning_rate * factor`` (a schedule's; not part of the saved state)."""
        self.model.optimizer.learning_rate.assign(self.learning_rate * float(factor))

    def train_step(self, images, targets) -> float:
        targets = np.asarray(targets, np.float32).reshape(-1, 1)
        return float(self.model.train_on_batch(np.asarray(images, np.float32), targets))

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(array) for array in self.model.get_weights()]

    def set_weights(self, weights) -> None:
        self.model.set_weights(_check_weights(weights))

    def _slots(self) -> tuple[list, list]:
        optimizer = self.model.optimizer
        variables = self.model.trainable_variables
        return ([optimizer._momentums[optimizer._get_variable_index(variable)] for variable in variables],
                [optimizer._velocities[optimizer._get_variable_index(variable)] for variable in variables])

    def state(self) -> dict:
        state = {f"weight{index:02d}": array for index, array in enumerate(self.get_weights())}
        moments, velocities = self._slots()
        for index, moment, velocity in zip(trainable_indices(), moments, velocities, strict=True):
            state[f"moment{index:02d}"] = moment.numpy()
            state[f"velocity{index:02d}"] = velocity.numpy()
        state["iterations"] = np.array(self.iterations)
        return state

    def load_state(self, state) -> None:
        self.set_weights([state[f"weight{index:02d}"] for index in range(WEIGHTS_PER_MODEL)])
        moments, velocities = self._slots()
        for index, moment, velocity in zip(trainable_indices(), moments, velocities, strict=True):
            moment.assign(np.asarray(state[f"moment{index:02d}"], np.float32))
            velocity.assign(np.asarray(state[f"velocity{index:02d}"], np.float32))
        self.model.optimizer.iterations.assign(int(state["iterations"]))


def resolve_trainer_engine(engine: str = "auto") -> str:
    """``"kernel"`` or ``"keras"``: what ``engine`` means on this machine.

    ``"auto"``: Keras when TensorFlow sees a GPU (the same commands then run
    there), else the compiled kernel where it can run, else Keras.

    Raises:
        ValueError: an unknown engine, or ``"kernel"`` where it cannot run (says why).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    if engine == "keras" or (engine == "auto" and tf.config.list_physical_devices("GPU")):
        return "keras"
    try:
        KernelStep.library_check()
    except NativeUnavailable as reason:
        if engine == "kernel":
            raise ValueError(f"The compiled training kernel cannot run here: {reason}. Use engine 'keras'.") from None
        return "keras"
    return "kernel"


def make_trainer(weights, engine: str = "auto", learning_rate: float = 1e-4, batch_size: int = 64,
                 threads: int | None = None):
    """A :class:`KernelTrainer` or :class:`KerasTrainer` (see :func:`resolve_trainer_engine`)."""
    chosen = resolve_trainer_engine(engine)
    trainer = KernelTrainer if chosen == "kernel" else KerasTrainer
    return trainer(weights, learning_rate=learning_rate, batch_size=batch_size, threads=threads)


def save_trainer_state(trainer, path) -> None:
    """Writes the trainer's whole state to ``path`` (``.npz``), atomically."""
    state = trainer.state()
    write_atomically(path, lambda temporary: np.savez(temporary, **state))


def load_trainer_state(trainer, path) -> None:
    """Restores a state written by :func:`save_trainer_state` (either engine).

    Raises:
        ValueError: the file is unreadable or holds another architecture.
    """
    try:
        with np.load(path) as stored:
            state = {name: stored[name] for name in stored.files}
        trainer.load_state(state)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise ValueError(f"{path} does not hold a usable trainer state ({error}); delete it to start over.") from None

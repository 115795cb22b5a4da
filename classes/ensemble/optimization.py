"""How an ensemble member's weights are updated (SPEC section 4).

SGD with momentum 0.75 and gradients clipped at 0.5 (per value); the
learning rate starts at 2.0 and is multiplied by 0.85 per epoch, and in
epoch ``e`` (0-based) each session is trained for ``e + 1`` passes over its
images. The loss is a masked mean squared error, since a session with N
neurons trains only the first N readout outputs. A ``tf.distribute``
strategy spreads each batch over the visible devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.ensemble.architecture import readout_variables
from classes.runtime.quiet_tensorflow import keras, tf

STRATEGIES = ("default", "mirrored")


@dataclass(frozen=True)
class TrainingSchedule:
    """Optimiser settings and the epoch schedule (defaults: the paper's)."""

    num_epochs: int = 5
    initial_learning_rate: float = 2.0
    decay_per_epoch: float = 0.85
    momentum: float = 0.75
    clipvalue: float = 0.5
    batch_size: int = 64

    def __post_init__(self):
        if self.num_epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"num_epochs and batch_size must be positive; got {self.num_epochs}, {self.batch_size}."
            )
        if self.initial_learning_rate <= 0 or not 0 < self.decay_per_epoch <= 1:
            raise ValueError(
                "initial_learning_rate must be positive and decay_per_epoch in (0, 1]; got "
                f"{self.initial_learning_rate}, {self.decay_per_epoch}."
            )

    def learning_rate(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.initial_learning_rate * self.decay_per_epoch**epoch

    @staticmethod
    def passes(epoch: int) -> int:
        """Passes over each session's images in 0-based ``epoch``."""
        return epoch + 1


PAPER_SCHEDULE = TrainingSchedule()


def make_strategy(name: str = "default"):
    """``"default"``: one device; ``"mirrored"``: tf.distribute.MirroredStrategy
    over every visible GPU (or the CPU when none)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def masked_mean_squared_error(targets, predictions):
    """Per-image mean squared error over the outputs whose target is not NaN."""
    valid = tf.math.is_finite(targets)
    difference = tf.where(valid, predictions - tf.where(valid, targets, 0.0), 0.0)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, predictions.dtype), axis=-1), 1.0)
    return tf.reduce_sum(tf.square(difference), axis=-1) / count


def make_optimizer(member, schedule: TrainingSchedule):
    """SGD with momentum and value clipping, built for the member's weights.

    Call inside the strategy's scope so that its slots are distributed too.
    """
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule.initial_learning_rate,
        momentum=schedule.momentum,
        clipvalue=schedule.clipvalue,
    )
    optimizer.build(member.trainable_variables)
    return optimizer


def make_train_step(member, optimizer, strategy):
    """A traced training step on one (distributed) batch; returns its loss.

    Each replica computes the masked MSE of its share of the batch, scaled
    for the global batch; the optimizer sums the replicas' gradients.
    """

    def replica_step(features, targets):
        with tf.GradientTape() as tape:
            per_image = masked_mean_squared_error(targets, member(features, training=True))
            loss = tf.nn.compute_average_loss(per_image)
        gradients = tape.gradient(loss, member.trainable_variables)
        optimizer.apply_gradients(zip(gradients, member.trainable_variables, strict=True))
        return loss

    # reduce_retracing: a session's last, smaller batch should not cost a new trace.
    @tf.function(reduce_retracing=True)
    def step(features, targets):
        losses = strategy.run(replica_step, args=(features, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return step


def train_pass(step, strategy, features, targets, order, batch_size) -> float:
    """One pass over a session's images in the given order; the mean loss.

    Args:
        step: from :func:`make_train_step`.
        features: tensor ``(num_images, *feature_shape)``.
        targets: tensor ``(num_images, num_outputs)``, NaN where unused.
        order: permutation of ``range(num_images)``.
    """
    dataset = (
        tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
        .batch(batch_size)
        .map(lambda batch: (tf.gather(features, batch), tf.gather(targets, batch)))
    )
    total, count = 0.0, 0
    for start, (batch_features, batch_targets) in zip(
        range(0, len(order), batch_size), strategy.experimental_distribute_dataset(dataset),
        strict=True,
    ):
        size = min(batch_size, len(order) - start)
        total += float(step(batch_features, batch_targets)) * size
        count += size
    return total / count


def zero_readout_momentum(member, optimizer) -> None:
    """Clears the momentum of the freshly reset readout.

    Without this, the previous session's readout gradients would keep
    pushing the new session's readout for a few steps.
    """
    momentums = getattr(optimizer, "momentums", None)
    if not momentums:
        return
    for variable in readout_variables(member):
        slot = momentums[optimizer._get_variable_index(variable)]
        slot.assign(tf.zeros_like(slot))

"""The ensemble members' architecture: sizes, layers, seeds and readout.

A member (SPEC section 4, Fig. 1) maps ResNet50 features cut at
``conv4_block4_out`` ``(14, 14, 1024)`` to V4 responses:

- ``initial_conv_layer`` 1x1 Conv2D 512, ``initial_bn``, ``initial_act`` ReLU;
- ``initial_sepconv_layer`` 3x3 SeparableConv2D 512, stride 2 (14x14 -> 7x7);
- 4 residual blocks ``layer{b}_*``: SeparableConv2D 3x3 256, BN, ReLU,
  SeparableConv2D 3x3 256, BN, ReLU, 1x1 Conv2D back to 512, added to the
  block's input;
- the factorized readout: ``mixing_stage`` 1x1 Conv2D to 200 outputs and
  ``spatial_pool_stage`` 7x7 valid DepthwiseConv2D, flattened as
  ``embeddings`` ``(None, 200)``.

The layer names, shapes and parameter counts are those of the release's
``data_ensemble_model/ensemble_model_summary.txt`` (checked by
:func:`classes.ensemble.summary.compare_with_summary`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from classes.runtime.quiet_tensorflow import keras

NUM_MEMBERS = 25
SEED_BASE = 31490
READOUT_LAYERS = ("mixing_stage", "spatial_pool_stage")


@dataclass(frozen=True)
class MemberConfig:
    """Sizes of an ensemble member.

    Attributes:
        feature_shape: input feature maps ``(height, width, channels)``.
        width: channels of the trunk (the 1x1 conv, the stride-2 separable
            conv and each block's output).
        block_width: channels inside each residual block.
        num_blocks: residual blocks.
        num_outputs: readout outputs (at least the neurons of any session).
    """

    feature_shape: tuple = (14, 14, 1024)
    width: int = 512
    block_width: int = 256
    num_blocks: int = 4
    num_outputs: int = 200

    def __post_init__(self):
        shape = tuple(int(value) for value in self.feature_shape)
        if len(shape) != 3 or min(shape) < 1 or shape[0] < 2 or shape[1] < 2:
            raise ValueError(
                f"feature_shape must be (height, width, channels) with height and width >= 2; "
                f"got {self.feature_shape!r}."
            )
        object.__setattr__(self, "feature_shape", shape)
        for name in ("width", "block_width", "num_blocks", "num_outputs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")

    @property
    def embedding_layer(self) -> str:
        """Name of the layer whose maps are mapped to new sessions' neurons."""
        return f"layer{self.num_blocks}_add"


FULL_CONFIG = MemberConfig()
# For tests and CI only: the same graph, a few channels wide.
TINY_CONFIG = MemberConfig(feature_shape=(14, 14, 16), width=32, block_width=16, num_outputs=96)


def member_seed(index: int, seed_base: int = SEED_BASE) -> int:
    """Seed of member ``index`` (0-based): ``31490 + index``.

    Args:
        index: 0-based member index.
        seed_base: seed of member 0.

    Returns:
        The member's seed.
    """
    return seed_base + int(index)


def _initializer(kind: str, seed: int | None):
    """A seeded Glorot-uniform initializer for ``"glorot"``, else ``kind`` as Keras reads it."""
    return keras.initializers.GlorotUniform(seed=seed) if kind == "glorot" else kind


def build_member(config: MemberConfig = FULL_CONFIG, seed: int | None = None,
                 name: str = "ensemble_member") -> keras.Model:
    """Builds an untrained member with the release's layer names.

    Args:
        config: sizes; :data:`FULL_CONFIG` is the paper's member.
        seed: seeds every kernel initialiser (layer ``k`` gets ``seed + k``);
            None for unseeded.
        name: the Keras model's name.

    Returns:
        ``keras.Model`` from ``(N, *feature_shape)`` to ``(N, num_outputs)``.
    """
    layers = keras.layers
    counter = iter(range(10_000))

    def init():
        return _initializer("glorot", None if seed is None else seed + next(counter))

    inputs = keras.Input(shape=config.feature_shape, name="feature_input")
    activity = layers.Conv2D(config.width, 1, kernel_initializer=init(),
                             name="initial_conv_layer")(inputs)
    activity = layers.BatchNormalization(name="initial_bn")(activity)
    activity = layers.Activation("relu", name="initial_act")(activity)
    trunk = layers.SeparableConv2D(
        config.width, 3, strides=2, padding="same", depthwise_initializer=init(),
        pointwise_initializer=init(), name="initial_sepconv_layer",
    )(activity)
    for block in range(1, config.num_blocks + 1):
        activity = trunk
        for stage in (1, 2):
            activity = layers.SeparableConv2D(
                config.block_width, 3, padding="same", depthwise_initializer=init(),
                pointwise_initializer=init(), name=f"layer{block}_conv{stage}",
            )(activity)
            activity = layers.BatchNormalization(name=f"layer{block}_bn{stage}")(activity)
            activity = layers.Activation("relu", name=f"layer{block}_act{stage}")(activity)
        activity = layers.Conv2D(config.width, 1, kernel_initializer=init(),
                                 name=f"layer{block}_conv3")(activity)
        trunk = layers.Add(name=f"layer{block}_add")([trunk, activity])
    mixed = layers.Conv2D(config.num_outputs, 1, kernel_initializer=init(),
                          name="mixing_stage")(trunk)
    map_size = tuple(int(value) for value in trunk.shape[1:3])
    pooled = layers.DepthwiseConv2D(map_size, padding="valid", depthwise_initializer=init(),
                                    name="spatial_pool_stage")(mixed)
    outputs = layers.Flatten(name="embeddings")(pooled)
    return keras.Model(inputs, outputs, name=name)


def member_config_of(member: keras.Model) -> MemberConfig:
    """Reads a built member's :class:`MemberConfig` off its layers.

    Args:
        member: a model built by :func:`build_member` (or loaded from one).

    Returns:
        The member's :class:`MemberConfig`.

    Raises:
        ValueError: the model lacks the layers of an ensemble member.
    """
    try:
        blocks = sum(1 for layer in member.layers if re.fullmatch(r"layer\d+_add", layer.name))
        return MemberConfig(
            feature_shape=tuple(member.input_shape[1:]),
            width=member.get_layer("initial_conv_layer").filters,
            block_width=member.get_layer("layer1_conv1").filters,
            num_blocks=blocks,
            num_outputs=member.get_layer("mixing_stage").filters,
        )
    except ValueError as error:
        raise ValueError(f"{member.name} is not an ensemble member ({error}).") from None


def reset_readout(member: keras.Model, seed: int | None = None) -> None:
    """Re-initialises the readout (``mixing_stage``, ``spatial_pool_stage``).

    Done before training on each session, since each session has its own
    neurons. Kernels are Glorot-uniform (seeded when ``seed`` is given),
    biases zero.

    Args:
        member: the member, changed in place.
        seed: seed of the first readout kernel (the second gets ``seed + 1``);
            None for unseeded.
    """
    for offset, layer_name in enumerate(READOUT_LAYERS):
        layer = member.get_layer(layer_name)
        kernel, bias = layer.get_weights()
        initializer = keras.initializers.GlorotUniform(
            seed=None if seed is None else seed + offset
        )
        layer.set_weights([np.asarray(initializer(kernel.shape)), np.zeros_like(bias)])


def readout_variables(member: keras.Model) -> list:
    """The trainable variables of the readout layers.

    Args:
        member: an ensemble member.

    Returns:
        List of the ``mixing_stage`` and ``spatial_pool_stage`` variables.
    """
    return [variable for name in READOUT_LAYERS
            for variable in member.get_layer(name).trainable_variables]


def parameter_counts(member: keras.Model) -> dict:
    """Trainable, non-trainable and optimizer-slot counts of a member.

    The optimizer count is that of SGD with momentum built for the member
    (one slot per trainable weight, plus its iteration counter and learning
    rate), which the release's summary prints as 'Optimizer params'.

    Args:
        member: an ensemble member.

    Returns:
        Dict with ``trainable``, ``non_trainable``, ``optimizer`` and
        ``total_with_optimizer`` counts.
    """
    trainable = int(sum(np.prod(variable.shape) for variable in member.trainable_weights))
    non_trainable = int(sum(np.prod(variable.shape) for variable in member.non_trainable_weights))
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.75)
    optimizer.build(member.trainable_variables)
    optimizer_count = int(sum(np.prod(variable.shape) for variable in optimizer.variables))
    return {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer_count,
            "total_with_optimizer": trainable + non_trainable + optimizer_count}

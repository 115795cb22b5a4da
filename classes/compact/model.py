"""The compact model: one small CNN per V4 neuron (SPEC section 2).

Architecture, built with the Keras functional API from five filter counts
``[K0, K1, K2, K3, K4]``:

- ``layer0_conv``: Conv2D K0 filters 5x5, same padding, bias; ``layer0_bn``
  (epsilon 1e-3); ``layer0_act`` ReLU.
- ``layer{i}_conv`` for i = 1..4: SeparableConv2D Ki filters, 5x5 depthwise
  (multiplier 1, no bias) then 1x1 pointwise with bias; stride 2 for layers 1
  and 2, 1 for layers 3 and 4; then BN (1e-3) and ReLU.
- ``embeddings``: Flatten of the 28x28xK4 output (channels last).
- ``Beta``: Dense to one unit, the spatial readout.

Inputs are recentred images (raw minus the RGB means), ``(N, 112, 112, 3)``.
"""

from __future__ import annotations

from pathlib import Path

from classes.compact.architecture import (
    BN_EPSILON,
    KERNEL_SIZE,
    NUM_LAYERS,
    STRIDES,
    check_nums_filters,
    load_nums_filters,
    load_weights_npy,
    model_file,
    model_id,
    nums_filters_from_weights,
)
from classes.runtime.keras_files import load_keras_file
from classes.runtime.outputs import write_atomically
from classes.runtime.quiet_tensorflow import keras

# The framework-free names (ModelId, model_file, load_weights_npy, the
# architecture's constants) live in classes.compact.architecture.
__all__ = [
    "build_compact_model",
    "load_compact_model",
    "model_from_weights",
    "save_compact_model",
]


def build_compact_model(nums_filters, name: str = "compact_model") -> keras.Model:
    """Builds an untrained compact model with the release's layer names.

    Args:
        nums_filters: ``[K0, K1, K2, K3, K4]``.
        name: the Keras model's name.

    Returns:
        A ``keras.Model`` from ``(N, 112, 112, 3)`` to ``(N, 1)``.
    """
    counts = check_nums_filters(nums_filters)
    layers = keras.layers
    inputs = keras.Input(shape=(112, 112, 3), name="image_input")
    activity = layers.Conv2D(
        counts[0], KERNEL_SIZE, padding="same", name="layer0_conv"
    )(inputs)
    activity = layers.BatchNormalization(epsilon=BN_EPSILON, name="layer0_bn")(activity)
    activity = layers.Activation("relu", name="layer0_act")(activity)
    for layer in range(1, NUM_LAYERS):
        activity = layers.SeparableConv2D(
            counts[layer],
            KERNEL_SIZE,
            strides=STRIDES[layer],
            padding="same",
            depth_multiplier=1,
            name=f"layer{layer}_conv",
        )(activity)
        activity = layers.BatchNormalization(
            epsilon=BN_EPSILON, name=f"layer{layer}_bn"
        )(activity)
        activity = layers.Activation("relu", name=f"layer{layer}_act")(activity)
    activity = layers.Flatten(name="embeddings")(activity)
    outputs = layers.Dense(1, name="Beta")(activity)
    return keras.Model(inputs, outputs, name=name)


def model_from_weights(weights, name: str = "compact_model") -> keras.Model:
    """A Keras compact model holding a ``get_weights()`` list (filter counts read off it)."""
    model = build_compact_model(nums_filters_from_weights(weights), name=name)
    model.set_weights(list(weights))
    return model


def load_compact_model(
    session_id, neuron, file_format: str = "keras", data_root=None
) -> keras.Model:
    """Loads a released compact model.

    Args:
        session_id: one of the four held-out test sessions.
        neuron: 0-based neuron index within the session.
        file_format: ``"keras"`` loads the ``.keras`` file; ``"npy"`` builds
            the architecture from ``nums_filters`` and sets the weights from
            ``model_weights_npy``. Both give identical outputs.

    Returns:
        A ``keras.Model`` named ``compact_model_<session>_neuron<k>``.

    Raises:
        ValueError: unknown session/neuron or format; corrupt file.
        FileNotFoundError: a needed file is missing.
    """
    identifier = model_id(session_id, neuron)
    if file_format == "keras":
        path = model_file(identifier, "keras", data_root)
        model = load_keras_file(path, "compact model")
        model.name = identifier.stem
        return model
    if file_format == "npy":
        counts = load_nums_filters(identifier, data_root)
        weights = load_weights_npy(identifier, data_root)
        if nums_filters_from_weights(weights) != counts:
            raise ValueError(
                f"Weights of {identifier} have filter counts "
                f"{nums_filters_from_weights(weights)} but nums_filters says {counts}."
            )
        model = build_compact_model(counts, name=identifier.stem)
        model.set_weights(weights)
        return model
    raise ValueError(f"file_format must be 'keras' or 'npy', got {file_format!r}.")


def save_compact_model(model: keras.Model, path, overwrite: bool = False) -> Path:
    """Saves a compact model as ``.keras`` or ``.weights.h5``, atomically.

    Args:
        model: a compact model.
        path: target ending in ``.keras`` (whole model) or ``.weights.h5``
            (weights only; reload with ``build_compact_model`` then
            ``load_weights``).
        overwrite: replace an existing file; refused otherwise.

    Raises:
        FileExistsError: the target exists and ``overwrite`` is False.
        ValueError: unsupported suffix.
    """
    target = Path(path)
    name = target.name
    if not (name.endswith(".keras") or name.endswith(".weights.h5")):
        raise ValueError(f"Save to a .keras or .weights.h5 path, got {target}.")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    return write_atomically(target, model.save if name.endswith(".keras") else model.save_weights)

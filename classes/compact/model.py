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

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root
from classes.data.sessions import TEST_SESSIONS, get_session
from classes.runtime.keras_files import load_keras_file
from classes.runtime.outputs import write_atomically
from classes.runtime.quiet_tensorflow import keras

NUM_LAYERS = 5
KERNEL_SIZE = 5
STRIDES = (1, 2, 2, 1, 1)
BN_EPSILON = 1e-3
OUTPUT_SIZE = 28
WEIGHTS_PER_MODEL = 36
_MODEL_NAME = re.compile(r"compact_model_(\d{6})_neuron(\d+)$")


def check_nums_filters(nums_filters) -> list[int]:
    """Validates five positive filter counts and returns them as ints."""
    counts = np.asarray(nums_filters).reshape(-1)
    if counts.size != NUM_LAYERS or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(
            f"nums_filters must be {NUM_LAYERS} integers [K0..K4]; got {nums_filters!r}."
        )
    if np.any(counts < 1):
        raise ValueError(f"Every filter count must be at least 1; got {counts.tolist()}.")
    return [int(count) for count in counts]


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


def nums_filters_from_weights(weights) -> list[int]:
    """Reads ``[K0..K4]`` off a ``get_weights()`` list (36 arrays)."""
    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(
            f"A compact model has {WEIGHTS_PER_MODEL} weight arrays; got {len(weights)}."
        )
    counts = [weights[0].shape[-1]]
    for layer in range(1, NUM_LAYERS):
        counts.append(weights[6 + 7 * (layer - 1) + 1].shape[-1])
    return counts


@dataclass(frozen=True)
class ModelId:
    """Names one released compact model: a session and a 0-based neuron index."""

    session_id: str
    neuron: int

    @property
    def stem(self) -> str:
        return f"compact_model_{self.session_id}_neuron{self.neuron}"

    def __str__(self) -> str:
        return f"{self.session_id}/neuron{self.neuron}"


def all_model_ids() -> list[ModelId]:
    """All 219 compact models, in the shared models' neuron order.

    Order: 190923's 33 neurons, 201025's 89, 210225's 55, 211022's 42.
    """
    return [
        ModelId(session, neuron)
        for session in TEST_SESSIONS
        for neuron in range(get_session(session).num_neurons)
    ]


def model_id(session_id, neuron) -> ModelId:
    """Validates a (session, neuron) pair and returns its ModelId.

    Raises:
        ValueError: the session has no compact models, or the neuron index
            is out of range.
    """
    session = get_session(session_id)
    if not session.is_held_out_test:
        raise ValueError(
            f"Session {session.session_id} has no compact models; they exist "
            f"for the held-out test sessions {', '.join(TEST_SESSIONS)}."
        )
    if isinstance(neuron, bool) or not isinstance(neuron, (int, np.integer)):
        raise ValueError(f"neuron must be an integer index, got {neuron!r}.")
    if not 0 <= int(neuron) < session.num_neurons:
        raise ValueError(
            f"Session {session.session_id} has neurons 0..{session.num_neurons - 1}; "
            f"got neuron {neuron}."
        )
    return ModelId(session.session_id, int(neuron))


_FORMATS = {
    "keras": ("models_keras", ".keras"),
    "torch": ("models_torch", ".pt"),
    "npy": ("model_weights_npy", ".npy"),
    "nums_filters": ("nums_filters", ".npy"),
    "summary": ("model_summaries", ".txt"),
}


def model_file(identifier: ModelId, file_format: str, data_root=None) -> Path:
    """Path of one released file of a compact model.

    Args:
        identifier: from :func:`model_id`.
        file_format: ``"keras"``, ``"torch"``, ``"npy"``, ``"nums_filters"``
            or ``"summary"``.

    Raises:
        FileNotFoundError: the file is missing; names where it was looked for
            and how many files of that format exist.
    """
    if file_format not in _FORMATS:
        raise ValueError(f"file_format must be one of {sorted(_FORMATS)}, got {file_format!r}.")
    folder_name, suffix = _FORMATS[file_format]
    folder = resolve_data_root(data_root) / "data_compact_models" / folder_name
    path = folder / f"{identifier.stem}{suffix}"
    if not path.is_file():
        present = len(os.listdir(folder)) if folder.is_dir() else 0
        raise FileNotFoundError(
            f"Missing {file_format} file of compact model {identifier}: {path}. "
            f"{folder} holds {present} files; the release has one per model "
            f"for all 219 models ({', '.join(TEST_SESSIONS)})."
        )
    return path


def load_nums_filters(identifier: ModelId, data_root=None) -> list[int]:
    """The released ``[K0..K4]`` of a model."""
    path = model_file(identifier, "nums_filters", data_root)
    try:
        counts = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is corrupt or truncated ({error}).") from None
    return check_nums_filters(counts)


def load_weights_npy(identifier: ModelId, data_root=None) -> list[np.ndarray]:
    """The released weight list (Keras ``get_weights()`` order) of a model.

    The release stores it as a pickled object array; it is read with
    ``allow_pickle=True``, so only load files from a trusted release.
    """
    path = model_file(identifier, "npy", data_root)
    try:
        weights = np.load(path, allow_pickle=True)
    except (ValueError, OSError, EOFError, Exception) as error:  # unpickling errors vary
        raise ValueError(f"{path} is corrupt or truncated ({error}).") from None
    weights = [np.asarray(array, dtype=np.float32) for array in weights]
    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(
            f"{path} holds {len(weights)} arrays; a compact model has {WEIGHTS_PER_MODEL}."
        )
    return weights


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


def parse_model_stem(stem: str) -> ModelId:
    """``compact_model_190923_neuron4`` -> ModelId('190923', 4)."""
    match = _MODEL_NAME.match(stem)
    if not match:
        raise ValueError(f"{stem!r} is not a compact model name (compact_model_<session>_neuron<k>).")
    return model_id(match.group(1), int(match.group(2)))

"""The compact model's framework-free facts: architecture constants, model ids, released weight files.

What every engine (Keras, :mod:`classes.compact.torch_model`, the compiled
kernels) shares, with no TensorFlow or Keras import, so that the PyTorch
port and the GPU distillation (``code_distill_and_prune/gpu_distill.py``)
run on machines without them. The Keras model itself is built in
:mod:`classes.compact.model` (SPEC section 2).

Weights travel as a Keras ``get_weights()`` list of 36 arrays: layer 0's
kernel ``(5, 5, 3, K0)``, bias, BN gamma, beta, moving mean and moving
variance; for each of layers 1-4 the depthwise kernel ``(5, 5, K_{i-1}, 1)``,
pointwise kernel ``(1, 1, K_{i-1}, K_i)``, bias and the four BN arrays; the
readout kernel ``(28 * 28 * K4, 1)`` and its bias.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root
from classes.data.release_files import verified_release_file
from classes.data.sessions import TEST_SESSIONS, get_session
from classes.runtime.outputs import write_atomically

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

LAYER0_ARRAYS = 6  # kernel, bias, gamma, beta, moving mean, moving variance
SEPARABLE_ARRAYS = 7  # depthwise, pointwise, bias, gamma, beta, moving mean, moving variance


def first_weight_index(layer: int) -> int:
    """Position of a layer's first array in the ``get_weights()`` list."""
    return 0 if layer == 0 else LAYER0_ARRAYS + SEPARABLE_ARRAYS * (layer - 1)


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

    Returns:
        The path, checked against the release's ``MANIFEST.sha256`` the
        first time it is used (:func:`classes.data.release_files.verified_release_file`).

    Raises:
        FileNotFoundError: the file is missing; names where it was looked for
            and how many files of that format exist.
        ValueError: the file does not match the manifest.
    """
    if file_format not in _FORMATS:
        raise ValueError(f"file_format must be one of {sorted(_FORMATS)}, got {file_format!r}.")
    folder_name, suffix = _FORMATS[file_format]
    root = resolve_data_root(data_root)
    folder = root / "data_compact_models" / folder_name
    path = folder / f"{identifier.stem}{suffix}"
    if not path.is_file():
        present = len(os.listdir(folder)) if folder.is_dir() else 0
        raise FileNotFoundError(
            f"Missing {file_format} file of compact model {identifier}: {path}. "
            f"{folder} holds {present} files; the release has one per model "
            f"for all 219 models ({', '.join(TEST_SESSIONS)})."
        )
    return verified_release_file(path, root)


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


def parse_model_stem(stem: str) -> ModelId:
    """``compact_model_190923_neuron4`` -> ModelId('190923', 4)."""
    match = _MODEL_NAME.match(stem)
    if not match:
        raise ValueError(f"{stem!r} is not a compact model name (compact_model_<session>_neuron<k>).")
    return model_id(match.group(1), int(match.group(2)))


def save_weights_npz(path, weights) -> Path:
    """Writes a ``get_weights()`` list as ``.npz`` (``weight00`` .. ``weight35``, float32), atomically.

    Args:
        path: the target file (``.npz``).
        weights: a compact model's 36 arrays.

    Returns:
        The path written.

    Raises:
        ValueError: not a compact model's 36 arrays.
    """
    arrays = [np.asarray(array, dtype=np.float32) for array in weights]
    nums_filters_from_weights(arrays)
    named = {f"weight{index:02d}": array for index, array in enumerate(arrays)}
    return write_atomically(Path(path), lambda target: np.savez(target, **named))


def load_weights_npz(path) -> list[np.ndarray]:
    """Reads a ``get_weights()`` list written by :func:`save_weights_npz`.

    Raises:
        ValueError: the file is unreadable or does not hold a compact model's
            36 arrays ``weight00`` .. ``weight35``.
        FileNotFoundError: the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No weights file {path}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            weights = [np.asarray(archive[name], np.float32) for name in names]
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npz of weights ({error}).") from None
    expected = [f"weight{index:02d}" for index in range(WEIGHTS_PER_MODEL)]
    if names != expected:
        raise ValueError(f"{path} holds {names[:3]}...; a compact model's weights are {expected[0]} .. {expected[-1]}.")
    nums_filters_from_weights(weights)
    return weights

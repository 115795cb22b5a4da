"""script4's held-out predictions, kept in its results folder for script5 to reuse.

script5 scores the individual compact models exactly as script4 does: the
same models on the same held-out images with the same engine. script4 writes
its predictions to ``held_out_predictions.npz`` beside its summary, and
script5 takes the ones it needs from there instead of predicting them again
(about 35 of script5's 150 s), when everything they depend on matches: the
engine, the data root, the held-out image numbers of each session and every
model it asks for. Anything else (no file, another engine or data root, a
model script4 did not predict) is a reason, and script5 predicts.

File layout (NumPy ``.npz``): ``format`` (1), ``engine``, ``data_root``,
and per session ``models_<session>`` (neuron numbers), ``images_<session>``
(1-based held-out image numbers) and ``predictions_<session>`` (float32
``(num_models, num_images)``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from classes.compact.architecture import ModelId
from classes.data.sessions import held_out_indices
from classes.runtime import outputs

FILE_NAME = "held_out_predictions.npz"
FORMAT = 1


def save_held_out_predictions(folder, predictions: dict, engine: str, data_root) -> Path:
    """Writes ``FILE_NAME`` into ``folder``.

    Args:
        folder: script4's output folder.
        predictions: session -> ``(neurons, (num_models, num_images) array)``.
        engine: the resolved engine that predicted (``"kernel"``, ``"tensorflow"``, ``"keras"``).
        data_root: the release the models and images came from.

    Returns:
        The file's path.
    """
    arrays = {"format": np.array(FORMAT), "engine": np.array(engine), "data_root": np.array(str(Path(data_root)))}
    for session, (neurons, values) in predictions.items():
        arrays[f"models_{session}"] = np.asarray(neurons, np.int64)
        arrays[f"images_{session}"] = held_out_indices(session)[1] + 1
        arrays[f"predictions_{session}"] = np.asarray(values, np.float32)
    path = Path(folder) / FILE_NAME
    return outputs.write_atomically(path, lambda temporary: np.savez(temporary, **arrays))


def load_held_out_predictions(folder, models: list[ModelId], sessions, engine: str,
                              data_root) -> tuple[dict | None, str]:
    """script4's predictions of ``models`` on the held-out images of ``sessions``, where they match.

    Args:
        folder: script4's output folder (or None).
        models: the compact models whose predictions are wanted.
        sessions: the sessions to take (each model of them must be in the file).
        engine: the resolved engine the caller would predict with.
        data_root: the caller's release.

    Returns:
        ``(predictions, reason)``: session -> float32 ``(num_models of the
        session, num_images)`` in the order of ``models`` and ``""``; or
        None and why the file cannot be used.
    """
    path = Path(folder) / FILE_NAME if folder is not None else None
    if path is None or not path.is_file():
        return None, f"no {FILE_NAME} in {folder}"
    try:
        with np.load(path) as record:
            arrays = {name: record[name] for name in record.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return None, f"{path} cannot be read ({error})"
    facts = {"format": FORMAT, "engine": engine, "data_root": str(Path(data_root))}
    for name, wanted in facts.items():
        if name not in arrays or arrays[name].item() != wanted:
            found = arrays[name].item() if name in arrays else None
            return None, f"{path} was made with {name} {found!r}, not {wanted!r}"
    chosen = {}
    for session in sessions:
        neurons = [identifier.neuron for identifier in models if identifier.session_id == session]
        names = (f"models_{session}", f"images_{session}", f"predictions_{session}")
        if not all(name in arrays for name in names):
            return None, f"{path} holds no predictions for session {session}"
        if not np.array_equal(arrays[names[1]], held_out_indices(session)[1] + 1):
            return None, f"{path} holds session {session}'s predictions on other images"
        rows = {int(neuron): row for row, neuron in enumerate(arrays[names[0]])}
        missing = [neuron for neuron in neurons if neuron not in rows]
        if missing:
            return None, f"{path} lacks session {session}'s neurons {missing[:5]}"
        chosen[session] = arrays[names[2]][[rows[neuron] for neuron in neurons]]
    return chosen, ""

"""V4 responses: raw repeats and repeat averages, as released.

Files live in ``data_V4_responses/responses_raw`` (``(neurons, images,
max_repeats)``, trailing NaN where an image had fewer repeats) and
``data_V4_responses/responses_repeat_averaged`` (``(neurons, images)``).
Spike counts are in 100 ms bins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root, sessions_in_folder
from classes.data.release_files import verified_release_file
from classes.data.sessions import get_session, held_out_indices, training_image_indices

_KINDS = {
    "raw": "responses_raw",
    "repeat_averaged": "responses_repeat_averaged",
}


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable .npy file ({error}); it is corrupt or "
            "truncated. Download it again or run a script with --verify."
        ) from None


def response_path(session_id, kind: str = "repeat_averaged", data_root=None) -> Path:
    """Path of a session's response file.

    Args:
        session_id: e.g. ``"190923"``.
        kind: ``"raw"`` or ``"repeat_averaged"``.

    Returns:
        The path, checked against the release's ``MANIFEST.sha256`` the
        first time it is used (:func:`classes.data.release_files.verified_release_file`).

    Raises:
        ValueError: unknown session or kind; the file does not match the manifest.
        FileNotFoundError: the file is not in the release; the message lists
            the sessions whose files of that kind exist.
    """
    _check_kind(kind)
    session = get_session(session_id)
    root = resolve_data_root(data_root)
    folder = root / "data_V4_responses" / _KINDS[kind]
    path = folder / f"responses_{session.session_id}.npy"
    if not path.is_file():
        present = available_response_sessions(kind, data_root)
        raise FileNotFoundError(
            f"The {kind.replace('_', '-')} responses of session "
            f"{session.session_id} are not in this release: {path} does not "
            f"exist. Sessions with {kind.replace('_', '-')} responses here: "
            f"{', '.join(present) or 'none'}."
        )
    return verified_release_file(path, root)


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}.")


def available_response_sessions(kind: str = "repeat_averaged", data_root=None) -> list[str]:
    """Sessions with a response file of the given kind, sorted."""
    _check_kind(kind)
    folder = resolve_data_root(data_root) / "data_V4_responses" / _KINDS[kind]
    return sessions_in_folder(folder, "responses_", ".npy")


def load_repeat_averaged(session_id, data_root=None) -> np.ndarray:
    """Repeat-averaged responses, float64 ``(num_neurons, num_images)``."""
    path = response_path(session_id, "repeat_averaged", data_root)
    responses = _load_npy(path)
    _check_shape(responses, session_id, path, ndim=2)
    return responses


def load_raw(session_id, data_root=None) -> np.ndarray:
    """Raw responses, float64 ``(num_neurons, num_images, max_repeats)``.

    Images with fewer than ``max_repeats`` repeats are padded with NaN.
    """
    path = response_path(session_id, "raw", data_root)
    responses = _load_npy(path)
    _check_shape(responses, session_id, path, ndim=3)
    return responses


def _check_shape(responses, session_id, path, ndim):
    session = get_session(session_id)
    expected = (session.num_neurons, session.num_images_in_file)
    if responses.ndim != ndim or responses.shape[:2] != expected:
        raise ValueError(
            f"{path} has shape {responses.shape}; the session table expects "
            f"{expected} (neurons, images){' + repeats' if ndim == 3 else ''}."
        )


def repeat_average(raw: np.ndarray) -> np.ndarray:
    """NaN-mean over the repeat axis: ``(N, M, R) -> (N, M)``."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 3:
        raise ValueError(f"raw responses must be (neurons, images, repeats); got {raw.shape}.")
    counts = np.sum(~np.isnan(raw), axis=2)
    total = np.nansum(raw, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def load_held_out(session_id, data_root=None, kind: str = "repeat_averaged"):
    """Responses of a test session split into its fit and evaluation halves.

    Returns:
        ``(fit_responses, evaluation_responses, evaluation_image_numbers)``:
        arrays ``(neurons, images/2[, repeats])`` and the 1-based image
        numbers of the evaluation half.
    """
    _check_kind(kind)
    fit, evaluation = held_out_indices(session_id)
    loader = load_raw if kind == "raw" else load_repeat_averaged
    responses = loader(session_id, data_root)
    return responses[:, fit], responses[:, evaluation], evaluation + 1


def load_training(session_id, data_root=None) -> tuple:
    """Repeat-averaged responses of a session restricted to its training images.

    Returns:
        ``(responses (neurons, images), image_numbers)``; 1-based numbers.
    """
    indices = training_image_indices(session_id)
    return load_repeat_averaged(session_id, data_root)[:, indices], indices + 1

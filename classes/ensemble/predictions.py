"""Ensemble predictions supplied by the user (the release lacks the weights).

Fig. 1h compares the compact models with the ensemble. The 25 member
weights (``data_ensemble_model/ensemble_model_member<i>.keras``) are not in
the release, so ensemble predictions come from the user: a folder holding
``ensemble_predictions_<session>.npy`` per test session, each
``(num_neurons, num_images)`` over the session's images in file order (all
images, or only the held-out second half).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.data.sessions import get_session, held_out_indices


def load_ensemble_predictions(ensemble_dir, session_id, data_root=None) -> np.ndarray:
    """The ensemble's predictions for a test session's held-out images.

    Returns:
        float64 ``(num_neurons, num_held_out_images)``.

    Raises:
        FileNotFoundError: the folder or the session's file is missing.
        ValueError: wrong shape, or NaN/inf values.
    """
    session = get_session(session_id)
    folder = Path(ensemble_dir).expanduser()
    path = folder / f"ensemble_predictions_{session.session_id}.npy"
    if not path.is_file():
        raise FileNotFoundError(
            f"--ensemble-dir: {path} does not exist. Expected one file "
            "ensemble_predictions_<session>.npy, (neurons, images), per test session."
        )
    try:
        predictions = np.load(path, allow_pickle=False).astype(np.float64)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npy file ({error}).") from None
    _, evaluation = held_out_indices(session.session_id)
    if predictions.shape == (session.num_neurons, session.num_images_in_file):
        predictions = predictions[:, evaluation]
    elif predictions.shape != (session.num_neurons, len(evaluation)):
        raise ValueError(
            f"{path} has shape {predictions.shape}; expected ({session.num_neurons}, "
            f"{session.num_images_in_file}) or ({session.num_neurons}, {len(evaluation)})."
        )
    if not np.all(np.isfinite(predictions)):
        raise ValueError(f"{path} holds NaN or infinite values.")
    return predictions

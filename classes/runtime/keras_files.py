"""Reading ``.keras`` files with one clear error for every way a file can be bad."""

from __future__ import annotations

from pathlib import Path

from classes.runtime.quiet_tensorflow import keras


def load_keras_file(path, what: str = "model", compile: bool = False):
    """Loads a Keras 3 ``.keras`` file.

    Args:
        path: the file.
        what: what the file holds, for the message (e.g. "compact model").
        compile: restore the optimizer (for training checkpoints).

    Returns:
        The ``keras.Model``.

    Raises:
        ValueError: the file is corrupt, truncated or not a Keras 3 file;
            the message names the file and what to do.
    """
    path = Path(path)
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ValueError(
            f"Could not load the {what} {path} ({type(error).__name__}: {error}). The file is "
            "corrupt or truncated, or not a Keras 3 .keras file; download or create it again."
        ) from None

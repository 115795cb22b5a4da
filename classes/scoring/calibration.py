"""Released compact models on many images, and their spike-count calibration.

Used by the synthesis script: responses to a candidate pool (thousands of
images) and a line from each model's output to its neuron's spike counts,
fitted on the fit half of its test session (images 1-600 of 190923, 201025,
210225; see :func:`classes.scoring.percent_changes.spike_count_calibration`). Both go
through the stacked fast path (:mod:`classes.prediction.stacked`), whose outputs
equal the Keras models' within float32 rounding.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from classes.compact.architecture import ModelId
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.responses import load_repeat_averaged
from classes.data.sessions import held_out_indices
from classes.prediction import predict
from classes.scoring.percent_changes import spike_count_calibration


def pool_responses(identifiers: list[ModelId], raw_images, data_root=None, chunk: int = 1024,
                   description: str = "pool", show_progress: bool = True) -> np.ndarray:
    """Responses of released models to many raw images, in chunks.

    Args:
        identifiers: model ids.
        raw_images: uint8 ``(N, 112, 112, 3)``; recentred a chunk at a time,
            so a pool of 12,640 images never exists as float32 all at once.
        chunk: images per chunk.

    Returns:
        float32 ``(num_models, N)``.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}.")
    responses = np.empty((len(identifiers), len(raw_images)), np.float32)
    starts = range(0, len(raw_images), int(chunk))
    for start in tqdm(starts, desc=description, leave=False, disable=not show_progress):
        batch = recenter_images(raw_images[start : start + chunk])
        responses[:, start : start + len(batch)] = predict(identifiers, batch, data_root=data_root)
    return responses


def calibrate_models(identifiers: list[ModelId], data_root=None) -> dict[str, tuple]:
    """Spike-count calibration lines of released models, per session at once.

    Returns:
        dict from each model's stem to ``(calibration, note)``:
        ``calibration`` is ``(intercept, slope)``, or None when the model's
        session has no image zip in the release (211022), with the reason in
        ``note``; otherwise ``note`` names the fit images and the
        correlation of the model with its neuron on them.
    """
    calibrations = {}
    present = set(available_image_sessions(data_root))
    for session in dict.fromkeys(identifier.session_id for identifier in identifiers):
        members = [identifier for identifier in identifiers if identifier.session_id == session]
        if session not in present:
            for identifier in members:
                calibrations[identifier.stem] = (None, (
                    f"session {session}'s images (data_V4_responses/images/images_{session}.zip) are not "
                    "in the release: no calibration"))
            continue
        fit, _ = held_out_indices(session)
        images = recenter_images(load_images(session, fit + 1, data_root=data_root))
        predictions = predict(members, images, data_root=data_root)
        responses = load_repeat_averaged(session, data_root)[:, fit]
        for row, identifier in enumerate(members):
            target = responses[identifier.neuron]
            correlation = float(np.corrcoef(predictions[row], target)[0, 1])
            calibrations[identifier.stem] = (
                spike_count_calibration(predictions[row], target),
                f"fit half of {session} ({len(fit)} images), r = {correlation:.2f}",
            )
    return calibrations

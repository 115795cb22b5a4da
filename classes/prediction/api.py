"""Predictions of many compact models on one set of images.

Two paths with equal outputs (within float32 tolerance): ``"keras"`` loads
each released ``.keras`` model and calls it (the reference); ``"fast"``
stacks the models and evaluates them together (:mod:`classes.prediction.stacked`).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from classes.compact.model import ModelId, load_compact_model
from classes.compact.tools import predict_responses


def predict_many_models(
    models: list[ModelId],
    images,
    path: str = "fast",
    batch_size: int | None = None,
    data_root=None,
    timings: dict | None = None,
    show_progress: bool = True,
    engine: str = "auto",
) -> np.ndarray:
    """Responses of several released compact models to the same images.

    Args:
        models: ids from :func:`classes.compact.model.model_id`.
        images: recentred ``(num_images, 112, 112, 3)``.
        path: ``"fast"`` or ``"keras"``.
        batch_size: images per forward pass; None for the path's default
            (16 on the fast path, 64 on the keras path).
        timings: optional dict; ``"load weights"`` and ``"predict"`` seconds
            are added to it.
        engine: the fast path's engine (:func:`classes.prediction.stacked.predict_stacked`).

    Returns:
        float32 ``(num_models, num_images)``.
    """
    timings = timings if timings is not None else {}
    timings.setdefault("load weights", 0.0)
    timings.setdefault("predict", 0.0)
    if path == "keras":
        predictions = []
        for identifier in tqdm(models, desc="models (keras path)", disable=not show_progress):
            start = time.perf_counter()
            model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
            middle = time.perf_counter()
            predictions.append(predict_responses(model, images, batch_size=batch_size or 64))
            timings["load weights"] += middle - start
            timings["predict"] += time.perf_counter() - middle
        return np.stack(predictions)
    if path == "fast":
        from classes.prediction.stacked import predict_models_on_images

        return predict_models_on_images(
            models, images, data_root=data_root, batch_size=batch_size,
            show_progress=show_progress, timings=timings, engine=engine,
        )
    raise ValueError(f"path must be 'fast' or 'keras', got {path!r}.")

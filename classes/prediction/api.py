"""``predict``: the one entry point for model responses to images.

Every script and analysis that needs responses of compact models (or of the
shared compact models) to a set of images calls :func:`predict`. What it
takes, and which engine runs, are the caller's choice; the responses are the
same within float32 rounding whichever engine runs:

- ``"keras"``: each model is a Keras model called on batches of 64 (a
  released model is loaded from its ``.keras`` file): the reference.
- ``"kernel"``, ``"tensorflow"``, ``"auto"``: the fast path. Weights are read
  from the release's ``.npy`` files, BatchNormalization is folded away
  (:mod:`classes.prediction.folding`), and the models run through the
  compiled C kernel (:mod:`classes.prediction.kernel`) or one traced
  TensorFlow graph (:mod:`classes.prediction.graph`); ``"auto"`` takes the
  kernel where it can run and TensorFlow sees no GPU
  (:func:`classes.prediction.stacked.resolve_engine`). Shared compact models
  run on the same engines (:mod:`classes.prediction.shared`).

Example::

    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images
    from classes.prediction import predict

    images = recenter_images(load_images("190923", [601, 602, 603]))
    responses = predict(["190923/0", ("201025", 2)], images)   # (2, 3)
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from classes.compact.architecture import ModelId, model_id
from classes.compact.choice import parse_model
from classes.compact.model import load_compact_model
from classes.compact.tools import predict_responses
from classes.data.preprocessing import check_images
from classes.prediction.folding import fold_shared_model
from classes.prediction.shared import predict_shared_fast
from classes.prediction.stacked import (
    DEFAULT_BATCH_SIZE,
    ENGINES,
    StackedModels,
    predict_models_on_images,
    predict_stacked,
    resolve_engine,
    stack_compact_models,
)

__all__ = ["PREDICT_ENGINES", "predict"]

PREDICT_ENGINES = (*ENGINES, "keras")
KERAS_BATCH_SIZE = 64


def _is_keras_model(item) -> bool:
    return hasattr(item, "get_layer") and hasattr(item, "layers")


def _is_shared_model(item) -> bool:
    return _is_keras_model(item) and any(layer.name == "mixing_stage" for layer in item.layers)


def _as_released_id(item) -> ModelId | None:
    """The ModelId that ``item`` names, or None when it is a model or weights."""
    if isinstance(item, ModelId):
        return model_id(item.session_id, item.neuron)
    if isinstance(item, str):
        return parse_model(item, "model")
    if isinstance(item, tuple) and len(item) == 2 and not hasattr(item[0], "shape"):
        return model_id(*item)
    return None


def _groups(models) -> list[tuple[str, list]]:
    """Runs of consecutive items of one kind: "released", "compact" (models or weights), "shared"."""
    if isinstance(models, StackedModels) or _is_keras_model(models):
        models = [models]
    if isinstance(models, (str, bytes, ModelId)) or not hasattr(models, "__len__"):
        models = [models]
    if len(models) == 0:
        raise ValueError("predict needs at least one model; got an empty list.")
    groups: list[tuple[str, list]] = []
    for item in models:
        if isinstance(item, StackedModels):
            kind = "stacked"
        elif _is_shared_model(item):
            kind = "shared"
        else:
            identifier = _as_released_id(item)
            kind, item = ("released", identifier) if identifier is not None else ("compact", item)
        if groups and groups[-1][0] == kind and kind != "stacked":
            groups[-1][1].append(item)
        else:
            groups.append((kind, [item]))
    return groups


def _predict_keras(kind, items, images, data_root, batch_size, show_progress, timings) -> np.ndarray:
    rows = []
    for item in tqdm(items, desc="models (keras path)", disable=not show_progress or len(items) < 2):
        start = time.perf_counter()
        if kind == "released":
            item = load_compact_model(item.session_id, item.neuron, data_root=data_root)
        middle = time.perf_counter()
        if kind == "shared":
            rows.append(predict_shared_keras(item, images, batch_size))
        elif _is_keras_model(item):
            rows.append(predict_responses(item, images, batch_size=batch_size)[None])
        else:
            raise ValueError(
                "engine 'keras' needs Keras models or released model ids; got weights. "
                "Use engine 'auto' for get_weights() lists."
            )
        timings["load weights"] += middle - start
        timings["predict"] += time.perf_counter() - middle
    return np.concatenate(rows)


def predict_shared_keras(model, images, batch_size: int = KERAS_BATCH_SIZE) -> np.ndarray:
    """A shared compact model called as Keras layers: float32 ``(num_outputs, num_images)``."""
    outputs = [
        np.asarray(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    if not outputs:
        return np.zeros((model.output_shape[-1], 0), np.float32)
    return np.concatenate(outputs).reshape(len(images), -1).T.astype(np.float32)


def _predict_fast(kind, items, images, engine, data_root, batch_size, show_progress, timings) -> np.ndarray:
    if kind == "released":
        return predict_models_on_images(items, images, data_root=data_root, batch_size=batch_size,
                                        show_progress=show_progress, timings=timings, engine=engine)
    start = time.perf_counter()
    if kind == "shared":
        rows = [predict_shared_fast(fold_shared_model(model), images, batch_size, show_progress, engine).T
                for model in items]
        timings["predict"] += time.perf_counter() - start
        return np.concatenate(rows)
    stacked = items[0] if kind == "stacked" else stack_compact_models(items)
    middle = time.perf_counter()
    predictions = predict_stacked(stacked, images, batch_size=batch_size, show_progress=show_progress,
                                  engine=engine)
    timings["load weights"] += middle - start
    timings["predict"] += time.perf_counter() - middle
    return predictions


def predict(
    models,
    images,
    engine: str = "auto",
    batch_size: int | None = None,
    data_root=None,
    show_progress: bool = False,
    timings: dict | None = None,
) -> np.ndarray:
    """Responses of compact (and shared compact) models to recentred images.

    Args:
        models: one model or a sequence of them, each any of: a released
            model's id (:class:`classes.compact.architecture.ModelId`, a
            ``(session, neuron)`` pair, ``"190923/0"`` or
            ``"compact_model_190923_neuron0"``); a Keras compact model; a
            compact model's ``get_weights()`` list (36 arrays); a
            :class:`classes.prediction.stacked.StackedModels`; a Keras shared
            compact model (one row per output, 219).
        images: recentred ``(num_images, 112, 112, 3)`` (raw pixels minus the
            RGB means: :func:`classes.data.preprocessing.recenter_images`).
        engine: ``"auto"`` (default), ``"kernel"``, ``"tensorflow"`` or
            ``"keras"`` (see the module docstring).
        batch_size: images per call; None for the engine's default (16 on
            the fast path, 64 with Keras).
        data_root: where released models are read from
            (:func:`classes.data.data_root.resolve_data_root`).
        show_progress: show a progress bar.
        timings: optional dict; seconds spent in ``"load weights"`` and
            ``"predict"`` are added to it.

    Returns:
        float32 ``(num_rows, num_images)``: one row per compact model and per
        output of each shared model, in the order given.

    Raises:
        ValueError: an unknown model id or engine, ``"kernel"`` where it
            cannot run, images of the wrong shape or range, corrupt weights.
        FileNotFoundError: a released model's file is missing.
    """
    if engine not in PREDICT_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(PREDICT_ENGINES)}; got {engine!r}.")
    if engine != "keras":
        engine = resolve_engine(engine)
    images = check_images(images, "recentered")
    timings = timings if timings is not None else {}
    timings.setdefault("load weights", 0.0)
    timings.setdefault("predict", 0.0)
    rows = []
    for kind, items in _groups(models):
        if engine == "keras":
            rows.append(_predict_keras(kind, items, images, data_root, batch_size or KERAS_BATCH_SIZE,
                                       show_progress, timings))
        else:
            rows.append(_predict_fast(kind, items, images, engine, data_root, batch_size or DEFAULT_BATCH_SIZE,
                                      show_progress, timings))
    return np.concatenate(rows).astype(np.float32, copy=False)

"""Shared compact models: one network for all 219 neurons (SPEC section 3).

The release has 56 of them, ``data_shared_compact_models/<teacher>/
shared_compact_model_<K>filters.keras``: seven teachers (how the model was
trained) x eight filter counts K. Layers 0-2 have K filters and layers 3-4
have 100, with the compact model's layer types and names (``layer0_conv`` ...
``layer4_act``); the readout is a 1x1 Conv2D ``mixing_stage`` to 219
channels, a 28x28 valid DepthwiseConv2D ``spatial_pool_stage`` and a Flatten
``output_responses``. The ``linear_from_ensemble_model`` models have no
``layer*_act`` (ReLU) layers at all: each BN feeds the next convolution.

Inputs are recentred images ``(N, 112, 112, 3)``; outputs are ``(N, 219)``
in :func:`classes.compact.architecture.all_model_ids` order: 190923's 33 neurons,
201025's 89, 210225's 55, 211022's 42.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.compact.architecture import all_model_ids
from classes.data.data_root import resolve_data_root
from classes.data.preprocessing import check_images
from classes.data.release_files import verified_release_file
from classes.data.sessions import TEST_SESSIONS, get_session
from classes.runtime.keras_files import load_keras_file
from classes.runtime.quiet_tensorflow import keras, tf

TEACHERS = (
    "from_ensemble_model",
    "linear_from_ensemble_model",
    "from_V4data_direct_fit",
    "from_resnet50",
    "from_resnet50_robust",
    "from_vgg19",
    "from_cornets",
)
NUMS_SHARED_FILTERS = (5, 10, 25, 35, 50, 75, 100, 200)
NUM_OUTPUTS = 219
DEEP_LAYER_FILTERS = 100
FOLDER = "data_shared_compact_models"


def check_teacher_and_filters(teacher: str, num_filters) -> tuple[str, int]:
    """Validates a (teacher, K) pair.

    Raises:
        ValueError: unknown teacher (the message lists the seven) or K (lists
            the eight).
    """
    if teacher not in TEACHERS:
        raise ValueError(
            f"Unknown teacher {teacher!r}; the release's shared compact models "
            f"come from: {', '.join(TEACHERS)}."
        )
    if isinstance(num_filters, bool) or not isinstance(num_filters, (int, np.integer)):
        raise ValueError(
            f"num_filters must be an integer, one of {NUMS_SHARED_FILTERS}; got {num_filters!r}."
        )
    if int(num_filters) not in NUMS_SHARED_FILTERS:
        raise ValueError(
            f"No shared compact model with {num_filters} filters; the release has "
            f"K = {', '.join(str(count) for count in NUMS_SHARED_FILTERS)}."
        )
    return teacher, int(num_filters)


def shared_model_path(teacher: str, num_filters: int, data_root=None) -> Path:
    """Path of one released shared compact model.

    Returns:
        The path, checked against the release's ``MANIFEST.sha256`` the
        first time it is used (:func:`classes.data.release_files.verified_release_file`).

    Raises:
        ValueError: unknown teacher or K; the file does not match the manifest.
        FileNotFoundError: the file is not in the release at hand.
    """
    teacher, num_filters = check_teacher_and_filters(teacher, num_filters)
    root = resolve_data_root(data_root)
    path = (
        root
        / FOLDER
        / teacher
        / f"shared_compact_model_{num_filters}filters.keras"
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"Missing shared compact model {teacher} K={num_filters}: {path} does not "
            f"exist. The release has {len(TEACHERS)} x {len(NUMS_SHARED_FILTERS)} = 56 "
            f"of them under {FOLDER}/<teacher>/; download the folder from "
            "cowleygroup/V4_compact_models."
        )
    return verified_release_file(path, root)


def load_shared_compact_model(teacher: str, num_filters: int, data_root=None) -> keras.Model:
    """Loads a released shared compact model.

    Args:
        teacher: one of :data:`TEACHERS`.
        num_filters: K, one of :data:`NUMS_SHARED_FILTERS` (filters of layers
            0-2).
        data_root: see :func:`classes.data.data_root.resolve_data_root`.

    Returns:
        A ``keras.Model`` from recentred ``(N, 112, 112, 3)`` to ``(N, 219)``,
        named ``shared_<teacher>_<K>filters``.

    Raises:
        ValueError: unknown teacher or K; corrupt file; unexpected layers.
        FileNotFoundError: the file is missing.
    """
    path = shared_model_path(teacher, num_filters, data_root)
    model = load_keras_file(path, "shared compact model")
    _check_architecture(model, path, int(num_filters))
    model.name = f"shared_{teacher}_{int(num_filters)}filters"
    return model


def _check_architecture(model: keras.Model, path: Path, num_filters: int) -> None:
    if tuple(model.inputs[0].shape[1:]) != (112, 112, 3) or tuple(
        model.outputs[0].shape[1:]
    ) != (NUM_OUTPUTS,):
        raise ValueError(
            f"{path} maps {model.inputs[0].shape} to {model.outputs[0].shape}; a shared "
            f"compact model maps (N, 112, 112, 3) to (N, {NUM_OUTPUTS})."
        )
    names = {layer.name for layer in model.layers}
    expected = {f"layer{layer}_conv" for layer in range(5)} | {"mixing_stage", "spatial_pool_stage"}
    if not expected <= names:
        raise ValueError(f"{path} lacks layers {sorted(expected - names)}.")
    filters = [model.get_layer(f"layer{layer}_conv").filters for layer in range(5)]
    if filters != [num_filters] * 3 + [DEEP_LAYER_FILTERS] * 2:
        raise ValueError(
            f"{path} has filter counts {filters}; expected {[num_filters] * 3 + [100, 100]}."
        )


def predict_shared(model: keras.Model, images, batch_size: int = 64) -> np.ndarray:
    """Responses of a shared compact model to recentred images.

    Args:
        model: from :func:`load_shared_compact_model`.
        images: recentred ``(num_images, 112, 112, 3)``.
        batch_size: images per forward pass.

    Returns:
        float32 ``(num_images, 219)``, columns in
        :func:`classes.compact.architecture.all_model_ids` order.

    Raises:
        ValueError: images of the wrong shape or range; bad batch size.
    """
    images = check_images(images, "recentered")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    function = tf.function(lambda batch: model(batch, training=False))
    outputs = [
        np.asarray(function(tf.constant(images[start : start + batch_size], tf.float32)))
        for start in range(0, len(images), batch_size)
    ]
    if not outputs:
        return np.zeros((0, NUM_OUTPUTS), np.float32)
    return np.concatenate(outputs).astype(np.float32)


def session_columns(session_id) -> np.ndarray:
    """Columns of the 219 shared outputs that belong to one test session.

    Returns:
        int array of column indices, the session's neurons in order.

    Raises:
        ValueError: not one of the four held-out test sessions.
    """
    session = get_session(session_id)
    if session.session_id not in TEST_SESSIONS:
        raise ValueError(
            f"Session {session.session_id} has no neurons in the shared models; "
            f"they cover {', '.join(TEST_SESSIONS)}."
        )
    return np.array(
        [
            column
            for column, identifier in enumerate(all_model_ids())
            if identifier.session_id == session.session_id
        ]
    )

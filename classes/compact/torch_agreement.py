"""How closely the Torch compact models follow Keras: images, measurement, summary.

Each model is scored on the held-out (second) half of its own test session's
images (:func:`evaluation_images`; session 211022's zip is absent, so its
models get 210224's instead). The statistic is the largest |Keras - Torch|
over the images divided by the s.d. of the Keras responses
(:func:`relative_max_difference`), for both Torch builds: the release's
``.pt`` files (BN epsilon 1e-5) and the exact port of the Keras weights
(epsilon 1e-3); see :mod:`classes.compact.torch_conversion` and
docs/torch_port.md.
"""

from __future__ import annotations

import numpy as np

from classes.compact.torch_conversion import (
    load_torch_compact_model,
    torch_model_from_keras_weights,
)
from classes.compact.torch_model import predict_responses_torch, require_torch

# Session whose held-out images stand in for 211022's, whose zip is absent.
SUBSTITUTE_IMAGE_SESSION = "210224"
TORCH_BUILDS = ("release_pt", "from_keras")
# Largest max |Keras - Torch| / response s.d. over the 219 released models, on
# the first 64 held-out images of each model's session (docs/torch_port.md;
# worst models 211022/neuron27 and 211022/neuron9, on 210224's images).
MEASURED_MAX_RELATIVE_DIFFERENCE = {"release_pt": 0.0587, "from_keras": 4.34e-6}


def evaluation_images(
    session_id, data_root=None, num_images: int | None = None, cache_dir=None
):
    """The held-out (second-half) images of a model's own test session.

    Session 211022's images are not in the release; its models get the
    second half of validation session 210224's 800 normal images instead.

    Args:
        session_id: a held-out test session.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        num_images: keep the first ``num_images`` of the half; None keeps all.
        cache_dir: decoded-image cache (see :func:`classes.data.images.load_images`).

    Returns:
        ``(recentred float32 (n, 112, 112, 3), image_session, image_numbers
        (1-based), note)``; ``note`` is empty unless images were substituted.

    Raises:
        ValueError: an unknown session or a ``num_images`` below 1.
    """
    from classes.data.images import available_image_sessions, load_images
    from classes.data.preprocessing import recenter_images
    from classes.data.sessions import get_session, held_out_indices

    session = get_session(session_id)
    note = ""
    if session.session_id in available_image_sessions(data_root):
        image_session = session.session_id
        evaluation = held_out_indices(image_session)[1]
    else:
        image_session = SUBSTITUTE_IMAGE_SESSION
        count = get_session(image_session).num_images_in_file
        evaluation = np.arange(count // 2, count)
        note = (
            f"images of session {session.session_id} are absent from the release "
            f"(data_V4_responses/images/images_{session.session_id}.zip); used the "
            f"second half of session {image_session}'s images instead"
        )
    if num_images is not None:
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}.")
        evaluation = evaluation[:num_images]
    numbers = evaluation + 1
    images = recenter_images(
        load_images(image_session, numbers, data_root, cache_dir=cache_dir)
    )
    return images, image_session, numbers, note


def relative_max_difference(reference, other) -> float:
    """``max |reference - other|`` divided by the s.d. of ``reference``.

    Returns:
        float; infinite when ``reference`` is constant and the two differ.

    Raises:
        ValueError: the two are empty or of different shapes.
    """
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or reference.size == 0:
        raise ValueError(
            f"Need two non-empty response vectors of one shape; got {reference.shape} "
            f"and {other.shape}."
        )
    scale = reference.std()
    if scale == 0:
        return float("inf") if np.any(reference != other) else 0.0
    return float(np.max(np.abs(reference - other)) / scale)


def agreement_statistics(reference, responses) -> dict:
    """How closely ``responses`` follow ``reference`` (one model's two formats).

    Args:
        reference: responses ``(num_images,)`` of the reference format.
        responses: responses ``(num_images,)`` of another format.

    Returns:
        ``max_abs_diff``, ``max_diff_over_sd`` (see
        :func:`relative_max_difference`), ``max_diff_over_max_abs_response``,
        ``pearson_r`` and ``identical`` (bitwise equal).
    """
    difference = np.abs(reference.astype(np.float64) - responses.astype(np.float64))
    return {
        "max_abs_diff": float(difference.max()),
        "max_diff_over_sd": relative_max_difference(reference, responses),
        "max_diff_over_max_abs_response": float(difference.max() / np.abs(reference).max()),
        "pearson_r": float(np.corrcoef(reference, responses)[0, 1]),
        "identical": bool(np.array_equal(reference, responses)),
    }


def measure_torch_agreement(
    identifiers,
    num_images: int = 64,
    data_root=None,
    show_progress: bool = True,
    cache_dir=None,
    batch_size: int = 64,
):
    """Responses of Keras and both Torch builds for many released models.

    Args:
        identifiers: :class:`classes.compact.architecture.ModelId` list.
        num_images: the first this many held-out images of each model's
            session (see :func:`evaluation_images`).
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        show_progress: tqdm bar.
        cache_dir: decoded-image cache.
        batch_size: images per forward pass (Keras and Torch).

    Returns:
        One dict per model: ``model`` (``"<session>/neuron<k>"``),
        ``image_session``, and float arrays ``(num_images,)``: ``keras`` (the
        ``.keras`` file through :func:`predict_responses`), ``release_pt``
        (the release's ``.pt``, epsilon 1e-5) and ``from_keras`` (the exact
        port, epsilon 1e-3). Summarise with :func:`summarize_agreement`.
    """
    from tqdm import tqdm

    from classes.compact.model import load_compact_model
    from classes.compact.tools import predict_responses

    require_torch()
    images_by_session = {}
    rows = []
    for identifier in tqdm(identifiers, desc="Keras vs Torch", disable=not show_progress):
        if identifier.session_id not in images_by_session:
            images_by_session[identifier.session_id] = evaluation_images(
                identifier.session_id, data_root, num_images, cache_dir
            )
        images, image_session, _, _ = images_by_session[identifier.session_id]
        keras_model = load_compact_model(identifier.session_id, identifier.neuron, "keras", data_root)
        release = load_torch_compact_model(identifier.session_id, identifier.neuron, data_root)
        rows.append(
            {
                "model": str(identifier),
                "image_session": image_session,
                "keras": predict_responses(keras_model, images, batch_size),
                "release_pt": predict_responses_torch(release, images, batch_size),
                "from_keras": predict_responses_torch(
                    torch_model_from_keras_weights(keras_model), images, batch_size
                ),
            }
        )
    return rows


def summarize_agreement(rows, num_images: int | None = None) -> dict:
    """Max |Keras - Torch| / response s.d. over models, for both Torch builds.

    Args:
        rows: from :func:`measure_torch_agreement`.
        num_images: use only each model's first ``num_images`` images;
            None uses all.

    Returns:
        ``{"num_models", "num_images", "per_model": {build: {model: ratio}},
        build: {"max", "median", "worst_model"}}`` for each build in
        ``TORCH_BUILDS``.

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("No measured models to summarise.")
    count = len(rows[0]["keras"]) if num_images is None else int(num_images)
    summary = {"num_models": len(rows), "num_images": count, "per_model": {}}
    for build in TORCH_BUILDS:
        ratios = {
            row["model"]: relative_max_difference(row["keras"][:count], row[build][:count])
            for row in rows
        }
        values = np.array(list(ratios.values()))
        summary["per_model"][build] = ratios
        summary[build] = {
            "max": float(values.max()),
            "median": float(np.median(values)),
            "worst_model": list(ratios)[int(np.argmax(values))],
        }
    return summary

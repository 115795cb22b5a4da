"""What ensemble members compute: outputs, embeddings, mapped predictions.

On a new session the member's ``layer4_add`` maps ``(7, 7, 512)`` are the
embeddings that a ridge or factorized linear mapping takes to that session's
neurons; the ensemble's prediction is the mean of the members' mapped
predictions.
"""

from __future__ import annotations

import weakref

import numpy as np

from classes.ensemble.architecture import member_config_of
from classes.runtime.quiet_tensorflow import keras, tf


def check_features_for(member: keras.Model, features) -> np.ndarray:
    """Validates features against a member's input shape.

    Args:
        member: an ensemble member.
        features: array ``(num_images, *member_input_shape)``.

    Returns:
        The features as float32.

    Raises:
        ValueError: wrong shape, or NaN or infinite values.
    """
    array = np.asarray(features)
    expected = tuple(member.input_shape[1:])
    if array.ndim != 4 or array.shape[1:] != expected:
        raise ValueError(
            f"features must be (num_images, {', '.join(map(str, expected))}) for this "
            f"member; got shape {array.shape}. Members take ResNet50 conv4_block4_out "
            "features (see classes.ensemble.taskdriven_features) of the size they were built for."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("features contain NaN or infinite values.")
    return array.astype(np.float32, copy=False)


# Sub-models per (member, layer), built once: validation asks for embeddings
# after every session. Calls run eagerly: tracing would cost more than it saves.
_SUBMODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _submodel(member: keras.Model, layer_name: str | None) -> keras.Model:
    """The member up to ``layer_name`` (the whole member for None), cached."""
    if layer_name is None:
        return member
    cache = _SUBMODELS.setdefault(member, {})
    if layer_name not in cache:
        cache[layer_name] = keras.Model(member.input, member.get_layer(layer_name).output)
    return cache[layer_name]


def _run_in_batches(member: keras.Model, layer_name: str | None, features: np.ndarray,
                    batch_size: int) -> np.ndarray:
    """Runs ``_submodel(member, layer_name)`` on ``features`` in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    model = _submodel(member, layer_name)
    outputs = [
        np.asarray(model(tf.constant(features[start : start + batch_size]), training=False))
        for start in range(0, len(features), batch_size)
    ]
    if not outputs:
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    return np.concatenate(outputs)


def member_outputs(member: keras.Model, features, batch_size: int = 64) -> np.ndarray:
    """The member's readout outputs.

    Args:
        member: an ensemble member.
        features: ResNet50 features ``(num_images, *member_input_shape)``.
        batch_size: images per forward pass.

    Returns:
        ``(num_images, num_outputs)``.

    Raises:
        ValueError: bad features or a non-positive batch size.
    """
    return _run_in_batches(member, None, check_features_for(member, features), batch_size)


def member_embeddings(member: keras.Model, features, batch_size: int = 64) -> np.ndarray:
    """Activity of the last residual block's sum, ``(num_images, 7, 7, width)``.

    These are the embeddings that linear mappings take to new sessions.

    Args:
        member: an ensemble member.
        features: ResNet50 features ``(num_images, *member_input_shape)``.
        batch_size: images per forward pass.

    Returns:
        ``(num_images, 7, 7, width)`` for the full-size member.

    Raises:
        ValueError: bad features or a non-positive batch size.
    """
    layer_name = member_config_of(member).embedding_layer
    return _run_in_batches(member, layer_name, check_features_for(member, features), batch_size)


def ensemble_mapped_predictions(
    members, fit_features, fit_responses, evaluation_features, mapping_factory, batch_size: int = 64
) -> np.ndarray:
    """The ensemble's prediction for a new session: mean over members.

    Each member's embeddings are mapped to the session's neurons by a fresh
    mapping fit on the fitting images; the members' predictions for the
    evaluation images are averaged.

    Args:
        members: list of members.
        fit_features, evaluation_features: ResNet50 features
            ``(num_images, 14, 14, 1024)`` (or the members' input shape).
        fit_responses: ``(num_neurons, num_fit_images)``.
        mapping_factory: ``callable()`` returning an unfitted mapping with
            ``fit(features, responses)`` and ``predict(features)`` (e.g.
            :class:`classes.scoring.ridge_mapping.RidgeMapping`).

        batch_size: images per forward pass.

    Returns:
        ``(num_neurons, num_evaluation_images)``.

    Raises:
        ValueError: no members, or bad features.
    """
    if not members:
        raise ValueError("No ensemble members given.")
    total = None
    for member in members:
        fit_embeddings = member_embeddings(member, fit_features, batch_size)
        evaluation_embeddings = member_embeddings(member, evaluation_features, batch_size)
        mapping = mapping_factory().fit(fit_embeddings, fit_responses)
        predictions = mapping.predict(evaluation_embeddings)
        total = predictions if total is None else total + predictions
    return total / len(members)

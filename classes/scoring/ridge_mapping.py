"""Ridge regression from model embeddings to V4 neurons (SPEC section 4).

A linear mapping predicts each neuron's responses from a model's embeddings
(flattened activity of one layer). The ridge penalty is chosen per neuron
by K-fold cross-validation, and every candidate penalty is served by one
eigendecomposition of the training fold's (centred) Gram matrix, so the cost
does not grow with the number of penalties. Working in the dual (images x
images) keeps the cost modest for wide embeddings such as ResNet50's
14x14x1024 = 200,704 features on a few hundred images.

Conventions: ``features`` are ``(num_images, ...)`` (flattened inside),
``responses`` and predictions are ``(num_neurons, num_images)`` as in
:mod:`classes.scoring.metrics`.
"""

from __future__ import annotations

import numpy as np

from classes.scoring import metrics

# Candidate penalties, relative to the mean eigenvalue of the centred Gram
# matrix, which makes the grid independent of the embeddings' scale.
DEFAULT_RELATIVE_PENALTIES = np.logspace(-3, 3, 13)
DEFAULT_NUM_FOLDS = 5
_GRAM_CHUNK = 8192


def flatten_features(features) -> np.ndarray:
    """``(num_images, ...)`` -> float array ``(num_images, num_features)``."""
    array = np.asarray(features)
    if array.ndim < 2:
        raise ValueError(
            f"features must be (num_images, num_features...) with at least 2 axes; "
            f"got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"features must be numeric; got dtype {array.dtype}.")
    flat = array.reshape(array.shape[0], -1)
    if not np.all(np.isfinite(flat)):
        raise ValueError("features contain NaN or infinite values.")
    return flat


def check_responses(responses, num_images: int) -> np.ndarray:
    """Validates ``(num_neurons, num_images)`` responses (1-D: one neuron)."""
    array = np.asarray(responses, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != num_images:
        raise ValueError(
            f"responses must be (num_neurons, {num_images}) to match the features' "
            f"{num_images} images; got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("responses contain NaN or infinite values.")
    return array


def kfold_indices(num_images: int, num_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Random, near-equal folds of ``range(num_images)``.

    Returns:
        ``num_folds`` sorted int arrays that partition the images.

    Raises:
        ValueError: fewer than 2 folds, or fewer than 2 images per fold.
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}.")
    if num_images < 2 * num_folds:
        raise ValueError(
            f"{num_images} images are too few for {num_folds}-fold cross-validation "
            "(need at least 2 per fold)."
        )
    order = np.random.default_rng(seed).permutation(num_images)
    return [np.sort(fold) for fold in np.array_split(order, num_folds)]


def gram_matrix(flat_features: np.ndarray) -> np.ndarray:
    """Uncentred Gram matrix ``X X'`` in float64, accumulated over feature chunks.

    Chunking bounds the float64 copy for wide embeddings.
    """
    num_images, num_features = flat_features.shape
    gram = np.zeros((num_images, num_images))
    for start in range(0, num_features, _GRAM_CHUNK):
        chunk = np.asarray(flat_features[:, start : start + _GRAM_CHUNK], dtype=np.float64)
        gram += chunk @ chunk.T
    return gram


def _centred_blocks(gram: np.ndarray, train: np.ndarray, test: np.ndarray | None):
    """Gram blocks of features centred on the training images' mean.

    Returns:
        ``(train x train, test x train)`` blocks (the second None without test).
    """
    train_block = gram[np.ix_(train, train)]
    train_row_means = train_block.mean(axis=1)
    grand_mean = train_row_means.mean()
    centred_train = (
        train_block - train_row_means[:, None] - train_row_means[None, :] + grand_mean
    )
    if test is None:
        return centred_train, None
    cross = gram[np.ix_(test, train)]
    centred_cross = (
        cross - cross.mean(axis=1, keepdims=True) - train_row_means[None, :] + grand_mean
    )
    return centred_train, centred_cross


def dual_predictions(
    centred_train: np.ndarray,
    centred_cross: np.ndarray,
    targets: np.ndarray,
    penalties: np.ndarray,
) -> np.ndarray:
    """Ridge predictions for held-out images at every penalty, from one eigh.

    With the centred training Gram matrix ``K = U diag(e) U'`` the ridge
    weights are ``X' U diag(1/(e + penalty)) U' y``, so held-out predictions
    are ``K_cross U diag(1/(e + penalty)) U' y``.

    Args:
        centred_train: ``(m, m)``.
        centred_cross: ``(t, m)``, held-out rows against training rows.
        targets: centred training targets ``(m, num_neurons)``.
        penalties: ``(num_penalties,)`` positive.

    Returns:
        ``(num_penalties, t, num_neurons)``, without the targets' mean.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(centred_train)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # round-off can make the null ones negative
    projected_targets = eigenvectors.T @ targets
    projected_cross = centred_cross @ eigenvectors
    shrinkage = 1.0 / (eigenvalues[None, :] + penalties[:, None])
    return np.einsum("tk,lk,kn->ltn", projected_cross, shrinkage, projected_targets, optimize=True)


def _check_penalties(penalties) -> np.ndarray:
    values = np.atleast_1d(np.asarray(penalties, dtype=np.float64))
    if values.ndim != 1 or values.size == 0 or np.any(~np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"penalties must be positive finite numbers; got {penalties!r}.")
    return values


def fit_ridge(features, responses, penalty) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge with a fixed penalty per neuron (no cross-validation).

    Minimises, per neuron, ``||y - X w - b||^2 + penalty * ||w||^2`` with an
    unpenalised intercept ``b`` (features and responses centred).

    Args:
        features: ``(num_images, ...)``.
        responses: ``(num_neurons, num_images)``.
        penalty: scalar or ``(num_neurons,)``, absolute (in units of the
            squared features).

    Returns:
        ``(coefficients (num_features, num_neurons), intercepts (num_neurons,))``.
    """
    flat = flatten_features(features)
    targets = check_responses(responses, flat.shape[0])
    penalties = np.broadcast_to(_check_penalties(penalty), (targets.shape[0],))
    coefficients, intercepts, _ = _fit_with_penalties(flat, gram_matrix(flat), targets, penalties)
    return coefficients, intercepts


def _fit_with_penalties(flat, gram, targets, penalties):
    """Primal weights from the dual solution, one penalty per neuron."""
    everything = np.arange(flat.shape[0])
    centred_gram, _ = _centred_blocks(gram, everything, None)
    eigenvalues, eigenvectors = np.linalg.eigh(centred_gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    target_means = targets.mean(axis=1)
    centred_targets = (targets - target_means[:, None]).T
    dual = eigenvectors @ (
        (eigenvectors.T @ centred_targets) / (eigenvalues[:, None] + penalties[None, :])
    )
    feature_mean = flat.mean(axis=0, dtype=np.float64)
    coefficients = np.empty((flat.shape[1], targets.shape[0]))
    for start in range(0, flat.shape[1], _GRAM_CHUNK):
        chunk = np.asarray(flat[:, start : start + _GRAM_CHUNK], dtype=np.float64)
        chunk = chunk - feature_mean[start : start + _GRAM_CHUNK]
        coefficients[start : start + _GRAM_CHUNK] = chunk.T @ dual
    intercepts = target_means - feature_mean @ coefficients
    return coefficients, intercepts, feature_mean


class RidgeMapping:
    """Ridge regression with a per-neuron penalty chosen by K-fold CV.

    The candidate penalties are ``relative_penalties`` times the mean
    eigenvalue of the centred Gram matrix of the fitting images. Each
    neuron's penalty maximises the Pearson correlation between its
    out-of-fold predictions (pooled over folds) and its responses. For a
    fixed neuron the noise-corrected R2 (:mod:`classes.scoring.metrics`) is an
    increasing function of that correlation's square, so the choice is the
    one the noise-corrected R2 would make, without needing the noise level.

    Attributes (after :meth:`fit`):
        coefficients: ``(num_features, num_neurons)``.
        intercepts: ``(num_neurons,)``.
        penalties: chosen absolute penalty per neuron ``(num_neurons,)``.
        candidate_penalties: absolute grid ``(num_penalties,)``.
        cv_correlations: ``(num_penalties, num_neurons)``.
    """

    def __init__(
        self,
        relative_penalties=DEFAULT_RELATIVE_PENALTIES,
        num_folds: int = DEFAULT_NUM_FOLDS,
        seed: int = 0,
    ):
        self.relative_penalties = _check_penalties(relative_penalties)
        if num_folds < 2:
            raise ValueError(f"num_folds must be at least 2, got {num_folds}.")
        self.num_folds = num_folds
        self.seed = seed
        self.coefficients = None

    def fit(self, features, responses, gram: np.ndarray | None = None) -> RidgeMapping:
        """Chooses penalties by cross-validation and fits on all images.

        Args:
            features: ``(num_images, ...)``.
            responses: ``(num_neurons, num_images)``.
            gram: the features' uncentred Gram matrix, when already at hand.

        Returns:
            self.
        """
        flat = flatten_features(features)
        targets = check_responses(responses, flat.shape[0])
        gram = gram_matrix(flat) if gram is None else gram
        candidates, correlations = select_penalties(
            gram, targets, self.relative_penalties, self.num_folds, self.seed
        )
        best = np.argmax(np.nan_to_num(correlations, nan=-np.inf), axis=0)
        self.candidate_penalties = candidates
        self.cv_correlations = correlations
        self.penalties = candidates[best]
        self.coefficients, self.intercepts, _ = _fit_with_penalties(
            flat, gram, targets, self.penalties
        )
        return self

    def predict(self, features) -> np.ndarray:
        """Predicted responses ``(num_neurons, num_images)``."""
        if self.coefficients is None:
            raise ValueError("Call fit before predict.")
        flat = flatten_features(features)
        if flat.shape[1] != self.coefficients.shape[0]:
            raise ValueError(
                f"features have {flat.shape[1]} values per image; the mapping was fit "
                f"on {self.coefficients.shape[0]}."
            )
        predictions = np.tile(self.intercepts, (flat.shape[0], 1))
        for start in range(0, flat.shape[1], _GRAM_CHUNK):
            chunk = np.asarray(flat[:, start : start + _GRAM_CHUNK], dtype=np.float64)
            predictions += chunk @ self.coefficients[start : start + _GRAM_CHUNK]
        return predictions.T


def select_penalties(gram, targets, relative_penalties, num_folds: int, seed: int = 0):
    """Out-of-fold correlation of every candidate penalty for every neuron.

    Args:
        gram: uncentred Gram matrix ``(m, m)`` of the fitting images.
        targets: ``(num_neurons, m)``.

    Returns:
        ``(absolute candidate penalties (L,), correlations (L, num_neurons))``.
    """
    num_images = targets.shape[1]
    centred_all, _ = _centred_blocks(gram, np.arange(num_images), None)
    scale = max(float(np.trace(centred_all)) / num_images, np.finfo(float).tiny)
    candidates = _check_penalties(relative_penalties) * scale
    out_of_fold = np.empty((len(candidates), num_images, targets.shape[0]))
    for test in kfold_indices(num_images, num_folds, seed):
        train = np.setdiff1d(np.arange(num_images), test)
        centred_train, centred_cross = _centred_blocks(gram, train, test)
        train_targets = targets[:, train].T
        means = train_targets.mean(axis=0)
        out_of_fold[:, test] = (
            dual_predictions(centred_train, centred_cross, train_targets - means, candidates)
            + means
        )
    correlations = np.stack(
        [metrics.pearson_r(predictions.T, targets) for predictions in out_of_fold]
    )
    return candidates, correlations


def cross_validated_predictions(
    features,
    responses,
    num_folds: int = DEFAULT_NUM_FOLDS,
    relative_penalties=DEFAULT_RELATIVE_PENALTIES,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold ridge predictions with nested per-neuron penalty choice.

    Each fold's images are predicted by a :class:`RidgeMapping` fit on the
    other folds (which chooses its penalties by an inner CV on them), so no
    image's prediction has seen that image.

    Returns:
        ``(num_neurons, num_images)``.
    """
    flat = flatten_features(features)
    targets = check_responses(responses, flat.shape[0])
    gram = gram_matrix(flat)
    predictions = np.empty_like(targets)
    for fold, test in enumerate(kfold_indices(flat.shape[0], num_folds, seed)):
        train = np.setdiff1d(np.arange(flat.shape[0]), test)
        mapping = RidgeMapping(relative_penalties, num_folds, seed + fold + 1)
        mapping.fit(flat[train], targets[:, train], gram=gram[np.ix_(train, train)])
        predictions[:, test] = mapping.predict(flat[test])
    return predictions


def cross_validated_noise_corrected_r2(
    features, means, noise_variance, num_repeats, num_folds: int = DEFAULT_NUM_FOLDS, seed: int = 0
) -> np.ndarray:
    """Noise-corrected R2 per neuron of cross-validated ridge predictions.

    The validation score of SPEC section 4 is the median of this over the
    validation session's neurons.

    Args:
        features: ``(num_images, ...)`` embeddings.
        means: repeat-averaged responses ``(num_neurons, num_images)`` in
            spike counts (the units of ``noise_variance``).
        noise_variance: trial variance per neuron ``(num_neurons,)``.
        num_repeats: repeats per image, per neuron or scalar.

    Returns:
        ``(num_neurons,)``.
    """
    predictions = cross_validated_predictions(features, means, num_folds, seed=seed)
    return metrics.noise_corrected_r2_from_summary(predictions, means, noise_variance, num_repeats)

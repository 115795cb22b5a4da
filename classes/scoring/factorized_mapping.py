"""Factorized (spatial x mixing) linear mapping, Klindt et al. (2017).

Each neuron's response is read out from a ``(height, width, channels)``
feature map with a rank-one weight: a spatial mask times a channel mixing
vector::

    prediction[n] = sum_{x,y,c} spatial[n,x,y] * mixing[n,c] * features[x,y,c] + bias[n]

The weights are fit by gradient descent (Adam, TensorFlow), all neurons at
once, with three regularisers per neuron: L1 on the spatial mask (a compact
receptive field), the squared Laplacian of the mask (smoothness) and L2 on
the mixing weights (which also fixes the scale that the factorization leaves
free). The regulariser strength is chosen per neuron from a small grid by
K-fold cross-validation, the same way as the ridge penalty
(:class:`classes.scoring.ridge_mapping.RidgeMapping`).

Conventions: ``features`` ``(num_images, height, width, channels)``,
responses and predictions ``(num_neurons, num_images)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classes.runtime.quiet_tensorflow import tf
from classes.scoring import metrics
from classes.scoring.ridge_mapping import check_responses, kfold_indices

_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)


@dataclass(frozen=True)
class Regularization:
    """Strengths of the three regularisers (per neuron, added to the MSE of
    z-scored responses).

    Attributes:
        spatial_l1: weight of ``sum |spatial|``.
        laplacian: weight of ``sum (Laplacian * spatial)^2``.
        mixing_l2: weight of ``sum mixing^2``.
    """

    spatial_l1: float
    laplacian: float
    mixing_l2: float

    def __post_init__(self):
        for name in ("spatial_l1", "laplacian", "mixing_l2"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}.")


# A small grid, from light to strong; the spatial L1 and the smoothness grow
# together because both shape the receptive field.
DEFAULT_GRID = (
    Regularization(1e-4, 1e-3, 1e-3),
    Regularization(1e-3, 1e-2, 1e-3),
    Regularization(1e-2, 1e-1, 1e-3),
)


def check_feature_maps(features) -> np.ndarray:
    """Validates ``(num_images, height, width, channels)`` feature maps."""
    array = np.asarray(features)
    if array.ndim != 4:
        raise ValueError(
            "features for the factorized mapping must be feature maps "
            f"(num_images, height, width, channels); got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"features must be numeric; got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("features contain NaN or infinite values.")
    return array


_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPSILON = 0.9, 0.999, 1e-7


@tf.function(
    input_signature=[
        tf.TensorSpec([None, None, None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, 3], tf.float32),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.float32),
    ]
)
def _adam_descent(features, targets, orders, spatial, mixing, strengths, batch_size, learning_rate):
    """Adam on the regularised loss, every epoch in one traced graph.

    Written as one function of tensors (not Keras variables and optimizer)
    so that it is traced once and reused by every fit, whatever the grid
    point or fold; tracing would otherwise dominate small fits.
    """
    bias = tf.zeros(tf.shape(targets)[1:], tf.float32)
    parameters = [spatial, mixing, bias]
    first_moments = [tf.zeros_like(value) for value in parameters]
    second_moments = [tf.zeros_like(value) for value in parameters]
    l1, laplacian_weight, l2 = strengths[:, 0], strengths[:, 1], strengths[:, 2]
    laplacian_kernel = tf.constant(_LAPLACIAN[:, :, None, None])
    num_batches = tf.shape(features)[0] // batch_size  # equal batches, no ragged tail
    step = tf.constant(0.0)
    for epoch in tf.range(tf.shape(orders)[0]):
        for index in tf.range(num_batches):
            batch = orders[epoch, index * batch_size : (index + 1) * batch_size]
            batch_features = tf.gather(features, batch)
            batch_targets = tf.gather(targets, batch)
            with tf.GradientTape() as tape:
                tape.watch(parameters)
                spatial, mixing, bias = parameters
                # Mix channels first: (B, H, W, C) x (N, C) -> (B, H, W, N).
                mixed = tf.einsum("bhwc,nc->bhwn", batch_features, mixing)
                predictions = tf.einsum("bhwn,nhw->bn", mixed, spatial) + bias
                # Sum over neurons of each one's mean squared error: neurons stay independent.
                error = tf.reduce_sum(
                    tf.reduce_mean(tf.square(predictions - batch_targets), axis=0)
                )
                smoothed = tf.nn.conv2d(spatial[..., None], laplacian_kernel, 1, "SAME")[..., 0]
                penalty = tf.reduce_sum(
                    l1 * tf.reduce_sum(tf.abs(spatial), axis=(1, 2))
                    + laplacian_weight * tf.reduce_sum(tf.square(smoothed), axis=(1, 2))
                    + l2 * tf.reduce_sum(tf.square(mixing), axis=1)
                )
                loss = error + penalty
            gradients = tape.gradient(loss, parameters)
            step += 1.0
            correction = tf.sqrt(1.0 - _ADAM_BETA2**step) / (1.0 - _ADAM_BETA1**step)
            updated, new_first, new_second = [], [], []
            for value, gradient, first, second in zip(
                parameters, gradients, first_moments, second_moments, strict=True
            ):
                first = _ADAM_BETA1 * first + (1.0 - _ADAM_BETA1) * gradient
                second = _ADAM_BETA2 * second + (1.0 - _ADAM_BETA2) * tf.square(gradient)
                updated.append(
                    value - learning_rate * correction * first / (tf.sqrt(second) + _ADAM_EPSILON)
                )
                new_first.append(first)
                new_second.append(second)
            parameters, first_moments, second_moments = updated, new_first, new_second
    return parameters


def _fit_weights(
    features: np.ndarray,
    targets: np.ndarray,
    strengths: np.ndarray,
    num_steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
):
    """Gradient-descent fit of normalised features to z-scored targets.

    Args:
        features: float32 ``(m, height, width, channels)``, normalised.
        targets: float32 ``(m, num_neurons)``, z-scored.
        strengths: ``(num_neurons, 3)`` per-neuron regulariser strengths.

    Returns:
        ``(spatial (N, height, width), mixing (N, channels), bias (N,))``.
    """
    num_images, height, width, channels = features.shape
    num_neurons = targets.shape[1]
    generator = np.random.default_rng(seed)
    # A near-uniform mask and random mixing: both factors get gradients from the start.
    spatial = np.full((num_neurons, height, width), 1.0 / (height * width)) + generator.normal(
        0.0, 0.01 / (height * width), (num_neurons, height, width)
    )
    mixing = generator.normal(0.0, 1.0 / np.sqrt(channels), (num_neurons, channels))
    batch_size = min(batch_size, num_images)
    # Whole epochs (shuffled passes) until at least num_steps steps; images
    # beyond the last full batch fall in different batches each epoch.
    num_epochs = -(-num_steps // (num_images // batch_size))
    orders = np.stack([generator.permutation(num_images) for _ in range(num_epochs)])
    spatial, mixing, bias = _adam_descent(
        tf.constant(features, tf.float32),
        tf.constant(targets, tf.float32),
        tf.constant(orders, tf.int32),
        tf.constant(spatial, tf.float32),
        tf.constant(mixing, tf.float32),
        tf.constant(strengths, tf.float32),
        tf.constant(batch_size, tf.int32),
        tf.constant(learning_rate, tf.float32),
    )
    return spatial.numpy(), mixing.numpy(), bias.numpy()


class FactorizedMapping:
    """Spatial x mixing linear mapping with per-neuron CV regularisation.

    Features are normalised per channel (mean and s.d. over images and
    space of the fitting images) and responses z-scored per neuron before
    the fit; predictions are returned in the responses' units.

    Args:
        grid: candidate :class:`Regularization` strengths.
        num_folds: folds for choosing among them (skipped for a one-point grid).
        num_steps: gradient steps per fit (rounded up to whole passes).
        batch_size: images per gradient step.
        learning_rate: Adam's learning rate.
        seed: initialisation, batch order and folds.

    Attributes (after :meth:`fit`):
        spatial: ``(num_neurons, height, width)`` masks.
        mixing: ``(num_neurons, channels)``, in normalised feature units.
        bias: ``(num_neurons,)``, in z-scored response units.
        chosen: index into ``grid`` per neuron.
        cv_correlations: ``(len(grid), num_neurons)`` (None for one point).
    """

    def __init__(
        self,
        grid=DEFAULT_GRID,
        num_folds: int = 3,
        num_steps: int = 300,
        batch_size: int = 128,
        learning_rate: float = 0.01,
        seed: int = 0,
    ):
        self.grid = tuple(grid)
        if not self.grid or not all(isinstance(point, Regularization) for point in self.grid):
            raise ValueError("grid must be a non-empty sequence of Regularization.")
        if num_folds < 2 or num_steps < 1 or batch_size < 1 or learning_rate <= 0:
            raise ValueError(
                "num_folds must be >= 2, num_steps and batch_size >= 1 and learning_rate > 0; "
                f"got {num_folds}, {num_steps}, {batch_size}, {learning_rate}."
            )
        self.num_folds = num_folds
        self.num_steps = num_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.spatial = None

    def _fit_once(self, features, targets, strengths, seed):
        """Normalises, fits and returns the fitted state as a dict."""
        feature_mean = features.mean(axis=(0, 1, 2), dtype=np.float64)
        feature_std = features.std(axis=(0, 1, 2), dtype=np.float64)
        feature_std = np.where(feature_std > 0, feature_std, 1.0)
        target_mean = targets.mean(axis=1)
        target_std = targets.std(axis=1)
        target_std = np.where(target_std > 0, target_std, 1.0)
        # float32 arithmetic: a float64 copy of wide feature maps would double the memory.
        normalised = (features - feature_mean.astype(np.float32)) / feature_std.astype(np.float32)
        normalised = normalised.astype(np.float32, copy=False)
        z_scored = ((targets - target_mean[:, None]) / target_std[:, None]).T.astype(np.float32)
        spatial, mixing, bias = _fit_weights(
            normalised, z_scored, strengths, self.num_steps, self.batch_size,
            self.learning_rate, seed,
        )
        return {
            "spatial": spatial, "mixing": mixing, "bias": bias,
            "feature_mean": feature_mean, "feature_std": feature_std,
            "target_mean": target_mean, "target_std": target_std,
        }

    @staticmethod
    def _predict_with(state, features) -> np.ndarray:
        normalised = (np.asarray(features, np.float32) - state["feature_mean"].astype(np.float32)) / (
            state["feature_std"].astype(np.float32)
        )
        z_scored = np.einsum(
            "mhwc,nhw,nc->nm", normalised, state["spatial"], state["mixing"], optimize=True
        ) + state["bias"][:, None]
        return z_scored * state["target_std"][:, None] + state["target_mean"][:, None]

    def _strengths(self, choice: np.ndarray) -> np.ndarray:
        table = np.array(
            [[point.spatial_l1, point.laplacian, point.mixing_l2] for point in self.grid]
        )
        return table[choice]

    def fit(self, features, responses) -> FactorizedMapping:
        """Chooses each neuron's regularisation by CV, then fits on all images.

        Args:
            features: ``(num_images, height, width, channels)``.
            responses: ``(num_neurons, num_images)``.

        Returns:
            self.
        """
        features = check_feature_maps(features)
        targets = check_responses(responses, features.shape[0])
        num_neurons, num_images = targets.shape
        if len(self.grid) == 1:
            self.chosen = np.zeros(num_neurons, dtype=int)
            self.cv_correlations = None
        else:
            out_of_fold = np.empty((len(self.grid), num_neurons, num_images))
            folds = kfold_indices(num_images, self.num_folds, self.seed)
            for point in range(len(self.grid)):
                strengths = self._strengths(np.full(num_neurons, point))
                for fold, test in enumerate(folds):
                    train = np.setdiff1d(np.arange(num_images), test)
                    state = self._fit_once(
                        features[train], targets[:, train], strengths, self.seed + 1 + fold
                    )
                    out_of_fold[point][:, test] = self._predict_with(state, features[test])
            self.cv_correlations = np.stack(
                [_finite_rows_correlation(predictions, targets) for predictions in out_of_fold]
            )
            self.chosen = np.argmax(np.nan_to_num(self.cv_correlations, nan=-np.inf), axis=0)
        self._state = self._fit_once(features, targets, self._strengths(self.chosen), self.seed)
        self.spatial = self._state["spatial"]
        self.mixing = self._state["mixing"]
        self.bias = self._state["bias"]
        return self

    def predict(self, features) -> np.ndarray:
        """Predicted responses ``(num_neurons, num_images)``."""
        if self.spatial is None:
            raise ValueError("Call fit before predict.")
        features = check_feature_maps(features)
        expected = self.spatial.shape[1:] + self.mixing.shape[1:]
        if features.shape[1:] != expected:
            raise ValueError(
                f"features have maps of shape {features.shape[1:]}; the mapping was fit on {expected}."
            )
        return self._predict_with(self._state, features)


def cross_validated_predictions(
    features, responses, num_folds: int = 5, seed: int = 0, **mapping_options
) -> np.ndarray:
    """Out-of-fold predictions of :class:`FactorizedMapping` (nested choice).

    Returns:
        ``(num_neurons, num_images)``.
    """
    features = check_feature_maps(features)
    targets = check_responses(responses, features.shape[0])
    predictions = np.empty_like(targets)
    for fold, test in enumerate(kfold_indices(features.shape[0], num_folds, seed)):
        train = np.setdiff1d(np.arange(features.shape[0]), test)
        mapping = FactorizedMapping(seed=seed + fold + 1, **mapping_options)
        predictions[:, test] = mapping.fit(features[train], targets[:, train]).predict(
            features[test]
        )
    return predictions


def _finite_rows_correlation(predictions, targets) -> np.ndarray:
    """Pearson r per neuron; NaN for a neuron whose fit diverged (non-finite predictions), so it is not chosen."""
    finite = np.all(np.isfinite(predictions), axis=1)
    correlations = np.full(len(predictions), np.nan)
    if np.any(finite):
        correlations[finite] = metrics.pearson_r(predictions[finite], targets[finite])
    return correlations

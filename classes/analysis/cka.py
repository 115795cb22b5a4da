"""Linear CKA between the activity of one layer in two compact models.

Linear centred kernel alignment (Kornblith et al. 2019; SPEC section 5) of
two activity matrices ``X (M, Dx)`` and ``Y (M, Dy)`` over the same ``M``
images, each centred over images (``Xc``, ``Yc``)::

    CKA(X, Y) = ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)

With the centred Gram matrices ``K = Xc Xc'`` and ``L = Yc Yc'`` (``M x M``)
the same number is ``<K, L>_F / (||K||_F ||L||_F)``. For Fig. 3c every model
and layer gets its centred Gram matrix once, scaled to unit Frobenius norm
(:func:`normalized_gram`); the CKA of all model pairs of a layer is then one
matrix product of the flattened Gram matrices (:func:`cka_matrix`).

A compact model's layer activity is large (layer 0: 112 x 112 x K0 per
image), so a Gram matrix is estimated from a fixed random subset of spatial
positions (:func:`position_subset`), the same positions for every model. As
``K = sum over positions p of A_p A_p'`` (``A_p`` the ``(M, K)`` activity at
position ``p``), a uniform random subset of positions estimates ``K`` without
bias up to a constant factor, which CKA ignores. Layers whose map has no
more positions than the subset size use all of them (exact).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _as_features(features, name: str, dtype=np.float64) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim < 2:
        raise ValueError(f"{name} must be (num_images, ...features); got shape {array.shape}.")
    array = array.reshape(array.shape[0], -1).astype(dtype, copy=False)
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images; got {array.shape[0]}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values.")
    return array


def linear_cka(features_x, features_y) -> float:
    """Linear CKA from activity, in feature space (reference formula).

    Args:
        features_x: ``(num_images, ...)``, flattened to ``(M, Dx)``.
        features_y: ``(num_images, ...)``, flattened to ``(M, Dy)``.

    Returns:
        CKA in [0, 1]; NaN when either activity is constant over images.

    Raises:
        ValueError: different numbers of images, fewer than 2, NaN values.
    """
    x = _as_features(features_x, "features_x")
    y = _as_features(features_y, "features_y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"Both activities need the same images; got {x.shape[0]} and {y.shape[0]}.")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denominator) if denominator > 0 else float("nan")


def centered_gram(features, dtype=np.float64) -> np.ndarray:
    """Centred Gram matrix ``Xc Xc'`` over images.

    Args:
        features: ``(num_images, ...)``, flattened to ``(M, D)``.
        dtype: precision of the product; float32 halves the time of the
            large products of script7 (relative error about 1e-6).

    Returns:
        ``(M, M)`` of ``dtype``, symmetric, rows and columns summing to 0.
    """
    x = _as_features(features, "features", dtype)
    x = x - x.mean(axis=0, dtype=np.float64).astype(dtype)
    return x @ x.T


def center_gram(gram) -> np.ndarray:
    """``H K H`` with ``H = I - 11'/M``: centres an (uncentred) Gram matrix."""
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"A Gram matrix must be square; got shape {gram.shape}.")
    gram = gram - gram.mean(axis=0, keepdims=True)
    return gram - gram.mean(axis=1, keepdims=True)


def cka_from_grams(gram_x, gram_y) -> float:
    """Linear CKA from two Gram matrices over the same images (centred here).

    Returns:
        ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)``; NaN if either is 0.
    """
    kc, lc = center_gram(gram_x), center_gram(gram_y)
    if kc.shape != lc.shape:
        raise ValueError(f"Gram matrices must have the same shape; got {kc.shape} and {lc.shape}.")
    denominator = np.linalg.norm(kc) * np.linalg.norm(lc)
    return float(np.sum(kc * lc) / denominator) if denominator > 0 else float("nan")


def normalized_gram(features, dtype=np.float32) -> np.ndarray:
    """Centred Gram matrix scaled to unit Frobenius norm (all zeros if constant).

    The CKA of two activities is the Frobenius inner product of their
    normalized Gram matrices.

    Returns:
        ``(M, M)`` of ``dtype``.
    """
    gram = centered_gram(features, np.float32).astype(np.float64)
    norm = np.linalg.norm(gram)
    return (gram / norm if norm > 0 else gram).astype(dtype)


def cka_matrix(normalized_grams, chunk: int = 16) -> np.ndarray:
    """CKA of every pair of activities from their normalized Gram matrices.

    Args:
        normalized_grams: ``(num_models, M, M)`` from :func:`normalized_gram`
            (a NumPy memmap works; it is read ``chunk`` models at a time).

    Returns:
        float64 ``(num_models, num_models)``, diagonal 1; NaN in the row and
        column of an activity that is constant over images (its CKA is
        undefined).
    """
    grams = normalized_grams
    if grams.ndim != 3 or grams.shape[1] != grams.shape[2]:
        raise ValueError(f"normalized_grams must be (num_models, M, M); got {grams.shape}.")
    count = grams.shape[0]
    flat = grams.reshape(count, -1)
    result = np.zeros((count, count))
    for start in range(0, count, chunk):
        block = np.asarray(flat[start:start + chunk], dtype=np.float64)
        for other in range(start, count, chunk):
            partner = block if other == start else np.asarray(flat[other:other + chunk], np.float64)
            products = block @ partner.T
            result[start:start + chunk, other:other + chunk] = products
            result[other:other + chunk, start:start + chunk] = products.T
    norms = np.sqrt(np.clip(np.diag(result), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return result / np.outer(norms, norms)


def position_subset(height: int, width: int, num_positions: int, seed: int = 0) -> np.ndarray:
    """A fixed uniform random subset of spatial positions of a feature map.

    Args:
        height, width: the map's size.
        num_positions: how many positions; the map's all when it has no more.

    Returns:
        Sorted int array of flat indices ``row * width + column``.
    """
    total = height * width
    if num_positions < 1:
        raise ValueError(f"num_positions must be positive; got {num_positions}.")
    if num_positions >= total:
        return np.arange(total)
    generator = np.random.default_rng([seed, height, width])
    return np.sort(generator.choice(total, size=num_positions, replace=False))


class GramStore:
    """Normalized Gram matrices of many models and layers, on disk, resumable.

    One ``.npy`` memmap ``(num_models, M, M)`` float32 per layer in
    ``folder``, the models' outputs ``responses.npy`` ``(num_models, M)``,
    ``done.npy`` (which models are complete) and ``key.json`` (the settings
    they were computed with). Opening a folder whose key differs starts
    afresh, so a changed image set or position subset never mixes with old
    matrices.
    """

    def __init__(self, folder, key: dict, num_models: int, num_images: int, num_layers: int = 5):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.num_layers = num_layers
        shape = (num_models, num_images, num_images)
        key_file = self.folder / "key.json"
        key_text = json.dumps(key, sort_keys=True)
        paths = [self.folder / f"gram_layer{layer}.npy" for layer in range(num_layers)]
        self.done_file = self.folder / "done.npy"
        resumable = (
            key_file.is_file()
            and key_file.read_text() == key_text
            and self.done_file.is_file()
            and all(path.is_file() for path in paths)
        )
        if resumable:
            self.grams = [np.load(path, mmap_mode="r+") for path in paths]
            self.done = np.load(self.done_file)
            if any(gram.shape != shape for gram in self.grams) or self.done.shape != (num_models,):
                resumable = False
        if not resumable:
            key_file.unlink(missing_ok=True)
            self.grams = [
                np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
                for path in paths
            ]
            self.done = np.zeros(num_models, dtype=bool)
            self._save_done()
            key_file.write_text(key_text)
        responses_path = self.folder / "responses.npy"
        if resumable and responses_path.is_file():
            self.responses = np.load(responses_path, mmap_mode="r+")
        else:
            self.responses = np.lib.format.open_memmap(
                responses_path, mode="w+", dtype=np.float32, shape=(num_models, num_images)
            )
            self.done[:] = False
            self._save_done()

    def _save_done(self) -> None:
        temporary = self.done_file.with_name(self.done_file.name + ".part")
        with open(temporary, "wb") as stream:
            np.save(stream, self.done)
        temporary.replace(self.done_file)

    def store(self, model_index: int, grams: list[np.ndarray], responses=None) -> None:
        """Writes one model's normalized Gram matrices (one per layer) and outputs."""
        if len(grams) != self.num_layers:
            raise ValueError(f"Expected {self.num_layers} Gram matrices; got {len(grams)}.")
        for layer, gram in enumerate(grams):
            self.grams[layer][model_index] = gram
            self.grams[layer].flush()
        if responses is not None:
            self.responses[model_index] = responses
            self.responses.flush()
        self.done[model_index] = True
        self._save_done()


def _folded_layers(weights) -> list[tuple]:
    """Per layer (kernels..., bias) with BN folded into the kernel and bias.

    BN in inference is ``(y - mean) * gamma / sqrt(var + 1e-3) + beta``, an
    affine map per filter, so it folds into the preceding kernel's output
    columns and the bias; the layer is then conv + bias + ReLU.
    """
    from classes.compact.model import BN_EPSILON, WEIGHTS_PER_MODEL

    if len(weights) != WEIGHTS_PER_MODEL:
        raise ValueError(f"A compact model has {WEIGHTS_PER_MODEL} weight arrays; got {len(weights)}.")
    weights = [np.asarray(array, dtype=np.float64) for array in weights]

    def fold(kernel, bias, gamma, beta, mean, variance):
        scale = gamma / np.sqrt(variance + BN_EPSILON)
        return (kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)

    layers = [fold(*weights[0:6])]
    for layer in range(1, 5):
        depthwise, pointwise, *rest = weights[6 + 7 * (layer - 1): 6 + 7 * layer]
        kernel, bias = fold(pointwise, *rest)
        layers.append((depthwise.astype(np.float32), kernel, bias))
    return layers


_FORWARD = None


def _forward_function():
    """One traced function for every compact model (filter counts are dynamic)."""
    global _FORWARD
    if _FORWARD is not None:
        return _FORWARD
    from classes.compact.model import STRIDES
    from classes.runtime.quiet_tensorflow import tf

    spec = tf.TensorSpec
    signature = [spec([None, 112, 112, 3], tf.float32), spec([5, 5, 3, None]), spec([None])]
    for _ in range(1, 5):
        signature += [spec([5, 5, None, 1]), spec([1, 1, None, None]), spec([None])]
    signature += [spec([None, 1]), spec([1])] + [spec([None], tf.int32)] * 5

    @tf.function(input_signature=signature)
    def forward(images, *arguments):
        kernel, bias = arguments[0:2]
        activity = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(images, kernel, 1, "SAME"), bias))
        activities = [activity]
        for layer in range(1, 5):
            depthwise, pointwise, bias = arguments[2 + 3 * (layer - 1): 5 + 3 * (layer - 1)]
            stride = STRIDES[layer]
            spatial = tf.nn.depthwise_conv2d(activity, depthwise, [1, stride, stride, 1], "SAME")
            activity = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(spatial, pointwise, 1, "SAME"), bias))
            activities.append(activity)
        readout_kernel, readout_bias = arguments[14:16]
        count = tf.shape(images)[0]
        outputs = tf.matmul(tf.reshape(activity, [count, -1]), readout_kernel) + readout_bias
        cut = []
        for layer, chosen in enumerate(arguments[16:21]):
            flat = tf.reshape(activities[layer], [count, -1, tf.shape(activities[layer])[-1]])
            cut.append(tf.reshape(tf.gather(flat, chosen, axis=1), [count, -1]))
        return cut, outputs[:, 0]

    _FORWARD = forward
    return forward


def activity_features(weights, images, positions: list[np.ndarray], batch_size: int = 50):
    """A compact model's output and its layers' activity at chosen positions.

    Evaluates the compact model (SPEC section 2) straight from its weight
    list with BN folded into the kernels, in one TensorFlow function traced
    once for all models, so no Keras model is built per model; the tests
    check it against the Keras model's ``layer{i}_act`` outputs and output.
    Each layer's map is cut down to its positions before it leaves
    TensorFlow, so layer 0's full 112 x 112 map never accumulates.

    Args:
        weights: the model's 36 arrays (Keras ``get_weights()`` order), e.g.
            from :func:`classes.compact.model.load_weights_npy`.
        images: recentred ``(M, 112, 112, 3)``.
        positions: 5 arrays, per layer the flat spatial indices from
            :func:`position_subset` (112 x 112, 56 x 56, then 28 x 28 maps).
        batch_size: images per forward pass.

    Returns:
        ``(features, responses)``: a list with one float32 ``(M, P_l * K_l)``
        array per layer (position-major, then filter), and float32 ``(M,)``
        outputs.
    """
    from classes.data.preprocessing import check_images
    from classes.runtime.quiet_tensorflow import tf

    images = check_images(images, "recentered")
    if len(positions) != 5:
        raise ValueError(f"positions must hold one index array per layer (5); got {len(positions)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    for layer, (chosen, size) in enumerate(zip(positions, (112, 56, 28, 28, 28), strict=True)):
        chosen = np.asarray(chosen)
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= size * size:
            raise ValueError(f"positions of layer {layer} must be non-empty indices into {size}x{size}.")
    folded = _folded_layers(weights)
    arguments = [tf.constant(array) for layer in folded for array in layer]
    arguments += [tf.constant(np.asarray(weights[34], np.float32)), tf.constant(np.asarray(weights[35], np.float32))]
    arguments += [tf.constant(np.asarray(chosen, dtype=np.int32)) for chosen in positions]
    forward = _forward_function()
    features = [[] for _ in range(5)]
    responses = []
    for start in range(0, len(images), batch_size):
        cut, output = forward(tf.constant(images[start:start + batch_size], dtype=tf.float32), *arguments)
        for layer in range(5):
            features[layer].append(cut[layer].numpy())
        responses.append(output.numpy())
    return [np.concatenate(parts) for parts in features], np.concatenate(responses)

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
more positions than the subset size use all of them (exact). The activity
at those positions comes from :func:`classes.prediction.activity.sampled_activity`.
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


def centered_gram(features, dtype=np.float64, overwrite: bool = False) -> np.ndarray:
    """Centred Gram matrix ``Xc Xc'`` over images.

    Args:
        features: ``(num_images, ...)``, flattened to ``(M, D)``.
        dtype: precision of the product; float32 (:func:`_float32_gram`)
            makes script7's large products several times faster (relative
            error about 1e-6).
        overwrite: float32 only: centre ``features`` in place (a float32
            array the caller no longer needs, e.g. reused scratch memory)
            instead of in a copy.

    Returns:
        ``(M, M)`` of ``dtype``, symmetric, rows and columns summing to 0.
    """
    x = _as_features(features, "features", dtype)
    if x.dtype == np.float32:
        # x is the caller's array only when _as_features made no copy; a copy is ours to overwrite.
        shared = isinstance(features, np.ndarray) and np.shares_memory(x, features)
        return _float32_gram(x, in_place=overwrite or not shared)
    x = x - x.mean(axis=0)
    return x @ x.T


def _float32_gram(x: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``Xc @ Xc.T`` of an uncentred float32 ``(M, D)``: centred, then one symmetric rank-D update.

    BLAS ``ssyrk`` computes one triangle only (half a general product's
    arithmetic) and reads ``X.T`` as the Fortran-ordered ``(D, M)`` it is,
    so nothing of ``X``'s size is allocated when ``in_place`` centres ``X``
    itself. Measured on the 2-core machine for script7's ``(1000, 512 x
    57)``: 0.14 s with OpenBLAS's AVX2 kernels (this machine's environment
    sets ``OPENBLAS_CORETYPE=Haswell``; unset, OpenBLAS picks its AVX-512
    kernels here: 0.08 s), against 0.17 s for TensorFlow computing three of
    four half-blocks, which also copied ``X`` twice (input tensor, centred
    tensor).
    """
    from scipy.linalg import blas

    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = np.subtract(x, mean, out=x if in_place else None)
    # ssyrk writes the upper triangle into a zeroed result; the lower one is its mirror.
    upper = blas.ssyrk(1.0, np.ascontiguousarray(centred).T, trans=1)
    return upper + np.triu(upper, 1).T


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


def normalized_gram(features, dtype=np.float32, overwrite: bool = False) -> np.ndarray:
    """Centred Gram matrix scaled to unit Frobenius norm (all zeros if constant).

    The CKA of two activities is the Frobenius inner product of their
    normalized Gram matrices. ``overwrite``: as for :func:`centered_gram`.

    Returns:
        ``(M, M)`` of ``dtype``.
    """
    gram = centered_gram(features, np.float32, overwrite).astype(np.float64)
    norm = np.linalg.norm(gram)
    return (gram / norm if norm > 0 else gram).astype(dtype)


def cka_matrix(normalized_grams, columns: int = 16384) -> np.ndarray:
    """CKA of every pair of activities from their normalized Gram matrices.

    The inner products of all pairs are one product of the flattened Gram
    matrices with themselves, taken ``columns`` entries at a time: each
    slice (every model, a few MB) is multiplied in float32 and the slices'
    sums accumulate in float64. Reading model-by-model chunks against each
    other instead re-read the whole store about once per chunk (about 100 s
    per layer for 219 models at 1,000 images, against about 5 s).

    Args:
        normalized_grams: ``(num_models, M, M)`` from :func:`normalized_gram`
            (a NumPy memmap works; it is read once, a slice at a time).
        columns: flattened Gram entries per slice.

    Returns:
        float64 ``(num_models, num_models)``, diagonal 1; NaN in the row and
        column of an activity that is constant over images (its CKA is
        undefined).
    """
    grams = normalized_grams
    if grams.ndim != 3 or grams.shape[1] != grams.shape[2]:
        raise ValueError(f"normalized_grams must be (num_models, M, M); got {grams.shape}.")
    if isinstance(columns, bool) or int(columns) < 1:
        raise ValueError(f"columns must be a positive integer; got {columns!r}.")
    count = grams.shape[0]
    flat = grams.reshape(count, -1)
    result = np.zeros((count, count))
    for start in range(0, flat.shape[1], int(columns)):
        block = np.ascontiguousarray(flat[:, start:start + int(columns)], dtype=np.float32)
        result += block @ block.T
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

"""Layer 0's patch moments from the training kernel's lag sums.

A patch is the 5x5x3 input window of one output pixel of layer 0 (Keras's
kernel order, zero padding 2). Over the positions of a batch,

    S = sum of patch (75,),   C = sum of patch patch^T (75, 75).

They give layer 0's BatchNormalization statistics and gradient terms
without a pass over layer 0's output (:mod:`classes.training.kernel_step`).
The kernel (``train_patch_lag_sums`` in train_kernel.c) sums products of
pixels at each lag over the whole image, and over the two border rows and
columns on each side; a patch offset near the border sees fewer positions,
so C is the whole-image lag sum minus the border rows and columns outside
that offset's window, plus the corners removed twice (inclusion-exclusion).
"""

from __future__ import annotations

import functools

import numpy as np

_BORDER_EXCLUDED = {0: (2, 3), 1: (3,), 2: (), 3: (0,), 4: (0, 1)}  # border indices left out, per kernel offset


def patch_moments_reference(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S (75,) and C (75, 75) by their definition (im2col, float64); for tests."""
    padded = np.pad(np.asarray(images, np.float64), ((0, 0), (2, 2), (2, 2), (0, 0)))
    patches = np.stack([padded[:, ky:ky + 112, kx:kx + 112, :] for ky in range(5) for kx in range(5)], axis=3)
    patches = patches.reshape(-1, 75)
    return patches.sum(axis=0), patches.T @ patches


def _exclusion_weights() -> np.ndarray:
    """(5, 4): 1 where border row/column i (of 0, 1, 110, 111) lies outside kernel offset k's window."""
    weights = np.zeros((5, 4))
    for offset, excluded in _BORDER_EXCLUDED.items():
        weights[offset, list(excluded)] = 1.0
    return weights


@functools.cache
def _assembly_matrix():
    """C (flattened, 75 x 75) as a sparse linear map of the lag sums.

    Entry (k, l), k = (ky, kx, c), l = (ky2, kx2, d), lag (ey, ex) = (ky2 - ky, kx2 - kx):
    the whole-image lag product total, minus the border rows and columns that
    fall outside patch offset (ky, kx)'s window, plus the corners removed twice.
    """
    from scipy.sparse import csr_matrix

    block = 9 * 81
    weights = _exclusion_weights()
    rows, columns, values = [], [], []
    for ky, kx, c, ky2, kx2, d in np.ndindex(5, 5, 3, 5, 5, 3):
        entry = ((ky * 5 + kx) * 3 + c) * 75 + (ky2 * 5 + kx2) * 3 + d
        lag = ((c * 3 + d) * 9 + ky2 - ky + 4) * 9 + kx2 - kx + 4
        terms = [(lag, 1.0)]
        terms += [(block + i * block + lag, -1.0) for i in range(4) if weights[ky, i]]
        terms += [(5 * block + j * block + lag, -1.0) for j in range(4) if weights[kx, j]]
        terms += [(9 * block + (i * 4 + j) * block + lag, 1.0) for i in range(4) for j in range(4)
                  if weights[ky, i] and weights[kx, j]]
        for column, value in terms:
            rows.append(entry)
            columns.append(column)
            values.append(value)
    return csr_matrix((values, (rows, columns)), shape=(75 * 75, 25 * block))


def patch_moments(lag_sums: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S (75,) and C (75, 75) of a batch from the kernel's lag sums.

    Args:
        lag_sums: float64 from ``train_patch_lag_sums``: totals (9 channel
            pairs x 9 x 9 lags), then border rows, border columns and
            corners (4, 4 and 16 blocks of the same shape).
        images: the batch, recentred ``(B, 112, 112, 3)``.
    """
    second = (_assembly_matrix() @ lag_sums).reshape(75, 75)
    sums = np.asarray(images, np.float64).sum(axis=0)  # (112, 112, 3)
    border = [0, 1, 110, 111]
    row_sums, column_sums = sums[border].sum(axis=1), sums[:, border].sum(axis=0)  # (4, 3)
    corner_sums = sums[np.ix_(border, border)]  # (4, 4, 3)
    weights = _exclusion_weights()
    first = (sums.sum(axis=(0, 1))[None, None, :] - (weights @ row_sums)[:, None, :]
             - (weights @ column_sums)[None, :, :] + np.einsum("yi,xj,ijc->yxc", weights, weights, corner_sums))
    return first.reshape(75), second

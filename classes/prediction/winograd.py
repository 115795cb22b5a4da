"""The Winograd / Toom-Cook transforms of the kernel's layer 0: F(4, 5) along image rows.

A 5-tap row filter ``w`` gives 4 neighbouring outputs of 8 inputs ``d``,
``y[i] = sum_k w[k] d[i + k]``, as ``y = AT @ ((G @ w) * (BT @ d))``: 8
multiplications instead of 20. For a 5x5 convolution of 3 colours the
products are summed over the 5 kernel rows and the 3 colours before ``AT``
is applied, so per 4 outputs and filter the kernel does 8 x 15 multiply-adds
and one small output transform instead of 4 x 75 multiply-adds
(``kernel_layer0.h``).

The transforms are those of the modified Toom-Cook construction with the
points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity: ``AT[i, t]`` and
``G[t, k]`` are powers of the points (the point at infinity takes the
highest power), and ``BT`` is the one matrix for which the identity holds,
solved for here in float64 and checked. The kernel writes ``AT`` out by hand
(``winograd_outputs``), so :data:`POINTS` must not change without it.

Precision: in float32 the outputs carry errors of about 1e-5 of their
spread (the direct sum: about 1e-6); tests compare the kernel with float64
references and with the Keras models.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INPUT_TRANSFORM", "OUTPUTS", "POINTS", "TAPS", "filter_transform", "output_transform",
           "transformed_kernel0"]

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity
OUTPUTS = 4
TAPS = 5
_SIZE = OUTPUTS + TAPS - 1


def output_transform() -> np.ndarray:
    """``AT`` ``(4, 8)``: row i holds the points to the power i; infinity's column is (0, 0, 0, 1)."""
    matrix = np.zeros((OUTPUTS, _SIZE))
    matrix[:, :-1] = np.power.outer(POINTS, np.arange(OUTPUTS)).T
    matrix[-1, -1] = 1.0
    return matrix


def filter_transform() -> np.ndarray:
    """``G`` ``(8, 5)``: row t holds the point's powers 0..4; infinity's row is (0, 0, 0, 0, 1)."""
    matrix = np.zeros((_SIZE, TAPS))
    matrix[:-1] = np.power.outer(POINTS, np.arange(TAPS))
    matrix[-1, -1] = 1.0
    return matrix


def _input_transform() -> np.ndarray:
    """``BT`` ``(8, 8)`` solving ``sum_t AT[i, t] G[t, k] BT[t, j] = [j == i + k]`` for every i, k, j.

    Raises:
        ArithmeticError: the system has no exact solution (the points are wrong).
    """
    outputs, filters = output_transform(), filter_transform()
    # One equation per (i, k); one unknown column BT[:, position] per input position.
    system = np.stack([outputs[i] * filters[:, k] for i in range(OUTPUTS) for k in range(TAPS)])
    targets = np.array([[float(position == i + k) for position in range(_SIZE)]
                        for i in range(OUTPUTS) for k in range(TAPS)])
    solution = np.linalg.lstsq(system, targets, rcond=None)[0]
    residual = float(np.max(np.abs(system @ solution - targets)))
    if residual > 1e-9:
        raise ArithmeticError(f"no Winograd input transform for the points {POINTS} (residual {residual:.1e}).")
    solution[np.abs(solution) < 1e-12] = 0.0  # exact zeros: the kernel skips them
    return solution


INPUT_TRANSFORM = _input_transform()


def transformed_kernel0(kernel: np.ndarray, padded_filters: int) -> np.ndarray:
    """Layer 0's kernel as ``kernel_layer0.h`` reads it: ``U[t, dy, colour, k] = sum_dx G[t, dx] w[dy, dx, colour, k]``.

    Args:
        kernel: ``(5, 5, 3, K0)`` (folded) layer-0 kernel.
        padded_filters: K0 rounded up to the kernel's vector width (zero filters).

    Returns:
        float32 ``(8, 5, 3, padded_filters)``, computed in float64.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    transformed = np.einsum("tx,yxcf->tycf", filter_transform(), kernel)
    result = np.zeros((_SIZE, TAPS, 3, padded_filters), dtype=np.float32)
    result[..., : kernel.shape[-1]] = transformed
    return result

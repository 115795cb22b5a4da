"""Layer activity at chosen positions from the compiled kernel (script7's CKA, tutorial 03).

``kernel.c``'s ``compact_activity`` copies each layer's activity at the
chosen spatial positions out of the maps it computes anyway (layer 0's as
each row enters its ring), so no whole layer-0 map is ever held; see
:mod:`classes.prediction.kernel` for the kernel itself and
:func:`classes.prediction.activity.sampled_activity` for the entry point.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from classes.prediction.kernel import (
    LAYER_SIDES,
    KernelModel,
    SampleStruct,
    aligned_workspace,
    default_threads,
    library_or_error,
)

__all__ = ["activity_with_kernel", "checked_positions", "feature_arrays"]


def checked_positions(positions) -> list[np.ndarray | None]:
    """Per layer, int64 flat positions (increasing, inside the map) or None.

    Raises:
        ValueError: not 5 entries, or positions unsorted, repeated or outside the map.
    """
    if len(positions) != len(LAYER_SIDES):
        raise ValueError(f"positions must hold one entry per layer ({len(LAYER_SIDES)}); got {len(positions)}.")
    checked = []
    for layer, (chosen, side) in enumerate(zip(positions, LAYER_SIDES, strict=True)):
        if chosen is None:
            checked.append(None)
            continue
        chosen = np.ascontiguousarray(chosen, dtype=np.int64).reshape(-1)
        if chosen.size == 0 or chosen[0] < 0 or chosen[-1] >= side * side or np.any(np.diff(chosen) <= 0):
            raise ValueError(
                f"positions of layer {layer} must be increasing flat indices into its {side}x{side} map."
            )
        checked.append(chosen)
    return checked


def feature_arrays(num_images: int, widths: list[int | None], scratch: list[np.ndarray] | None = None) -> list:
    """Arrays ``(num_images, width)`` per layer (None where the width is None), carved from ``scratch``.

    A model's sampled activity is hundreds of MB; allocating it afresh for
    every model makes the system hand out and zero new pages each time
    (script7: a third of the forward passes' time on a 2-core VM). With a
    ``scratch`` list (one array per layer, replaced in place by a larger one
    when too small) the same memory serves model after model.
    """
    arrays = []
    for layer, width in enumerate(widths):
        if width is None:
            arrays.append(None)
            continue
        size = num_images * width
        if scratch is None:
            arrays.append(np.empty((num_images, width), np.float32))
            continue
        if scratch[layer].size < size:
            scratch[layer] = np.empty(size, np.float32)
        arrays.append(scratch[layer][:size].reshape(num_images, width))
    return arrays


def activity_with_kernel(
    model: KernelModel, images: np.ndarray, positions, images_per_job: int = 16, threads: int | None = None,
    scratch: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray | None], np.ndarray]:
    """One model's responses and its layers' activity at chosen positions, through ``kernel.c``.

    Layer 0's map is never held whole: its positions are copied out as each
    row is computed. Threads take ``images_per_job`` images at a time.

    Args:
        model: from :func:`prepare_kernel_model`.
        images: checked, recentred float32 ``(num_images, 112, 112, 3)``.
        positions: 5 entries, per layer (sides :data:`LAYER_SIDES`) increasing
            flat indices ``row * side + column``, or None to skip the layer.
        images_per_job: images one thread takes at a time.
        threads: worker threads; None uses every CPU this process may use.
        scratch: None, or one float32 array per layer that the caller keeps
            between calls (:func:`feature_arrays`); the features are then
            views of it, valid until the next call with the same scratch.

    Returns:
        ``(features, responses)``: per layer float32 ``(num_images, P * K)``
        (position-major, then filter; None for a skipped layer) and float32
        ``(outputs, num_images)``.

    Raises:
        ValueError: bad positions.
        RuntimeError: the kernel cannot run here (the message says why).
    """
    library_or_error(model.isa)
    positions = checked_positions(positions)
    images = np.ascontiguousarray(images, dtype=np.float32)
    num_images = images.shape[0]
    features = feature_arrays(num_images, [None if chosen is None else chosen.size * count
                                           for chosen, count in zip(positions, model.nums_filters, strict=True)],
                              scratch)
    responses = np.zeros((model.outputs, num_images), dtype=np.float32)
    local = threading.local()

    def run(start):
        stop = min(start + images_per_job, num_images)
        samples = (SampleStruct * len(positions))()
        for sample, chosen, count, array in zip(samples, positions, model.nums_filters, features, strict=True):
            if chosen is not None:
                sample.positions, sample.count, sample.channels = chosen.ctypes.data, chosen.size, count
                sample.features, sample.stride = array[start].ctypes.data, array.shape[1]
        workspace = getattr(local, "workspace", None)
        if workspace is None or workspace.size < model.workspace_floats:
            workspace = local.workspace = aligned_workspace(model.workspace_floats)
        model.activity(images[start:stop], workspace, samples, responses[:, start:stop])

    with ThreadPoolExecutor(max_workers=threads or default_threads()) as pool:
        list(pool.map(run, range(0, num_images, images_per_job)))
    return features, responses

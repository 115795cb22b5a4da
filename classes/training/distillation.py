"""The student of a distillation: its initial weights, made with Keras (SPEC section 2).

A student is a compact model with 100 filters per layer, trained on a
teacher's responses (the loop: :mod:`classes.training.stream_distillation`)
and smoothed after every chunk of training images
(:func:`classes.training.student.smooth_weights`, which needs no Keras).
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import check_nums_filters
from classes.compact.model import build_compact_model
from classes.runtime.quiet_tensorflow import keras

__all__ = ["initial_student_weights"]


def initial_student_weights(nums_filters, seed: int = 0) -> list[np.ndarray]:
    """A freshly initialised compact model's weights (Keras's initialisers, seeded).

    Args:
        nums_filters: ``[K0..K4]``, e.g. ``[100] * 5`` (the paper's student).
        seed: seeds Keras (and with it NumPy's and Python's global generators).

    Returns:
        36 float32 arrays in ``get_weights()`` order.
    """
    counts = check_nums_filters(nums_filters)
    keras.utils.set_random_seed(int(seed))
    return [np.asarray(array, np.float32) for array in build_compact_model(counts, name="student").get_weights()]

"""Compact-model weights for the in-browser model (``assets/engine.js``).

The build writes each model's weights once, with every BatchNormalization
folded into the convolution before it (:func:`classes.prediction.folding.fold_weights`,
the project's one folding function), as float32 in the layouts the
JavaScript loops read fastest:

- ``kernel0`` ``(K0, 3, 5, 5)`` and ``bias0`` ``(K0,)``;
- per layer i = 1..4: ``depthwise<i>`` ``(K_{i-1}, 5, 5)``, ``pointwise<i>``
  ``(K_i, K_{i-1})``, ``bias<i>`` ``(K_i,)``;
- ``readout_map`` ``(K4, 28, 28)`` and ``readout_bias`` ``(1,)``.

Each array travels as base64 of its little-endian float32 bytes inside a
``<script>`` file (``data/<stem>.js``), because pages opened from ``file://``
may load scripts but not fetch data files.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from classes.compact.architecture import NUM_LAYERS
from classes.prediction.folding import FOLDED_NAMES, fold_weights

# Keras layout -> JavaScript layout, per folded array (see the module docstring).
_TRANSPOSES = {"kernel0": (3, 2, 0, 1), "readout_map": (2, 0, 1)}


def browser_arrays(weights, name: str = "") -> dict[str, np.ndarray]:
    """The folded weights of one compact model in the browser's layouts.

    Args:
        weights: the 36 arrays of ``get_weights()`` (e.g. from
            :func:`classes.compact.architecture.load_weights_npy`).
        name: names the model in error messages.

    Returns:
        dict name -> little-endian float32 C-contiguous array (module docstring).

    Raises:
        ValueError: the weights are not a compact model's.
    """
    folded = dict(zip(FOLDED_NAMES, fold_weights(list(weights), name).arrays, strict=True))
    arrays = {}
    for key, array in folded.items():
        if key in _TRANSPOSES:
            array = array.transpose(_TRANSPOSES[key])
        elif key.startswith("depthwise"):
            array = array[..., 0].transpose(2, 0, 1)
        elif key.startswith("pointwise"):
            array = array[0, 0].T
        arrays[key] = np.ascontiguousarray(array, dtype="<f4")
    return arrays


def encode_array(array: np.ndarray) -> str:
    """Base64 of an array's little-endian float32 bytes."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def model_spec(weights, name: str = "") -> dict:
    """What ``new CompactEngine.CompactModel(spec)`` takes: filter counts and base64 arrays."""
    arrays = browser_arrays(weights, name)
    counts = [int(arrays["bias0"].size)] + [int(arrays[f"bias{layer}"].size) for layer in range(1, NUM_LAYERS)]
    return {"nums_filters": counts, "arrays": {key: encode_array(value) for key, value in arrays.items()}}


def data_script(stem: str, payload: dict) -> str:
    """A script that registers ``payload`` as ``window.EXPLORER_DATA[stem]``.

    Args:
        stem: the model's file stem, e.g. ``"compact_model_190923_neuron0"``.
        payload: JSON-serialisable data (the model spec, stimuli, numbers).
    """
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return ("window.EXPLORER_DATA = window.EXPLORER_DATA || {};\n"
            f"window.EXPLORER_DATA[{json.dumps(stem)}] = {text};\n")

"""Torch compact models from the release's ``.pt`` files and from Keras weights.

The release's ``.pt`` files (``data_compact_models/models_torch/
compact_model_<session>_neuron<k>.pt``) are ``OrderedDict`` state dicts of
float64 tensors, 41 entries, with these keys and shapes (``C`` the previous
layer's filters)::

    layers.layer0_conv.weight          (K0, 3, 5, 5)
    layers.layer0_conv.bias            (K0,)
    layers.layer0_bn.weight / .bias / .running_mean / .running_var   (K0,)
    layers.layer0_bn.num_batches_tracked   ()  int64, 0
    layers.layer{i}_conv_depth.weight  (C, 1, 5, 5)      i = 1..4, no bias
    layers.layer{i}_conv_point.weight  (Ki, C, 1, 1)
    layers.layer{i}_conv_point.bias    (Ki,)
    layers.layer{i}_bn.weight / .bias / .running_mean / .running_var (Ki,)
    layers.layer{i}_bn.num_batches_tracked ()
    layers.Beta.weight                 (1, 28*28*K4)      Keras flatten order
    layers.Beta.bias                   (1,)

Checked against ``model_weights_npy``: every kernel is the Keras kernel
transposed (conv ``(3,2,0,1)``, depthwise ``(2,3,0,1)``), Beta's weight is
Keras's kernel transposed without reordering (channels-last flatten), and
``running_var`` equals Keras's ``moving_variance`` plus 0.001 in layers 1-4
(unchanged in layer 0). The files were made for PyTorch's default BN epsilon
1e-5; so the release's Torch model normalises layer 0 by ``var + 1e-5``
instead of Keras's ``var + 1e-3`` and layers 1-4 by ``var + 0.00101``
instead of ``var + 0.001``. Layer 0's variances are all above 50, so its
epsilon does not matter; the difference comes from layers 3-4, whose
smallest variances (1e-5..1e-3) are comparable with the epsilon: up to 0.5%
on those channels, 0.4-5.9% of the response s.d. at the output
(docs/torch_port.md). :func:`load_torch_compact_model` keeps those semantics
(what a user of the release gets); :func:`torch_model_from_keras_weights`
uses epsilon 1e-3 with Keras's own variances and matches Keras to float
precision.

PyTorch is optional: this module imports without it, and only the functions
that need it raise ``ImportError`` ("pip install torch").
"""

from __future__ import annotations

import numpy as np

from classes.compact.architecture import (
    BN_EPSILON,
    NUM_LAYERS,
    OUTPUT_SIZE,
    WEIGHTS_PER_MODEL,
    model_file,
    model_id,
    nums_filters_from_weights,
)
from classes.compact.torch_model import compact_model_class, require_torch

# The release's Torch files were exported for PyTorch's default BN epsilon and
# hold Keras's moving variance plus this offset in layers 1-4.
RELEASE_BN_EPSILON = 1e-5
RELEASE_VARIANCE_OFFSET = 1e-3


def _nums_filters_from_state_dict(state_dict, source) -> list[int]:
    keys = ["layers.layer0_conv.weight"] + [
        f"layers.layer{layer}_conv_point.weight" for layer in range(1, NUM_LAYERS)
    ]
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise ValueError(
            f"{source} is not a compact-model state dict: it lacks {missing[:3]}"
            f"{'...' if len(missing) > 3 else ''}. Expected the release's keys "
            "layers.layer0_conv.weight ... layers.Beta.bias."
        )
    return [int(state_dict[key].shape[0]) for key in keys]


def model_from_state_dict(state_dict, bn_epsilon: float, dtype=None, source="state dict"):
    """Builds a :class:`~classes.compact.torch_model.CompactModelTorch` from a release-style state dict.

    Args:
        state_dict: mapping with the release's keys (module docstring).
        bn_epsilon: BN epsilon of every layer.
        dtype: torch dtype of the model; default ``torch.float32``.
        source: how to name the state dict in error messages.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: keys or shapes do not make a compact model.
    """
    torch = require_torch()
    dtype = torch.float32 if dtype is None else dtype
    counts = _nums_filters_from_state_dict(state_dict, source)
    model = compact_model_class()(counts, bn_epsilon=bn_epsilon)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{source} does not fit a compact model with filters {counts}: {error}"
        ) from None
    return model.to(dtype).eval()


def load_torch_compact_model(session_id, neuron, data_root=None, dtype=None):
    """Loads a released ``.pt`` compact model with the release's semantics.

    The stored ``running_var`` (Keras variance + 0.001 in layers 1-4) is used
    as is with PyTorch's default BN epsilon 1e-5, which is what a user of the
    release gets; outputs differ slightly from Keras's (layers 1-4 divide by
    ``var + 0.00101`` instead of ``var + 0.001``; up to 5.9% of the response
    s.d. over the 219 models). For an exact port use
    :func:`torch_model_from_keras_weights`.

    Args:
        session_id: one of the four held-out test sessions.
        neuron: 0-based neuron index within the session.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        dtype: torch dtype; default ``torch.float32`` (the files are float64).

    Returns:
        A :class:`~classes.compact.torch_model.CompactModelTorch` in eval mode.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: unknown session/neuron; the file is corrupt or not a
            compact-model state dict.
        FileNotFoundError: the ``.pt`` file is missing.
    """
    torch = require_torch()
    identifier = model_id(session_id, neuron)
    path = model_file(identifier, "torch", data_root)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage bytes raise anything from the unpickler
        raise ValueError(
            f"Could not read {path} ({type(error).__name__}: {error}). The file is "
            "corrupt or truncated; download it again or run a script with --verify."
        ) from None
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not a state dict.")
    return model_from_state_dict(state_dict, RELEASE_BN_EPSILON, dtype, source=str(path))


def _weights_list(weights) -> list[np.ndarray]:
    if hasattr(weights, "get_weights"):
        weights = weights.get_weights()
    if not isinstance(weights, (list, tuple)):
        raise ValueError(
            "weights must be a Keras compact model or its get_weights() list of "
            f"{WEIGHTS_PER_MODEL} arrays; got {type(weights).__name__}."
        )
    return [np.asarray(array) for array in weights]


def state_dict_from_keras_weights(weights, release_semantics: bool = False) -> dict:
    """Converts Keras ``get_weights()`` arrays to a release-style state dict.

    Args:
        weights: a Keras compact model or its 36 ``get_weights()`` arrays.
        release_semantics: add 0.001 to the variances of layers 1-4, as the
            release's ``.pt`` export did (then use BN epsilon 1e-5); False
            keeps Keras's variances (use epsilon 1e-3).

    Returns:
        ``{key: float64 tensor}`` with the keys of the released files.

    Raises:
        ValueError: not 36 arrays, or shapes that do not chain.
    """
    torch = require_torch()
    arrays = _weights_list(weights)
    counts = nums_filters_from_weights(arrays)
    state = {}

    def put(key, array):
        state[key] = torch.from_numpy(np.array(array, dtype=np.float64))

    def put_bn(layer, start, offset):
        gamma, beta, mean, variance = arrays[start : start + 4]
        put(f"layers.layer{layer}_bn.weight", gamma)
        put(f"layers.layer{layer}_bn.bias", beta)
        put(f"layers.layer{layer}_bn.running_mean", mean)
        put(f"layers.layer{layer}_bn.running_var", np.asarray(variance, np.float32) + np.float32(offset))
        state[f"layers.layer{layer}_bn.num_batches_tracked"] = torch.tensor(0)

    put("layers.layer0_conv.weight", np.transpose(arrays[0], (3, 2, 0, 1)))
    put("layers.layer0_conv.bias", arrays[1])
    put_bn(0, 2, 0.0)
    offset = RELEASE_VARIANCE_OFFSET if release_semantics else 0.0
    for layer in range(1, NUM_LAYERS):
        start = 6 + 7 * (layer - 1)
        put(f"layers.layer{layer}_conv_depth.weight", np.transpose(arrays[start], (2, 3, 0, 1)))
        put(f"layers.layer{layer}_conv_point.weight", np.transpose(arrays[start + 1], (3, 2, 0, 1)))
        put(f"layers.layer{layer}_conv_point.bias", arrays[start + 2])
        put_bn(layer, start + 3, offset)
    expected = (OUTPUT_SIZE * OUTPUT_SIZE * counts[-1], 1)
    if arrays[34].shape != expected:
        raise ValueError(f"Beta kernel has shape {arrays[34].shape}; expected {expected}.")
    put("layers.Beta.weight", arrays[34].T)
    put("layers.Beta.bias", arrays[35])
    return state


def torch_model_from_keras_weights(weights, dtype=None):
    """An exact PyTorch port of a Keras compact model (BN epsilon 1e-3).

    Args:
        weights: a Keras compact model or its 36 ``get_weights()`` arrays
            (e.g. from :func:`classes.compact.architecture.load_weights_npy`).
        dtype: torch dtype; default ``torch.float32``.

    Returns:
        A :class:`~classes.compact.torch_model.CompactModelTorch` in eval
        mode whose outputs equal Keras's to float precision.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: the weights do not make a compact model.
    """
    state_dict = state_dict_from_keras_weights(weights, release_semantics=False)
    return model_from_state_dict(state_dict, BN_EPSILON, dtype, source="Keras weights")


def keras_weights_from_state_dict(state_dict) -> list[np.ndarray]:
    """The inverse of :func:`state_dict_from_keras_weights` (Keras's variances, epsilon 1e-3).

    Args:
        state_dict: a release-style state dict (e.g. the ``state_dict()`` of
            a model from :func:`torch_model_from_keras_weights`, trained or
            not), on any device.

    Returns:
        The 36 float32 arrays of Keras's ``get_weights()`` order, moving
        statistics included.

    Raises:
        ValueError: keys that do not make a compact model.
    """
    _nums_filters_from_state_dict(state_dict, "state dict")

    def get(key):
        return state_dict[key].detach().cpu().numpy().astype(np.float32)

    def batch_norm(layer):
        return [get(f"layers.layer{layer}_bn.{name}") for name in ("weight", "bias", "running_mean", "running_var")]

    arrays = [np.transpose(get("layers.layer0_conv.weight"), (2, 3, 1, 0)), get("layers.layer0_conv.bias"),
              *batch_norm(0)]
    for layer in range(1, NUM_LAYERS):
        arrays.append(np.transpose(get(f"layers.layer{layer}_conv_depth.weight"), (2, 3, 0, 1)))
        arrays.append(np.transpose(get(f"layers.layer{layer}_conv_point.weight"), (2, 3, 1, 0)))
        arrays.append(get(f"layers.layer{layer}_conv_point.bias"))
        arrays.extend(batch_norm(layer))
    arrays += [get("layers.Beta.weight").T, get("layers.Beta.bias")]
    return [np.ascontiguousarray(array) for array in arrays]

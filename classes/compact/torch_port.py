"""The compact model in PyTorch: the release's ``.pt`` files and an exact port.

The same network as :mod:`classes.compact.model` (SPEC section 2), written as
a ``torch.nn.Module`` that works in NCHW internally:

- layer 0: 5x5 conv with bias, BN, ReLU;
- layers 1-4: 5x5 depthwise conv (``groups`` = channels, no bias), 1x1
  pointwise conv with bias, BN, ReLU; stride 2 in layers 1-2;
- readout: a linear unit over the 28x28xK4 map flattened in CHANNELS-LAST
  order, as Keras's ``Flatten`` does, so the readout weight keeps Keras's
  layout and the activity is permuted to NHWC before flattening.

Keras's "same" padding is reproduced with an explicit ``F.pad``: a 5x5 conv
pads 2 on each side at stride 1, but at stride 2 on an even input it pads 1
before and 2 after (PyTorch's symmetric ``padding=2`` would shift every
output by one pixel).

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

import functools

import numpy as np

from classes.compact.model import (
    BN_EPSILON,
    KERNEL_SIZE,
    NUM_LAYERS,
    OUTPUT_SIZE,
    STRIDES,
    WEIGHTS_PER_MODEL,
    check_nums_filters,
    model_file,
    model_id,
    nums_filters_from_weights,
)
from classes.data.preprocessing import check_images

try:  # optional dependency
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

# The release's Torch files were exported for PyTorch's default BN epsilon and
# hold Keras's moving variance plus this offset in layers 1-4.
RELEASE_BN_EPSILON = 1e-5
RELEASE_VARIANCE_OFFSET = 1e-3
_INSTALL_HINT = (
    "PyTorch is needed for the Torch port of the compact models: pip install torch "
    "(or pip install '.[torch]')."
)


def torch_available() -> bool:
    """Whether PyTorch can be imported."""
    return torch is not None


def _require_torch():
    if torch is None:
        raise ImportError(_INSTALL_HINT)
    return torch


def same_padding(size: int, stride: int, kernel_size: int = KERNEL_SIZE) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding along one axis.

    Args:
        size: input length along the axis.
        stride: the conv's stride.
        kernel_size: the conv's kernel length.

    Returns:
        ``(before, after)``: the total padding needed for
        ``ceil(size / stride)`` outputs, the extra pixel (if odd) after.
    """
    output_size = -(-size // stride)
    total = max((output_size - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


@functools.lru_cache(maxsize=1)
def _compact_model_class():
    """Defines the Module class on first use, so the module imports without torch."""
    _require_torch()
    from torch import nn
    from torch.nn import functional

    class CompactModelTorch(nn.Module):
        """A compact model in PyTorch.

        Submodules live in ``self.layers`` under the release's names, so
        ``state_dict()`` has exactly the keys of the released ``.pt`` files.

        Args:
            nums_filters: ``[K0, K1, K2, K3, K4]``.
            bn_epsilon: BN epsilon of every layer: 1e-3 for Keras's
                semantics, 1e-5 for the release's ``.pt`` files.
        """

        def __init__(self, nums_filters, bn_epsilon: float = BN_EPSILON):
            super().__init__()
            counts = check_nums_filters(nums_filters)
            self.nums_filters = counts
            self.bn_epsilon = float(bn_epsilon)
            layers = {
                "layer0_conv": nn.Conv2d(3, counts[0], KERNEL_SIZE, padding=0, bias=True),
                "layer0_bn": nn.BatchNorm2d(counts[0], eps=self.bn_epsilon),
            }
            for layer in range(1, NUM_LAYERS):
                previous = counts[layer - 1]
                layers[f"layer{layer}_conv_depth"] = nn.Conv2d(
                    previous,
                    previous,
                    KERNEL_SIZE,
                    stride=STRIDES[layer],
                    padding=0,
                    groups=previous,
                    bias=False,
                )
                layers[f"layer{layer}_conv_point"] = nn.Conv2d(previous, counts[layer], 1, bias=True)
                layers[f"layer{layer}_bn"] = nn.BatchNorm2d(counts[layer], eps=self.bn_epsilon)
            layers["Beta"] = nn.Linear(OUTPUT_SIZE * OUTPUT_SIZE * counts[-1], 1)
            self.layers = nn.ModuleDict(layers)
            self.eval()

        @staticmethod
        def _pad_same(activity, stride: int):
            top, bottom = same_padding(activity.shape[2], stride)
            left, right = same_padding(activity.shape[3], stride)
            return functional.pad(activity, (left, right, top, bottom))

        def _conv(self, activity, layer: int):
            layers = self.layers
            if layer == 0:
                return layers["layer0_conv"](self._pad_same(activity, STRIDES[0]))
            depthwise = layers[f"layer{layer}_conv_depth"](
                self._pad_same(activity, STRIDES[layer])
            )
            return layers[f"layer{layer}_conv_point"](depthwise)

        def layer_output(self, images, layer: int, stage: str = "act"):
            """Activity of one layer, NCHW.

            Args:
                images: float tensor ``(N, 3, 112, 112)``, recentred.
                layer: 0..4.
                stage: ``"conv"`` (pre-BN), ``"bn"`` or ``"act"`` (after ReLU).

            Returns:
                Tensor ``(N, K_layer, height, width)``.
            """
            if layer not in range(NUM_LAYERS) or stage not in ("conv", "bn", "act"):
                raise ValueError(
                    f"layer must be 0..{NUM_LAYERS - 1} and stage one of conv, bn, act; "
                    f"got layer={layer!r}, stage={stage!r}."
                )
            activity = images
            for index in range(layer + 1):
                activity = self._conv(activity, index)
                if index == layer and stage == "conv":
                    return activity
                activity = self.layers[f"layer{index}_bn"](activity)
                if index == layer and stage == "bn":
                    return activity
                activity = functional.relu(activity)
            return activity

        def forward(self, images):
            """Responses to recentred images.

            Args:
                images: float tensor ``(N, 3, 112, 112)`` (NCHW).

            Returns:
                Tensor ``(N, 1)``.
            """
            activity = self.layer_output(images, NUM_LAYERS - 1, "act")
            # Keras flattens channels last; Beta's weight keeps that layout.
            flat = activity.permute(0, 2, 3, 1).flatten(1)
            return self.layers["Beta"](flat)

    return CompactModelTorch


def __getattr__(name: str):
    # ``from classes.compact.torch_port import CompactModelTorch`` works with
    # torch installed and raises the install hint without it.
    if name == "CompactModelTorch":
        return _compact_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    """Builds a :class:`CompactModelTorch` from a release-style state dict.

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
    _require_torch()
    dtype = torch.float32 if dtype is None else dtype
    counts = _nums_filters_from_state_dict(state_dict, source)
    model = _compact_model_class()(counts, bn_epsilon=bn_epsilon)
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
        A :class:`CompactModelTorch` in eval mode.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: unknown session/neuron; the file is corrupt or not a
            compact-model state dict.
        FileNotFoundError: the ``.pt`` file is missing.
    """
    _require_torch()
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
    _require_torch()
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
            (e.g. from :func:`classes.compact.model.load_weights_npy`).
        dtype: torch dtype; default ``torch.float32``.

    Returns:
        A :class:`CompactModelTorch` in eval mode whose outputs equal
        Keras's to float precision.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: the weights do not make a compact model.
    """
    state_dict = state_dict_from_keras_weights(weights, release_semantics=False)
    return model_from_state_dict(state_dict, BN_EPSILON, dtype, source="Keras weights")


def predict_responses_torch(model, images, batch_size: int = 64) -> np.ndarray:
    """Responses of a Torch compact model to recentred images.

    Args:
        model: a :class:`CompactModelTorch`.
        images: recentred NumPy ``(num_images, 112, 112, 3)`` (channels last,
            as for the Keras models); converted to NCHW here.
        batch_size: images per forward pass.

    Returns:
        ``(num_images,)`` in the model's precision (float32 by default).

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: bad images or batch size.
    """
    _require_torch()
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    images = check_images(images, "recentered")
    parameter = next(model.parameters())
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            batch = batch.to(dtype=parameter.dtype).permute(0, 3, 1, 2).contiguous()
            outputs.append(model(batch)[:, 0].numpy())
    if not outputs:
        return np.zeros(0, dtype=parameter.detach().numpy().dtype)
    return np.concatenate(outputs)


# Session whose held-out images stand in for 211022's, whose zip is absent.
SUBSTITUTE_IMAGE_SESSION = "210224"


def evaluation_images(
    session_id, data_root=None, num_images: int | None = None, cache_dir=None
):
    """The held-out (second-half) images of a model's own test session.

    Session 211022's images are not in the release; its models get the
    second half of validation session 210224's 800 normal images instead.

    Args:
        session_id: a held-out test session.
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        num_images: keep the first ``num_images`` of the half; None keeps all.
        cache_dir: decoded-image cache (see :func:`classes.data.images.load_images`).

    Returns:
        ``(recentred float32 (n, 112, 112, 3), image_session, image_numbers
        (1-based), note)``; ``note`` is empty unless images were substituted.
    """
    from classes.data.images import available_image_sessions, load_images
    from classes.data.preprocessing import recenter_images
    from classes.data.sessions import get_session, held_out_indices

    session = get_session(session_id)
    note = ""
    if session.session_id in available_image_sessions(data_root):
        image_session = session.session_id
        evaluation = held_out_indices(image_session)[1]
    else:
        image_session = SUBSTITUTE_IMAGE_SESSION
        count = get_session(image_session).num_images_in_file
        evaluation = np.arange(count // 2, count)
        note = (
            f"images of session {session.session_id} are absent from the release "
            f"(data_V4_responses/images/images_{session.session_id}.zip); used the "
            f"second half of session {image_session}'s images instead"
        )
    if num_images is not None:
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}.")
        evaluation = evaluation[:num_images]
    numbers = evaluation + 1
    images = recenter_images(
        load_images(image_session, numbers, data_root, cache_dir=cache_dir)
    )
    return images, image_session, numbers, note


def relative_max_difference(reference, other) -> float:
    """``max |reference - other|`` divided by the s.d. of ``reference``.

    Returns:
        float; infinite when ``reference`` is constant and the two differ.
    """
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or reference.size == 0:
        raise ValueError(
            f"Need two non-empty response vectors of one shape; got {reference.shape} "
            f"and {other.shape}."
        )
    scale = reference.std()
    if scale == 0:
        return float("inf") if np.any(reference != other) else 0.0
    return float(np.max(np.abs(reference - other)) / scale)


TORCH_BUILDS = ("release_pt", "from_keras")
# Largest max |Keras - Torch| / response s.d. over the 219 released models, on
# the first 64 held-out images of each model's session (docs/torch_port.md;
# worst models 211022/neuron27 and 211022/neuron9, on 210224's images).
MEASURED_MAX_RELATIVE_DIFFERENCE = {"release_pt": 0.0587, "from_keras": 4.34e-6}


def measure_torch_agreement(
    identifiers,
    num_images: int = 64,
    data_root=None,
    show_progress: bool = True,
    cache_dir=None,
    batch_size: int = 64,
):
    """Responses of Keras and both Torch builds for many released models.

    Args:
        identifiers: :class:`classes.compact.model.ModelId` list.
        num_images: the first this many held-out images of each model's
            session (see :func:`evaluation_images`).
        data_root: see :func:`classes.data.data_root.resolve_data_root`.
        show_progress: tqdm bar.
        cache_dir: decoded-image cache.
        batch_size: images per forward pass (Keras and Torch).

    Returns:
        One dict per model: ``model`` (``"<session>/neuron<k>"``),
        ``image_session``, and float arrays ``(num_images,)``: ``keras`` (the
        ``.keras`` file through :func:`predict_responses`), ``release_pt``
        (the release's ``.pt``, epsilon 1e-5) and ``from_keras`` (the exact
        port, epsilon 1e-3). Summarise with :func:`summarize_agreement`.
    """
    from tqdm import tqdm

    from classes.compact.model import load_compact_model
    from classes.compact.tools import predict_responses

    _require_torch()
    images_by_session = {}
    rows = []
    for identifier in tqdm(identifiers, desc="Keras vs Torch", disable=not show_progress):
        if identifier.session_id not in images_by_session:
            images_by_session[identifier.session_id] = evaluation_images(
                identifier.session_id, data_root, num_images, cache_dir
            )
        images, image_session, _, _ = images_by_session[identifier.session_id]
        keras_model = load_compact_model(identifier.session_id, identifier.neuron, "keras", data_root)
        release = load_torch_compact_model(identifier.session_id, identifier.neuron, data_root)
        rows.append(
            {
                "model": str(identifier),
                "image_session": image_session,
                "keras": predict_responses(keras_model, images, batch_size),
                "release_pt": predict_responses_torch(release, images, batch_size),
                "from_keras": predict_responses_torch(
                    torch_model_from_keras_weights(keras_model), images, batch_size
                ),
            }
        )
    return rows


def summarize_agreement(rows, num_images: int | None = None) -> dict:
    """Max |Keras - Torch| / response s.d. over models, for both Torch builds.

    Args:
        rows: from :func:`measure_torch_agreement`.
        num_images: use only each model's first ``num_images`` images;
            None uses all.

    Returns:
        ``{"num_models", "num_images", "per_model": {build: {model: ratio}},
        build: {"max", "median", "worst_model"}}`` for each build in
        ``TORCH_BUILDS``.
    """
    if not rows:
        raise ValueError("No measured models to summarise.")
    count = len(rows[0]["keras"]) if num_images is None else int(num_images)
    summary = {"num_models": len(rows), "num_images": count, "per_model": {}}
    for build in TORCH_BUILDS:
        ratios = {
            row["model"]: relative_max_difference(row["keras"][:count], row[build][:count])
            for row in rows
        }
        values = np.array(list(ratios.values()))
        summary["per_model"][build] = ratios
        summary[build] = {
            "max": float(values.max()),
            "median": float(np.median(values)),
            "worst_model": list(ratios)[int(np.argmax(values))],
        }
    return summary

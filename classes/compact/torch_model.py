"""The compact model as a PyTorch module.

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

The submodules carry the names of the release's ``.pt`` files (see
:mod:`classes.compact.torch_conversion`, which builds models from those files
and from Keras weights; :mod:`classes.compact.torch_agreement` measures how
closely they follow Keras).

PyTorch is optional: this module imports without it, and only the functions
that need it raise ``ImportError`` ("pip install torch").
"""

from __future__ import annotations

import functools

import numpy as np

from classes.compact.architecture import (
    BN_EPSILON,
    KERNEL_SIZE,
    NUM_LAYERS,
    OUTPUT_SIZE,
    STRIDES,
    check_nums_filters,
)
from classes.data.preprocessing import check_images

try:  # optional dependency
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

_INSTALL_HINT = (
    "PyTorch is needed for the Torch port of the compact models: pip install torch "
    "(or pip install '.[torch]')."
)
STAGES = ("conv", "bn", "act")


def torch_available() -> bool:
    """Whether PyTorch can be imported."""
    return torch is not None


def require_torch():
    """The ``torch`` module.

    Raises:
        ImportError: PyTorch is not installed; the message says how to install it.
    """
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


def _layer_modules(counts: list[int], bn_epsilon: float) -> dict:
    """The model's submodules under the release's names (conv, BN, readout)."""
    nn = require_torch().nn
    layers = {
        "layer0_conv": nn.Conv2d(3, counts[0], KERNEL_SIZE, padding=0, bias=True),
        "layer0_bn": nn.BatchNorm2d(counts[0], eps=bn_epsilon),
    }
    for layer in range(1, NUM_LAYERS):
        previous = counts[layer - 1]
        layers[f"layer{layer}_conv_depth"] = nn.Conv2d(
            previous, previous, KERNEL_SIZE, stride=STRIDES[layer], padding=0, groups=previous, bias=False
        )
        layers[f"layer{layer}_conv_point"] = nn.Conv2d(previous, counts[layer], 1, bias=True)
        layers[f"layer{layer}_bn"] = nn.BatchNorm2d(counts[layer], eps=bn_epsilon)
    layers["Beta"] = nn.Linear(OUTPUT_SIZE * OUTPUT_SIZE * counts[-1], 1)
    return layers


def _pad_same(activity, stride: int):
    """``activity`` (NCHW) padded as Keras's "same" pads before a 5x5 conv."""
    top, bottom = same_padding(activity.shape[2], stride)
    left, right = same_padding(activity.shape[3], stride)
    return require_torch().nn.functional.pad(activity, (left, right, top, bottom))


def _convolve(layers, activity, layer: int):
    """Layer ``layer``'s convolution (depthwise then pointwise in layers 1-4), pre-BN."""
    if layer == 0:
        return layers["layer0_conv"](_pad_same(activity, STRIDES[0]))
    depthwise = layers[f"layer{layer}_conv_depth"](_pad_same(activity, STRIDES[layer]))
    return layers[f"layer{layer}_conv_point"](depthwise)


def layer_activity_torch(layers, images, layer: int, stage: str = "act"):
    """Activity of one layer of a compact model's submodules, NCHW.

    Args:
        layers: the model's ``layers`` (a ``ModuleDict`` under the release's names).
        images: float tensor ``(N, 3, 112, 112)``, recentred.
        layer: 0..4.
        stage: ``"conv"`` (pre-BN), ``"bn"`` or ``"act"`` (after ReLU).

    Returns:
        Tensor ``(N, K_layer, height, width)``.

    Raises:
        ValueError: a layer outside 0..4 or an unknown stage.
    """
    if layer not in range(NUM_LAYERS) or stage not in STAGES:
        raise ValueError(
            f"layer must be 0..{NUM_LAYERS - 1} and stage one of {', '.join(STAGES)}; "
            f"got layer={layer!r}, stage={stage!r}."
        )
    activity = images
    for index in range(layer + 1):
        activity = _convolve(layers, activity, index)
        if index == layer and stage == "conv":
            return activity
        activity = layers[f"layer{index}_bn"](activity)
        if index == layer and stage == "bn":
            return activity
        activity = require_torch().nn.functional.relu(activity)
    return activity


@functools.lru_cache(maxsize=1)
def compact_model_class():
    """The ``CompactModelTorch`` class, defined on first use so that this module imports without torch.

    Raises:
        ImportError: PyTorch is not installed.
    """

    class CompactModelTorch(require_torch().nn.Module):
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
            self.nums_filters = check_nums_filters(nums_filters)
            self.bn_epsilon = float(bn_epsilon)
            self.layers = torch.nn.ModuleDict(_layer_modules(self.nums_filters, self.bn_epsilon))
            self.eval()

        def layer_output(self, images, layer: int, stage: str = "act"):
            """Activity of one layer, NCHW; see :func:`layer_activity_torch`."""
            return layer_activity_torch(self.layers, images, layer, stage)

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
    # ``from classes.compact.torch_model import CompactModelTorch`` works with
    # torch installed and raises the install hint without it.
    if name == "CompactModelTorch":
        return compact_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    require_torch()
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

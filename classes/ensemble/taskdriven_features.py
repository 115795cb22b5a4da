"""Task-driven features: ImageNet networks cut at a middle layer.

The ensemble reads ResNet50 (ImageNet weights) cut at ``conv4_block4_out``,
``(14, 14, 1024)`` maps for 224x224 images preprocessed with
``keras.applications.resnet50.preprocess_input`` on raw 0..255 pixels
(SPEC section 4). The same layer, mapped linearly to neurons, is the
"ResNet50" baseline of Fig. 1b.

The ImageNet weights cannot be downloaded on this machine: pass the local
file that ``keras.applications`` would download (for ResNet50
``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` from
https://storage.googleapis.com/tensorflow/keras-applications/resnet/). A
file already in Keras's own cache (``~/.keras/models/``) is found too.

For tests and tiny CI runs, :func:`random_patch_features` gives cheap
features from a fixed random projection of image patches; they are NOT
ResNet50 features and results from them say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classes.data.images import resize_images
from classes.data.preprocessing import RecentredImages
from classes.runtime.quiet_tensorflow import keras, tf


@dataclass(frozen=True)
class Network:
    """A keras.applications network and the middle layer cut for features.

    Attributes:
        name: ``"resnet50"``, ``"vgg16"`` or ``"vgg19"``.
        layer: the layer whose output is the feature map.
        feature_shape: that output's ``(height, width, channels)``.
        weights_file: the notop ImageNet weights file of keras.applications.
        weights_url: where that file is published.
        source: where the layer choice comes from.
    """

    name: str
    layer: str
    feature_shape: tuple
    weights_file: str
    weights_url: str
    source: str

    def build(self, weights, include_top: bool = False):
        constructor, _ = _APPLICATIONS[self.name]
        # A named input keeps the layer names of the release's summary even
        # when Keras has already handed out "input_layer" in this process.
        inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name="input_layer")
        return constructor(weights=weights, include_top=include_top, input_tensor=inputs)

    def preprocess(self, images):
        _, preprocess = _APPLICATIONS[self.name]
        return preprocess(images)


_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_APPLICATIONS = {
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    "vgg19": (keras.applications.VGG19, keras.applications.vgg19.preprocess_input),
}
NETWORKS = {
    "resnet50": Network(
        "resnet50", "conv4_block4_out", (14, 14, 1024),
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _BASE_URL + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "the paper (SPEC section 4)",
    ),
    # The paper names only ResNet50's layer; these middle layers (14x14 maps
    # like ResNet50's) are this reproduction's choice.
    "vgg16": Network(
        "vgg16", "block4_pool", (14, 14, 512),
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _BASE_URL + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "this reproduction's choice (not given in the paper)",
    ),
    "vgg19": Network(
        "vgg19", "block4_pool", (14, 14, 512),
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _BASE_URL + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "this reproduction's choice (not given in the paper)",
    ),
}
INPUT_SIZE = 224
RANDOM_FEATURES_LABEL = "random patch features (NOT ResNet50; code-path check only)"


def get_network(name: str) -> Network:
    """The :class:`Network` entry of ``name`` (ValueError if unknown)."""
    if name not in NETWORKS:
        raise ValueError(f"Unknown network {name!r}; choose from {', '.join(NETWORKS)}.")
    return NETWORKS[name]


def keras_cache_weights(network: str = "resnet50") -> Path:
    """Where Keras keeps a downloaded weights file (``$KERAS_HOME`` or ``~/.keras``)."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "models" / get_network(network).weights_file


def missing_weights_message(network: str = "resnet50") -> str:
    """Says which file is needed, where to get it and how to pass it."""
    entry = get_network(network)
    return (
        f"{entry.name} ImageNet weights are needed and cannot be downloaded here. On a "
        f"machine with internet, get {entry.weights_file} from {entry.weights_url} "
        f"(the file keras.applications downloads) and pass its path with "
        f"--{entry.name}-weights PATH (or place it at {keras_cache_weights(network)})."
    )


def resolve_weights_path(weights_path, network: str = "resnet50") -> Path:
    """Checks a user-given weights file; falls back to Keras's cache.

    Raises:
        FileNotFoundError: no path given and none in Keras's cache, or the
            given path does not exist; the message says how to get the file.
        ValueError: the path is not an ``.h5`` weights file.
    """
    if weights_path is None:
        cached = keras_cache_weights(network)
        if cached.is_file():
            return cached
        raise FileNotFoundError("No weights file given. " + missing_weights_message(network))
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} does not exist. " + missing_weights_message(network))
    if not path.name.endswith(".h5"):
        raise ValueError(
            f"{path} is not a Keras .h5 weights file; expected {get_network(network).weights_file} "
            "(or a .weights.h5 saved by Keras 3)."
        )
    return path


def build_feature_extractor(network: str = "resnet50", weights_path=None,
                            allow_random_weights: bool = False) -> keras.Model:
    """The network cut at its middle layer, with ImageNet weights from a file.

    Args:
        network: a key of :data:`NETWORKS`.
        weights_path: the notop weights file (or a whole-model ``.h5`` of the
            same network); None looks in Keras's cache.
        allow_random_weights: build with random weights instead (tests only:
            the features mean nothing).

    Returns:
        ``keras.Model`` from preprocessed ``(N, 224, 224, 3)`` to the cut
        layer's maps (for ResNet50 ``(N, 14, 14, 1024)``).

    Raises:
        FileNotFoundError, ValueError: see :func:`resolve_weights_path`;
            ValueError also when the file's weights do not fit the network.
    """
    entry = get_network(network)
    if allow_random_weights:
        base = entry.build(None)
    else:
        path = resolve_weights_path(weights_path, network)
        base = None
        errors = []
        # The notop file fits include_top=False; a whole-network file needs the top.
        for include_top in (False, True):
            try:
                base = entry.build(str(path), include_top=include_top)
                break
            except Exception as error:  # h5py and Keras raise many types for a bad file
                errors.append(f"{type(error).__name__}: {error}")
        if base is None:
            raise ValueError(
                f"{path} does not hold {entry.name} ImageNet weights ({errors[0]}). "
                f"Use {entry.weights_file}."
            )
    return keras.Model(base.input, base.get_layer(entry.layer).output, name=f"{entry.name}_{entry.layer}")


def _check_raw_images(images) -> np.ndarray:
    if isinstance(images, RecentredImages):
        raise ValueError("images are recentred (made by recenter_images or as_recentred); the "
                         "task-driven networks take raw pixels: call uncenter_images(images) first.")
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[1] != array.shape[2]:
        raise ValueError(
            f"images must be raw RGB (num_images, size, size, 3); got shape {array.shape}."
        )
    if array.size and (float(array.min()) < 0 or float(array.max()) > 255):
        raise ValueError(
            "images must be raw pixels in 0..255 (not recentred); found values "
            f"{float(array.min()):.1f}..{float(array.max()):.1f}."
        )
    return array


def extract_features(extractor: keras.Model, images, network: str = "resnet50",
                     batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
    """Features of raw images.

    Args:
        extractor: from :func:`build_feature_extractor`.
        images: raw 0..255 ``(N, size, size, 3)``; resized to 224x224
            (bilinear) unless already that size.
        batch_size: images per forward pass.

    Returns:
        float32 ``(N, *feature_shape)``.
    """
    from tqdm import tqdm

    images = _check_raw_images(images)
    entry = get_network(network)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    outputs = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"{entry.name} features",
                      disable=not show_progress):
        batch = images[start : start + batch_size]
        if batch.shape[1] != INPUT_SIZE:
            batch = resize_images(batch.astype(np.uint8), INPUT_SIZE)
        batch = entry.preprocess(batch.astype(np.float32))
        outputs.append(np.asarray(extractor(tf.constant(batch), training=False)))
    if not outputs:
        return np.zeros((0,) + entry.feature_shape, np.float32)
    return np.concatenate(outputs)


def random_patch_features(images, num_channels: int = 16, grid: int = 14, seed: int = 0) -> np.ndarray:
    """Cheap stand-in features: a fixed random projection of image patches.

    The image is cut into ``grid`` x ``grid`` patches; each patch's pixels
    (scaled to -1..1) are projected on ``num_channels`` fixed random
    directions and rectified. Image-dependent, deterministic, and NOT
    ResNet50 features (label results :data:`RANDOM_FEATURES_LABEL`).

    Args:
        images: raw 0..255 ``(N, size, size, 3)``, ``size`` divisible by ``grid``.

    Returns:
        float32 ``(N, grid, grid, num_channels)``.
    """
    images = _check_raw_images(images)
    size = images.shape[1]
    if num_channels < 1 or grid < 1 or size % grid:
        raise ValueError(
            f"Need num_channels >= 1 and an image size ({size}) divisible by grid ({grid})."
        )
    patch = size // grid
    scaled = images.astype(np.float32) / 127.5 - 1.0
    patches = scaled.reshape(len(images), grid, patch, grid, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(len(images), grid, grid, patch * patch * 3)
    generator = np.random.default_rng(seed)
    projection = generator.standard_normal((patch * patch * 3, num_channels)).astype(np.float32)
    projection /= np.sqrt(patch * patch * 3)
    offsets = generator.uniform(-0.5, 0.5, num_channels).astype(np.float32)
    return np.maximum(patches @ projection + offsets, 0.0)

"""Image preprocessing in the compact models' input space.

Compact models take raw pixels minus the per-channel means of the 12 million
training images (SPEC section 1). Raw images are uint8 or float in 0..255;
recentred images are float32 in about -116.2..+155.6.

No guessing between the two: the values of a float image in 0..154.6 (a dark
photograph, a flat grey 128) fit both kinds, and taking one for the other
silently shifts every response. So recentred images are said to be recentred
by whoever makes them: :func:`recenter_images` (from raw pixels) and
:func:`as_recentred` (for an array made in the models' space, e.g. by
gradient ascent) return :class:`RecentredImages`. Where recentred images are
expected (``check_images(images, "recentered")``, so every model-response
function), a plain float array is accepted only when its values cannot be raw
pixels (some are negative); one whose values fit both kinds is refused with a
message saying how to declare it. Where raw pixels are expected, a
:class:`RecentredImages` is refused whatever its values.
"""

from __future__ import annotations

import numpy as np

RGB_MEANS = np.array([116.222, 109.270, 100.381], dtype=np.float32)
RECENTERED_MIN = float(-RGB_MEANS.max())
RECENTERED_MAX = float(255.0 - RGB_MEANS.min())
_TOLERANCE = 1e-3


class RecentredImages(np.ndarray):
    """A batch of images declared to be in the models' input space (raw minus :data:`RGB_MEANS`).

    Made by :func:`recenter_images` or :func:`as_recentred`; a view, not a
    copy. Selections (slices, indexing, ``copy``, ``astype``) stay declared;
    arithmetic gives a plain array, which is a new image the caller declares
    again.
    """

    def __array_wrap__(self, array, context=None, return_scalar=False):
        result = np.asarray(array)
        return result[()] if return_scalar else result


def check_images(images, space: str = "raw", name: str = "images") -> np.ndarray:
    """Validates a batch of images and returns it as an array.

    Args:
        images: array ``(num_images, 112, 112, 3)``.
        space: ``"raw"`` (0..255) or ``"recentered"`` (raw minus RGB_MEANS).
        name: how to call the argument in error messages.

    Returns:
        The images as a NumPy array (not copied when already one; a
        :class:`RecentredImages` stays one).

    Raises:
        ValueError: wrong rank or shape, non-numeric dtype, NaN or infinite
            pixels, or values outside the range of ``space``; where the
            values fit the other space, the message says so. For
            ``"recentered"``: integer images, and plain float images whose
            values fit raw pixels too (declare them with
            :func:`as_recentred` or :func:`recenter_images`). For ``"raw"``:
            :class:`RecentredImages`.
    """
    if space not in ("raw", "recentered"):
        raise ValueError(f"space must be 'raw' or 'recentered', got {space!r}.")
    declared = isinstance(images, RecentredImages)
    array = images if declared else np.asarray(images)
    _check_dtype_and_shape(array, name)
    if declared and space == "raw":
        raise ValueError(
            f"{name} are recentred (made by recenter_images or as_recentred), not raw pixels; "
            "call uncenter_images(images) for raw pixels."
        )
    if array.size == 0:
        return array
    # min and max carry a NaN or an infinity through, so they check finiteness too without a
    # boolean array of the batch's size (37 MB per 1,000 images, allocated afresh at every call).
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contain NaN or infinite pixels.")
    if space == "raw":
        _check_raw_range(low, high, name)
    else:
        _check_recentered_range(array.dtype, low, high, name)
        if not declared and low >= -_TOLERANCE:
            raise ValueError(
                f"{name} lie in {low:.1f}..{high:.1f}, which fits raw pixels and recentred images "
                "alike; say which they are: recenter_images(images) for raw pixels, or "
                "as_recentred(images) if they are recentred already."
            )
    return array


def _check_dtype_and_shape(array: np.ndarray, name: str) -> None:
    """Raises ValueError unless ``array`` is a numeric ``(num_images, 112, 112, 3)`` batch."""
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}.")
    if array.ndim == 3 and array.shape == (112, 112, 3):
        raise ValueError(
            f"{name} has shape {array.shape}, a single image; pass a batch "
            "(num_images, 112, 112, 3), e.g. image[None]."
        )
    if array.ndim != 4 or array.shape[1:] != (112, 112, 3):
        raise ValueError(
            f"{name} must have shape (num_images, 112, 112, 3); got {array.shape}. "
            "Compact models take 112x112 RGB images, channels last."
        )


def _check_raw_range(low: float, high: float, name: str) -> None:
    """Raises ValueError unless ``low..high`` lies in 0..255; hints at recentred input."""
    if low < -_TOLERANCE:
        hint = (
            " They look recentred already (raw minus the RGB means); pass "
            "them as recentred or call uncenter_images first."
            if low >= RECENTERED_MIN - _TOLERANCE and high <= RECENTERED_MAX + _TOLERANCE
            else ""
        )
        raise ValueError(
            f"Raw {name} must lie in 0..255; found values {low:.1f}..{high:.1f}.{hint}"
        )
    if high > 255 + _TOLERANCE:
        raise ValueError(f"Raw {name} must lie in 0..255; found maximum {high:.1f}.")


def _check_recentered_range(dtype, low: float, high: float, name: str) -> None:
    """Raises ValueError for integer or out-of-range recentred images; hints at raw input."""
    if np.issubdtype(dtype, np.integer):
        raise ValueError(
            f"{name} are {dtype}, which means raw pixels; models take recentred "
            "float images: call recenter_images(images) first."
        )
    if low < RECENTERED_MIN - _TOLERANCE or high > RECENTERED_MAX + _TOLERANCE:
        hint = (
            " They look like raw 0..255 pixels; call recenter_images(images) first."
            if low >= -_TOLERANCE and high <= 255 + _TOLERANCE
            else ""
        )
        raise ValueError(
            f"Recentred {name} must lie in {RECENTERED_MIN:.1f}..{RECENTERED_MAX:.1f}; "
            f"found {low:.1f}..{high:.1f}.{hint}"
        )


def recenter_images(images, out: np.ndarray | None = None) -> RecentredImages:
    """Raw 0..255 images to model input: float32, minus the RGB means.

    Args:
        images: ``(num_images, 112, 112, 3)`` raw pixels, uint8 or float.
        out: optional float32 C-contiguous array of at least ``num_images``
            images, written in place (its first ``num_images``): a loop over
            blocks of images reuses one buffer instead of fresh memory, whose
            first touch is slow on some machines.

    Returns:
        float32 :class:`RecentredImages` of the same shape (a view of ``out``
        when given).

    Raises:
        ValueError: bad images (:func:`check_images`), or an ``out`` that is
            not float32, C-contiguous and large enough.
    """
    array = check_images(images, "raw")
    if out is None:
        # One pass into one new array: converting first, then subtracting, made
        # two arrays of 4 bytes a pixel and took 4-12x as long (1,024 images:
        # 0.25-0.74 s against 0.065 s).
        return np.subtract(array, RGB_MEANS, dtype=np.float32).view(RecentredImages)
    if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous
            or out.shape[1:] != array.shape[1:] or len(out) < len(array)):
        raise ValueError(f"out must be a C-contiguous float32 array of at least {len(array)} images of shape "
                         f"{array.shape[1:]}; got {getattr(out, 'dtype', type(out).__name__)} "
                         f"{getattr(out, 'shape', '')}.")
    target = out[: len(array)]
    np.subtract(array, RGB_MEANS, out=target, dtype=np.float32)
    return target.view(RecentredImages)


class RecentringBuffer:
    """One float32 buffer that :func:`recenter_images` writes batch after batch into, grown when a batch is larger.

    Loops over many batches use it instead of a fresh array per batch, whose
    first touch is slow on some machines.
    """

    def __init__(self):
        self.array = np.empty((0, 112, 112, 3), np.float32)

    def recentred(self, raw_images) -> RecentredImages:
        """``raw_images`` recentred into the buffer (valid until the next call)."""
        if len(self.array) < len(raw_images):
            self.array = np.empty((len(raw_images), 112, 112, 3), np.float32)
        return recenter_images(raw_images, out=self.array)


def as_recentred(images) -> RecentredImages:
    """Declares float images to be recentred already (made in the models' input space).

    Args:
        images: float ``(num_images, 112, 112, 3)`` in
            :data:`RECENTERED_MIN`..:data:`RECENTERED_MAX`, e.g. the result of
            gradient ascent on a model's input.

    Returns:
        float32 :class:`RecentredImages` (a view when already float32).

    Raises:
        ValueError: integer images (raw pixels), or values outside the
            recentred range.
    """
    array = np.asarray(images)
    _check_dtype_and_shape(array, "images")
    if np.issubdtype(array.dtype, np.integer):
        _check_recentered_range(array.dtype, 0.0, 0.0, "images")
    return check_images(array.astype(np.float32, copy=False).view(RecentredImages), "recentered")


def uncenter_images(images, as_uint8: bool = True) -> np.ndarray:
    """Model input back to raw pixels: add the RGB means, clip to 0..255.

    Args:
        images: recentred ``(num_images, 112, 112, 3)``.
        as_uint8: round to uint8 (for saving); otherwise float32.
    """
    array = np.asarray(check_images(images, "recentered"))
    raw = np.clip(array.astype(np.float32) + RGB_MEANS, 0.0, 255.0)
    return np.round(raw).astype(np.uint8) if as_uint8 else raw


def gaudy_images(images, blur_sigma: float = 0.0) -> np.ndarray:
    """Gaudy images: each channel thresholded at its own mean, to 0 or 255.

    Per image and channel, pixels below that channel's mean go to 0 and the
    rest to 255, optionally after a Gaussian blur of ``blur_sigma`` pixels.

    Args:
        images: raw ``(num_images, 112, 112, 3)``.
        blur_sigma: blur before thresholding; 0 for none.

    Returns:
        uint8 raw images of the same shape, every pixel 0 or 255.
    """
    array = check_images(images, "raw").astype(np.float32)
    if blur_sigma > 0:
        from scipy.ndimage import gaussian_filter

        array = gaussian_filter(array, sigma=(0, blur_sigma, blur_sigma, 0))
    means = array.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    return np.where(array < means, 0, 255).astype(np.uint8)


def grayscale_images(images) -> np.ndarray:
    """Luminance (ITU-R BT.601 weights) copied to all three channels.

    Returns:
        uint8 raw images ``(num_images, 112, 112, 3)``.
    """
    array = check_images(images, "raw").astype(np.float32)
    luminance = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gray = np.clip(np.round(luminance), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def white_noise_images(num_images: int, seed: int = 0) -> np.ndarray:
    """Uniform white-noise images, raw uint8 ``(num_images, 112, 112, 3)``."""
    if num_images < 0:
        raise ValueError(f"num_images must be non-negative, got {num_images}.")
    generator = np.random.default_rng(seed)
    return generator.integers(0, 256, size=(num_images, 112, 112, 3), dtype=np.uint8)

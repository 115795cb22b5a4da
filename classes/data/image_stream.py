"""A seeded, unbounded stream of augmented training images.

Compact models are distilled on a teacher's responses to images, and the
teacher labels any image, so training need not cycle over the ~32,500 entries
of :mod:`classes.data.image_pool`. The stream draws from the same base images
(every image of the release's zips present, with the held-out second halves of
the test sessions kept out: :func:`classes.data.image_pool.build_image_pool`
decides which), less ``num_validation`` base images chosen by the seed that the
stream never shows (:meth:`ImageStream.validation_images`).

Block ``index`` of the stream depends on ``(seed, index)`` only (its generator
is ``SeedSequence(seed, spawn_key=(1, index))``), so training resumes at any
block without replaying the earlier ones. Each image is made in raw pixel
space, in this order, every draw independent:

1. base image: uniform over the training base images;
2. mixture (p = 0.2): alpha blend ``w * first + (1 - w) * second`` with a
   second, different base image, ``w ~ U(0.3, 0.7)``, rounded to uint8;
3. crop: a square of side ``s * 112``, ``s ~ U(0.5, 1.0)``, at a uniform
   sub-pixel position inside the image, rescaled to 112x112 (PIL bilinear);
   positions are continuous, so two draws of one base image practically never
   give the same pixels;
4. horizontal flip (p = 0.5);
5. gaudy (p = 0.2): :func:`classes.data.preprocessing.gaudy_images`;
6. colour: per-channel gain ``g_c ~ U(0.8, 1.2)``, then contrast
   ``c ~ U(0.6, 1.4)`` about the image's mean and brightness
   ``b ~ U(-30, 30)``: ``clip((g_c x - m) c + m + b, 0, 255)``, ``m`` the
   mean of ``g_c x`` over the image;
7. grayscale (p = 0.1): :func:`classes.data.preprocessing.grayscale_images`;

then recentred (:func:`classes.data.preprocessing.recenter_images`).

Speed: a 2000-image block takes about 1.5 s of CPU time on one core
(measured with ``time.process_time`` on the 2-core development machine; 4-5 s
of wall time while it was shared with about ten other jobs), plus about 2.5 s
once per process to read the ~10,800 base images (~400 MB) from the decode
cache of :mod:`classes.data.images`. Training consumes a block in about 15 s.

Example::

    stream = ImageStream(seed=0)
    images, description = stream.block(0)     # (2000, 112, 112, 3) float32
    validation = stream.validation_images()   # (500, 112, 112, 3) float32
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root
from classes.data.image_pool import build_image_pool
from classes.data.images import IMAGE_SIZE, load_images
from classes.data.preprocessing import gaudy_images, grayscale_images, recenter_images

# Part of the fingerprint: change it whenever the distributions below change,
# so that caches of teacher responses to the old stream are not reused.
AUGMENTATION_VERSION = 1
MIXTURE_PROBABILITY = 0.2
MIXTURE_WEIGHT = (0.3, 0.7)
CROP_FRACTION = (0.5, 1.0)
FLIP_PROBABILITY = 0.5
GAUDY_PROBABILITY = 0.2
CHANNEL_GAIN = (0.8, 1.2)
CONTRAST = (0.6, 1.4)
BRIGHTNESS = (-30.0, 30.0)
GRAYSCALE_PROBABILITY = 0.1
# Images augmented at once: bounds the float temporaries to ~40 MB each.
CHUNK_SIZE = 250

DESCRIPTION_DTYPE = np.dtype(
    [
        ("base_session", "U6"),
        ("base_number", np.int32),
        ("second_session", "U6"),  # "" when not a mixture
        ("second_number", np.int32),  # 0 when not a mixture
        ("mixture_weight", np.float32),  # weight of the base image; 1 when not a mixture
        ("crop_side", np.float32),  # pixels
        ("crop_left", np.float32),
        ("crop_top", np.float32),
        ("flipped", np.bool_),
        ("gaudy", np.bool_),
        ("gains", np.float32, (3,)),
        ("contrast", np.float32),
        ("brightness", np.float32),
        ("grayscale", np.bool_),
    ]
)

# One decoded copy of the base images per process: streams that differ only
# in seed or block size share it (about 400 MB for the whole release).
_RAW_CACHE: dict = {}


def _check_integer(value, name: str, minimum: int, advice: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}. {advice}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}. {advice}")
    return int(value)


@dataclass(frozen=True)
class ImageStream:
    """An unbounded, reproducible stream of augmented training images.

    Args:
        seed: non-negative integer; fixes the validation set and every block.
        block_size: images per block.
        data_root: the release folder (None: resolved as usual).
        num_validation: base images kept out of the stream for validation.

    Attributes:
        sessions: session ids that ``base_ids[:, 0]`` indexes.
        base_ids: int64 ``(num_base, 2)``: session index, 1-based image number
            of every base image, sorted.
        validation_positions: rows of ``base_ids`` kept for validation, sorted.
        training_positions: the other rows, which the stream draws from.

    Raises:
        ValueError: a negative or non-integer seed, ``block_size < 1``,
            ``num_validation`` negative or leaving fewer than two base images.
        FileNotFoundError: no release, or a release without image zips.
    """

    seed: int = 0
    block_size: int = 2000
    data_root: Path | None = None
    num_validation: int = 500
    sessions: tuple = field(init=False, repr=False, compare=False)
    base_ids: np.ndarray = field(init=False, repr=False, compare=False)
    validation_positions: np.ndarray = field(init=False, repr=False, compare=False)
    training_positions: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_integer(self.seed, "seed", 0, "Pass a non-negative integer seed.")
        _check_integer(self.block_size, "block_size", 1, "Pass the images per block, e.g. 2000.")
        _check_integer(self.num_validation, "num_validation", 0, "Pass 0 for no validation set.")
        pool = build_image_pool(self.data_root, variants=("original",))
        base_ids = np.unique(pool.entries[:, :2], axis=0)
        if self.num_validation > len(base_ids) - 2:
            raise ValueError(
                f"num_validation={self.num_validation} leaves fewer than 2 of the "
                f"{len(base_ids)} base images for the stream; choose at most {len(base_ids) - 2}."
            )
        generator = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(0,)))
        validation = np.sort(generator.choice(len(base_ids), self.num_validation, replace=False))
        base_ids.setflags(write=False)
        object.__setattr__(self, "sessions", tuple(pool.sessions))
        object.__setattr__(self, "base_ids", base_ids)
        object.__setattr__(self, "validation_positions", validation)
        object.__setattr__(self, "training_positions", np.setdiff1d(np.arange(len(base_ids)), validation))

    def fingerprint(self) -> str:
        """Short hash of the settings and the base-image list.

        Equal settings over the same release give equal fingerprints; the
        augmentation version is part of it, so changed distributions do not
        reuse caches of the old ones. The zips' contents are not hashed (that
        would read ~500 MB): a zip replaced by one with other images of the
        same count keeps the fingerprint.
        """
        digest = hashlib.sha256()
        settings = (AUGMENTATION_VERSION, int(self.seed), int(self.block_size), int(self.num_validation))
        digest.update(f"image_stream{settings}".encode())
        digest.update(",".join(self.sessions).encode())
        digest.update(np.ascontiguousarray(self.base_ids, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def base_image_ids(self, positions) -> list[tuple[str, int]]:
        """``(session, 1-based image number)`` of rows of ``base_ids``."""
        return [(self.sessions[session], int(number)) for session, number in self.base_ids[positions]]

    @cached_property
    def _raw_images(self) -> np.ndarray:
        # Every base image as raw uint8, read once and shared between streams.
        key = (str(resolve_data_root(self.data_root)), self.sessions, self.base_ids.tobytes())
        if key not in _RAW_CACHE:
            _RAW_CACHE.clear()
            raw = np.empty((len(self.base_ids), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            for session_index, session in enumerate(self.sessions):
                rows = np.flatnonzero(self.base_ids[:, 0] == session_index)
                raw[rows] = load_images(session, self.base_ids[rows, 1], data_root=self.data_root)
            raw.setflags(write=False)
            _RAW_CACHE[key] = raw
        return _RAW_CACHE[key]

    def validation_images(self) -> np.ndarray:
        """The validation base images, unaugmented.

        Returns:
            recentred float32 ``(num_validation, 112, 112, 3)``, in
            ``validation_positions`` order.
        """
        return recenter_images(self._raw_images[self.validation_positions])

    def _draws(self, index) -> tuple[dict, np.ndarray, np.ndarray]:
        index = _check_integer(index, "block index", 0, "Blocks are numbered 0, 1, 2, ...")
        generator = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(1, index)))
        draws = draw_augmentations(generator, len(self.training_positions), self.block_size)
        return draws, self.training_positions[draws["first"]], self.training_positions[draws["second"]]

    def block(self, index) -> tuple[np.ndarray, np.ndarray]:
        """Block ``index`` of the stream.

        Args:
            index: 0, 1, 2, ...; the block depends on ``(seed, index)`` only.

        Returns:
            ``(images, description)``: recentred float32
            ``(block_size, 112, 112, 3)``, and the block's
            :meth:`description`.

        Raises:
            ValueError: a negative or non-integer index.
        """
        images = np.empty((self.block_size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
        description = self._augment_block(index, images, recenter_images)
        return images, description

    def raw_block(self, index, out: np.ndarray | None = None) -> np.ndarray:
        """Block ``index`` as raw pixels rounded to uint8: a quarter of :meth:`block`'s bytes.

        For moving blocks between processes (``code_distill_and_prune/gpu_distill.py``
        makes them in worker processes and recentres them on the GPU). The
        images are :meth:`block`'s before recentring, rounded to the nearest
        integer (at most 0.5 away).

        Args:
            index: 0, 1, 2, ...
            out: uint8 ``(block_size, 112, 112, 3)`` to fill (e.g. shared
                memory); None allocates one.

        Returns:
            uint8 ``(block_size, 112, 112, 3)``: ``out`` when given.

        Raises:
            ValueError: a negative or non-integer index, or ``out`` of
                another shape or dtype.
        """
        shape = (self.block_size, IMAGE_SIZE, IMAGE_SIZE, 3)
        if out is None:
            out = np.empty(shape, dtype=np.uint8)
        elif out.shape != shape or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 {shape}; got {out.dtype} {out.shape}.")
        self._augment_block(index, out, lambda colour: np.rint(colour).astype(np.uint8))
        return out

    def _augment_block(self, index, out: np.ndarray, finish) -> np.ndarray:
        """Fills ``out`` with block ``index``'s images, ``finish`` applied to each chunk; returns its description."""
        draws, first, second = self._draws(index)
        raw = self._raw_images
        for start in range(0, self.block_size, CHUNK_SIZE):
            rows = slice(start, min(start + CHUNK_SIZE, self.block_size))
            chunk = {name: values[rows] for name, values in draws.items()}
            out[rows] = finish(augment(raw[first[rows]], raw[second[rows]], chunk))
        return self._describe(first, second, draws)

    def description(self, index) -> np.ndarray:
        """What block ``index`` draws, without making its images (cheap).

        Returns:
            structured array ``(block_size,)`` of ``DESCRIPTION_DTYPE``: base
            image (session, number) of each image, its mixture partner, and
            the augmentations drawn.

        Raises:
            ValueError: a negative or non-integer index.
        """
        draws, first, second = self._draws(index)
        return self._describe(first, second, draws)

    def _describe(self, first, second, draws) -> np.ndarray:
        description = np.zeros(len(first), dtype=DESCRIPTION_DTYPE)
        description["base_session"] = np.asarray(self.sessions)[self.base_ids[first, 0]]
        description["base_number"] = self.base_ids[first, 1]
        mixed = draws["mixed"]
        description["second_session"][mixed] = np.asarray(self.sessions)[self.base_ids[second[mixed], 0]]
        description["second_number"][mixed] = self.base_ids[second[mixed], 1]
        description["mixture_weight"] = np.where(mixed, draws["weight"], 1.0)
        for name in ("crop_side", "crop_left", "crop_top", "flipped", "gaudy", "gains", "contrast",
                     "brightness", "grayscale"):
            description[name] = draws[name]
        return description


def draw_augmentations(generator: np.random.Generator, num_training: int, block_size: int) -> dict:
    """Every random choice of one block, drawn up front in a fixed order.

    Args:
        generator: the block's generator.
        num_training: base images the stream draws from (at least 2).
        block_size: images in the block.

    Returns:
        dict of arrays ``(block_size, ...)``: ``first`` and ``second``
        (indices into the training base images, never equal), ``mixed``,
        ``weight``, ``crop_side``, ``crop_left``, ``crop_top``, ``flipped``,
        ``gaudy``, ``gains`` ``(block_size, 3)``, ``contrast``,
        ``brightness``, ``grayscale``.
    """
    first = generator.integers(0, num_training, block_size)
    # Uniform over the other base images: draw from num_training - 1 and skip first.
    second = generator.integers(0, num_training - 1, block_size)
    second = second + (second >= first)
    side = generator.uniform(*CROP_FRACTION, block_size) * IMAGE_SIZE
    return {
        "first": first,
        "second": second,
        "mixed": generator.random(block_size) < MIXTURE_PROBABILITY,
        "weight": generator.uniform(*MIXTURE_WEIGHT, block_size),
        "crop_side": side,
        "crop_left": generator.random(block_size) * (IMAGE_SIZE - side),
        "crop_top": generator.random(block_size) * (IMAGE_SIZE - side),
        "flipped": generator.random(block_size) < FLIP_PROBABILITY,
        "gaudy": generator.random(block_size) < GAUDY_PROBABILITY,
        "gains": generator.uniform(*CHANNEL_GAIN, (block_size, 3)),
        "contrast": generator.uniform(*CONTRAST, block_size),
        "brightness": generator.uniform(*BRIGHTNESS, block_size),
        "grayscale": generator.random(block_size) < GRAYSCALE_PROBABILITY,
    }


def crop_and_rescale(image: np.ndarray, left: float, top: float, side: float) -> np.ndarray:
    """A square crop at sub-pixel position, rescaled to 112x112 (PIL bilinear).

    Args:
        image: raw uint8 ``(112, 112, 3)``.
        left, top, side: the crop in pixels (floats), inside the image.

    Returns:
        uint8 ``(112, 112, 3)``.
    """
    from PIL import Image

    box = (float(left), float(top), float(left + side), float(top + side))
    resized = Image.fromarray(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized)


def augment(first: np.ndarray, second: np.ndarray, draws: dict) -> np.ndarray:
    """Applies one chunk's draws to its base images (see the module docstring).

    Args:
        first: raw uint8 ``(n, 112, 112, 3)``, the base images.
        second: raw uint8 ``(n, 112, 112, 3)``, the mixture partners.
        draws: :func:`draw_augmentations`'s arrays for these ``n`` images.

    Returns:
        raw float32 ``(n, 112, 112, 3)`` in 0..255.
    """
    mixed = draws["mixed"]
    images = np.array(first)
    if mixed.any():
        weight = draws["weight"][mixed, None, None, None]
        blend = weight * first[mixed] + (1.0 - weight) * second[mixed]
        images[mixed] = np.round(blend).astype(np.uint8)
    for row in range(len(images)):
        images[row] = crop_and_rescale(
            images[row], draws["crop_left"][row], draws["crop_top"][row], draws["crop_side"][row]
        )
    flipped = draws["flipped"]
    images[flipped] = images[flipped, :, ::-1]
    if draws["gaudy"].any():
        images[draws["gaudy"]] = gaudy_images(images[draws["gaudy"]])
    # Gain, contrast and brightness make one affine map per channel,
    # x -> (g_c x - m) c + m + b with m the mean of g_c x over the image:
    # applied in one multiply-add, not one pass over the pixels per step.
    gains = draws["gains"].astype(np.float32)
    contrast = draws["contrast"].astype(np.float32)[:, None]
    channel_means = images.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    means = np.mean(gains * channel_means, axis=1, keepdims=True)
    scale = (gains * contrast)[:, None, None, :]
    offset = (means * (1.0 - contrast) + draws["brightness"].astype(np.float32)[:, None])[:, None, None, :]
    colour = np.multiply(images, scale, dtype=np.float32)
    colour += offset
    np.clip(colour, 0.0, 255.0, out=colour)
    if draws["grayscale"].any():
        colour[draws["grayscale"]] = grayscale_images(colour[draws["grayscale"]])
    return colour

"""Dot stimuli: filled discs on a uniform background (Fig. 4, Ext. Data Fig. 5-6).

Images are raw pixels, uint8 ``(num_images, 112, 112, 3)``, in the compact
models' input space once recentred (:func:`classes.data.preprocessing.recenter_images`).
Coordinates are ``(row, column)`` in pixels; pixel ``(i, j)`` has its centre at
``(i, j)``, so the image spans -0.5..111.5. A pixel belongs to a dot of
centre ``c`` and radius ``r`` when its centre lies within ``r`` of ``c``
(``|p - c| <= r``). The paper's location tuning uses a 28 x 28 grid of dot
positions (:func:`grid_centers`), one per 4 x 4 block of pixels, matching the
28 x 28 maps of the models' last layers.
"""

from __future__ import annotations

import numpy as np

IMAGE_SIZE = 112
GRAY = 128
BLACK = 0
WHITE = 255


def _check_value(value, name: str) -> np.ndarray:
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,))
    if not np.all((array >= 0) & (array <= 255)) or not np.all(array == np.round(array)):
        raise ValueError(f"{name} must be an integer pixel value (or RGB triple) in 0..255; got {value!r}.")
    return array.astype(np.uint8)


def grid_centers(grid_size: int = 28, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Centres of a ``grid_size`` x ``grid_size`` grid of cells over the image.

    Returns:
        float ``(grid_size, grid_size, 2)``: ``(row, column)`` of the centre of
        each cell, e.g. 1.5, 5.5, ..., 109.5 for 28 cells of 4 pixels.
    """
    if grid_size < 1 or grid_size > image_size:
        raise ValueError(f"grid_size must be 1..{image_size}; got {grid_size}.")
    cell = image_size / grid_size
    coordinates = (np.arange(grid_size) + 0.5) * cell - 0.5
    rows, columns = np.meshgrid(coordinates, coordinates, indexing="ij")
    return np.stack([rows, columns], axis=-1)


def dot_image(
    centers,
    radius: float,
    dot_value=BLACK,
    background=GRAY,
    image_size: int = IMAGE_SIZE,
) -> np.ndarray:
    """One image with dots of one radius.

    Args:
        centers: ``(num_dots, 2)`` (row, column) in pixels; may be empty
            (a blank image).
        radius: dot radius in pixels, positive.
        dot_value: the dots' pixel value, a gray level or an RGB triple.
        background: the background's pixel value.

    Returns:
        uint8 ``(image_size, image_size, 3)``.

    Raises:
        ValueError: non-positive radius, bad centres or pixel values.
    """
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive number of pixels; got {radius!r}.")
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(centers)):
        raise ValueError("dot centres must be finite (row, column) pairs.")
    image = np.empty((image_size, image_size, 3), dtype=np.uint8)
    image[:] = _check_value(background, "background")
    if len(centers) == 0:
        return image
    grid = np.arange(image_size, dtype=np.float64)
    inside = np.zeros((image_size, image_size), dtype=bool)
    for row, column in centers:
        inside |= (grid[:, None] - row) ** 2 + (grid[None, :] - column) ** 2 <= radius**2
    image[inside] = _check_value(dot_value, "dot_value")
    return image


def single_dot_images(centers, radius: float, dot_value=BLACK, background=GRAY) -> np.ndarray:
    """One image per centre, each with a single dot: uint8 ``(N, 112, 112, 3)``."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    return np.stack([dot_image(center[None], radius, dot_value, background) for center in centers])


def blank_image(background=GRAY) -> np.ndarray:
    """The uniform background alone, uint8 ``(1, 112, 112, 3)``."""
    return dot_image(np.empty((0, 2)), 1.0, background=background)[None]


def random_dot_centers(
    num_dots: int,
    radius: float,
    generator: np.random.Generator,
    candidates=None,
    gap: float = 2.0,
    max_tries: int = 200,
) -> np.ndarray | None:
    """Non-overlapping dot centres drawn at random.

    Dots are kept at least ``2 * radius + gap`` apart (centre to centre), so
    that they stay separate dots, and wholly inside the image.

    Args:
        num_dots: how many dots.
        radius: their radius in pixels.
        generator: a NumPy random generator.
        candidates: ``(K, 2)`` allowed centres (e.g. grid cells inside a
            model's receptive field); None allows any position in the image.
        gap: extra pixels between neighbouring dots.
        max_tries: random restarts before giving up.

    Returns:
        ``(num_dots, 2)``, or None when the dots do not fit.
    """
    if num_dots < 1:
        raise ValueError(f"num_dots must be positive; got {num_dots}.")
    low, high = radius, IMAGE_SIZE - 1 - radius
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
        candidates = candidates[np.all((candidates >= low) & (candidates <= high), axis=1)]
        if len(candidates) < num_dots:
            return None
    separation = 2 * radius + gap
    for _ in range(max_tries):
        if candidates is not None:
            pool = candidates[generator.permutation(len(candidates))]
        else:
            pool = generator.uniform(low, high, size=(50 * num_dots, 2))
        chosen = _first_fit(pool, num_dots, separation)
        if chosen is not None:
            return chosen
    return None


def _first_fit(pool: np.ndarray, num_dots: int, separation: float) -> np.ndarray | None:
    """The first ``num_dots`` centres of ``pool``, in order, each ``separation`` or more from those taken before.

    The same centres as testing every pool entry against every centre taken
    so far; each centre taken rules out its neighbours in one vector
    operation (script8 draws thousands of such sets, many of which do not
    fit: the per-pair test took 19 s of its run).
    """
    blocked = np.zeros(len(pool), dtype=bool)
    chosen, start = [], 0
    while len(chosen) < num_dots:
        free = np.flatnonzero(~blocked[start:])
        if len(free) == 0:
            return None
        index = start + int(free[0])
        center = pool[index]
        chosen.append(center)
        blocked |= np.hypot(pool[:, 0] - center[0], pool[:, 1] - center[1]) < separation
        start = index + 1
    return np.array(chosen)

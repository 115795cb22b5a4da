"""A cap on long loops, for quick runs of the tutorials (and CI).

The environment variable ``COWLEY2023_TUTORIAL_STEPS`` bounds every long
loop that reads it: synthesis steps, numbers of models, images or random
draws. Unset (or empty), nothing is capped. The tutorials under ``tutorials/``
pass each such count through :func:`capped`, as tf-keras-vis's notebooks
read their step count from the environment, so that CI runs every tutorial
top to bottom in minutes and a reader gets the full run.
"""

from __future__ import annotations

import os

STEP_CAP_VARIABLE = "COWLEY2023_TUTORIAL_STEPS"


def step_cap() -> int | None:
    """The cap set by ``COWLEY2023_TUTORIAL_STEPS``, or None when unset.

    Raises:
        ValueError: the variable is set to something other than a positive
            integer.
    """
    text = os.environ.get(STEP_CAP_VARIABLE, "").strip()
    if not text:
        return None
    try:
        cap = int(text)
    except ValueError:
        raise ValueError(f"{STEP_CAP_VARIABLE} must be a positive integer; got {text!r}.") from None
    if cap < 1:
        raise ValueError(f"{STEP_CAP_VARIABLE} must be a positive integer; got {text!r}.")
    return cap


def capped(count: int, minimum: int = 1) -> int:
    """``count``, lowered to the step cap when one is set, but not below ``minimum``.

    Args:
        count: the full run's value (steps, models, images, draws).
        minimum: the smallest value that still shows the point of the loop
            (e.g. 100 images for a pool whose top images are shown); never
            above ``count``.

    Returns:
        ``count`` without a cap, else ``max(min(count, minimum), min(count, cap))``.

    Raises:
        ValueError: ``count`` or ``minimum`` below 1, or a malformed cap.
    """
    if isinstance(count, bool) or int(count) < 1 or isinstance(minimum, bool) or int(minimum) < 1:
        raise ValueError(f"count and minimum must be positive integers; got {count!r}, {minimum!r}.")
    cap = step_cap()
    if cap is None:
        return int(count)
    return max(min(int(count), int(minimum)), min(int(count), cap))

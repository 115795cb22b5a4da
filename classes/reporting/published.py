"""The paper's published numbers: one registry that every comparison table reads.

Each entry is a number (or a claim, where the paper states no number) of
Cowley, Stan, Pillow & Smith (bioRxiv 2023.11.22.568315; Nature 2025), with
the figure or text it comes from and its unit (SPEC section 8), kept as data in ``published.csv`` beside this module (one
row each: key, value, source, unit, description, error). Scripts put
:attr:`Published.value` in the "published" column of their tables; what the
value means and where a reader finds it are kept here, once.

Example::

    from classes.reporting.published import published

    published("signal_correlation_rho2").value    # 0.11
    published("signal_correlation_rho2").source   # "Fig. 3 (text)"
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PUBLISHED", "Published", "published"]


@dataclass(frozen=True)
class Published:
    """One published number or claim.

    Attributes:
        key: the registry's name for it.
        value: what the comparison tables print: a float, an int, or text for
            approximate numbers ("about 50") and claims without a number.
        source: where in the paper it stands (figure, panel or text).
        unit: what it counts or measures.
        description: one line saying what it is.
        error: the published s.e.m. where the paper gives one, else None.
    """

    key: str
    value: float | int | str
    source: str
    unit: str
    description: str
    error: float | None = None


REGISTRY_FILE = Path(__file__).with_name("published.csv")


def _typed(text: str) -> float | int | str:
    """A registry cell as the table prints it: int, float, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_registry(path: Path = REGISTRY_FILE) -> dict[str, Published]:
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {
        row["key"]: Published(row["key"], _typed(row["value"]), row["source"], row["unit"], row["description"],
                              float(row["error"]) if row["error"] else None)
        for row in rows
    }


PUBLISHED: dict[str, Published] = _read_registry()


def published(key: str) -> Published:
    """The registry's entry ``key``.

    Raises:
        KeyError: no such entry; the message lists the registry's keys.
    """
    if key not in PUBLISHED:
        raise KeyError(f"No published number {key!r}; the registry holds {', '.join(PUBLISHED)}.")
    return PUBLISHED[key]

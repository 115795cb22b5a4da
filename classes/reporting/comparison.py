"""The published-vs-reproduced table that every numbered script prints.

Each row names a quantity, the paper's value (from
:mod:`classes.reporting.published`), the reproduced value and a status:
"reproduced", "approximate", "not computable" (the note says why and which
file would fix it) or "differs".
"""

from __future__ import annotations

import numpy as np

STATUSES = ("reproduced", "approximate", "not computable", "differs")


def comparison_row(quantity: str, published, reproduced, status: str, note: str = "") -> dict:
    """One row of the published-vs-reproduced table.

    Args:
        status: one of ``STATUSES``; ``"not computable"`` rows say why in
            ``note``.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}.")
    return {
        "quantity": quantity,
        "published": published,
        "reproduced": reproduced,
        "status": status,
        "note": note,
    }


def format_comparison_table(rows: list[dict]) -> str:
    """Renders comparison rows as a fixed-width text table."""
    header = ("quantity", "published", "reproduced", "status")
    cells = [header] + [
        tuple(format_cell(row[key]) for key in header) for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
        elif rows[index - 1].get("note"):
            lines.append("    -> " + rows[index - 1]["note"])
    return "\n".join(lines)


def format_cell(value) -> str:
    """A value as the table shows it: ``-`` for None, ``n/a`` for NaN, floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{float(value):.4g}"
    return str(value)

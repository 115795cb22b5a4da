"""The release's ensemble model summary text, parsed and compared with a model.

``data_ensemble_model/ensemble_model_summary.txt`` holds the Keras 3
``summary()`` tables of the ResNet50 stage and of one ensemble member; they
stand in for the member weights the release lacks, so a built member is
checked against them layer by layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from classes.data.data_root import resolve_data_root
from classes.runtime.quiet_tensorflow import keras

# The member's counts as the release's summary prints them.
RELEASE_MEMBER_COUNTS = {"trainable": 2_252_248, "non_trainable": 5_120, "optimizer": 2_252_250}
_SHAPE_NUMBER = re.compile(r"None|\d+")


@dataclass(frozen=True)
class SummaryRow:
    """One layer of a Keras ``summary()`` table, as printed (names may be cut
    with ``…``)."""

    name: str
    layer_type: str
    output_shape: tuple
    parameters: int
    inputs: tuple


def _prefix_matches(printed: str, actual: str) -> bool:
    """Whether a printed (possibly ``…``-truncated) name fits an actual one."""
    if printed.endswith("…"):
        return actual.startswith(printed[:-1])
    return printed == actual


def parse_summary_tables(text: str) -> list[list[SummaryRow]]:
    """Reads every model table of a Keras 3 ``summary()`` text.

    Args:
        text: the summary text (box-drawn tables, one per ``Model:`` line).

    Returns:
        One list of :class:`SummaryRow` per ``Model:`` table, in file order.

    Raises:
        ValueError: a row's name cell cannot be read.
    """
    tables, rows, cells = [], None, None

    def finish_row():
        if cells and any(part.strip() for part in cells[0]):
            name_text = " ".join(part.strip() for part in cells[0] if part.strip())
            match = re.match(r"^(\S+)\s*(?:\((.*?)\)?)?$", name_text)
            if not match:
                raise ValueError(f"Cannot read the summary row {name_text!r}.")
            shape_text = " ".join(part.strip() for part in cells[1])
            numbers = _SHAPE_NUMBER.findall(shape_text)
            shape = tuple(None if value == "None" else int(value) for value in numbers)
            parameters = int(cells[2][0].strip().replace(",", "") or 0)
            inputs = []
            for part in cells[3]:
                token = part.strip().rstrip(",")
                if token and token != "-":
                    name = token.split("[")[0]
                    inputs.append(name if name.endswith("…") or "[" in token else name + "…")
            rows.append(SummaryRow(match.group(1), (match.group(2) or "").strip(),
                                   shape, parameters, tuple(inputs)))

    for line in text.splitlines():
        if line.startswith("Model:"):
            rows = []
            tables.append(rows)
            cells = None
        elif rows is None:
            continue
        elif line.startswith(("├", "└")) or line.startswith("┡"):
            finish_row()
            cells = [[], [], [], []]
        elif line.startswith("│") and cells is not None:
            parts = line.split("│")[1:-1]
            if len(parts) == 4:
                for column, part in enumerate(parts):
                    cells[column].append(part)
    return tables


def release_summary_path(data_root=None) -> Path:
    """``data_ensemble_model/ensemble_model_summary.txt`` of the release.

    Args:
        data_root: the release folder; None resolves the default.

    Returns:
        The summary file's path.

    Raises:
        FileNotFoundError: the file is missing.
    """
    path = resolve_data_root(data_root) / "data_ensemble_model" / "ensemble_model_summary.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"Missing {path}: the release's Keras summary of the ResNet50 stage and of one "
            "ensemble member."
        )
    return path


def release_member_table(data_root=None) -> list[SummaryRow]:
    """The member's table (the second model) of the release's summary.

    Args:
        data_root: the release folder; None resolves the default.

    Returns:
        The member's rows, in layer order.

    Raises:
        FileNotFoundError: the summary file is missing.
        ValueError: the file does not hold exactly two model tables.
    """
    path = release_summary_path(data_root)
    tables = parse_summary_tables(path.read_text(encoding="utf-8"))
    if len(tables) != 2:
        raise ValueError(f"{path} should hold two model summaries; found {len(tables)}.")
    return tables[1]


def _inbound_names(layer) -> list[str]:
    """Names of the layers feeding ``layer`` (its first call), as the summary lists them."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    return [parent.operation.name for parent in nodes[0].parent_nodes]


def compare_with_summary(member: keras.Model, table: list[SummaryRow]) -> list[str]:
    """Differences between a member and a printed summary table.

    Compares, layer by layer and in order: name, type, output shape,
    parameter count and inputs.

    Args:
        member: the built model.
        table: rows from :func:`parse_summary_tables`.

    Returns:
        One line per difference; empty when the member matches exactly.
    """
    problems = []
    layers = member.layers
    if len(layers) != len(table):
        problems.append(f"{len(layers)} layers, the summary lists {len(table)}")
    for layer, row in zip(layers, table, strict=False):  # lengths checked above
        label = f"layer {row.name}"
        if not _prefix_matches(row.name, layer.name):
            problems.append(f"{label}: built layer is named {layer.name}")
        if row.layer_type and not _prefix_matches(row.layer_type, type(layer).__name__):
            problems.append(f"{label}: type {type(layer).__name__}, summary {row.layer_type}")
        shape = tuple(layer.output.shape)
        if shape != row.output_shape:
            problems.append(f"{label}: output shape {shape}, summary {row.output_shape}")
        if layer.count_params() != row.parameters:
            problems.append(f"{label}: {layer.count_params()} parameters, summary {row.parameters}")
        inbound = _inbound_names(layer)
        if row.inputs and (
            len(inbound) != len(row.inputs)
            or not all(_prefix_matches(p, a) for p, a in zip(row.inputs, inbound, strict=True))
        ):
            problems.append(f"{label}: inputs {inbound}, summary {list(row.inputs)}")
    return problems

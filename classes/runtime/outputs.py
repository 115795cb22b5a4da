"""Writing results: atomic files, JSON, CSV, figures as PNG and PDF.

Every script writes into a results folder (default ``results/<script>/``,
ignored by git). Files appear whole or not at all: each is written to a
temporary name beside the target and renamed. A run's results folder as a
whole appears the same way (:class:`classes.runtime.result_folder.ResultFolder`).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from classes.runtime.paths import REPOSITORY_ROOT


def default_results_dir(script_name: str) -> Path:
    """``<repository>/results/<script_name>``."""
    return REPOSITORY_ROOT / "results" / script_name


def _atomic_target(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends in the target's suffixes: Keras and NumPy choose
    # the format from them (".keras", ".weights.h5", ".npz").
    suffixes = "".join(target.suffixes)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".part{suffixes}")
    os.close(handle)
    return Path(temporary)


def write_atomically(target, writer) -> Path:
    """Calls ``writer(temporary_path)`` then renames onto ``target``.

    The one way this project writes a file: a reader never sees half of it,
    and a failed or interrupted writer leaves no file behind.

    Args:
        target: the final path; its folder is created when missing.
        writer: ``writer(path)`` writes the whole file at ``path``, a hidden
            name beside ``target`` that ends in ``.part`` plus the target's
            suffixes.

    Returns:
        ``target`` as a Path.
    """
    target = Path(target)
    temporary = _atomic_target(target)
    try:
        writer(temporary)
        # mkstemp creates 0600 files; results should be readable like any other file.
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def _to_jsonable(value):
    if isinstance(value, dict):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if not np.isfinite(value) else value
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(target, data) -> Path:
    """Writes ``data`` as indented JSON (NaN becomes null)."""
    text = json.dumps(_to_jsonable(data), indent=2, sort_keys=False) + "\n"
    return write_atomically(target, lambda path: Path(path).write_text(text))


def write_csv(target, rows: list[dict]) -> Path:
    """Writes a list of dicts as CSV; columns from the first row's keys."""
    if not rows:
        raise ValueError(f"No rows to write to {target}.")
    columns = list(rows[0].keys())

    def writer(path):
        with open(path, "w", newline="") as stream:
            table = csv.DictWriter(stream, fieldnames=columns)
            table.writeheader()
            for row in rows:
                table.writerow({key: _format_cell(row.get(key)) for key in columns})

    return write_atomically(target, writer)


def _format_cell(value):
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{float(value):.6g}"
    return value


def save_figure(figure, stem) -> list[Path]:
    """Saves a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf``."""
    stem = Path(stem)
    written = []
    for suffix, options in ((".png", {"dpi": 150}), (".pdf", {})):
        target = stem.with_suffix(suffix)
        written.append(
            write_atomically(
                target,
                lambda path, suffix=suffix, options=options: figure.savefig(
                    path, format=suffix[1:], bbox_inches="tight", **options
                ),
            )
        )
    return written


def write_npy(target, array) -> Path:
    """Writes one array as ``.npy`` atomically."""

    def writer(path):
        with open(path, "wb") as stream:
            np.save(stream, np.asarray(array))

    return write_atomically(target, writer)


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend.

    Imported on first use, so that scripts that draw no figure do not load
    matplotlib, and on Agg, so that figures are drawn without a display.

    Returns:
        The ``matplotlib.pyplot`` module.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot_module

    return pyplot_module


def save_figures(figures, output_dir) -> None:
    """Saves figures as ``<stem>.png`` and ``<stem>.pdf`` and closes them.

    Closing frees each figure's memory once it is written; a script draws
    several large figures in a row.

    Args:
        figures: iterable of ``(figure, stem)`` pairs.
        output_dir: the folder the files go to.
    """
    for figure, stem in figures:
        save_figure(figure, Path(output_dir) / stem)
        pyplot().close(figure)

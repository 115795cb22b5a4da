"""Figures of the synthesis script (Fig. 2a, Ext. Data Fig. 3-4 counterparts).

Each function returns a matplotlib figure (Agg backend); the caller saves it
with :func:`classes.runtime.outputs.save_figure` and closes it with :func:`close`.
"""

from __future__ import annotations

import numpy as np

from classes.runtime.outputs import pyplot
from classes.scoring.percent_changes import PUBLISHED

TILE = 112


def close(figure) -> None:
    """Frees a figure's memory (scripts make dozens)."""
    pyplot().close(figure)


def image_grid(images, titles, columns: int, title: str, cell: float = 1.9):
    """Raw images ``(N, 112, 112, 3)`` in a grid, one title each.

    Raises:
        ValueError: ``titles`` and ``images`` differ in length.
    """
    if len(titles) != len(images):
        raise ValueError(f"Got {len(titles)} titles for {len(images)} images.")
    plt = pyplot()
    rows = max(1, int(np.ceil(len(images) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(cell * columns, cell * rows + 0.5), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(np.clip(np.asarray(images[index]), 0, 255).astype(np.uint8))
            axis.set_title(titles[index], fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def figure_saliency(entries, title: str, patch_size: int):
    """Images (top row) and their saliency maps (bottom row).

    Args:
        entries: ``(label, raw image (112, 112, 3), SaliencyResult)`` per column.
        patch_size: side of the smoothed patch, for the caption.
    """
    plt = pyplot()
    figure, axes = plt.subplots(2, len(entries), figsize=(2.6 * len(entries), 5.0), squeeze=False)
    for column, (label, image, result) in enumerate(entries):
        axes[0, column].imshow(np.asarray(image).astype(np.uint8))
        axes[0, column].set_title(f"{label}\nresponse {result.base_response:.2f}", fontsize=7)
        limit = float(np.abs(result.change).max()) or 1.0
        shown = axes[1, column].imshow(result.change, cmap="RdBu_r", vmin=-limit, vmax=limit,
                                       extent=(0, TILE, TILE, 0))
        axes[1, column].set_title(f"response change when\na {patch_size}x{patch_size} patch is smoothed",
                                  fontsize=7)
        figure.colorbar(shown, ax=axes[1, column], fraction=0.046)
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def figure_percent_changes(bars, title: str):
    """Bars of model-predicted percent changes with the published values as ticks.

    Args:
        bars: dicts with ``label``, ``value``, optional ``sem`` and
            ``published`` (None where the paper has no number).
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.4))
    positions = np.arange(len(bars))
    values = [bar["value"] if np.isfinite(bar["value"]) else 0.0 for bar in bars]
    errors = [bar.get("sem") if bar.get("sem") is not None and np.isfinite(bar["sem"]) else 0.0 for bar in bars]
    axis.bar(positions, values, yerr=errors, color="tab:blue", alpha=0.7, label="model-predicted (calibrated)")
    published = [(position, bar["published"]) for position, bar in zip(positions, bars, strict=True)
                 if bar.get("published") is not None]
    if published:
        axis.scatter(*zip(*published, strict=True), color="k", marker="_", s=400, zorder=3,
                     label="published (real V4 neurons)")
    axis.axhline(0, color="k", lw=0.5)
    axis.set_xticks(positions)
    axis.set_xticklabels([bar["label"] for bar in bars], rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("percent change")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def sheet_mosaic(images_by_index: dict, count: int, columns: int = 15, gap: int = 4) -> np.ndarray:
    """One uint8 mosaic of ``count`` tiles in order; dark gray where missing.

    Args:
        images_by_index: tile index -> raw uint8 image ``(112, 112, 3)``.
        count: number of tiles (e.g. 219 models).
    """
    rows = int(np.ceil(count / columns))
    step = TILE + gap
    mosaic = np.full((rows * step - gap, columns * step - gap, 3), 255, np.uint8)
    for index in range(count):
        row, column = divmod(index, columns)
        tile = images_by_index.get(index)
        mosaic[row * step : row * step + TILE, column * step : column * step + TILE] = 64 if tile is None else tile
    return mosaic


def figure_sheet(images_by_index: dict, labels: list[str], title: str, columns: int = 15):
    """Ext. Data Fig. 3 counterpart: every model's maximizing image, labelled.

    One image with text labels rather than hundreds of subplots, which take
    minutes to save.
    """
    plt = pyplot()
    mosaic = sheet_mosaic(images_by_index, len(labels), columns)
    figure, axis = plt.subplots(figsize=(12, 12 * mosaic.shape[0] / mosaic.shape[1] + 0.4))
    axis.imshow(mosaic, interpolation="nearest")
    axis.axis("off")
    for index, label in enumerate(labels):
        row, column = divmod(index, columns)
        axis.text(column * (TILE + 4) + 2, row * (TILE + 4) + 12, label, fontsize=3.5, color="yellow")
    axis.set_title(title, fontsize=11)
    figure.tight_layout(pad=0.2)
    return figure


def figure_across(normal, synthesized, title: str):
    """Fig. 2b-c counterpart: per-model calibrated changes and their means.

    Args:
        normal, synthesized: per-model percent changes of the maximizing
            normal and synthesized images (NaN where not computable).
    """
    plt = pyplot()
    normal = np.asarray(normal, np.float64)
    synthesized = np.asarray(synthesized, np.float64)
    valid = np.isfinite(normal) & np.isfinite(synthesized)
    figure, axes = plt.subplots(1, 2, figsize=(8.0, 3.6))
    axes[0].scatter(normal[valid], synthesized[valid], s=8, alpha=0.7)
    limit = float(np.max(np.concatenate([normal[valid], synthesized[valid], [200.0]])))
    axes[0].plot([0, limit], [0, limit], "k--", lw=0.7)
    axes[0].set_xlabel("max. normal image, % change")
    axes[0].set_ylabel("max. synthesized image, % change")
    axes[0].set_title("per model (calibrated)", fontsize=8)
    count = int(valid.sum())
    means = [float(np.mean(values[valid])) if count else 0.0 for values in (normal, synthesized)]
    sems = [float(np.std(values[valid], ddof=1) / np.sqrt(count)) if count > 1 else 0.0
            for values in (normal, synthesized)]
    axes[1].bar([0, 1], means, yerr=sems, color="tab:blue", alpha=0.7, label="model-predicted")
    axes[1].scatter([0, 1], [PUBLISHED["maximizing_normal"][0], PUBLISHED["maximizing_synthesized"][0]],
                    marker="_", s=400, color="k", label="published (real neurons)", zorder=3)
    axes[1].set_xticks([0, 1])
    axes[1].set_xticklabels(["max. normal", "max. synthesized"])
    axes[1].set_ylabel("% change over random normal images")
    axes[1].legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure

"""Figures and tables of the synthesis script (Fig. 2, Ext. Data Fig. 3-4 counterparts).

The ``figure_*`` and ``image_grid`` functions return one matplotlib figure
(Agg backend); :func:`preferred_stimuli_figures` and :func:`sheet_figures`
yield script6's figures as ``(figure, stem)`` pairs, one at a time, for
:func:`classes.runtime.outputs.save_figures`. The comparison rows take the
published values of Fig. 2b-f from :mod:`classes.reporting.published`.
"""

from __future__ import annotations

import numpy as np

from classes.analysis.causal_images import DEFAULT_SALIENCY_PATCH
from classes.analysis.preferred_stimuli import PreferredStimuli
from classes.analysis.synthesis_sheet import per_model_changes
from classes.compact.architecture import all_model_ids
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime.outputs import pyplot
from classes.scoring.percent_changes import KINDS, format_change, status_against

TILE = 112
# Fig. 2b-f: the percent changes the paper measured on real neurons.
FIGURE2_CHANGES = ("maximizing_normal", "maximizing_synthesized", "adversarial_increase", "adversarial_decrease",
                   "smooth_minus")
BAR_LABELS = (("maximizing_normal", "max. normal"), ("maximizing_synthesized", "max. synthesized"),
              ("adversarial_increase", "adversarial+"), ("adversarial_decrease", "adversarial-"),
              ("smooth_minus", "smooth-"), ("smooth_random_control", "random smoothing"))


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
    axes[1].scatter([0, 1], [published("maximizing_normal").value, published("maximizing_synthesized").value],
                    marker="_", s=400, color="k", label="published (real neurons)", zorder=3)
    axes[1].set_xticks([0, 1])
    axes[1].set_xticklabels(["max. normal", "max. synthesized"])
    axes[1].set_ylabel("% change over random normal images")
    axes[1].legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def preferred_stimuli_figures(stimuli: PreferredStimuli, summaries: dict, max_pixel_change: float,
                              smooth_patches: int):
    """Yields the default run's figures of one model as ``(figure, stem)``.

    Args:
        stimuli: what :mod:`classes.analysis.preferred_stimuli` computed.
        summaries: its percent changes (``model_percent_changes``).
        max_pixel_change: the adversarial threshold, for a title.
        smooth_patches: patches smoothed per smooth- image, for a title.
    """
    identifier, stem, pool = stimuli.identifier, stimuli.identifier.stem, stimuli.pool
    maximizing, minimizing = stimuli.maximizing, stimuli.minimizing
    normal_responses = pool.normal_responses
    settings = maximizing.result.settings
    title = (f"{identifier}: maximizing synthesized images ({settings['num_steps']} steps, seed "
             f"{maximizing.result.seed}{', grayscale' if settings['grayscale'] else ''}); normal images: mean "
             f"{pool.reference:.2f}, max {normal_responses.max():.2f}")
    yield (image_grid(maximizing.images, [f"response {value:.2f}" for value in maximizing.responses], 3, title),
           f"fig2a_synthesized_{stem}")
    if minimizing is not None:
        yield (image_grid(minimizing.images, [f"response {value:.2f}" for value in minimizing.responses],
                          len(minimizing.images),
                          f"{identifier}: minimizing synthesized images (normal min {normal_responses.min():.2f})"),
               f"synthesized_minimizing_{stem}")
    order = np.argsort(-pool.responses)[:9]
    yield (image_grid(pool.pool[order], [f"{pool.responses[row]:.2f} ({pool.sources[row, 0]} "
                                         f"#{pool.sources[row, 1]})" for row in order], 3,
                      f"{identifier}: top images of {len(pool.pool)} in the release's zips (response, session "
                      "#image)"), f"top_images_{stem}")
    yield from _causal_figures(stimuli, max_pixel_change, smooth_patches)
    bars = [{"label": label, "value": summaries[name]["calibrated"]["mean"],
             "sem": summaries[name]["calibrated"]["sem"],
             "published": published(name).value if name in FIGURE2_CHANGES else None} for name, label in BAR_LABELS]
    yield (figure_percent_changes(bars, f"{identifier}: model-predicted percent changes (calibrated to spike "
                                        "counts)"), f"percent_changes_{stem}")


def _causal_figures(stimuli: PreferredStimuli, max_pixel_change: float, smooth_patches: int):
    # Adversarial, smooth- and saliency figures: the first three base images each.
    identifier, stem = stimuli.identifier, stimuli.identifier.stem
    increase, decrease = stimuli.adversarial["increase"], stimuli.adversarial["decrease"]
    shown, titles = [], []
    for column in range(min(3, len(stimuli.base_rows))):
        shown += [stimuli.pool.pool[stimuli.base_rows[column]], increase.images[column], decrease.images[column]]
        titles += [f"base {increase.base_responses[column]:.2f}", f"adversarial+ {increase.responses[column]:.2f}",
                   f"adversarial- {decrease.responses[column]:.2f}"]
    yield (image_grid(shown, titles, 3, f"{identifier}: adversarial images (max pixel change {max_pixel_change:g})"),
           f"adversarial_{stem}")
    smooth = stimuli.smooth
    shown, titles = [], []
    for column in range(min(3, len(smooth.smooth))):
        shown += [smooth.top_normal[column], smooth.smooth[column].image, smooth.control[column].image]
        titles += [f"base {smooth.smooth[column].base_response:.2f}", f"smooth- {smooth.smooth[column].response:.2f}",
                   f"random patches {smooth.control[column].response:.2f}"]
    yield (image_grid(shown, titles, 3, f"{identifier}: smooth- images ({smooth_patches} of 49 patches smoothed)"),
           f"smooth_minus_{stem}")
    yield (figure_saliency(smooth.saliency, f"{identifier}: saliency maps", DEFAULT_SALIENCY_PATCH),
           f"saliency_{stem}")


def sheet_figures(records: list[dict], images: dict, across: dict | None):
    """Yields the ``--all`` figures as ``(figure, stem)``: the sheet, and Fig. 2b-c when there are records."""
    labels = [f"{identifier.session_id}/{identifier.neuron}" for identifier in all_model_ids()]
    steps = sorted({item["steps"] for item in records})
    yield (figure_sheet(images, labels, f"Maximizing synthesized image of each compact model ({len(records)} of "
                                        f"219; {steps} steps)"), "ext_data_fig3_sheet")
    if across is not None:
        yield (figure_across(per_model_changes(records, "maximizing_normal"),
                             per_model_changes(records, "maximizing_synthesized"),
                             f"Model-predicted percent changes over random normal images ({len(records)} models)"),
               "fig2bc_across_models")


def format_published(name: str) -> str:
    """The published value of one Fig. 2 percent change as text, with its s.e.m. where given."""
    entry = published(name)
    return f"{entry.value:+.1f}%" + (f" +/- {entry.error:.1f}%" if entry.error is not None else "")


def default_comparison_rows(summaries: dict, calibration_note: str | None, across: dict | None) -> list[dict]:
    """Comparison rows of one model's percent changes against Fig. 2, then the across-model rows.

    Args:
        summaries: the model's percent changes (``model_percent_changes``).
        calibration_note: how the spike-count calibration was fitted; None
            when the model has none.
        across: ``summarize_records``' result, or None for no ``--all`` records.
    """
    row = comparison_row
    table = []
    for name, label in (("maximizing_normal", "max. normal image vs random normal (% change)"),
                        ("maximizing_synthesized", "max. synthesized image vs random normal (% change)"),
                        ("adversarial_increase", "adversarial+ vs base (% change)"),
                        ("adversarial_decrease", "adversarial- vs base (% change)"),
                        ("smooth_minus", "smooth- vs base (% change)")):
        calibrated, raw, ranged = (summaries[name][kind] for kind in KINDS)
        others = f"raw-output formula {format_change(raw)}; % of normal range {format_change(ranged)}"
        if calibration_note is None:
            table.append(row(label, format_published(name), None, "not computable",
                             f"the model's session has no images in the release for the spike-count "
                             f"calibration; {others}"))
        else:
            table.append(row(label, format_published(name), format_change(calibrated),
                             status_against(published(name).value, calibrated["mean"]),
                             f"ONE model, model-predicted (calibrated to spike counts: {calibration_note}); "
                             f"{others}; published: real neurons, later sessions"))
    table.append(row("smooth- random-patch control (% change)", None,
                     format_change(summaries["smooth_random_control"]["calibrated"]), "approximate",
                     "control: the same number of random patches smoothed; should change less than smooth-"))
    return table + ([] if across is None else across_model_rows(across))


def across_model_rows(across: dict) -> list[dict]:
    """Comparison rows of the across-model percent changes against Fig. 2b-c."""
    row = comparison_row
    table = []
    for name, label in (("maximizing_normal", "ACROSS MODELS: max. normal vs random normal"),
                        ("maximizing_synthesized", "ACROSS MODELS: max. synthesized vs random normal")):
        calibrated = across[name]["calibrated"]
        table.append(row(
            label, format_published(name), format_change(calibrated),
            status_against(published(name).value, calibrated["mean"]),
            f"{across['num_models']} models; model-predicted, calibrated to spike counts (211022's models "
            f"cannot be calibrated); raw-output formula {format_change(across[name]['raw'])}; % of normal "
            f"range {format_change(across[name]['percent_of_range'])}; pool {across['pool_sizes']} normal "
            "images; published: real neurons"))
    table.append(row("ACROSS MODELS: synthesized response above top normal image", "synthesized > normal",
                     f"{100 * across['synthesized_above_top_normal']:.0f}% of models", "approximate",
                     f"published: {published('maximizing_synthesized').value:+.1f}% vs "
                     f"{published('maximizing_normal').value:+.1f}% on average for real neurons"))
    return table


def format_model_changes(model: str, summaries: dict) -> str:
    """The block of one model's percent changes printed after the table (calibrated | raw | % of range)."""
    lines = [f"model-predicted percent changes for {model} (calibrated | raw formula | % of range):"]
    for change, values in summaries.items():
        lines.append(f"  {change:34s} " + " | ".join(format_change(values[kind]) for kind in KINDS))
    return "\n".join(lines)

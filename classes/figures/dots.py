"""Figures and tables of script 8: the dot screen, the dot detector's tuning, ablations (Fig. 4).

Layer numbering: paper layers 1-5 are the code's ``layer0``..``layer4``.
The computations are in :mod:`classes.analysis.dot_detector`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.analysis.dot_detector import AblationStudy, DotTuning, Screen
from classes.analysis.dot_model_choice import PREFERRED_RADIUS
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime import outputs
from classes.runtime.outputs import pyplot

# The published claim on the cumulative ablation of each code layer.
CUMULATIVE_CLAIMS = {2: "dot_size_invariance_layer2", 3: "dot_size_invariance_layer3"}

# The definitions written to summary.json (see classes.analysis.dot_analysis); the paper shows the
# indices in Fig. 4c-e and Ext. Data Fig. 5c without formulas, so these are the project's reading.
DEFINITIONS = {
    "dot_selectivity": "(max dot response - mean natural) / (max natural - mean natural)",
    "dot_size_invariance_index": "1 - range(size tuning, filter ablated) / range(size tuning, intact); "
                                 "range = max - min over radii",
    "dot_number_invariance_index": "the same over the number tuning",
    "retained_drive": "mean over radii of (response - blank response), ablated / intact",
    "ablation": "kernel weights of the filter set to 0 (layer 0 conv kernel, layers 1-4 pointwise column)",
    "reading": "the paper plots these indices (Fig. 4c-e, Ext. Data Fig. 5c) without a formula; the definitions "
               "above are this project's reading",
}


def format_definitions() -> str:
    """The invariance index's definition, printed by script 8 as the project's reading."""
    return ("Dot-size invariance index (this project's reading; the paper gives no formula): "
            f"{DEFINITIONS['dot_size_invariance_index']}. 1 = the response no longer depends on dot size; "
            "silencing the model also gives 1, so the mean drive left is reported beside it, and a cumulative "
            "ablation counts as reaching invariance only with a subset of the layer and more than 10% of the "
            "drive left.")


def figure_dot_selective_models(rows, order, models, natural, natural_responses, dots, labels):
    """Ext. Data Fig. 6-like: the most dot-selective models, best dot and best natural image.

    Args:
        rows: the screen's rows, one per model (``best_polarity``,
            ``best_radius``, ``best_row``, ``best_column``, ``dot_selectivity``).
        order: model indices, most dot-selective first.
        models: the screened model ids.
        natural: the screen's natural images (uncentred).
        natural_responses: ``(num_models, num_natural)``.
        dots: the screen's dot images.
        labels: ``(polarity, radius, (row, column))`` of each dot image.

    Returns:
        The matplotlib figure.
    """
    top = [int(index) for index in order[:6]]
    figure, axes = pyplot().subplots(2, len(top), figsize=(2 * len(top), 4.4), squeeze=False)
    for column, index in enumerate(top):
        row = rows[index]
        best = [i for i, label in enumerate(labels) if label[0] == row["best_polarity"]
                and label[1] == row["best_radius"] and label[2] == (row["best_row"], row["best_column"])][0]
        axes[0, column].imshow(dots[best])
        axes[0, column].set_title(f"{models[index]}\nselectivity {row['dot_selectivity']:.2f}", fontsize=7)
        axes[1, column].imshow(natural[int(np.argmax(natural_responses[index]))])
        axes[1, column].set_title("top natural image", fontsize=7)
    for axis in axes.flat:
        axis.axis("off")
    figure.suptitle("most dot-selective compact models: best dot (top) and best natural image (bottom)", fontsize=9)
    return figure


def figure_maximizing_images(natural, chosen_natural_responses, top_natural, synthesized,
                             synthesized_response, model_name: str):
    """Fig. 4a: maximizing images of the chosen model.

    Args:
        natural: the screen's natural images (uncentred).
        chosen_natural_responses: the chosen model's responses to them.
        top_natural: indices of its four best natural images.
        synthesized: its synthesized maximizing image.
        synthesized_response: its response to that image.
        model_name: the chosen model, for the title.

    Returns:
        The matplotlib figure.
    """
    figure, axes = pyplot().subplots(1, 5, figsize=(10, 2.4))
    for axis, index in zip(axes[:4], top_natural, strict=True):
        axis.imshow(natural[index])
        axis.set_title(f"natural {chosen_natural_responses[index]:.2f}", fontsize=8)
    axes[4].imshow(synthesized)
    axes[4].set_title(f"synthesized {synthesized_response:.2f}", fontsize=8)
    for axis in axes:
        axis.axis("off")
    figure.suptitle(f"Fig. 4a: maximizing images of {model_name}", fontsize=9)
    return figure


def figure_dot_tuning(location, peak, rf_mask, probe, intact, grid: int, radius: float, model_name: str):
    """Fig. 4b: tuning to dot location, size and number.

    Args:
        location: ``(grid, grid)`` responses to the preferred dot per cell.
        peak: ``(row, column)`` of the best cell.
        rf_mask: ``(grid, grid)`` cells of the receptive field (outlined).
        probe: the :class:`classes.analysis.dot_analysis.ProbeSet`.
        intact: the intact model's tunings (``size_tuning``,
            ``number_tuning``, ``baseline``).
        grid: cells per side of the location map.
        radius: the preferred dot radius (pixels).
        model_name: the chosen model, for the title.

    Returns:
        The matplotlib figure.
    """
    figure, axes = pyplot().subplots(1, 3, figsize=(12, 3.6))
    shown = axes[0].imshow(location, cmap="viridis")
    axes[0].contour(rf_mask, levels=[0.5], colors="white", linewidths=0.8)
    axes[0].plot(peak[1], peak[0], "r+")
    figure.colorbar(shown, ax=axes[0], fraction=0.046)
    axes[0].set_title(f"location ({grid}x{grid} grid, radius {radius:g} px)",
                      fontsize=8)
    axes[1].plot(probe.radii, intact["size_tuning"], "o-")
    axes[1].axhline(intact["baseline"], color="gray", linestyle="--", label="blank")
    axes[1].set_xlabel("dot radius (pixels)")
    axes[1].set_title("size (3x3 locations around the peak)", fontsize=8)
    axes[2].plot(probe.numbers, intact["number_tuning"], "o-")
    axes[2].axhline(intact["baseline"], color="gray", linestyle="--")
    axes[2].set_xlabel("number of dots")
    axes[2].set_title(f"number (radius {radius:g} px, inside the outlined field)",
                      fontsize=8)
    for axis in axes[1:]:
        axis.set_ylabel("model response")
    axes[1].legend(fontsize=7)
    figure.suptitle(f"Fig. 4b: dot tuning of {model_name}", fontsize=9)
    figure.tight_layout()
    return figure


def figure_filter_invariance(ablations):
    """Fig. 4c and Ext. Data Fig. 5c: per-filter invariance indices.

    Args:
        ablations: one row per ablated filter (``layer``, ``size_invariance``,
            ``number_invariance``, ``retained_drive``).

    Returns:
        The matplotlib figure.
    """
    figure, axes = pyplot().subplots(3, 1, figsize=(10, 7), sharex=True)
    positions = np.arange(len(ablations))
    layer_of = np.array([row["layer"] for row in ablations])
    colors = pyplot().get_cmap("tab10")(layer_of)
    for axis, key, name in ((axes[0], "size_invariance", "dot-size\ninvariance index"),
                            (axes[1], "number_invariance", "dot-number\ninvariance index"),
                            (axes[2], "retained_drive", "mean drive left\n(ablated / intact)")):
        axis.bar(positions, [np.nan_to_num(row[key]) for row in ablations], color=colors, width=1.0)
        axis.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_ylabel(name, fontsize=8)
    for layer in sorted(set(layer_of)):
        axes[2].text(positions[layer_of == layer].mean(), -0.08, f"L{layer + 1}", ha="center", va="top",
                     fontsize=7, transform=axes[2].get_xaxis_transform())
    axes[2].set_xticks([])
    axes[0].set_title("Fig. 4c (dot size) and Ext. Data Fig. 5c (dot number): each filter ablated alone; "
                      "1 = response independent of size/number\nfilters by layer, paper numbering "
                      "L1-L5 = layer0-layer4", fontsize=9)
    return figure


def figure_cumulative_ablation(cumulative: dict, probe, intact: dict, threshold: float):
    """Fig. 4d-e: cumulative ablation until dot-size invariance reaches 1.

    Args:
        cumulative: code layer -> steps of the cumulative ablation.
        probe: the :class:`classes.analysis.dot_analysis.ProbeSet`.
        intact: the intact model's tunings.
        threshold: the size invariance that counts as reaching 1.

    Returns:
        The matplotlib figure.
    """
    figure, axes = pyplot().subplots(1, 2, figsize=(10, 3.6))
    for number, (layer, steps) in enumerate(cumulative.items()):
        color = f"C{number}"
        axes[0].plot(range(len(steps)), [step["size_invariance"] for step in steps], "o-", color=color,
                     label=f"invariance index, paper layer {layer + 1} (layer{layer})")
        axes[0].plot(range(len(steps)), [step["retained_drive"] for step in steps], ":", color=color,
                     label=f"mean drive left, paper layer {layer + 1}")
        for step in steps[1:]:
            axes[1].plot(probe.radii, step["size_tuning"], "-", color=color, alpha=0.35 + 0.65 * (step is steps[-1]),
                         label=f"paper layer {layer + 1}: {len(step['ablated'])} ablated"
                         if step is steps[-1] or step is steps[1] else None)
    axes[0].axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
    axes[0].set_xlabel("filters ablated (cumulative)")
    axes[0].set_ylabel("dot-size invariance index")
    axes[0].legend(fontsize=7)
    axes[1].plot(probe.radii, intact["size_tuning"], "k--", label="intact")
    axes[1].set_xlabel("dot radius (pixels)")
    axes[1].set_ylabel("model response")
    axes[1].legend(fontsize=7)
    figure.suptitle("Fig. 4d-e: cumulative ablation until dot-size invariance reaches 1", fontsize=9)
    figure.tight_layout()
    return figure


def dot_figures(screen: Screen, chosen: int, synthesized: tuple, tuning: DotTuning, study: AblationStudy,
                threshold: float) -> list[tuple]:
    """Script 8's figures: Ext. Data Fig. 6-like screen, Fig. 4a, 4b, 4c with Ext. Data Fig. 5c, 4d-e.

    Args:
        screen: the screen of all models.
        chosen: index of the analysed model in ``screen.models``.
        synthesized: ``(image, response)`` of its synthesized maximizing image.
        tuning: its location map and probe set.
        study: its ablations.
        threshold: the dot-size invariance that ends a cumulative ablation.

    Returns:
        ``(figure, file stem)`` pairs for :func:`classes.runtime.outputs.save_figures`.
    """
    name = str(screen.models[chosen])
    responses = screen.natural_responses[chosen]
    radius = screen.rows[chosen]["best_radius"]
    return [
        (figure_dot_selective_models(screen.rows, screen.order, screen.models, screen.natural,
                                     screen.natural_responses, screen.dots, screen.labels),
         "ext_fig6_dot_selective_models"),
        (figure_maximizing_images(screen.natural, responses, np.argsort(-responses)[:4], *synthesized, name),
         "fig4a_maximizing_images"),
        (figure_dot_tuning(tuning.location, tuning.peak, tuning.rf_mask, tuning.probe, study.intact,
                           len(tuning.location), radius, name), "fig4b_dot_tuning"),
        (figure_filter_invariance(study.ablations), "fig4c_ext5c_filter_invariance"),
        (figure_cumulative_ablation(study.cumulative, tuning.probe, study.intact, threshold),
         "fig4de_cumulative_ablation"),
    ]


def _cumulative_row(layer: int, steps: list[dict], layer_size: int, threshold: float) -> dict:
    """Whether ablating part of one layer made the response independent of dot size.

    Reports the last step and, honestly, the highest index reached with part
    of the layer ablated and more than 10% of the drive left.
    """
    final = steps[-1]
    reached = bool(final["size_invariance"] >= threshold)
    subset = reached and len(final["ablated"]) < layer_size
    claim = published(CUMULATIVE_CLAIMS[layer]).value if layer in CUMULATIVE_CLAIMS else "(not stated)"
    driven = [step for step in steps[1:] if len(step["ablated"]) < layer_size and step["retained_drive"] > 0.1]
    best = max(driven, key=lambda step: np.nan_to_num(step["size_invariance"], nan=-np.inf), default=None)
    best_text = ("" if best is None else f"; highest index with a subset and >10% of the drive left: "
                 f"{best['size_invariance']:.2f} after {len(best['ablated'])} of {layer_size}")
    return comparison_row(
        f"cumulative ablation of paper layer {layer + 1} (code layer{layer}) filters makes the "
        "response independent of dot size", claim,
        f"{'yes' if reached else 'no'}: index {final['size_invariance']:.2f} after "
        f"{len(final['ablated'])} of {layer_size} filters; mean drive left "
        f"{final['retained_drive']:.0%}",
        "reproduced" if subset and final["retained_drive"] > 0.1 else "differs",
        f"'reaches 1' = index >= {threshold}; reaching it only by ablating the whole layer (which "
        f"silences the model) or with under 10% of the drive left does not count{best_text}",
    )


def comparison_rows(screen_rows: list[dict], chosen_row: dict, probe, study: AblationStudy, threshold: float,
                    num_filters_in_layer: list[int]) -> list[dict]:
    """Qualitative comparisons with Fig. 4 (the paper gives no numbers for it).

    Args:
        screen_rows: the screen's rows, one per model.
        chosen_row: the analysed model's row.
        probe: its :class:`classes.analysis.dot_analysis.ProbeSet`.
        study: its ablations.
        threshold: the dot-size invariance that counts as reaching 1.
        num_filters_in_layer: its filters per code layer.

    Returns:
        Rows of :func:`classes.reporting.comparison.comparison_row`.
    """
    selectivity = np.array([item["dot_selectivity"] for item in screen_rows])
    above = int(np.sum(selectivity > 1))
    table = [comparison_row(
        "compact models driven by a dot more than by any natural image (selectivity > 1)",
        published("dot_detecting_models").value, f"{above} of {len(screen_rows)}",
        "reproduced" if above > 0 else "differs",
        f"chosen model's selectivity {chosen_row['dot_selectivity']:.2f}; against the screen's natural images",
    )]
    preferred = float(probe.radii[int(np.argmax(study.intact["size_tuning"]))])
    largest = PREFERRED_RADIUS[1]
    table.append(comparison_row(
        f"chosen model prefers small dots (size-tuning peak at radius <= {largest:g} px)",
        published("dot_size_preference").value, f"peak at radius {preferred:g} px",
        "reproduced" if preferred <= largest else "differs",
        f"the Fig. 4 model prefers radius {published('dot_detector_preferred_radius').value} px "
        f"({published('dot_detector_preferred_radius').source}); {largest:g} px radius = {2 * largest:g} px "
        "diameter of the 112 px image; the threshold is this project's",
    ))
    for layer, steps in study.cumulative.items():
        table.append(_cumulative_row(layer, steps, num_filters_in_layer[layer], threshold))
    return table


def write_tables(output_dir: Path, screen_rows: list[dict], ablations: list[dict], table: list[dict]) -> None:
    """Writes ``screen.csv``, ``ablation.csv`` (array columns left out) and ``comparison.csv``."""
    outputs.write_csv(output_dir / "screen.csv", screen_rows)
    outputs.write_csv(output_dir / "ablation.csv", [
        {key: value for key, value in row.items() if not isinstance(value, np.ndarray)}
        for row in ablations
    ])
    outputs.write_csv(output_dir / "comparison.csv", table)


def summarize(screen: Screen, chosen: int, tuning: DotTuning, study: AblationStudy, synthesized_response: float,
              table: list[dict], arguments, timings: dict[str, float]) -> dict:
    """What script 8's ``summary.json`` holds: the table, definitions, tunings and ablations.

    Args:
        screen: the screen of all models.
        chosen: index of the analysed model in ``screen.models``.
        tuning: its location map and probe set.
        study: its ablations.
        synthesized_response: its response to its synthesized image.
        table: the comparison rows.
        arguments: the script's arguments (kept as ``settings``, less paths).
        timings: seconds per step.
    """
    chosen_row, probe = screen.rows[chosen], tuning.probe
    return {
        "comparison": table,
        "layer_numbering": "paper layer = code layer + 1 (paper 1-5 = layer0..layer4)",
        "definitions": DEFINITIONS,
        "chosen_model": f"{screen.models[chosen].session_id}/{screen.models[chosen].neuron}",
        "chosen_model_screen": chosen_row,
        "top_models": sorted(screen.rows, key=lambda row: -np.nan_to_num(row["dot_selectivity"], nan=-np.inf))[:10],
        "preferred_dot": {"polarity": chosen_row["best_polarity"], "radius": chosen_row["best_radius"],
                          "location_cell": [int(tuning.peak[0]), int(tuning.peak[1])],
                          "grid": len(tuning.location)},
        "location_map": tuning.location,
        "radii": probe.radii, "numbers": probe.numbers,
        "number_placements_valid": probe.number_valid.sum(axis=1),
        "intact": study.intact,
        "synthesized_image_response": synthesized_response,
        "cumulative_ablation": {
            f"layer{layer}": [{key: step[key] for key in ("ablated", "size_invariance", "number_invariance",
                                                          "retained_drive", "size_tuning", "baseline")}
                              for step in steps]
            for layer, steps in study.cumulative.items()
        },
        "settings": {key: value for key, value in vars(arguments).items() if key not in ("data_root", "out")},
        "timings_seconds": timings,
    }

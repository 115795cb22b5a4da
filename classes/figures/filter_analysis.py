"""Figures and tables of script 7: filters per layer, kernel similarity, CKA (Fig. 3a-c).

Layers are labelled in the paper's numbering (1-5) with the code's layer
name (``layer0``..``layer4``) below it. The computations are in
:mod:`classes.analysis.layer_comparison`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classes.analysis.layer_comparison import CKA_GROUPS, KERNEL_GROUPS, MAP_SIZES
from classes.compact.architecture import NUM_LAYERS
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime import outputs
from classes.runtime.outputs import pyplot

# Numeric readings of the registry's text: published("early_layer_filters")
# is "about 50" (read as 50 +/- 10) and published("deep_layer_filters") "5-10".
EARLY_FILTERS, EARLY_TOLERANCE = 50, 10
DEEP_FILTERS = (5, 10)


def _layer_labels() -> list[str]:
    """Tick labels ``"<paper layer>\\n(layer<code layer>)"``."""
    return [f"{layer + 1}\n(layer{layer})" for layer in range(NUM_LAYERS)]


def _violins(axis, values, alpha: float) -> np.ndarray:
    """Violins of ``values`` (one sequence per layer) at the layer positions."""
    layers = np.arange(NUM_LAYERS)
    parts = axis.violinplot(values, positions=layers, showextrema=False, widths=0.7)
    for body in parts["bodies"]:
        body.set_alpha(alpha)
    return layers


def _finish_layer_axis(figure, axis, layers, ylabel: str):
    """Layer ticks, labels, a 0-1 range and a legend, shared by Fig. 3b and 3c."""
    axis.set_xticks(layers, _layer_labels())
    axis.set_xlabel("layer (paper numbering; code name)")
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def figure_filters(nums_filters: np.ndarray, medians: np.ndarray):
    """Fig. 3a: filters per layer, one dot per model, medians as bars.

    Args:
        nums_filters: ``(num_models, 5)`` filters per layer.
        medians: ``(5,)`` medians over models.

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(5, 3.6))
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, nums_filters.shape)
    for layer in range(NUM_LAYERS):
        axis.scatter(layer + jitter[:, layer], nums_filters[:, layer], s=6, alpha=0.5, color="tab:blue")
        axis.plot([layer - 0.35, layer + 0.35], [medians[layer]] * 2, color="black", linewidth=2)
        axis.text(layer + 0.38, medians[layer], f"{medians[layer]:.0f}", va="center", fontsize=8)
    axis.set_xticks(range(NUM_LAYERS), _layer_labels())
    axis.set_xlabel("layer (paper numbering; code name)")
    axis.set_ylabel("number of filters")
    axis.set_title(f"Fig. 3a: {len(nums_filters)} compact models (bars: medians)\n"
                   "paper: about 50 early, 5-10 deep", fontsize=9)
    figure.tight_layout()
    return figure


def figure_kernel_similarity(kernels: dict):
    """Fig. 3b: kernel similarity per layer, mean +/- s.d. over random pairs, vs baseline.

    Args:
        kernels: :func:`classes.analysis.layer_comparison.kernel_similarity_analysis` (``all_pairs``,
            ``mean``, ``sd``, ``baseline_mean``, ``baseline_sd``, ``sampled``,
            ``test``).

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(5, 3.6))
    layers = _violins(axis, list(kernels["all_pairs"]), alpha=0.25)
    axis.errorbar(layers - 0.1, kernels["mean"], kernels["sd"], fmt="o", color="tab:blue",
                  label=f"compact models ({len(kernels['sampled']['models'])} random pairs)")
    axis.errorbar(layers + 0.1, kernels["baseline_mean"], kernels["baseline_sd"], fmt="s",
                  color="gray", label="standard-normal kernels")
    test = kernels["test"]
    axis.set_title(f"Fig. 3b: kernel similarity (mean ± s.d.; violins: all pairs)\n"
                   f"layers 2-3 vs 4-5: diff {test['difference']:+.3f}, p = {test['p_value']:.2g}",
                   fontsize=9)
    return _finish_layer_axis(figure, axis, layers, "kernel similarity")


def figure_cka(cka: dict):
    """Fig. 3c: CKA of the same layer between two models, all pairs.

    Args:
        cka: :func:`classes.analysis.layer_comparison.cka_analysis` (``values``, ``mean``, ``sd``,
            ``num_pairs``, ``test``).

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(5, 3.6))
    layers = _violins(axis, [row[np.isfinite(row)] for row in cka["values"]], alpha=0.3)
    axis.errorbar(layers, cka["mean"], cka["sd"], fmt="o", color="black", label="mean ± s.d.")
    test = cka["test"]
    axis.set_title(f"Fig. 3c: linear CKA, {cka['num_pairs']} model pairs per layer\n"
                   f"layers 1-2 vs 3-4: diff {test['difference']:+.3f}, p = {test['p_value']:.2g}",
                   fontsize=9)
    return _finish_layer_axis(figure, axis, layers, "CKA")


def figure_signal(signal: dict, published_rho2: float):
    """Histogram of squared signal correlations between compact models.

    Args:
        signal: :func:`classes.analysis.layer_comparison.signal_correlation` (``squared``,
            ``mean_r2``).
        published_rho2: the paper's mean squared signal correlation.

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(4.5, 3.2))
    axis.hist(signal["squared"][np.isfinite(signal["squared"])], bins=50, color="tab:gray")
    axis.axvline(signal["mean_r2"], color="black", label=f"mean {signal['mean_r2']:.3f}")
    axis.axvline(published_rho2, color="tab:red", linestyle="--", label=f"paper {published_rho2}")
    axis.set_xlabel("squared signal correlation between two models")
    axis.set_ylabel("model pairs")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def save_filter_figures(output_dir: Path, nums_filters: np.ndarray, filters: dict, kernels: dict, cka: dict,
                        signal: dict) -> None:
    """Writes Fig. 3a-c and the signal-correlation histogram (.png and .pdf) to ``output_dir``.

    Args:
        output_dir: the script's ``--out``.
        nums_filters: ``(num_models, 5)`` filters per layer.
        filters: :func:`classes.analysis.layer_comparison.filters_per_layer`.
        kernels: :func:`classes.analysis.layer_comparison.kernel_similarity_analysis`.
        cka: :func:`classes.analysis.layer_comparison.cka_analysis`.
        signal: :func:`classes.analysis.layer_comparison.signal_correlation`.
    """
    outputs.save_figures((
        (figure_filters(nums_filters, filters["medians"]), "fig3a_filters_per_layer"),
        (figure_kernel_similarity(kernels), "fig3b_kernel_similarity"),
        (figure_cka(cka), "fig3c_cka"),
        (figure_signal(signal, published("signal_correlation_rho2").value), "signal_correlation"),
    ), output_dir)


def _paper(layers) -> str:
    """Code layers as paper layers, e.g. ``(1, 2)`` -> ``"2-3"``."""
    return "-".join(str(layer + 1) for layer in layers)


def _filter_rows(filters: dict) -> list[dict]:
    """Fig. 3a rows: median filters of the early and the deep layers."""
    medians = filters["medians"]
    early_ok = bool(np.all(np.abs(medians[:2] - EARLY_FILTERS) <= EARLY_TOLERANCE))
    deep_ok = bool(np.all((medians[2:] >= DEEP_FILTERS[0]) & (medians[2:] <= DEEP_FILTERS[1])))
    return [
        comparison_row("Fig. 3a median filters, early layers (paper 1-2 = code 0-1)",
                       published("early_layer_filters").value,
                       ", ".join(f"{value:.0f}" for value in medians[:2]), "reproduced" if early_ok else "differs"),
        comparison_row(
            "Fig. 3a median filters, deep layers (paper 3-5 = code 2-4)", published("deep_layer_filters").value,
            ", ".join(f"{value:.0f}" for value in medians[2:]), "reproduced" if deep_ok else "differs",
            "" if deep_ok else "far fewer filters than early layers as published, but the medians of paper "
            "layers 3 and 5 are 3 (the pruning floor), below 5; means "
            + ", ".join(f"{value:.1f}" for value in filters["means"][2:])),
    ]


def _test_rows(kernels: dict, cka: dict) -> list[dict]:
    """Fig. 3b-c rows: the permutation tests between the paper's layer groups."""
    table = []
    for name, result, groups, claim in (
        ("Fig. 3b kernel similarity", kernels, KERNEL_GROUPS, published("kernel_similarity_claim").value),
        ("Fig. 3c CKA", cka, CKA_GROUPS, published("cka_claim").value),
    ):
        test = result["test"]
        holds = test["difference"] > 0 and test["p_value"] < 0.05
        means = ", ".join(f"L{layer + 1} {result['mean'][layer]:.3f}" for layer in range(NUM_LAYERS))
        table.append(comparison_row(
            f"{name}: paper layers {_paper(groups[0])} vs {_paper(groups[1])}", claim,
            f"difference {test['difference']:+.3f}, p = {test['p_value']:.2g}",
            "reproduced" if holds else "differs",
            f"means per paper layer: {means}; permutation test of the difference of means "
            f"({test['num_permutations']} permutations, two-sided; pairs share models, so the values "
            "are not independent and p is optimistic)",
        ))
    adjusted = kernels["test_above_baseline"]
    table.append(comparison_row(
        "Fig. 3b kernel similarity above the normal baseline, layers 2-3 vs 4-5", "(not stated)",
        f"difference {adjusted['difference']:+.3f}, p = {adjusted['p_value']:.2g}",
        "reproduced" if adjusted["difference"] > 0 and adjusted["p_value"] < 0.05 else "differs",
        "similarity minus the standard-normal baseline of the same kernel counts",
    ))
    return table


def comparison_rows(filters: dict, kernels: dict, cka: dict, signal: dict, num_models: int,
                    num_images: int) -> list[dict]:
    """Script 7's comparison table against Fig. 3a-c and the published rho^2.

    Args:
        filters, kernels, cka, signal: the results of
            :mod:`classes.analysis.layer_comparison`.
        num_models: models compared (the paper: 219).
        num_images: normal images of the CKA and signal correlation.

    Returns:
        Rows of :func:`classes.reporting.comparison.comparison_row`.
    """
    table = _filter_rows(filters) + _test_rows(kernels, cka)
    expected_pairs = num_models * (num_models - 1) // 2
    table.append(comparison_row(
        "CKA model pairs per layer", published("cka_pairs").value, cka["num_pairs"],
        "reproduced" if num_models == 219 else "differs",
        "" if num_models == 219 else f"a subset of {num_models} models ({expected_pairs} pairs)"))
    table.append(signal_correlation_row(signal["mean_r2"], num_images))
    return table


def signal_correlation_row(mean_r2: float, num_images: int) -> dict:
    """The row of the mean squared signal correlation against the published rho^2 = 0.11.

    Reproduced within 0.02 of the published value, approximate within 0.05.
    """
    rho2 = published("signal_correlation_rho2").value
    difference = abs(mean_r2 - rho2)
    status = "reproduced" if difference <= 0.02 else "approximate" if difference <= 0.05 else "differs"
    return comparison_row("mean squared signal correlation rho^2", rho2, mean_r2, status,
                          f"{num_images} normal images from the release (paper: 10,000); reproduced "
                          "within 0.02, approximate within 0.05")


def write_tables(output_dir: Path, models, nums_filters: np.ndarray, kernels: dict, cka: dict, signal: dict,
                 responses: np.ndarray) -> None:
    """Writes ``per_model.csv``, ``per_layer.csv``, ``kernel_similarity_runs.csv`` and ``matrices.npz``.

    Args:
        output_dir: the script's ``--out``.
        models: the compared model ids, in row order.
        nums_filters: ``(num_models, 5)`` filters per layer.
        kernels, cka, signal: the results of :mod:`classes.analysis.layer_comparison`.
        responses: ``(num_models, num_images)`` model outputs.
    """
    outputs.write_csv(output_dir / "per_model.csv", [
        {"session": identifier.session_id, "neuron": identifier.neuron,
         **{f"K{layer}": int(nums_filters[index, layer]) for layer in range(NUM_LAYERS)}}
        for index, identifier in enumerate(models)
    ])
    outputs.write_csv(output_dir / "per_layer.csv", [
        {"code_layer": layer, "paper_layer": layer + 1,
         "median_filters": float(np.median(nums_filters[:, layer])),
         "kernel_similarity_mean": kernels["mean"][layer], "kernel_similarity_sd": kernels["sd"][layer],
         "baseline_mean": kernels["baseline_mean"][layer], "baseline_sd": kernels["baseline_sd"][layer],
         "kernel_similarity_all_pairs_mean": kernels["all_pairs_mean"][layer],
         "cka_mean": cka["mean"][layer], "cka_sd": cka["sd"][layer], "cka_median": cka["median"][layer]}
        for layer in range(NUM_LAYERS)
    ])
    sampled = kernels["sampled"]
    outputs.write_csv(output_dir / "kernel_similarity_runs.csv", [
        {"run": run, "model_a": str(models[pair[0]]), "model_b": str(models[pair[1]]),
         **{f"similarity_L{layer + 1}": sampled["similarity"][run, layer] for layer in range(NUM_LAYERS)},
         **{f"baseline_L{layer + 1}": sampled["baseline"][run, layer] for layer in range(NUM_LAYERS)}}
        for run, pair in enumerate(sampled["models"])
    ])

    def save(path):
        with open(path, "wb") as stream:
            np.savez_compressed(
                stream, cka=cka["matrices"], kernel_similarity_all_pairs=kernels["all_pairs"],
                signal_correlation=signal["matrix"], responses=np.asarray(responses),
                models=np.array([str(identifier) for identifier in models]),
            )

    outputs.write_atomically(output_dir / "matrices.npz", save)


def summarize(arguments, models, picked, filters: dict, kernels: dict, cka: dict, signal: dict,
              table: list[dict], timings: dict[str, float]) -> dict:
    """What script 7's ``summary.json`` holds.

    Args:
        arguments: the script's arguments (``runs``, ``positions``, ``seed``).
        models: the compared model ids.
        picked: ``(session, image number)`` of each normal image.
        filters, kernels, cka, signal: the results of :mod:`classes.analysis.layer_comparison`.
        table: the comparison rows.
        timings: seconds per step.

    Returns:
        The summary dict.
    """
    sessions = {}
    for session, _ in picked:
        sessions[session] = sessions.get(session, 0) + 1
    return {
        "comparison": table,
        "layer_numbering": "paper layer = code layer + 1 (paper 1-5 = layer0..layer4)",
        "num_models": len(models),
        "num_images": len(picked),
        "images_per_session": sessions,
        "positions_per_layer": [int(min(arguments.positions, size * size)) for size in MAP_SIZES],
        "filters_per_layer": filters,
        "kernel_similarity": {
            "definition": "S(A,B) = (mean_j max_k |cos(a_j,b_k)| + mean_k max_j |cos(a_j,b_k)|) / 2; "
                          "layer 0: 5x5x3 conv kernels, layers 1-4: 5x5 depthwise kernels",
            "runs": arguments.runs,
            "mean": kernels["mean"], "sd": kernels["sd"],
            "baseline_mean": kernels["baseline_mean"], "baseline_sd": kernels["baseline_sd"],
            "all_pairs_mean": kernels["all_pairs_mean"],
            "test_paper_layers_2_3_vs_4_5": kernels["test"],
            "test_above_baseline": kernels["test_above_baseline"],
        },
        "cka": {
            "num_pairs": cka["num_pairs"], "mean": cka["mean"], "sd": cka["sd"], "median": cka["median"],
            "test_paper_layers_1_2_vs_3_4": cka["test"],
        },
        "signal_correlation": {key: signal[key] for key in ("mean_r2", "median_r2", "mean_r")},
        "seed": arguments.seed,
        "timings_seconds": timings,
    }

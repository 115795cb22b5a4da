"""Figures of script 7: filters per layer, kernel similarity, CKA (Fig. 3a-c).

Layers are labelled in the paper's numbering (1-5) with the code's layer
name (``layer0``..``layer4``) below it.
"""

from __future__ import annotations

import numpy as np

from classes.compact.model import NUM_LAYERS
from classes.runtime.outputs import pyplot


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
        kernels: script 7's kernel-similarity results (``all_pairs``,
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
        cka: script 7's CKA results (``values``, ``mean``, ``sd``,
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
        signal: script 7's signal-correlation results (``squared``,
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

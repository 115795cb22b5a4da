"""Figures of script4: Fig. 1h (compact vs ensemble) and Fig. 1i (model sizes)."""

from __future__ import annotations

import numpy as np

from classes.runtime.outputs import pyplot

PUBLISHED_MEDIAN_FILTERS = 164


def figure_sizes(parameters, conv_filters, nums_filters, ensemble_parameters):
    """Fig. 1i and its inset, with the per-layer filters of Fig. 3a.

    Args:
        parameters: ``(num_models,)`` compact-model parameter counts.
        conv_filters: ``(num_models,)`` convolutional filters (paper's count).
        nums_filters: ``(num_models, 5)``.
        ensemble_parameters: the ensemble's parameter count, or None.
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    axis = axes[0]
    bins = np.logspace(3, 8, 60)
    axis.hist(parameters, bins=bins, color="tab:blue", label=f"{len(parameters)} compact models")
    axis.axvline(np.median(parameters), color="tab:blue", linestyle="--",
                 label=f"median {np.median(parameters):,.0f}")
    if ensemble_parameters is not None:
        axis.axvline(ensemble_parameters, color="tab:red",
                     label=f"ensemble {ensemble_parameters / 1e6:.1f}M")
        axis.set_title(f"Fig. 1i: {ensemble_parameters / np.median(parameters):,.0f}x fewer parameters")
    axis.set_xscale("log")
    axis.set_xlabel("parameters")
    axis.set_ylabel("models")
    axis.legend(fontsize=8)
    axis = axes[1]
    axis.hist(conv_filters, bins=30, color="tab:green")
    axis.axvline(np.median(conv_filters), color="k", linestyle="--",
                 label=f"reproduced median {np.median(conv_filters):.0f}")
    axis.axvline(PUBLISHED_MEDIAN_FILTERS, color="tab:red", linestyle=":",
                 label=f"published median {PUBLISHED_MEDIAN_FILTERS}")
    axis.set_xlabel("convolutional filters per model")
    axis.set_title("Fig. 1i inset")
    axis.legend(fontsize=8)
    axis = axes[2]
    generator = np.random.default_rng(0)
    for layer in range(5):
        jitter = layer + generator.uniform(-0.25, 0.25, len(nums_filters))
        axis.scatter(jitter, nums_filters[:, layer], s=4, alpha=0.4, color="tab:gray")
        axis.plot([layer - 0.35, layer + 0.35], [np.median(nums_filters[:, layer])] * 2, "k-", lw=2)
    axis.set_yscale("log")
    axis.set_xticks(range(5), [f"layer {layer}" for layer in range(5)])
    axis.set_ylabel("filters")
    axis.set_title("filters per layer (Fig. 3a); lines: medians")
    figure.tight_layout()
    return figure


def figure_performance(rows, ensemble_available: bool):
    """Fig. 1h: compact vs ensemble per neuron, or the compact models alone.

    Args:
        rows: per-neuron dicts with ``session``, ``noise_corrected_r2_poisson``,
            ``pearson_r`` and, with an ensemble, ``ensemble_noise_corrected_r2_poisson``.
    """
    plt = pyplot()
    sessions = sorted({row["session"] for row in rows})
    if ensemble_available:
        figure, axis = plt.subplots(figsize=(5, 5))
        for session in sessions:
            chosen = [row for row in rows if row["session"] == session]
            axis.scatter([row["ensemble_noise_corrected_r2_poisson"] for row in chosen],
                         [row["noise_corrected_r2_poisson"] for row in chosen], s=10, label=session)
        axis.plot([0, 1], [0, 1], "k--", lw=1)
        axis.set_xlabel("ensemble: noise-corrected R2 (approx., Poisson noise)")
        axis.set_ylabel("compact: noise-corrected R2 (approx., Poisson noise)")
        axis.set_title("Fig. 1h")
        axis.legend(fontsize=8)
        figure.tight_layout()
        return figure
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    generator = np.random.default_rng(0)
    for index, session in enumerate(sessions):
        values = np.array([row["noise_corrected_r2_poisson"] for row in rows if row["session"] == session])
        axes[0].scatter(index + generator.uniform(-0.2, 0.2, len(values)), values, s=8)
        axes[0].plot([index - 0.3, index + 0.3], [np.nanmedian(values)] * 2, "k-", lw=2)
    axes[0].set_xticks(range(len(sessions)), sessions)
    axes[0].set_ylabel("noise-corrected R2 (APPROXIMATE: Poisson noise)")
    axes[0].set_title("compact models vs V4, held-out images\n(ensemble weights not released: Fig. 1h's ensemble axis not computable)", fontsize=9)
    pearson = np.array([row["pearson_r"] for row in rows])
    approximate = np.array([row["noise_corrected_r2_poisson"] for row in rows])
    axes[1].scatter(pearson**2, approximate, s=8)
    axes[1].plot([0, 1], [0, 1], "k--", lw=1)
    axes[1].set_xlabel("raw R2 (squared Pearson r, exact)")
    axes[1].set_ylabel("noise-corrected R2 (approx., Poisson noise)")
    axes[1].set_title("the noise correction per neuron", fontsize=9)
    figure.tight_layout()
    return figure

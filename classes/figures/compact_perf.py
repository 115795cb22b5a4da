"""Figures and tables of script4: Fig. 1h (compact vs ensemble), Fig. 1i (model sizes).

The comparison table (model sizes, then scores against V4), the text of the
Poisson-noise check, the per-neuron rows of ``per_neuron.csv`` and the two
figures. Published values come from :mod:`classes.reporting.published`.
"""

from __future__ import annotations

import numpy as np

from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime.outputs import pyplot
from classes.scoring.performance import POISSON_LABEL

PER_NEURON_SCORES = ("pearson_r", "raw_r2", "noise_corrected_r2_poisson", "snr_poisson",
                     "noise_corrected_r2_exact", "ensemble_noise_corrected_r2_poisson")
ENSEMBLE_MISSING = ("ensemble weights (data_ensemble_model/ensemble_model_member<i>.keras) are not in "
                    "the release; pass --ensemble-dir with its predictions")


def comparison_rows(models, sizes: dict, rows: list[dict], ensemble_summary, notes) -> list[dict]:
    """The published-vs-reproduced rows of script4 (``comparison_row``).

    Args:
        models: the chosen ``ModelId`` values.
        sizes: ``nums_filters`` ``(num_models, 5)``, ``parameters`` and
            ``filters`` ``(num_models,)``, and ``ensemble`` (its parameters).
        rows: per-neuron scores of the scored models
            (:func:`classes.scoring.held_out.score_models_on_held_out`).
        ensemble_summary: :func:`classes.scoring.held_out.score_ensemble`'s
            result, or None without ensemble predictions.
        notes: the run's notes; those about missing images go in the table.
    """
    return size_rows(models, sizes) + score_rows(rows, ensemble_summary, notes)


def size_rows(models, sizes: dict) -> list[dict]:
    """Rows on the models' sizes: count, filters (Fig. 1i inset, Fig. 3a), parameters (Fig. 1i)."""
    row = comparison_row
    nums_filters, parameters, filters = sizes["nums_filters"], sizes["parameters"], sizes["filters"]
    medians = np.median(nums_filters, axis=0)
    num_models = published("num_compact_models").value
    median_filters = published("median_convolutional_filters").value
    # The paper's "about 50" and "5-10", as numeric ranges.
    early_ok = bool(np.all(np.abs(medians[:2] - 50) <= 10))
    deep_ok = bool(np.all((medians[2:] >= 5) & (medians[2:] <= 10)))
    return [
        row("compact models (chosen / released)", num_models, len(models),
            "reproduced" if len(models) == num_models else "differs",
            "" if len(models) == num_models else "a subset was chosen with --sessions/--neurons"),
        row("median convolutional filters per model", median_filters, float(np.median(filters)),
            "reproduced" if np.median(filters) == median_filters else "differs",
            "count = 2*K0 + K1 + K2 + K3 + K4 (layer 1's depthwise filters counted with the "
            f"pointwise filters); sum(K) gives {np.median(nums_filters.sum(1)):.0f}"),
        row("median filters, early layers 0-1", published("early_layer_filters").value,
            f"{medians[0]:.0f}, {medians[1]:.0f}", "reproduced" if early_ok else "differs"),
        row("median filters, deep layers 2-4", published("deep_layer_filters").value,
            ", ".join(f"{value:.0f}" for value in medians[2:]), "reproduced" if deep_ok else "differs",
            "" if deep_ok else "layers 2 and 4 have medians below 5 in the released models"),
        row("ensemble parameters", published("ensemble_parameters").value,
            f"{sizes['ensemble'] / 1e6:.1f} million", "reproduced",
            "from the release's ensemble_model_summary.txt: ResNet50 stage + 25 members' weights "
            "(the summary's 'Total params' per member also counts optimizer slots)"),
        row("compression (ensemble / median compact parameters)", published("compression").value,
            f"{sizes['ensemble'] / np.median(parameters):,.0f}x", "reproduced"),
    ]


def score_rows(rows: list[dict], ensemble_summary, notes) -> list[dict]:
    """Rows on the scores against V4 (Fig. 1h); the ensemble's are not computable without it."""
    row = comparison_row
    num_models = published("num_compact_models").value
    table = [row("neurons scored against V4 (held-out images)", num_models, len(rows),
                 "reproduced" if len(rows) == num_models else "not computable",
                 "; ".join(note for note in notes if "images" in note))]
    if rows:
        approximate = np.array([item["noise_corrected_r2_poisson"] for item in rows])
        pearson = np.array([item["pearson_r"] for item in rows])
        sessions = ", ".join(sorted({item["session"] for item in rows}))
        table.append(row("compact median noise-corrected R2", published("compact_median_r2").value,
                         float(np.nanmedian(approximate)), "approximate",
                         f"{POISSON_LABEL}; sessions {sessions}; raw repeats of the test sessions "
                         "are not released, so the exact value is not computable"))
        table.append(row("compact median Pearson r (exact)", None, float(np.nanmedian(pearson)), "reproduced",
                         "against repeat-averaged held-out responses; no published counterpart"))
    ensemble_rows = (("ensemble median noise-corrected R2", "ensemble_median_r2", "ensemble_median_r2"),
                     ("compact minus ensemble median R2", "compact_minus_ensemble", "compact_minus_ensemble"),
                     ("rho(compact R2, ensemble R2)", "rho_compact_ensemble", "rho"))
    for quantity, key, summary_key in ensemble_rows:
        if ensemble_summary is None:
            table.append(row(quantity, published(key).value, None, "not computable", ENSEMBLE_MISSING))
        else:
            table.append(row(quantity, published(key).value, ensemble_summary[summary_key],
                             "approximate", POISSON_LABEL))
    return table


def format_poisson_checks(checks: list[dict]) -> str:
    """The text printed under the table on the Poisson-noise approximation.

    Args:
        checks: :func:`classes.scoring.performance.poisson_approximation_checks`.
    """
    if not checks:
        return "Poisson check: no session with raw repeats in this release; the approximation is unchecked."
    lines = ["Poisson-noise approximation checked on the sessions with raw repeats "
             "(exact = from the repeats; approx. = variance set to the mean count):"]
    for check in checks:
        lines.append(
            f"  {check['session']} ({check['num_neurons']} neurons, {check['num_images']} images): "
            f"median Fano factor {check['median_fano_factor']:.2f}; SNR exact vs approx. r = "
            f"{check['snr_correlation']:.2f}, median |diff| {check['median_abs_snr_difference']:.3f} "
            f"(90th pct {check['p90_abs_snr_difference']:.3f}); noise-corrected R2 of a half-repeat "
            f"stand-in model: median {check['median_r2_exact']:.3f} exact vs "
            f"{check['median_r2_poisson']:.3f} approx., median |diff| "
            f"{check['median_abs_r2_difference']:.3f} (90th pct {check['p90_abs_r2_difference']:.3f})"
        )
    return "\n".join(lines)


def per_neuron_rows(models, sizes: dict, rows: list[dict]) -> list[dict]:
    """The rows of ``per_neuron.csv``: every chosen model, scored or not (NaN scores).

    Args:
        models: the chosen ``ModelId`` values, in the file's order.
        sizes: as for :func:`comparison_rows`.
        rows: per-neuron scores, with the ensemble's where it was scored.
    """
    scored = {(row["session"], row["neuron"]): row for row in rows}
    table = []
    for position, identifier in enumerate(models):
        row = scored.get((identifier.session_id, identifier.neuron), {})
        entry = {"session": identifier.session_id, "neuron": identifier.neuron}
        entry.update({f"K{layer}": int(sizes["nums_filters"][position, layer]) for layer in range(5)})
        entry["parameters"] = int(sizes["parameters"][position])
        entry["convolutional_filters"] = int(sizes["filters"][position])
        entry.update({key: row.get(key, np.nan) for key in PER_NEURON_SCORES})
        table.append(entry)
    return table


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
    median_filters = published("median_convolutional_filters").value
    axis.axvline(median_filters, color="tab:red", linestyle=":", label=f"published median {median_filters}")
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

"""Summaries, order check, figure and table of script5 (Fig. 3d-e counterpart).

Per-neuron scores of the shared compact models (7 teachers x 8 filter counts
K) and of the individual compact models, summarised as mean and s.e.m. over
neurons; the check that the shared models' 219 outputs follow the compact
models' neuron order; the figure (one line per teacher against K, the
individual models as a reference band) and the comparison table.
"""

from __future__ import annotations

import numpy as np

from classes.compact.shared_model import NUMS_SHARED_FILTERS
from classes.reporting.comparison import comparison_row
from classes.runtime import outputs
from classes.scoring.performance import POISSON_LABEL

METRICS = ("noise_corrected_r2_poisson", "pearson_r", "raw_r2")
COMPACT_LABEL = "individual compact models"


def summarize(values) -> dict:
    """Mean, s.e.m., median and count over the finite values."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    sem = finite.std(ddof=1) / np.sqrt(finite.size) if finite.size > 1 else np.nan
    return {"mean": float(finite.mean()) if finite.size else np.nan, "sem": float(sem),
            "median": float(np.median(finite)) if finite.size else np.nan, "n": int(finite.size)}


def summary_table(rows: list[dict], predictors: list[tuple], order_results: dict) -> list[dict]:
    """Mean, s.e.m. and median of every metric per predictor, with the order check.

    Args:
        rows: per-neuron rows with ``teacher``, ``num_filters`` and the
            :data:`METRICS`.
        predictors: ``(teacher, K)`` pairs in the order wanted; the
            individual compact models are ``(COMPACT_LABEL, None)``.
        order_results: ``(teacher, K)`` -> :func:`order_check` result.

    Returns:
        One dict per predictor.
    """
    summary_rows = []
    for teacher, count in predictors:
        chosen = [row for row in rows if row["teacher"] == teacher and row["num_filters"] == count]
        entry = {"teacher": teacher, "num_filters": count, "num_neurons": len(chosen)}
        for metric in METRICS:
            stats = summarize([row[metric] for row in chosen])
            entry.update({f"{metric}_mean": stats["mean"], f"{metric}_sem": stats["sem"],
                          f"{metric}_median": stats["median"]})
        if (teacher, count) in order_results:
            result = order_results[(teacher, count)]
            entry.update({"order_median_correlation": result["median_correlation"],
                          "order_min_correlation": result["min_correlation"],
                          "order_matched_fraction": result["matched_fraction"],
                          "order_median_abs_off_diagonal": result["median_abs_off_diagonal"]})
        else:
            entry.update({"order_median_correlation": None, "order_min_correlation": None,
                          "order_matched_fraction": None, "order_median_abs_off_diagonal": None})
        summary_rows.append(entry)
    return summary_rows


def order_check(shared_outputs, compact_outputs) -> dict:
    """Matches each shared output to the compact models on the same images.

    Args:
        shared_outputs, compact_outputs: ``(num_images, num_neurons)``, the
            chosen neurons in the same order.

    Returns:
        dict: per-neuron ``diagonal`` correlations, ``matched`` (whether the
        matching compact model is the best-correlated one), their summaries,
        and the median absolute off-diagonal correlation.
    """
    def standardize(values):
        values = values - values.mean(axis=0)
        norms = np.linalg.norm(values, axis=0)
        return values / np.where(norms > 0, norms, np.nan)

    correlations = standardize(np.asarray(shared_outputs, np.float64)).T @ standardize(
        np.asarray(compact_outputs, np.float64))
    diagonal = np.diag(correlations)
    filled = np.where(np.isfinite(correlations), correlations, -np.inf)
    matched = np.argmax(filled, axis=1) == np.arange(len(diagonal))
    off_diagonal = correlations[~np.eye(len(diagonal), dtype=bool)]
    return {
        "diagonal": diagonal,
        "matched": matched,
        "median_correlation": float(np.nanmedian(diagonal)),
        "min_correlation": float(np.nanmin(diagonal)),
        "matched_fraction": float(np.mean(matched)),
        "median_abs_off_diagonal": float(np.nanmedian(np.abs(off_diagonal))) if off_diagonal.size else np.nan,
    }


def format_summary_table(summary_rows) -> str:
    """The per-predictor table printed by script5."""
    lines = [f"{'teacher':28s} {'K':>4s} {'n':>4s}  {'approx. nc-R2 (Poisson)':>24s}  {'Pearson r':>16s}  "
             f"{'raw R2':>16s}  {'order r (match)':>16s}",]
    for row in summary_rows:
        order = ("" if row["order_median_correlation"] is None
                 else f"{row['order_median_correlation']:.2f} ({100 * row['order_matched_fraction']:.0f}%)")
        cells = [f"{row[f'{metric}_mean']:.3f} +/- {row[f'{metric}_sem']:.3f}" for metric in METRICS]
        lines.append(f"{row['teacher']:28s} {row['num_filters'] or '':>4} {row['num_neurons']:>4d}  "
                     f"{cells[0]:>24s}  {cells[1]:>16s}  {cells[2]:>16s}  {order:>16s}")
    return "\n".join(lines)


def figure_performance(summary_rows, teachers):
    """Fig. 3d-e counterpart: mean +/- s.e.m. against K, one line per teacher."""
    figure, axes = outputs.pyplot().subplots(1, 2, figsize=(13.0, 4.2))
    compact = summary_rows[0]
    for axis, metric, label in ((axes[0], "noise_corrected_r2_poisson", "noise-corrected R2\n(approximate, Poisson noise)"),
                                (axes[1], "pearson_r", "Pearson r (exact)")):
        for teacher in teachers:
            chosen = [row for row in summary_rows if row["teacher"] == teacher]
            axis.errorbar([row["num_filters"] for row in chosen], [row[f"{metric}_mean"] for row in chosen],
                          yerr=[row[f"{metric}_sem"] for row in chosen], marker="o", ms=3, capsize=2, label=teacher)
        mean, sem = compact[f"{metric}_mean"], compact[f"{metric}_sem"]
        axis.axhline(mean, color="k", ls="--", lw=1, label=f"{COMPACT_LABEL} (mean)")
        axis.axhspan(mean - sem, mean + sem, color="k", alpha=0.1)
        axis.set_xscale("log")
        axis.set_xticks(NUMS_SHARED_FILTERS)
        axis.set_xticklabels([str(count) for count in NUMS_SHARED_FILTERS])
        axis.set_xlabel("shared filters in layers 0-2 (K)")
        axis.set_ylabel(f"{label}, mean +/- s.e.m. over neurons")
    axes[1].legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"Shared compact models on held-out V4 responses ({compact['num_neurons']} neurons; "
                    "Fig. 3d-e counterpart)", fontsize=10)
    figure.tight_layout()
    return figure


def comparison_rows(summary_rows, order_results, teachers, filters, models, rows, notes) -> list[dict]:
    """The published-vs-reproduced rows of script5 (``comparison_row``)."""
    row = comparison_row
    compact = summary_rows[0]
    scored = compact["num_neurons"]
    table = [
        row("shared compact models evaluated", "56 (7 teachers x 8 K)", len(order_results),
            "reproduced" if len(order_results) == 56 else "differs",
            "" if len(order_results) == 56 else "a subset was chosen with --teachers/--filters"),
        row("neurons scored on held-out images", 219, scored, "reproduced" if scored == 219 else "not computable",
            "; ".join(note for note in notes if "cannot be scored" in note)),
    ]
    reference = ("from_ensemble_model", max(filters)) if "from_ensemble_model" in teachers else next(iter(order_results))
    result = order_results[reference]
    all_matched = min(item["matched_fraction"] for item in order_results.values())
    ordered = result["matched_fraction"] >= 0.9 and result["median_correlation"] > 0.5
    table.append(row(
        "shared outputs in the compact models' neuron order", "190923, 201025, 210225, 211022 (SPEC 3)",
        f"{reference[0]} K={reference[1]}: median r = {result['median_correlation']:.2f}, "
        f"{100 * result['matched_fraction']:.0f}% best-matched",
        "reproduced" if ordered else "differs",
        f"{len(models)} neurons incl. 211022's on other sessions' held-out images; off-diagonal median |r| "
        f"{result['median_abs_off_diagonal']:.2f}; lowest best-match rate over all {len(order_results)} shared "
        f"models {100 * all_matched:.0f}%"))
    table.append(row(f"{COMPACT_LABEL}: mean noise-corrected R2", None,
                     f"{compact['noise_corrected_r2_poisson_mean']:.3f} +/- {compact['noise_corrected_r2_poisson_sem']:.3f}",
                     "approximate", f"{POISSON_LABEL}; {scored} neurons"))
    if "from_ensemble_model" in teachers:
        chosen = [item for item in summary_rows if item["teacher"] == "from_ensemble_model"]
        matching = [item["num_filters"] for item in chosen
                    if item["noise_corrected_r2_poisson_mean"] >= compact["noise_corrected_r2_poisson_mean"]]
        table.append(row("smallest K where from_ensemble_model matches the individual compact models", None,
                         f"K={min(matching)}" if matching else f"none of K={', '.join(str(item['num_filters']) for item in chosen)}",
                         "approximate", f"mean {POISSON_LABEL} over the same {scored} neurons"))
    for teacher in teachers:
        chosen = [item for item in summary_rows if item["teacher"] == teacher]
        best = max(chosen, key=lambda item: item["noise_corrected_r2_poisson_mean"])
        values = ", ".join(f"K={item['num_filters']}: {item['noise_corrected_r2_poisson_mean']:.3f}" for item in chosen)
        table.append(row(f"{teacher}: mean noise-corrected R2 by K", None,
                         f"best K={best['num_filters']}: {best['noise_corrected_r2_poisson_mean']:.3f}",
                         "approximate", f"{POISSON_LABEL}; {values}"))
    return table

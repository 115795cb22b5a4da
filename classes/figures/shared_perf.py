"""Figure and tables of script5 (Fig. 3d-e counterpart).

The per-predictor summary table, the figure (one line per teacher against K
shared filters, the individual compact models as a reference band) and the
comparison table. The scores, summaries and the neuron-order check they show
are computed in :mod:`classes.scoring.shared_performance`.
"""

from __future__ import annotations

from classes.compact.shared_model import NUMS_SHARED_FILTERS
from classes.reporting.comparison import comparison_row
from classes.runtime import outputs
from classes.scoring.performance import NOISE_CORRECTED_LABEL
from classes.scoring.shared_performance import COMPACT_LABEL, METRICS


def format_summary_table(summary_rows) -> str:
    """The per-predictor table printed by script5."""
    lines = [f"{'teacher':28s} {'K':>4s} {'n':>4s}  {'approx. nc-R2 (F x mean)':>24s}  {'Pearson r':>16s}  "
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
    for axis, metric, label in ((axes[0], "noise_corrected_r2", "noise-corrected R2\n(approximate, F x mean noise)"),
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
                     f"{compact['noise_corrected_r2_mean']:.3f} +/- {compact['noise_corrected_r2_sem']:.3f}",
                     "approximate", f"{NOISE_CORRECTED_LABEL}; {scored} neurons"))
    if "from_ensemble_model" in teachers:
        chosen = [item for item in summary_rows if item["teacher"] == "from_ensemble_model"]
        matching = [item["num_filters"] for item in chosen
                    if item["noise_corrected_r2_mean"] >= compact["noise_corrected_r2_mean"]]
        table.append(row("smallest K where from_ensemble_model matches the individual compact models", None,
                         f"K={min(matching)}" if matching else f"none of K={', '.join(str(item['num_filters']) for item in chosen)}",
                         "approximate", f"mean {NOISE_CORRECTED_LABEL} over the same {scored} neurons"))
    for teacher in teachers:
        chosen = [item for item in summary_rows if item["teacher"] == teacher]
        best = max(chosen, key=lambda item: item["noise_corrected_r2_mean"])
        values = ", ".join(f"K={item['num_filters']}: {item['noise_corrected_r2_mean']:.3f}" for item in chosen)
        table.append(row(f"{teacher}: mean noise-corrected R2 by K", None,
                         f"best K={best['num_filters']}: {best['noise_corrected_r2_mean']:.3f}",
                         "approximate", f"{NOISE_CORRECTED_LABEL}; {values}"))
    return table

"""Tables and figure of script2 (Fig. 1b, Ext. Data Fig. 2): task-driven features vs the ensemble.

The architecture check of an ensemble member and of the ResNet50 stage
against the release's summary text, the comparison rows of the median
noise-corrected R2 (published values from :mod:`classes.reporting.published`),
the medians written to ``summary.json`` and the Fig. 1b scatter.
"""

from __future__ import annotations

import numpy as np

from classes.ensemble.architecture import FULL_CONFIG, build_member, parameter_counts
from classes.ensemble.summary import (
    compare_with_summary,
    parse_summary_tables,
    release_member_table,
    release_summary_path,
)
from classes.ensemble.taskdriven_features import RANDOM_FEATURES_LABEL, build_feature_extractor
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime.outputs import pyplot
from classes.scoring.performance import POISSON_LABEL

# (model, mapping) of Ext. Data Fig. 2, in the table's order; the registry's key is "<model>_<mapping>".
PUBLISHED_PAIRS = (("resnet50", "ridge"), ("resnet50", "factorized"), ("ensemble", "ridge"),
                   ("ensemble", "factorized"))
SCORE = "noise_corrected_r2_poisson"


def published_median(model: str, mapping: str) -> float:
    """The published median noise-corrected R2 of a (model, mapping) pair; random features stand for ResNet50."""
    return published(f"{'resnet50' if model == 'random_features' else model}_{mapping}").value


def architecture_rows(data_root) -> tuple[list[dict], dict]:
    """The member and the ResNet50 stage against the release's summary text.

    Args:
        data_root: the release folder (its ``data_ensemble_model/`` summary).

    Returns:
        ``(comparison rows, {"member_problems", "stage_problems", "member_counts"})``.
    """
    row = comparison_row
    member = build_member(FULL_CONFIG, seed=31490)
    problems = compare_with_summary(member, release_member_table(data_root))
    counts = parameter_counts(member)
    text = release_summary_path(data_root).read_text(encoding="utf-8")
    stage_table = parse_summary_tables(text)[0]
    stage = build_feature_extractor("resnet50", allow_random_weights=True)
    stage_problems = compare_with_summary(stage, stage_table)
    published_member = "2,252,248 trainable + 5,120 non-trainable"
    rows = [
        row("ensemble member layers (names, types, shapes, parameters, inputs)",
            f"{len(release_member_table(data_root))} layers in the release summary",
            f"{len(member.layers)} layers, {len(problems)} differences",
            "reproduced" if not problems else "differs", "; ".join(problems[:5])),
        row("ensemble member parameters", published_member,
            f"{counts['trainable']:,} trainable + {counts['non_trainable']:,} non-trainable",
            "reproduced" if (counts["trainable"], counts["non_trainable"]) == (2_252_248, 5_120)
            else "differs"),
        row("member optimizer slots (SGD momentum)", "2,252,250", f"{counts['optimizer']:,}",
            "reproduced" if counts["optimizer"] == 2_252_250 else "differs"),
        row("ResNet50 stage (cut at conv4_block4_out) parameters",
            f"{sum(r.parameters for r in stage_table):,}", f"{stage.count_params():,}",
            "reproduced" if not stage_problems else "differs", "; ".join(stage_problems[:5])),
    ]
    return rows, {"member_problems": problems, "stage_problems": stage_problems, "member_counts": counts}


def _scores(rows, model: str, mapping: str) -> np.ndarray:
    return np.array([row[SCORE] for row in rows if row["model"] == model and row["mapping"] == mapping])


def _missing_reason(model: str, feature_note: str, ensemble_note: str) -> str:
    missing = [feature_note and "ResNet50 ImageNet weights (--resnet50-weights "
               "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5)"]
    if model == "ensemble":
        missing.append(ensemble_note and "ensemble members (ensemble_model_member<i>.keras; --ensemble-dir)")
    return "missing " + " and ".join(item for item in missing if item) if any(missing) else ""


def comparison_rows(rows, mappings, feature_note: str, ensemble_note: str, random_features: bool) -> list[dict]:
    """Median noise-corrected R2 of every (model, mapping) against the published one.

    Args:
        rows: per-neuron rows of :func:`classes.ensemble.taskdriven_scores.evaluate_session`.
        mappings: the mappings chosen.
        feature_note: why the ResNet50 features are missing; empty when present.
        ensemble_note: why the ensemble members are missing; empty when present.
        random_features: the features are random patches (never compared).

    Returns:
        Comparison rows: Fig. 1b's ensemble first, then each pair of Ext. Data Fig. 2.
    """
    table = []
    for model, mapping in PUBLISHED_PAIRS:
        value = published_median(model, mapping)
        quantity = f"{'ResNet50' if model == 'resnet50' else 'ensemble'} {mapping} median noise-corrected R2"
        values = _scores(rows, "random_features" if random_features and model == "resnet50" else model, mapping)
        reason = _missing_reason(model, feature_note, ensemble_note)
        if mapping not in mappings:
            table.append(comparison_row(quantity, value, None, "not computable", "mapping not chosen (--mappings)"))
        elif reason:
            table.append(comparison_row(quantity, value, None, "not computable", reason))
        elif random_features:
            table.append(comparison_row(quantity, value, None, "not computable",
                                        f"{RANDOM_FEATURES_LABEL}: code-path median {np.nanmedian(values):.3f} "
                                        "in summary.json, not a reproduction"))
        else:
            table.append(comparison_row(quantity, value, float(np.nanmedian(values)), "approximate",
                                        f"{POISSON_LABEL}; {len(values)} neurons"))
    ensemble = [entry for entry in table if entry["quantity"].startswith("ensemble factorized")][0]
    table.insert(0, {**ensemble, "quantity": "ensemble median noise-corrected R2 (Fig. 1b)",
                     "published": published("ensemble_median_r2").value})
    return table


def medians(rows) -> dict[str, float]:
    """``{"<model> <mapping>": median noise-corrected R2}`` in the rows' order."""
    pairs = dict.fromkeys((row["model"], row["mapping"]) for row in rows)
    return {f"{model} {mapping}": float(np.nanmedian(_scores(rows, model, mapping))) for model, mapping in pairs}


def figure_fig1b(rows, label: str):
    """Per-neuron noise-corrected R2 of every (model, mapping), with medians and published values.

    Args:
        rows: per-neuron rows (see :func:`comparison_rows`).
        label: what the scores are (the Poisson approximation or the random-features warning).

    Returns:
        The matplotlib figure.
    """
    groups = list(dict.fromkeys((row["model"], row["mapping"]) for row in rows))
    figure, axis = pyplot().subplots(figsize=(1.8 * len(groups) + 2, 4))
    generator = np.random.default_rng(0)
    for position, (model, mapping) in enumerate(groups):
        values = _scores(rows, model, mapping)
        axis.scatter(position + generator.uniform(-0.2, 0.2, len(values)), values, s=6, alpha=0.5)
        axis.plot([position - 0.3, position + 0.3], [np.nanmedian(values)] * 2, "k-", lw=2)
        axis.plot([position - 0.3, position + 0.3], [published_median(model, mapping)] * 2, "r:", lw=2)
    axis.set_xticks(range(len(groups)), [f"{m}\n{k}" for m, k in groups])
    axis.set_ylabel("noise-corrected R2 (approx., Poisson)")
    axis.set_title(f"Fig. 1b: black = median, red dotted = published\n{label}", fontsize=9)
    return figure

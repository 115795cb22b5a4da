"""Figures and tables of script4: Fig. 1h (compact vs ensemble), Fig. 1i (model sizes).

The comparison table (model sizes, then scores against V4), the text of the
noise-model validation and of the Poisson-noise check, the per-neuron rows of
``per_neuron.csv`` and the two figures. Published values come from :mod:`classes.reporting.published`.
"""

from __future__ import annotations

import numpy as np

from classes.reporting.comparison import comparison_row
from classes.reporting.published import published
from classes.runtime.outputs import pyplot
from classes.scoring.noise_model import ESTIMATOR_LABELS, ESTIMATORS
from classes.scoring.performance import NOISE_CORRECTED_LABEL, POISSON_LABEL

PER_NEURON_SCORES = ("pearson_r", "raw_r2", "noise_corrected_r2", "snr", "noise_corrected_r2_poisson", "snr_poisson",
                     "noise_corrected_r2_exact", "ensemble_noise_corrected_r2")
ENSEMBLE_MISSING = ("ensemble weights (data_ensemble_model/ensemble_model_member<i>.keras) are not in "
                    "the release; pass --ensemble-dir with its predictions")


def comparison_rows(models, sizes: dict, rows: list[dict], ensemble_summary, notes, noise_report: dict) -> list[dict]:
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
        noise_report: :func:`classes.scoring.noise_validation.validate_noise_model`.
    """
    return size_rows(models, sizes) + score_rows(rows, ensemble_summary, notes, noise_report)


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


def validated_error_text(noise_report: dict) -> str:
    """The chosen estimator's validated error, e.g. "median bias -0.004 (201016), ..."; '' without it."""
    validation = noise_report.get("validation", {})
    if not validation:
        return "not validated: no raw repeats in this release"
    biases = ", ".join(f"{entry['median_bias']:+.3f} ({session})" for session, entry in validation.items())
    errors = ", ".join(f"{entry['p90_abs_error']:.3f}" for entry in validation.values())
    return (f"validated leave-one-session-out on a half-repeat stand-in model: median bias {biases}, "
            f"90th pct |error| {errors}")


def score_rows(rows: list[dict], ensemble_summary, notes, noise_report: dict) -> list[dict]:
    """Rows on the scores against V4 (Fig. 1h); the ensemble's are not computable without it."""
    row = comparison_row
    num_models = published("num_compact_models").value
    table = [row("neurons scored against V4 (held-out images)", num_models, len(rows),
                 "reproduced" if len(rows) == num_models else "not computable",
                 "; ".join(note for note in notes if "images" in note))]
    if rows:
        approximate = np.array([item["noise_corrected_r2"] for item in rows])
        poisson = np.array([item["noise_corrected_r2_poisson"] for item in rows])
        pearson = np.array([item["pearson_r"] for item in rows])
        sessions = ", ".join(sorted({item["session"] for item in rows}))
        fano = noise_report.get("fano_factor")
        table.append(row("compact median noise-corrected R2", published("compact_median_r2").value,
                         float(np.nanmedian(approximate)), "approximate",
                         f"{NOISE_CORRECTED_LABEL}{'' if fano is None else f', F = {fano:.3f}'}; "
                         f"{validated_error_text(noise_report)}; sessions {sessions}; raw repeats of the test "
                         "sessions are not released, so the exact value is not computable"))
        table.append(row("compact median noise-corrected R2, plain Poisson", published("compact_median_r2").value,
                         float(np.nanmedian(poisson)), "approximate",
                         f"{POISSON_LABEL}: variance = mean count, the session table's repeats; reads high "
                         "(see the validation below)"))
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
                             "approximate", NOISE_CORRECTED_LABEL))
    return table


def format_noise_model(noise_report: dict) -> str:
    """The text printed under the table on the noise model and its validation.

    Args:
        noise_report: :func:`classes.scoring.noise_validation.validate_noise_model`.
    """
    loso = noise_report.get("leave_one_session_out")
    if not loso:
        return "Noise model: no session with raw repeats in this release; F cannot be calibrated or validated."
    sessions = list(loso)
    lines = ["Noise-corrected R2 approximations against the exact value, leave-one-session-out (approximate minus "
             "exact, per neuron, half-repeat stand-in model; F calibrated on the other session):",
             f"  {'estimator':96s}" + "".join(f"{session + ' median bias':>20s}{'p90 |error|':>13s}"
                                               for session in sessions)]
    for estimator in ESTIMATORS:
        mark = " (reported)" if estimator == noise_report["estimator"] else ""
        cells = "".join(f"{loso[session][estimator]['median_bias']:+20.4f}{loso[session][estimator]['p90_abs_error']:13.3f}"
                        for session in sessions)
        lines.append(f"  {ESTIMATOR_LABELS[estimator] + mark:96s}{cells}")
    lines.append(f"  F = {noise_report['fano_factor']:.3f}: median Fano factor (exact trial variance / mean count) over "
                 f"the neurons of {', '.join(noise_report['calibrated_on'])} (monkey PE), used for every test session.")
    lines.append(format_we_check(noise_report["monkey_we"]))
    return "\n".join(lines)


def format_we_check(check: dict) -> str:
    """Why 190923 (monkey WE) gets monkey PE's F (:func:`classes.scoring.noise_validation.monkey_we_check`)."""
    spread, sessions, pe_fano = check["we_count_spread_fano"], check["sessions"], check["pe_fano"]
    consistent = all(spread["p5"] <= value <= spread["p95"] for value in pe_fano.values())
    transferred_sd = max(entry["transferred"]["median_bias_sd"] for entry in sessions.values())
    spread_sd = min(entry["count_spread"]["median_bias_sd"] for entry in sessions.values())

    def biases(choice):
        return ", ".join(f"{entry[choice]['median_bias']:+.3f} (s.d. {entry[choice]['median_bias_sd']:.3f})"
                         for entry in sessions.values())

    low, high = check["we_count_range"]
    cvs = "/".join(f"{entry['inverse_count_cv']:.2f}" for entry in sessions.values())
    return (f"  190923 (monkey WE) gets F from monkey PE ({', '.join(f'{value:.2f}' for value in pe_fano.values())} in "
            f"{', '.join(pe_fano)}). Its own estimate from how the spread of its averages grows with 1/n (counts "
            f"{low}-{high}, cv of 1/n {check['we_inverse_count_cv']:.2f}) is F = {spread['median']:.2f} (90% bootstrap "
            f"interval {spread['p5']:.2f}-{spread['p95']:.2f}), {'consistent with' if consistent else 'unlike'} "
            f"monkey PE's. On {', '.join(sessions)} subsampled to a 190923-like count pattern (cv of 1/n "
            f"{cvs}), transferring F gives "
            f"median bias {biases('transferred')} over draws, the count-spread F {biases('count_spread')}: "
            + ("transferring F is the more precise." if transferred_sd < spread_sd
               else "the count-spread F is as precise here; 190923 still uses the transferred F."))


def format_poisson_checks(checks: list[dict]) -> str:
    """The text printed under the table on the Poisson-noise approximation.

    Args:
        checks: :func:`classes.scoring.performance.poisson_approximation_checks`.
    """
    if not checks:
        return "Poisson check: no session with raw repeats in this release; the approximation is unchecked."
    lines = ["Plain Poisson approximation checked on the sessions with raw repeats "
             "(exact = from the repeats, per-image counts; approx. = variance set to the mean count):"]
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
        rows: per-neuron dicts with ``session``, ``noise_corrected_r2``,
            ``pearson_r`` and, with an ensemble, ``ensemble_noise_corrected_r2``.
    """
    plt = pyplot()
    sessions = sorted({row["session"] for row in rows})
    if ensemble_available:
        figure, axis = plt.subplots(figsize=(5, 5))
        for session in sessions:
            chosen = [row for row in rows if row["session"] == session]
            axis.scatter([row["ensemble_noise_corrected_r2"] for row in chosen],
                         [row["noise_corrected_r2"] for row in chosen], s=10, label=session)
        axis.plot([0, 1], [0, 1], "k--", lw=1)
        axis.set_xlabel("ensemble: noise-corrected R2 (approx., F x mean noise)")
        axis.set_ylabel("compact: noise-corrected R2 (approx., F x mean noise)")
        axis.set_title("Fig. 1h")
        axis.legend(fontsize=8)
        figure.tight_layout()
        return figure
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    generator = np.random.default_rng(0)
    for index, session in enumerate(sessions):
        values = np.array([row["noise_corrected_r2"] for row in rows if row["session"] == session])
        axes[0].scatter(index + generator.uniform(-0.2, 0.2, len(values)), values, s=8)
        axes[0].plot([index - 0.3, index + 0.3], [np.nanmedian(values)] * 2, "k-", lw=2)
    axes[0].set_xticks(range(len(sessions)), sessions)
    axes[0].set_ylabel("noise-corrected R2 (APPROXIMATE: F x mean noise)")
    axes[0].set_title("compact models vs V4, held-out images\n(ensemble weights not released: Fig. 1h's ensemble axis not computable)", fontsize=9)
    pearson = np.array([row["pearson_r"] for row in rows])
    approximate = np.array([row["noise_corrected_r2"] for row in rows])
    axes[1].scatter(pearson**2, approximate, s=8)
    axes[1].plot([0, 1], [0, 1], "k--", lw=1)
    axes[1].set_xlabel("raw R2 (squared Pearson r, exact)")
    axes[1].set_ylabel("noise-corrected R2 (approx., F x mean noise)")
    axes[1].set_title("the noise correction per neuron", fontsize=9)
    figure.tight_layout()
    return figure

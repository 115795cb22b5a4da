"""Compact models against real V4 responses: Fig. 1h, Fig. 1i and its inset.

Every released compact model predicts the held-out half of its own test
session's images (the second half in file order; the first half fitted the
ensemble's linear mapping that the compact models were distilled from). Per
neuron it reports Pearson r and raw R2 against the repeat-averaged responses,
and a noise-corrected R2. The release holds no raw repeats of the four test
sessions, so the exact noise-corrected R2 (Pospisil & Bair 2021) is not
computable there; the script gives an APPROXIMATE one under a Poisson noise
model (trial variance = mean count, repeats from the session table), and
checks that approximation on the two sessions whose raw repeats are released
(201016, 210325). It also counts parameters (Fig. 1i) and convolutional
filters (inset; per layer as in Fig. 3a).

Command::

    python script4_compact_perf.py                 # everything, results/script4_compact_perf/
    python script4_compact_perf.py --sessions 190923 --neurons 0,1,2

Expected run time on a 2-core CPU: under 2 minutes (1 min 44 s measured)
once the images' decode cache exists (first run: add ~10 s to decode the zips and ~1 s to compile
the fast path's C kernel, classes/prediction/kernel.c).

Published numbers compared with (Cowley et al. 2023, Fig. 1h-i):
219 compact models; median 164 convolutional filters; ensemble about 60
million parameters, compact models about 5,000x fewer; compact models'
median noise-corrected R2 0.05 below the ensemble's 0.61; per-neuron R2 of
compact and ensemble models correlated at rho = 0.96. Fig. 1h needs the
ensemble's predictions (``--ensemble-dir``), which the release lacks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from classes.compact.choice import choose_test_models
from classes.compact.model import load_nums_filters
from classes.compact.model_size import compact_parameter_count, ensemble_parameter_count
from classes.compact.tools import count_convolutional_filters
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.responses import available_response_sessions
from classes.data.sessions import TEST_SESSIONS, held_out_indices
from classes.ensemble.predictions import load_ensemble_predictions
from classes.prediction import predict
from classes.prediction.stacked import ENGINES, resolve_engine
from classes.reporting.comparison import comparison_row
from classes.reporting.script_support import (
    format_timings,
    report_results,
    run_script,
    start_script,
)
from classes.runtime import outputs
from classes.scoring.performance import POISSON_LABEL, poisson_approximation_check, score_session

SCRIPT_NAME = "script4_compact_perf"
POISSON_CHECK_SESSIONS = ("201016", "210325")
PUBLISHED = {
    "num_models": 219,
    "median_filters": 164,
    "ensemble_parameters": "about 60 million",
    "compression": "about 5,000x",
    "ensemble_median_r2": 0.61,
    "compact_minus_ensemble": -0.05,
    "rho_compact_ensemble": 0.96,
}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", default=",".join(TEST_SESSIONS),
                        help="comma-separated test sessions (default: all four)")
    parser.add_argument("--neurons", default="all",
                        help="comma-separated 0-based neuron indices within each chosen session, or 'all'")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: 16 on the fast path, 64 on the keras path)")
    parser.add_argument("--path", choices=("fast", "keras"), default="fast",
                        help="'fast': stacked evaluation of many models at once (default); "
                        "'keras': load each .keras model and call it (the reference path)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="fast path only: 'kernel' (compiled C, AVX-512 CPUs), 'tensorflow', "
                        "or 'auto' (the kernel where it can run; default); same responses")
    parser.add_argument("--ensemble-dir", default=None,
                        help="folder with ensemble predictions ensemble_predictions_<session>.npy "
                        "(neurons x images) for Fig. 1h; the release lacks them")
    outputs.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    if arguments.batch_size is not None and arguments.batch_size < 1:
        parser.error(f"--batch-size must be positive, got {arguments.batch_size}")
    return arguments


def evaluate_sessions(models, arguments, data_root, timings):
    """Predicts and scores the held-out half of every session with images."""
    rows, notes = [], []
    present = set(available_image_sessions(data_root))
    for session in dict.fromkeys(identifier.session_id for identifier in models):
        session_models = [identifier for identifier in models if identifier.session_id == session]
        if session not in present:
            notes.append(
                f"session {session}: its images (data_V4_responses/images/images_{session}.zip) "
                f"are not in the release, so its {len(session_models)} models cannot be scored"
            )
            continue
        start = time.perf_counter()
        _, evaluation = held_out_indices(session)
        images = recenter_images(load_images(session, evaluation + 1, data_root=data_root))
        timings["load images"] += time.perf_counter() - start
        predictions = predict(
            session_models, images, engine="keras" if arguments.path == "keras" else arguments.engine,
            batch_size=arguments.batch_size, data_root=data_root, timings=timings, show_progress=True,
        )
        neurons = [identifier.neuron for identifier in session_models]
        scores = score_session(predictions, session, neurons=neurons, data_root=data_root)
        for index, identifier in enumerate(session_models):
            rows.append({
                "session": session,
                "neuron": identifier.neuron,
                "pearson_r": scores["pearson_r"][index],
                "raw_r2": scores["raw_r2"][index],
                "noise_corrected_r2_poisson": scores["noise_corrected_r2_poisson"][index],
                "snr_poisson": scores["snr_poisson"][index],
                "noise_corrected_r2_exact": scores["noise_corrected_r2_exact"][index],
                "_predictions": predictions[index],
            })
        if scores["exact_note"]:
            notes.append(f"session {session}: exact noise-corrected R2 not computable: {scores['exact_note']}")
    return rows, notes


def add_ensemble(rows, ensemble_dir, data_root):
    """Adds the ensemble's scores per neuron; returns the summary dict or None."""
    if ensemble_dir is None:
        return None
    for session in dict.fromkeys(row["session"] for row in rows):
        chosen = [row for row in rows if row["session"] == session]
        predictions = load_ensemble_predictions(ensemble_dir, session, data_root)
        neurons = [row["neuron"] for row in chosen]
        scores = score_session(predictions[neurons], session, neurons=neurons, data_root=data_root)
        for index, row in enumerate(chosen):
            row["ensemble_noise_corrected_r2_poisson"] = scores["noise_corrected_r2_poisson"][index]
            row["ensemble_pearson_r"] = scores["pearson_r"][index]
    compact = np.array([row["noise_corrected_r2_poisson"] for row in rows])
    ensemble = np.array([row["ensemble_noise_corrected_r2_poisson"] for row in rows])
    valid = np.isfinite(compact) & np.isfinite(ensemble)
    return {
        "ensemble_median_r2": float(np.median(ensemble[valid])),
        "compact_minus_ensemble": float(np.median(compact[valid]) - np.median(ensemble[valid])),
        "rho": float(np.corrcoef(compact[valid], ensemble[valid])[0, 1]),
    }


def comparison_rows(models, sizes, rows, ensemble_summary, notes) -> list[dict]:
    row = comparison_row
    nums_filters, parameters, filters = sizes["nums_filters"], sizes["parameters"], sizes["filters"]
    medians = np.median(nums_filters, axis=0)
    deep_ok = bool(np.all((medians[2:] >= 5) & (medians[2:] <= 10)))
    table = [
        row("compact models (chosen / released)", PUBLISHED["num_models"], len(models),
            "reproduced" if len(models) == PUBLISHED["num_models"] else "differs",
            "" if len(models) == PUBLISHED["num_models"] else "a subset was chosen with --sessions/--neurons"),
        row("median convolutional filters per model", PUBLISHED["median_filters"], float(np.median(filters)),
            "reproduced" if np.median(filters) == PUBLISHED["median_filters"] else "differs",
            "count = 2*K0 + K1 + K2 + K3 + K4 (layer 1's depthwise filters counted with the "
            f"pointwise filters); sum(K) gives {np.median(nums_filters.sum(1)):.0f}"),
        row("median filters, early layers 0-1", "about 50", f"{medians[0]:.0f}, {medians[1]:.0f}",
            "reproduced" if np.all(np.abs(medians[:2] - 50) <= 10) else "differs"),
        row("median filters, deep layers 2-4", "5-10", ", ".join(f"{value:.0f}" for value in medians[2:]),
            "reproduced" if deep_ok else "differs",
            "" if deep_ok else "layers 2 and 4 have medians below 5 in the released models"),
        row("ensemble parameters", PUBLISHED["ensemble_parameters"], f"{sizes['ensemble'] / 1e6:.1f} million",
            "reproduced",
            "from the release's ensemble_model_summary.txt: ResNet50 stage + 25 members' weights "
            "(the summary's 'Total params' per member also counts optimizer slots)"),
        row("compression (ensemble / median compact parameters)", PUBLISHED["compression"],
            f"{sizes['ensemble'] / np.median(parameters):,.0f}x", "reproduced"),
    ]
    approximate = np.array([item["noise_corrected_r2_poisson"] for item in rows])
    pearson = np.array([item["pearson_r"] for item in rows])
    scored_sessions = sorted({item["session"] for item in rows})
    table.append(row("neurons scored against V4 (held-out images)", 219, len(rows),
                     "reproduced" if len(rows) == 219 else "not computable",
                     "; ".join(note for note in notes if "images" in note)))
    if rows:
        table.append(row("compact median noise-corrected R2", "0.56 (0.61 - 0.05)",
                         float(np.nanmedian(approximate)), "approximate",
                         f"{POISSON_LABEL}; sessions {', '.join(scored_sessions)}; raw repeats of the "
                         "test sessions are not released, so the exact value is not computable"))
        table.append(row("compact median Pearson r (exact)", None, float(np.nanmedian(pearson)), "reproduced",
                         "against repeat-averaged held-out responses; no published counterpart"))
    if ensemble_summary is None:
        reason = ("ensemble weights (data_ensemble_model/ensemble_model_member<i>.keras) are not in "
                  "the release; pass --ensemble-dir with its predictions")
        table.append(row("ensemble median noise-corrected R2", PUBLISHED["ensemble_median_r2"], None, "not computable", reason))
        table.append(row("compact minus ensemble median R2", PUBLISHED["compact_minus_ensemble"], None, "not computable", reason))
        table.append(row("rho(compact R2, ensemble R2)", PUBLISHED["rho_compact_ensemble"], None, "not computable", reason))
    else:
        table.append(row("ensemble median noise-corrected R2", PUBLISHED["ensemble_median_r2"],
                         ensemble_summary["ensemble_median_r2"], "approximate", POISSON_LABEL))
        table.append(row("compact minus ensemble median R2", PUBLISHED["compact_minus_ensemble"],
                         ensemble_summary["compact_minus_ensemble"], "approximate", POISSON_LABEL))
        table.append(row("rho(compact R2, ensemble R2)", PUBLISHED["rho_compact_ensemble"],
                         ensemble_summary["rho"], "approximate", POISSON_LABEL))
    return table


def poisson_checks(data_root) -> list[dict]:
    checks = []
    present = set(available_response_sessions("raw", data_root))
    for session in POISSON_CHECK_SESSIONS:
        if session in present:
            checks.append(poisson_approximation_check(session, data_root))
    return checks


def format_poisson_checks(checks) -> str:
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


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    models = choose_test_models(arguments.sessions, arguments.neurons)
    timings = {"load images": 0.0, "load weights": 0.0, "predict": 0.0}
    nums_filters = np.array([load_nums_filters(identifier, data_root) for identifier in models])
    ensemble = ensemble_parameter_count(data_root)
    sizes = {
        "nums_filters": nums_filters,
        "parameters": compact_parameter_count(nums_filters),
        "filters": count_convolutional_filters(nums_filters),
        "ensemble": ensemble["ensemble"],
    }
    rows, notes = evaluate_sessions(models, arguments, data_root, timings)
    ensemble_summary = add_ensemble(rows, arguments.ensemble_dir, data_root)
    checks = poisson_checks(data_root)
    table = comparison_rows(models, sizes, rows, ensemble_summary, notes)

    index_of = {(identifier.session_id, identifier.neuron): position for position, identifier in enumerate(models)}
    per_neuron = []
    scored = {(row["session"], row["neuron"]): row for row in rows}
    for identifier in models:
        position = index_of[(identifier.session_id, identifier.neuron)]
        row = scored.get((identifier.session_id, identifier.neuron), {})
        entry = {"session": identifier.session_id, "neuron": identifier.neuron}
        entry.update({f"K{layer}": int(nums_filters[position, layer]) for layer in range(5)})
        entry["parameters"] = int(sizes["parameters"][position])
        entry["convolutional_filters"] = int(sizes["filters"][position])
        for key in ("pearson_r", "raw_r2", "noise_corrected_r2_poisson", "snr_poisson",
                    "noise_corrected_r2_exact", "ensemble_noise_corrected_r2_poisson"):
            entry[key] = row.get(key, np.nan)
        per_neuron.append(entry)
    outputs.write_csv(output_dir / "per_neuron.csv", per_neuron)

    from classes.figures.compact_perf import figure_performance, figure_sizes

    outputs.save_figure(figure_sizes(sizes["parameters"], sizes["filters"], nums_filters, ensemble["ensemble"]),
                        output_dir / "fig1i_model_sizes")
    if rows:
        outputs.save_figure(figure_performance(rows, ensemble_summary is not None),
                            output_dir / "fig1h_compact_performance")
    timings["total"] = time.perf_counter() - started
    summary = {
        "comparison": table,
        "notes": notes,
        "noise_corrected_r2_label": POISSON_LABEL,
        "poisson_checks": [{key: value for key, value in check.items() if not isinstance(value, np.ndarray)}
                           for check in checks],
        "ensemble_parameters": ensemble,
        "median_nums_filters": np.median(nums_filters, axis=0),
        "median_parameters": float(np.median(sizes["parameters"])),
        "evaluation_path": arguments.path if arguments.path == "keras"
        else f"fast ({resolve_engine(arguments.engine)} engine)",
        "timings_seconds": timings,
    }
    report_results(output_dir, summary, table,
                   f"{output_dir}/per_neuron.csv, summary.json, fig1i_model_sizes.(png|pdf)"
                   + (", fig1h_compact_performance.(png|pdf)" if rows else ""),
                   format_timings(timings), notes, extra_text=format_poisson_checks(checks))
    return summary


def main(argv=None) -> dict:
    return run_script(parse_arguments, run, argv)


if __name__ == "__main__":
    main()

"""Compact models against real V4 responses: Fig. 1h, Fig. 1i and its inset.

Every released compact model predicts the held-out half of its own test
session's images (the second half in file order; the first half fitted the
ensemble's linear mapping that the compact models were distilled from). Per
neuron it reports Pearson r and raw R2 against the repeat-averaged responses,
and a noise-corrected R2. The release holds no raw repeats of the four test
sessions, so the exact noise-corrected R2 (Pospisil & Bair 2021) is not
computable there; the script gives an APPROXIMATE one: trial variance = F x
mean count, with the Fano factor F calibrated on the two sessions whose raw
repeats are released (201016, 210325), and each image's repeat count
recovered from the averaged responses (classes/scoring/noise_model.py). It
prints that estimator's validated error (leave-one-session-out, and for
190923 a subsampling check) and the plain Poisson value beside it (variance =
mean count, repeats from the session table). It also counts parameters
(Fig. 1i) and convolutional filters (inset; per layer as in Fig. 3a). Its
held-out predictions stay in ``held_out_predictions.npz`` for script5, which
scores the same models on the same images
(:mod:`classes.scoring.held_out_record`).

Command::

    python script4_compact_perf.py                 # everything, results/script4_compact_perf/
    python script4_compact_perf.py --sessions 190923 --neurons 0,1,2

Expected run time on a 2-core CPU: about 35 s (32.9 s measured by benchmarks/bench_paper.py on 2026-12-05)
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

import time

import numpy as np

from classes.compact.architecture import load_nums_filters
from classes.compact.choice import choose_test_models
from classes.compact.model_size import compact_parameter_count, ensemble_parameter_count
from classes.compact.tools import count_convolutional_filters
from classes.data.images import available_image_sessions
from classes.data.responses import load_repeat_averaged
from classes.data.sessions import TEST_SESSIONS
from classes.ensemble.predictions import load_ensemble_predictions
from classes.figures.compact_perf import (
    comparison_rows,
    figure_performance,
    figure_sizes,
    format_noise_model,
    format_poisson_checks,
    per_neuron_rows,
)
from classes.prediction.stacked import ENGINES, resolve_engine
from classes.reporting import script_support
from classes.runtime import outputs
from classes.scoring.held_out import score_ensemble, score_models_on_held_out
from classes.scoring.held_out_record import FILE_NAME as HELD_OUT_FILE
from classes.scoring.held_out_record import save_held_out_predictions
from classes.scoring.noise_validation import validate_noise_model
from classes.scoring.performance import NOISE_CORRECTED_LABEL, poisson_approximation_checks


def measure_sizes(models, data_root) -> dict:
    """Filter counts, parameters and convolutional filters per model, and the ensemble's size."""
    nums_filters = np.array([load_nums_filters(identifier, data_root) for identifier in models])
    ensemble = ensemble_parameter_count(data_root)
    return {
        "nums_filters": nums_filters,
        "parameters": compact_parameter_count(nums_filters),
        "filters": count_convolutional_filters(nums_filters),
        "ensemble": ensemble["ensemble"],
        "ensemble_counts": ensemble,
    }


def check_inputs(models, ensemble_dir, data_root) -> dict | None:
    """Reads the responses and ``--ensemble-dir`` files of the scorable sessions before any prediction.

    Returns:
        The ensemble's predictions per session; None without ``--ensemble-dir``.
    """
    present = set(available_image_sessions(data_root))
    sessions = [session for session in dict.fromkeys(model.session_id for model in models) if session in present]
    for session in sessions:
        load_repeat_averaged(session, data_root)
    if ensemble_dir is None:
        return None
    return {session: load_ensemble_predictions(ensemble_dir, session, data_root) for session in sessions}


def compare_with_ensemble(rows, ensemble_predictions, data_root):
    """The ensemble scored on the same neurons (``--ensemble-dir``); None without it."""
    if ensemble_predictions is None:
        return None
    return score_ensemble(rows, ensemble_predictions, data_root)


def write_outputs(output_dir, models, sizes, rows, ensemble_summary) -> str:
    """Writes per_neuron.csv and the figures; returns what the ``wrote`` line names."""
    outputs.write_csv(output_dir / "per_neuron.csv", per_neuron_rows(models, sizes, rows))
    outputs.save_figure(figure_sizes(sizes["parameters"], sizes["filters"], sizes["nums_filters"],
                                     sizes["ensemble"]), output_dir / "fig1i_model_sizes")
    written = f"{output_dir}/per_neuron.csv, summary.json, fig1i_model_sizes.(png|pdf)"
    if rows:
        outputs.save_figure(figure_performance(rows, ensemble_summary is not None),
                            output_dir / "fig1h_compact_performance")
        written += ", fig1h_compact_performance.(png|pdf)"
    return written


def summarize(arguments, engine, sizes, table, notes, checks, noise_report, timings) -> dict:
    """What summary.json holds."""
    return {
        "comparison": table,
        "notes": notes,
        "noise_corrected_r2_label": NOISE_CORRECTED_LABEL,
        "noise_model": {key: value for key, value in noise_report.items() if key != "validation"},
        "noise_model_validation": noise_report.get("validation", {}),
        "poisson_checks": [{key: value for key, value in check.items() if not isinstance(value, np.ndarray)}
                           for check in checks],
        "ensemble_parameters": sizes["ensemble_counts"],
        "median_nums_filters": np.median(sizes["nums_filters"], axis=0),
        "median_parameters": float(np.median(sizes["parameters"])),
        "evaluation_path": arguments.path if arguments.path == "keras" else f"fast ({engine} engine)",
        "timings_seconds": timings,
    }


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = script_support.start_script(arguments, __file__)
    models = choose_test_models(arguments.sessions, arguments.neurons)
    timings = {"load images": 0.0, "load weights": 0.0, "predict": 0.0}
    sizes = measure_sizes(models, data_root)
    ensemble_predictions = check_inputs(models, arguments.ensemble_dir, data_root)
    engine = "keras" if arguments.path == "keras" else resolve_engine(arguments.engine)
    predictions = {}
    rows, notes = score_models_on_held_out(models, engine, arguments.batch_size, data_root, timings,
                                           show_progress=True, predictions_by_session=predictions)
    ensemble_summary = compare_with_ensemble(rows, ensemble_predictions, data_root)
    noise_report = validate_noise_model(data_root)
    checks = poisson_approximation_checks(data_root)
    table = comparison_rows(models, sizes, rows, ensemble_summary, notes, noise_report)
    written = write_outputs(output_dir, models, sizes, rows, ensemble_summary)
    save_held_out_predictions(output_dir, predictions, engine, data_root)
    written += f", {HELD_OUT_FILE} (for script5)"
    timings["total"] = time.perf_counter() - started
    summary = summarize(arguments, engine, sizes, table, notes, checks, noise_report, timings)
    script_support.report_results(output_dir, summary, table, written, script_support.format_timings(timings), notes,
                                  extra_text=format_noise_model(noise_report) + "\n" + format_poisson_checks(checks))
    return summary


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
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
    arguments = script_support.parse(parser, argv)
    if arguments.batch_size is not None and arguments.batch_size < 1:
        parser.error(f"--batch-size must be positive, got {arguments.batch_size}")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

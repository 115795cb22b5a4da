"""Shared compact models against real V4 responses: Fig. 3d-e.

Each of the 56 released shared compact models (7 teachers x K = 5, 10, 25,
35, 50, 75, 100, 200 shared filters in layers 0-2; SPEC section 3) predicts
the held-out half of every test session whose images are in the release
(190923, 201025, 210225; images 601-1200). Each session's neurons are taken
from the 219 outputs (order: 190923's 33, 201025's 89, 210225's 55,
211022's 42) and scored exactly as script4 scores the individual compact
models (:func:`classes.scoring.performance.score_session`): Pearson r and raw R2
against the repeat-averaged responses (exact), and script4's APPROXIMATE
noise-corrected R2 (trial variance = F x mean count with F calibrated on the
raw-repeat sessions, per-image repeat counts;
:func:`classes.scoring.performance.noise_corrected_r2_held_out`), because the
test sessions' raw repeats are not in the release. Session 211022's image zip is not in the release, so its
42 neurons cannot be scored.

The individual compact models of the same neurons, scored the same way, give
the reference line. The script also checks that the shared models' output
order matches the compact models: on held-out images of every session with
images (``--order-images-per-session`` from each), it correlates each shared
output with the matching compact model's output, and asks whether that
compact model is the best-correlated of all chosen ones.

The individual compact models' held-out predictions are script4's: taken
from ``held_out_predictions.npz`` in script4's results (``--script4-dir``;
by default ``script4_compact_perf`` beside ``--out``, where
``reproduce_paper.py`` and the defaults put it) when they were made with the
same engine and release for every model asked for; otherwise, and the
summary says why, predicted here.

Command::

    python script5_shared_compact_perf.py              # all 56 models, results/script5_shared_compact_perf/
    python script5_shared_compact_perf.py --teachers from_ensemble_model --filters 5,200

Expected run time on this 2-core CPU: about 1.3 minutes after script4 (78 s
measured by benchmarks/bench_paper.py on 2026-12-05, script4's predictions
reused; 100 s before the kernel's Winograd layer 0), about 2 minutes alone
(139 s before it); the 56 shared models and the 219
compact models both run through the compiled kernel of
classes/prediction/kernel.c (15.7 min before, with the shared models on the
TensorFlow graph).

Measured (177 neurons, mean noise-corrected R2, APPROXIMATE, F x mean count
as script4): the individual compact models 0.550 +/- 0.011;
from_ensemble_model rises from 0.471 (K=5) to 0.563 (K=200) and matches the
individual models at K=75; other teachers 0.42-0.45 at K=200 (direct fit on
V4 0.40, linear 0.15). (With the plain Poisson model, before: 0.565; 0.484
to 0.579.)
Order check: each from_ensemble_model output correlates best with its own
compact model for 219 of 219 neurons (median r 0.92-0.95).

Published numbers compared with: the paper plots Fig. 3d-e without numbers
in the text that SPEC records; the table reports the reproduced values with
no published counterpart, and the order check.
"""

from __future__ import annotations

import time
from pathlib import Path

from classes.compact.choice import choose_from, choose_test_models
from classes.compact.shared_model import NUMS_SHARED_FILTERS, TEACHERS
from classes.data.sessions import TEST_SESSIONS
from classes.figures.shared_perf import comparison_rows, figure_performance, format_summary_table
from classes.prediction.shared import DEFAULT_BATCH_SIZE
from classes.prediction.stacked import resolve_engine
from classes.reporting import script_support
from classes.runtime import outputs
from classes.scoring.held_out_record import FILE_NAME as HELD_OUT_FILE
from classes.scoring.held_out_record import load_held_out_predictions
from classes.scoring.performance import NOISE_CORRECTED_LABEL
from classes.scoring.shared_performance import (
    COMPACT_LABEL,
    load_evaluation_images,
    order_check_rows,
    score_compact_models,
    score_shared_models,
    scoreable_sessions,
    summary_table,
)


def script4_predictions(arguments, models, sessions, engine, data_root) -> tuple[dict | None, str]:
    """script4's held-out predictions of the compact models where they match, and a note saying which."""
    if arguments.script4_dir:
        folder = Path(arguments.script4_dir)
    elif arguments.out:
        folder = Path(arguments.out).parent / "script4_compact_perf"
    else:
        folder = outputs.default_results_dir("script4_compact_perf")
    reused, reason = load_held_out_predictions(folder, models, sessions, engine, data_root)
    if reused is None:
        note = f"predicted here ({reason})"
        print(f"compact models' held-out predictions: {note}")
        return None, note
    print(f"compact models' held-out predictions: taken from {folder / HELD_OUT_FILE}")
    # The summary names the folder only: reproduce_paper.py renames its run folder when it finishes.
    return reused, f"taken from script4's results ({folder.name}/{HELD_OUT_FILE})"


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = script_support.start_script(arguments, __file__)
    teachers = choose_from(arguments.teachers, TEACHERS, "teachers")
    filters = choose_from(arguments.filters, NUMS_SHARED_FILTERS, "filters", int)
    models = choose_test_models(arguments.sessions, arguments.neurons, release_order=True)
    pairs = [(teacher, count) for teacher in teachers for count in filters]
    timings = {"load images": 0.0, "shared models": 0.0, "load weights": 0.0, "predict": 0.0}
    scored_sessions, notes = scoreable_sessions(models, data_root)

    start = time.perf_counter()
    images = load_evaluation_images(scored_sessions, data_root, arguments.order_images_per_session)
    timings["load images"] = time.perf_counter() - start

    start = time.perf_counter()
    engine = "keras" if arguments.path == "keras" else resolve_engine("auto")
    reused, reuse_note = script4_predictions(arguments, models, list(images.held_out), engine, data_root)
    rows, compact_order = score_compact_models(models, images, data_root, engine, timings, reused)
    timings["compact models"] = time.perf_counter() - start

    start = time.perf_counter()
    shared_rows, order_results = score_shared_models(pairs, models, images, compact_order, data_root,
                                                     arguments.batch_size)
    rows += shared_rows
    timings["shared models"] = time.perf_counter() - start

    summary_rows = summary_table(rows, [(COMPACT_LABEL, None)] + pairs, order_results)
    write_results(output_dir, rows, summary_rows, order_check_rows(order_results, models), teachers)
    table = comparison_rows(summary_rows, order_results, teachers, filters, models, rows, notes)
    timings["total"] = time.perf_counter() - started
    summary = {"comparison": table, "summary": summary_rows, "notes": notes, "compact_prediction_path": arguments.path,
               "scored_sessions": scored_sessions, "noise_corrected_r2_label": NOISE_CORRECTED_LABEL,
               "order_images": int(len(images.order_images)), "compact_held_out_predictions": reuse_note,
               "compact_held_out_predictions_reused": reused is not None,
               "timings_seconds": timings}
    script_support.report_results(output_dir, summary, table,
                   f"{output_dir}/per_neuron.csv, summary.csv, order_check.csv, summary.json, "
                   "fig3de_shared_compact_performance.(png|pdf)",
                   script_support.format_timings(timings), notes, extra_text=format_summary_table(summary_rows))
    return summary


def write_results(output_dir, rows, summary_rows, order_rows, teachers) -> None:
    """Writes the per-neuron, summary and order-check tables and the figure."""
    outputs.write_csv(output_dir / "per_neuron.csv", rows)
    outputs.write_csv(output_dir / "summary.csv", summary_rows)
    outputs.write_csv(output_dir / "order_check.csv", order_rows)
    outputs.save_figures([(figure_performance(summary_rows, teachers), "fig3de_shared_compact_performance")],
                         output_dir)


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--teachers", default="all", help=f"comma-separated teachers or 'all' ({', '.join(TEACHERS)})")
    parser.add_argument("--filters", default="all",
                        help=f"comma-separated shared filter counts or 'all' ({', '.join(map(str, NUMS_SHARED_FILTERS))})")
    parser.add_argument("--sessions", default=",".join(TEST_SESSIONS), help="comma-separated test sessions")
    parser.add_argument("--neurons", default="all",
                        help="comma-separated 0-based neuron indices within each chosen session, or 'all'")
    parser.add_argument("--order-images-per-session", type=int, default=20,
                        help="held-out images per session with images used for the neuron-order check")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="images per graph call of the shared models")
    parser.add_argument("--script4-dir", default=None,
                        help="script4_compact_perf.py's results folder, whose held-out predictions of the compact "
                        "models are reused when they match (default: script4_compact_perf beside --out)")
    parser.add_argument("--path", choices=("fast", "keras"), default="fast",
                        help="how to predict the individual compact models: 'fast' (classes/prediction/stacked.py, "
                        "BN folded, models stacked) or 'keras' (each .keras model called; slow reference)")
    arguments = script_support.parse(parser, argv)
    if arguments.batch_size < 1 or arguments.order_images_per_session < 3:
        parser.error("--batch-size must be positive and --order-images-per-session at least 3")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

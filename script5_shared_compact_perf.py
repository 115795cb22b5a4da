"""Shared compact models against real V4 responses: Fig. 3d-e.

Each of the 56 released shared compact models (7 teachers x K = 5, 10, 25,
35, 50, 75, 100, 200 shared filters in layers 0-2; SPEC section 3) predicts
the held-out half of every test session whose images are in the release
(190923, 201025, 210225; images 601-1200). Each session's neurons are taken
from the 219 outputs (order: 190923's 33, 201025's 89, 210225's 55,
211022's 42) and scored exactly as script4 scores the individual compact
models (:func:`classes.scoring.performance.score_session`): Pearson r and raw R2
against the repeat-averaged responses (exact), and an APPROXIMATE
noise-corrected R2 under a Poisson noise model (trial variance = mean count,
repeats from the session table), because the test sessions' raw repeats are
not in the release. Session 211022's image zip is not in the release, so its
42 neurons cannot be scored.

The individual compact models of the same neurons, scored the same way, give
the reference line. The script also checks that the shared models' output
order matches the compact models: on held-out images of every session with
images (``--order-images-per-session`` from each), it correlates each shared
output with the matching compact model's output, and asks whether that
compact model is the best-correlated of all chosen ones.

Command::

    python script5_shared_compact_perf.py              # all 56 models, results/script5_shared_compact_perf/
    python script5_shared_compact_perf.py --teachers from_ensemble_model --filters 5,200

Expected run time on this 2-core CPU: about 15 minutes (measured 15.7 min
with other jobs sharing the machine: the 56 shared models on 1,800 images
9 min through classes/prediction/shared.py, BN folded and one traced graph;
the 219 compact models 6.4 min through classes/prediction/stacked.py).

Measured (177 neurons, mean noise-corrected R2, APPROXIMATE, Poisson): the
individual compact models 0.565 +/- 0.011; from_ensemble_model rises from
0.484 (K=5) to 0.579 (K=200) and matches the individual models at K=75;
other teachers 0.41-0.46 at K=200 (direct fit on V4 0.41, linear 0.15).
Order check: each from_ensemble_model output correlates best with its own
compact model for 219 of 219 neurons (median r 0.92-0.95).

Published numbers compared with: the paper plots Fig. 3d-e without numbers
in the text that SPEC records; the table reports the reproduced values with
no published counterpart, and the order check.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from classes.compact.choice import choose_from, choose_test_models
from classes.compact.model import all_model_ids
from classes.compact.shared_model import (
    NUMS_SHARED_FILTERS,
    TEACHERS,
    load_shared_compact_model,
)
from classes.data.images import available_image_sessions, load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import TEST_SESSIONS, held_out_indices
from classes.figures.shared_perf import (
    COMPACT_LABEL,
    METRICS,
    comparison_rows,
    figure_performance,
    format_summary_table,
    order_check,
    summary_table,
)
from classes.prediction import predict
from classes.prediction.folding import fold_shared_model
from classes.prediction.shared import DEFAULT_BATCH_SIZE, predict_shared_fast
from classes.reporting.script_support import (
    format_timings,
    report_results,
    run_script,
    start_script,
)
from classes.runtime import outputs
from classes.scoring.performance import POISSON_LABEL, score_session

SCRIPT_NAME = "script5_shared_compact_perf"


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    parser.add_argument("--path", choices=("fast", "keras"), default="fast",
                        help="how to predict the individual compact models: 'fast' (classes/prediction/stacked.py, "
                        "BN folded, models stacked) or 'keras' (each .keras model called; slow reference)")
    outputs.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    if arguments.batch_size < 1 or arguments.order_images_per_session < 3:
        parser.error("--batch-size must be positive and --order-images-per-session at least 3")
    return arguments


def load_session_images(sessions, data_root, order_count):
    """Held-out images per session and the order-check image set."""
    held_out, order_parts = {}, []
    for session in sessions:
        _, evaluation = held_out_indices(session)
        held_out[session] = recenter_images(load_images(session, evaluation + 1, data_root=data_root))
        order_parts.append(held_out[session][:order_count])
    return held_out, np.concatenate(order_parts)


def score_rows(predictions_by_session, models, data_root, label: dict) -> list[dict]:
    """Per-neuron rows for one predictor; predictions are (neurons, images) per session."""
    rows = []
    for session, predictions in predictions_by_session.items():
        session_models = [identifier for identifier in models if identifier.session_id == session]
        neurons = [identifier.neuron for identifier in session_models]
        scores = score_session(predictions, session, neurons=neurons, data_root=data_root)
        for index, neuron in enumerate(neurons):
            rows.append(label | {"session": session, "neuron": neuron}
                        | {metric: float(scores[metric][index]) for metric in METRICS})
    return rows


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    teachers = choose_from(arguments.teachers, TEACHERS, "teachers")
    filters = choose_from(arguments.filters, NUMS_SHARED_FILTERS, "filters", int)
    models = choose_test_models(arguments.sessions, arguments.neurons, release_order=True)
    path = arguments.path
    timings = {"load images": 0.0, "shared models": 0.0, "load weights": 0.0, "predict": 0.0}
    notes = []
    present = set(available_image_sessions(data_root))
    chosen_sessions = list(dict.fromkeys(identifier.session_id for identifier in models))
    scored_sessions = [session for session in chosen_sessions if session in present]
    for session in chosen_sessions:
        if session not in present:
            count = sum(identifier.session_id == session for identifier in models)
            notes.append(f"session {session}: its images (data_V4_responses/images/images_{session}.zip) are not "
                         f"in the release, so its {count} neurons cannot be scored (they are in the order check)")
    if not scored_sessions:
        raise ValueError("None of the chosen sessions has its image zip in the release; nothing can be scored.")
    notes.append(f"noise-corrected R2 is {POISSON_LABEL}: the test sessions' raw repeats are not in the release")

    start = time.perf_counter()
    held_out, order_images = load_session_images(scored_sessions, data_root, arguments.order_images_per_session)
    evaluation_images = np.concatenate([held_out[session] for session in scored_sessions])
    offsets = np.cumsum([0] + [len(held_out[session]) for session in scored_sessions])
    timings["load images"] = time.perf_counter() - start
    columns = np.array([all_model_ids().index(identifier) for identifier in models])

    # Individual compact models: own session's held-out half plus the order-check images.
    start = time.perf_counter()
    compact_order = np.empty((len(order_images), len(models)), np.float32)
    compact_predictions = {}
    for session in chosen_sessions:
        positions = [index for index, identifier in enumerate(models) if identifier.session_id == session]
        session_models = [models[index] for index in positions]
        images = np.concatenate([held_out[session], order_images]) if session in present else order_images
        # Each path uses its own measured default batch size.
        predictions = predict(session_models, images, engine="keras" if path == "keras" else "auto",
                              data_root=data_root, timings=timings, show_progress=True)
        compact_order[:, positions] = predictions[:, -len(order_images):].T
        if session in present:
            compact_predictions[session] = predictions[:, : len(held_out[session])]
    rows = score_rows(compact_predictions, models, data_root, {"teacher": COMPACT_LABEL, "num_filters": None})
    timings["compact models"] = time.perf_counter() - start

    # Shared compact models.
    start = time.perf_counter()
    order_rows = np.concatenate([offsets[index] + np.arange(min(arguments.order_images_per_session,
                                                                 len(held_out[session])))
                                 for index, session in enumerate(scored_sessions)])
    order_results = {}
    pairs = [(teacher, count) for teacher in teachers for count in filters]
    for teacher, count in tqdm(pairs, desc="shared compact models"):
        # Folded BN and one traced graph for all 56 models (classes/prediction/shared.py).
        folded = fold_shared_model(load_shared_compact_model(teacher, count, data_root))
        predictions = predict_shared_fast(folded, evaluation_images, arguments.batch_size)
        by_session = {}
        for index, session in enumerate(scored_sessions):
            session_columns = [columns[position] for position, identifier in enumerate(models)
                               if identifier.session_id == session]
            by_session[session] = predictions[offsets[index] : offsets[index + 1]][:, session_columns].T
        rows += score_rows(by_session, models, data_root, {"teacher": teacher, "num_filters": count})
        order_results[(teacher, count)] = order_check(predictions[order_rows][:, columns], compact_order)
    timings["shared models"] = time.perf_counter() - start

    summary_rows = summary_table(rows, [(COMPACT_LABEL, None)] + pairs, order_results)

    outputs.write_csv(output_dir / "per_neuron.csv", rows)
    outputs.write_csv(output_dir / "summary.csv", summary_rows)
    order_per_neuron = []
    for (teacher, count), result in order_results.items():
        for index, identifier in enumerate(models):
            order_per_neuron.append({"teacher": teacher, "num_filters": count, "session": identifier.session_id,
                                     "neuron": identifier.neuron, "correlation": result["diagonal"][index],
                                     "best_match": bool(result["matched"][index])})
    outputs.write_csv(output_dir / "order_check.csv", order_per_neuron)
    figure = figure_performance(summary_rows, teachers)
    outputs.save_figure(figure, output_dir / "fig3de_shared_compact_performance")
    table = comparison_rows(summary_rows, order_results, teachers, filters, models, rows, notes)
    timings["total"] = time.perf_counter() - started
    summary = {"comparison": table, "summary": summary_rows, "notes": notes, "compact_prediction_path": path,
               "scored_sessions": scored_sessions, "noise_corrected_r2_label": POISSON_LABEL,
               "order_images": int(len(order_images)), "timings_seconds": timings}
    report_results(output_dir, summary, table,
                   f"{output_dir}/per_neuron.csv, summary.csv, order_check.csv, summary.json, "
                   "fig3de_shared_compact_performance.(png|pdf)",
                   format_timings(timings), notes, extra_text=format_summary_table(summary_rows))
    return summary


def main(argv=None) -> dict:
    return run_script(parse_arguments, run, argv)


if __name__ == "__main__":
    main()

"""Stage 4: score the distilled, pruned and retrained models of chosen neurons.

For each neuron it compares, on images never used in training:

- student-vs-teacher R2 (squared Pearson correlation) on the test session's
  held-out half and on the pool's validation entries;
- against the V4 responses of the held-out half, labelled as in
  ``script4_compact_perf.py``: Pearson r, raw R2, and an APPROXIMATE
  noise-corrected R2 under a Poisson noise model (the release lacks the test
  sessions' raw repeats, so the exact r2_ER is not computable);
- filters per layer after pruning next to the released compact model of the
  same neuron (and its convolutional-filter count, 2*K0 + K1 + ... + K4).

The released compact model and the teacher are scored the same way, as
references.

Command::

    python -m code_distill_and_prune.evaluate --session 190923 --neuron 0

Writes ``--out/<session>_neuron<k>/evaluation.json``, ``--out/evaluation_summary.csv``
and ``--out/comparison.txt``. Expected run time on this 2-core CPU: about 3
minutes per neuron (measured 166 s with the machine shared by other jobs)
once the teacher's responses are cached (first time: add about a minute for
the teacher on 600 held-out images). Published numbers
compared with: the released compact models (nums_filters and their scores);
the paper reports per-layer filters of about 50 early and 5-10 deep (Fig. 3a).
"""

from __future__ import annotations

import time

import numpy as np

from classes.compact.model import load_compact_model
from classes.compact.tools import (
    count_convolutional_filters,
    nums_filters_of,
    predict_responses,
)
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import get_session
from classes.reporting.comparison import comparison_row, format_comparison_table
from classes.runtime import outputs
from classes.runtime.quiet_tensorflow import keras
from classes.scoring import metrics
from classes.scoring.performance import POISSON_LABEL, score_session
from classes.training.distillation import teacher_output_index
from classes.training.pruning import squared_correlation
from code_distill_and_prune.common import (
    TeacherCache,
    build_pools,
    chosen_models,
    held_out_image_numbers,
    neuron_folder,
    resolve_settings,
    run_stage,
)

STAGES = (
    ("distilled", "distill/student.keras", "distill"),
    ("pruned_before_retraining", "prune/pruned.keras", "prune"),
    ("retrained", "retrain/retrained.keras", "retrain"),
)
# Reported only when present: the teacher's own network pruned (prune --source teacher).
OPTIONAL_STAGES = (
    ("teacher_network_pruned", "prune_teacher/pruned.keras"),
    ("teacher_network_pruned_retrained", "retrain_teacher/retrained.keras"),
)


def v4_scores(predictions, identifier, count: int | None, data_root) -> dict:
    """Scores against the held-out half's V4 responses (first ``count`` images)."""
    predictions = np.asarray(predictions, np.float64)[None]
    if count is None:
        scores = score_session(predictions, identifier.session_id, neurons=[identifier.neuron],
                               data_root=data_root)
        return {key: float(scores[key][0]) for key in ("pearson_r", "raw_r2", "noise_corrected_r2_poisson")}
    # A subset of the held-out half (--evaluation-images): the same metrics
    # as classes.scoring.performance.score_session, on those images only.
    from classes.data.responses import load_held_out

    _, means, _ = load_held_out(identifier.session_id, data_root)
    means = means[[identifier.neuron], :count]
    noise = metrics.poisson_noise_variance(means)
    repeats = get_session(identifier.session_id).num_repeats
    return {
        "pearson_r": float(metrics.pearson_r(predictions, means)[0]),
        "raw_r2": float(metrics.raw_r2(predictions, means)[0]),
        "noise_corrected_r2_poisson": float(
            metrics.noise_corrected_r2_from_summary(predictions, means, noise, repeats)[0]
        ),
    }


def score_model(predict, images, teachers, identifier, count, data_root) -> dict:
    held_out = predict(images["held_out"])
    validation = predict(images["validation"])
    return {
        "r2_teacher_held_out": squared_correlation(held_out, teachers["held_out"]),
        "r2_teacher_validation": squared_correlation(validation, teachers["validation"]),
        **v4_scores(held_out, identifier, count, data_root),
    }


def evaluate_neuron(identifier, settings, pools, cache, data_root, output_dir, batch_size) -> dict:
    start = time.perf_counter()
    folder = neuron_folder(output_dir, identifier)
    count = settings["evaluation_images"]
    column = teacher_output_index(identifier.session_id, identifier.neuron)
    numbers = held_out_image_numbers(identifier.session_id, count)
    images = {
        "held_out": recenter_images(load_images(identifier.session_id, numbers, data_root=data_root)),
        "validation": pools[1].load(),
    }
    teachers = {
        "held_out": cache.held_out(identifier.session_id, count)[:, column],
        "validation": cache.validation(pools[1])[:, column],
    }
    record = {
        "model": str(identifier),
        "held_out_images": f"{identifier.session_id} images {numbers[0]}..{numbers[-1]} ({len(numbers)})",
        "validation_images": len(images["validation"]),
        "noise_corrected_r2_label": POISSON_LABEL,
        "teacher": {"nums_filters": [200, 200, 200, 100, 100],
                    **v4_scores(teachers["held_out"], identifier, count, data_root)},
        "models": {},
    }
    released = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
    optional = tuple((name, relative, None) for name, relative in OPTIONAL_STAGES
                     if (folder / relative).is_file())
    for name, relative, stage in STAGES + optional + (("released_compact_model", None, None),):
        if name == "released_compact_model":
            model = released
        elif (folder / relative).is_file():
            model = keras.models.load_model(folder / relative, compile=False)
        else:
            record["models"][name] = {"status": f"not available: run the {stage} stage first"}
            continue
        counts = nums_filters_of(model)
        record["models"][name] = {
            "nums_filters": counts,
            "convolutional_filters": count_convolutional_filters(counts),
            "parameters": int(model.count_params()),
            **score_model(lambda batch, model=model: predict_responses(model, batch, batch_size),
                          images, teachers, identifier, count, data_root),
        }
    record["seconds"] = time.perf_counter() - start
    outputs.write_json(folder / "evaluation.json", record)
    return record


def comparison_rows(record: dict) -> list[dict]:
    """Released compact model (published) against the pruned-and-retrained ones."""
    released = record["models"]["released_compact_model"]
    rows = []
    candidates = [("retrained", "student")]
    if "teacher_network_pruned_retrained" in record["models"]:
        candidates.append(("teacher_network_pruned_retrained", "teacher network"))
    elif "teacher_network_pruned" in record["models"]:
        candidates.append(("teacher_network_pruned", "teacher network, not retrained"))
    for stage, label in candidates:
        ours = record["models"].get(stage, {})
        name = f"{record['model']} ({label})"
        if "nums_filters" not in ours:
            rows.append(comparison_row(f"filters per layer, {name}", str(released["nums_filters"]),
                                               None, "not computable", "the retrain stage has not finished"))
            continue
        ratio = np.asarray(ours["nums_filters"]) / np.asarray(released["nums_filters"])
        total_ratio = ours["convolutional_filters"] / released["convolutional_filters"]
        if ours["nums_filters"] == released["nums_filters"]:
            status = "reproduced"
        elif np.all((ratio >= 0.5) & (ratio <= 2)) and 0.75 <= total_ratio <= 1.25:
            status = "approximate"
        else:
            status = "differs"
        difference = ours["noise_corrected_r2_poisson"] - released["noise_corrected_r2_poisson"]
        rows += [
            comparison_row(
                f"filters per layer, {name}", str(released["nums_filters"]), str(ours["nums_filters"]),
                status, "rule: reproduced if equal; approximate if every layer is within a factor 2 "
                "and the total within 25%; published column: the released compact model",
            ),
            comparison_row(
                f"convolutional filters, {name}", released["convolutional_filters"],
                ours["convolutional_filters"], status,
            ),
            comparison_row(
                f"noise-corrected R2 vs V4, {name}", released["noise_corrected_r2_poisson"],
                ours["noise_corrected_r2_poisson"], "approximate" if abs(difference) <= 0.05 else "differs",
                f"{POISSON_LABEL}; published column: the released compact model scored the same way",
            ),
        ]
    return rows


def run(arguments, data_root, output_dir) -> list[dict]:
    models = chosen_models(arguments)
    settings = resolve_settings(arguments, output_dir)
    pools = build_pools(settings, data_root)
    cache = TeacherCache(output_dir, data_root, arguments.batch_size)
    records, rows, table = [], [], []
    for identifier in models:
        record = evaluate_neuron(identifier, settings, pools, cache, data_root, output_dir, arguments.batch_size)
        records.append(record)
        for name, scores in record["models"].items():
            rows.append({"model": record["model"], "stage": name, **{
                key: scores.get(key) for key in (
                    "nums_filters", "convolutional_filters", "parameters", "r2_teacher_held_out",
                    "r2_teacher_validation", "pearson_r", "raw_r2", "noise_corrected_r2_poisson")}})
        rows.append({"model": record["model"], "stage": "teacher", "nums_filters": record["teacher"]["nums_filters"],
                     **{key: record["teacher"][key] for key in ("pearson_r", "raw_r2", "noise_corrected_r2_poisson")}})
        table.extend(comparison_rows(record))
    for row in rows:
        row["nums_filters"] = " ".join(str(count) for count in row["nums_filters"]) if row.get("nums_filters") else ""
    outputs.write_csv(output_dir / "evaluation_summary.csv", rows)
    text = format_comparison_table(table)
    outputs.write_atomically(output_dir / "comparison.txt", lambda path: open(path, "w").write(text + "\n"))
    for row in rows:
        print(f"{row['model']:>18} {row['stage']:>26}  filters {row['nums_filters']:>20}  "
              f"R2 teacher held-out {_format(row.get('r2_teacher_held_out'))}  "
              f"r {_format(row.get('pearson_r'))}  R2 nc {_format(row.get('noise_corrected_r2_poisson'))}")
    print(text)
    return records


def _format(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def main(argv=None):
    return run_stage(run, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    main()

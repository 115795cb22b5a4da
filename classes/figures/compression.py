"""Figure and tables of the compression pipeline (``python -m code_distill_and_prune.run``).

The learning curves of one neuron's run (R2 vs the teacher on the stream's
validation images against images seen, distillation then retraining), the
per-stage table of one neuron, and the one-row-per-model table of several
neurons for ``code_distill_and_prune/readme.md``. The numbers come from
:mod:`classes.training.compression_report`.
"""

from __future__ import annotations

from classes.runtime.outputs import pyplot

STAGE_LABELS = {"student": "distilled student", "pruned": "pruned, before retraining",
                "retrained": "pruned and retrained", "released": "released compact model", "teacher": "teacher"}


def figure_learning_curves(record: dict):
    """R2 vs the teacher (validation images) against images seen, per training stage.

    Retraining is drawn after distillation on the same axis (its images
    counted from the end of distillation); the released compact model's R2
    on the same images is a dashed line.

    Args:
        record: :func:`classes.training.compression_report.neuron_record`'s result.

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(6.4, 4.0))
    student = " ".join(map(str, record["models"].get("student", {}).get("nums_filters", [])))
    _draw_stages(axis, record, (f"distillation (student {student})", "retraining (pruned)"))
    released = record["models"].get("released", {}).get("r2_teacher_validation")
    if released is not None:
        axis.axhline(released, color="k", ls="--", lw=1, label="released compact model")
    axis.set_xlabel("training images seen")
    axis.set_ylabel("R2 vs teacher (stream validation images)")
    axis.set_ylim(0, 1)
    axis.legend(frameon=False, fontsize=8)
    axis.set_title(f"{record['model']}, teacher {record['teacher']['model']} ({record['teacher']['kind']})",
                   fontsize=9)
    return figure


def _draw_stages(axis, record: dict, labels: tuple, color=None) -> None:
    """Distillation's curve, then retraining's from where it ended (solid, then dotted when ``color`` is given)."""
    offset = 0
    for stage, label, style in zip(("distill", "retrain"), labels, ("-", ":"), strict=True):
        curve = record["learning_curves"].get(stage)
        if not curve:
            continue
        axis.plot([offset + point["images_seen"] for point in curve], [point["r2_validation"] for point in curve],
                  marker="o", ms=3, label=label, color=color, ls=style if color else "-")
        offset += curve[-1]["images_seen"]


def figure_learning_curves_of_runs(records: dict):
    """Every run's learning curves on one axis: distillation solid, retraining dotted after it.

    Args:
        records: key -> :func:`classes.training.compression_report.neuron_record`
            (``compression_results.json``).

    Returns:
        The matplotlib figure.
    """
    figure, axis = pyplot().subplots(figsize=(7.2, 4.4))
    colors = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (key, record) in enumerate(records.items()):
        _draw_stages(axis, record, (key, None), colors[index % len(colors)])
    axis.set_xlabel("training images seen (distillation, then retraining of the pruned model: dotted)")
    axis.set_ylabel("R2 vs teacher (stream validation images)")
    axis.set_ylim(0, 1)
    axis.legend(frameon=False, fontsize=8)
    teachers = sorted({record["teacher"]["model"] for record in records.values()})
    axis.set_title(f"{len(records)} runs, teacher {', '.join(teachers)}", fontsize=9)
    return figure


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_stage_table(record: dict) -> str:
    """One neuron's models (stages, released model, teacher) as a Markdown table."""
    lines = ["| model | filters per layer | conv. filters | R2 vs teacher (validation) | R2 vs teacher (held-out) "
             "| Pearson r vs V4 | noise-corr. R2 vs V4 (approx.) |", "|---|---|---|---|---|---|---|"]
    for name, scores in record["models"].items():
        filters = " ".join(str(count) for count in scores["nums_filters"]) if "nums_filters" in scores else "-"
        lines.append(f"| {STAGE_LABELS.get(name, name)} | {filters} | {scores.get('convolutional_filters', '-')} "
                     f"| {_number(scores.get('r2_teacher_validation'))} | {_number(scores.get('r2_teacher_held_out'))} "
                     f"| {_number(scores.get('pearson_r'))} | {_number(scores.get('noise_corrected_r2'))} |")
    return "\n".join(lines)


def format_results_table(records: dict) -> str:
    """Several neurons, one row each: the retrained model next to the released one, and the costs.

    Args:
        records: key -> :func:`classes.training.compression_report.neuron_record`.

    Returns:
        A Markdown table.
    """
    lines = ["| run | teacher | filters (retrained) | filters (released) | conv. filters (retrained / released) "
             "| R2 vs teacher, held-out (student / retrained) | Pearson r vs V4 (retrained / released) "
             "| nc-R2 vs V4 approx. (retrained / released / teacher) "
             "| images (distil + retrain) | CPU hours |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, record in records.items():
        models, costs = record["models"], record["costs"]
        student, retrained, released = (models.get(name, {}) for name in ("student", "retrained", "released"))
        teacher = models.get("teacher", {})
        images = [costs[stage]["images"] for stage in ("distill", "retrain") if costs.get(stage)]
        hours = sum(cost["cpu_seconds"] for cost in costs.values() if cost) / 3600
        lines.append(
            f"| {key} | {record['teacher']['model']} | {' '.join(map(str, retrained.get('nums_filters', [])))} "
            f"| {' '.join(map(str, released.get('nums_filters', [])))} "
            f"| {retrained.get('convolutional_filters', '-')} / {released.get('convolutional_filters', '-')} "
            f"| {_number(student.get('r2_teacher_held_out'))} / {_number(retrained.get('r2_teacher_held_out'))} "
            f"| {_number(retrained.get('pearson_r'))} / {_number(released.get('pearson_r'))} "
            f"| {_number(retrained.get('noise_corrected_r2'))} / {_number(released.get('noise_corrected_r2'))} "
            f"/ {_number(teacher.get('noise_corrected_r2'))} | {' + '.join(map(str, images))} | {hours:.2f} |")
    return "\n".join(lines)

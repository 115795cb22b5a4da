"""Distil, prune and retrain a compact model of one V4 neuron from a teacher (SPEC sections 2 and 6).

The paper's compression pipeline: a 100-filter student is trained on a
teacher's responses to an unbounded stream of augmented images
(:mod:`classes.data.image_stream`), with Adam 1e-4, MSE, batches of 64 and
smoothing after every chunk; it is pruned last layer first on held-out
images labelled by the teacher, then retrained; every stage is scored
against the teacher and against V4, next to the released compact model of
the same neuron. Teachers: ``compact``, the released compact model of the
neuron (a planted truth whose filter counts are known); ``shared``, the
released shared 200-filter model trained from the ensemble (its output for
the neuron), standing in for the paper's ensemble.

Commands::

    python -m code_distill_and_prune.run --session 190923 --neuron 0 --teacher compact --images 200000
    python -m code_distill_and_prune.run --session 201025 --neuron 2 --images 200000
    python -m code_distill_and_prune.run --session 190923 --neuron 0 --images 64 --block-size 32 \\
        --student-filters 8,6,4,4,3 --num-validation 32      # a minute-long trial
    python -m code_distill_and_prune.run --session 190923 --neuron 0 --teacher compact \\
        --student-weights OUT/student_weights.npz            # the student of a GPU run (gpu_distill.py)

Every stage resumes after an interruption (rerun the same command);
``--until`` stops after a stage. Expected run time on the 2-core CPU: see
``readme.md`` (dominated by distillation; the paper's 12M images per
neuron are out of reach here). Published numbers compared with: the
released compact model's filters per layer and its scores, computed the
same way.
"""

from __future__ import annotations

from pathlib import Path

from classes.compact.architecture import model_id
from classes.figures.compression import (
    figure_learning_curves_of_runs,
    format_results_table,
    format_stage_table,
)
from classes.reporting.script_support import entry_point, parse, script_parser, shown, start_script
from classes.runtime.outputs import save_figures, write_atomically, write_json
from classes.runtime.result_folder import KEEP_EVERYTHING
from classes.training.compression_report import collect_records, unscorable_note
from classes.training.student import LEARNING_RATE_SCHEDULES, STUDENT_FILTERS, parse_student_filters
from classes.training.teacher import KINDS
from classes.training.trainers import ENGINES
from code_distill_and_prune.stages import (
    STAGES,
    RunSettings,
    default_retrain_images,
    distill_stage,
    evaluate_stage,
    prepare_run,
    prune_stage,
    retrain_stage,
)

SCRIPT_NAME = "distill_and_prune"


def run(arguments) -> dict | None:
    """Runs the stages of one neuron up to ``--until``; returns the evaluation record (None if not reached)."""
    settings = run_settings(arguments)
    # --out is a workspace: every neuron's stages, resumed by later runs.
    data_root, output_dir = start_script(arguments, SCRIPT_NAME, keep=KEEP_EVERYTHING)
    identifier = model_id(arguments.session, arguments.neuron)
    neuron = prepare_run(settings, identifier, data_root, output_dir)
    note = unscorable_note(identifier.session_id, data_root)
    if note:
        print(f"note: {note}")
    distill = f"from {settings.student_weights}" if settings.student_weights else f"{settings.images} images"
    print(f"{identifier}: teacher {neuron.teacher.name}, student {list(settings.student_filters)} ({distill}), "
          f"retraining {settings.retrain_images} images; folder {shown(neuron.folder)}")
    stages = STAGES[: STAGES.index(arguments.until) + 1]
    states = {"distill": distill_stage(neuron)}
    if "prune" in stages:
        states["prune"] = prune_stage(neuron)
        print(f"pruned {list(settings.student_filters)} -> {states['prune']['nums_filters']}")
    if "retrain" in stages:
        states["retrain"] = retrain_stage(neuron)
    if "evaluate" not in stages:
        return None
    record = evaluate_stage(neuron, states)
    print(format_stage_table(record))
    write_summary(output_dir)
    return record


def write_summary(output_dir) -> None:
    """Every neuron's record under ``--out``: compression_results.json, a Markdown table, all learning curves."""
    records = collect_records(output_dir)
    write_json(output_dir / "compression_results.json", records)
    table = format_results_table(records)
    write_atomically(output_dir / "compression_results.md", lambda path: Path(path).write_text(table + "\n"))
    save_figures([(figure_learning_curves_of_runs(records), "learning_curves")], output_dir)
    print(f"\nwrote {shown(output_dir)} (compression_results.json, compression_results.md, learning_curves.png: "
          f"{len(records)} runs)")


def run_settings(arguments) -> RunSettings:
    """The run's settings from the command line, checked before anything is loaded.

    Raises:
        ValueError: bad filter counts, or a budget below one block.
    """
    retrain_images = arguments.retrain_images or default_retrain_images(arguments.images, arguments.block_size)
    settings = RunSettings(
        teacher=arguments.teacher, student_filters=tuple(parse_student_filters(arguments.student_filters)),
        images=arguments.images, retrain_images=retrain_images, chunk_images=arguments.chunk_images,
        engine=arguments.engine, learning_rate=arguments.learning_rate, batch_size=arguments.batch_size,
        block_size=arguments.block_size, num_validation=arguments.num_validation, seed=arguments.seed,
        student_weights=arguments.student_weights, learning_rate_schedule=arguments.learning_rate_schedule,
        retrain_learning_rate=arguments.retrain_learning_rate)
    for flag, value in (("--learning-rate", arguments.learning_rate),
                        ("--retrain-learning-rate", arguments.retrain_learning_rate)):
        if value is not None and not value > 0:
            raise ValueError(f"{flag} must be positive; got {value}.")
    if arguments.num_validation < 2:
        raise ValueError(f"--num-validation must be at least 2 (R2 needs two images); got {arguments.num_validation}.")
    for stage, flag in (("distill", "--images"), ("retrain", "--retrain-images")):
        try:
            settings.training(stage)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    return settings


def parse_arguments(argv=None):
    parser = script_parser(__doc__)
    parser.add_argument("--session", required=True, help="test session of the neuron (190923, 201025, 210225, 211022)")
    parser.add_argument("--neuron", type=int, required=True, help="0-based neuron index within the session")
    parser.add_argument("--teacher", choices=KINDS, default="shared",
                        help="compact: the neuron's released compact model (planted truth); shared: the released "
                        "shared 200-filter model from the ensemble (the paper's setting; default)")
    parser.add_argument("--images", type=int, default=200_000, help="distillation budget in images (paper: 12M)")
    parser.add_argument("--retrain-images", type=int, default=None,
                        help="retraining budget (default: half the distillation budget; paper: 12M)")
    parser.add_argument("--chunk-images", type=int, default=None,
                        help="images between smoothings, validations and checkpoints (default: the budget in "
                        "the paper's 24 chunks, whole blocks)")
    parser.add_argument("--student-filters", default=str(STUDENT_FILTERS),
                        help="filters per layer of the student: one count or K0,K1,K2,K3,K4 (default 100)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="training engine: kernel (compiled, CPU), keras (reference, GPU), auto")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam's (paper: 1e-4)")
    parser.add_argument("--retrain-learning-rate", type=float, default=None,
                        help="Adam's in retraining (default: --learning-rate)")
    parser.add_argument("--learning-rate-schedule", choices=LEARNING_RATE_SCHEDULES, default="constant",
                        help="constant (the paper's) or cosine: each chunk at the rate times (1 + cos(pi (c + 1/2) / C)) / 2, "
                        "for budgets far below the paper's 12M images")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (paper: 64)")
    parser.add_argument("--block-size", type=int, default=2000, help="images per stream block (paper: 2,000)")
    parser.add_argument("--num-validation", type=int, default=1000,
                        help="base images kept out of the stream: the learning curve's validation set; pruning "
                        "uses them and, below 2,000, their mirror images too (paper: 5,000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the stream, the image order and the student")
    parser.add_argument("--student-weights", default=None, metavar="PATH.npz",
                        help="take the distilled student from a GPU run (gpu_distill.py's student_weights.npz, its "
                        "learning_curve.json beside it) instead of distilling here; then prune, retrain, evaluate")
    parser.add_argument("--until", choices=STAGES, default="evaluate", help="stop after this stage")
    return parse(parser, argv)


main = entry_point(parse_arguments, run)

if __name__ == "__main__":
    main()

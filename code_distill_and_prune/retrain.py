"""Stage 3: retrain the pruned compact model on the teacher's responses.

The smaller network rebuilt by the prune stage starts from its kept weights
and is trained exactly like the student (Adam 1e-4, MSE, batch 64, smoothing
after each chunk) on the same training pool; the teacher's responses come
from the cache the distill stage filled, so blocks already seen cost no
teacher time.

Command::

    python -m code_distill_and_prune.retrain --session 190923 --neuron 0
    python -m code_distill_and_prune.retrain --session 190923 --neuron 0 --max-blocks 2 --block-size 1000

``--source teacher`` retrains the pruned teacher network of
``prune --source teacher`` instead (``retrain_teacher/``).

Resumable like distill (``--out/<session>_neuron<k>/retrain/``). Expected run
time on this 2-core CPU: the default (one pass over ~31,000 images) takes
hours; the pruned network is several times cheaper per image than the
100-filter student. Published numbers: none at this stage.
"""

from __future__ import annotations

from classes.runtime.quiet_tensorflow import keras
from code_distill_and_prune.common import neuron_folder, remove_stage_folder, run_stage
from code_distill_and_prune.training_stage import prepare_training_stage, train_neuron


def run(arguments, data_root, output_dir) -> list[dict]:
    """Retrains the pruned model of each chosen neuron.

    Returns:
        One :func:`~code_distill_and_prune.training_stage.train_neuron` summary per neuron.

    Raises:
        FileNotFoundError: a neuron has no pruned model yet.
    """
    stage = prepare_training_stage(arguments, data_root, output_dir, "retrain")
    summaries = []
    for identifier in stage.models:
        folder = neuron_folder(output_dir, identifier)
        suffix = "" if arguments.source == "student" else "_teacher"
        pruned_path = folder / f"prune{suffix}" / "pruned.keras"
        retrain_folder = folder / f"retrain{suffix}"
        if not pruned_path.is_file():
            raise FileNotFoundError(
                f"{identifier} has no pruned model ({pruned_path}); run "
                f"python -m code_distill_and_prune.prune --source {arguments.source} with the same --out first."
            )
        if arguments.restart:
            remove_stage_folder(retrain_folder)
        pruned = keras.models.load_model(pruned_path, compile=False)
        summaries.append(train_neuron(pruned, identifier, stage, retrain_folder, "retrained.keras", arguments,
                                      verb="retrain", status_prefix="retraining "))
    return summaries


def main(argv=None):
    return run_stage(run, __doc__.split("\n")[0], argv, training_stage="retrain",
                     source_help="retrain the pruned student (default) or the pruned teacher network")


if __name__ == "__main__":
    main()

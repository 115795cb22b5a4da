"""Stage 1: distil a 100-filter-per-layer compact model from the teacher.

The teacher is the released shared compact model trained from the ensemble
(200 filters); its output for the chosen neuron stands in for the ensemble's
(whose weights the release lacks). The student is trained on the pool of
:mod:`classes.data.image_pool` (every image of the release's zips, gaudy and
mirrored too, test sessions' held-out halves kept out) with Adam 1e-4, MSE,
batches of 64, smoothing layers 1-4 and the readout after every chunk.

Command::

    python -m code_distill_and_prune.distill --session 190923 --neuron 0
    python -m code_distill_and_prune.distill --session 190923 --neuron 0 --max-blocks 4 --block-size 1000 --blocks-per-chunk 2
    python -m code_distill_and_prune.distill --tiny          # CI-sized, about a minute

Resumable: a checkpoint is written after every chunk in
``--out/<session>_neuron<k>/distill/``; a rerun continues from the last one
and skips finished neurons. Expected run time on this 2-core CPU: measured
800 s for 2,000 images (two blocks of 1,000, one of them needing the
teacher) with the machine shared by other jobs (load about 12); the full
default (4 passes over ~32,000 images, ~128,000 images) would take
about 14 hours at that rate, so
``--max-blocks`` sets a budget. Published numbers: none at this stage (the
paper's student is the 100-filter model that pruning starts from).
"""

from __future__ import annotations

from classes.compact.model import build_compact_model
from classes.runtime.quiet_tensorflow import keras
from code_distill_and_prune.common import neuron_folder, remove_stage_folder, run_stage
from code_distill_and_prune.training_stage import prepare_training_stage, train_neuron


def run(arguments, data_root, output_dir) -> list[dict]:
    """Distils a student for each chosen neuron.

    Returns:
        One :func:`~code_distill_and_prune.training_stage.train_neuron` summary per neuron.
    """
    stage = prepare_training_stage(arguments, data_root, output_dir, "distill")
    print(f"pool: {len(stage.training_pool)} training entries; {stage.config}")
    summaries = []
    for identifier in stage.models:
        folder = neuron_folder(output_dir, identifier) / "distill"
        if arguments.restart:
            remove_stage_folder(folder)
        keras.utils.set_random_seed(stage.settings["seed"])
        student = build_compact_model([stage.settings["num_filters"]] * 5, name=identifier.stem + "_student")
        summaries.append(train_neuron(student, identifier, stage, folder, "student.keras", arguments,
                                      verb="distill"))
    return summaries


def main(argv=None):
    return run_stage(run, __doc__.split("\n")[0], argv, training_stage="distill")


if __name__ == "__main__":
    main()

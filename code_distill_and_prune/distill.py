"""Stage 1: distil a 100-filter-per-layer compact model from the teacher.

The teacher is the released shared compact model trained from the ensemble
(200 filters); its output for the chosen neuron stands in for the ensemble's
(whose weights the release lacks). The student is trained on the pool of
:mod:`classes.image_pool` (every image of the release's zips, gaudy and
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

import time

from classes.compact_model import build_compact_model
from classes.distillation import distill, teacher_output_index
from classes.quiet_tensorflow import keras
from classes.script_support import exit_on_user_error, start_script
from code_distill_and_prune.common import (
    SCRIPT_NAME,
    TeacherCache,
    build_pools,
    chosen_models,
    make_parser,
    neuron_folder,
    remove_stage_folder,
    resolve_settings,
    training_config,
)


def run(arguments, data_root, output_dir) -> list[dict]:
    models = chosen_models(arguments)
    settings = resolve_settings(arguments, output_dir)
    config = training_config(arguments, settings, "distill")
    training_pool, _ = build_pools(settings, data_root)
    print(f"pool: {len(training_pool)} training entries; {config}")
    cache = TeacherCache(output_dir, data_root, arguments.batch_size)
    summaries = []
    for identifier in models:
        folder = neuron_folder(output_dir, identifier) / "distill"
        if arguments.restart:
            remove_stage_folder(folder)
        keras.utils.set_random_seed(settings["seed"])
        student = build_compact_model([settings["num_filters"]] * 5, name=identifier.stem + "_student")
        start = time.perf_counter()
        _, state = distill(
            student, training_pool,
            cache.block_targets(training_pool, config, teacher_output_index(identifier.session_id, identifier.neuron)),
            config, folder, final_name="student.keras",
            stop_after_chunks=arguments.stop_after_chunks, description=f"distill {identifier}",
        )
        status = "finished" if state["finished"] else f"stopped after chunk {state['chunks_done']}"
        print(f"{identifier}: {status} ({state['chunks_done']}/{state['num_chunks']} chunks, "
              f"{state['images_seen']} images, {time.perf_counter() - start:.0f} s this call)")
        summaries.append({"model": str(identifier), **{key: state[key] for key in ("finished", "chunks_done", "images_seen")}})
    return summaries


def main(argv=None):
    arguments = make_parser(__doc__.split("\n")[0], training_stage="distill").parse_args(argv)
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    return exit_on_user_error(lambda: run(arguments, data_root, output_dir))


if __name__ == "__main__":
    main()

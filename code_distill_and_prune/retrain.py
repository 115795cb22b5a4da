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

import time

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
    config = training_config(arguments, settings, "retrain")
    training_pool, _ = build_pools(settings, data_root)
    cache = TeacherCache(output_dir, data_root, arguments.batch_size)
    summaries = []
    for identifier in models:
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
        start = time.perf_counter()
        _, state = distill(
            pruned, training_pool,
            cache.block_targets(training_pool, config, teacher_output_index(identifier.session_id, identifier.neuron)),
            config, retrain_folder, final_name="retrained.keras",
            stop_after_chunks=arguments.stop_after_chunks, description=f"retrain {identifier}",
        )
        status = "finished" if state["finished"] else f"stopped after chunk {state['chunks_done']}"
        print(f"{identifier}: retraining {status} ({state['chunks_done']}/{state['num_chunks']} chunks, "
              f"{state['images_seen']} images, {time.perf_counter() - start:.0f} s this call)")
        summaries.append({"model": str(identifier), **{key: state[key] for key in ("finished", "chunks_done", "images_seen")}})
    return summaries


def main(argv=None):
    parser = make_parser(__doc__.split("\n")[0], training_stage="retrain")
    parser.add_argument("--source", choices=("student", "teacher"), default="student",
                        help="retrain the pruned student (default) or the pruned teacher network")
    arguments = parser.parse_args(argv)
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    return exit_on_user_error(lambda: run(arguments, data_root, output_dir))


if __name__ == "__main__":
    main()

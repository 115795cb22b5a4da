"""Stage 2: prune the distilled student to a compact model (SPEC section 6).

Last layer first: layer-4 filters are sorted by the s.d. over held-out
images of their readout-weighted contribution, and the weakest dropped while
the squared correlation of the remaining sum with the teacher stays above
0.9 x its unpruned value. Then layers 3, 2, 1, 0 through the next separable
layer: input filters sorted by the variance of their depthwise output times
the squared norm of their pointwise weights, and a binary search for the
largest set of weakest filters whose removal keeps the fraction of variance
of that next layer's pre-BN output above 0.9 (defined in
:mod:`classes.training.pruning`). At least 3 filters stay per layer. The smaller
network is rebuilt with the kept weights.

``--source teacher`` prunes instead the teacher's own network for the
neuron (its 200-200-200-100-100 trunk with the neuron's readout, see
:func:`classes.training.distillation.teacher_neuron_model`; written to ``prune_teacher/``):
a well-trained network, which shows what the pruning rule yields when the
student could not be trained long enough here. The paper pruned a
100-filter distilled student.

The held-out images are the pool's validation entries (the paper used 5,000
held-out images; here ``--num-validation`` base images x 3 variants, 1,500 by
default), never seen in training.

Command::

    python -m code_distill_and_prune.prune --session 190923 --neuron 0

Writes ``--out/<session>_neuron<k>/prune/pruned.keras`` and ``pruning.json``;
a rerun skips neurons already pruned (``--restart`` redoes them). Expected
run time on this 2-core CPU: a few minutes per neuron for 1,500 images (one
forward pass; the binary search reuses its sums). Published numbers compared
with (in the evaluate stage): the released compact model's filters per layer.
"""

from __future__ import annotations

import json
import time

import numpy as np

from classes.compact.model import save_compact_model
from classes.compact.tools import count_convolutional_filters, nums_filters_of
from classes.runtime import outputs
from classes.training.distillation import (
    load_checkpoint,
    load_teacher_model,
    teacher_neuron_model,
    teacher_output_index,
)
from classes.training.pruning import prune_compact_model
from code_distill_and_prune.common import (
    TeacherCache,
    build_pools,
    chosen_models,
    neuron_folder,
    remove_stage_folder,
    resolve_settings,
    run_stage,
)


def run(arguments, data_root, output_dir) -> list[dict]:
    models = chosen_models(arguments)
    settings = resolve_settings(arguments, output_dir)
    _, validation_pool = build_pools(settings, data_root)
    cache = TeacherCache(output_dir, data_root, arguments.batch_size)
    summaries = []
    for identifier in models:
        folder = neuron_folder(output_dir, identifier)
        distill_folder = folder / "distill"
        prune_folder = folder / ("prune" if arguments.source == "student" else "prune_teacher")
        column = teacher_output_index(identifier.session_id, identifier.neuron)
        if arguments.restart:
            remove_stage_folder(prune_folder)
        if (prune_folder / "pruning.json").is_file() and (prune_folder / "pruned.keras").is_file():
            record = json.loads((prune_folder / "pruning.json").read_text())
            print(f"{identifier}: already pruned to {record['nums_filters']}; skipping")
            summaries.append(record)
            continue
        if arguments.source == "teacher":
            student = teacher_neuron_model(load_teacher_model(data_root), column)
        else:
            state_path = distill_folder / "state.json"
            if not state_path.is_file() or not json.loads(state_path.read_text()).get("finished"):
                raise FileNotFoundError(
                    f"{identifier} has no finished distillation in {distill_folder}; run "
                    "python -m code_distill_and_prune.distill with the same --out first."
                )
            student = load_checkpoint(distill_folder, "student.keras")
        start = time.perf_counter()
        teacher = cache.validation(validation_pool)[:, column]
        images = validation_pool.load()
        pruned, result = prune_compact_model(student, images, teacher, show_progress=True)
        pruned.name = identifier.stem + "_pruned"
        save_compact_model(pruned, prune_folder / "pruned.keras", overwrite=True)
        record = {
            "model": str(identifier),
            "source": arguments.source,
            "unpruned_nums_filters": nums_filters_of(student),
            "nums_filters": result.nums_filters,
            "convolutional_filters": count_convolutional_filters(result.nums_filters),
            "kept": [indices.tolist() for indices in result.kept],
            "num_images": len(images),
            "seconds": time.perf_counter() - start,
            "layers": [_layer_record(details) for details in result.details],
        }
        outputs.write_json(prune_folder / "pruning.json", record)
        print(f"{identifier}: pruned {record['unpruned_nums_filters']} -> {result.nums_filters} "
              f"on {len(images)} held-out images in {record['seconds']:.0f} s")
        summaries.append(record)
    return summaries


def _layer_record(details: dict) -> dict:
    record = {key: value for key, value in details.items() if key not in ("order", "scores")}
    record["order_weakest_first"] = np.asarray(details["order"]).tolist()
    record["scores"] = np.asarray(details["scores"]).tolist()
    return record


def main(argv=None):
    return run_stage(run, __doc__.split("\n")[0], argv, restart_help="prune again even when done",
                     source_help="prune the distilled student (default) or the teacher's own network "
                     "for the neuron (written to prune_teacher/)")


if __name__ == "__main__":
    main()

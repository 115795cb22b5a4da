"""What the two training stages (distill, retrain) share: setup and one neuron's run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from classes.compact.model import ModelId
from classes.training.distillation import DistillationConfig, distill, teacher_output_index
from code_distill_and_prune.common import (
    TeacherCache,
    build_pools,
    chosen_models,
    resolve_settings,
    training_config,
)


class TrainingStage(NamedTuple):
    """What distill and retrain set up before their loop over neurons."""

    models: list[ModelId]
    settings: dict
    config: DistillationConfig
    training_pool: object
    cache: TeacherCache


def prepare_training_stage(arguments, data_root, output_dir: Path, stage: str) -> TrainingStage:
    """Neurons, pool settings, training budget, training pool and teacher cache.

    Args:
        arguments: the parsed arguments of a training stage.
        data_root: the release folder.
        output_dir: ``--out``.
        stage: ``"distill"`` or ``"retrain"`` (which training preset applies).

    Returns:
        A :class:`TrainingStage`.

    Raises:
        ValueError: bad ``--neuron`` or flags that contradict ``settings.json``.
    """
    models = chosen_models(arguments)
    settings = resolve_settings(arguments, output_dir)
    config = training_config(arguments, settings, stage)
    training_pool, _ = build_pools(settings, data_root)
    return TrainingStage(models, settings, config, training_pool,
                         TeacherCache(output_dir, data_root, arguments.batch_size))


def train_neuron(model, identifier: ModelId, stage: TrainingStage, folder: Path, final_name: str,
                 arguments, verb: str, status_prefix: str = "") -> dict:
    """Trains ``model`` on the teacher's output for one neuron, resumably.

    Args:
        model: the student (distill) or the pruned model (retrain).
        identifier: the neuron.
        stage: from :func:`prepare_training_stage`.
        folder: the stage's folder for this neuron (checkpoints, state).
        final_name: file name of the finished model in ``folder``.
        arguments: the parsed arguments (``--stop-after-chunks``).
        verb: the progress bar's label, e.g. ``"distill"``.
        status_prefix: words before the status in the printed line.

    Returns:
        ``{"model", "finished", "chunks_done", "images_seen"}``.
    """
    column = teacher_output_index(identifier.session_id, identifier.neuron)
    start = time.perf_counter()
    _, state = distill(
        model, stage.training_pool, stage.cache.block_targets(stage.training_pool, stage.config, column),
        stage.config, folder, final_name=final_name,
        stop_after_chunks=arguments.stop_after_chunks, description=f"{verb} {identifier}",
    )
    status = "finished" if state["finished"] else f"stopped after chunk {state['chunks_done']}"
    print(f"{identifier}: {status_prefix}{status} ({state['chunks_done']}/{state['num_chunks']} chunks, "
          f"{state['images_seen']} images, {time.perf_counter() - start:.0f} s this call)")
    return {"model": str(identifier), **{key: state[key] for key in ("finished", "chunks_done", "images_seen")}}

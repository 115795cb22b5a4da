"""The four stages of one neuron's run (distil, prune, retrain, evaluate), each resumable in its folder.

Layout under ``--out``::

    teacher_cache/                    the teacher's responses per stream block (shared by neurons and stages)
    <teacher>_<session>_neuron<k>/
        distill/   state.json, trainer_chunkNNNN.npz, student.keras (or, with --student-weights, the GPU
                   run's student and its learning curve in state.json)
        prune/     state.json (kept filters, criteria), pruned.keras
        retrain/   state.json, trainer_chunkNNNN.npz, retrained.keras
        evaluation.json, learning_curve.png/.pdf
    compression_results.json, compression_results.md   every neuron's record under --out
    learning_curves.png/.pdf          every neuron's learning curves in one figure

A stage whose folder holds a finished run with the same settings is
skipped; one with other settings is refused (one line naming the change).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from classes.compact.architecture import ModelId, load_weights_npz, nums_filters_from_weights
from classes.compact.model import model_from_weights, save_compact_model
from classes.data.data_root import sha256_of_file
from classes.data.image_stream import ImageStream
from classes.figures.compression import figure_learning_curves
from classes.runtime.keras_files import load_keras_file
from classes.runtime.outputs import save_figures, write_json
from classes.training.checkpoints import RunFolder
from classes.training.compression_report import EVALUATION_FILE, neuron_record, score_models
from classes.training.distillation import initial_student_weights
from classes.training.pruning import prune_compact_model
from classes.training.stream_distillation import (
    REMEDY,
    LabelledStream,
    StreamTraining,
    pruning_set,
    train_on_stream,
)
from classes.training.teacher import Teacher, TeacherCache
from classes.training.trainers import make_trainer

STAGES = ("distill", "prune", "retrain", "evaluate")
MIN_PRUNING_IMAGES = 2000  # the paper pruned on 5,000 held-out images
RETRAIN_FRACTION = 0.5  # default retraining budget, of the distillation budget


@dataclass(frozen=True)
class RunSettings:
    """The command line's settings of one run (see ``run.py --help``)."""

    teacher: str
    student_filters: tuple
    images: int
    retrain_images: int
    chunk_images: int | None
    engine: str
    learning_rate: float
    batch_size: int
    block_size: int
    num_validation: int
    seed: int
    student_weights: str | None = None  # a GPU run's student_weights.npz, taken instead of distilling
    learning_rate_schedule: str = "constant"
    retrain_learning_rate: float | None = None  # None: learning_rate

    def stage_learning_rate(self, stage: str) -> float:
        """Adam's learning rate in ``"distill"`` or ``"retrain"``."""
        if stage == "retrain" and self.retrain_learning_rate is not None:
            return self.retrain_learning_rate
        return self.learning_rate

    def training(self, stage: str) -> StreamTraining:
        """The stream training of ``"distill"`` or ``"retrain"`` (checks the budget against a block)."""
        images = self.images if stage == "distill" else self.retrain_images
        training = StreamTraining(num_images=images, chunk_images=self.chunk_images, seed=self.seed,
                                  batch_size=self.batch_size, learning_rate_schedule=self.learning_rate_schedule)
        training.chunks(self.block_size)
        return training


def default_retrain_images(images: int, block_size: int) -> int:
    """:data:`RETRAIN_FRACTION` of the distillation budget, in whole blocks, at least one."""
    return max(1, round(images * RETRAIN_FRACTION / block_size)) * block_size


@dataclass
class NeuronRun:
    """What the stages of one neuron share."""

    identifier: ModelId
    settings: RunSettings
    teacher: Teacher
    source: LabelledStream
    folder: Path
    data_root: Path

    def stage_folder(self, stage: str) -> Path:
        return self.folder / stage


def prepare_run(settings: RunSettings, identifier: ModelId, data_root, output_dir) -> NeuronRun:
    """The teacher, the labelled stream and the neuron's folder.

    Raises:
        ValueError, FileNotFoundError: a missing or corrupt teacher, or a
            neuron the teacher lacks.
    """
    teacher = Teacher(settings.teacher, identifier if settings.teacher == "compact" else None, data_root=data_root)
    column = teacher.column(identifier.session_id, identifier.neuron)
    stream = ImageStream(seed=settings.seed, block_size=settings.block_size, data_root=data_root,
                         num_validation=settings.num_validation)
    source = LabelledStream(stream, TeacherCache(Path(output_dir) / "teacher_cache", teacher, stream), column)
    folder = Path(output_dir) / f"{settings.teacher}_{identifier.session_id}_neuron{identifier.neuron}"
    return NeuronRun(identifier, settings, teacher, source, folder, Path(data_root))


def _train(run: NeuronRun, stage: str, weights, final_name: str, settings: dict) -> dict:
    learning_rate = run.settings.stage_learning_rate(stage)
    trainer = make_trainer(weights, run.settings.engine, learning_rate, run.settings.batch_size)
    settings = {"learning_rate": learning_rate, **settings}
    return train_on_stream(trainer, run.source, run.settings.training(stage), run.stage_folder(stage), final_name,
                           settings=settings, description=f"{stage} {run.identifier}")


def distill_stage(run: NeuronRun) -> dict:
    """Distils a student with ``student_filters`` per layer from the teacher (or imports one); returns its state."""
    if run.settings.student_weights is not None:
        return import_gpu_student(run, Path(run.settings.student_weights))
    weights = initial_student_weights(list(run.settings.student_filters), run.settings.seed)
    return _train(run, "distill", weights, "student.keras", {})


def read_gpu_run(run: NeuronRun, path: Path) -> tuple[list, dict, Path]:
    """A GPU run's student (``gpu_distill.py``'s ``student_weights.npz``) and ``learning_curve.json``, checked.

    Returns:
        ``(weights, the learning-curve record, its path)``.

    Raises:
        ValueError: a student of other filter counts than ``--student-filters``,
            one distilled from another teacher, or validated on other images
            (``--seed``, ``--num-validation``).
        FileNotFoundError: a missing weights or learning-curve file.
    """
    from code_distill_and_prune.gpu_distill import (
        CURVE_FILE,  # PyTorch's modules: only when importing
    )

    weights = load_weights_npz(path)
    counts, expected = nums_filters_from_weights(weights), list(run.settings.student_filters)
    if counts != expected:
        raise ValueError(f"--student-weights {path} holds a student with filters {counts}; this run's student "
                         f"has {expected} (--student-filters).")
    curve_path = path.parent / CURVE_FILE
    if not curve_path.is_file():
        raise FileNotFoundError(f"--student-weights: no {CURVE_FILE} beside {path} (gpu_distill.py writes both).")
    gpu_run = json.loads(curve_path.read_text())
    theirs, mine = gpu_run["teacher"], run.teacher.describe()
    if [theirs.get(key) for key in ("kind", "model", "weight_sha256")] != [
            mine[key] for key in ("kind", "model", "weight_sha256")]:
        raise ValueError(f"--student-weights {path} was distilled from teacher {theirs.get('model')} "
                         f"({theirs.get('kind')}); this run's teacher is {mine['model']} ({mine['kind']}).")
    stream = gpu_run["stream"]
    if (stream.get("seed"), stream.get("num_validation")) != (run.settings.seed, run.settings.num_validation):
        raise ValueError(f"--student-weights {path}: its learning curve's validation images (seed {stream.get('seed')}, "
                         f"{stream.get('num_validation')} images) are not this run's (seed {run.settings.seed}, "
                         f"{run.settings.num_validation}); pass --seed {stream.get('seed')} --num-validation "
                         f"{stream.get('num_validation')}.")
    return weights, gpu_run, curve_path


def import_gpu_student(run: NeuronRun, path: Path) -> dict:
    """The distillation stage from a GPU run (``gpu_distill.py``): its weights and learning curve, not trained here.

    Args:
        path: the run's ``student_weights.npz``; its ``learning_curve.json``
            lies beside it (checked by :func:`read_gpu_run`).

    Returns:
        The stage's state, as a trained one's (learning curve, images,
        seconds, CPU seconds of the run's processes) plus ``source`` "gpu"
        and ``gpu_run`` (its teacher, stream, settings and device).

    Raises:
        ValueError: see :func:`read_gpu_run`; or the stage's folder holds another run.
        FileNotFoundError: a missing weights or learning-curve file.
    """
    weights, gpu_run, curve_path = read_gpu_run(run, path)
    folder = RunFolder(run.stage_folder("distill"), (), remedy=REMEDY)
    settings = {"student_weights_sha256": sha256_of_file(path), "learning_curve_sha256": sha256_of_file(curve_path)}
    state = folder.read_state()
    if state is not None:
        folder.check_settings(state, settings)
        return state
    save_compact_model(model_from_weights(weights, "student"), folder.path / "student.keras", overwrite=True)
    state = {**settings, "source": "gpu", "student_weights": str(path), "finished": True,
             "images_seen": gpu_run["images_seen"], "seconds": gpu_run["seconds"], "cpu_seconds": gpu_run["cpu_seconds"],
             "learning_curve": gpu_run["learning_curve"],
             "gpu_run": {key: gpu_run.get(key) for key in ("teacher", "stream", "settings", "environment", "stopped_by")}}
    folder.commit(state, ["student.keras"])
    return state


def prune_stage(run: NeuronRun) -> dict:
    """Prunes the distilled student (SPEC section 6) on held-out images; returns the pruning state."""
    student_path = run.stage_folder("distill") / "student.keras"
    folder = RunFolder(run.stage_folder("prune"), (), remedy=REMEDY)
    settings = {"student_sha256": sha256_of_file(student_path), "min_images": MIN_PRUNING_IMAGES}
    state = folder.read_state()
    if state is not None:
        folder.check_settings(state, settings)
        return state
    wall, cpu = time.perf_counter(), time.process_time()
    student = load_keras_file(student_path, "distilled student")
    images, targets, mirrored = pruning_set(run.source, MIN_PRUNING_IMAGES)
    pruned, result = prune_compact_model(student, images, targets, show_progress=True)
    pruned.name = f"{run.identifier.stem}_pruned"
    save_compact_model(pruned, folder.path / "pruned.keras", overwrite=True)
    state = {**settings, **result.to_json(), "unpruned_nums_filters": list(run.settings.student_filters),
             "num_images": len(images), "mirrored": mirrored,
             "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    folder.commit(state, ["pruned.keras"])
    return state


def retrain_stage(run: NeuronRun) -> dict:
    """Retrains the pruned model (fresh Adam, smoothing included); returns its state."""
    pruned_path = run.stage_folder("prune") / "pruned.keras"
    weights = load_keras_file(pruned_path, "pruned model").get_weights()
    return _train(run, "retrain", weights, "retrained.keras", {"pruned_sha256": sha256_of_file(pruned_path)})


def evaluate_stage(run: NeuronRun, states: dict) -> dict:
    """Scores every stage present and the released model; writes the record and the learning-curve figure.

    Args:
        states: stage name -> its state, for the stages run.
    """
    files = {"student": "distill/student.keras", "pruned": "prune/pruned.keras", "retrained": "retrain/retrained.keras"}
    models = {name: load_keras_file(run.folder / relative, name).get_weights()
              for name, relative in files.items() if (run.folder / relative).is_file()}
    models["released"] = run.identifier
    scores = score_models(models, run.teacher, run.source.column, run.identifier, run.source.validation,
                          run.data_root)
    record = neuron_record(run.identifier, run.teacher, scores, states)
    record["settings"] = {**asdict(run.settings), "student_filters": list(run.settings.student_filters)}
    distill = states.get("distill") or {}
    record["distill_source"] = distill.get("source", "cpu")
    if "gpu_run" in distill:
        record["gpu_distill"] = distill["gpu_run"]
    write_json(run.folder / EVALUATION_FILE, record)
    save_figures([(figure_learning_curves(record), "learning_curve")], run.folder)
    return record

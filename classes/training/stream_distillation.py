"""Training a compact model on the teacher's responses to the unbounded image stream.

The paper distilled each compact model in one pass over 12 million images
in blocks of 2,000, with Adam (1e-4), MSE and batches of 64, and after every
500,000-image chunk smoothed layers 1-4's depthwise kernels and the readout
maps (SPEC section 2; :func:`classes.training.student.smooth_weights`).
Here the images are the blocks of a :class:`classes.data.image_stream.ImageStream`,
labelled by a :class:`classes.training.teacher.TeacherCache` (one column of
the teacher's outputs: the neuron), and a trainer of
:mod:`classes.training.trainers` takes the steps:

- the budget is a whole number of blocks (``num_images`` rounded down);
  block ``b`` is the stream's block ``b``, its images visited in an order
  drawn from ``(seed, b)`` (:func:`block_order`), in batches;
- a chunk is a run of blocks (default: the budget in the paper's 24 chunks,
  at least one block each); after each chunk the weights are smoothed, the
  R2 (squared Pearson r) against the teacher on the stream's validation
  images is measured (:func:`classes.prediction.predict`, the fast engine)
  and appended to the learning curve with the images seen, the chunk's mean
  loss and the seconds (wall and CPU) used so far;
- after each chunk the trainer's whole state (weights, moving statistics,
  Adam's moments and step) is saved in a :class:`classes.training.checkpoints.RunFolder`
  whose ``state.json`` records the settings, the progress and the learning
  curve; a rerun resumes after the last saved chunk and, on the kernel
  engine, ends bit for bit where an uninterrupted run ends. A rerun with
  other settings is refused, naming what changed. The finished model is
  written as a ``.keras`` file beside the state.

Example::

    stream = ImageStream(seed=0, block_size=2000, num_validation=1000)
    teacher = Teacher("shared")
    source = LabelledStream(stream, TeacherCache("cache", teacher, stream), teacher.column("190923", 0))
    trainer = make_trainer(initial_student_weights([100] * 5), "auto", 1e-4, 64)
    state = train_on_stream(trainer, source, StreamTraining(num_images=200_000), "out/distill", "student.keras")
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.compact.model import model_from_weights, save_compact_model
from classes.data.image_stream import ImageStream
from classes.prediction import predict
from classes.training.checkpoints import RunFolder
from classes.training.pruning import squared_correlation
from classes.training.student import (
    SMOOTHING_SIGMA,
    chunk_plan,
    learning_rate_factor,
    positive_integer,
    smooth_weights,
)
from classes.training.teacher import TeacherCache
from classes.training.trainers import load_trainer_state, save_trainer_state

TRAINER_PREFIX = "trainer_chunk"
REMEDY = "delete that folder to start over, or choose another --out"


@dataclass(frozen=True)
class StreamTraining:
    """How a model is trained on the stream.

    Attributes:
        num_images: the image budget, rounded down to whole blocks.
        chunk_images: images between smoothings, validations and
            checkpoints, rounded to whole blocks; None for the budget split
            into the paper's 24 chunks.
        smoothing_sigma: Gaussian sigma in pixels (paper: 0.5); 0 turns
            smoothing off.
        seed: orders the images within each block.
        batch_size: images per step (paper: 64); at most the trainer's.
        learning_rate_schedule: ``"constant"`` (the paper's: the trainer's
            learning rate throughout) or ``"cosine"`` (see
            :func:`classes.training.student.learning_rate_factor`).

    Raises:
        ValueError: a non-positive budget, chunk or batch, a negative sigma
            or seed, an unknown schedule.
    """

    num_images: int
    chunk_images: int | None = None
    smoothing_sigma: float = SMOOTHING_SIGMA
    seed: int = 0
    batch_size: int = 64
    learning_rate_schedule: str = "constant"

    def __post_init__(self):
        positive_integer(self.num_images, "The image budget")
        positive_integer(self.batch_size, "batch_size")
        if self.chunk_images is not None:
            positive_integer(self.chunk_images, "chunk_images")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}.")
        if not self.smoothing_sigma >= 0:
            raise ValueError(f"The smoothing sigma must be >= 0; got {self.smoothing_sigma!r}.")
        learning_rate_factor(self.learning_rate_schedule, 0, 1)  # refuses an unknown schedule now, not mid-run

    def learning_rate_factor(self, chunk: int, num_chunks: int) -> float:
        """What chunk ``chunk`` (0-based) of ``num_chunks`` multiplies the trainer's learning rate by."""
        return learning_rate_factor(self.learning_rate_schedule, chunk, num_chunks)

    def chunks(self, block_size: int) -> list[range]:
        """The block indices of each chunk, in training order.

        Raises:
            ValueError: the budget is below one block.
        """
        num_blocks, per_chunk = chunk_plan(self.num_images, block_size, self.chunk_images)
        return [range(start, min(start + per_chunk, num_blocks)) for start in range(0, num_blocks, per_chunk)]


@dataclass(frozen=True)
class LabelledStream:
    """The stream's images and one neuron's column of the teacher's responses.

    Args:
        stream: the :class:`classes.data.image_stream.ImageStream`.
        cache: a :class:`classes.training.teacher.TeacherCache` over that stream.
        column: the neuron's row of the teacher's responses
            (:meth:`classes.training.teacher.Teacher.column`).
    """

    stream: ImageStream
    cache: TeacherCache
    column: int

    def block(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``index``: recentred images ``(block_size, 112, 112, 3)`` and targets ``(block_size,)``."""
        images, _ = self.stream.block(index)
        return images, self.cache.block_targets(index, images)[self.column]

    @cached_property
    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """The stream's validation images (never trained on) and their targets."""
        return self.stream.validation_images(), self.cache.validation_targets()[self.column]

    def settings(self) -> dict:
        """What identifies the labels: the stream's settings and the teacher's identity."""
        stream = self.stream
        teacher = {key: value for key, value in self.cache.teacher.describe().items() if key != "weight_file"}
        return {"stream": {"seed": stream.seed, "block_size": stream.block_size,
                           "num_validation": stream.num_validation, "fingerprint": stream.fingerprint()},
                "teacher": teacher, "column": int(self.column)}


def block_order(seed: int, block: int, block_size: int) -> np.ndarray:
    """The order in which block ``block``'s images are trained on: depends on ``(seed, block)`` only."""
    generator = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(block),)))
    return generator.permutation(block_size)


def train_block(trainer, images, targets, order, batch_size: int) -> list[float]:
    """One pass over a block in batches of ``batch_size`` (the last may be smaller).

    Returns:
        Each batch's loss (before its update).
    """
    losses = []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        losses.append(float(trainer.train_step(images[batch], targets[batch])))
    return losses


def validation_r2(weights, source: LabelledStream) -> float:
    """R2 (squared Pearson r) of a model against the teacher on the validation images."""
    images, targets = source.validation
    return squared_correlation(predict([weights], images)[0], targets)


def train_on_stream(trainer, source: LabelledStream, training: StreamTraining, folder,
                    final_name: str = "model.keras", settings: dict | None = None,
                    show_progress: bool = True, description: str = "training") -> dict:
    """Trains ``trainer``'s model on the labelled stream, resumably (see the module docstring).

    Args:
        trainer: a trainer of :func:`classes.training.trainers.make_trainer`
            holding the initial weights; on a resume its whole state is
            replaced by the saved one (a finished run returns at once and
            leaves it as given: the model is in ``folder / final_name``).
        source: the images and targets.
        training: budget, chunks, smoothing, order seed and batch size.
        folder: the run's folder (created on the first save).
        final_name: the finished model's ``.keras`` file in ``folder``.
        settings: further settings to record and compare on a resume (e.g.
            the learning rate the trainer was made with).
        show_progress: show a progress bar (images/s, loss, validation R2).
        description: the progress bar's label.

    Returns:
        The run's state: ``finished``, ``images_seen``, ``learning_curve``
        (dicts of ``chunk``, ``images_seen``, ``r2_validation``,
        ``mean_loss``, ``seconds``, ``cpu_seconds``), ``seconds`` and
        ``cpu_seconds`` in all, and the settings.

    Raises:
        ValueError: the folder holds a run with other settings (one line
            naming each change), an unreadable state, or a budget below one
            block.
    """
    run = RunFolder(folder, (TRAINER_PREFIX,), remedy=REMEDY)
    chunks = training.chunks(source.stream.block_size)
    recorded = {**source.settings(), **asdict(training), "blocks_per_chunk": len(chunks[0]),
                "initial_nums_filters": list(trainer.nums_filters), **(settings or {})}
    state = _start_or_resume(run, trainer, source, recorded, len(chunks))
    if state["finished"]:
        return state
    with tqdm(total=chunks[-1].stop * source.stream.block_size, initial=state["images_seen"], desc=description, unit="img", unit_scale=True,
              disable=not show_progress, dynamic_ncols=True) as progress:
        progress.set_postfix(r2=f"{state['learning_curve'][-1]['r2_validation']:.3f}")
        for chunk in chunks[state["chunks_done"]:]:
            _train_chunk(trainer, source, training, chunk, state, progress)
            _save_chunk(run, trainer, state, final_name)
    return state


def _start_or_resume(run: RunFolder, trainer, source: LabelledStream, settings: dict, num_chunks: int) -> dict:
    """The state to continue from: the folder's latest (trainer restored), or a fresh one.

    A fresh state's learning curve starts with the initial weights' R2.
    """
    state = run.read_state()
    if state is None:
        start = {"chunk": 0, "images_seen": 0, "r2_validation": validation_r2(trainer.get_weights(), source),
                 "mean_loss": None, "seconds": 0.0, "cpu_seconds": 0.0}
        return {**settings, "num_chunks": num_chunks, "chunks_done": 0, "images_seen": 0, "trainer_state": None,
                "finished": False, "learning_curve": [start], "seconds": 0.0, "cpu_seconds": 0.0}
    state.setdefault("learning_rate_schedule", "constant")  # runs saved before schedules existed were constant
    run.check_settings(state, settings)
    if state["trainer_state"] is not None:
        load_trainer_state(trainer, run.named_file(state["trainer_state"]))
    return state


def _train_chunk(trainer, source: LabelledStream, training: StreamTraining, blocks: range, state: dict,
                 progress) -> None:
    """Trains on a chunk's blocks, smooths, validates; advances ``state`` in place."""
    wall, cpu = time.perf_counter(), time.process_time()
    factor = training.learning_rate_factor(state["chunks_done"], state["num_chunks"])
    trainer.set_learning_rate_factor(factor)
    losses = []
    for block in blocks:
        images, targets = source.block(block)
        order = block_order(training.seed, block, len(images))
        losses += train_block(trainer, images, targets, order, training.batch_size)
        state["images_seen"] += len(images)
        progress.update(len(images))
        progress.set_postfix(loss=f"{np.mean(losses):.4g}", r2=f"{state['learning_curve'][-1]['r2_validation']:.3f}")
    if training.smoothing_sigma > 0:
        trainer.set_weights(smooth_weights(trainer.get_weights(), training.smoothing_sigma))
    r2 = validation_r2(trainer.get_weights(), source)
    state["seconds"] += time.perf_counter() - wall
    state["cpu_seconds"] += time.process_time() - cpu
    state["learning_curve"].append({"chunk": state["chunks_done"] + 1, "images_seen": state["images_seen"],
                                    "r2_validation": r2, "mean_loss": float(np.mean(losses)),
                                    "seconds": state["seconds"], "cpu_seconds": state["cpu_seconds"],
                                    "engine": trainer.engine, "learning_rate": trainer.learning_rate * factor})
    progress.set_postfix(loss=f"{np.mean(losses):.4g}", r2=f"{r2:.3f}")


def _save_chunk(run: RunFolder, trainer, state: dict, final_name: str) -> None:
    """Saves the trainer's state (and, after the last chunk, the model), then the state that names them."""
    chunk = state["chunks_done"] + 1
    name = f"{TRAINER_PREFIX}{chunk:04d}.npz"
    save_trainer_state(trainer, run.path / name)
    named = [name]
    if chunk == state["num_chunks"]:
        save_compact_model(model_from_weights(trainer.get_weights(), Path(final_name).stem),
                           run.path / final_name, overwrite=True)
        state["finished"] = True
        named.append(final_name)
    state.update(chunks_done=chunk, trainer_state=name)
    run.commit(state, named)


def pruning_set(source: LabelledStream, minimum: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Held-out images labelled by the teacher for pruning: the validation images, mirrored too if needed.

    The paper pruned on 5,000 held-out images. The stream's validation images
    are never trained on; when there are fewer than ``minimum``, their
    left-right mirror images (labelled by the teacher) are added, which
    doubles the count.

    Returns:
        ``(images, targets, mirrored)``: recentred ``(n, 112, 112, 3)``,
        ``(n,)``, and whether the mirror images were added.
    """
    images, targets = source.validation
    if len(images) >= minimum:
        return images, targets, False
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    mirrored_targets = source.cache.extra_targets("validation_mirrored", mirrored)[source.column]
    return np.concatenate([images, mirrored]), np.concatenate([targets, mirrored_targets]), True

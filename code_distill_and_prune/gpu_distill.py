"""Distil a 100-filter student from a released compact model with PyTorch on a GPU (issue 17, planted truth).

The distillation stage of ``python -m code_distill_and_prune.run --teacher compact`` at a far
larger image budget, on a machine with PyTorch and a GPU and no TensorFlow (nothing here imports
it). The paper's setting (SPEC section 2): batches of 64, Adam 1e-4 (Keras's update, beta
0.9/0.999, eps 1e-7), MSE, BatchNormalization epsilon 1e-3 and momentum 0.99
(:class:`classes.training.torch_trainer.TorchTrainer`, float32: TF32 only with ``--tf32``); after
every chunk of the budget (the paper: 12M images in 24 chunks of 500,000) the depthwise kernels of
layers 1-4 and the readout maps are smoothed (sigma 0.5 px,
:func:`classes.training.student.smooth_weights`), then R2 (squared Pearson r) of the student
(inference mode) vs the teacher on the stream's validation images is measured. The images are the
blocks of :class:`classes.data.image_stream.ImageStream` (seeded; the test sessions' held-out halves
and the validation images never in it) as whole pixel values (:meth:`ImageStream.raw_block`), made
by ``--workers`` CPU processes (:class:`classes.data.block_producer.ParallelBlocks`), recentred and
labelled on the GPU by the teacher, the exact Torch port of the released weights. A block's images
are independent draws, so its batches are taken in stream order.

Training stops after ``--images`` images or ``--seconds`` seconds since the process started,
whichever comes first; a chunk cut short by the time limit is smoothed, validated and saved like
the others (``partial`` in its learning-curve entry). After every chunk these files in ``--out``
are replaced whole, so a run killed at any moment keeps its last chunk:

- ``student_weights.npz``: the student's 36 arrays in Keras's ``get_weights()`` order
  (``weight00`` .. ``weight35``, float32, moving statistics included);
- ``learning_curve.json``: settings, teacher, device, and per chunk the images seen, R2, mean
  loss, seconds, training images per second and the fraction of time spent waiting for images;
- ``gpu_distill_log.txt``: the progress lines printed.

Commands::

    python -m code_distill_and_prune.gpu_distill --prepare .devicedata   # here (Keras): files to carry
    bash code_distill_and_prune/gpu_job.sh                               # there: 480 s, results in $OUT
    python -m code_distill_and_prune.run --session 190923 --neuron 0 --teacher compact \\
        --student-weights OUT/student_weights.npz                        # here: prune, retrain, evaluate

Expected run time: ``--seconds`` (start-up included). Published numbers compared with: none here;
the CPU pipeline's evaluation compares the result with the released model.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from classes.compact.architecture import nums_filters_from_weights, save_weights_npz
from classes.compact.torch_model import require_torch
from classes.data.block_producer import ParallelBlocks
from classes.data.image_stream import ImageStream
from classes.reporting.script_support import exit_on_user_error, script_parser
from classes.runtime.outputs import write_json
from classes.training import student
from classes.training.student import (
    LEARNING_RATE_SCHEDULES,
    SMOOTHING_SIGMA,
    STUDENT_FILTERS,
    learning_rate_factor,
    smooth_weights,
)
from classes.training.torch_trainer import TorchTrainer, set_tf32
from code_distill_and_prune.gpu_support import (
    Log,
    choose_device,
    device_lines,
    initial_weights,
    label,
    load_teacher,
    process_seconds,
    teacher_id,
    to_input,
    validation_r2,
)

PAPER_IMAGES = 12_000_000
WEIGHTS_FILE, CURVE_FILE, LOG_FILE = "student_weights.npz", "learning_curve.json", "gpu_distill_log.txt"
SAFETY_SECONDS = 2.0  # kept free before --seconds beyond a block and a chunk's end


@dataclass
class Counters:
    """Progress of a run; seconds are wall seconds."""

    images_seen: int = 0
    blocks_done: int = 0
    chunk_blocks: int = 0
    loss_sum: float = 0.0
    loss_batches: int = 0
    train_seconds: float = 0.0  # copying, labelling and training on blocks, until the device finished
    wait_seconds: float = 0.0  # waiting for the workers' next block
    block_seconds: float = 0.0  # the last block's training
    finish_seconds: float = 5.0  # a chunk's smoothing, validation and saving (measured after the first)
    training_started: float = 0.0  # process seconds when the first block was asked for


@dataclass
class Run:
    """What the steps of one run share."""

    arguments: argparse.Namespace
    out: Path
    log: Log
    blocks: ParallelBlocks
    device: object = None
    trainer: TorchTrainer | None = None
    teacher: object = None
    validation: tuple | None = None
    record: dict | None = None
    counters: Counters | None = None


def chunk_plan(arguments) -> tuple[int, int]:
    """``(blocks in the budget, blocks per chunk)``.

    Raises:
        ValueError: a budget below one block, or a non-positive chunk, batch or learning rate.
    """
    block_size = arguments.block_size
    if block_size < 1 or arguments.batch_size < 1 or not arguments.learning_rate > 0:
        raise ValueError("--block-size, --batch-size and --learning-rate must be positive.")
    if arguments.images < block_size:
        raise ValueError(f"--images {arguments.images} is below one block of {block_size} images.")
    if arguments.chunk_images is not None and arguments.chunk_images < 1:
        raise ValueError(f"--chunk-images must be positive; got {arguments.chunk_images}.")
    # The CPU pipeline's own schedule, so that a GPU run and a CPU run of the same budget chunk alike.
    return student.chunk_plan(arguments.images, block_size, arguments.chunk_images)


def start_blocks(stream: ImageStream, workers: int, log: Log) -> ParallelBlocks:
    """The worker pool (forked before CUDA starts); blocks made in this process if it cannot start."""
    try:
        blocks = ParallelBlocks(stream, first=0, num_workers=workers)
    except OSError as error:
        log(f"warning: no worker processes ({error}); making the images in the training process")
        return ParallelBlocks(stream, first=0, num_workers=0)
    log(f"{workers} worker processes make blocks of {stream.block_size} images")
    return blocks


def set_up(run: Run, stream: ImageStream, validation_images, total_blocks: int, per_chunk: int) -> None:
    """Device, teacher, student, validation targets and the record; logs what the run runs on."""
    torch, arguments = require_torch(), run.arguments
    run.device = choose_device(arguments.device)
    precision = set_tf32(arguments.tf32)
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks its fastest algorithms once
    environment = device_lines(run.device, precision)
    for line in environment:
        run.log(line)
    identifier = teacher_id(arguments.teacher)
    run.teacher, teacher_info = load_teacher(identifier, arguments.data_root, run.device)
    weights, initial = initial_weights(arguments)
    run.trainer = TorchTrainer(weights, arguments.learning_rate, run.device)
    images = torch.from_numpy(validation_images).permute(0, 3, 1, 2).contiguous().to(run.device)
    run.validation = (images, label(run.teacher, images).double().cpu().numpy())
    run.counters = Counters()
    run.record = {
        "script": "code_distill_and_prune/gpu_distill.py", "finished": False, "stopped_by": None,
        "teacher": teacher_info, "student": {"nums_filters": nums_filters_from_weights(weights), "initial": initial},
        "stream": {"seed": stream.seed, "block_size": stream.block_size, "num_validation": stream.num_validation,
                   "fingerprint": stream.fingerprint(), "images": "ImageStream.raw_block (whole pixel values)"},
        "settings": {"images": arguments.images, "seconds": arguments.seconds, "chunk_images": per_chunk * stream.block_size,
                     "blocks_per_chunk": per_chunk, "num_chunks": -(-total_blocks // per_chunk),
                     "batch_size": arguments.batch_size,
                     "learning_rate": arguments.learning_rate, "smoothing_sigma": arguments.smoothing_sigma,
                     "learning_rate_schedule": arguments.learning_rate_schedule,
                     "tf32": arguments.tf32, "workers": run.blocks.num_workers, "device": str(run.device)},
        "environment": environment, "images_seen": 0, "seconds": None, "cpu_seconds": None, "learning_curve": []}
    run.log(f"teacher {identifier} {teacher_info['nums_filters']}, student {run.trainer.nums_filters}, budget "
            f"{arguments.images:,} images or {arguments.seconds} s, chunks of {per_chunk * stream.block_size:,} images")


def train_next_block(run: Run) -> bool:
    """Takes the next block, labels it and trains on it; False when it did not come before the deadline."""
    torch, counters, arguments = require_torch(), run.counters, run.arguments
    started = time.perf_counter()
    left = arguments.seconds - process_seconds() - counters.finish_seconds - SAFETY_SECONDS
    block = run.blocks.take(None if math.isinf(left) else max(0.1, left))
    waited = time.perf_counter() - started
    counters.wait_seconds += waited
    if block is None:
        return False
    images = to_input(block.images, run.device)
    run.blocks.give_back(block)
    targets = label(run.teacher, images)
    size = arguments.batch_size
    losses = [run.trainer.train_step(images[start:start + size], targets[start:start + size])
              for start in range(0, len(images), size)]
    counters.loss_sum += float(torch.stack(losses).sum())  # waits for the device: the block's time is honest
    counters.loss_batches += len(losses)
    counters.block_seconds = time.perf_counter() - started - waited
    counters.train_seconds += counters.block_seconds
    counters.images_seen += len(images)
    counters.blocks_done += 1
    counters.chunk_blocks += 1
    return True


def end_chunk(run: Run, partial: bool) -> None:
    """Smooths (not before the first block), validates, appends to the learning curve, saves."""
    started, counters = time.perf_counter(), run.counters
    if counters.blocks_done and run.arguments.smoothing_sigma > 0:
        run.trainer.set_weights(smooth_weights(run.trainer.get_weights(), run.arguments.smoothing_sigma))
    r2 = validation_r2(run.trainer, run.validation)
    now = process_seconds()
    training = max(now - counters.training_started, 1e-9) if counters.blocks_done else None
    busy = counters.wait_seconds + counters.train_seconds
    curve = run.record["learning_curve"]
    curve.append({
        "chunk": len(curve), "images_seen": counters.images_seen, "r2_validation": r2,
        "mean_loss": counters.loss_sum / counters.loss_batches if counters.loss_batches else None,
        "seconds": now, "cpu_seconds": time.process_time() + run.blocks.cpu_seconds,
        "images_per_second": counters.images_seen / training if training else None,
        "data_wait_fraction": counters.wait_seconds / busy if busy else None,
        "partial": partial, "engine": f"torch {run.device.type}"})
    counters.loss_sum, counters.loss_batches, counters.chunk_blocks = 0.0, 0, 0
    settings = run.record["settings"]
    curve[-1]["learning_rate"] = run.trainer.learning_rate_now() if counters.blocks_done else None
    run.trainer.set_learning_rate_factor(  # the next chunk's
        learning_rate_factor(settings["learning_rate_schedule"], len(curve) - 1, settings["num_chunks"]))
    entry = curve[-1]
    run.log(f"chunk {entry['chunk']}: {entry['images_seen']:,} images, R2 vs teacher {_shown(r2)}, "
            f"mean loss {_shown(entry['mean_loss'], '.4g')}{' (partial chunk)' if partial else ''}")
    write_outputs(run)
    counters.finish_seconds = time.perf_counter() - started


def _shown(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def write_outputs(run: Run) -> None:
    """Replaces the weights, the learning curve and the log in ``--out``, each whole."""
    save_weights_npz(run.out / WEIGHTS_FILE, run.trainer.get_weights())
    latest = run.record["learning_curve"][-1]
    run.record.update(images_seen=run.counters.images_seen, seconds=latest["seconds"],
                      cpu_seconds=latest["cpu_seconds"])
    write_json(run.out / CURVE_FILE, run.record)
    run.log.save()


def progress_line(run: Run, window: dict) -> None:
    """Images/s, the workers' capacity and the share of time spent waiting for images, since the last line."""
    counters, blocks = run.counters, run.blocks
    now = time.perf_counter()
    images = counters.images_seen - window["images"]
    waited = counters.wait_seconds - window["wait"]
    busy = waited + counters.train_seconds - window["train"]
    handed = blocks.next_index * blocks.stream.block_size
    capacity = max(blocks.num_workers, 1) * handed / blocks.cpu_seconds if blocks.cpu_seconds else 0.0
    memory = ""
    if run.device.type == "cuda":
        memory = f" | GPU memory peak {require_torch().cuda.max_memory_allocated(run.device) / 2**30:.1f} GiB"
    run.log(f"{counters.images_seen:,} images | training {images / max(now - window['time'], 1e-9):,.0f} img/s | "
            f"workers' capacity {capacity:,.0f} img/s ({blocks.num_workers} processes) | waiting for images "
            f"{100 * waited / busy if busy else 0:.0f}% of the time | R2 {_shown(run.record['learning_curve'][-1]['r2_validation'])}"
            f"{memory}")
    window.update(images=counters.images_seen, wait=counters.wait_seconds, train=counters.train_seconds, time=now)


def train(run: Run, total_blocks: int, per_chunk: int) -> None:
    """Blocks until the image budget or the deadline; a chunk ends every ``per_chunk`` blocks."""
    counters, arguments = run.counters, run.arguments
    end_chunk(run, partial=False)  # chunk 0: the initial weights' R2
    counters.training_started = process_seconds()
    window = {"images": 0, "wait": 0.0, "train": 0.0, "time": time.perf_counter()}
    stopped_by = "images"
    while counters.blocks_done < total_blocks:
        left = arguments.seconds - process_seconds()
        if left < counters.block_seconds + counters.finish_seconds + SAFETY_SECONDS or not train_next_block(run):
            stopped_by = "seconds"
            break
        if counters.chunk_blocks == per_chunk:
            end_chunk(run, partial=False)
        if time.perf_counter() - window["time"] >= arguments.progress_seconds:
            progress_line(run, window)
    run.record.update(stopped_by=stopped_by, finished=True)
    if counters.chunk_blocks:
        end_chunk(run, partial=stopped_by == "seconds")
    else:
        write_outputs(run)
    run.log(f"done ({stopped_by}): {counters.images_seen:,} images in {process_seconds():.0f} s; "
            f"wrote {run.out / WEIGHTS_FILE}, {CURVE_FILE}, {LOG_FILE}")


def distil(arguments) -> Run:
    """The run (see the module docstring); returns it (its ``record`` is ``learning_curve.json``'s content)."""
    total_blocks, per_chunk = chunk_plan(arguments)
    initial_weights(arguments)  # bad initial weights fail before the images are read
    teacher_id(arguments.teacher)
    out = Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / LOG_FILE)
    torch = require_torch()
    log(f"torch {torch.__version__} (CUDA {torch.version.cuda}); reading the stream's base images")
    stream = ImageStream(seed=arguments.seed, block_size=arguments.block_size, data_root=arguments.data_root,
                         num_validation=arguments.num_validation)
    validation_images = stream.validation_images()  # reads the base images once: the forked workers share them
    run = Run(arguments, out, log, start_blocks(stream, arguments.workers, log))
    try:
        set_up(run, stream, validation_images, total_blocks, per_chunk)
        train(run, total_blocks, per_chunk)
    finally:
        run.blocks.close()
    return run


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers set; else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = script_parser(__doc__)
    add = parser.add_argument
    add("--prepare", metavar="DIR", default=None,
        help="here, with Keras: copy the release files a run needs and the Keras-initialised student into DIR "
        "(a git-ignored folder of the repository, e.g. .devicedata), then stop")
    add("--teacher", default="190923/0", help="the released compact model to distil (planted truth)")
    add("--student-weights", default=None,
        help=".npz of the student's 36 initial arrays (--prepare writes the Keras-initialised one); default: "
        "a seeded NumPy draw from Keras's initialisers")
    add("--student-filters", default=str(STUDENT_FILTERS), help="one count or K0,...,K4 (default 100)")
    add("--images", type=int, default=PAPER_IMAGES, help="image budget (paper: 12M)")
    add("--seconds", type=float, default=math.inf, help="wall-time budget from process start, start-up included")
    add("--chunk-images", type=int, default=None,
        help="images between smoothings and validations (default: --images / 24, whole blocks; paper: 500,000)")
    add("--batch-size", type=int, default=64, help="images per step (paper: 64)")
    add("--learning-rate", type=float, default=1e-4, help="Adam's (paper: 1e-4)")
    add("--learning-rate-schedule", choices=LEARNING_RATE_SCHEDULES, default="constant",
        help="constant (the paper's) or cosine over the --images budget's chunks (run.py's)")
    add("--smoothing-sigma", type=float, default=SMOOTHING_SIGMA, help="pixels (paper: 0.5); 0: no smoothing")
    add("--block-size", type=int, default=2000, help="images per stream block (paper: 2,000)")
    add("--num-validation", type=int, default=1000, help="validation base images, kept out of the stream (run.py's)")
    add("--seed", type=int, default=0, help="the stream's seed (run.py's), and the seeded initialisation's")
    add("--workers", type=int, default=max(1, usable_cpus() - 2),
        help="image-making processes (default: the CPUs this process may use, less 2; 0: the training process "
        "makes the images)")
    add("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: CUDA when PyTorch sees a GPU")
    add("--tf32", action="store_true", help="allow TF32 in convolutions and matrix products (default: off)")
    add("--progress-seconds", type=float, default=10.0, help="seconds between progress lines")
    add("--data-root", default=None, help="the release folder (default: found as usual)")
    add("--out", default="results/gpu_distill", help="output folder (its three files are replaced after each chunk)")
    return parser.parse_args(argv)


def run_command(arguments) -> dict | None:
    """``--prepare`` (with Keras), or the distillation."""
    if arguments.prepare is not None:
        from code_distill_and_prune.gpu_prepare import prepare  # imports Keras: only here

        prepare(Path(arguments.prepare), arguments)
        return None
    return distil(arguments).record


def main(argv=None) -> dict | None:
    arguments = parse_arguments(argv)
    return exit_on_user_error(lambda: run_command(arguments))


if __name__ == "__main__":
    main(sys.argv[1:])

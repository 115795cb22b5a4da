"""Benchmark: training a 100-filter student (the distillation of issue 17), Keras against the kernel.

Workload: the student of SPEC section 2 (five layers of 100 filters), the
paper's batch of 64 and Adam with learning rate 1e-4, on images of the
unbounded stream (:class:`classes.data.image_stream.ImageStream`, seed 0)
labelled by a teacher (the released compact model 190923/neuron0). In one
run, on the same images in the same order:

1. ``keras_fit``: ``model.fit`` of the Keras student, float32 (the reference);
2. ``kernel_<isa>``: :class:`classes.training.trainers.KernelTrainer` (the
   compiled training step of ``classes/training/train_kernel.c`` plus Adam),
   once per instruction set this CPU runs (avx512, avx2, portable).

Printed and written to ``results/bench_train/bench_train_<mode>.json``: images
per second, achieved GFLOP/s (useful arithmetic: 3 x the forward pass's
multiply-adds x 2 per image, about 0.98 GFLOP), the float32 matmul rate
measured in the same run (before and after) and each path's fraction of it,
the ratio to Keras written ``N.NNx``, wall and CPU seconds and the peak
resident memory of each path. ``--loss-curve N`` instead trains Keras
(``train_on_batch``) and the kernel from the same weights on the same N
batches and compares their loss curves (windows of 50 steps).

Commands::

    python benchmarks/bench_train.py --quick          # 6 batches per path, a few minutes
    python benchmarks/bench_train.py                  # 40 batches per path
    python benchmarks/bench_train.py --loss-curve 1000

Expected run time on the 2-core CPU: see benchmarks/README.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.measurement import PeakMemory, load_average, matmul_rates, reference_rate, timed  # noqa: E402
from classes.compact.model import build_compact_model  # noqa: E402
from classes.data.image_stream import ImageStream  # noqa: E402
from classes.prediction.folding import compact_model_flops  # noqa: E402
from classes.reporting import script_support  # noqa: E402
from classes.runtime import outputs  # noqa: E402
from classes.runtime.native import available_isas  # noqa: E402
from classes.runtime.quiet_tensorflow import keras  # noqa: E402
from classes.training.teacher import Teacher  # noqa: E402
from classes.training.trainers import KerasTrainer, KernelTrainer  # noqa: E402

STUDENT = [100] * 5
BATCH, LEARNING_RATE, TEACHER = 64, 1e-4, "190923/0"
TRAINING_FLOPS_PER_IMAGE = 3 * int(compact_model_flops(STUDENT))


def student_weights(seed: int = 0) -> list[np.ndarray]:
    """The initial student (Keras's initialisers, seeded)."""
    keras.utils.set_random_seed(seed)
    return build_compact_model(STUDENT, name="student").get_weights()


def labelled_block(stream: ImageStream, teacher: Teacher, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Block ``index`` of the stream and the teacher's responses to it."""
    images, _ = stream.block(index)
    return images, teacher.responses(images)[0]


def time_keras_fit(weights, images, targets) -> dict:
    """``model.fit`` over the images in batches of 64 (after a two-batch warm-up that traces it)."""
    model = build_compact_model(STUDENT, name="student")
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    model.fit(images[:2 * BATCH], targets[:2 * BATCH], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    model.set_weights(weights)
    with PeakMemory() as memory:
        wall, cpu = timed(lambda: model.fit(images, targets, batch_size=BATCH, epochs=1, shuffle=False, verbose=0))
    return {"seconds": wall, "cpu_seconds": cpu, "images": len(images), "peak_rss_bytes": memory.peak}


def time_kernel(weights, images, targets, isa: str) -> dict:
    """:class:`KernelTrainer` over the images in batches of 64 (after one warm-up step)."""
    trainer = KernelTrainer(weights, learning_rate=LEARNING_RATE, batch_size=BATCH, isa=isa)
    trainer.train_step(images[:BATCH], targets[:BATCH])
    trainer = KernelTrainer(weights, learning_rate=LEARNING_RATE, batch_size=BATCH, isa=isa)

    def train():
        for start in range(0, len(images), BATCH):
            trainer.train_step(images[start:start + BATCH], targets[start:start + BATCH])

    with PeakMemory() as memory:
        wall, cpu = timed(train)
    return {"seconds": wall, "cpu_seconds": cpu, "images": len(images), "peak_rss_bytes": memory.peak}


def rates(path: dict, matmul: float) -> dict:
    """Adds images/s and GFLOP/s (per wall and per CPU second) and the fraction of matmul."""
    flops = path["images"] * TRAINING_FLOPS_PER_IMAGE
    path.update({"images_per_second": path["images"] / path["seconds"], "gflops": flops / path["seconds"] / 1e9,
                 "gflops_per_cpu_second": flops / path["cpu_seconds"] / 1e9})
    path["fraction_of_matmul"] = path["gflops"] / matmul
    return path


def run_timing(arguments, stream: ImageStream, teacher: Teacher) -> dict:
    """Every path on the same images; the matmul rate before and after."""
    matmul_before = matmul_rates(arguments.matmul_repeats)
    images, targets = labelled_block(stream, teacher, 0)
    count = arguments.batches * BATCH
    if count > len(images):
        raise ValueError(f"--batches {arguments.batches} needs {count} images; one stream block holds {len(images)}.")
    images, targets = images[:count], targets[:count]
    weights = student_weights()
    paths = {}
    if not arguments.skip_keras:
        print(f"keras fit: {arguments.batches} batches of {BATCH} ...", flush=True)
        paths["keras_fit"] = time_keras_fit(weights, images, targets)
    for isa in arguments.isas:
        print(f"kernel ({isa}): {arguments.batches} batches of {BATCH} ...", flush=True)
        paths[f"kernel_{isa}"] = time_kernel(weights, images, targets, isa)
    matmul_after = matmul_rates(arguments.matmul_repeats)
    matmul = reference_rate(matmul_before, matmul_after)
    for path in paths.values():
        rates(path, matmul)
    if "keras_fit" in paths:
        for path in paths.values():
            path["ratio_to_keras"] = path["images_per_second"] / paths["keras_fit"]["images_per_second"]
    return {"matmul_gflops": {"before": matmul_before, "after": matmul_after, "reference": matmul},
            "paths": paths}


def run_loss_curves(arguments, stream: ImageStream, teacher: Teacher) -> dict:
    """Keras (train_on_batch) and the kernel from the same weights on the same batches."""
    from tqdm import tqdm

    weights = student_weights()
    trainers = {"keras": KerasTrainer(weights, LEARNING_RATE, BATCH), "kernel": KernelTrainer(weights, LEARNING_RATE, BATCH)}
    losses = {name: [] for name in trainers}
    block = 0
    with tqdm(total=arguments.loss_curve, desc="steps (both engines)", unit="step") as bar:
        while len(losses["kernel"]) < arguments.loss_curve:
            images, targets = labelled_block(stream, teacher, block)
            block += 1
            for start in range(0, len(images) - BATCH + 1, BATCH):
                if len(losses["kernel"]) >= arguments.loss_curve:
                    break
                for name, trainer in trainers.items():
                    losses[name].append(trainer.train_step(images[start:start + BATCH], targets[start:start + BATCH]))
                bar.update(1)
    return compare_curves(losses, trainers, stream, teacher)


def compare_curves(losses: dict, trainers: dict, stream: ImageStream, teacher: Teacher, window: int = 50) -> dict:
    """Windowed mean losses of both engines, their relative differences, and each model's R2 vs the teacher."""
    from classes.prediction import predict

    means = {name: np.array([np.mean(values[start:start + window]) for start in range(0, len(values), window)])
             for name, values in losses.items()}
    relative = np.abs(means["kernel"] - means["keras"]) / means["keras"]
    images = stream.validation_images()
    truth = teacher.responses(images)[0]
    r2 = {name: float(np.corrcoef(predict([trainer.get_weights()], images)[0], truth)[0, 1] ** 2)
          for name, trainer in trainers.items()}
    return {"steps": len(losses["kernel"]), "window": window, "losses": losses,
            "window_means": {name: values.tolist() for name, values in means.items()},
            "relative_window_difference": {"max": float(relative.max()), "median": float(np.median(relative)),
                                           "first_window": float(relative[0]), "last_window": float(relative[-1])},
            "validation_r2_vs_teacher": r2}


def report(result: dict) -> str:
    """The printed summary."""
    lines = [f"load average {result['load_average']:.1f}; training FLOPs per image {TRAINING_FLOPS_PER_IMAGE / 1e9:.3f} G"]
    if "paths" in result:
        matmul = result["matmul_gflops"]
        lines.append(f"matmul 2048^2 float32: reference {matmul['reference']:.1f} GFLOP/s (best of before and after)")
        for name, path in result["paths"].items():
            ratio = f"; {path['ratio_to_keras']:.2f}x Keras" if "ratio_to_keras" in path else ""
            lines.append(f"  {name:16s} {path['images_per_second']:7.1f} images/s  {path['gflops']:6.1f} GFLOP/s "
                         f"= {100 * path['fraction_of_matmul']:.0f}% of matmul (per CPU-second "
                         f"{path['gflops_per_cpu_second']:.1f}); peak RSS {path['peak_rss_bytes'] / 2**30:.2f} GiB{ratio}")
    if "loss_curves" in result:
        curves = result["loss_curves"]
        difference = curves["relative_window_difference"]
        lines.append(f"loss curves over {curves['steps']} steps, windows of {curves['window']}: relative difference "
                     f"of window means max {difference['max']:.2e}, median {difference['median']:.2e}, "
                     f"first {difference['first_window']:.2e}, last {difference['last_window']:.2e}; R2 vs teacher "
                     + ", ".join(f"{name} {value:.3f}" for name, value in curves["validation_r2_vs_teacher"].items()))
    return "\n".join(lines)


def run(arguments) -> dict:
    data_root, output_dir = script_support.start_script(arguments, __file__)
    stream = ImageStream(seed=0, block_size=max(arguments.batches * BATCH, 2048), data_root=data_root)
    teacher = Teacher("compact", TEACHER, data_root=data_root)
    result = {"workload": {"student": STUDENT, "batch": BATCH, "learning_rate": LEARNING_RATE, "teacher": TEACHER},
              "load_average": load_average()}
    start = time.perf_counter()
    if arguments.loss_curve:
        result["loss_curves"] = run_loss_curves(arguments, stream, teacher)
    else:
        result.update(run_timing(arguments, stream, teacher))
    result["seconds"] = time.perf_counter() - start
    mode = f"loss_curve{arguments.loss_curve}" if arguments.loss_curve else ("quick" if arguments.quick else "full")
    outputs.write_json(output_dir / f"bench_train_{mode}.json", result)
    print(report(result))
    print(f"wrote {script_support.shown(output_dir / f'bench_train_{mode}.json')}")
    return result


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="6 batches per path (a few minutes)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches of 64 per path (default 40)")
    parser.add_argument("--isas", default=",".join(available_isas()),
                        help="kernel instruction sets to time (default: every one this CPU runs)")
    parser.add_argument("--skip-keras", action="store_true", help="time only the kernel")
    parser.add_argument("--matmul-repeats", type=int, default=10, help="timed 2048x2048 matmuls (best counts)")
    parser.add_argument("--loss-curve", type=int, default=0,
                        help="instead of timing: compare the loss curves of N steps of Keras and the kernel")
    arguments = script_support.parse(parser, argv)
    arguments.batches = arguments.batches or (6 if arguments.quick else 40)
    arguments.isas = [isa.strip() for isa in arguments.isas.split(",") if isa.strip()]
    unknown = [isa for isa in arguments.isas if isa not in available_isas()]
    if unknown or arguments.batches < 1 or arguments.loss_curve < 0:
        parser.error(f"--isas must be among {', '.join(available_isas())}; --batches >= 1; --loss-curve >= 0")
    return arguments


main = script_support.entry_point(parse_arguments, run)

if __name__ == "__main__":
    main()

"""Benchmark: the two ways of evaluating many compact models (script4's workload).

Workload: every compact model predicts the held-out half of its own test
session's images: 190923 (33 models), 201025 (89) and 210225 (55), images
601-1200 of each (211022's images are not in the release): 177 models x 600
images, about 12 TFLOP of useful arithmetic
(:func:`classes.prediction.stacked.compact_model_flops`).

The paths run in one process, on the same models and images:

1. straightforward: load each ``.keras`` file
   (:func:`classes.compact.model.load_compact_model`, timed separately) and
   call the model on batches of 64 through a compiled ``tf.function``
   (:func:`classes.compact.tools.predict_responses`);
2. fast: read the ``.npy`` weights, fold BatchNormalization and evaluate
   with each engine of :mod:`classes.prediction.stacked`: ``kernel`` (the default
   where it can run: the compiled kernel, layers 0 and 1 fused in cache),
   once per instruction set this CPU runs (``avx512``, ``avx2``,
   ``portable``; ``--isas`` picks), and ``tensorflow`` (one traced graph per
   group of models). ``--rounds N`` times every fast path N times, in turn,
   and keeps each one's fastest round, so that the ratios between them
   survive other jobs on a shared machine.

Printed and written to ``results/bench_predict/bench_predict_<mode>.json``:
model-image evaluations per second, achieved GFLOP/s, the machine's
single-precision matmul rate measured in the same run (NumPy and TensorFlow,
2048x2048, best of N, before and after), each path's fraction of it, the
speed ratios (between the instruction sets too), peak memory, and the
largest deviation between the paths. CPU
seconds and the load average are recorded too: on a machine shared with
other jobs wall-clock rates drop, and rates per CPU-second show the work
done while the process actually ran.

Commands::

    python benchmarks/bench_predict.py --quick   # 12 models x 128 images, ~30 s
    python benchmarks/bench_predict.py           # 177 models x 600 images, ~12 min quiet

Expected run time on the 2-core CPU: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks.measurement import PeakMemory, matmul_rates, reference_rate  # noqa: E402
from classes.compact.architecture import load_weights_npy, model_id, nums_filters_from_weights
from classes.compact.model import load_compact_model
from classes.compact.tools import predict_responses  # noqa: E402
from classes.data.images import load_images  # noqa: E402
from classes.data.preprocessing import recenter_images  # noqa: E402
from classes.data.sessions import get_session, held_out_indices  # noqa: E402
from classes.prediction.kernel import kernel_unavailable_reason  # noqa: E402
from classes.prediction.stacked import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_GROUP_SIZE,
    compact_model_flops,
    predict_stacked,
    stack_compact_models,
)
from classes.reporting.script_support import (  # noqa: E402
    add_common_arguments,
    exit_on_user_error,
    guard_results,
    shown,
    start_script,
)
from classes.runtime import outputs  # noqa: E402
from classes.runtime.native import ISA_VARIABLE, ISAS, available_isas  # noqa: E402
from classes.runtime.result_folder import KEEP_EVERYTHING  # noqa: E402

SCRIPT_NAME = "bench_predict"
SESSIONS_WITH_IMAGES = ("190923", "201025", "210225")
QUICK_MODELS_PER_SESSION = 4
QUICK_IMAGES = 128


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_MODELS_PER_SESSION} models per session x {QUICK_IMAGES} images")
    parser.add_argument("--sessions", default=",".join(SESSIONS_WITH_IMAGES),
                        help="comma-separated test sessions whose images are present")
    parser.add_argument("--models-per-session", type=int, default=None,
                        help="first N models of each session (default: all; --quick: 4)")
    parser.add_argument("--num-images", type=int, default=None,
                        help="first N held-out images of each session (default: all 600; --quick: 128)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="fast path: images per graph call or kernel job")
    parser.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE,
                        help="fast path, tensorflow engine: models per graph call")
    parser.add_argument("--keras-batch-size", type=int, default=64,
                        help="straightforward path: images per call")
    parser.add_argument("--matmul-repeats", type=int, default=10,
                        help="timed 2048x2048 float32 matmuls (best counts)")
    parser.add_argument("--skip-keras", action="store_true",
                        help="time only the fast path (no deviation or speed ratio)")
    parser.add_argument("--engines", default="kernel,tensorflow",
                        help="fast-path engines to time, comma-separated (kernel, tensorflow)")
    parser.add_argument("--isas", default=",".join(available_isas()),
                        help="kernel instruction sets to time, comma-separated (default: all this CPU runs)")
    parser.add_argument("--rounds", type=int, default=1, help="times each fast path is run (fastest kept)")
    add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    for name in ("batch_size", "group_size", "keras_batch_size", "matmul_repeats", "rounds"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    arguments.engines = [name.strip() for name in arguments.engines.split(",") if name.strip()]
    unknown = sorted(set(arguments.engines) - {"kernel", "tensorflow"})
    if unknown or not arguments.engines:
        parser.error(f"--engines takes kernel and/or tensorflow; got {unknown or 'nothing'}")
    arguments.isas = [name.strip() for name in arguments.isas.split(",") if name.strip()]
    if sorted(set(arguments.isas) - set(available_isas())) or not arguments.isas:
        parser.error(f"--isas takes some of {', '.join(available_isas())} (this CPU's of {', '.join(ISAS)})")
    for name in ("models_per_session", "num_images"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return arguments


def build_workload(arguments, data_root) -> list[dict]:
    """Per session: model ids, filter counts and recentred held-out images."""
    models_per_session = arguments.models_per_session or (
        QUICK_MODELS_PER_SESSION if arguments.quick else None
    )
    num_images = arguments.num_images or (QUICK_IMAGES if arguments.quick else None)
    workload = []
    for session in [text.strip() for text in arguments.sessions.split(",") if text.strip()]:
        count = get_session(session).num_neurons
        neurons = range(min(count, models_per_session or count))
        identifiers = [model_id(session, neuron) for neuron in neurons]
        _, evaluation = held_out_indices(session)
        evaluation = evaluation[:num_images] if num_images else evaluation
        images = recenter_images(load_images(session, evaluation + 1, data_root=data_root))
        weights = [load_weights_npy(identifier, data_root) for identifier in identifiers]
        workload.append({"session": session, "ids": identifiers, "images": images, "weights": weights})
    return workload


def run_straightforward(workload, arguments, data_root) -> dict:
    predictions, load_seconds, predict_seconds = [], 0.0, 0.0
    cpu_start = time.process_time()
    total = sum(len(item["ids"]) for item in workload)
    with PeakMemory() as memory, tqdm(total=total, desc="keras path", unit="model") as progress:
        for item in workload:
            for identifier in item["ids"]:
                start = time.perf_counter()
                model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
                middle = time.perf_counter()
                predictions.append(
                    predict_responses(model, item["images"], batch_size=arguments.keras_batch_size)
                )
                load_seconds += middle - start
                predict_seconds += time.perf_counter() - middle
                progress.update(1)
    return {
        "load_seconds": load_seconds, "predict_seconds": predict_seconds,
        "cpu_seconds": time.process_time() - cpu_start,
        "peak_rss_bytes": memory.peak, "rss_at_start_bytes": memory.start,
        "predictions": predictions,
    }


def run_fast(workload, arguments, engine: str, isa: str | None = None) -> dict:
    """One fast path on the whole workload; ``isa`` forces the kernel's instruction set."""
    predictions, stack_seconds, warmup_seconds, predict_seconds = [], 0.0, 0.0, 0.0
    cpu_start = time.process_time()
    forced = os.environ.get(ISA_VARIABLE)
    os.environ[ISA_VARIABLE] = isa or forced or ""
    with PeakMemory() as memory:
        for item in workload:
            start = time.perf_counter()
            stacked = stack_compact_models(item["weights"], names=[str(i) for i in item["ids"]])
            stack_seconds += time.perf_counter() - start
            # One-time graph tracing, reported apart from the steady-state rate.
            start = time.perf_counter()
            predict_stacked(stacked, item["images"][:1], batch_size=1, group_size=arguments.group_size,
                            engine=engine)
            warmup_seconds += time.perf_counter() - start
            start = time.perf_counter()
            result = predict_stacked(
                stacked, item["images"], batch_size=arguments.batch_size,
                group_size=arguments.group_size, show_progress=True, engine=engine,
            )
            predict_seconds += time.perf_counter() - start
            predictions.extend(result)
    os.environ[ISA_VARIABLE] = forced or ""
    return {
        "stack_seconds": stack_seconds, "warmup_seconds": warmup_seconds,
        "predict_seconds": predict_seconds, "cpu_seconds": time.process_time() - cpu_start,
        "peak_rss_bytes": memory.peak, "rss_at_start_bytes": memory.start,
        "predictions": predictions,
    }


def mode_of(arguments) -> str:
    """``quick``, ``full`` (the whole workload) or ``custom``."""
    if arguments.models_per_session or arguments.num_images:
        return "custom"
    return "quick" if arguments.quick else "full"


def summarize(arguments, workload, matmul_before, matmul_after, straightforward, fast_paths, load_before):
    """The JSON record; ``fast_paths`` maps ``fast_<engine>`` to run_fast's timings."""
    nums_filters = [nums_filters_from_weights(weights) for item in workload for weights in item["weights"]]
    per_model_flops = compact_model_flops(np.array(nums_filters))
    images_per_model = np.concatenate([[len(item["images"])] * len(item["ids"]) for item in workload])
    total_flops = float(np.sum(per_model_flops * images_per_model))
    evaluations = int(np.sum(images_per_model))
    matmul = reference_rate(matmul_before, matmul_after)
    matmul_per_cpu = max(matmul_before["tensorflow_per_cpu_second"], matmul_after["tensorflow_per_cpu_second"])
    result = {
        "mode": mode_of(arguments),
        "workload": {
            "sessions": [item["session"] for item in workload],
            "models": len(per_model_flops), "model_image_evaluations": evaluations,
            "useful_tflop": total_flops / 1e12,
            "mean_mflop_per_model_image": total_flops / evaluations / 1e6,
        },
        "matmul_gflops": {"before": matmul_before, "after": matmul_after, "reference": matmul,
                          "reference_per_cpu_second": matmul_per_cpu},
        "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "settings": {"batch_size": arguments.batch_size, "group_size": arguments.group_size,
                     "keras_batch_size": arguments.keras_batch_size, "engines": arguments.engines,
                     "isas": arguments.isas, "rounds": arguments.rounds},
    }
    if "kernel" in arguments.engines and kernel_unavailable_reason() is not None:
        result["kernel_not_run"] = kernel_unavailable_reason()
    paths = dict(fast_paths)
    if straightforward is not None:
        paths = {"straightforward": straightforward, **paths}
    for name, timing in paths.items():
        setup = timing.get("load_seconds", 0.0) + timing.get("stack_seconds", 0.0) + timing.get("warmup_seconds", 0.0)
        rate = total_flops / timing["predict_seconds"] / 1e9
        result[name] = {
            **{key: value for key, value in timing.items() if key != "predictions"},
            "setup_seconds": setup,
            "evaluations_per_second": evaluations / timing["predict_seconds"],
            "gflops": rate, "fraction_of_matmul": rate / matmul,
            "end_to_end_gflops": total_flops / (timing["predict_seconds"] + setup) / 1e9,
            "gflops_per_cpu_second": total_flops / timing["cpu_seconds"] / 1e9,
            "fraction_of_matmul_per_cpu_second": total_flops / timing["cpu_seconds"] / 1e9 / matmul_per_cpu,
        }
    if straightforward is not None:
        reference = np.stack(straightforward["predictions"])
        spread = np.maximum(reference.std(axis=1), 1e-12)
        for name, fast in fast_paths.items():
            difference = np.abs(np.stack(fast["predictions"]) - reference)
            result[name]["deviation_from_straightforward"] = {
                "max_abs": float(np.max(difference)),
                "max_abs_over_response_sd": float(np.max(np.max(difference, axis=1) / spread)),
            }
            result[name]["speed_ratio_over_straightforward"] = (
                straightforward["predict_seconds"] / fast["predict_seconds"])
            result[name]["end_to_end_speed_ratio"] = (
                (straightforward["predict_seconds"] + result["straightforward"]["setup_seconds"])
                / (fast["predict_seconds"] + result[name]["setup_seconds"]))
    result["isa_comparison"] = isa_comparison(result)
    result["peak_rss_process_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def isa_comparison(result) -> dict:
    """The kernel's instruction sets side by side: predict time over the fastest set's, speed-up over TensorFlow."""
    seconds = {name.removeprefix("fast_kernel_"): result[name]["predict_seconds"]
               for name in result if name.startswith("fast_kernel_")}
    if not seconds:
        return {}
    reference = min(seconds, key=seconds.get)
    comparison = {"reference_isa": reference,
                  "seconds_over_reference": {isa: time / seconds[reference] for isa, time in seconds.items()}}
    if "fast_tensorflow" in result:
        comparison["speedup_over_tensorflow"] = {
            isa: result["fast_tensorflow"]["predict_seconds"] / time for isa, time in seconds.items()}
    return comparison


def report(result) -> str:
    work = result["workload"]
    lines = [
        f"workload: {work['models']} models, {work['model_image_evaluations']} model-image "
        f"evaluations, {work['useful_tflop']:.3f} TFLOP useful ({work['mean_mflop_per_model_image']:.1f} MFLOP each)",
        "matmul 2048^2 float32 (GFLOP/s, best of N): before "
        + ", ".join(f"{k} {v:.1f}" for k, v in result["matmul_gflops"]["before"].items())
        + "; after " + ", ".join(f"{k} {v:.1f}" for k, v in result["matmul_gflops"]["after"].items())
        + f"; reference {result['matmul_gflops']['reference']:.1f}"
        + f" (per CPU-second {result['matmul_gflops']['reference_per_cpu_second']:.1f})",
        f"load average before {result['load_average_before'][0]:.2f}, after "
        f"{result['load_average_after'][0]:.2f} on {result['cpu_count']} CPUs",
    ]
    names = [name for name in result if name == "straightforward" or name.startswith("fast_")]
    for name in names:
        path = result[name]
        lines.append(
            f"{name:15s}: predict {path['predict_seconds']:.1f} s, setup {path['setup_seconds']:.1f} s, "
            f"{path['evaluations_per_second']:.1f} evaluations/s, {path['gflops']:.1f} GFLOP/s "
            f"= {100 * path['fraction_of_matmul']:.0f}% of matmul; end to end {path['end_to_end_gflops']:.1f} GFLOP/s; "
            f"{path['gflops_per_cpu_second']:.1f} GFLOP per CPU-second "
            f"(= {100 * path['fraction_of_matmul_per_cpu_second']:.0f}% of matmul's); "
            f"peak RSS {path['peak_rss_bytes'] / 2**30:.2f} GiB"
        )
    for name in names:
        path = result[name]
        if "deviation_from_straightforward" in path:
            deviation = path["deviation_from_straightforward"]
            lines.append(
                f"speed ratio {name}/straightforward: {path['speed_ratio_over_straightforward']:.2f}x "
                f"(end to end {path['end_to_end_speed_ratio']:.2f}x); max deviation "
                f"{deviation['max_abs']:.2e} = {deviation['max_abs_over_response_sd']:.2e} response s.d."
            )
    comparison = result.get("isa_comparison")
    if comparison:
        ratios = ", ".join(f"{isa} {ratio:.2f}x" for isa, ratio in comparison["seconds_over_reference"].items())
        lines.append(f"kernel instruction sets, predict time over {comparison['reference_isa']}'s: {ratios}")
        speedups = comparison.get("speedup_over_tensorflow", {})
        if speedups:
            lines.append("kernel speed-up over the tensorflow engine: "
                         + ", ".join(f"{isa} {ratio:.2f}x" for isa, ratio in speedups.items()))
    if "kernel_not_run" in result:
        lines.append(f"fast_kernel not run: the compiled kernel cannot run here: {result['kernel_not_run']}")
    return "\n".join(lines)


def main(argv=None):
    """Parses the command line (None: sys.argv), benchmarks, and swaps the results in when done."""
    arguments = parse_arguments(argv)
    return guard_results(lambda: run(arguments))


def run(arguments) -> dict:
    # The folder keeps the other modes' results (quick, full) beside this one's.
    data_root, output_dir = start_script(arguments, SCRIPT_NAME, keep=KEEP_EVERYTHING)
    load_before = list(os.getloadavg())
    workload = exit_on_user_error(lambda: build_workload(arguments, data_root))
    matmul_before = matmul_rates(arguments.matmul_repeats)
    # The fast paths first, so that their peak memory is not inflated by what
    # the Keras models leave behind; their figures are written at once, and
    # kept where this mode has no earlier result, when a long straightforward
    # run is interrupted.
    paths = [(f"fast_{engine}", engine, None) for engine in arguments.engines if engine == "tensorflow"]
    if "kernel" in arguments.engines:
        paths[:0] = [(f"fast_kernel_{isa}", "kernel", isa) for isa in arguments.isas
                     if kernel_unavailable_reason(isa) is None]
    fast_paths = {}
    target = output_dir / f"bench_predict_{mode_of(arguments)}.json"
    for _ in range(arguments.rounds):
        for name, engine, isa in paths:
            timing = run_fast(workload, arguments, engine, isa)
            if name not in fast_paths or timing["predict_seconds"] < fast_paths[name]["predict_seconds"]:
                fast_paths[name] = timing
            partial = summarize(arguments, workload, matmul_before, matmul_before, None, fast_paths, load_before)
            outputs.write_json(target, {**partial, "note": "not finished yet"})
            print(report(partial), flush=True)
    straightforward = None if arguments.skip_keras else run_straightforward(workload, arguments, data_root)
    matmul_after = matmul_rates(arguments.matmul_repeats)
    result = summarize(arguments, workload, matmul_before, matmul_after, straightforward, fast_paths, load_before)
    print(report(result))
    outputs.write_json(target, result)
    print(f"wrote {shown(target)}")
    return result


if __name__ == "__main__":
    main()

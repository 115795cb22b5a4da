"""Benchmark: the whole reproduction, per script: time, arithmetic, and its fraction of the matmul rate.

Runs ``reproduce_paper.py`` (every numbered script in its own process, all
rerun: ``--force``) between two measurements of this machine's float32
matmul rate (:func:`benchmarks.measurement.matmul_rates`, NumPy and
TensorFlow, 2048 x 2048, best of ``--matmul-repeats``). For each script it
records the wall and CPU seconds (from the reproduction's report), the
arithmetic it did, estimated from its outputs
(:mod:`benchmarks.paper_arithmetic`, which gives each formula and what it
leaves out; a script whose outputs do not show its arithmetic gets none),
the achieved GFLOP/s and their fraction of the best matmul rate measured in
the same run. The load average before and after is recorded too: on a
shared machine wall-clock rates drop, CPU seconds do not.

Commands::

    python benchmarks/bench_paper.py --quick   # reproduce_paper.py --quick, a few minutes
    python benchmarks/bench_paper.py           # every script with its defaults, ~9 min
    python benchmarks/bench_paper.py --scripts 4,5

Writes ``results/bench_paper/bench_paper_<mode>.json`` (mode ``quick``,
``default``, or ``scripts<numbers>`` with ``--scripts``) and the
reproduction itself in ``results/bench_paper/reproduction_<mode>/`` (report
included); prints the table that benchmarks/README.md shows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reproduce_paper  # noqa: E402
from benchmarks.measurement import load_average, matmul_rates, reference_rate  # noqa: E402
from benchmarks.paper_arithmetic import estimate_flops  # noqa: E402
from classes.reporting import script_support  # noqa: E402
from classes.reporting.paper_report import REPORT_NAME  # noqa: E402
from classes.reporting.paper_scripts import select_scripts  # noqa: E402
from classes.reporting.report_formats import format_duration  # noqa: E402
from classes.runtime import outputs  # noqa: E402
from classes.runtime.result_folder import KEEP_EVERYTHING  # noqa: E402

SCRIPT_NAME = "bench_paper"


def mode_of(arguments) -> str:
    """``quick`` or ``default``, with ``_scripts<numbers>`` for a selection."""
    mode = "quick" if arguments.quick else "default"
    numbers = [script.number for script in select_scripts(arguments.scripts)]
    return mode if arguments.scripts == "all" else f"{mode}_scripts{''.join(map(str, numbers))}"


def reproduce(arguments, data_root, folder: Path) -> dict:
    """Runs ``reproduce_paper.py`` into ``folder``, every chosen script rerun; returns its report."""
    argv = ["--scripts", arguments.scripts, "--force", "--data-root", str(data_root), "--out", str(folder)]
    reproduce_paper.main(argv + (["--quick"] if arguments.quick else []))
    return json.loads((folder / f"{REPORT_NAME}.json").read_text())


def script_rates(report: dict, folder: Path, data_root, matmul_gflops: float) -> list[dict]:
    """Per script: seconds, estimated arithmetic, GFLOP/s and fraction of ``matmul_gflops``."""
    rows = []
    for entry in report["scripts"]:
        estimate = estimate_flops(entry["number"], folder / entry["script"], data_root)
        if entry["outcome"] == "failed":
            estimate = {**estimate, "flops": None, "formula": "not estimated: the script failed"}
        flops, seconds = estimate["flops"], entry["seconds"]
        gflops = None if flops is None or not seconds else flops / seconds / 1e9
        rows.append({
            "script": entry["script"], "outcome": entry["outcome"], "exit_status": entry["exit_status"],
            "wall_seconds": seconds, "cpu_seconds": entry["cpu_seconds"], **estimate,
            "gflops": gflops, "fraction_of_matmul": None if gflops is None else gflops / matmul_gflops,
        })
    return rows


def format_table(result: dict) -> str:
    """The Markdown table of benchmarks/README.md."""
    lines = ["| script | wall | CPU | GFLOP (estimated) | GFLOP/s | of matmul |", "|---|---|---|---|---|---|"]
    for row in result["scripts"]:
        flops = "not estimated" if row["flops"] is None else f"{row['flops'] / 1e9:,.0f}"
        rate = "-" if row["gflops"] is None else f"{row['gflops']:.1f}"
        fraction = "-" if row["fraction_of_matmul"] is None else f"{row['fraction_of_matmul']:.0%}"
        lines.append(f"| {row['script']} | {format_duration(row['wall_seconds'])} | "
                     f"{format_duration(row['cpu_seconds'])} | {flops} | {rate} | {fraction} |")
    total = result["total"]
    lines.append(f"| all | {format_duration(total['wall_seconds'])} | {format_duration(total['cpu_seconds'])} | "
                 f"{total['flops'] / 1e9:,.0f} (estimated scripts) | | |")
    return "\n".join(lines)


def run(arguments) -> dict:
    data_root, output_dir = script_support.start_script(arguments, SCRIPT_NAME, keep=KEEP_EVERYTHING)
    mode = mode_of(arguments)
    load_before, matmul_before = load_average(), matmul_rates(arguments.matmul_repeats)
    folder = output_dir / f"reproduction_{mode}"
    report = reproduce(arguments, data_root, folder)
    load_after, matmul_after = load_average(), matmul_rates(arguments.matmul_repeats)
    reference = reference_rate(matmul_before, matmul_after)
    scripts = script_rates(report, folder, data_root, reference)
    result = {
        "mode": mode,
        "matmul_gflops": {"before": matmul_before, "after": matmul_after, "reference": reference},
        "load_average": {"before": load_before, "after": load_after},
        "all_succeeded": report["all_succeeded"],
        "scripts": scripts,
        "total": {
            "wall_seconds": sum(row["wall_seconds"] for row in scripts),
            "cpu_seconds": sum(row["cpu_seconds"] or 0 for row in scripts),
            "flops": sum(row["flops"] or 0 for row in scripts),
        },
    }
    target = output_dir / f"bench_paper_{mode}.json"
    outputs.write_json(target, result)
    print(f"\nmatmul {reference:.1f} GFLOP/s (best of before/after); load average {load_before:.1f} before, "
          f"{load_after:.1f} after\n\n{format_table(result)}\n\nwrote {script_support.shown(target)}")
    return result


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="reproduce_paper.py --quick")
    parser.add_argument("--scripts", default="all", help="comma-separated script numbers (default: all)")
    parser.add_argument("--matmul-repeats", type=int, default=5, help="timed matmuls before and after (best counts)")
    arguments = script_support.parse(parser, argv)
    try:
        select_scripts(arguments.scripts)
    except ValueError as error:
        parser.error(str(error))
    if arguments.matmul_repeats < 1:
        parser.error("--matmul-repeats must be at least 1")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

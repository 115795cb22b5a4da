"""The whole paper in one command: every numbered script, and one report of all their numbers.

Runs the numbered scripts 1-8 one after another, each with its defaults and
each in its own process (so that one script's failure or memory cannot take
the others down): script 1 with its default session, script 3 with its
default model, script 6 for its default model (not ``--all``), script 2 as
it is. Each script's results go to ``<out>/<script>/`` and its stdout and
stderr to ``<out>/logs/<script>.log``; one progress bar shows the script
running and its elapsed time. At the end ``report.md``, ``report.html``
(self-contained) and ``report.json`` in ``--out`` list every
published-vs-reproduced row of every script (figure, quantity, published,
reproduced, status, reason), each script's run time and exit status, and
the last lines of the log of any script that failed; the others still run.
The exit status is 0 when every script succeeded, 1 otherwise.

Resumable: a script whose folder holds its whole result from a run with the
same arguments (recorded in ``<out>/logs/<script>.json``) is skipped, so an
interrupted or partly failed run continues where it stopped; ``--force``
reruns. While it runs the folder is ``<out>.partial-<pid>``, swapped in when
it ends (:class:`classes.runtime.result_folder.ResultFolder`; an interrupt
keeps everything finished so far).

Commands::

    python reproduce_paper.py                  # everything, results/reproduce_paper/
    python reproduce_paper.py --quick          # a short version of every script
    python reproduce_paper.py --scripts 4,5 --out results/figure1

Expected run time on this 2-core CPU: about 8 minutes for the default run
(7 min 44 s measured by benchmarks/bench_paper.py on 2026-12-05, about 8.5 min
in the machine's slowest hour; each script's docstring gives its own);
``--quick`` 57 s on the idle machine (4 min while other jobs loaded it,
load average 10-11 on its 2 cores; most of it is starting Python and
TensorFlow).
Timing mode, with each script's arithmetic: ``benchmarks/bench_paper.py``.

``--quick`` passes each script's own quick option where it has one,
otherwise the smallest arguments that still exercise all of its steps:

======  ======================================================  =============================================
script  --quick arguments                                       why
======  ======================================================  =============================================
1       (none)                                                  its default run takes seconds
2       (none)                                                  its default run takes seconds (no weights)
3       --num-images 48                                         48 of the 600 held-out images
4       --sessions 190923 --neurons 0,1,2,3                     4 models of one session, all steps
5       --teachers from_ensemble_model --filters 5              one shared model (smallest K), 4 neurons
        --sessions 190923 --neurons 0,1,2,3
6       --steps 20 --num-images 2 --num-minimizing 1            every step, few images and steps,
        --pool-size 200 --num-base-images 2                     a 200-image pool, a 4 x 4 saliency grid
        --num-smooth-images 1 --smooth-patches 2
        --saliency-stride 28
7       --quick                                                 its own: 8 models, 60 images
8       --quick                                                 its own: 8 models, small stimulus sets
======  ======================================================  =============================================

Quick runs score fewer models on fewer images: their rows say how their
values compare with the published ones, but they are not the reproduction.
"""

from __future__ import annotations

import argparse
import sys
import time

from classes.reporting import script_support
from classes.reporting.paper_report import build_report, write_report
from classes.reporting.paper_runner import run_scripts
from classes.reporting.paper_scripts import select_scripts
from classes.reporting.report_formats import summary_lines
from classes.runtime.result_folder import KEEP_EVERYTHING


def settings_of(arguments, data_root, scripts, started: float) -> dict:
    """What the report's header states about this run."""
    return {
        "mode": "quick" if arguments.quick else "default",
        "scripts": [script.name for script in scripts],
        "data_root": str(data_root),
        "force": arguments.force,
        "total_seconds": time.perf_counter() - started,
    }


def print_summary(report: dict, paths) -> None:
    """The report's header, one line per script, and where the report is."""
    print()
    for line in summary_lines(report):
        print(line)
    for entry in report["scripts"]:
        print(f"  {entry['number']}  {entry['script']:<32} {entry['outcome']:<10} "
              f"exit {entry['exit_status']}  {entry['seconds']:8.1f} s  {entry['num_rows']} rows")
    print(f"\nwrote {', '.join(script_support.shown(path) for path in paths)}")


def run(arguments) -> int:
    """Runs the chosen scripts and writes the report; returns the exit status (0: all succeeded)."""
    started = time.perf_counter()
    scripts = select_scripts(arguments.scripts)
    data_root, output_dir = script_support.start_script(arguments, __file__, keep=KEEP_EVERYTHING)
    runs = run_scripts(scripts, output_dir, arguments.quick, data_root, arguments.force)
    report = build_report(output_dir, scripts, runs, settings_of(arguments, data_root, scripts, started))
    paths = write_report(output_dir, report)
    print_summary(report, paths)
    return 0 if report["all_succeeded"] else 1


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a short version of every script (the table in this file's docstring)")
    parser.add_argument("--scripts", default="all",
                        help="comma-separated script numbers to run, e.g. 4,5 or 1-3 (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="rerun scripts whose complete results from the same arguments are in --out")
    arguments = script_support.parse(parser, argv)
    try:
        select_scripts(arguments.scripts)
    except ValueError as error:
        parser.error(str(error))
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    sys.exit(main())

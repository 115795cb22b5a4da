"""Runs the numbered scripts one after another, each in its own process, resumably.

Each script runs as a subprocess (so that one script's failure, or the memory
it holds, cannot take the others down) with its output in
``<out>/<script>/`` and its stdout and stderr in ``<out>/logs/<script>.log``.
After it ends, ``<out>/logs/<script>.json`` records its arguments, exit
status, wall and CPU seconds and the SHA-256 of its result JSON: a later run
with the same arguments skips the script while that JSON is still there and
unchanged (``force`` reruns). One progress bar covers the scripts and names
the one running and its elapsed time.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from classes.data.data_root import sha256_of_file
from classes.reporting.paper_scripts import PaperScript
from classes.runtime.outputs import write_json
from classes.runtime.paths import REPOSITORY_ROOT

LOG_FOLDER = "logs"
# Seconds a script is given to tidy up (drop its partial results folder) after
# it is asked to stop, before it is killed.
STOP_GRACE_SECONDS = 30


def script_arguments(script: PaperScript, quick: bool, data_root) -> list[str]:
    """A script's arguments (without ``--out``): its quick ones if asked, and the data root."""
    return [*(script.quick_arguments if quick else ()), "--data-root", str(data_root)]


def log_path(out: Path, script: PaperScript) -> Path:
    """``<out>/logs/<script>.log``."""
    return Path(out) / LOG_FOLDER / f"{script.name}.log"


def record_path(out: Path, script: PaperScript) -> Path:
    """``<out>/logs/<script>.json``: the record of the script's last run."""
    return Path(out) / LOG_FOLDER / f"{script.name}.json"


def result_files(out: Path, script: PaperScript) -> list[Path]:
    """The script's result JSON files in ``<out>/<script>/`` (none when it has no results)."""
    return sorted((Path(out) / script.name).glob(script.result_pattern))


def read_record(out: Path, script: PaperScript) -> dict | None:
    """The record of the script's last run in ``out``; None when absent or unreadable."""
    try:
        return json.loads(record_path(out, script).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out: Path, script: PaperScript, arguments: list[str]) -> bool:
    """True when ``<out>/<script>/`` holds the whole result of a run with ``arguments``.

    That is: the last recorded run had these arguments and exit status 0, and
    the result JSON files it recorded are there, unchanged (same SHA-256).
    """
    record = read_record(out, script)
    if not record or record.get("exit_status") != 0 or record.get("arguments") != arguments:
        return False
    recorded = record.get("result_files") or {}
    present = {path.name: path for path in result_files(out, script)}
    return bool(recorded) and set(recorded) == set(present) and all(
        sha256_of_file(present[name]) == digest for name, digest in recorded.items())


def run_process(command: list[str], log: Path, tick) -> int:
    """Runs ``command`` with stdout and stderr into ``log``; returns its exit status.

    Args:
        command: the program and its arguments.
        log: file for its stdout and stderr (replaced).
        tick: ``tick(elapsed_seconds)``, called about once a second while it runs.

    An interrupt (KeyboardInterrupt, which SIGTERM also raises under
    :func:`classes.reporting.script_support.guard_results`) stops the process
    (SIGTERM, so that it drops its partial results; SIGKILL after
    :data:`STOP_GRACE_SECONDS`) and is raised again.
    """
    start = time.perf_counter()
    with open(log, "w") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPOSITORY_ROOT,
                                   env=_unbuffered_environment())
        try:
            while True:
                try:
                    return process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    tick(time.perf_counter() - start)
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise


def _unbuffered_environment() -> dict:
    # Unbuffered, so that the log shows how far a script has got while it runs.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(script: PaperScript, out: Path, arguments: list[str], tick) -> dict:
    """Runs one script into ``<out>/<script>/``; writes and returns the record of the run.

    Returns:
        ``{"script", "arguments", "exit_status", "seconds", "cpu_seconds",
        "finished", "result_files"}``: ``result_files`` maps each result JSON
        file's name to its SHA-256 (empty when the run wrote none).
    """
    command = [sys.executable, str(script.path), *arguments, "--out", str(Path(out) / script.name)]
    log = log_path(out, script)
    log.parent.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    exit_status = run_process(command, log, tick)
    record = {
        "script": script.name,
        "arguments": arguments,
        "exit_status": exit_status,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": _children_cpu_seconds() - cpu_start,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "result_files": {path.name: sha256_of_file(path) for path in result_files(out, script)},
    }
    write_json(record_path(out, script), record)
    return record


def _outcome(record: dict, skipped: bool) -> str:
    if skipped:
        return "skipped"
    return "succeeded" if record["exit_status"] == 0 and record["result_files"] else "failed"


def run_scripts(scripts: list[PaperScript], out: Path, quick: bool, data_root, force: bool = False) -> list[dict]:
    """Runs ``scripts`` in order into ``out``, skipping those already complete.

    Args:
        scripts: the scripts to run.
        out: the folder holding each script's results folder and ``logs/``.
        quick: run each with its quick arguments.
        data_root: the release, passed to each script as ``--data-root``.
        force: rerun scripts that are already complete.

    Returns:
        One record per script (:func:`run_one`'s, or the earlier run's for a
        skipped script) with ``"outcome"`` added: ``"succeeded"``,
        ``"skipped"`` (complete from an earlier run with the same arguments)
        or ``"failed"`` (non-zero exit status, or no result JSON written).
    """
    runs = []
    with tqdm(total=len(scripts), desc="reproduce_paper", unit="script", file=sys.stderr) as bar:
        interactive = sys.stderr.isatty()
        for script in scripts:
            arguments = script_arguments(script, quick, data_root)
            skipped = not force and is_complete(out, script, arguments)
            if skipped:
                record = read_record(out, script)
            else:
                bar.set_postfix_str(f"{script.name} 0 s")

                def tick(elapsed, name=script.name):
                    if interactive:
                        bar.set_postfix_str(f"{name} {elapsed:.0f} s")

                record = run_one(script, out, arguments, tick)
            record = {**record, "outcome": _outcome(record, skipped)}
            bar.set_postfix_str(f"{script.name} {record['seconds']:.0f} s", refresh=False)
            runs.append(record)
            bar.write(f"{script.name}: {record['outcome']} ({record['seconds']:.1f} s"
                      f"{', earlier run' if skipped else ''}; exit status {record['exit_status']})")
            bar.update(1)
    return runs

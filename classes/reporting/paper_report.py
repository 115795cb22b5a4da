"""The one report of a whole reproduction: every published-vs-reproduced row of every script.

:func:`build_report` gathers, for each script ``reproduce_paper.py`` ran (or
skipped as already complete), its outcome, exit status and run time, and the
``comparison`` rows its result JSON holds (``summary.json`` for most;
script 1 writes ``session_<id>.json``, script 3 ``agreement.json``), each as
figure, quantity, published, reproduced, status and reason (the row's note).
:func:`write_report` writes it as ``report.json``, ``report.md`` and
``report.html`` (self-contained: inline style, no external assets;
:mod:`classes.reporting.report_formats`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from classes.reporting.comparison import STATUSES
from classes.reporting.paper_runner import log_path, result_files
from classes.reporting.paper_scripts import PaperScript
from classes.reporting.report_formats import format_html, format_markdown
from classes.runtime.outputs import write_atomically, write_json

REPORT_NAME = "report"
LOG_TAIL_LINES = 40
# A figure named in a row's quantity ("Fig. 3a median filters ...") overrides the script's.
_FIGURE = re.compile(r"(?:Ext\. Data )?Fig\. \d+[a-z]?(?:-[a-z])?")


def figure_of(quantity: str, default: str) -> str:
    """The figure a row belongs to: the first one its quantity names, else ``default``."""
    match = _FIGURE.search(str(quantity))
    return match.group(0) if match else default


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log ('' when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def comparison_rows(out: Path, script: PaperScript) -> tuple[list[dict], list[str]]:
    """The report rows of one script's result JSON files in ``<out>/<script>/``.

    Returns:
        ``(rows, problems)``: rows with ``script``, ``figure``, ``quantity``,
        ``published``, ``reproduced``, ``status`` and ``reason``; problems
        say which result file could not be read or holds no ``comparison``.
    """
    rows, problems = [], []
    for path in result_files(out, script):
        name = f"{script.name}/{path.name}"
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{name} cannot be read: {error}")
            continue
        comparison = result.get("comparison") if isinstance(result, dict) else None
        if not isinstance(comparison, list):
            problems.append(f"{name} holds no 'comparison' rows")
            continue
        for row in comparison:
            rows.append({
                "script": script.name,
                "figure": figure_of(row.get("quantity", ""), script.figure),
                "quantity": row.get("quantity"),
                "published": row.get("published"),
                "reproduced": row.get("reproduced"),
                "status": row.get("status"),
                "reason": row.get("note", ""),
            })
    return rows, problems


def script_entry(out: Path, script: PaperScript, run: dict) -> tuple[dict, list[dict]]:
    """One script's line of the report, and its rows."""
    rows, problems = comparison_rows(out, script)
    if run["outcome"] == "failed" and run["exit_status"] == 0:
        problems.insert(0, f"exit status 0 but no {script.result_pattern} in {script.name}/")
    failed = run["outcome"] == "failed"
    entry = {
        "number": script.number,
        "script": script.name,
        "figure": script.figure,
        "outcome": run["outcome"],
        "exit_status": run["exit_status"],
        "seconds": run["seconds"],
        "cpu_seconds": run.get("cpu_seconds"),
        "finished": run.get("finished"),
        "arguments": run["arguments"],
        "log": str(log_path(Path("."), script)),
        "result_files": [f"{script.name}/{name}" for name in run.get("result_files", {})],
        "num_rows": len(rows),
        "problems": problems,
        "log_tail": log_tail(log_path(out, script)) if failed else None,
    }
    return entry, rows


def build_report(out: Path, scripts: list[PaperScript], runs: list[dict], settings: dict) -> dict:
    """The report of one ``reproduce_paper.py`` run.

    Args:
        out: the folder holding the scripts' results folders and ``logs/``.
        scripts: the scripts run, in order.
        runs: their records from :func:`classes.reporting.paper_runner.run_scripts`.
        settings: what the report's header states (``mode``, ``data_root``,
            ``total_seconds``, ...).

    Returns:
        ``{"created", "settings", "all_succeeded", "scripts", "status_counts",
        "rows"}``; JSON-ready.
    """
    entries, rows = [], []
    for script, run in zip(scripts, runs, strict=True):
        entry, script_rows = script_entry(Path(out), script, run)
        entries.append(entry)
        rows.extend(script_rows)
    counts = {status: sum(row["status"] == status for row in rows) for status in STATUSES}
    other = len(rows) - sum(counts.values())
    if other:
        counts["other"] = other
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "all_succeeded": all(entry["outcome"] != "failed" for entry in entries),
        "scripts": entries,
        "status_counts": counts,
        "rows": rows,
    }


def write_report(out: Path, report: dict) -> list[Path]:
    """Writes ``report.json``, ``report.md`` and ``report.html`` into ``out``; returns their paths."""
    stem = Path(out) / REPORT_NAME
    paths = [write_json(stem.with_suffix(".json"), report)]
    for suffix, text in ((".md", format_markdown(report)), (".html", format_html(report))):
        paths.append(write_atomically(stem.with_suffix(suffix), lambda path, text=text: Path(path).write_text(text)))
    return paths

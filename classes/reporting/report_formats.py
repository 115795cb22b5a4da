"""The reproduction report (:mod:`classes.reporting.paper_report`) as Markdown and as HTML.

Both show the same three parts: the scripts (outcome, exit status, run time,
rows), every published-vs-reproduced row, and the tail of the log of each
script that failed. The HTML page is self-contained: its style is inline and
it loads nothing.
"""

from __future__ import annotations

import html

from classes.reporting.comparison import format_cell

TITLE = "Compact deep neural network models of visual cortex: published vs reproduced"
SCRIPT_COLUMNS = ("#", "script", "figure", "outcome", "exit status", "run time", "rows")
ROW_COLUMNS = ("figure", "quantity", "published", "reproduced", "status", "reason")
_MODES = {
    "quick": "quick (short runs with fewer models, images and steps; their values are not comparable "
             "with the published ones)",
    "default": "default (every script with its defaults)",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.reason { font-size: 0.9em; color: #555; max-width: 40em; }
.reproduced { background: #e3f4e1; } .approximate { background: #fdf6d8; }
.not-computable { background: #eeeeee; } .differs, .failed { background: #f9dede; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def format_duration(seconds) -> str:
    """``"8.3 s"``, ``"2 min 05 s"`` or ``"1 h 02 min"``; ``"-"`` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def summary_lines(report: dict) -> list[str]:
    """The report's header sentences, as plain text."""
    settings, scripts = report["settings"], report["scripts"]
    failed = [entry["script"] for entry in scripts if entry["outcome"] == "failed"]
    mode = _MODES.get(settings.get("mode"), settings.get("mode"))
    plural = "s" if len(scripts) != 1 else ""
    outcome = (f"All {len(scripts)} script{plural} succeeded." if not failed
               else f"{len(failed)} of {len(scripts)} script{plural} failed: {', '.join(failed)}.")
    counts = ", ".join(f"{count} {status}" for status, count in report["status_counts"].items() if count)
    return [
        f"Mode: {mode}.",
        f"Data: {settings.get('data_root')}. Created {report['created']}; "
        f"took {format_duration(settings.get('total_seconds'))}.",
        outcome,
        f"Rows: {counts or 'none'}.",
    ]


def _script_cells(entry: dict) -> list[str]:
    time = format_duration(entry["seconds"]) + (" (earlier run)" if entry["outcome"] == "skipped" else "")
    return [str(entry["number"]), entry["script"], entry["figure"], entry["outcome"],
            str(entry["exit_status"]), time, str(entry["num_rows"])]


def _row_cells(row: dict) -> list[str]:
    return [row["figure"], format_cell(row["quantity"]), format_cell(row["published"]),
            format_cell(row["reproduced"]), format_cell(row["status"]), row["reason"] or ""]


def _markdown_table(header, lines) -> list[str]:
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return table + ["| " + " | ".join(cell(text) for text in line) + " |" for line in lines]


def _problems(entry: dict) -> list[str]:
    return [*entry["problems"], *([] if entry["outcome"] != "failed" else [
        f"exit status {entry['exit_status']}; log {entry['log']}"])]


def format_markdown(report: dict) -> str:
    """The report as Markdown."""
    lines = [f"# {TITLE}", "", *summary_lines(report), "", "## Scripts", ""]
    lines += _markdown_table(SCRIPT_COLUMNS, [_script_cells(entry) for entry in report["scripts"]])
    lines += ["", "## Published vs reproduced", ""]
    lines += _markdown_table(ROW_COLUMNS, [_row_cells(row) for row in report["rows"]])
    troubled = [entry for entry in report["scripts"] if _problems(entry)]
    if troubled:
        lines += ["", "## Failures and problems"]
    for entry in troubled:
        lines += ["", f"### {entry['script']}", ""] + [f"- {problem}" for problem in _problems(entry)]
        if entry["log_tail"]:
            lines += ["", f"Last lines of {entry['log']}:", "", "```text", entry["log_tail"], "```"]
    return "\n".join(lines) + "\n"


def _html_table(header, lines, classes) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = []
    for line, row_class in zip(lines, classes, strict=True):
        cells = "".join(('<td class="reason">' if name == "reason" else "<td>") + f"{html.escape(str(text))}</td>"
                        for name, text in zip(header, line, strict=True))
        body.append(f'<tr class="{row_class}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _css_class(text) -> str:
    return str(text).replace(" ", "-")


def format_html(report: dict) -> str:
    """The report as one self-contained HTML page."""
    scripts, rows = report["scripts"], report["rows"]
    parts = [f"<h1>{html.escape(TITLE)}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in summary_lines(report)]
    parts += ["<h2>Scripts</h2>", _html_table(SCRIPT_COLUMNS, [_script_cells(entry) for entry in scripts],
                                               [_css_class(entry["outcome"]) for entry in scripts])]
    parts += ["<h2>Published vs reproduced</h2>",
              _html_table(ROW_COLUMNS, [_row_cells(row) for row in rows], [_css_class(row["status"]) for row in rows])]
    troubled = [entry for entry in scripts if _problems(entry)]
    if troubled:
        parts.append("<h2>Failures and problems</h2>")
    for entry in troubled:
        parts.append(f"<h3>{html.escape(entry['script'])}</h3><ul>"
                     + "".join(f"<li>{html.escape(problem)}</li>" for problem in _problems(entry)) + "</ul>")
        if entry["log_tail"]:
            parts.append(f"<p>Last lines of {html.escape(entry['log'])}:</p><pre>{html.escape(entry['log_tail'])}</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(TITLE)}</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")

"""The paper's figures as this project reproduces them: ``figures.html``.

For each numbered script 1-8, the figures (``.png``) and published-vs-
reproduced tables (the ``comparison`` rows of its JSON results) that it
left in its results folder (``results/<script>/`` by default) are copied
into the site; a script with no results gets the command that makes them.
"""

from __future__ import annotations

import ast
import json
import shutil
from html import escape
from pathlib import Path

from classes.explorer.layout import page, table
from classes.runtime.paths import REPOSITORY_ROOT

SCRIPT_NUMBERS = range(1, 9)


def numbered_scripts(repository: Path = REPOSITORY_ROOT) -> list[tuple[str, str]]:
    """``(stem, first paragraph of its docstring)`` of scripts 1-8, in order."""
    found = []
    for number in SCRIPT_NUMBERS:
        for path in sorted(repository.glob(f"script{number}_*.py")):
            docstring = ast.get_docstring(ast.parse(path.read_text())) or path.stem
            found.append((path.stem, " ".join(docstring.strip().split("\n\n")[0].split())))
    return found


def comparison_rows(folder: Path) -> list[dict]:
    """Every ``comparison`` row of the JSON files in a results folder (sorted by file name)."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(content, dict) and isinstance(content.get("comparison"), list):
            rows += [row for row in content["comparison"] if isinstance(row, dict) and "quantity" in row]
    return rows


def copy_figures(folder: Path, site: Path, stem: str) -> list[str]:
    """Copies a results folder's PNG figures to ``<site>/figures/<stem>/``; site-relative paths."""
    copied = []
    for path in sorted(folder.glob("*.png")):
        target = site / "figures" / stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(f"figures/{stem}/{path.name}")
    return copied


def _section(stem: str, title: str, results_dir: Path, site: Path) -> tuple[str, bool]:
    folder = results_dir / stem
    heading = f'<h2 id="{stem}">{escape(title)}</h2><p class="muted"><code>{stem}.py</code></p>'
    if not folder.is_dir():
        return heading + (f'<p class="note">No results yet: run <code>python {stem}.py</code> (it writes '
                          f"<code>results/{stem}/</code>), then build the explorer again.</p>"), False
    rows = comparison_rows(folder)
    parts = [heading]
    if rows:
        parts.append(table(("quantity", "published", "reproduced", "status", "note"),
                           [[row.get(key, "") if row.get(key) is not None else "-" for key in
                             ("quantity", "published", "reproduced", "status", "note")] for row in rows]))
    for path in copy_figures(folder, site, stem):
        name = Path(path).stem.replace("_", " ")
        parts.append(f'<figure class="figures"><img src="{path}" alt="Figure {escape(name)} of {stem}" '
                     f'loading="lazy"><figcaption>{escape(name)}</figcaption></figure>')
    if len(parts) == 1:
        parts.append(f'<p class="note">{folder} holds no figures or comparison table.</p>')
    return "".join(parts), True


def figures_page(site: Path, results_dir: Path) -> tuple[str, list[str]]:
    """The figures page and the scripts that have results.

    Args:
        site: the site's folder (figures are copied under it).
        results_dir: the folder holding the scripts' results folders.

    Returns:
        ``(html, stems of the scripts with results)``.
    """
    sections, present = [], []
    for stem, title in numbered_scripts():
        html, found = _section(stem, title, Path(results_dir), site)
        sections.append(html)
        present += [stem] if found else []
    contents = "".join(f'<li><a href="#{stem}">{escape(title)}</a></li>' for stem, title in numbered_scripts())
    body = ("<h1>The paper's figures, reproduced</h1><p>What the numbered scripts of this project reproduce "
            "from the paper's release: each script's published-vs-reproduced table and its figures, as "
            f"they were in <code>{escape(str(results_dir))}</code> when this site was built.</p>"
            f"<ol>{contents}</ol>" + "".join(sections))
    return page("Paper figures", body, description="Figures and tables of the paper reproduced"), present

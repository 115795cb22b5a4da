"""Runs the tutorials and renders them as HTML pages with their outputs.

The tutorials are text sources, ``tutorials/NN_name.py`` in jupytext's
percent format; nothing executed is stored beside them. This module turns a
source into a notebook (:func:`read_tutorial`), executes it top to bottom in
a fresh kernel (:func:`execute_tutorial`, the step cap
``COWLEY2023_TUTORIAL_STEPS`` passed to the kernel), checks that its cells
ran in order (:func:`check_execution_order`) and writes, per tutorial, the
executed page ``NN_name.html`` (nbconvert) and the notebook without outputs
``NN_name.ipynb`` (to open in Jupyter or Colab), plus ``index.html``.
``tests/test_tutorials.py`` runs every tutorial through the same functions.

Command (from the repository root)::

    python -m tutorials.build --out docs/tutorials            # full runs
    python -m tutorials.build --steps 5 --only 01,02          # quick runs of two tutorials

Run time on a 2-core CPU: each tutorial takes under 2 minutes with
``--steps 5`` (what CI runs), about 1-4 minutes in full (tutorial 6, which
distils and prunes a model: about 5).
"""

from __future__ import annotations

import argparse
import html
import os
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CoalesceStreamsPreprocessor
from pygments.formatters import HtmlFormatter

from classes.runtime.outputs import write_atomically
from classes.runtime.paths import REPOSITORY_ROOT
from classes.runtime.step_cap import STEP_CAP_VARIABLE

TUTORIALS_FOLDER = Path(__file__).resolve().parent
DEFAULT_OUTPUT = REPOSITORY_ROOT / "docs" / "tutorials"
CELL_TIMEOUT_SECONDS = 600
KERNEL_NAME = "python3"


def tutorial_sources(only=None) -> list[Path]:
    """The tutorial sources ``NN_name.py``, in order.

    Args:
        only: None for all, or names / number prefixes to keep (``"01"``,
            ``"02_score_against_v4"``).

    Raises:
        ValueError: a name in ``only`` matches no tutorial.
    """
    sources = sorted(TUTORIALS_FOLDER.glob("[0-9][0-9]_*.py"))
    if only is None:
        return sources
    kept = []
    for name in only:
        matches = [source for source in sources if source.stem == name or source.stem.startswith(f"{name}_")]
        if not matches:
            raise ValueError(f"No tutorial {name!r}; tutorials: {', '.join(source.stem for source in sources)}.")
        kept += [source for source in matches if source not in kept]
    return kept


def read_tutorial(source: Path) -> nbformat.NotebookNode:
    """The notebook of a tutorial source (jupytext percent format), without outputs."""
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    notebook.metadata["cowley2023"] = {"source": f"tutorials/{source.name}"}
    return notebook


def execute_tutorial(source: Path, step_cap: int | None = None, working_dir=None,
                     timeout: int = CELL_TIMEOUT_SECONDS) -> tuple[nbformat.NotebookNode, float]:
    """Executes a tutorial top to bottom in a fresh kernel.

    TensorFlow's C++ start-up log lines go to this process's stderr, not
    into the notebook (the kernel does not capture file-descriptor output);
    consecutive stream outputs are merged and progress bars reduced to their
    last state, as a notebook front end shows them.

    Args:
        source: the tutorial's ``.py`` source.
        step_cap: the value of ``COWLEY2023_TUTORIAL_STEPS`` for the kernel;
            None runs the full tutorial (the variable is removed).
        working_dir: the kernel's working folder; None for the tutorials folder.
        timeout: seconds allowed per cell.

    Returns:
        ``(executed notebook, seconds)``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised; the message
            holds the cell and its traceback.
    """
    notebook = read_tutorial(source)
    environment = dict(os.environ)
    environment.pop(STEP_CAP_VARIABLE, None)
    if step_cap is not None:
        environment[STEP_CAP_VARIABLE] = str(int(step_cap))
    folder = str(working_dir or TUTORIALS_FOLDER)
    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL_NAME,
                            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
                            resources={"metadata": {"path": folder}})
    start = time.perf_counter()
    client.execute(env=environment, cwd=folder)
    seconds = time.perf_counter() - start
    notebook, _ = CoalesceStreamsPreprocessor().preprocess(notebook, {})
    notebook.metadata["cowley2023"]["step_cap"] = step_cap
    return notebook, seconds


def check_execution_order(notebook: nbformat.NotebookNode) -> int:
    """Checks that the code cells ran once each, in order: execution counts 1..N.

    Returns:
        N, the number of code cells.

    Raises:
        ValueError: a code cell did not run, or ran out of order.
    """
    counts = [cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"]
    expected = list(range(1, len(counts) + 1))
    if counts != expected:
        raise ValueError(f"Code cells ran out of order or not at all: execution counts {counts}, "
                         f"expected {expected}.")
    return len(counts)


def without_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook with every output and execution count removed."""
    clean = nbformat.from_dict(notebook)
    for cell in clean.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    clean.metadata.get("cowley2023", {}).pop("step_cap", None)
    return clean


def tutorial_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The first markdown heading of the notebook, without its ``#``."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def page_html(notebook: nbformat.NotebookNode, source: Path, colab_prefix: str | None = None) -> str:
    """The HTML page of an executed tutorial: its cells, outputs and figures inline, styled by ``style.css``.

    Args:
        notebook: the executed notebook (:func:`execute_tutorial`).
        source: its source.
        colab_prefix: where the pages' notebooks open in Colab, e.g.
            ``https://colab.research.google.com/github/<owner>/<name>/blob/gh-pages/tutorials/``
            (Colab opens notebooks kept on GitHub, such as a published
            ``gh-pages`` branch); the page links to ``<prefix><name>.ipynb``.
            None for no Colab link.
    """
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(notebook)
    title = html.escape(tutorial_title(notebook, source.stem))
    cap = notebook.metadata.get("cowley2023", {}).get("step_cap")
    run = "a full run" if cap is None else f"a quick run ({STEP_CAP_VARIABLE}={cap})"
    links = ['<a href="index.html">all tutorials</a>', f'<a href="{source.stem}.ipynb">notebook</a>']
    if colab_prefix:
        links.append(f'<a href="{html.escape(colab_prefix)}{source.stem}.ipynb">open in Colab</a>')
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n{STYLESHEET_LINK}"
        f"</head>\n<body><main>\n<nav>{' | '.join(links)} | executed top to bottom in {run} from "
        f"tutorials/{source.name}</nav>\n{body}\n</main>\n</body></html>\n"
    )


STYLESHEET_NAME = "style.css"  # one stylesheet beside the pages, shared by all of them
STYLESHEET_LINK = f'<link rel="stylesheet" href="{STYLESHEET_NAME}">'


def write_stylesheet(output_dir: Path) -> Path:
    """``style.css`` beside the pages: tutorials/page.css and the code highlighting's colours."""
    style = (TUTORIALS_FOLDER / "page.css").read_text() + HtmlFormatter().get_style_defs(".highlight") + "\n"
    return write_atomically(Path(output_dir) / STYLESHEET_NAME, lambda path: Path(path).write_text(style))


def write_page(notebook: nbformat.NotebookNode, source: Path, output_dir: Path,
               colab_prefix: str | None = None) -> tuple[Path, Path]:
    """Writes ``<name>.html`` (:func:`page_html`) and ``<name>.ipynb`` (no outputs) into ``output_dir``."""
    text = page_html(notebook, source, colab_prefix)
    page = write_atomically(Path(output_dir) / f"{source.stem}.html",
                            lambda path: Path(path).write_text(text, encoding="utf-8"))
    clean = without_outputs(notebook)
    plain = write_atomically(Path(output_dir) / f"{source.stem}.ipynb", lambda path: nbformat.write(clean, str(path)))
    return page, plain


def write_index(output_dir: Path) -> Path:
    """``index.html``: a link to every tutorial whose page is in ``output_dir``, in order."""
    items = "\n".join(
        f'<li><a href="{source.stem}.html">{html.escape(tutorial_title(read_tutorial(source), source.stem))}</a> '
        f'(<a href="{source.stem}.ipynb">notebook</a>)</li>'
        for source in tutorial_sources() if (Path(output_dir) / f"{source.stem}.html").is_file()
    )
    text = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Tutorials: compact models of V4</title>"
        f"{STYLESHEET_LINK}</head>\n<body>\n<h1>Tutorials: compact deep neural network models of V4</h1>\n"
        "<p>Each page is a tutorial of this reproduction of Cowley, Stan, Pillow &amp; Smith (Nature 2025), "
        "executed top to bottom with its outputs. The notebook link gives it without outputs, to run "
        "yourself; its first cell sets it up on Colab.</p>\n"
        f"<ol>\n{items}\n</ol>\n</body></html>\n"
    )
    return write_atomically(Path(output_dir) / "index.html", lambda path: Path(path).write_text(text, encoding="utf-8"))


def build(output_dir=DEFAULT_OUTPUT, step_cap: int | None = None, only=None, working_dir=None,
          colab_prefix: str | None = None) -> list[dict]:
    """Executes the chosen tutorials, checks their order, writes their pages and the index.

    Args:
        output_dir: the folder of the pages.
        step_cap: see :func:`execute_tutorial`.
        only: see :func:`tutorial_sources`.
        working_dir: the kernels' working folder.
        colab_prefix: see :func:`page_html`.

    Returns:
        One dict per tutorial: ``stem``, ``seconds``, ``code_cells``.
    """
    entries = []
    for source in tutorial_sources(only):
        print(f"running {source.name} ...", flush=True)
        notebook, seconds = execute_tutorial(source, step_cap, working_dir)
        code_cells = check_execution_order(notebook)
        write_page(notebook, source, Path(output_dir), colab_prefix)
        entries.append({"stem": source.stem, "seconds": seconds, "code_cells": code_cells})
        print(f"  {source.stem}: {code_cells} code cells in {seconds:.1f} s", flush=True)
    write_stylesheet(Path(output_dir))
    write_index(Path(output_dir))
    return entries


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT, help="folder of the pages (default docs/tutorials)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"step cap for long loops ({STEP_CAP_VARIABLE}); default: full runs")
    parser.add_argument("--only", default=None, help="comma-separated tutorial numbers or names (default: all)")
    parser.add_argument("--colab-prefix", default=None,
                        help="URL prefix of the notebooks in Colab, e.g. https://colab.research.google.com/github/"
                        "<owner>/<name>/blob/gh-pages/tutorials/ (default: no Colab links)")
    arguments = parser.parse_args(argv)
    if arguments.steps is not None and arguments.steps < 1:
        parser.error("--steps must be at least 1")
    arguments.only = None if arguments.only is None else [name.strip() for name in arguments.only.split(",") if name.strip()]
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    try:
        build(arguments.out, arguments.steps, arguments.only, colab_prefix=arguments.colab_prefix)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()

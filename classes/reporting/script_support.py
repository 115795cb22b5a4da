"""What every numbered script does first and last.

First: resolve the data, verify it if asked, prepare ``--out``. Last: write
``summary.json`` and print the comparison table, notes, files and timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classes.data.data_root import resolve_data_root, verify_data_root
from classes.reporting.comparison import format_comparison_table
from classes.runtime.outputs import default_results_dir, prepare_output_dir, write_json


def script_parser(docstring: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the first line of a script's docstring."""
    return argparse.ArgumentParser(description=docstring.strip().split("\n")[0])


def add_common_arguments(parser) -> None:
    """Adds ``--data-root``, ``--out``, ``--overwrite`` and ``--verify``."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the release's data_* folders (default: "
        "$COWLEY2023_DATA_ROOT, this repository, then ../shared/cowley2023_release)",
    )
    parser.add_argument("--out", default=None, help="results folder (default results/<script>/)")
    parser.add_argument(
        "--overwrite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replace earlier results in --out (default); --no-overwrite refuses",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every release file against MANIFEST.sha256 first",
    )


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Adds the common arguments (:func:`add_common_arguments`) and parses ``argv``."""
    add_common_arguments(parser)
    return parser.parse_args(argv)


def start_script(arguments, script: str) -> tuple[Path, Path]:
    """Resolves the data root, runs ``--verify`` if asked, prepares ``--out``.

    Args:
        arguments: the parsed arguments (``data_root``, ``verify``, ``out``, ``overwrite``).
        script: the script's ``__file__`` or a name; its stem names the
            default results folder ``results/<stem>/``.

    Returns:
        ``(data_root, output_dir)``.

    Exits with status 2 and a one-line message (no traceback) when the data
    cannot be found or fails verification.
    """
    try:
        data_root = resolve_data_root(arguments.data_root)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    print(f"data root: {data_root}")
    if getattr(arguments, "verify", False):
        problems = verify_data_root(data_root)
        if problems:
            sys.exit("error: release files failed verification:\n  " + "\n  ".join(problems))
        print("verify: every file matches MANIFEST.sha256")
    output = Path(arguments.out) if arguments.out else default_results_dir(Path(script).stem)
    try:
        output_dir = prepare_output_dir(output, overwrite=arguments.overwrite)
    except (FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    return data_root, output_dir


def run_script(parse_arguments, run, argv=None):
    """A numbered script's ``main``: parses its arguments and runs it.

    Args:
        parse_arguments: ``parse_arguments(argv)`` returning the arguments.
        run: ``run(arguments)``, the script's work.
        argv: command-line arguments; None reads ``sys.argv``.

    Returns:
        What ``run`` returns. Bad arguments, a ValueError or a missing file
        exit with a one-line message instead.
    """
    arguments = parse_arguments(argv)
    return exit_on_user_error(lambda: run(arguments))


def entry_point(parse_arguments, run):
    """A numbered script's ``main(argv=None)``: :func:`run_script` of its two halves.

    Args:
        parse_arguments: ``parse_arguments(argv)`` returning the arguments.
        run: ``run(arguments)``, the script's work.

    Returns:
        ``main(argv=None)``, which returns what ``run`` returns.
    """

    def main(argv=None):
        return run_script(parse_arguments, run, argv)

    main.__doc__ = f"Parses the command line (None: sys.argv) and runs {run.__module__}."
    return main


def exit_on_user_error(function):
    """Runs ``function()``; turns our ValueError/FileNotFoundError into a clean exit."""
    try:
        return function()
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        sys.exit(f"error: {error}")


def format_timings(timings: dict[str, float]) -> str:
    """``time: <name> <seconds> s, ...``, the scripts' last printed line.

    Args:
        timings: seconds per named step, in the order to print.

    Returns:
        The line (no newline).
    """
    return "time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())


def report_results(output_dir: Path, summary: dict, table: list[dict], written: str, time_text: str,
                   notes=(), extra_text: str | None = None, result_name: str = "summary.json") -> None:
    """Writes the result's JSON and prints what a script found and wrote.

    Prints, after a blank line: the comparison table, ``extra_text`` (after
    another blank line) when given, one ``note:`` line per note, then
    ``wrote <written>`` after a blank line and ``time_text``.

    Args:
        output_dir: ``--out``; the result's JSON is written there.
        summary: what the result's JSON holds.
        table: rows of :func:`classes.runtime.comparison_row`.
        written: what the ``wrote`` line names (folder and files).
        time_text: the last line, e.g. from :func:`format_timings`.
        notes: lines printed as ``note: ...``.
        extra_text: a further block printed after the table; None for none.
        result_name: the JSON file's name in ``output_dir``.
    """
    write_json(output_dir / result_name, summary)
    print()
    print(format_comparison_table(table))
    if extra_text is not None:
        print()
        print(extra_text)
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {written}")
    print(time_text)

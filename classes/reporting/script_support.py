"""What every numbered script does first and last.

First: resolve the data, prepare the results folder, verify the data if
asked. Last: write ``summary.json``, print the comparison table, notes, files
and timings, and swap the new results in (whole, or not at all when the run
fails or is interrupted).
"""

from __future__ import annotations

import argparse
import atexit
import signal
import sys
import threading
from pathlib import Path

from classes.data.data_root import resolve_data_root
from classes.data.decode_cache import verify_decode_caches
from classes.data.release_files import save_verified_record, verify_data_root
from classes.reporting.comparison import format_comparison_table
from classes.runtime.outputs import default_results_dir, write_json
from classes.runtime.paths import default_cache_dir
from classes.runtime.result_folder import ResultFolder

# The results folders opened by start_script and not yet swapped in or dropped;
# any left at exit (a caller that never finished) are dropped.
_ACTIVE: list[ResultFolder] = []


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
        help="replace earlier results in --out, whole, when the run finishes (default); "
        "--no-overwrite refuses",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every release file against MANIFEST.sha256, and the decode caches, first "
        "(without it each file is checked the first time it is used)",
    )


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Adds the common arguments (:func:`add_common_arguments`) and parses ``argv``."""
    add_common_arguments(parser)
    return parser.parse_args(argv)


def start_script(arguments, script: str, keep=()) -> tuple[Path, Path]:
    """Resolves the data root, prepares the results folder, runs ``--verify`` if asked.

    The results go to a new folder beside ``--out``, swapped in whole when
    the run finishes (:class:`classes.runtime.result_folder.ResultFolder`;
    :func:`run_script` does the swap, or :func:`guard_results`): a run that
    fails or is interrupted leaves the previous results as they were. Every
    check that can fail fast (data root, cache folder, ``--out`` writable)
    runs before any work.

    Args:
        arguments: the parsed arguments (``data_root``, ``verify``, ``out``, ``overwrite``).
        script: the script's ``__file__`` or a name; its stem names the
            default results folder ``results/<stem>/``.
        keep: entries of ``--out`` that a later run resumes from, carried
            into the new folder (``classes.runtime.result_folder.KEEP_EVERYTHING``
            for all).

    Returns:
        ``(data_root, output_dir)``: ``output_dir`` is where this run writes.

    Exits with status 1 and a one-line message (no traceback) when the data
    cannot be found or fails verification, the cache folder is a file, or
    ``--out`` cannot be used.
    """
    try:
        data_root = resolve_data_root(arguments.data_root)
        default_cache_dir()
        output = Path(arguments.out) if arguments.out else default_results_dir(Path(script).stem)
        folder = ResultFolder(output, overwrite=arguments.overwrite, keep=keep)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    _ACTIVE.append(folder)
    print(f"data root: {data_root}")
    if getattr(arguments, "verify", False):
        _verify(data_root)
    return data_root, folder.path


def _verify(data_root: Path) -> None:
    """``--verify``: every release file against MANIFEST.sha256, and the decode caches."""
    try:
        problems = verify_data_root(data_root)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    if problems:
        sys.exit("error: release files failed verification:\n  " + "\n  ".join(problems))
    print("verify: every file matches MANIFEST.sha256")
    intact, removed = verify_decode_caches()
    for line in removed:
        print(f"warning: {line}", file=sys.stderr)
    print(f"verify: {intact} decode cache files intact, {len(removed)} corrupt removed")


def shown(text) -> str:
    """``text`` (a path or message) naming the results folder where it names this run's new folder."""
    text = str(text)
    for folder in reversed(_ACTIVE):  # a run's folder may lie inside another run's (bench_paper around reproduce_paper)
        text = folder.shown(text)
    return text


def _raise_interrupt(signal_number, frame):
    raise KeyboardInterrupt(signal_number)


def guard_results(function):
    """Runs ``function()``; swaps its results folder in when it returns, or drops it.

    SIGTERM is handled like SIGINT. When ``function`` fails, exits or is
    interrupted, the folder opened by :func:`start_script` is deleted and the
    previous results stay whole; an interrupt exits with one line and status
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM). Our ValueError/FileNotFoundError exit with a one-line message
    (:func:`exit_on_user_error`).

    Returns:
        What ``function`` returns.
    """
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    first = len(_ACTIVE)
    try:
        result = exit_on_user_error(function)
        while len(_ACTIVE) > first:
            _ACTIVE.pop().commit()
    except KeyboardInterrupt as interrupt:
        _abandon_from(first)
        number = interrupt.args[0] if interrupt.args else signal.SIGINT
        print(f"interrupted ({signal.Signals(number).name}); the previous results were left as they were.",
              file=sys.stderr)
        raise SystemExit(128 + number) from None
    except BaseException:
        _abandon_from(first)
        raise
    finally:
        save_verified_record()
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
    return result


def _abandon_from(first: int) -> None:
    while len(_ACTIVE) > first:
        _ACTIVE.pop().abandon()


atexit.register(_abandon_from, 0)


def run_script(parse_arguments, run, argv=None):
    """A numbered script's ``main``: parses its arguments and runs it.

    Args:
        parse_arguments: ``parse_arguments(argv)`` returning the arguments.
        run: ``run(arguments)``, the script's work.
        argv: command-line arguments; None reads ``sys.argv``.

    Returns:
        What ``run`` returns. Bad arguments, a ValueError or a missing file
        exit with a one-line message instead; the results folder is swapped
        in only when ``run`` returns (:func:`guard_results`).
    """
    arguments = parse_arguments(argv)
    return guard_results(lambda: run(arguments))


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
    print(f"\nwrote {shown(written)}")
    print(time_text)

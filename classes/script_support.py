"""What every numbered script does first: resolve data, verify, prepare --out."""

from __future__ import annotations

import sys
from pathlib import Path

from classes.data_root import resolve_data_root, verify_data_root
from classes.outputs import default_results_dir, prepare_output_dir


def start_script(arguments, script_name: str) -> tuple[Path, Path]:
    """Resolves the data root, runs ``--verify`` if asked, prepares ``--out``.

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
    output = Path(arguments.out) if arguments.out else default_results_dir(script_name)
    try:
        output_dir = prepare_output_dir(output, overwrite=arguments.overwrite)
    except (FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    return data_root, output_dir


def exit_on_user_error(function):
    """Runs ``function()``; turns our ValueError/FileNotFoundError into a clean exit."""
    try:
        return function()
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        sys.exit(f"error: {error}")

"""A run's results folder, whole or untouched.

A run never writes into its results folder (``--out``) directly. It writes
into a new sibling folder, ``<out>.partial-<pid>``, which is swapped in when
the run finishes: the previous results move aside to ``<out>.previous-<pid>``
and are deleted only after the swap. A run that fails or is interrupted
deletes its partial folder and leaves the previous results as they were, so a
results folder always holds the files of one whole run (and no empty folder
is left where there were no results). The scripts get this from
:func:`classes.reporting.script_support.start_script`.

State a later run resumes from (script 6's per-model records, script 7's
Gram cache, the training stages' folders) lives in named entries of the
results folder, ``keep``: they move into the partial folder when the run
starts, so the run continues from them, and back when it is abandoned, so
the work done survives either way. A run killed outright (SIGKILL) leaves its
partial folder behind; the next run on the same ``--out`` moves the kept
entries back and deletes it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

KEEP_EVERYTHING = "*"
# Marks a folder as a run's results, which the next run may replace whole; a
# folder without it that holds files (a home folder given as --out by mistake)
# is never replaced.
MARKER = ".cowley2023-results"
_MARKER_TEXT = "The results of one whole run; the next run on this folder replaces it.\n"
_CARRIED = ".carried.json"


def is_part_file(name: str) -> bool:
    """True for the hidden ``.<name>.part...`` files an interrupted atomic write leaves behind."""
    return name.startswith(".") and ".part" in name


def holds_results(folder: Path) -> bool:
    """True when ``folder`` exists and holds anything but hidden ``.part`` files."""
    return folder.is_dir() and any(not is_part_file(entry.name) for entry in folder.iterdir())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_target(final: Path, overwrite: bool) -> None:
    """Raises ValueError or FileExistsError unless ``final`` can become this run's results folder."""
    if final.exists() and not final.is_dir():
        raise ValueError(f"--out {final} exists and is not a folder.")
    parent = next(folder for folder in final.parents if folder.exists())
    if not parent.is_dir():
        raise ValueError(f"--out {final} cannot be created: {parent} is a file, not a folder.")
    if not overwrite and holds_results(final):
        raise FileExistsError(
            f"{final} already holds results; pass --overwrite to replace them or choose another --out."
        )
    if holds_results(final) and not (final / MARKER).is_file():
        raise ValueError(
            f"--out {final} holds files that no run of this project wrote (it lacks the {MARKER} "
            "marker), and a run replaces its --out whole; choose a new or empty folder, or delete "
            "this one first."
        )
    # The partial folder is made in the nearest existing parent; the previous results are moved from.
    for folder in (parent, final) if final.exists() else (parent,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"--out {final} cannot be written: no write permission in {folder}.")


def _make_folder(path: Path, final: Path) -> list[Path]:
    """Creates ``path`` and its missing parents; returns the folders created, deepest last."""
    created = [folder for folder in reversed(path.parents) if not folder.exists()] + [path]
    try:
        path.mkdir(parents=True)
    except OSError as error:
        raise ValueError(f"--out {final} cannot be written ({error.strerror}); choose a folder you can "
                         "write to.") from None
    return created


def _kept_names(folder: Path, keep) -> list[str]:
    """The entries of ``folder`` that ``keep`` names (all but hidden bookkeeping for :data:`KEEP_EVERYTHING`)."""
    if not folder.is_dir():
        return []
    if keep == KEEP_EVERYTHING:
        return sorted(entry.name for entry in folder.iterdir()
                      if not is_part_file(entry.name) and entry.name not in (MARKER, _CARRIED))
    return [name for name in keep if (folder / name).exists()]


def _move_back(partial: Path, final: Path, keep) -> None:
    """Moves the kept entries of ``partial`` into ``final`` (created, marked, when absent)."""
    for name in _kept_names(partial, keep):
        if not (final / name).exists():
            final.mkdir(parents=True, exist_ok=True)
            if not (final / MARKER).exists():
                (final / MARKER).write_text(_MARKER_TEXT)
            os.replace(partial / name, final / name)


def _recover_stale(final: Path) -> None:
    """Tidies up after runs on ``final`` that were killed outright (their process is gone)."""
    if not final.parent.is_dir():
        return
    for kind in ("previous", "partial"):
        prefix = f"{final.name}.{kind}-"
        for sibling in final.parent.iterdir():
            suffix = sibling.name.removeprefix(prefix)
            if sibling.name == suffix or not suffix.isdigit() or _process_alive(int(suffix)):
                continue
            if kind == "previous" and not final.exists():
                os.replace(sibling, final)  # killed between the two renames of the swap
                continue
            if kind == "partial":
                try:
                    _move_back(sibling, final, json.loads((sibling / _CARRIED).read_text()))
                except (OSError, ValueError):
                    pass  # nothing was kept
            shutil.rmtree(sibling, ignore_errors=True)


class ResultFolder:
    """Where one run writes its results, swapped in whole at the end.

    Example::

        folder = ResultFolder("results/script4_compact_perf")
        try:
            write_json(folder.path / "summary.json", summary)
        except BaseException:
            folder.abandon()
            raise
        folder.commit()

    Args:
        final: the results folder (``--out``); created by :meth:`commit` when absent.
        overwrite: when False and ``final`` already holds results, refuse.
        keep: names of entries of ``final`` holding state a later run resumes
            from, carried into the new folder; :data:`KEEP_EVERYTHING` for all.

    Attributes:
        final: the results folder, absolute.
        path: where this run writes, ``<final>.partial-<pid>``.

    Raises:
        FileExistsError: ``final`` holds results and ``overwrite`` is False.
        ValueError: ``final`` or a parent is a file, or cannot be written.
    """

    def __init__(self, final, overwrite: bool = True, keep=()):
        final = Path(final).expanduser().absolute()
        self.final = final.resolve() if final.is_symlink() else final
        _check_target(self.final, overwrite)
        _recover_stale(self.final)
        self.path = self.final.with_name(f"{self.final.name}.partial-{os.getpid()}")
        self._created = _make_folder(self.path, self.final)
        self.keep = self._carry_in(keep)

    def _carry_in(self, keep) -> list[str] | str:
        if not keep:
            return []
        keep = keep if keep == KEEP_EVERYTHING else list(keep)
        # Written first, so that the next run can undo this one if it is killed outright.
        (self.path / _CARRIED).write_text(json.dumps(keep))
        names = _kept_names(self.final, keep)
        for name in names:
            os.replace(self.final / name, self.path / name)
        return keep

    def shown(self, text) -> str:
        """``text`` (a path or a message) with this run's folder named as the results folder."""
        return str(text).replace(str(self.path), str(self.final))

    def commit(self) -> Path:
        """Swaps the new results in; the previous ones are deleted after the swap.

        Returns:
            ``final``.
        """
        (self.path / _CARRIED).unlink(missing_ok=True)
        (self.path / MARKER).write_text(_MARKER_TEXT)
        aside = None
        if self.final.exists():
            aside = self.final.with_name(f"{self.final.name}.previous-{os.getpid()}")
            os.replace(self.final, aside)
        os.replace(self.path, self.final)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return self.final

    def abandon(self) -> None:
        """Deletes the new folder; the previous results stay whole.

        The kept entries (carried in, or made by this run) move to ``final``,
        so that the next run resumes from them.
        """
        if self.keep:
            _move_back(self.path, self.final, self.keep)
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in reversed(self._created[:-1]):
            try:
                folder.rmdir()  # a parent this run created, unless something else was put there
            except OSError:
                break

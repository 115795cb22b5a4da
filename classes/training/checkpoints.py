"""Resumable training: a run folder whose ``state.json`` names its files.

A training loop that may be interrupted keeps, in one folder, the files it
needs to continue (weights, optimizer state) and a ``state.json`` that says
how far it got and which files hold that point. The one way this project
does it (:func:`classes.training.stream_distillation.train_on_stream` and
:func:`classes.ensemble.training.train_member`):

- each file is written atomically under a name that changes with progress
  (e.g. ``trainer_chunk0003.npz``), and the state is written after the
  files it names, so a crash at any moment leaves the previous state and
  its files, a consistent pair;
- the run's files that the new state no longer names are removed only after
  the state is written;
- the state records the settings the run started with, and a resume with
  other settings is refused rather than mixing two runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from classes.runtime.outputs import write_atomically, write_json

STATE_FILE = "state.json"


def setting_differences(saved: Mapping, settings: Mapping) -> list[str]:
    """Describes each setting whose saved value differs from the current one.

    Settings that are dicts are compared entry by entry, so the description
    names the entry that changed (``"config.epochs: 1 -> 2"``). The current
    values are compared as JSON would store them (tuples as lists).

    Args:
        saved: the settings read back from a run's files.
        settings: the settings of the call at hand.

    Returns:
        One ``"name: saved -> current"`` per difference; empty when none.
    """
    settings = json.loads(json.dumps(settings))
    differences = []
    for name, value in settings.items():
        previous = saved.get(name, "absent")
        if isinstance(value, dict) and isinstance(previous, dict):
            # An entry the run had and the call lacks is a difference too.
            removed = {entry: "absent" for entry in previous if entry not in value}
            differences += [f"{name}.{entry}" for entry in setting_differences(previous, {**value, **removed})]
        elif previous != value:
            differences.append(f"{name}: {previous} -> {value}")
    return differences


def refuse_changed_settings(saved: Mapping, settings: Mapping, where, remedy: str) -> None:
    """Refuses to continue a run that was started with other settings.

    Args:
        saved: the settings the run was started with.
        settings: the settings of the call at hand (only these are compared).
        where: the folder or file that holds the run, for the message.
        remedy: what the user can do, e.g. ``"choose another --out"``.

    Raises:
        ValueError: a setting differs; the one-line message names each
            difference and the remedy.
    """
    differences = setting_differences(saved, settings)
    if differences:
        raise ValueError(f"{where} holds a run made with other settings ({'; '.join(differences)}); {remedy}.")


def _json_object(data):
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, found {type(data).__name__}")
    return data


class RunFolder:
    """The folder of one resumable training run.

    Args:
        path: the folder; created by the first write.
        file_prefixes: name prefixes of the files the run replaces as it
            progresses (e.g. ``("checkpoint_chunk",)``); after each
            :meth:`commit`, those the state does not name are removed.
        remedy: what to tell the user when the folder cannot be resumed,
            e.g. ``"delete the folder to start over"``.
    """

    def __init__(self, path, file_prefixes: Iterable[str], remedy: str):
        self.path = Path(path)
        self.file_prefixes = tuple(file_prefixes)
        self.remedy = remedy

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def read_state(self, parse: Callable = _json_object):
        """The latest committed state, or None when the run has not started.

        Args:
            parse: turns the JSON object into the state (e.g. a dataclass);
                a ``ValueError`` or ``TypeError`` it raises marks the state
                unreadable.

        Raises:
            ValueError: ``state.json`` is not valid JSON or ``parse`` refuses it.
        """
        if not self.state_path.is_file():
            return None
        try:
            return parse(json.loads(self.state_path.read_text()))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{self.state_path} is not a readable training state ({error}); {self.remedy}.") from None

    def check_settings(self, state: Mapping, settings: Mapping, remedy: str | None = None) -> None:
        """Refuses a resume whose ``settings`` differ from those in ``state``.

        Raises:
            ValueError: see :func:`refuse_changed_settings`.
        """
        refuse_changed_settings(state, settings, self.path, remedy or self.remedy)

    def named_file(self, name: str) -> Path:
        """Path of a file the state names.

        Raises:
            FileNotFoundError: the file is missing.
        """
        path = self.path / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing though {self.state_path} names it; {self.remedy}.")
        return path

    def write_file(self, name: str, writer: Callable) -> Path:
        """Writes a file of the run atomically: ``writer(path)`` writes it whole."""
        return write_atomically(self.path / name, writer)

    def commit(self, state: Mapping, named_files: Iterable[str]) -> None:
        """Writes the state, then removes the run's files it no longer names.

        Call it after every file in ``named_files`` is written: a crash before
        the state is written leaves the previous state, whose files are kept.

        Args:
            state: JSON-serialisable progress (NaN is written as null).
            named_files: names of the files the state needs.
        """
        write_json(self.state_path, state)
        keep = set(named_files)
        for path in self.path.iterdir():
            if path.name.startswith(self.file_prefixes) and path.name not in keep:
                path.unlink(missing_ok=True)

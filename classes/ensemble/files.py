"""Ensemble member files: the release's naming, atomic saving and loading.

Members are saved as ``ensemble_model_member<i>.keras`` (weights and
architecture, no optimizer), the names of the release's
``data_ensemble_model/`` (whose snapshot lacks the files themselves).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from classes.ensemble.architecture import member_config_of
from classes.runtime.keras_files import load_keras_file
from classes.runtime.outputs import write_atomically
from classes.runtime.quiet_tensorflow import keras

MEMBER_FILE_PATTERN = re.compile(r"^ensemble_model_member(\d+)\.keras$")


def member_file_name(index: int) -> str:
    """``ensemble_model_member<index>.keras`` (the release's naming).

    Args:
        index: 0-based member index.

    Returns:
        The file name (no folder).
    """
    return f"ensemble_model_member{int(index)}.keras"


def find_member_files(folder) -> list[Path]:
    """Member files in a folder, sorted by member index.

    Args:
        folder: the folder holding ``ensemble_model_member<i>.keras`` files.

    Returns:
        Paths of the member files, sorted by member index.

    Raises:
        FileNotFoundError: the folder is missing or holds no member file;
            the message names the expected files.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Ensemble folder {folder} does not exist. It should hold the members "
            "ensemble_model_member<i>.keras (the release's data_ensemble_model/ lacks "
            "them; train them with python -m code_train_ensemble_model.train)."
        )
    found = sorted(
        (int(match.group(1)), folder / name)
        for name in os.listdir(folder)
        if (match := MEMBER_FILE_PATTERN.match(name))
    )
    if not found:
        raise FileNotFoundError(
            f"No ensemble member files ensemble_model_member<i>.keras in {folder}. The "
            "release's 25 member weights are not in this snapshot; train members with "
            "python -m code_train_ensemble_model.train --out DIR, then pass that DIR."
        )
    return [path for _, path in found]


def load_member(path) -> keras.Model:
    """Loads a member saved with :func:`save_member` (no compile state).

    Args:
        path: the member's ``.keras`` file.

    Returns:
        The member, uncompiled.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable Keras file, or not an ensemble member.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Ensemble member file {path} does not exist.")
    member = load_keras_file(path, "ensemble member")
    member_config_of(member)
    return member


def save_member(member: keras.Model, path, overwrite: bool = True) -> Path:
    """Saves a member as ``.keras`` atomically (weights and architecture only).

    Args:
        member: the member to save.
        path: target path; must end in ``.keras``.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: the path does not end in ``.keras``.
        FileExistsError: the file exists and ``overwrite`` is False.
    """
    target = Path(path)
    if not target.name.endswith(".keras"):
        raise ValueError(f"Save members to a .keras path, got {target}.")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    return write_atomically(target, lambda path: member.save(path, include_optimizer=False))


def load_ensemble(folder, max_members: int | None = None) -> list[keras.Model]:
    """Loads the members of a folder (all, or the first ``max_members``).

    Args:
        folder: the folder holding the member files.
        max_members: load only the first this many members; None for all.

    Returns:
        List of members, by member index.

    Raises:
        FileNotFoundError: the folder is missing or holds no member file.
        ValueError: a file is unreadable, or the members take different
            feature shapes.
    """
    paths = find_member_files(folder)
    if max_members is not None:
        paths = paths[:max_members]
    members = [load_member(path) for path in paths]
    shapes = {tuple(member.input_shape[1:]) for member in members}
    if len(shapes) != 1:
        raise ValueError(f"Members in {folder} take different feature shapes: {sorted(shapes)}.")
    return members

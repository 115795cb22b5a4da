"""``gpu_distill --prepare DIR``: the files a GPU machine without the release or Keras needs (issue 17).

Run here, where the release and Keras are::

    python -m code_distill_and_prune.gpu_distill --prepare .devicedata

``DIR`` (a git-ignored folder of the repository, named in the device run's
``carry``) receives:

- ``release/``: a data root holding exactly what the run reads: every image
  zip of the release (the stream's base images), the teacher's weights
  (``model_weights_npy``) and filter counts (``nums_filters``), and
  ``MANIFEST.sha256`` with the release's lines for those files (so they
  are checked there as here);
- ``student_initial_weights.npz``: the student initialised by Keras
  (:func:`classes.training.distillation.initial_student_weights`, ``--seed``), the
  same weights ``run.py``'s distillation starts from, so both sides start alike.

Prints the folder's size, and what travels to the device machine in all
(the repository's tracked and untracked-not-ignored files plus the folder;
the limit is 64 MiB).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from classes.compact.architecture import model_file, save_weights_npz
from classes.data.data_root import read_manifest, resolve_data_root
from classes.data.images import available_image_sessions, image_zip_path
from classes.runtime.outputs import write_atomically
from classes.runtime.paths import REPOSITORY_ROOT
from classes.training.distillation import initial_student_weights
from classes.training.student import parse_student_filters
from code_distill_and_prune.gpu_support import teacher_id

INITIAL_WEIGHTS = "student_initial_weights.npz"
TRAVEL_LIMIT = 64 * 2**20


def release_files(teacher: str, data_root) -> list[Path]:
    """The release files a run reads: every image zip, the teacher's weights and filter counts.

    Raises:
        FileNotFoundError: no image zips, or the teacher's files are missing.
    """
    identifier = teacher_id(teacher)
    sessions = available_image_sessions(data_root)
    if not sessions:
        raise FileNotFoundError(f"{data_root} holds no image zips (data_V4_responses/images/images_*.zip).")
    return [image_zip_path(session, data_root) for session in sessions] + [
        model_file(identifier, "npy", data_root), model_file(identifier, "nums_filters", data_root)]


def copy_release(files: list[Path], data_root: Path, release: Path) -> int:
    """Copies ``files`` under ``release`` at their paths in the release, with their manifest lines; returns bytes."""
    if release.exists():
        shutil.rmtree(release)  # only what this run needs, nothing left from an earlier one
    relatives = [path.relative_to(data_root).as_posix() for path in files]
    for path, relative in zip(files, relatives, strict=True):
        write_atomically(release / relative, lambda target, source=path: shutil.copyfile(source, target))
    if (data_root / "MANIFEST.sha256").is_file():
        entries = read_manifest(data_root)
        lines = "".join(f"{entries[relative]}  ./{relative}\n" for relative in relatives if relative in entries)
        write_atomically(release / "MANIFEST.sha256", lambda target: Path(target).write_text(lines))
    return sum(path.stat().st_size for path in release.rglob("*") if path.is_file())


def travelling_bytes(folder: Path) -> tuple[int | None, bool | None]:
    """Bytes of the repository's tracked and untracked-not-ignored files, and whether ``folder`` is git-ignored.

    Both None where git cannot tell (no git, or not a checkout).
    """
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 cwd=REPOSITORY_ROOT, capture_output=True, check=True).stdout
        ignored = subprocess.run(["git", "check-ignore", "-q", str(folder.resolve())], cwd=REPOSITORY_ROOT,
                                 capture_output=True).returncode == 0
    except (OSError, subprocess.CalledProcessError):
        return None, None
    total = 0
    for name in filter(None, listing.decode().split("\0")):
        path = REPOSITORY_ROOT / name
        if path.is_file() and not path.resolve().is_relative_to(folder.resolve()):
            total += path.stat().st_size
    return total, ignored


def prepare(folder: Path, arguments) -> dict:
    """Fills ``folder`` (see the module docstring) and prints the sizes.

    Args:
        folder: the target folder (created).
        arguments: ``gpu_distill``'s arguments (``teacher``, ``student_filters``, ``seed``, ``data_root``).

    Returns:
        ``{"release_bytes", "weights_bytes", "repository_bytes", "git_ignored"}``.
    """
    data_root = resolve_data_root(arguments.data_root)
    files = release_files(arguments.teacher, data_root)
    release_bytes = copy_release(files, data_root, folder / "release")
    weights = initial_student_weights(parse_student_filters(arguments.student_filters), arguments.seed)
    weights_path = save_weights_npz(folder / INITIAL_WEIGHTS, weights)
    repository_bytes, ignored = travelling_bytes(folder)
    total = release_bytes + weights_path.stat().st_size
    print(f"wrote {folder}: release/ ({len(files)} files, {release_bytes / 2**20:.1f} MiB), {INITIAL_WEIGHTS} "
          f"({weights_path.stat().st_size / 2**20:.1f} MiB); {total / 2**20:.1f} MiB in all")
    if repository_bytes is None:
        print("note: git could not list the repository's files; what travels is the repository plus this folder")
        return {"release_bytes": release_bytes, "weights_bytes": weights_path.stat().st_size,
                "repository_bytes": None, "git_ignored": None}
    travelling = repository_bytes + total
    print(f"travels to the device machine: repository {repository_bytes / 2**20:.1f} MiB + {folder} "
          f"{total / 2**20:.1f} MiB = {travelling / 2**20:.1f} MiB (limit {TRAVEL_LIMIT / 2**20:.0f} MiB)")
    if not ignored:
        print(f"note: {folder} is not git-ignored: it travels as untracked files (add it to .gitignore to carry it "
              "by name)")
    if travelling > TRAVEL_LIMIT:
        raise ValueError(f"{travelling / 2**20:.1f} MiB would travel, over the {TRAVEL_LIMIT / 2**20:.0f} MiB limit.")
    return {"release_bytes": release_bytes, "weights_bytes": weights_path.stat().st_size,
            "repository_bytes": repository_bytes, "git_ignored": ignored}

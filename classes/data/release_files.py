"""Release files checked against ``MANIFEST.sha256`` the first time each is used.

The functions that name the release's files (weights, filter counts,
``.keras`` and ``.pt`` models, responses, image zips: ``model_file``,
``shared_model_path``, ``response_path``, ``image_zip_path``) pass each path
through :func:`verified_release_file`. The first time a file is used, its
SHA-256 is compared with the manifest's; a match is remembered in
``<cache>/verified_release_files.json`` (:func:`classes.runtime.paths.default_cache_dir`),
keyed by the file's path, size and modification time and the manifest's size
and modification time, so later runs only read the files' metadata. A file
whose bytes differ is refused with a one-line error that names it and says
what to do. A data root without a manifest is used unverified, with one
warning.

:func:`verify_data_root` (the scripts' ``--verify``) checks every file of the
manifest at once and remembers the ones that match.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

from classes.data.data_root import read_manifest, sha256_of_file
from classes.runtime.outputs import write_json
from classes.runtime.paths import default_cache_dir

MANIFEST_NAME = "MANIFEST.sha256"
RECORD_NAME = "verified_release_files.json"


class _Record:
    """What this process knows about the release's files, and what it has yet to save."""

    def __init__(self):
        self.saved = None  # {path: {"stamp": [...], "sha256": ...}} as read from the cache
        self.new = {}
        self.digests = {}  # path -> sha256 of the files checked by this process
        self.manifests = {}  # data root -> manifest entries
        self.warned = set()

    def entries(self) -> dict:
        if self.saved is None:
            self.saved = _read_record(_record_path())
            atexit.register(save_verified_record)
        return self.saved


_RECORD = _Record()


def _record_path() -> Path:
    return default_cache_dir() / RECORD_NAME


def _read_record(path: Path) -> dict:
    """The saved record; empty when absent or unreadable (the files are then checked again)."""
    try:
        files = json.loads(path.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def _warn_once(message: str) -> None:
    if message not in _RECORD.warned:
        _RECORD.warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def _stamp(path: Path, manifest: Path) -> list[int]:
    """Size and modification time of a file and of its manifest: a change in any means check again."""
    status, manifest_status = path.stat(), manifest.stat()
    return [status.st_size, status.st_mtime_ns, manifest_status.st_size, manifest_status.st_mtime_ns]


def _manifest_entries(data_root: Path) -> dict[str, str]:
    if data_root not in _RECORD.manifests:
        _RECORD.manifests[data_root] = read_manifest(data_root)
    return _RECORD.manifests[data_root]


def _remember(path: Path, stamp: list[int], digest: str) -> None:
    entry = {"stamp": stamp, "sha256": digest}
    _RECORD.digests[str(path)] = digest
    if _RECORD.entries().get(str(path)) != entry:
        _RECORD.new[str(path)] = entry


def verified_release_file(path, data_root) -> Path:
    """Checks a release file against ``MANIFEST.sha256`` the first time it is used.

    Args:
        path: an existing file under ``data_root``.
        data_root: the resolved data root (where ``MANIFEST.sha256`` is).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: the file's SHA-256 differs from the manifest's; the
            message names the file and what to do.
    """
    path, data_root = Path(path), Path(data_root)
    if str(path) in _RECORD.digests:
        return path
    manifest = data_root / MANIFEST_NAME
    if not manifest.is_file():
        _warn_once(f"{data_root} has no {MANIFEST_NAME}; its files are used unverified.")
        return path
    stamp = _stamp(path, manifest)
    known = _RECORD.new.get(str(path)) or _RECORD.entries().get(str(path))
    if known and known.get("stamp") == stamp:
        _RECORD.digests[str(path)] = known["sha256"]
        return path
    relative = path.relative_to(data_root).as_posix()
    expected = _manifest_entries(data_root).get(relative)
    if expected is None:
        _warn_once(f"{relative} is not listed in {manifest}; it is used unverified.")
        return path
    digest = sha256_of_file(path)
    if digest != expected:
        raise ValueError(
            f"{path} does not match {MANIFEST_NAME} (sha256 {digest[:16]}..., expected "
            f"{expected[:16]}...): the file is corrupt or was changed. Download it again from "
            "cowleygroup/V4_compact_models, then rerun."
        )
    _remember(path, stamp, digest)
    return path


def known_sha256(path) -> str | None:
    """The SHA-256 of a release file this process has verified, or None."""
    return _RECORD.digests.get(str(Path(path)))


def save_verified_record() -> None:
    """Adds the files verified since the last save to the record in the cache folder.

    Merged with what other processes saved meanwhile. Called at exit and when
    a script finishes; a cache that cannot be written costs a warning (the
    files are checked again next run), never the run.
    """
    if not _RECORD.new:
        return
    try:
        path = _record_path()
        files = _read_record(path) | _RECORD.new
        # Files deleted since (a test's temporary copy, a moved release) are forgotten.
        files = {name: entry for name, entry in files.items() if Path(name).is_file()}
        write_json(path, {"files": files})
    except (OSError, ValueError) as error:
        _warn_once(f"could not save the record of verified release files ({error}); "
                   "they will be checked again next run.")
        return
    _RECORD.saved = files
    _RECORD.new = {}


def verify_data_root(data_root: Path, show_progress: bool = True) -> list[str]:
    """Checks every file of the manifest against its SHA-256 (``--verify``).

    The files that match are remembered, so that they are not hashed again
    when first used.

    Args:
        data_root: the resolved data root.
        show_progress: show a tqdm progress bar.

    Returns:
        A list of problems, one line each (missing or mismatched files);
        empty when every file matches.

    Raises:
        FileNotFoundError: the data root has no ``MANIFEST.sha256``.
    """
    from tqdm import tqdm

    data_root = Path(data_root)
    problems = []
    entries = read_manifest(data_root)
    manifest = data_root / MANIFEST_NAME
    for relative, digest in tqdm(sorted(entries.items()), desc="verifying", disable=not show_progress):
        path = data_root / relative
        if not path.is_file():
            problems.append(f"missing: {relative}")
            continue
        actual = sha256_of_file(path)
        if actual != digest:
            problems.append(f"checksum mismatch: {relative}")
        else:
            _remember(path, _stamp(path, manifest), actual)
    save_verified_record()
    return problems

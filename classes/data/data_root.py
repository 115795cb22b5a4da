"""Where the released data lives.

The data root is the folder that holds the release's ``data_*`` folders
(``data_V4_responses``, ``data_compact_models``, ...). It is resolved in
this order, and every script and library function goes through
:func:`resolve_data_root`:

1. an explicit path (the scripts' ``--data-root`` flag);
2. the environment variable ``COWLEY2023_DATA_ROOT``;
3. the repository itself, when its own ``data_*`` folders hold data
   (not only their readme files);
4. a release folder beside the checkout: ``../shared/cowley2023_release``
   or ``../cowley2023_release``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from classes.runtime.paths import REPOSITORY_ROOT

ENVIRONMENT_VARIABLE = "COWLEY2023_DATA_ROOT"
DATA_FOLDERS = (
    "data_V4_responses",
    "data_compact_models",
    "data_shared_compact_models",
    "data_ensemble_model",
)
# Files whose presence marks a folder as holding real data, not only readmes.
_MARKERS = (
    "data_V4_responses/responses_repeat_averaged",
    "data_compact_models/models_keras",
    "data_compact_models/model_weights_npy",
)


def _holds_data(folder: Path) -> bool:
    for marker in _MARKERS:
        candidate = folder / marker
        if candidate.is_dir() and any(candidate.iterdir()):
            return True
    return False


def candidate_data_roots() -> list[Path]:
    """Returns the folders searched when no explicit data root is given."""
    candidates = []
    if os.environ.get(ENVIRONMENT_VARIABLE):
        candidates.append(Path(os.environ[ENVIRONMENT_VARIABLE]).expanduser())
    candidates.append(REPOSITORY_ROOT)
    candidates.append(REPOSITORY_ROOT.parent / "shared" / "cowley2023_release")
    candidates.append(REPOSITORY_ROOT.parent / "cowley2023_release")
    return candidates


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Finds the folder that holds the released data.

    Args:
        data_root: explicit folder (the ``--data-root`` flag). When given it
            must exist and hold release data; no fallback is tried.

    Returns:
        The resolved absolute path.

    Raises:
        FileNotFoundError: no candidate folder holds the release's data; the
            message lists every place that was looked at.
    """
    if data_root is not None:
        folder = Path(data_root).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"--data-root {folder} does not exist. Point it at the folder "
                "that holds data_V4_responses/ and data_compact_models/."
            )
        if not _holds_data(folder):
            raise FileNotFoundError(
                f"--data-root {folder} holds none of the release's data "
                f"(looked for {', '.join(_MARKERS)}). Point it at the release "
                "folder, e.g. ../shared/cowley2023_release."
            )
        return folder
    environment_value = os.environ.get(ENVIRONMENT_VARIABLE)
    if environment_value:
        folder = Path(environment_value).expanduser().resolve()
        if not _holds_data(folder):
            raise FileNotFoundError(
                f"{ENVIRONMENT_VARIABLE}={environment_value} holds none of the "
                f"release's data (looked for {', '.join(_MARKERS)}). Unset it "
                "or point it at the release folder."
            )
        return folder
    looked = []
    for folder in candidate_data_roots():
        looked.append(str(folder))
        if _holds_data(folder):
            return folder.resolve()
    raise FileNotFoundError(
        "Could not find the released data. Looked in: "
        + "; ".join(looked)
        + f". Pass --data-root, set {ENVIRONMENT_VARIABLE}, or place the "
        "release (cowleygroup/V4_compact_models data folders) beside the "
        "checkout as ../shared/cowley2023_release."
    )


def sha256_of_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Returns the hexadecimal SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(data_root: Path) -> dict[str, str]:
    """Reads ``MANIFEST.sha256`` into ``{relative path: digest}``.

    Raises:
        FileNotFoundError: the data root has no manifest.
    """
    manifest = Path(data_root) / "MANIFEST.sha256"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"No MANIFEST.sha256 in {data_root}; --verify needs the release's "
            "checksum manifest beside its data folders."
        )
    entries = {}
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        digest, relative = line.split(maxsplit=1)
        entries[relative.strip().removeprefix("./")] = digest
    return entries


def sessions_in_folder(folder: Path, prefix: str, suffix: str) -> list[str]:
    """Session ids of the files ``<prefix><session><suffix>`` in ``folder``, sorted; [] when it is absent."""
    if not folder.is_dir():
        return []
    return sorted(
        name.removeprefix(prefix).removesuffix(suffix)
        for name in os.listdir(folder)
        if name.startswith(prefix) and name.endswith(suffix)
    )

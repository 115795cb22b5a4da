"""Where the project's own files go: the repository and the cache folder.

Kept apart from :mod:`classes.data.data_root` (which finds the release) so
that the lowest layer of the library, :mod:`classes.runtime`, depends on
nothing above it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENVIRONMENT_VARIABLE = "COWLEY2023_CACHE_DIR"


def default_cache_dir() -> Path:
    """Folder for caches (decoded images, compiled kernels, verified release files), outside git.

    ``COWLEY2023_CACHE_DIR`` overrides; otherwise ``$XDG_CACHE_HOME/cowley2023``
    or ``~/.cache/cowley2023``. The folder is not created here.

    Raises:
        ValueError: the path exists and is not a folder; the message says
            it is the cache and how to choose another.
    """
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured:
        folder, origin = Path(configured).expanduser(), f"{CACHE_ENVIRONMENT_VARIABLE}={configured}"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(base) / "cowley2023"
        origin = f"the cache folder {folder}"
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"{origin} is a file, not a folder; the project keeps its caches (decoded images, "
            f"compiled kernels, verified release files) there. Set {CACHE_ENVIRONMENT_VARIABLE} "
            "to a folder, or remove the file."
        )
    return folder

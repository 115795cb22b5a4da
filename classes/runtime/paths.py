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
    """Folder for caches (decoded images, compiled kernels), outside git.

    ``COWLEY2023_CACHE_DIR`` overrides; otherwise ``$XDG_CACHE_HOME/cowley2023``
    or ``~/.cache/cowley2023``.
    """
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cowley2023"

"""The explorer's files on disk: assets, images, the release's JPEGs, sizes, serving.

Every file is written atomically (:func:`classes.runtime.outputs.write_atomically`),
so an interrupted build never leaves half a page.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import zipfile
from pathlib import Path

from classes.data.images import image_zip_path
from classes.runtime.outputs import write_atomically

ASSETS = Path(__file__).with_name("assets")
ASSET_FILES = ("explorer.css", "engine.js", "synthesis.js", "diagram.js", "neuron.js", "index.js")
# The rendered tutorials: pages and notebooks of ``python -m tutorials.build``, copied into <site>/tutorials/.
TUTORIAL_SUFFIXES = (".html", ".ipynb", ".css")
TUTORIALS_BUILD = "python -m tutorials.build --out docs/tutorials"
# A zip member named image<number>.jpg, as classes.data.images reads them.
_MEMBER = re.compile(r"(?:^|/)image(\d+)\.jpg$", re.IGNORECASE)


def write_bytes(target: Path, content: bytes) -> Path:
    """Writes bytes atomically."""
    return write_atomically(target, lambda path: Path(path).write_bytes(content))


def write_text(target: Path, text: str) -> Path:
    """Writes UTF-8 text atomically."""
    return write_atomically(target, lambda path: Path(path).write_text(text, encoding="utf-8"))


def copy_assets(site: Path) -> None:
    """The style sheet and scripts into ``<site>/assets/``."""
    for name in ASSET_FILES:
        write_bytes(site / "assets" / name, (ASSETS / name).read_bytes())


def copy_tutorials(site: Path, tutorials_dir: Path | None) -> int:
    """Copies the rendered tutorials into ``<site>/tutorials/``, so the site links to its own copy.

    A copy, not a link out of the site: the site stays one folder that works
    from ``file://`` and any static host wherever it is moved.

    Args:
        site: the site's folder.
        tutorials_dir: the folder ``python -m tutorials.build --out`` wrote
            (its ``index.html``, ``style.css``, ``NN_name.html`` and ``NN_name.ipynb``), or
            None.

    Returns:
        The number of files copied: 0 when ``tutorials_dir`` is None or holds
        no ``index.html`` (the index page then says how to build them).
    """
    if tutorials_dir is None or not (Path(tutorials_dir) / "index.html").is_file():
        return 0
    files = sorted(path for path in Path(tutorials_dir).iterdir()
                   if path.is_file() and path.suffix in TUTORIAL_SUFFIXES)
    for path in files:
        write_bytes(site / "tutorials" / path.name, path.read_bytes())
    return len(files)


def release_jpegs(wanted, data_root) -> dict[tuple[int, int], bytes]:
    """The release's own JPEG files of some images, byte for byte.

    Browsers decode them to the same pixels as PIL (checked with Chromium on
    the release's images), so the page and the build see the same image.

    Args:
        wanted: iterable of (session as int, 1-based image number).
        data_root: the release.

    Returns:
        (session, number) -> the JPEG's bytes.

    Raises:
        ValueError: an image is missing from its zip.
    """
    by_session: dict[int, set[int]] = {}
    for session, number in wanted:
        by_session.setdefault(int(session), set()).add(int(number))
    found = {}
    for session, numbers in by_session.items():
        path = image_zip_path(str(session), data_root)
        with zipfile.ZipFile(path) as archive:
            members = {int(match.group(1)): name for name in archive.namelist() if (match := _MEMBER.search(name))}
            missing = sorted(numbers - set(members))
            if missing:
                raise ValueError(f"{path} lacks images {missing[:5]}.")
            found.update({(session, number): archive.read(members[number]) for number in numbers})
    return found


def folder_size(folder: Path) -> tuple[int, int]:
    """``(bytes, files)`` under a folder."""
    total = count = 0
    for base, _, names in os.walk(folder):
        for name in names:
            total += os.path.getsize(os.path.join(base, name))
            count += 1
    return total, count


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Deletes files directly in ``folder`` whose names are not in ``keep`` (a smaller rebuild)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()
            elif path.is_dir() and path.name not in keep:
                shutil.rmtree(path)


def serve(site: Path, port: int = 8000) -> None:
    """Serves the site on http://127.0.0.1:<port>/ until interrupted (Ctrl-C)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {site} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")

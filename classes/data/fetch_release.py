"""Downloading the release's files from the paper's repository, a few at a time.

On a machine without the release (Colab, a fresh laptop) the tutorials call
:func:`ensure_release` with the files they need; where a data root with
those files is already found (:func:`classes.data.data_root.resolve_data_root`)
nothing is downloaded. Otherwise each file is read from the original
repository, cowleygroup/V4_compact_models on GitHub (``COWLEY2023_RELEASE_URL``
names another copy: a mirror, a local server), into a folder that then
becomes the data root (``COWLEY2023_DATA_ROOT`` is set for the running
process).

Files are chosen by paths or shell patterns relative to the data root
(``"data_compact_models/*/compact_model_190923_neuron0.*"``), matched
against the release's file list, ``release_manifest/MANIFEST.sha256``
beside this module: the SHA-256 of the 1,220 files of the release snapshot
this project was built on (upstream commit f4552ad9). Every file listed there
is checked after download; a file downloaded by an explicit path that the
list lacks is kept unchecked and reported. Downloads are resumable: a file
already present with the right checksum is skipped, and a partial download
(``<file>.part``) continues with an HTTP range request where the server
allows it.

Each tutorial's setup cell calls :func:`tutorial_release` with its number;
:data:`TUTORIAL_FILES` lists the files each one reads. Example::

    from classes.data.fetch_release import ensure_release

    data_root = ensure_release(["data_compact_models/*/compact_model_190923_neuron0.*",
                                "data_V4_responses/images/images_190923.zip"])
"""

from __future__ import annotations

import fnmatch
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from classes.data.data_root import (
    ENVIRONMENT_VARIABLE,
    read_manifest,
    resolve_data_root,
    sha256_of_file,
)
from classes.runtime.outputs import write_atomically
from classes.runtime.paths import default_cache_dir

# The repository's default branch, read as raw files; the manifest's checksums
# catch a file that changed upstream since the snapshot.
RELEASE_URL = "https://raw.githubusercontent.com/cowleygroup/V4_compact_models/HEAD"
URL_ENVIRONMENT_VARIABLE = "COWLEY2023_RELEASE_URL"
BUNDLED_MANIFEST_FOLDER = Path(__file__).resolve().parent / "release_manifest"
MANIFEST_NAME = "MANIFEST.sha256"
CHUNK_BYTES = 1 << 20
ATTEMPTS = 3
# The release files each tutorial reads (tutorials/NN_*.py), fetched by its setup cell where missing.
TUTORIAL_FILES = {
    "01": [
        "data_compact_models/*/compact_model_190923_neuron0.*",
        "data_compact_models/model_weights_npy/compact_model_190923_neuron*.npy",
        "data_compact_models/nums_filters/compact_model_190923_neuron*.npy",
        "data_shared_compact_models/from_ensemble_model/shared_compact_model_75filters.keras",
        "data_V4_responses/responses_repeat_averaged/responses_190923.npy",
        "data_V4_responses/images/images_190923.zip",
    ],
    "02": [
        "data_V4_responses/responses_raw/responses_201016.npy",
        "data_V4_responses/responses_raw/responses_210325.npy",
        "data_V4_responses/responses_repeat_averaged/responses_201016.npy",
        "data_V4_responses/responses_repeat_averaged/responses_210325.npy",
    ],
    "03": [
        "data_compact_models/*/compact_model_190923_neuron0.*",
        "data_V4_responses/images/images_190923.zip",
    ],
    "04": [
        "data_compact_models/*/compact_model_190923_neuron0.*",
        "data_V4_responses/images/images_190923.zip",
        "data_V4_responses/images/images_201025.zip",
    ],
    "05": [
        "data_compact_models/model_weights_npy/compact_model_201025_neuron?.npy",
        "data_compact_models/nums_filters/compact_model_201025_neuron?.npy",
        "data_V4_responses/images/images_190923.zip",
        "data_V4_responses/images/images_201025.zip",
    ],
    "06": [
        "data_compact_models/*/compact_model_190923_neuron0.*",
        "data_V4_responses/images/images_*.zip",
        "data_V4_responses/responses_repeat_averaged/responses_190923.npy",
        "data_V4_responses/responses_raw/responses_*.npy",  # calibrate the noise model of the approximate R2
    ],
}


def release_manifest() -> dict[str, str]:
    """The bundled file list of the release: ``{relative path: sha256}``."""
    return read_manifest(BUNDLED_MANIFEST_FOLDER)


def select_files(patterns, manifest: dict[str, str] | None = None) -> list[str]:
    """Release files named by paths or shell patterns (``*``, ``?``, ``[...]``).

    Args:
        patterns: one string or a sequence of them, relative to the data
            root; a path without wildcards is kept even when the manifest
            lacks it (it is then downloaded unchecked).
        manifest: ``{relative path: sha256}``; None for :func:`release_manifest`.

    Returns:
        The matching relative paths, in the order of the patterns, each once.

    Raises:
        ValueError: a pattern with wildcards matches no file of the manifest,
            or a path is absolute or leaves the data root.
    """
    manifest = release_manifest() if manifest is None else manifest
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    chosen: dict[str, None] = {}
    for pattern in patterns:
        pattern = str(pattern).removeprefix("./")
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise ValueError(f"Release paths are relative to the data root; got {pattern!r}.")
        if not any(character in pattern for character in "*?["):
            chosen[pattern] = None
            continue
        matches = [path for path in manifest if fnmatch.fnmatchcase(path, pattern)]
        if not matches:
            folder = pattern.split("/")[0]
            examples = [path for path in manifest if path.startswith(folder)][:3] or list(manifest)[:3]
            raise ValueError(
                f"No file of the release matches {pattern!r}. Paths look like: {', '.join(examples)}."
            )
        chosen.update(dict.fromkeys(matches))
    return list(chosen)


def _open(url: str, start: int, timeout: float):
    """Opens ``url`` from byte ``start`` (a range request when above 0); returns the response."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    return urllib.request.urlopen(request, timeout=timeout)


def _download(url: str, part: Path, timeout: float) -> None:
    """Writes ``url`` into ``part``, continuing a partial file where the server honours ranges."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:
            return  # the partial file is already whole; the checksum decides
        raise
    with response:
        # 206: the server continues the partial file; 200: it sends the whole file again.
        mode = "ab" if start and response.status == 206 else "wb"
        with open(part, mode) as handle:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                handle.write(chunk)


def _fetch_one(relative: str, destination: Path, base_url: str, digest: str | None, timeout: float) -> str:
    """Downloads one file unless present; returns ``"present"``, ``"downloaded"`` or ``"unchecked"``."""
    target = destination / relative
    if target.is_file() and (digest is None or sha256_of_file(target) == digest):
        return "present"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = f"{base_url}/{relative}"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _download(url, part, timeout)
            break
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise FileNotFoundError(
                    f"{url} answered 404: {relative} is not at {base_url}. Check the path "
                    f"(release_manifest() lists the release's files) or {URL_ENVIRONMENT_VARIABLE}."
                ) from None
            raise OSError(f"Downloading {url} failed: HTTP {error.code} {error.reason}.") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
            if attempt == ATTEMPTS:
                reason = getattr(error, "reason", error)
                raise ConnectionError(
                    f"Could not download {url} ({reason}) after {ATTEMPTS} attempts; the partial file "
                    f"{part} is kept and the next call continues it. Check the network, set "
                    f"{URL_ENVIRONMENT_VARIABLE} to a reachable copy of the release, or put the release's "
                    f"folders in a folder and set {ENVIRONMENT_VARIABLE} to it."
                ) from None
    if digest is not None and sha256_of_file(part) != digest:
        part.unlink()
        raise ValueError(
            f"{relative} from {url} does not match the release's SHA-256 {digest} (deleted). The file "
            "changed upstream or the download was corrupted; try again, or point "
            f"{URL_ENVIRONMENT_VARIABLE} at a copy of the release snapshot (upstream commit f4552ad9)."
        )
    write_atomically(target, lambda temporary: os.replace(part, temporary))
    return "downloaded" if digest is not None else "unchecked"


def fetch_release(
    files,
    destination,
    base_url: str | None = None,
    manifest: dict[str, str] | None = None,
    show_progress: bool = True,
    timeout: float = 60.0,
) -> dict[str, str]:
    """Downloads release files into ``destination`` (kept in the release's layout).

    Args:
        files: paths or patterns, as :func:`select_files` takes them.
        destination: the folder that becomes a data root (created if needed).
        base_url: where the release's folders are served; None for
            ``COWLEY2023_RELEASE_URL`` or else :data:`RELEASE_URL`.
        manifest: ``{relative path: sha256}`` to select and check files
            against; None for :func:`release_manifest`, which is then also
            written to ``destination/MANIFEST.sha256`` when absent (the library
            checks each release file against it on first use).
        show_progress: show a progress bar over the files.
        timeout: seconds to wait for the server on each request.

    Returns:
        ``{relative path: "present" | "downloaded" | "unchecked"}``;
        "unchecked" files were downloaded but the manifest has no checksum
        for them.

    Raises:
        ValueError: a pattern matches nothing, a URL that is not http(s), or
            a downloaded file fails its checksum (it is deleted).
        FileNotFoundError: the server does not have a file.
        ConnectionError: the server cannot be reached (partial files are kept).
    """
    bundled = manifest is None
    manifest = release_manifest() if bundled else manifest
    base_url = (base_url or os.environ.get(URL_ENVIRONMENT_VARIABLE) or RELEASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"The release URL must be http(s)://...; got {base_url!r}.")
    destination = Path(destination).expanduser()
    destination.mkdir(parents=True, exist_ok=True)
    selected = select_files(files, manifest)
    statuses = {}
    for relative in tqdm(selected, desc="release files", disable=not show_progress):
        statuses[relative] = _fetch_one(relative, destination, base_url, manifest.get(relative), timeout)
    if bundled and not (destination / MANIFEST_NAME).is_file():
        # The release's checksum list beside its folders, where the library checks files on first use.
        write_atomically(destination / MANIFEST_NAME,
                         lambda path: shutil.copyfile(BUNDLED_MANIFEST_FOLDER / MANIFEST_NAME, path))
    return statuses


def ensure_release(files, destination=None, base_url: str | None = None, show_progress: bool = True) -> Path:
    """A data root that holds ``files``: the one found here, or one filled by download.

    Where :func:`classes.data.data_root.resolve_data_root` finds a data root
    that already holds every file, it is returned and nothing else happens.
    Otherwise the missing files are downloaded (:func:`fetch_release`) into
    ``destination`` (default: the folder ``COWLEY2023_DATA_ROOT`` names, else
    ``<cache folder>/release``), and ``COWLEY2023_DATA_ROOT`` is set to it for
    this process, so every library function and script finds it.

    Args:
        files: paths or patterns (see :func:`select_files`).
        destination: the folder to download into.
        base_url: see :func:`fetch_release`.
        show_progress: show a progress bar while downloading.

    Returns:
        The data root.

    Raises:
        FileNotFoundError: the files hold none of the release's data folders
            that mark a data root (responses, models), or a file is missing
            on the server.
        ValueError, ConnectionError: see :func:`fetch_release`.
    """
    selected = select_files(files)
    try:
        found = resolve_data_root()
    except FileNotFoundError:
        found = None
    if found is not None and all((found / relative).is_file() for relative in selected):
        return found
    if destination is None:
        destination = os.environ.get(ENVIRONMENT_VARIABLE) or default_cache_dir() / "release"
    destination = Path(destination).expanduser().resolve()
    fetch_release(selected, destination, base_url=base_url, show_progress=show_progress)
    os.environ[ENVIRONMENT_VARIABLE] = str(destination)
    return resolve_data_root(destination)


def tutorial_release(number: str, base_url: str | None = None) -> Path:
    """The setup of tutorial ``number``: :func:`ensure_release` of its files, the data root printed.

    Args:
        number: the tutorial's two-digit number (``"01"`` ... ``"06"``).
        base_url: see :func:`fetch_release`.

    Returns:
        The data root.

    Raises:
        ValueError: no tutorial has that number.
    """
    if number not in TUTORIAL_FILES:
        raise ValueError(f"No tutorial is numbered {number!r}; the tutorials are {', '.join(TUTORIAL_FILES)}.")
    data_root = ensure_release(TUTORIAL_FILES[number], base_url=base_url)
    print("data root:", data_root)
    return data_root

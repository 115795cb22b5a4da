"""The tutorials run top to bottom, in order; their Colab setup fetches the release over HTTP.

``pytest -k tutorial`` selects this file. Each tutorial is executed in a
fresh kernel with the step cap ``COWLEY2023_TUTORIAL_STEPS`` (slow: about
1-2 minutes each), with the release URL pointed at a closed port, so that
the setup cell provably downloads nothing where the release is present. The
download path itself (:mod:`classes.data.fetch_release`) is tested against a
local HTTP server (Python's ``http.server``) serving synthetic files and a
small copy of the release.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from classes.data import fetch_release as fetch_module
from classes.data.data_root import ENVIRONMENT_VARIABLE, read_manifest, sha256_of_file
from classes.data.fetch_release import (
    TUTORIAL_FILES,
    ensure_release,
    fetch_release,
    release_manifest,
    select_files,
    tutorial_release,
)
from classes.runtime.step_cap import STEP_CAP_VARIABLE, capped
from tutorials.build import check_execution_order, execute_tutorial, read_tutorial, tutorial_sources

STEP_CAP = 5
# Lines a quick run must print, per tutorial: tutorial 6's image budget is blocks of 500 images, as many as the cap.
EXPECTED_WITH_CAP = {
    "06_compress_a_model": [f"distil on {500 * STEP_CAP:,} images, retrain on {500 * STEP_CAP:,}",
                            "layer  student  kept  teacher", "| pruned and retrained | "],
}
CLOSED_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, any download fails at once
TUTORIALS = tutorial_sources()


def _tutorial(number: str) -> Path:
    return tutorial_sources([number])[0]


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files like ``http.server``, honouring ``Range: bytes=N-`` when the server allows it."""

    def log_message(self, *arguments):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        start = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0]
        if not self.server.ranges or not path.is_file() or not start or int(start) == 0:
            return super().do_GET()
        data = path.read_bytes()[int(start):]
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(folder: Path, ranges: bool):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(folder)))
    server.requests, server.ranges = [], ranges
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def served(tmp_path):
    """A folder of synthetic release-like files served over HTTP (ranges honoured), and its manifest."""
    folder = tmp_path / "served"
    files = {"data_compact_models/nums_filters/a.npy": bytes(range(256)) * 40,
             "data_V4_responses/readme.txt": b"V4 responses\n" * 100}
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    manifest = {relative: hashlib.sha256(content).hexdigest() for relative, content in files.items()}
    server, url = _serve(folder, ranges=True)
    yield {"folder": folder, "files": files, "manifest": manifest, "server": server, "url": url}
    server.shutdown()


def test_tutorial_fetch_downloads_checks_and_skips_present_files(served, tmp_path):
    destination = tmp_path / "release"
    statuses = fetch_release(list(served["files"]), destination, served["url"], served["manifest"], show_progress=False)
    assert statuses == dict.fromkeys(served["files"], "downloaded")
    for relative, content in served["files"].items():
        assert (destination / relative).read_bytes() == content
    assert not list(destination.rglob("*.part"))
    served["server"].requests.clear()
    again = fetch_release(["data_*/*/*.npy"], destination, served["url"], served["manifest"], show_progress=False)
    assert again == {"data_compact_models/nums_filters/a.npy": "present"}
    assert served["server"].requests == []


def test_tutorial_fetch_resumes_a_partial_download(served, tmp_path):
    relative = "data_compact_models/nums_filters/a.npy"
    content = served["files"][relative]
    part = tmp_path / "release" / (relative + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(content[:3000])
    fetch_release([relative], tmp_path / "release", served["url"], served["manifest"], show_progress=False)
    assert served["server"].requests == [(f"/{relative}", "bytes=3000-")]
    assert (tmp_path / "release" / relative).read_bytes() == content


def test_tutorial_fetch_starts_over_when_the_server_ignores_ranges(served, tmp_path):
    served["server"].ranges = False
    relative = "data_compact_models/nums_filters/a.npy"
    part = tmp_path / "release" / (relative + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of an older download")
    fetch_release([relative], tmp_path / "release", served["url"], served["manifest"], show_progress=False)
    assert (tmp_path / "release" / relative).read_bytes() == served["files"][relative]


def test_tutorial_fetch_refuses_a_checksum_mismatch(served, tmp_path):
    relative = "data_V4_responses/readme.txt"
    wrong = {relative: "0" * 64}
    with pytest.raises(ValueError, match="does not match the release's SHA-256"):
        fetch_release([relative], tmp_path / "release", served["url"], wrong, show_progress=False)
    assert not (tmp_path / "release" / relative).exists()
    assert not list((tmp_path / "release").rglob("*.part"))


def test_tutorial_fetch_errors_name_the_file_and_the_server(served, tmp_path):
    with pytest.raises(FileNotFoundError, match="404.*missing.npy"):
        fetch_release(["data_V4_responses/missing.npy"], tmp_path / "release", served["url"], {}, show_progress=False)
    with pytest.raises(ConnectionError, match="Could not download"):
        fetch_release(["data_V4_responses/readme.txt"], tmp_path / "release", CLOSED_URL, {}, show_progress=False)
    with pytest.raises(ValueError, match="http"):
        fetch_release(["data_V4_responses/readme.txt"], tmp_path / "release", "file:///tmp", {}, show_progress=False)


def test_tutorial_release_file_patterns():
    manifest = release_manifest()
    one_model = select_files("data_compact_models/*/compact_model_190923_neuron0.*", manifest)
    assert sorted(Path(path).parent.name for path in one_model) == [
        "model_summaries", "model_weights_npy", "models_keras", "models_torch", "nums_filters"]
    assert len(select_files("data_compact_models/models_keras/*.keras", manifest)) == 219
    with pytest.raises(ValueError, match="No file of the release matches"):
        select_files("data_compact_models/*/compact_model_999999_*", manifest)
    with pytest.raises(ValueError, match="relative"):
        select_files("../outside.npy", manifest)


def _release_files(source: Path) -> list[str]:
    """The release files a tutorial's setup cell fetches."""
    return TUTORIAL_FILES[source.stem[:2]]


@pytest.mark.parametrize("source", TUTORIALS, ids=[source.stem for source in TUTORIALS])
def test_tutorial_setup_cell_comes_first_and_names_release_files(source):
    first_code = next(cell for cell in read_tutorial(source).cells if cell.cell_type == "code")
    assert "REPOSITORY_URL" in first_code.source and f'tutorial_release("{source.stem[:2]}")' in first_code.source
    assert select_files(_release_files(source))  # every pattern names files of the release


def test_tutorial_files_cover_every_tutorial_and_no_other():
    assert sorted(TUTORIAL_FILES) == sorted(source.stem[:2] for source in TUTORIALS)
    with pytest.raises(ValueError, match="No tutorial is numbered '07'"):
        tutorial_release("07")


def test_tutorial_bundled_manifest_is_the_release_manifest(data_root):
    assert release_manifest() == read_manifest(data_root)


@pytest.fixture
def release_copy(data_root, tmp_path):
    """A small copy of the release (tutorial 3's files and tutorial 2's), served by http.server."""
    folder = tmp_path / "copy"
    files = select_files(_release_files(_tutorial("03")) + _release_files(_tutorial("02")))
    for relative in files:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / relative, folder / relative)
    server, url = _serve(folder, ranges=False)
    yield {"url": url, "files": files}
    server.shutdown()


def test_tutorial_fetch_from_a_copy_of_the_release(release_copy, data_root, tmp_path, monkeypatch):
    from classes.compact.model import load_compact_model
    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images
    from classes.prediction import predict

    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(tmp_path / "fetched"))
    root = ensure_release(_release_files(_tutorial("03")), base_url=release_copy["url"], show_progress=False)
    assert root == (tmp_path / "fetched").resolve()
    for relative in select_files(_release_files(_tutorial("03"))):
        assert sha256_of_file(root / relative) == release_manifest()[relative]
    assert read_manifest(root) == release_manifest()  # the library checks files against it on first use
    images = recenter_images(load_images("190923", [601, 602, 603], data_root=root, use_cache=False))
    fetched = predict(load_compact_model("190923", 0, "npy", data_root=root), images, engine="keras")
    released = predict(load_compact_model("190923", 0, "npy", data_root=data_root), images, engine="keras")
    np.testing.assert_array_equal(fetched, released)


def test_tutorial_setup_cell_fetches_on_a_machine_without_the_release(release_copy, tmp_path, monkeypatch):
    """Tutorial 2's setup cell alone, as on Colab: no data root, the release served by a local copy."""
    import nbformat
    from nbclient import NotebookClient

    target = tmp_path / "colab_release"
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(target))
    monkeypatch.setenv(fetch_module.URL_ENVIRONMENT_VARIABLE, release_copy["url"])
    notebook = read_tutorial(_tutorial("02"))
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    single = nbformat.v4.new_notebook(cells=[first_code], metadata=notebook.metadata)
    NotebookClient(single, timeout=300, kernel_name="python3").execute(cwd=str(tmp_path))
    printed = "".join(output.get("text", "") for output in single.cells[0].outputs)
    assert f"data root: {target.resolve()}" in printed
    for relative in _release_files(_tutorial("02")):
        assert (target / relative).is_file()


def test_tutorial_step_cap(monkeypatch):
    monkeypatch.delenv(STEP_CAP_VARIABLE, raising=False)
    assert capped(300) == 300
    monkeypatch.setenv(STEP_CAP_VARIABLE, "20")
    assert (capped(300), capped(10), capped(600, minimum=100), capped(50, minimum=100)) == (20, 10, 100, 50)
    monkeypatch.setenv(STEP_CAP_VARIABLE, "zero")
    with pytest.raises(ValueError, match=STEP_CAP_VARIABLE):
        capped(300)


@pytest.mark.slow
@pytest.mark.parametrize("source", TUTORIALS, ids=[source.stem for source in TUTORIALS])
def test_tutorial_runs_top_to_bottom(source, data_root, tmp_path, monkeypatch):
    # Any download attempt would fail: with the release present, the setup cell must not try one.
    monkeypatch.setenv(fetch_module.URL_ENVIRONMENT_VARIABLE, CLOSED_URL)
    notebook, seconds = execute_tutorial(source, step_cap=STEP_CAP, working_dir=tmp_path)
    code_cells = check_execution_order(notebook)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 3, "figures inline"
    first_output = notebook.cells[[cell.cell_type for cell in notebook.cells].index("code")].outputs
    assert f"data root: {data_root}" in "".join(output.get("text", "") for output in first_output)
    printed = "".join(output.get("text", "") for output in outputs)
    for line in EXPECTED_WITH_CAP.get(source.stem, []):
        assert line in printed, line
    print(f"{source.stem}: {code_cells} code cells in {seconds:.1f} s with {STEP_CAP_VARIABLE}={STEP_CAP}")

"""Fault injection: nothing wrong goes unnoticed (issue 16).

Each fault a new user met is reproduced on the real release and must now end
in a clear one-line error or a correct result: a corrupt decode cache, a
corrupt weights file or zip, a data root without a manifest, a run
interrupted by SIGINT or SIGTERM, an unwritable or impossible ``--out``, a
cache folder that is a file, raw images that look recentred.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import classes.data.release_files as release_files
import script1_plot_responses as script1
import script4_compact_perf as script4
from classes.compact.architecture import load_nums_filters, load_weights_npy, model_file, model_id
from classes.data.decode_cache import verify_decode_caches
from classes.data.images import load_images
from classes.data.preprocessing import as_recentred, recenter_images
from classes.prediction import predict
from classes.runtime.paths import REPOSITORY_ROOT
from classes.runtime.result_folder import ResultFolder

WEIGHTS = "data_compact_models/model_weights_npy/compact_model_190923_neuron0.npy"
ZIP = "data_V4_responses/images/images_210305.zip"


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """A cache folder and a record of verified files private to each test (as a fresh process has)."""
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(release_files, "_RECORD", release_files._Record())
    return tmp_path / "cache"


def _release_with(tmp_path, data_root, relative: str, change=None, manifest: bool = True) -> Path:
    """A data root like the release whose file ``relative`` is a copy (changed by ``change(bytearray)``).

    Everything else is a symbolic link into the release; without ``manifest``
    the copy has no MANIFEST.sha256.
    """
    root = tmp_path / "release"
    source, target = Path(data_root), root
    target.mkdir()
    for depth, part in enumerate(Path(relative).parts):
        for entry in source.iterdir():
            if entry.name != part and (manifest or entry.name != "MANIFEST.sha256"):
                (target / entry.name).symlink_to(entry)
        source, target = source / part, target / part
        if depth < len(Path(relative).parts) - 1:
            target.mkdir()
    content = bytearray(source.read_bytes())
    if change is not None:
        change(content)
    target.write_bytes(bytes(content))
    return root


def _overwrite(offset: int, length: int):
    def change(content: bytearray) -> None:
        content[offset:offset + length] = bytes(255 - value for value in content[offset:offset + length])
    return change


def _pearson_r(folder: Path) -> dict:
    with open(folder / "per_neuron.csv") as stream:
        return {row["neuron"]: float(row["pearson_r"]) for row in csv.DictReader(stream)}


def _listing(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_corrupt_decode_cache_is_rebuilt_not_used(data_root, private_cache, tmp_path, capsys):
    # The case: 1 MiB overwritten in the middle of the cached images
    # changed neuron 1's r from 0.693 to 0.637, exit status 0.
    arguments = ["--sessions", "190923", "--neurons", "0,1", "--data-root", str(data_root)]
    script4.main([*arguments, "--out", str(tmp_path / "first")])
    (cached,) = private_cache.glob("images_190923_*.npy")
    with open(cached, "r+b") as stream:
        stream.seek(cached.stat().st_size // 2)
        stream.write(np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    capsys.readouterr()
    script4.main([*arguments, "--out", str(tmp_path / "second")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "decode cache" in line]
    assert len(warnings) == 1 and str(cached) in warnings[0] and "corrupt" in warnings[0]
    assert _pearson_r(tmp_path / "second") == _pearson_r(tmp_path / "first")
    assert _pearson_r(tmp_path / "first")["1"] == pytest.approx(0.693, abs=5e-4)
    (rebuilt,) = private_cache.glob("images_190923_*.npy")
    assert verify_decode_caches(private_cache) == (1, [])
    # --verify checks the caches too: a corrupt one is found and removed.
    with open(rebuilt, "r+b") as stream:
        stream.seek(5000)
        stream.write(b"\x00" * 64)
    intact, removed = verify_decode_caches(private_cache)
    assert intact == 0 and len(removed) == 1 and str(rebuilt) in removed[0]
    assert not rebuilt.exists()


def test_corrupt_weights_are_refused(data_root, tmp_path, capsys):
    # The case: 64 bytes at offset 5000 gave r = -0.019 instead of 0.725, exit status 0.
    root = _release_with(tmp_path, data_root, WEIGHTS, _overwrite(5000, 64))
    images = recenter_images(load_images("190923", [601, 602], data_root))
    with pytest.raises(ValueError, match=r"compact_model_190923_neuron0\.npy does not match MANIFEST\.sha256"):
        predict(["190923/0"], images, data_root=root)
    with pytest.raises(ValueError, match="Download it again"):
        load_weights_npy(model_id("190923", 0), root)
    np.testing.assert_array_equal(load_nums_filters(model_id("190923", 0), root),
                                  load_nums_filters(model_id("190923", 0), data_root))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        script4.main(["--sessions", "190923", "--neurons", "0", "--data-root", str(root),
                      "--out", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "does not match MANIFEST.sha256" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_corrupt_zip_is_refused(data_root, tmp_path):
    root = _release_with(tmp_path, data_root, ZIP, _overwrite(1_000_000, 64))
    with pytest.raises(ValueError, match=r"images_210305\.zip does not match MANIFEST\.sha256"):
        load_images("210305", [1], root)


def test_release_files_are_hashed_once_then_remembered(data_root, tmp_path, monkeypatch, private_cache):
    root = _release_with(tmp_path, data_root, WEIGHTS)
    hashed = []
    original = release_files.sha256_of_file
    monkeypatch.setattr(release_files, "sha256_of_file", lambda path: hashed.append(Path(path).name) or original(path))
    identifier = model_id("190923", 0)
    load_weights_npy(identifier, root)
    load_weights_npy(identifier, root)
    assert hashed == ["compact_model_190923_neuron0.npy"]
    release_files.save_verified_record()
    assert str(model_file(identifier, "npy", root)) in (private_cache / "verified_release_files.json").read_text()
    # A later run (a fresh record, read from the cache folder) does not hash it again ...
    monkeypatch.setattr(release_files, "_RECORD", release_files._Record())
    load_weights_npy(identifier, root)
    assert len(hashed) == 1
    # ... unless the file changed since (size or modification time).
    path = root / WEIGHTS
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(release_files, "_RECORD", release_files._Record())
    load_weights_npy(identifier, root)
    assert len(hashed) == 2


def test_data_root_without_manifest_warns_once(data_root, tmp_path, capsys):
    root = _release_with(tmp_path, data_root, WEIGHTS, manifest=False)
    load_weights_npy(model_id("190923", 0), root)
    load_nums_filters(model_id("190923", 1), root)
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [f"warning: {root} has no MANIFEST.sha256; its files are used unverified."]
    with pytest.raises(SystemExit) as exit_info:
        script1.main(["--session", "190923", "--verify", "--data-root", str(root), "--out", str(tmp_path / "out")])
    assert str(exit_info.value.code).startswith(f"error: No MANIFEST.sha256 in {root}")
    assert not (tmp_path / "out").exists()


def _interrupt_by_default() -> None:
    # A suite started in the background (nohup ... &) passes SIGINT on as
    # ignored, and Python then never raises KeyboardInterrupt: the child
    # must start with the default disposition that a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_previous_results_whole(data_root, tmp_path, signal_name):
    out = tmp_path / "out"
    script4.main(["--sessions", "211022", "--neurons", "0", "--data-root", str(data_root), "--out", str(out)])
    before = _listing(out)
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "script4_compact_perf.py", "--sessions", "190923", "--data-root", str(data_root),
         "--out", str(out)],
        cwd=REPOSITORY_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_interrupt_by_default)
    for line in process.stdout:
        if line.startswith("data root:"):
            break
    time.sleep(2)
    assert [path.name for path in tmp_path.iterdir() if ".partial-" in path.name]  # the run is under way
    process.send_signal(getattr(signal, signal_name))
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 128 + getattr(signal, signal_name)
    assert errors.strip().splitlines()[-1] == (
        f"interrupted ({signal_name}); the previous results were left as they were.")
    assert _listing(out) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "out"]


def test_rerun_replaces_results_whole(data_root, tmp_path):
    out = tmp_path / "out"
    script4.main(["--sessions", "190923", "--neurons", "0", "--data-root", str(data_root), "--out", str(out)])
    assert (out / "fig1h_compact_performance.png").is_file()
    script4.main(["--sessions", "211022", "--neurons", "0", "--data-root", str(data_root), "--out", str(out)])
    assert not list(out.glob("fig1h_*"))
    assert [line.split(",")[:2] for line in (out / "per_neuron.csv").read_text().splitlines()[1:]] == [
        ["211022", "0"]]
    (out / ".summary.json.part12345").write_text("left by a killed writer")
    with pytest.raises(SystemExit, match="already holds results"):
        script4.main(["--sessions", "211022", "--neurons", "0", "--out", str(out), "--no-overwrite"])
    for path in out.iterdir():
        if not path.name.startswith(".summary"):
            path.unlink()
    # Hidden .part files are not results.
    script4.main(["--sessions", "211022", "--neurons", "0", "--out", str(out), "--no-overwrite"])
    assert not list(out.glob(".*.part*"))


def test_unwritable_out_is_found_before_any_work(tmp_path, capsys, unwritable_folder):
    folder = unwritable_folder
    with pytest.raises(SystemExit) as exit_info:
        script4.main(["--sessions", "190923", "--out", str(folder / "results")])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: --out {folder / 'results'} cannot be written") and "\n" not in message
    assert "data root:" not in capsys.readouterr().out


def test_impossible_out_and_cache_folder(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    name = re.escape(str(a_file))
    with pytest.raises(SystemExit, match=rf"^error: --out {name}/sub cannot be created: {name} is a file"):
        script1.main(["--out", str(a_file / "sub")])
    with pytest.raises(SystemExit, match=rf"^error: --out {name} exists and is not a folder"):
        script1.main(["--out", str(a_file)])
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(a_file))
    with pytest.raises(SystemExit, match=rf"^error: COWLEY2023_CACHE_DIR={name} is a file, not a folder"):
        script1.main(["--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    # A folder that holds files no run wrote is never replaced.
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    monkeypatch.delenv("COWLEY2023_CACHE_DIR")
    with pytest.raises(SystemExit, match="holds files that no run of this project wrote"):
        script1.main(["--out", str(tmp_path / "home")])
    assert (tmp_path / "home" / "notes.txt").read_text() == "mine"


def test_failed_run_leaves_no_folder(data_root, tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(SystemExit, match=r"^error: --ensemble-dir: .*ensemble_predictions_190923\.npy does not exist"):
        script4.main(["--sessions", "190923", "--neurons", "0", "--ensemble-dir", str(tmp_path / "none"),
                      "--data-root", str(data_root), "--out", str(out)])
    assert not (tmp_path / "new").exists()


def test_response_files_are_checked_before_prediction(data_root, tmp_path, monkeypatch):
    root = _release_with(tmp_path, data_root, "data_V4_responses/responses_repeat_averaged/responses_201025.npy",
                         _overwrite(200, 64))
    predicted = []
    monkeypatch.setattr(script4, "score_models_on_held_out", lambda *arguments, **options: predicted.append(1))
    with pytest.raises(SystemExit, match=r"responses_201025\.npy does not match MANIFEST\.sha256"):
        script4.main(["--sessions", "190923,201025", "--neurons", "0", "--data-root", str(root),
                      "--out", str(tmp_path / "out")])
    assert predicted == []


def test_raw_images_that_look_recentred_are_not_guessed(data_root):
    # The case: a flat 128 raw float image taken as recentred gave
    # -0.846 for 190923/neuron0 instead of -0.782.
    flat = np.full((1, 112, 112, 3), 128.0, np.float32)
    with pytest.raises(ValueError, match=r"fits raw pixels and recentred images alike.*recenter_images.*as_recentred"):
        predict(["190923/0"], flat, data_root=data_root)
    assert predict(["190923/0"], recenter_images(flat), data_root=data_root)[0, 0] == pytest.approx(-0.782, abs=1e-3)
    assert predict(["190923/0"], as_recentred(flat), data_root=data_root)[0, 0] == pytest.approx(-0.846, abs=1e-3)


def test_kept_entries_survive_an_abandoned_run(tmp_path):
    out = tmp_path / "out"
    first = ResultFolder(out, keep=("all",))
    (first.path / "all").mkdir()
    (first.path / "all" / "a.json").write_text("a")
    (first.path / "summary.json").write_text("first")
    first.commit()
    second = ResultFolder(out, keep=("all",))
    assert (second.path / "all" / "a.json").is_file() and not (out / "all").exists()
    (second.path / "all" / "b.json").write_text("b")
    (second.path / "summary.json").write_text("second")
    second.abandon()
    assert sorted(path.name for path in (out / "all").iterdir()) == ["a.json", "b.json"]
    assert (out / "summary.json").read_text() == "first"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_killed_run_is_tidied_up_by_the_next(tmp_path):
    out = tmp_path / "out"
    first = ResultFolder(out, keep=("all",))
    (first.path / "all").mkdir()
    (first.path / "summary.json").write_text("first")
    first.commit()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = out.with_name(f"out.partial-{int(finished.stdout)}")
    dead.mkdir()
    (dead / ".carried.json").write_text('["all"]')
    os.replace(out / "all", dead / "all")  # killed (SIGKILL) after carrying all/ in
    (dead / "half_written.csv").write_text("x")
    following = ResultFolder(out, keep=("all",))
    assert not dead.exists()
    assert (following.path / "all").is_dir()
    following.abandon()
    assert sorted(path.name for path in out.iterdir()) == [".cowley2023-results", "all", "summary.json"]


def test_messages_name_the_final_folder_of_nested_runs(tmp_path, monkeypatch):
    """A run inside another run's folder (bench_paper around reproduce_paper) names where its files end up."""
    from classes.reporting import script_support

    outer = ResultFolder(tmp_path / "bench")
    inner = ResultFolder(outer.path / "reproduction")
    monkeypatch.setattr(script_support, "_ACTIVE", [outer, inner])
    written = inner.path / "report.json"
    assert ".partial-" in str(written)
    assert script_support.shown(f"wrote {written}") == f"wrote {tmp_path / 'bench' / 'reproduction' / 'report.json'}"
    inner.abandon()
    outer.abandon()

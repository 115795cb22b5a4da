"""Where the data root is found, and checking files against the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import classes.data.data_root as data_root_module
from classes.data.data_root import (
    ENVIRONMENT_VARIABLE,
    read_manifest,
    resolve_data_root,
    sha256_of_file,
)
from classes.data.release_files import verify_data_root
from classes.runtime.paths import default_cache_dir


def _make_release(folder: Path) -> Path:
    """A minimal folder that counts as holding release data."""
    averaged = folder / "data_V4_responses" / "responses_repeat_averaged"
    averaged.mkdir(parents=True)
    (averaged / "responses_190923.npy").write_bytes(b"placeholder")
    return folder


def _make_readme_only(folder: Path) -> Path:
    """A checkout's data_* folders holding only readmes (no data)."""
    for name in ("data_V4_responses", "data_compact_models"):
        (folder / name).mkdir(parents=True)
        (folder / name / "readme.md").write_text("data goes here\n")
    (folder / "data_compact_models" / "models_keras").mkdir()
    return folder


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """tmp/work/main (a fake checkout), tmp/work/shared/cowley2023_release, env unset."""
    repository = tmp_path / "work" / "main"
    repository.mkdir(parents=True)
    shared = tmp_path / "work" / "shared" / "cowley2023_release"
    beside = tmp_path / "work" / "cowley2023_release"
    monkeypatch.setattr(data_root_module, "REPOSITORY_ROOT", repository)
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    return {"repository": repository, "shared": shared, "beside": beside, "tmp": tmp_path}


def test_explicit_beats_environment(layout, monkeypatch):
    explicit = _make_release(layout["tmp"] / "explicit")
    environment = _make_release(layout["tmp"] / "environment")
    _make_release(layout["repository"])
    _make_release(layout["shared"])
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(environment))
    assert resolve_data_root(explicit) == explicit.resolve()
    assert resolve_data_root(str(explicit)) == explicit.resolve()


def test_environment_beats_repository(layout, monkeypatch):
    environment = _make_release(layout["tmp"] / "environment")
    _make_release(layout["repository"])
    _make_release(layout["shared"])
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(environment))
    assert resolve_data_root() == environment.resolve()


def test_repository_beats_shared(layout):
    _make_release(layout["repository"])
    _make_release(layout["shared"])
    assert resolve_data_root() == layout["repository"].resolve()


def test_readme_only_repository_falls_through_to_shared(layout):
    _make_readme_only(layout["repository"])
    _make_release(layout["shared"])
    _make_release(layout["beside"])
    assert resolve_data_root() == layout["shared"].resolve()


def test_release_beside_checkout_is_last(layout):
    _make_readme_only(layout["repository"])
    _make_release(layout["beside"])
    assert resolve_data_root() == layout["beside"].resolve()


@pytest.mark.parametrize(
    "marker", ["data_compact_models/models_keras", "data_compact_models/model_weights_npy"]
)
def test_any_marker_folder_marks_data(layout, marker):
    folder = layout["shared"] / marker
    folder.mkdir(parents=True)
    (folder / "some_file").write_text("x")
    assert resolve_data_root() == layout["shared"].resolve()


def test_nothing_found_lists_every_place(layout):
    _make_readme_only(layout["repository"])
    with pytest.raises(FileNotFoundError) as error:
        resolve_data_root()
    message = str(error.value)
    assert str(layout["repository"]) in message
    assert str(layout["shared"]) in message
    assert str(layout["beside"]) in message
    assert ENVIRONMENT_VARIABLE in message and "--data-root" in message


def test_explicit_missing_folder(layout):
    _make_release(layout["shared"])  # no fallback for an explicit path
    missing = layout["tmp"] / "does_not_exist"
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        resolve_data_root(missing)
    assert str(missing) in str(error.value)


def test_explicit_empty_folder_lists_what_was_looked_for(layout):
    _make_release(layout["shared"])
    empty = layout["tmp"] / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as error:
        resolve_data_root(empty)
    message = str(error.value)
    assert str(empty) in message
    assert "data_V4_responses/responses_repeat_averaged" in message
    assert "data_compact_models/models_keras" in message


def test_explicit_readme_only_folder_is_refused(layout):
    _make_release(layout["shared"])
    with pytest.raises(FileNotFoundError, match="holds none of the release's data"):
        resolve_data_root(_make_readme_only(layout["tmp"] / "checkout"))


def test_environment_without_data_is_refused(layout, monkeypatch):
    _make_release(layout["shared"])
    empty = layout["tmp"] / "empty"
    empty.mkdir()
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(empty))
    with pytest.raises(FileNotFoundError, match=ENVIRONMENT_VARIABLE):
        resolve_data_root()


def test_real_release_is_found(data_root):
    assert (data_root / "data_V4_responses" / "readme.txt").is_file()
    assert resolve_data_root(data_root) == data_root


# --- the checksum manifest ------------------------------------------------


def _write_small_release(root: Path) -> dict[str, bytes]:
    files = {
        "LICENSE": b"license text\n",
        "data_V4_responses/readme.txt": b"readme\n",
        "data_compact_models/nums_filters/a.npy": bytes(range(256)) * 3,
    }
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    lines = [f"{hashlib.sha256(content).hexdigest()}  ./{relative}" for relative, content in files.items()]
    (root / "MANIFEST.sha256").write_text("\n".join(lines) + "\n\n")
    return files


def test_sha256_of_file_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    content = b"x" * (3 * 1024 * 1024 + 17)  # more than one read chunk
    path.write_bytes(content)
    assert sha256_of_file(path) == hashlib.sha256(content).hexdigest()
    assert sha256_of_file(path, chunk_size=1000) == hashlib.sha256(content).hexdigest()


def test_read_manifest_strips_dot_prefix(tmp_path):
    files = _write_small_release(tmp_path)
    entries = read_manifest(tmp_path)
    assert set(entries) == set(files)
    assert entries["LICENSE"] == hashlib.sha256(files["LICENSE"]).hexdigest()


def test_verify_passes_on_intact_copy(tmp_path):
    _write_small_release(tmp_path)
    assert verify_data_root(tmp_path, show_progress=False) == []


def test_verify_detects_mismatch_and_missing(tmp_path):
    _write_small_release(tmp_path)
    (tmp_path / "data_V4_responses" / "readme.txt").write_bytes(b"readme!\n")
    (tmp_path / "data_compact_models" / "nums_filters" / "a.npy").unlink()
    problems = verify_data_root(tmp_path, show_progress=False)
    assert sorted(problems) == [
        "checksum mismatch: data_V4_responses/readme.txt",
        "missing: data_compact_models/nums_filters/a.npy",
    ]


def test_verify_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANIFEST.sha256"):
        verify_data_root(tmp_path, show_progress=False)


def test_real_manifest_covers_release_and_matches_small_files(data_root):
    entries = read_manifest(data_root)
    assert sum(path.startswith("data_compact_models/models_keras/") for path in entries) == 219
    assert sum(path.startswith("data_V4_responses/images/") for path in entries) == 12
    for relative in ("data_V4_responses/readme.txt", "LICENSE"):
        assert sha256_of_file(data_root / relative) == entries[relative]
    nums_filters = sorted(p for p in entries if p.startswith("data_compact_models/nums_filters/"))
    assert len(nums_filters) == 219
    for relative in nums_filters[:10]:
        assert sha256_of_file(data_root / relative) == entries[relative]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("COWLEY2023_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cowley2023"


def test_cache_dir_that_is_a_file_is_named_as_the_cache(monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(tmp_path / "a_file"))
    with pytest.raises(ValueError, match=r"^COWLEY2023_CACHE_DIR=.*a_file is a file, not a folder; the project keeps"):
        default_cache_dir()
    monkeypatch.delenv("COWLEY2023_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "cowley2023").write_text("x")
    with pytest.raises(ValueError, match=r"^the cache folder .*cowley2023 is a file"):
        default_cache_dir()

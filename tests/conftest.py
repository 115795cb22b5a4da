"""Shared fixtures: the real release, required in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from classes.runtime.native import ISA_VARIABLE, available_isas

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _release_root():
    from classes.data.data_root import resolve_data_root

    try:
        return resolve_data_root()
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the real release data: {error}")
        pytest.skip(f"release data not found: {error}")


@pytest.fixture(scope="session")
def data_root():
    """The resolved release folder; fails under CI when missing, else skips."""
    return _release_root()


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory):
    """A cache folder private to this test run."""
    return tmp_path_factory.mktemp("image_cache")


@pytest.fixture(scope="session")
def first_model(data_root):
    """The first released compact model, 190923/neuron0 (filters 48 60 3 3 3)."""
    from classes.compact.model import load_compact_model

    return load_compact_model("190923", 0, data_root=data_root)


@pytest.fixture(scope="session")
def images_190923(data_root, image_cache):
    """The first 8 held-out images of session 190923, recentred float32 ``(8, 112, 112, 3)``."""
    from classes.data.images import load_images
    from classes.data.preprocessing import recenter_images
    from classes.data.sessions import held_out_indices

    return recenter_images(load_images("190923", held_out_indices("190923")[1][:8] + 1, data_root,
                                       cache_dir=image_cache))


@pytest.fixture(scope="session")
def few_images(images_190923):
    return images_190923[:3]


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot write into (root ignores permissions, but not /sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        (Path("/sys") / f"cowley2023_probe_{os.getpid()}").mkdir()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder here is unwritable for root")


@pytest.fixture(params=available_isas())
def kernel_isa(request, monkeypatch):
    """Each instruction set this CPU runs, forced through COWLEY2023_KERNEL_ISA (skipped where the kernel cannot run)."""
    from classes.prediction.kernel import kernel_unavailable_reason

    monkeypatch.setenv(ISA_VARIABLE, request.param)
    reason = kernel_unavailable_reason()
    if reason is not None:
        pytest.skip(f"the compiled kernel cannot run here: {reason}")
    return request.param

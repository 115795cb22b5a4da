"""The teacher that labels the image stream, and its per-block cache, on the real release."""

from __future__ import annotations

import os

import numpy as np
import pytest

from classes.compact.architecture import model_file, model_id
from classes.compact.model import load_compact_model
from classes.compact.shared_model import load_shared_compact_model, predict_shared
from classes.compact.tools import predict_responses
from classes.data.data_root import sha256_of_file
from classes.data.image_stream import ImageStream
from classes.prediction import predict
from classes.runtime.outputs import write_npy
from classes.training.teacher import Teacher, TeacherCache


@pytest.fixture(scope="module")
def stream(data_root):
    return ImageStream(seed=1, block_size=16, data_root=data_root, num_validation=8)


@pytest.fixture(scope="module")
def compact_teacher(data_root):
    return Teacher("compact", "190923/0", data_root=data_root)


@pytest.fixture(scope="module")
def shared_teacher(data_root):
    return Teacher("shared", data_root=data_root)


def test_compact_teacher_matches_the_keras_model(compact_teacher, stream, data_root):
    images = np.concatenate([stream.block(0)[0], stream.validation_images()])
    responses = compact_teacher.responses(images)
    assert responses.shape == (1, 24) and responses.dtype == np.float32
    reference = predict_responses(load_compact_model("190923", 0, data_root=data_root), images)
    assert np.abs(responses[0] - reference).max() <= 1e-4 * reference.std()


def test_shared_teacher_matches_the_keras_model(shared_teacher, stream, data_root):
    images = stream.block(0)[0]
    responses = shared_teacher.responses(images)
    assert responses.shape == (219, 16) and responses.dtype == np.float32
    reference = predict_shared(load_shared_compact_model("from_ensemble_model", 200, data_root), images).T
    assert np.abs(responses - reference).max() <= 1e-4 * reference.std()


def test_columns(compact_teacher, shared_teacher):
    assert compact_teacher.column("190923", 0) == 0
    with pytest.raises(ValueError, match="one output"):
        compact_teacher.column("190923", 1)
    assert shared_teacher.column("190923", 0) == 0
    assert shared_teacher.column("201025", 2) == 33 + 2
    assert shared_teacher.column("211022", 41) == 218


def test_fingerprint_is_the_model_identity(compact_teacher, data_root):
    weight_file = model_file(model_id("190923", 0), "npy", data_root)
    assert compact_teacher.describe()["weight_file"] == str(weight_file)
    assert compact_teacher.describe()["weight_sha256"] == sha256_of_file(weight_file)
    assert Teacher("compact", ("190923", 0), data_root=data_root).fingerprint() == compact_teacher.fingerprint()
    assert Teacher("compact", "190923/1", data_root=data_root).fingerprint() != compact_teacher.fingerprint()


def test_cache_computes_once_and_reuses_the_file(compact_teacher, stream, data_root, tmp_path, monkeypatch):
    cache = TeacherCache(tmp_path, compact_teacher, stream)
    targets = cache.block_targets(1)
    np.testing.assert_allclose(targets, predict("190923/0", stream.block(1)[0], data_root=data_root), rtol=0,
                               atol=1e-6)
    path = tmp_path / f"teacher_{compact_teacher.fingerprint()}_{stream.fingerprint()}_block000001.npy"
    assert path.is_file()
    modified = os.stat(path).st_mtime_ns

    def refuse(images):
        raise AssertionError("the cached block was computed again")

    monkeypatch.setattr(compact_teacher, "responses", refuse)
    np.testing.assert_array_equal(cache.block_targets(1), targets)
    assert os.stat(path).st_mtime_ns == modified


def test_validation_targets(shared_teacher, stream, tmp_path):
    cache = TeacherCache(tmp_path, shared_teacher, stream)
    targets = cache.validation_targets()
    assert targets.shape == (219, 8)
    np.testing.assert_array_equal(targets, shared_teacher.responses(stream.validation_images()))
    assert (tmp_path / f"teacher_{shared_teacher.fingerprint()}_{stream.fingerprint()}_validation.npy").is_file()


@pytest.mark.parametrize("damage", ["garbage", "wrong shape", "truncated"])
def test_a_damaged_cache_file_is_recomputed(compact_teacher, stream, tmp_path, damage):
    cache = TeacherCache(tmp_path, compact_teacher, stream)
    targets = cache.block_targets(0)
    path = cache.path("block000000")
    if damage == "garbage":
        path.write_bytes(b"not an npy file")
    elif damage == "wrong shape":
        write_npy(path, np.zeros((1, 5), np.float32))
    else:
        path.write_bytes(path.read_bytes()[:100])
    np.testing.assert_array_equal(cache.block_targets(0), targets)
    np.testing.assert_array_equal(np.load(path), targets)


def test_cache_refuses_images_of_another_shape(compact_teacher, stream, tmp_path):
    with pytest.raises(ValueError, match="must have shape"):
        TeacherCache(tmp_path, compact_teacher, stream).block_targets(0, images=np.zeros((3, 112, 112, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        TeacherCache(tmp_path, compact_teacher, stream).block_targets(-2)


def _fake_release(tmp_path):
    folder = tmp_path / "data_compact_models" / "model_weights_npy"
    folder.mkdir(parents=True)
    return folder


def test_missing_or_corrupt_teacher_files(tmp_path):
    folder = _fake_release(tmp_path)
    (folder / "compact_model_190923_neuron0.npy").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="compact_model_190923_neuron0.npy is corrupt.*Download it again"):
        Teacher("compact", "190923/0", data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="compact_model_190923_neuron1.npy"):
        Teacher("compact", "190923/1", data_root=tmp_path)
    shared = tmp_path / "data_shared_compact_models" / "from_ensemble_model"
    shared.mkdir(parents=True)
    (shared / "shared_compact_model_200filters.keras").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="shared_compact_model_200filters.keras.*corrupt"):
        Teacher("shared", data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="shared_compact_model_100filters.keras"):
        Teacher("shared", "from_ensemble_model/100", data_root=tmp_path)


@pytest.mark.parametrize(
    "kind, model, message",
    [("ensemble", None, "kind must be one of"), ("compact", None, "needs model="),
     ("compact", "190924/0", "no compact models"), ("shared", "from_ensemble_model", "<teacher>/<filters>")],
)
def test_bad_teacher_names_are_refused(data_root, kind, model, message):
    with pytest.raises(ValueError, match=message):
        Teacher(kind, model, data_root=data_root)

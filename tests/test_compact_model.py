"""Compact models: the 219 released files, their loaders and saving (the tools: tests/test_compact_tools.py).

The all-219 check loads every model twice (.keras and npy + nums_filters) and
runs both on 8 real images; it takes about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from classes.compact.architecture import (
    WEIGHTS_PER_MODEL,
    ModelId,
    all_model_ids,
    check_nums_filters,
    load_nums_filters,
    load_weights_npy,
    model_file,
    model_id,
    nums_filters_from_weights,
    parse_model_stem,
)
from classes.compact.model import build_compact_model, load_compact_model, save_compact_model
from classes.compact.tools import (
    count_convolutional_filters,
    count_parameters,
    nums_filters_of,
)
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import held_out_indices
from classes.runtime.quiet_tensorflow import keras

# Keras warns that a loaded model's input structure is a list; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")

MODEL_IDS = all_model_ids()
# Test session 211022's images are not in the release; its models are run on
# images of the validation session 210224 instead.
_IMAGE_SOURCE = {"190923": "190923", "201025": "201025", "210225": "210225", "211022": "210224"}
_TOTAL_PARAMS = re.compile(r"Total params:\s*([\d,]+)")


def _numbers_for(session_id: str) -> np.ndarray:
    """1-based numbers of 8 images to run a session's models on."""
    source = _IMAGE_SOURCE[session_id]
    if source == session_id:
        return held_out_indices(session_id)[1][:8] + 1
    return np.arange(401, 409)


@pytest.fixture(scope="module")
def session_images(data_root, image_cache):
    """Recentred float32 images ``(8, 112, 112, 3)`` per test session."""
    return {
        session: recenter_images(
            load_images(source, _numbers_for(session), data_root, cache_dir=image_cache)
        )
        for session, source in _IMAGE_SOURCE.items()
    }


def keras_responses(model, images) -> np.ndarray:
    """The Keras model's own call (also used by tests/test_compact_tools.py)."""
    return np.asarray(model(images, training=False))[:, 0]


def _summary_total_params(data_root, identifier: ModelId) -> int:
    text = model_file(identifier, "summary", data_root).read_text()
    (match,) = _TOTAL_PARAMS.findall(text)
    return int(match.replace(",", ""))


def _closed_form_parameter_count(counts) -> int:
    """Parameters of a compact model, BN moving statistics included."""
    total = 5 * 5 * 3 * counts[0] + counts[0] + 4 * counts[0]
    for previous, current in zip(counts[:-1], counts[1:], strict=True):
        total += 5 * 5 * previous + previous * current + current + 4 * current
    return total + 28 * 28 * counts[-1] + 1


# --- every released model -------------------------------------------------


def test_there_are_219_models_in_shared_model_order():
    assert len(MODEL_IDS) == 219
    assert MODEL_IDS[0] == ModelId("190923", 0)
    assert MODEL_IDS[33] == ModelId("201025", 0)
    assert MODEL_IDS[33 + 89] == ModelId("210225", 0)
    assert MODEL_IDS[-1] == ModelId("211022", 41)
    assert len(set(MODEL_IDS)) == 219


def test_released_folders_hold_one_file_per_model(data_root):
    folder = data_root / "data_compact_models"
    expected = {identifier.stem for identifier in MODEL_IDS}
    for subfolder, suffix in [
        ("models_keras", ".keras"),
        ("model_weights_npy", ".npy"),
        ("nums_filters", ".npy"),
        ("model_summaries", ".txt"),
    ]:
        stems = {path.name.removesuffix(suffix) for path in (folder / subfolder).iterdir()}
        assert stems == expected, subfolder


@pytest.mark.slow
@pytest.mark.parametrize("identifier", MODEL_IDS, ids=str)
def test_released_model_keras_and_npy_agree(data_root, session_images, identifier):
    from_keras = load_compact_model(identifier.session_id, identifier.neuron, "keras", data_root)
    from_npy = load_compact_model(identifier.session_id, identifier.neuron, "npy", data_root)
    counts = load_nums_filters(identifier, data_root)
    assert from_keras.name == from_npy.name == identifier.stem
    # nums_filters match both built models and the weight shapes.
    assert nums_filters_of(from_keras) == counts
    assert nums_filters_of(from_npy) == counts
    assert nums_filters_from_weights(load_weights_npy(identifier, data_root)) == counts
    # Parameter count equals Keras' own summary in the release.
    released_total = _summary_total_params(data_root, identifier)
    assert count_parameters(from_keras) == released_total
    assert count_parameters(from_npy) == released_total
    assert _closed_form_parameter_count(counts) == released_total
    # Same weights, same outputs.
    keras_weights = from_keras.get_weights()
    npy_weights = from_npy.get_weights()
    assert len(keras_weights) == len(npy_weights) == WEIGHTS_PER_MODEL
    for keras_array, npy_array in zip(keras_weights, npy_weights, strict=True):
        np.testing.assert_array_equal(keras_array, npy_array)
    images = session_images[identifier.session_id]
    keras_output = keras_responses(from_keras, images)
    np.testing.assert_array_equal(keras_output, keras_responses(from_npy, images))
    assert np.all(np.isfinite(keras_output))
    assert np.ptp(keras_output) > 0  # a live model responds differently to images
    keras.backend.clear_session()


def test_filter_count_medians(data_root):
    counts = np.array([load_nums_filters(identifier, data_root) for identifier in MODEL_IDS])
    assert counts.shape == (219, 5)
    np.testing.assert_array_equal(np.median(counts, axis=0), [47, 57, 3, 7, 3])
    assert counts.min() >= 3  # pruning keeps at least 3 filters per layer
    # The paper's median of 164 convolutional filters (Fig. 3a).
    assert np.median(count_convolutional_filters(counts)) == 164
    assert np.median(counts.sum(axis=1)) == 116


def test_count_convolutional_filters_known_answers():
    assert count_convolutional_filters([48, 60, 3, 3, 3]) == 2 * 48 + 60 + 9
    np.testing.assert_array_equal(
        count_convolutional_filters(np.array([[1, 1, 1, 1, 1], [10, 5, 4, 3, 3]])), [6, 35]
    )
    with pytest.raises(ValueError, match="5 counts"):
        count_convolutional_filters([1, 2, 3])


def test_first_model_known_architecture(first_model):
    assert nums_filters_of(first_model) == [48, 60, 3, 3, 3]
    assert count_parameters(first_model) == 12466  # its released summary
    names = [layer.name for layer in first_model.layers]
    assert names[0] == "image_input" and names[-2:] == ["embeddings", "Beta"]
    for layer in range(5):
        assert f"layer{layer}_conv" in names and f"layer{layer}_bn" in names
    assert first_model.get_layer("layer0_bn").epsilon == pytest.approx(1e-3)
    assert first_model.get_layer("layer1_conv").strides == (2, 2)
    assert first_model.get_layer("layer3_conv").strides == (1, 1)


# --- building, saving, reloading --------------------------------------------


def test_build_compact_model_shapes_and_count():
    model = build_compact_model([4, 5, 6, 7, 8])
    assert model.output_shape == (None, 1)
    assert model.get_layer("layer4_act").output.shape[1:] == (28, 28, 8)
    assert count_parameters(model) == _closed_form_parameter_count([4, 5, 6, 7, 8])
    assert nums_filters_from_weights(model.get_weights()) == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("bad", [[1, 2, 3, 4], [1, 2, 3, 4, 0], [1.5, 2, 3, 4, 5], "abcde"])
def test_check_nums_filters_rejects(bad):
    with pytest.raises(ValueError):
        check_nums_filters(bad)


def test_nums_filters_from_weights_wrong_length():
    with pytest.raises(ValueError, match="36 weight arrays"):
        nums_filters_from_weights([np.zeros(1)] * 10)


@pytest.mark.parametrize("neuron", [0, 17])
def test_save_and_reload_gives_identical_outputs(data_root, tmp_path, session_images, neuron):
    model = load_compact_model("201025", neuron, data_root=data_root)
    images = session_images["201025"]
    expected = keras_responses(model, images)

    whole = save_compact_model(model, tmp_path / "model.keras")
    reloaded = keras.models.load_model(whole, compile=False)
    np.testing.assert_array_equal(keras_responses(reloaded, images), expected)

    weights_path = save_compact_model(model, tmp_path / "model.weights.h5")
    rebuilt = build_compact_model(nums_filters_of(model))
    rebuilt.load_weights(weights_path)
    np.testing.assert_array_equal(keras_responses(rebuilt, images), expected)
    # No temporary files left beside the targets.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras", "model.weights.h5"]


def test_save_refuses_to_overwrite(first_model, tmp_path, few_images):
    target = save_compact_model(first_model, tmp_path / "m.keras")
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_compact_model(first_model, target)
    assert target.read_bytes() == before
    other = build_compact_model([3, 3, 3, 3, 3])
    save_compact_model(other, target, overwrite=True)
    assert nums_filters_of(keras.models.load_model(target, compile=False)) == [3, 3, 3, 3, 3]
    with pytest.raises(ValueError, match=r"\.keras or \.weights\.h5"):
        save_compact_model(first_model, tmp_path / "m.h5")


@pytest.mark.parametrize(
    "session_id, neuron, message",
    [
        ("190924", 0, "has no compact models"),
        ("123456", 0, "Unknown session"),
        ("190923", 33, r"neurons 0\.\.32"),
        ("211022", -1, r"neurons 0\.\.41"),
        ("190923", 1.0, "integer index"),
        ("190923", True, "integer index"),
        ("190923", "3", "integer index"),
    ],
)
def test_unknown_session_or_neuron(data_root, session_id, neuron, message):
    with pytest.raises(ValueError, match=message):
        load_compact_model(session_id, neuron, data_root=data_root)


def test_unknown_format(data_root):
    with pytest.raises(ValueError, match="file_format"):
        load_compact_model("190923", 0, "onnx", data_root)


def test_parse_model_stem_round_trip():
    for identifier in MODEL_IDS[::37]:
        assert parse_model_stem(identifier.stem) == identifier
    with pytest.raises(ValueError, match="not a compact model name"):
        parse_model_stem("shared_compact_model_5filters")
    assert model_id(np.int64(201025), np.int64(3)) == ModelId("201025", 3)


def _tmp_model_root(tmp_path, data_root, subfolders=("models_keras",)):
    """A data root whose compact-model folders are real folders to fill."""
    root = tmp_path / "release"
    for subfolder in subfolders:
        (root / "data_compact_models" / subfolder).mkdir(parents=True)
    return root


def test_missing_model_file(data_root, tmp_path):
    root = _tmp_model_root(tmp_path, data_root)
    name = "compact_model_190923_neuron0.keras"
    (root / "data_compact_models" / "models_keras" / name).symlink_to(
        data_root / "data_compact_models" / "models_keras" / name
    )
    assert nums_filters_of(load_compact_model("190923", 0, data_root=root)) == [48, 60, 3, 3, 3]
    with pytest.raises(FileNotFoundError) as error:
        load_compact_model("190923", 1, data_root=root)
    message = str(error.value)
    assert "compact_model_190923_neuron1.keras" in message and "holds 1 files" in message
    with pytest.raises(FileNotFoundError, match="nums_filters"):
        load_compact_model("190923", 0, "npy", data_root=root)


def test_truncated_keras_file(data_root, tmp_path):
    root = _tmp_model_root(tmp_path, data_root)
    name = "compact_model_190923_neuron0.keras"
    content = (data_root / "data_compact_models" / "models_keras" / name).read_bytes()
    (root / "data_compact_models" / "models_keras" / name).write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_compact_model("190923", 0, data_root=root)


def test_npy_with_mismatched_nums_filters(data_root, tmp_path):
    root = _tmp_model_root(tmp_path, data_root, ("model_weights_npy", "nums_filters"))
    released = data_root / "data_compact_models"
    stem = "compact_model_190923_neuron0.npy"
    (root / "data_compact_models" / "model_weights_npy" / stem).symlink_to(
        released / "model_weights_npy" / stem
    )
    # neuron1's counts under neuron0's name: [48, 60, 3, 3, 3] no longer agrees.
    np.save(
        root / "data_compact_models" / "nums_filters" / stem,
        np.array([47, 60, 3, 3, 3]),
    )
    with pytest.raises(ValueError, match="nums_filters says"):
        load_compact_model("190923", 0, "npy", data_root=root)

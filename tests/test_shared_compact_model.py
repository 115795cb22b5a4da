"""Shared compact models (classes/compact/shared_model.py) on the released files."""

from __future__ import annotations

import numpy as np
import pytest

from classes.compact.shared_model import (
    NUMS_SHARED_FILTERS,
    TEACHERS,
    load_shared_compact_model,
    predict_shared,
    session_columns,
    shared_model_path,
)
from classes.data.preprocessing import recenter_images
from classes.runtime.native import ISA_VARIABLE, available_isas


@pytest.fixture(scope="module")
def shared_model(data_root):
    return load_shared_compact_model("from_ensemble_model", 5, data_root)


@pytest.fixture(scope="module")
def held_out_images(data_root):
    from classes.data.images import load_images

    return recenter_images(load_images("190923", np.arange(601, 1201, 20), data_root=data_root))


def test_unknown_teacher_and_filter_count_list_the_choices(data_root):
    with pytest.raises(ValueError) as error:
        load_shared_compact_model("from_alexnet", 5, data_root)
    assert all(teacher in str(error.value) for teacher in TEACHERS)
    with pytest.raises(ValueError) as error:
        load_shared_compact_model("from_vgg19", 20, data_root)
    assert all(str(count) in str(error.value) for count in NUMS_SHARED_FILTERS)
    with pytest.raises(ValueError, match="integer"):
        shared_model_path("from_vgg19", 5.0, data_root)


def test_missing_file_names_its_path(tmp_path):
    marker = tmp_path / "data_compact_models" / "models_keras"
    marker.mkdir(parents=True)
    (marker / "placeholder.keras").write_text("")
    with pytest.raises(FileNotFoundError) as error:
        load_shared_compact_model("from_cornets", 35, tmp_path)
    assert str(tmp_path / "data_shared_compact_models" / "from_cornets" / "shared_compact_model_35filters.keras") in str(
        error.value
    )


def test_every_released_file_is_present(data_root):
    for teacher in TEACHERS:
        for count in NUMS_SHARED_FILTERS:
            assert shared_model_path(teacher, count, data_root).stat().st_size > 0


def test_architecture_and_prediction_shape(shared_model, held_out_images):
    assert [shared_model.get_layer(f"layer{layer}_conv").filters for layer in range(5)] == [5, 5, 5, 100, 100]
    assert shared_model.get_layer("mixing_stage").filters == 219
    predictions = predict_shared(shared_model, held_out_images, batch_size=7)
    assert predictions.shape == (len(held_out_images), 219) and predictions.dtype == np.float32
    direct = np.asarray(shared_model([held_out_images], training=False))
    np.testing.assert_allclose(predictions, direct, rtol=1e-4, atol=1e-4)
    assert predict_shared(shared_model, held_out_images[:0]).shape == (0, 219)
    with pytest.raises(ValueError, match="recenter"):
        predict_shared(shared_model, np.zeros((2, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        predict_shared(shared_model, held_out_images, batch_size=0)


def test_session_columns_follow_the_release_order():
    np.testing.assert_array_equal(session_columns("190923"), np.arange(33))
    np.testing.assert_array_equal(session_columns("201025"), np.arange(33, 122))
    np.testing.assert_array_equal(session_columns("210225"), np.arange(122, 177))
    np.testing.assert_array_equal(session_columns("211022"), np.arange(177, 219))
    with pytest.raises(ValueError, match="shared models"):
        session_columns("210224")


def test_shared_outputs_match_the_compact_models_neuron_by_neuron(data_root, held_out_images):
    """Each shared output correlates best with its own neuron's compact model."""
    from classes.analysis.causal_images import predict_raw
    from classes.compact.model import load_compact_model
    from classes.data.preprocessing import uncenter_images

    model = load_shared_compact_model("from_ensemble_model", 50, data_root)
    chosen = [("190923", 0), ("190923", 5), ("201025", 27), ("211022", 3)]
    columns = [int(session_columns(session)[neuron]) for session, neuron in chosen]
    shared = predict_shared(model, held_out_images)[:, columns]
    raw = uncenter_images(held_out_images, as_uint8=False)
    compact = np.stack(
        [predict_raw(load_compact_model(session, neuron, data_root=data_root), raw) for session, neuron in chosen],
        axis=1,
    )
    correlations = np.corrcoef(shared.T, compact.T)[: len(chosen), len(chosen) :]
    assert np.all(np.diag(correlations) > 0.6)
    np.testing.assert_array_equal(np.argmax(correlations, axis=1), np.arange(len(chosen)))


ENGINES_HERE = [f"kernel-{isa}" for isa in available_isas()] + ["tensorflow"]


@pytest.fixture(scope="module", params=["from_ensemble_model", "linear_from_ensemble_model"])
def shared_and_keras_outputs(request, data_root, held_out_images):
    """(teacher, model, its Keras outputs on the held-out images) for a ReLU and the linear teacher."""
    model = load_shared_compact_model(request.param, 10, data_root)
    return request.param, model, np.asarray(model([held_out_images], training=False))


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_folded_fast_path_equals_the_keras_model(shared_and_keras_outputs, held_out_images, engine, monkeypatch):
    from classes.prediction.folding import fold_shared_model
    from classes.prediction.shared import predict_shared_fast

    teacher, model, expected = shared_and_keras_outputs
    engine, _, isa = engine.partition("-")
    if isa:
        monkeypatch.setenv(ISA_VARIABLE, isa)
    folded = fold_shared_model(model)
    assert folded.relu == (teacher == "from_ensemble_model")
    predictions = predict_shared_fast(folded, held_out_images, batch_size=7, engine=engine)
    assert predictions.shape == (len(held_out_images), 219) and predictions.dtype == np.float32
    # Folding BN changes only float32 rounding: errors far below the output's spread.
    assert np.max(np.abs(predictions - expected)) < 1e-4 * np.std(expected)
    np.testing.assert_allclose(predict_shared_fast(model, held_out_images[:3], engine=engine), predictions[:3],
                               atol=1e-6)
    assert predict_shared_fast(folded, held_out_images[:0], engine=engine).shape == (0, 219)


@pytest.mark.parametrize("engine", ["kernel", "tensorflow"])
def test_predict_routes_shared_models_to_the_engine(shared_and_keras_outputs, held_out_images, engine, monkeypatch):
    """predict() runs a shared model through the kernel when it is the engine, else the graph."""
    import classes.prediction.shared as shared
    from classes.prediction import predict

    _, model, expected = shared_and_keras_outputs
    calls = []
    real = shared.predict_with_kernel
    monkeypatch.setattr(shared, "predict_with_kernel", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    responses = predict([model], held_out_images[:9], engine=engine)
    assert responses.shape == (219, 9) and len(calls) == (engine == "kernel")
    assert np.max(np.abs(responses.T - expected[:9])) < 1e-4 * np.std(expected)


def test_folded_fast_path_rejects_bad_input(shared_model, held_out_images):
    from classes.compact.model import build_compact_model
    from classes.prediction.shared import predict_shared_fast

    with pytest.raises(ValueError, match="not a shared compact model"):
        predict_shared_fast(build_compact_model([3, 3, 3, 3, 3]), held_out_images)
    with pytest.raises(ValueError, match="keras.Model"):
        predict_shared_fast("model.keras", held_out_images)
    with pytest.raises(ValueError, match="batch_size"):
        predict_shared_fast(shared_model, held_out_images, batch_size=0)
    with pytest.raises(ValueError, match="recenter"):
        predict_shared_fast(shared_model, np.zeros((2, 112, 112, 3), np.uint8))

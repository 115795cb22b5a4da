"""The fast evaluation path against the Keras models it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from classes.compact.architecture import ModelId, load_weights_npy, model_id
from classes.compact.model import build_compact_model, load_compact_model
from classes.data.images import load_images
from classes.data.preprocessing import RECENTERED_MAX, RECENTERED_MIN, recenter_images
from classes.prediction.kernel import kernel_unavailable_reason
from classes.prediction.stacked import (
    compact_model_flops,
    predict_models_on_images,
    predict_stacked,
    stack_compact_models,
)
from classes.runtime.native import ISA_VARIABLE, available_isas

# Real models chosen to span the sizes: the smallest and largest layer 0 of
# 190923 and 201025, the largest K1, K2/K3 and K4, and the smallest K1.
REAL_MODELS = [
    ("190923", 24),  # [33, 62, 5, 4, 3], smallest of its session
    ("190923", 28),  # [48, 77, 14, 3, 3], largest K1
    ("201025", 24),  # [58, 61, 3, 3, 4], largest K0
    ("201025", 51),  # [48, 69, 74, 46, 3], largest K2 and K3
    ("201025", 2),  # [57, 54, 3, 5, 11], largest K4
    ("201025", 4),  # [48, 3, 3, 6, 10], smallest K1
]
TOLERANCE = 1e-4  # of each model's response s.d.


def keras_responses(models, images) -> np.ndarray:
    return np.stack([np.asarray(model(images, training=False))[:, 0] for model in models])


def assert_close_to_keras(predictions, reference):
    assert predictions.shape == reference.shape
    assert predictions.dtype == np.float32
    spread = reference.std(axis=1)
    assert np.all(spread > 1e-3 * np.maximum(np.abs(reference).max(axis=1), 1.0)), spread
    relative = np.max(np.abs(predictions - reference), axis=1) / spread
    assert np.all(relative < TOLERANCE), relative


# The kernel on each instruction set this CPU runs, and the TensorFlow engine.
ENGINES_HERE = [f"kernel-{isa}" for isa in available_isas()] + ["tensorflow"]


def usable_engine(engine: str, monkeypatch=None) -> str:
    """The engine of ``engine`` ("kernel-avx2" forces that instruction set).

    Skips the kernel only where there is no C compiler; fails if it is broken.
    """
    engine, _, isa = engine.partition("-")
    if isa:
        monkeypatch.setenv(ISA_VARIABLE, isa)
    if engine == "kernel" and kernel_unavailable_reason() is not None:
        if "no C compiler" in kernel_unavailable_reason():
            pytest.skip(f"the compiled kernel cannot run here: {kernel_unavailable_reason()}")
        pytest.fail(f"the compiled kernel should run here but: {kernel_unavailable_reason()}")
    return engine


@pytest.fixture(scope="module")
def real_images(data_root):
    """32 held-out images of 190923, recentred."""
    return recenter_images(load_images("190923", np.arange(601, 633), data_root=data_root))


@pytest.fixture(scope="module")
def real_models(data_root):
    """The released .keras models of REAL_MODELS, and their Keras outputs."""
    return [load_compact_model(session, neuron, data_root=data_root) for session, neuron in REAL_MODELS]


@pytest.fixture(scope="module")
def real_reference(real_models, real_images):
    return keras_responses(real_models, real_images)


def test_flops_match_a_hand_count():
    # [47, 57, 3, 7, 3], the median-sized model; multiply-adds per layer:
    layer0 = 112 * 112 * 5 * 5 * 3 * 47  # 44,217,600
    layer1 = 56 * 56 * (25 * 47 + 47 * 57)  # 12,086,144
    layer2 = 28 * 28 * (25 * 57 + 57 * 3)  # 1,251,264
    layer3 = 28 * 28 * (25 * 3 + 3 * 7)  # 75,264
    layer4 = 28 * 28 * (25 * 7 + 7 * 3)  # 153,664
    readout = 28 * 28 * 3  # 2,352
    expected = 2 * (layer0 + layer1 + layer2 + layer3 + layer4 + readout)
    assert expected == 115_572_576
    assert compact_model_flops([47, 57, 3, 7, 3]) == expected
    several = compact_model_flops(np.array([[47, 57, 3, 7, 3], [1, 1, 1, 1, 1]]))
    assert several.tolist() == [expected, 2 * (112 * 112 * 75 + 56 * 56 * 26 + 3 * 28 * 28 * 26 + 28 * 28)]


@pytest.mark.parametrize("counts", [[47, 57, 3, 7], [[47, 57, 3, 7, 0]], [47.0, 57, 3, 7, 3], "47"])
def test_flops_reject_bad_counts(counts):
    with pytest.raises(ValueError, match="nums_filters|positive integers"):
        compact_model_flops(counts)


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_released_models_of_two_sessions_stacked_match_keras(
    real_models, real_images, real_reference, engine, monkeypatch
):
    engine = usable_engine(engine, monkeypatch)
    stacked = stack_compact_models(real_models, names=[f"{s}/{n}" for s, n in REAL_MODELS])
    assert stacked.num_models == len(REAL_MODELS)
    assert stacked.nums_filters[3].tolist() == [48, 69, 74, 46, 3]
    assert stacked.flops_per_image == int(np.sum(compact_model_flops(stacked.nums_filters)))
    # Uneven batches and groups exercise the chunking and both graph sizes.
    predictions = predict_stacked(stacked, real_images, batch_size=5, group_size=4, engine=engine)
    assert_close_to_keras(predictions, real_reference)
    default = predict_stacked(stacked, real_images, engine=engine)
    np.testing.assert_allclose(default, predictions, rtol=0, atol=1e-5 * float(real_reference.std()))


def test_models_by_id_from_npy_weights_match_keras(real_images, real_reference, data_root):
    identifiers = [
        model_id(*REAL_MODELS[0]),  # a ModelId
        REAL_MODELS[2],  # a (session, neuron) pair
        "compact_model_201025_neuron2",  # a release file stem
    ]
    timings = {}
    predictions = predict_models_on_images(
        identifiers, real_images, data_root=data_root, group_size=2, timings=timings
    )
    assert_close_to_keras(predictions, real_reference[[0, 2, 4]])
    assert timings["load weights"] > 0 and timings["predict"] > 0


def test_weight_lists_and_keras_models_give_the_same_stack(real_models, real_images, data_root):
    from_files = stack_compact_models([load_weights_npy(ModelId("190923", 24), data_root)])
    from_model = stack_compact_models(real_models[:1])
    for left, right in zip(from_files.models[0].arrays, from_model.models[0].arrays, strict=True):
        np.testing.assert_array_equal(left, right)
    np.testing.assert_array_equal(
        predict_stacked(from_files, real_images[:4]), predict_stacked(from_model, real_images[:4])
    )


def random_compact_model(counts, generator):
    """A compact model with random weights and random (non-trivial) BN statistics."""
    model = build_compact_model(counts)
    weights = []
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.path
        if "moving_variance" in name:
            value = generator.uniform(0.05, 3.0, shape)
        elif "moving_mean" in name:
            value = generator.normal(0.0, 2.0, shape)
        elif "gamma" in name:
            value = generator.uniform(0.3, 2.0, shape)
        elif "beta" in name:  # positive shifts keep most ReLUs of tiny models active
            value = generator.uniform(0.2, 1.0, shape)
        elif "bias" in name:
            value = generator.normal(0.0, 0.5, shape)
        else:
            fan_in = np.prod(shape[:-1]) if len(shape) > 1 else 1
            value = generator.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        weights.append(value.astype(np.float32))
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_random_models_with_random_batch_norm_match_keras(engine, monkeypatch):
    engine = usable_engine(engine, monkeypatch)
    generator = np.random.default_rng(7)
    # Counts below, at and across multiples of the kernel's vector widths
    # (16, 8, 4 floats): 64 and 70 channels take its 2+2 and 3+2 vector
    # blocks with AVX-512, 90 and 49 their 3+3+3+3 and 3+2+2 blocks with AVX2.
    models = [
        random_compact_model(counts, generator)
        for counts in ([1, 2, 1, 2, 1], [5, 4, 3, 2, 6], [16, 20, 9, 5, 4], [64, 33, 17, 49, 16],
                       [70, 90, 40, 20, 17])
    ]
    images = generator.uniform(RECENTERED_MIN, RECENTERED_MAX, (6, 112, 112, 3)).astype(np.float32)
    images[0] = 0.0  # a flat image: only biases and BN shifts reach the output
    reference = keras_responses(models, images)
    predictions = predict_stacked(stack_compact_models(models), images, batch_size=4, engine=engine)
    assert_close_to_keras(predictions, reference)


@pytest.mark.parametrize("engine", ["auto", "kernel", "tensorflow"])
def test_no_images_give_an_empty_result(engine):
    engine = usable_engine(engine)
    model = random_compact_model([2, 2, 2, 2, 2], np.random.default_rng(1))
    empty = np.zeros((0, 112, 112, 3), np.float32)
    result = predict_stacked(stack_compact_models([model, model]), empty, engine=engine)
    assert result.shape == (2, 0) and result.dtype == np.float32


@pytest.fixture(scope="module")
def small_model():
    return random_compact_model([2, 3, 2, 2, 2], np.random.default_rng(2))


@pytest.fixture(scope="module")
def small_stack(small_model):
    return stack_compact_models([small_model])


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((2, 112, 112, 3), 200, np.uint8), "recenter_images"),
        (np.zeros((112, 112, 3), np.float32), "single image"),
        (np.zeros((2, 64, 64, 3), np.float32), r"\(num_images, 112, 112, 3\)"),
        (np.full((1, 112, 112, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_refused(small_stack, images, message):
    with pytest.raises(ValueError, match=message):
        predict_stacked(small_stack, images)


def test_bad_sizes_and_containers_are_refused(small_model, small_stack):
    images = np.random.default_rng(4).uniform(RECENTERED_MIN, RECENTERED_MAX, (3, 112, 112, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="batch_size"):
        predict_stacked(small_stack, images, batch_size=0)
    with pytest.raises(ValueError, match="group_size"):
        predict_stacked(small_stack, images, group_size=1.5)
    with pytest.raises(ValueError, match="StackedModels"):
        predict_stacked([np.zeros(3)], images)
    with pytest.raises(ValueError, match="threads"):
        predict_stacked(small_stack, images, threads=0)
    with pytest.raises(ValueError, match="engine must be one of auto, kernel, tensorflow"):
        predict_stacked(small_stack, images, engine="gpu")
    # The refused calls left the stack intact: it still gives the model's responses.
    assert_close_to_keras(predict_stacked(small_stack, images), keras_responses([small_model], images))


def test_bad_weight_lists_are_refused():
    generator = np.random.default_rng(3)
    good = random_compact_model([3, 4, 2, 2, 2], generator).get_weights()
    with pytest.raises(ValueError, match="at least one model"):
        stack_compact_models([])
    with pytest.raises(ValueError, match="36 weight arrays"):
        stack_compact_models([good[:-1]])
    with pytest.raises(ValueError, match="Keras compact model or its get_weights"):
        stack_compact_models([{"kernel": good[0]}])
    broken = list(good)
    broken[13] = np.zeros((5, 5, 7, 1), np.float32)  # layer 2 depthwise must see K1 = 4
    with pytest.raises(ValueError, match=r"#0: layer 2 depthwise kernel has shape \(5, 5, 7, 1\)"):
        stack_compact_models([broken])
    broken = list(good)
    broken[5] = np.full(3, np.nan, np.float32)
    with pytest.raises(ValueError, match="moving_variance holds NaN"):
        stack_compact_models([broken], names=["bad model"])
    broken = list(good)
    broken[34] = np.zeros((28 * 28 * 3, 1), np.float32)
    with pytest.raises(ValueError, match="readout"):
        stack_compact_models([broken])
    with pytest.raises(ValueError, match="2 names for 1 models"):
        stack_compact_models([good], names=["a", "b"])


def test_unknown_model_ids_are_refused(real_images, data_root):
    with pytest.raises(ValueError, match="neurons 0..32"):
        predict_models_on_images([("190923", 33)], real_images[:1], data_root=data_root)
    with pytest.raises(ValueError, match="no compact models"):
        predict_models_on_images([("210224", 0)], real_images[:1], data_root=data_root)
    with pytest.raises(ValueError, match="at least one model id"):
        predict_models_on_images([], real_images[:1], data_root=data_root)
    with pytest.raises(ValueError, match="not a compact model name"):
        predict_models_on_images(["model_7"], real_images[:1], data_root=data_root)

"""The PyTorch port of the compact model against Keras.

Bounds come from the measurement over all 219 released models recorded in
docs/torch_port.md, with headroom. Without PyTorch these tests skip, except
under CI (environment variable CI set), where a missing torch is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CI"):
    import torch  # CI must have torch: an ImportError here fails the run
else:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")

from classes.compact.architecture import (
    BN_EPSILON,
    all_model_ids,
    load_weights_npy,
    model_file,
    model_id,
)
from classes.compact.model import build_compact_model, load_compact_model
from classes.compact.tools import layer_activity, predict_responses  # noqa: E402
from classes.compact.torch_agreement import (  # noqa: E402
    MEASURED_MAX_RELATIVE_DIFFERENCE,
    evaluation_images,
    measure_torch_agreement,
    relative_max_difference,
    summarize_agreement,
)
from classes.compact.torch_conversion import (  # noqa: E402
    RELEASE_BN_EPSILON,
    load_torch_compact_model,
    model_from_state_dict,
    state_dict_from_keras_weights,
    torch_model_from_keras_weights,
)
from classes.compact.torch_model import predict_responses_torch, same_padding  # noqa: E402
from classes.data.preprocessing import recenter_images, white_noise_images  # noqa: E402
from classes.runtime.paths import REPOSITORY_ROOT  # noqa: E402

# Headroom over the 64-image measurement of docs/torch_port.md. The Keras-
# weights port differs by float32 rounding only, which depends on the CPU's
# kernels, so its bound is at least 1e-5 (still 2,000x below the release's
# epsilon effect).
RELEASE_BOUND = 1.5 * MEASURED_MAX_RELATIVE_DIFFERENCE["release_pt"]
FROM_KERAS_BOUND = max(1.5 * MEASURED_MAX_RELATIVE_DIFFERENCE["from_keras"], 1e-5)
# The release's extra 1e-5 in layers 1-4 is visible in every measured model:
# the smallest release ratio measured is 0.0039 (64 images), 0.0028 (16).
RELEASE_LOWER_BOUND = 1e-3
# Two models per session with images, one of 211022 (scored on 210224's images).
CI_SAMPLE = [("190923", 0), ("190923", 21), ("201025", 7), ("201025", 64), ("210225", 30),
             ("211022", 12)]
CI_NUM_IMAGES = 64
# The slow test's images and bounds: the first 16 held-out images of each
# session, where the largest ratios over the 219 models measured 0.0539
# (release .pt, 201025/neuron2) and 4.33e-6 (port); docs/torch_port.md.
SLOW_NUM_IMAGES = 16
SLOW_RELEASE_BOUND = 1.5 * 0.0539
SLOW_FROM_KERAS_BOUND = max(1.5 * 4.33e-6, 1e-5)


@pytest.fixture(scope="module")
def one_torch_thread():
    # On a busy 2-core machine PyTorch's two OpenMP threads wait on each other
    # at every op; one thread and small batches ran 2-3x faster.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sample_rows(data_root, image_cache, one_torch_thread):
    identifiers = [model_id(session, neuron) for session, neuron in CI_SAMPLE]
    return measure_torch_agreement(
        identifiers, CI_NUM_IMAGES, data_root, show_progress=False, cache_dir=image_cache,
        batch_size=16,
    )


def test_sample_of_released_models_within_measured_bounds(sample_rows):
    summary = summarize_agreement(sample_rows)
    assert summary["num_images"] == CI_NUM_IMAGES
    for row in sample_rows:
        assert np.std(row["keras"]) > 0, row["model"]
    release = summary["per_model"]["release_pt"]
    ported = summary["per_model"]["from_keras"]
    for model in release:
        assert release[model] <= RELEASE_BOUND, (model, release[model])
        assert ported[model] <= FROM_KERAS_BOUND, (model, ported[model])
        # The .pt files really are loaded with the release's epsilon 1e-5.
        assert release[model] >= RELEASE_LOWER_BOUND, (model, release[model])


def test_sample_uses_substitute_images_for_211022(sample_rows):
    sessions = {row["model"]: row["image_session"] for row in sample_rows}
    assert sessions["211022/neuron12"] == "210224"
    assert sessions["190923/neuron0"] == "190923"


def test_release_file_holds_keras_variance_plus_offset(data_root):
    for session, neuron in [("190923", 3), ("210225", 54), ("211022", 0)]:
        identifier = model_id(session, neuron)
        stored = torch.load(
            model_file(identifier, "torch", data_root), map_location="cpu", weights_only=True
        )
        converted = state_dict_from_keras_weights(
            load_weights_npy(identifier, data_root), release_semantics=True
        )
        assert set(stored) == set(converted)
        for key, value in stored.items():
            assert value.shape == converted[key].shape, key
            assert torch.equal(value.double(), converted[key].double()), key
        plain = state_dict_from_keras_weights(load_weights_npy(identifier, data_root))
        assert torch.equal(stored["layers.layer0_bn.running_var"], plain["layers.layer0_bn.running_var"])
        for layer in range(1, 5):
            key = f"layers.layer{layer}_bn.running_var"
            np.testing.assert_allclose((stored[key] - plain[key]).numpy(), 1e-3, atol=2e-9)


def test_release_model_uses_default_torch_epsilon(data_root):
    model = load_torch_compact_model("201025", 3, data_root)
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert len(norms) == 5
    assert all(module.eps == RELEASE_BN_EPSILON for module in norms)
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert load_torch_compact_model("201025", 3, data_root, dtype=torch.float64).layers[
        "Beta"
    ].weight.dtype == torch.float64


def _random_compact_model(nums_filters, images, seed):
    """A compact model with random weights and BN statistics near the real ones."""
    generator = np.random.default_rng(seed)
    model = build_compact_model(nums_filters)
    for layer in range(5):
        convolution = model.get_layer(f"layer{layer}_conv")
        weights = convolution.get_weights()
        weights[-1] = generator.normal(0, 0.1, weights[-1].shape).astype(np.float32)
        convolution.set_weights(weights)
        activity = layer_activity(model, images, layer, "conv")
        mean = activity.mean(axis=(0, 1, 2))
        variance = activity.var(axis=(0, 1, 2))
        count = len(mean)
        moving_mean = mean + 0.2 * np.sqrt(variance) * generator.normal(size=count)
        moving_variance = variance * generator.uniform(0.5, 2.0, count)
        # One tiny variance per layer, where epsilon 1e-3 vs 1e-5 matters.
        moving_variance[0] = 2e-3
        gamma = generator.uniform(0.5, 1.5, count)
        beta = generator.normal(0, 0.2, count)
        model.get_layer(f"layer{layer}_bn").set_weights(
            [array.astype(np.float32) for array in (gamma, beta, moving_mean, moving_variance)]
        )
    readout = model.get_layer("Beta")
    kernel, bias = readout.get_weights()
    readout.set_weights([kernel, generator.normal(0, 0.1, bias.shape).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def random_images():
    return recenter_images(white_noise_images(12, seed=5))


@pytest.fixture(scope="module")
def random_model(random_images):
    return _random_compact_model([6, 5, 4, 3, 2], random_images, seed=11)


def test_keras_weights_port_matches_random_keras_model(random_model, random_images):
    reference = predict_responses(random_model, random_images)
    assert np.std(reference) > 0
    for dtype in (torch.float32, torch.float64):
        ported = torch_model_from_keras_weights(random_model, dtype=dtype)
        responses = predict_responses_torch(ported, random_images, batch_size=5)
        assert responses.shape == (12,)
        assert relative_max_difference(reference, responses) < 1e-4
    # From the weight list too, not only from the Keras model.
    from_list = torch_model_from_keras_weights(random_model.get_weights())
    np.testing.assert_allclose(
        predict_responses_torch(from_list, random_images), reference, rtol=0, atol=1e-4 * np.std(reference)
    )


def test_epsilon_matters_for_random_model(random_model, random_images):
    # The port would fail the test above with PyTorch's default epsilon.
    reference = predict_responses(random_model, random_images)
    state = state_dict_from_keras_weights(random_model)
    wrong = model_from_state_dict(state, RELEASE_BN_EPSILON)
    assert BN_EPSILON != RELEASE_BN_EPSILON
    assert relative_max_difference(reference, predict_responses_torch(wrong, random_images)) > 1e-3


def test_same_padding_known_answers():
    assert same_padding(112, 1) == (2, 2)
    assert same_padding(112, 2) == (1, 2)
    assert same_padding(56, 2) == (1, 2)
    assert same_padding(28, 1) == (2, 2)
    assert same_padding(113, 2) == (2, 2)
    assert same_padding(3, 1, kernel_size=1) == (0, 0)


@pytest.mark.parametrize("layer", [1, 2])
def test_stride_two_layer_matches_keras(random_model, random_images, layer):
    keras_activity = layer_activity(random_model, random_images, layer, "conv")
    ported = torch_model_from_keras_weights(random_model, dtype=torch.float64)
    batch = torch.from_numpy(random_images.astype(np.float64)).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch_activity = ported.layer_output(batch, layer, "conv").permute(0, 2, 3, 1).numpy()
    assert torch_activity.shape == keras_activity.shape == (12, 112 // 2**layer, 112 // 2**layer,
                                                             [6, 5, 4, 3, 2][layer])
    scale = keras_activity.std()
    assert np.max(np.abs(torch_activity - keras_activity)) < 1e-4 * scale
    # PyTorch's symmetric padding=2 shifts the stride-2 grid by one pixel.
    previous = ported.layer_output(batch, layer - 1, "act")
    depthwise = ported.layers[f"layer{layer}_conv_depth"]
    with torch.no_grad():
        symmetric = torch.nn.functional.conv2d(
            previous, depthwise.weight, stride=2, padding=2, groups=depthwise.groups
        )
        symmetric = ported.layers[f"layer{layer}_conv_point"](symmetric)
    symmetric = symmetric.permute(0, 2, 3, 1).numpy()
    assert symmetric.shape == keras_activity.shape
    assert np.max(np.abs(symmetric - keras_activity)) > 0.1 * scale


def test_layer_output_rejects_bad_layer(random_model):
    ported = torch_model_from_keras_weights(random_model)
    with pytest.raises(ValueError, match="layer must be"):
        ported.layer_output(torch.zeros(1, 3, 112, 112), 5)
    with pytest.raises(ValueError, match="stage"):
        ported.layer_output(torch.zeros(1, 3, 112, 112), 1, "pool")


def _fake_data_root(tmp_path):
    """A data root that holds data but none of the Torch files."""
    keras_folder = tmp_path / "data_compact_models" / "models_keras"
    keras_folder.mkdir(parents=True)
    (keras_folder / "placeholder.keras").write_bytes(b"x")
    torch_folder = tmp_path / "data_compact_models" / "models_torch"
    torch_folder.mkdir()
    return tmp_path, torch_folder / "compact_model_190923_neuron0.pt"


def test_missing_torch_file(tmp_path):
    root, _ = _fake_data_root(tmp_path)
    with pytest.raises(FileNotFoundError, match="Missing torch file of compact model 190923/neuron0"):
        load_torch_compact_model("190923", 0, data_root=root)


def test_corrupt_torch_files(tmp_path, data_root):
    root, target = _fake_data_root(tmp_path)
    target.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_torch_compact_model("190923", 0, data_root=root)
    real = model_file(model_id("190923", 0), "torch", data_root).read_bytes()
    target.write_bytes(real[: len(real) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_torch_compact_model("190923", 0, data_root=root)
    torch.save({"weight": torch.zeros(3)}, target)
    with pytest.raises(ValueError, match="not a compact-model state dict"):
        load_torch_compact_model("190923", 0, data_root=root)
    state = torch.load(
        model_file(model_id("190923", 0), "torch", data_root), map_location="cpu", weights_only=True
    )
    state["layers.Beta.weight"] = state["layers.Beta.weight"][:, :100]
    torch.save(state, target)
    with pytest.raises(ValueError, match="does not fit a compact model"):
        load_torch_compact_model("190923", 0, data_root=root)


def test_bad_arguments(data_root, random_model, random_images):
    with pytest.raises(ValueError, match="neurons 0..32"):
        load_torch_compact_model("190923", 33, data_root)
    with pytest.raises(ValueError, match="no compact models"):
        load_torch_compact_model("210224", 0, data_root)
    with pytest.raises(ValueError, match="36 weight arrays"):
        torch_model_from_keras_weights(random_model.get_weights()[:-1])
    with pytest.raises(ValueError, match="get_weights"):
        torch_model_from_keras_weights("model.keras")
    ported = torch_model_from_keras_weights(random_model)
    with pytest.raises(ValueError, match="recenter_images"):
        predict_responses_torch(ported, white_noise_images(2))
    with pytest.raises(ValueError, match="batch_size"):
        predict_responses_torch(ported, random_images, batch_size=0)
    assert predict_responses_torch(ported, random_images[:0]).shape == (0,)


def test_release_model_agrees_with_npy_keras_build(data_root, image_cache):
    # The .pt read through the loader equals the same weights built from npy
    # with the release's conversion, image by image.
    images = evaluation_images("210225", data_root, 8, cache_dir=image_cache)[0]
    released = predict_responses_torch(load_torch_compact_model("210225", 9, data_root), images)
    rebuilt = model_from_state_dict(
        state_dict_from_keras_weights(
            load_weights_npy(model_id("210225", 9), data_root), release_semantics=True
        ),
        RELEASE_BN_EPSILON,
    )
    np.testing.assert_array_equal(predict_responses_torch(rebuilt, images), released)
    keras_model = load_compact_model("210225", 9, "npy", data_root)
    assert relative_max_difference(predict_responses(keras_model, images), released) <= RELEASE_BOUND


def test_module_imports_and_explains_without_torch():
    # Blocks torch in a fresh interpreter: the modules must import, and only
    # the Torch functions raise the install hint.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import classes.compact.torch_agreement as agreement\n"
        "import classes.compact.torch_conversion as conversion\n"
        "import classes.compact.torch_model as port\n"
        "assert not port.torch_available()\n"
        "assert port.same_padding(112, 2) == (1, 2)\n"
        "assert agreement.relative_max_difference([1.0, 2.0], [1.0, 2.0]) == 0.0\n"
        "for call in (lambda: conversion.load_torch_compact_model('190923', 0),\n"
        "             lambda: conversion.torch_model_from_keras_weights([]),\n"
        "             lambda: port.predict_responses_torch(None, None),\n"
        "             lambda: agreement.measure_torch_agreement([]),\n"
        "             lambda: port.CompactModelTorch):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        assert 'pip install torch' in str(error), error\n"
        "    else:\n"
        "        raise SystemExit('no ImportError')\n"
        "print('ok')\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment,
        cwd=REPOSITORY_ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_all_219_released_models_within_bounds(data_root, image_cache, one_torch_thread):
    rows = measure_torch_agreement(
        all_model_ids(),
        SLOW_NUM_IMAGES,
        data_root,
        show_progress=False,
        cache_dir=image_cache,
        batch_size=8,
    )
    summary = summarize_agreement(rows)
    print(
        f"\n219 models, first {SLOW_NUM_IMAGES} held-out images: "
        + "; ".join(
            f"{build}: max {summary[build]['max']:.3g} ({summary[build]['worst_model']}), "
            f"median {summary[build]['median']:.3g}"
            for build in ("release_pt", "from_keras")
        )
    )
    assert summary["num_models"] == 219
    assert summary["release_pt"]["max"] <= SLOW_RELEASE_BOUND
    assert summary["from_keras"]["max"] <= SLOW_FROM_KERAS_BOUND
    assert min(summary["per_model"]["release_pt"].values()) >= RELEASE_LOWER_BOUND

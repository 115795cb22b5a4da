"""The compiled kernel: each instruction set, its fallback, determinism across threads."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from tqdm import tqdm

import classes.prediction.kernel as fast_kernel
from classes.compact.architecture import load_weights_npy, model_id
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.prediction.stacked import predict_stacked, resolve_engine, stack_compact_models
from classes.runtime.native import ISA_VARIABLE, available_isas
from classes.runtime.quiet_tensorflow import tf


@pytest.fixture(params=available_isas())
def isa(request, monkeypatch):
    """Each instruction set this CPU runs, forced through COWLEY2023_KERNEL_ISA."""
    monkeypatch.setenv(ISA_VARIABLE, request.param)
    return request.param


@pytest.fixture
def no_gpu(monkeypatch):
    """TensorFlow sees no GPU, so "auto" is free to choose the kernel."""
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])


def test_kernel_runs_for_every_instruction_set_of_this_cpu(isa, no_gpu):
    # With a C compiler present a broken build must fail here, not fall back.
    assert fast_kernel.kernel_unavailable_reason() is None
    assert fast_kernel.kernel_isa() == isa
    assert resolve_engine("auto") == "kernel"


@pytest.fixture(scope="module")
def released_stack(data_root):
    if fast_kernel.kernel_unavailable_reason() is not None:
        pytest.skip(f"the compiled kernel cannot run here: {fast_kernel.kernel_unavailable_reason()}")
    identifiers = [model_id("190923", neuron) for neuron in range(5)]
    stacked = stack_compact_models([load_weights_npy(identifier, data_root) for identifier in identifiers])
    images = recenter_images(load_images("190923", np.arange(700, 723), data_root=data_root))
    return stacked, images


def test_threads_and_job_sizes_do_not_change_a_single_bit(released_stack, isa):
    # Every (model, image) response is computed by one thread in one fixed
    # order, so splitting the work differently must give identical floats.
    stacked, images = released_stack
    reference = predict_stacked(stacked, images, engine="kernel", threads=1, batch_size=23)
    for threads, batch_size in ((2, 1), (3, 4), (None, 16)):
        result = predict_stacked(stacked, images, engine="kernel", threads=threads, batch_size=batch_size)
        np.testing.assert_array_equal(result, reference)
    subset = predict_stacked(stacked, images[5:9], engine="kernel")
    np.testing.assert_array_equal(subset, reference[:, 5:9])


def test_kernel_agrees_with_the_tensorflow_engine(released_stack, isa):
    stacked, images = released_stack
    kernel = predict_stacked(stacked, images, engine="kernel")
    assert stacked.layout("kernel")[0].isa == isa  # one layout per instruction set
    graph = predict_stacked(stacked, images, engine="tensorflow")
    spread = graph.std(axis=1)
    assert np.all(np.max(np.abs(kernel - graph), axis=1) < 1e-4 * spread)


def test_turned_off_kernel_falls_back_or_says_why(monkeypatch, released_stack, no_gpu):
    stacked, images = released_stack
    monkeypatch.setenv("COWLEY2023_FAST_KERNEL", "0")
    assert "COWLEY2023_FAST_KERNEL=0" in fast_kernel.kernel_unavailable_reason()
    assert resolve_engine("auto") == "tensorflow"
    with pytest.raises(ValueError, match="turned off .* Use engine 'tensorflow'"):
        predict_stacked(stacked, images[:2], engine="kernel")
    fallback = predict_stacked(stacked, images[:2])
    monkeypatch.delenv("COWLEY2023_FAST_KERNEL")
    kernel = predict_stacked(stacked, images[:2])
    np.testing.assert_allclose(fallback, kernel, rtol=0, atol=1e-4 * float(kernel.std()))


def test_an_instruction_set_that_cannot_run_is_explained(monkeypatch, no_gpu):
    monkeypatch.setenv(ISA_VARIABLE, "sse9")
    assert "COWLEY2023_KERNEL_ISA=sse9 is not one of avx512, avx2, portable" in fast_kernel.kernel_unavailable_reason()
    assert resolve_engine("auto") == "tensorflow"
    with pytest.raises(ValueError, match="sse9"):
        resolve_engine("kernel")


def test_auto_takes_tensorflow_where_tensorflow_sees_a_gpu(monkeypatch):
    seen = []

    def devices(kind=None):
        seen.append(kind)
        return [tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")] if kind == "GPU" else []

    monkeypatch.setattr(tf.config, "list_physical_devices", devices)
    assert resolve_engine("auto") == "tensorflow" and seen == ["GPU"]
    assert resolve_engine("kernel") == "kernel"  # asked for by name, it still runs
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert resolve_engine("auto") == "kernel"


def fresh_kernel_state(monkeypatch, tmp_path):
    """Forget the loaded kernels and compile into an empty cache folder."""
    monkeypatch.setattr(fast_kernel, "_libraries", {})
    monkeypatch.setattr(fast_kernel, "_failures", {})
    monkeypatch.setenv("COWLEY2023_KERNEL_CACHE", str(tmp_path))


def test_a_failed_compilation_is_reported_and_leaves_nothing_behind(monkeypatch, tmp_path, no_gpu):
    fresh_kernel_state(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    reason = fast_kernel.kernel_unavailable_reason()
    assert reason.startswith(f"compiling kernel.c for {fast_kernel.kernel_isa()} failed")
    assert resolve_engine("auto") == "tensorflow"
    with pytest.raises(RuntimeError, match="cannot run here: compiling"):
        fast_kernel.predict_with_kernel([], np.zeros((1, 112, 112, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_compilation_writes_one_library_per_instruction_set_and_reuses_it(isa, monkeypatch, tmp_path):
    fresh_kernel_state(monkeypatch, tmp_path)
    assert fast_kernel.kernel_unavailable_reason() is None
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith(f"fast_kernel_{isa}_") and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    fresh_kernel_state(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")  # the cached library must be loaded, not rebuilt
    assert fast_kernel.kernel_unavailable_reason() is None
    assert list(tmp_path.iterdir()) == built and built[0].stat().st_mtime_ns == stamp


def test_the_progress_bar_draws_each_count_once(released_stack, monkeypatch, capsys):
    # It used to redraw "0/5" after every finished job: tqdm redraws on
    # update(0) too. Without a minimum interval every update call draws.
    monkeypatch.setattr(fast_kernel, "tqdm", functools.partial(tqdm, mininterval=0))
    stacked, images = released_stack
    predict_stacked(stacked, images, engine="kernel", batch_size=2, show_progress=True)
    drawn = capsys.readouterr().err
    assert [drawn.count(f" {count}/5 ") for count in range(6)] == [1, 1, 1, 1, 1, 2]  # 5/5 again on closing

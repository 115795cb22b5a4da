"""The compiled kernel: availability, its fallback, determinism across threads."""

from __future__ import annotations

import numpy as np
import pytest

import classes.prediction.kernel as fast_kernel
from classes.compact.model import load_weights_npy, model_id
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.prediction.stacked import predict_stacked, resolve_engine, stack_compact_models


@pytest.fixture
def kernel_cpu():
    """Skips unless this CPU is one the kernel was written for (x86-64, AVX-512F, FMA)."""
    if fast_kernel.cpu_supports_kernel() is not None:
        pytest.skip(f"not such a CPU: {fast_kernel.cpu_supports_kernel()}")


def test_kernel_runs_on_every_cpu_it_was_written_for(kernel_cpu):
    """On x86-64 with AVX-512F and FMA (CI's machines) a broken build must fail, not fall back."""
    assert fast_kernel.kernel_unavailable_reason() is None
    assert resolve_engine("auto") == "kernel"


@pytest.fixture(scope="module")
def released_stack(data_root):
    if fast_kernel.kernel_unavailable_reason() is not None:
        pytest.skip(f"the compiled kernel cannot run here: {fast_kernel.kernel_unavailable_reason()}")
    identifiers = [model_id("190923", neuron) for neuron in range(5)]
    stacked = stack_compact_models([load_weights_npy(identifier, data_root) for identifier in identifiers])
    images = recenter_images(load_images("190923", np.arange(700, 723), data_root=data_root))
    return stacked, images


def test_threads_and_job_sizes_do_not_change_a_single_bit(released_stack):
    # Every (model, image) response is computed by one thread in one fixed
    # order, so splitting the work differently must give identical floats.
    stacked, images = released_stack
    reference = predict_stacked(stacked, images, engine="kernel", threads=1, batch_size=23)
    for threads, batch_size in ((2, 1), (3, 4), (None, 16)):
        result = predict_stacked(stacked, images, engine="kernel", threads=threads, batch_size=batch_size)
        np.testing.assert_array_equal(result, reference)
    subset = predict_stacked(stacked, images[5:9], engine="kernel")
    np.testing.assert_array_equal(subset, reference[:, 5:9])


def test_kernel_agrees_with_the_tensorflow_engine(released_stack):
    stacked, images = released_stack
    kernel = predict_stacked(stacked, images, engine="kernel")
    graph = predict_stacked(stacked, images, engine="tensorflow")
    spread = graph.std(axis=1)
    assert np.all(np.max(np.abs(kernel - graph), axis=1) < 1e-4 * spread)


def test_turned_off_kernel_falls_back_or_says_why(monkeypatch, released_stack):
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


def fresh_kernel_state(monkeypatch, tmp_path):
    """Forget the loaded kernel and compile into an empty cache folder."""
    monkeypatch.setattr(fast_kernel, "_library", None)
    monkeypatch.setattr(fast_kernel, "_library_error", None)
    monkeypatch.setenv("COWLEY2023_KERNEL_CACHE", str(tmp_path))


def test_a_failed_compilation_is_reported_and_leaves_nothing_behind(kernel_cpu, monkeypatch, tmp_path):
    fresh_kernel_state(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    reason = fast_kernel.kernel_unavailable_reason()
    assert reason.startswith("compiling kernel.c failed")
    assert resolve_engine("auto") == "tensorflow"
    with pytest.raises(RuntimeError, match="cannot run here: compiling"):
        fast_kernel.predict_with_kernel([], np.zeros((1, 112, 112, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_compilation_writes_one_library_and_reuses_it(kernel_cpu, monkeypatch, tmp_path):
    fresh_kernel_state(monkeypatch, tmp_path)
    assert fast_kernel.kernel_unavailable_reason() is None
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith("fast_kernel_") and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    fresh_kernel_state(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")  # the cached library must be loaded, not rebuilt
    assert fast_kernel.kernel_unavailable_reason() is None
    assert list(tmp_path.iterdir()) == built and built[0].stat().st_mtime_ns == stamp

"""The compiled training step against Keras in float64, and the two trainers against each other.

The reference is a Keras compact model in float64 (dtype policy "float64"):
both float32 paths (Keras's own and the kernel) are compared with it. Where a
BatchNormalization output lies within float32 rounding of zero, the ReLU of a
float32 path may take the other side than float64's, and that one element
moves every gradient below it through the batch statistics; so the fixtures
keep every BN output far from zero (gamma 0.3, beta +3 or -3 alternating:
half the channels always on, half always off), which still exercises every
mask. A beta's gradient (a sum of dy) may nearly cancel, so each BN's gamma
and beta gradients are compared as one vector. Measured on the 2-core machine: the kernel's largest norm-relative
gradient error 7e-6 (Keras float32: 5e-5); the tolerance here is 1e-4.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from classes.compact.model import build_compact_model
from classes.runtime.native import NativeUnavailable, available_isas
from classes.runtime.quiet_tensorflow import keras, tf
from classes.training.kernel_step import KernelStep, batch_norm_indices, trainable_indices
from classes.training.patch_moments import patch_moments, patch_moments_reference
from classes.training.trainers import (
    KerasTrainer,
    KernelTrainer,
    load_trainer_state,
    save_trainer_state,
)

# Conv biases followed by BatchNormalization: their gradient is 0 in exact arithmetic.
CANCELLED_BIASES = (1, 8, 15, 22, 29)
TOLERANCE = 1e-4
# Each BN's gamma and beta gradients are measured together (gamma index <-> beta index).
BATCH_NORM_PAIRS = {index: partner for layer in range(5)
                    for index, partner in zip(batch_norm_indices(layer)[:2], batch_norm_indices(layer)[1::-1], strict=True)}


def _kernel_isas() -> list[str]:
    try:
        KernelStep.library_check()
    except NativeUnavailable as reason:
        pytest.skip(f"the compiled training kernel cannot run here: {reason}")
    return available_isas()


def _far_weights(counts, seed: int = 3) -> list[np.ndarray]:
    keras.utils.set_random_seed(seed)
    weights = build_compact_model(counts).get_weights()
    for layer in range(5):
        gamma, beta, _, _ = batch_norm_indices(layer)
        weights[gamma] = np.full_like(weights[gamma], 0.3)
        weights[beta] = np.where(np.arange(len(weights[beta])) % 2 == 0, 3.0, -3.0).astype(np.float32)
    return weights


def _batch(size: int, seed: int = 1):
    generator = np.random.default_rng(seed)
    images = generator.uniform(-116, 155, (size, 112, 112, 3)).astype(np.float32)
    images[0, :30] = 0.0  # flat rows: the patch moments' border terms must still hold
    return images, generator.normal(0, 1, size).astype(np.float32)


def _keras64(counts, weights, images, targets) -> dict:
    keras.config.set_dtype_policy("float64")
    try:
        model = build_compact_model(counts)
        model.set_weights([array.astype(np.float64) for array in weights])
        with tf.GradientTape() as tape:
            outputs = model(images.astype(np.float64), training=True)
            loss = tf.reduce_mean((outputs[:, 0] - targets.astype(np.float64)) ** 2)
        gradients = tape.gradient(loss, model.trainable_variables)
        after = model.get_weights()
    finally:
        keras.config.set_dtype_policy("float32")
    statistics = {}
    for layer in range(5):
        _, _, mean, variance = batch_norm_indices(layer)
        statistics[layer] = tuple((after[index] - 0.99 * weights[index].astype(np.float64)) / 0.01
                                  for index in (mean, variance))
    return {"loss": float(loss), "gradients": [gradient.numpy() for gradient in gradients], "statistics": statistics}


def test_patch_moments_equal_their_definition():
    images, _ = _batch(3)
    step = KernelStep([4, 4, 4, 4, 4], 3)
    lag_sums = np.zeros(step.lag_count)
    step._call("train_patch_lag_sums", images, 3, lag_sums, step.work, ctypes.c_long(step.per_thread),
               step.image_sums, step.threads)
    first, second = patch_moments(lag_sums, images)
    expected_first, expected_second = patch_moments_reference(images)
    assert np.abs(first - expected_first).max() <= 1e-9 * np.abs(expected_first).max()
    assert np.abs(second - expected_second).max() <= 1e-7 * np.abs(expected_second).max()


@pytest.mark.parametrize("counts", [[20, 18, 5, 7, 3], [33, 64, 17, 1, 16], [100, 100, 100, 100, 100]])
def test_gradients_loss_and_statistics_equal_keras_float64(counts):
    isas = _kernel_isas()
    weights = _far_weights(counts)
    images, targets = _batch(4)
    reference = _keras64(counts, weights, images, targets)
    for isa in isas:
        step = KernelStep(counts, 4, isa=isa)
        step.load_weights(weights)
        result = step.compute(images, targets)
        assert result["loss"] == pytest.approx(reference["loss"], rel=1e-5), isa
        expected_by_index = dict(zip(trainable_indices(), reference["gradients"], strict=True))
        for index, expected in expected_by_index.items():
            mine = result["gradients"][index].reshape(expected.shape).astype(np.float64)
            if index in CANCELLED_BIASES:  # compared with the kernel gradient before it
                assert np.abs(mine).max() <= 1e-4 * np.abs(expected_by_index[index - 1]).max(), (isa, index)
                continue
            scale = np.linalg.norm(expected)
            if index in BATCH_NORM_PAIRS:  # a beta's sum of dy may nearly cancel: its layer's gamma sets the scale
                scale = np.hypot(scale, np.linalg.norm(expected_by_index[BATCH_NORM_PAIRS[index]]))
            error = np.linalg.norm(mine - expected) / scale
            assert error <= TOLERANCE, (isa, index, error)
        for layer, (mean, variance) in reference["statistics"].items():
            mine_mean, mine_variance = result["statistics"][layer]
            assert np.abs(mine_mean - mean).max() <= 1e-4 * (np.abs(mean).max() + 1e-3), (isa, layer)
            assert np.abs(mine_variance - variance).max() <= 1e-4 * np.abs(variance).max(), (isa, layer)


def test_thread_count_changes_no_bit():
    _kernel_isas()
    counts, (images, targets) = [12, 20, 4, 4, 3], _batch(5)
    weights = _far_weights(counts)
    results = []
    for threads in (1, 2):
        step = KernelStep(counts, 5, threads=threads)
        step.load_weights(weights)
        results.append(step.compute(images, targets))
    assert results[0]["loss"] == results[1]["loss"]
    for index in trainable_indices():
        assert np.array_equal(results[0]["gradients"][index], results[1]["gradients"][index]), index


def test_the_two_trainers_take_the_same_steps():
    _kernel_isas()
    counts = [20, 18, 5, 7, 3]
    weights = _far_weights(counts)
    kernel, reference = KernelTrainer(weights, 1e-3, batch_size=6), KerasTrainer(weights, 1e-3, batch_size=6)
    for seed in range(3):
        images, targets = _batch(6, seed=seed)
        assert kernel.train_step(images, targets) == pytest.approx(reference.train_step(images, targets), rel=1e-4)
    assert kernel.iterations == reference.iterations == 3
    for index, (mine, expected) in enumerate(zip(kernel.get_weights(), reference.get_weights(), strict=True)):
        if index not in CANCELLED_BIASES:  # Keras's noise-level gradients move them by up to lr a step
            assert np.abs(mine - expected).max() <= 0.01 * (np.abs(expected).max() + 1e-3), index


def test_a_state_saved_by_one_engine_resumes_on_the_other(tmp_path):
    _kernel_isas()
    counts = [8, 6, 4, 4, 3]
    kernel = KernelTrainer(_far_weights(counts), 1e-3, batch_size=4)
    kernel.train_step(*_batch(4))
    save_trainer_state(kernel, tmp_path / "state.npz")
    reference = KerasTrainer(_far_weights(counts, seed=9), 1e-3, batch_size=4)
    load_trainer_state(reference, tmp_path / "state.npz")
    assert reference.iterations == 1
    assert all(np.array_equal(a, b) for a, b in zip(kernel.get_weights(), reference.get_weights(), strict=True))
    assert all(np.array_equal(kernel.state()[name], value) for name, value in reference.state().items())


def test_bad_inputs_say_what_is_wrong(tmp_path):
    _kernel_isas()
    trainer = KernelTrainer(_far_weights([4, 4, 4, 4, 4]), batch_size=2)
    with pytest.raises(ValueError, match=r"images must be \(1..2, 112, 112, 3\)"):
        trainer.train_step(np.zeros((3, 112, 112, 3), np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        trainer.train_step(np.zeros((2, 112, 112, 3), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="filter counts"):
        trainer.set_weights(_far_weights([5, 4, 4, 4, 4]))
    (tmp_path / "bad.npz").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="does not hold a usable trainer state"):
        load_trainer_state(trainer, tmp_path / "bad.npz")

"""The GPU distillation (``code_distill_and_prune/gpu_distill.py``) on the CPU: imports, steps, files, hand-over.

The GPU machines have PyTorch and no TensorFlow, so the GPU side must import
without it. Its training step is checked against Keras in float64 on the
fixture of ``tests/test_train_kernel.py`` (BN outputs far from zero; the
reason is there), its Adam against Keras's update formula, its output
against the Keras model that loads it, and its hand-over to the CPU
pipeline (``run.py --student-weights``).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from classes.compact.architecture import load_weights_npz, model_id, save_weights_npz
from classes.compact.model import build_compact_model
from classes.data.block_producer import ParallelBlocks
from classes.data.data_root import sha256_of_file
from classes.data.image_stream import ImageStream
from classes.data.images import available_image_sessions
from classes.data.preprocessing import RGB_MEANS
from classes.prediction import predict
from classes.runtime.keras_files import load_keras_file
from classes.runtime.paths import REPOSITORY_ROOT
from classes.training.distillation import initial_student_weights
from classes.training.kernel_step import batch_norm_indices, trainable_indices
from classes.training.stream_distillation import StreamTraining
from code_distill_and_prune import gpu_distill, run
from code_distill_and_prune.gpu_support import Log, process_seconds
from tests.test_train_kernel import (
    BATCH_NORM_PAIRS,
    CANCELLED_BIASES,
    TOLERANCE,
    _batch,
    _far_weights,
    _keras64,
)

torch = pytest.importorskip("torch")
from classes.compact.torch_conversion import keras_weights_from_state_dict  # noqa: E402
from classes.training.torch_trainer import BETA_1, BETA_2, EPSILON, TorchTrainer  # noqa: E402

TINY_STUDENT = [8, 6, 4, 4, 3]
TINY = ["--student-filters", "8,6,4,4,3", "--images", "256", "--block-size", "64", "--chunk-images", "128",
        "--num-validation", "16", "--workers", "2", "--device", "cpu", "--progress-seconds", "0"]
GPU_SIDE = ["classes.compact.torch_model", "classes.compact.torch_conversion", "classes.data.image_stream",
            "classes.data.block_producer", "classes.training.student", "classes.training.torch_trainer",
            "code_distill_and_prune.gpu_distill"]


@pytest.mark.parametrize("images", [256, 300, 1000, 12_345, 100_000])
@pytest.mark.parametrize("chunk_images", [None, 100, 128, 5_000])
def test_the_gpu_run_chunks_a_budget_as_the_cpu_pipeline_does(images, chunk_images):
    arguments = gpu_distill.parse_arguments(["--images", str(images), "--block-size", "64"]
                                            + ([] if chunk_images is None else ["--chunk-images", str(chunk_images)]))
    total, per_chunk = gpu_distill.chunk_plan(arguments)
    chunks = StreamTraining(num_images=images, chunk_images=chunk_images).chunks(64)
    assert total == sum(len(chunk) for chunk in chunks) == images // 64
    assert per_chunk == len(chunks[0])
    assert all(len(chunk) == per_chunk for chunk in chunks[:-1])


def test_the_gpu_side_imports_without_tensorflow():
    script = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Blocked())
        for name in {GPU_SIDE!r}:
            importlib.import_module(name)
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "matplotlib")))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_worker_blocks_are_the_streams_blocks_in_order(data_root):
    stream = ImageStream(seed=3, block_size=8, data_root=data_root, num_validation=4)
    stream.validation_images()
    with ParallelBlocks(stream, first=2, num_workers=2, slots_per_worker=1) as blocks:
        for index in range(2, 7):
            block = blocks.take(timeout=60)
            assert block.index == index
            np.testing.assert_array_equal(block.images, stream.raw_block(index))
            blocks.give_back(block)
    # Raw blocks are the stream's blocks before recentring, rounded to whole pixel values.
    recentred, _ = stream.block(6)
    assert np.abs(stream.raw_block(6).astype(np.float32) - RGB_MEANS - recentred).max() <= 0.5 + 1e-4


def _gradients(model) -> list[np.ndarray]:
    """The gradients of a Torch compact model in Keras's trainable-variable order."""
    parameters = dict(model.named_parameters())
    state = {key: (parameters[key].grad if key in parameters else torch.zeros_like(value))
             for key, value in model.state_dict().items()}
    arrays = keras_weights_from_state_dict(state)
    return [arrays[index] for index in trainable_indices()]


@pytest.mark.parametrize("counts", [[20, 18, 5, 7, 3], [100] * 5])
def test_torch_step_gradients_and_statistics_equal_keras_float64(counts):
    weights = _far_weights(counts)
    images, targets = _batch(4)
    reference = _keras64(counts, weights, images, targets)
    # Moving statistics start at 0, so that after the step they hold 0.01 x the batch's, to float32 precision.
    start = [np.zeros_like(array) if index in _moving_indices() else array for index, array in enumerate(weights)]
    trainer = TorchTrainer(start, 1e-4, "cpu")
    outputs = trainer.model(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[:, 0]
    loss = ((outputs - torch.from_numpy(targets)) ** 2).mean()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(reference["loss"], rel=1e-5)
    expected_by_index = dict(zip(trainable_indices(), reference["gradients"], strict=True))
    for index, mine in zip(trainable_indices(), _gradients(trainer.model), strict=True):
        expected = expected_by_index[index]
        mine = mine.reshape(expected.shape).astype(np.float64)
        if index in CANCELLED_BIASES:  # 0 in exact arithmetic: compared with the kernel gradient before it
            assert np.abs(mine).max() <= 1e-4 * np.abs(expected_by_index[index - 1]).max(), index
            continue
        scale = np.linalg.norm(expected)
        if index in BATCH_NORM_PAIRS:
            scale = np.hypot(scale, np.linalg.norm(expected_by_index[BATCH_NORM_PAIRS[index]]))
        assert np.linalg.norm(mine - expected) / scale <= TOLERANCE, index
    after = trainer.get_weights()
    for layer, (mean, variance) in reference["statistics"].items():
        _, _, mean_index, variance_index = batch_norm_indices(layer)
        positions = 4 * {0: 112 * 112, 1: 56 * 56}.get(layer, 28 * 28)
        np.testing.assert_allclose(after[mean_index] / 0.01, mean, rtol=1e-4, atol=1e-4 * np.abs(mean).max())
        # PyTorch's moving variance takes the unbiased batch variance (n / (n - 1)), Keras's the biased one.
        np.testing.assert_allclose(after[variance_index] / 0.01, variance * positions / (positions - 1), rtol=1e-4)


def _moving_indices() -> set[int]:
    return {index for layer in range(5) for index in batch_norm_indices(layer)[2:]}


@pytest.mark.parametrize("fused", [False, True])
def test_adam_takes_keras_steps(fused):
    weights = _far_weights([6, 5, 4, 4, 3])
    images, targets = _batch(4)
    trainer = TorchTrainer(weights, 1e-3, "cpu", fused=fused)
    batch = (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(targets))
    moments = {index: np.zeros_like(weights[index], np.float64) for index in trainable_indices()}
    velocities = {index: np.zeros_like(weights[index], np.float64) for index in trainable_indices()}
    for step in range(1, 4):
        before = trainer.get_weights()
        trainer.train_step(*batch)
        after, gradients = trainer.get_weights(), _gradients(trainer.model)
        alpha = 1e-3 * np.sqrt(1 - BETA_2**step) / (1 - BETA_1**step)
        for index, gradient in zip(trainable_indices(), gradients, strict=True):
            gradient = gradient.reshape(before[index].shape).astype(np.float64)
            moments[index] += (gradient - moments[index]) * (1 - BETA_1)
            velocities[index] += (gradient**2 - velocities[index]) * (1 - BETA_2)
            expected = -alpha * moments[index] / (np.sqrt(velocities[index]) + EPSILON)
            # The weights are float32: their differences are known to a unit in the last place of each.
            rounding = 2 * np.spacing(np.maximum(np.abs(before[index]), np.abs(after[index])))
            error = np.abs(after[index] - before[index] - expected)
            assert np.all(error <= 1e-3 * np.abs(expected) + rounding), (step, index)


@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_distill")
    arguments = gpu_distill.parse_arguments([*TINY, "--data-root", str(data_root), "--out", str(out)])
    return gpu_distill.distil(arguments), out


def test_a_tiny_run_writes_its_files_and_keras_loads_the_student(tiny_run, data_root):
    result, out = tiny_run
    assert sorted(path.name for path in out.iterdir()) == ["gpu_distill_log.txt", "learning_curve.json",
                                                           "student_weights.npz"]
    record = json.loads((out / "learning_curve.json").read_text())
    assert record["finished"] and record["stopped_by"] == "images" and record["images_seen"] == 256
    assert [entry["images_seen"] for entry in record["learning_curve"]] == [0, 128, 256]
    assert record["student"]["nums_filters"] == TINY_STUDENT and record["settings"]["workers"] == 2
    assert record["teacher"]["weight_sha256"] == sha256_of_file(
        data_root / "data_compact_models/model_weights_npy/compact_model_190923_neuron0.npy")
    images = np.ascontiguousarray(result.validation[0].permute(0, 2, 3, 1).numpy())
    # The teacher's labels are the released model's responses (the fast engine, independently).
    teacher = predict(model_id("190923", 0), images, data_root=data_root)[0]
    np.testing.assert_allclose(result.validation[1], teacher, rtol=1e-4, atol=1e-4 * teacher.std())
    model = build_compact_model(TINY_STUDENT)
    model.set_weights(load_weights_npz(out / "student_weights.npz"))
    torch_outputs = result.trainer.predict(result.validation[0]).numpy()
    keras_outputs = model.predict(images, verbose=0)[:, 0]
    assert np.abs(keras_outputs - torch_outputs).max() <= 1e-4 * torch_outputs.std()
    assert record["learning_curve"][-1]["r2_validation"] == pytest.approx(
        np.corrcoef(keras_outputs, teacher)[0, 1] ** 2, abs=1e-4)


def test_a_run_stops_at_its_time_limit_with_its_last_chunk_saved(tiny_run, tmp_path):
    result, _ = tiny_run
    arguments = gpu_distill.parse_arguments([*TINY, "--images", "64000", "--chunk-images", "64000", "--workers", "0",
                                             "--out", str(tmp_path)])
    arguments.seconds = process_seconds() + 8  # --seconds counts from the process's start
    # The tiny run's teacher, validation images and stream, a fresh copy of its student.
    run = dataclasses.replace(result, arguments=arguments, out=tmp_path, log=Log(tmp_path / gpu_distill.LOG_FILE),
                              blocks=ParallelBlocks(result.blocks.stream, 0, 0), counters=gpu_distill.Counters(),
                              trainer=TorchTrainer(result.trainer.get_weights(), 1e-4, "cpu"),
                              record={**result.record, "learning_curve": [], "finished": False})
    gpu_distill.train(run, total_blocks=1000, per_chunk=1000)
    record = json.loads((tmp_path / "learning_curve.json").read_text())
    assert record["stopped_by"] == "seconds" and record["finished"]
    last = record["learning_curve"][-1]
    assert last["partial"] and 64 <= last["images_seen"] == record["images_seen"] < 64000
    # It stops before a block it has no time for (slack: a block's time varies on a shared machine).
    assert last["seconds"] < arguments.seconds + 5


def test_prepare_copies_what_a_run_needs(data_root, tmp_path):
    folder = tmp_path / "devicedata"
    assert gpu_distill.main(["--prepare", str(folder), "--student-filters", "8,6,4,4,3",
                             "--data-root", str(data_root)]) is None
    release = folder / "release"
    zips = sorted(path.name for path in (release / "data_V4_responses/images").iterdir())
    assert zips == [f"images_{session}.zip" for session in available_image_sessions(data_root)]
    manifest = dict(reversed(line.split()) for line in (release / "MANIFEST.sha256").read_text().splitlines())
    files = sorted(path for path in release.rglob("*") if path.is_file() and path.name != "MANIFEST.sha256")
    assert len(files) == len(zips) + 2 and sorted(manifest) == sorted(
        f"./{path.relative_to(release).as_posix()}" for path in files)
    for path in files:
        assert manifest[f"./{path.relative_to(release).as_posix()}"] == sha256_of_file(path)
    # The copy holds every base image of the stream: the same stream as from the whole release.
    assert ImageStream(data_root=release).fingerprint() == ImageStream(data_root=data_root).fingerprint()
    for mine, expected in zip(load_weights_npz(folder / "student_initial_weights.npz"),
                              initial_student_weights(TINY_STUDENT, 0), strict=True):
        np.testing.assert_array_equal(mine, expected)


def test_the_cpu_pipeline_takes_the_gpu_student(tiny_run, data_root, tmp_path):
    _, out = tiny_run
    common = ["--session", "190923", "--neuron", "0", "--teacher", "compact", "--student-filters", "8,6,4,4,3",
              "--block-size", "16", "--images", "48", "--retrain-images", "32", "--num-validation", "16",
              "--data-root", str(data_root), "--out", str(tmp_path)]
    assert run.main([*common, "--student-weights", str(out / "student_weights.npz"), "--until", "prune"]) is None
    folder = tmp_path / "compact_190923_neuron0"
    state = json.loads((folder / "distill/state.json").read_text())
    gpu = json.loads((out / "learning_curve.json").read_text())
    assert state["source"] == "gpu" and state["learning_curve"] == gpu["learning_curve"]
    assert state["images_seen"] == 256 and state["gpu_run"]["settings"]["device"] == "cpu"
    student = load_keras_file(folder / "distill/student.keras").get_weights()
    for mine, expected in zip(student, load_weights_npz(out / "student_weights.npz"), strict=True):
        np.testing.assert_array_equal(mine, expected)
    assert (folder / "prune/pruned.keras").is_file()
    with pytest.raises(SystemExit, match=r"^error: --student-weights .* filters \[8, 6, 4, 4, 3\]; this run's "
                       r"student has \[100, 100, 100, 100, 100\]"):
        run.main([*common, "--student-filters", "100", "--student-weights", str(out / "student_weights.npz")])


def test_a_gpu_student_of_another_teacher_or_validation_set_is_refused(tiny_run, data_root, tmp_path):
    _, out = tiny_run
    other = tmp_path / "other"
    save_weights_npz(other / "student_weights.npz", load_weights_npz(out / "student_weights.npz"))
    record = json.loads((out / "learning_curve.json").read_text())
    record["teacher"]["model"] = "190923/neuron1"
    (other / "learning_curve.json").write_text(json.dumps(record))
    common = ["--session", "190923", "--neuron", "0", "--teacher", "compact", "--student-filters", "8,6,4,4,3",
              "--block-size", "16", "--images", "48", "--data-root", str(data_root), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match=r"^error: --student-weights .* distilled from teacher 190923/neuron1"):
        run.main([*common, "--num-validation", "16", "--student-weights", str(other / "student_weights.npz")])
    with pytest.raises(SystemExit, match=r"validation images \(seed 0, 16 images\) are not this run's \(seed 0, 32\)"):
        run.main([*common, "--num-validation", "32", "--student-weights", str(out / "student_weights.npz")])


def test_a_learning_rate_factor_steps_the_torch_trainer_as_the_scaled_rate():
    weights = _far_weights([6, 5, 4, 4, 3])
    images, targets = _batch(4)
    batch = (torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(targets))
    scaled, reference = TorchTrainer(weights, 1e-3, "cpu"), TorchTrainer(weights, 2.5e-4, "cpu")
    scaled.set_learning_rate_factor(0.25)
    for trainer in (scaled, reference):
        for _ in range(2):
            trainer.train_step(*batch)
    for ours, theirs in zip(scaled.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_a_cosine_run_sets_each_chunks_rate_as_the_cpu_pipeline_does(data_root, tmp_path):
    arguments = gpu_distill.parse_arguments([*TINY, "--workers", "0", "--learning-rate-schedule", "cosine",
                                             "--data-root", str(data_root), "--out", str(tmp_path)])
    record = gpu_distill.distil(arguments).record
    assert record["settings"]["learning_rate_schedule"] == "cosine"
    # Two chunks of 128 images: the rates the CPU pipeline's StreamTraining gives its two chunks.
    expected = [1e-4 * StreamTraining(num_images=256, learning_rate_schedule="cosine").learning_rate_factor(chunk, 2)
                for chunk in range(2)]
    assert record["learning_curve"][0]["learning_rate"] is None  # the initial weights'
    assert [entry["learning_rate"] for entry in record["learning_curve"][1:]] == pytest.approx(expected, rel=1e-9)

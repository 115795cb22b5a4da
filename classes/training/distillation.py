"""Distilling a compact model from a teacher's responses (SPEC section 2).

The student is trained with Adam (learning rate 1e-4) on the mean squared
error between its output and the teacher's response, in batches of 64. The
images come in blocks; a chunk is a run of blocks, and after each chunk the
5x5 depthwise kernels of layers 1-4 and the readout's 28x28 map of every
layer-4 filter are smoothed with a Gaussian of sigma 0.5 pixels (layer 0's
kernels and the pointwise weights are not smoothed). The paper made one pass
over 12 million images in blocks of 2,000 with 500,000-image chunks (24
smoothings); the release's pool is far smaller, so it is passed over several
times (see :class:`DistillationConfig`).

Training is resumable: after each chunk the model and its optimizer state
are saved in a folder with a ``state.json`` that records how far training
got (a :class:`classes.training.checkpoints.RunFolder`); :func:`distill`
called again on the same folder continues from there and returns at once
when training had finished.

The teacher here is the released shared compact model trained from the
ensemble (200 filters; outputs ``(num_images, 219)`` in the neuron order of
:func:`classes.compact.model.all_model_ids`), whose output for a neuron
stands in for the ensemble's, whose weights the release lacks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from classes.compact.model import NUM_LAYERS, OUTPUT_SIZE, all_model_ids, model_id
from classes.compact.tools import get_kernels, nums_filters_of, set_kernels
from classes.data.data_root import resolve_data_root
from classes.data.preprocessing import check_images
from classes.runtime.keras_files import load_keras_file
from classes.runtime.quiet_tensorflow import keras, tf
from classes.training.checkpoints import RunFolder

TEACHER_FOLDER = Path("data_shared_compact_models") / "from_ensemble_model"
TEACHER_FILTERS = 200
STUDENT_FILTERS = 100
SMOOTHING_SIGMA = 0.5
# The SPEC gives no border rule for smoothing a 5x5 kernel; "reflect" keeps
# a kernel's sum, so smoothing does not shrink the weights chunk after chunk.
SMOOTHING_MODE = "reflect"
CHECKPOINT_PREFIX = "checkpoint_chunk"


def teacher_model_path(data_root=None, num_filters: int = TEACHER_FILTERS) -> Path:
    """Path of the released shared compact model used as teacher.

    Raises:
        FileNotFoundError: the file is not in the release at hand.
    """
    path = resolve_data_root(data_root) / TEACHER_FOLDER / f"shared_compact_model_{num_filters}filters.keras"
    if not path.is_file():
        raise FileNotFoundError(
            f"The teacher {path} is not in the release. Distillation needs the "
            "shared compact model trained from the ensemble "
            f"({TEACHER_FOLDER}/shared_compact_model_{num_filters}filters.keras)."
        )
    return path


def load_teacher_model(data_root=None, num_filters: int = TEACHER_FILTERS) -> keras.Model:
    """Loads the teacher: images ``(N, 112, 112, 3)`` to responses ``(N, 219)``."""
    path = teacher_model_path(data_root, num_filters)
    return load_keras_file(path, "teacher")


def teacher_output_index(session_id, neuron) -> int:
    """Column of the teacher's output that stands for one neuron."""
    return all_model_ids().index(model_id(session_id, neuron))


def teacher_neuron_model(teacher: keras.Model, column: int) -> keras.Model:
    """The teacher's path to one neuron, as a single-output compact model.

    The teacher's readout is a 1x1 ``mixing_stage`` (weights ``M``, bias
    ``m``) then a 28x28 ``spatial_pool_stage`` (map ``S_c``, bias ``s``), so
    its output ``c`` is ``sum_xyk S_c(x,y) M_kc a_k(x,y) + m_c sum S_c + s_c``:
    a compact model whose readout map of filter ``k`` is ``S_c * M_kc``.

    Returns:
        A compact model ``[200, 200, 200, 100, 100]`` whose output equals
        the teacher's column ``column``.
    """
    from classes.compact.model import WEIGHTS_PER_MODEL, build_compact_model

    mixing, mixing_bias = teacher.get_layer("mixing_stage").get_weights()
    spatial, spatial_bias = teacher.get_layer("spatial_pool_stage").get_weights()
    if not 0 <= column < mixing.shape[-1]:
        raise ValueError(f"column must be in 0..{mixing.shape[-1] - 1}; got {column}.")
    trunk = teacher.get_weights()[: WEIGHTS_PER_MODEL - 2]
    counts = [trunk[0].shape[-1]] + [trunk[6 + 7 * (layer - 1) + 1].shape[-1] for layer in range(1, NUM_LAYERS)]
    spatial_map = spatial[:, :, column, 0]
    maps = spatial_map[:, :, None] * mixing[0, 0, :, column][None, None, :]
    bias = mixing_bias[column] * spatial_map.sum() + spatial_bias[column]
    model = build_compact_model(counts, name=f"teacher_neuron{column}")
    model.set_weights(trunk + [maps.reshape(-1, 1), np.array([bias], np.float32)])
    return model


def predict_teacher(teacher: keras.Model, images, batch_size: int = 64) -> np.ndarray:
    """Teacher responses to recentred images, float32 ``(N, num_outputs)``."""
    images = check_images(images, "recentered")
    function = tf.function(lambda batch: teacher(batch, training=False))
    outputs = [
        np.asarray(function(tf.constant(images[start:start + batch_size], tf.float32)))
        for start in range(0, len(images), batch_size)
    ]
    if not outputs:
        return np.zeros((0, teacher.output_shape[-1]), np.float32)
    return np.concatenate(outputs).reshape(len(images), -1)


def smooth_compact_model(model: keras.Model, sigma: float = SMOOTHING_SIGMA) -> None:
    """Smooths the spatial kernels of layers 1-4 and the readout map, in place.

    Each 5x5 depthwise kernel of layers 1-4 and each layer-4 filter's 28x28
    readout map is filtered with ``scipy.ndimage.gaussian_filter`` (sigma
    pixels, border mode ``SMOOTHING_MODE``). Layer 0's kernels, pointwise
    weights, biases and BN are left alone.
    """
    if sigma <= 0:
        return
    for layer in range(1, NUM_LAYERS):
        depthwise = get_kernels(model, layer)["depthwise"]
        set_kernels(
            model, layer,
            depthwise=gaussian_filter(depthwise, sigma=(sigma, sigma, 0, 0), mode=SMOOTHING_MODE),
        )
    kernel = get_kernels(model, "readout")["kernel"]
    maps = kernel.reshape(OUTPUT_SIZE, OUTPUT_SIZE, -1)
    smoothed = gaussian_filter(maps, sigma=(sigma, sigma, 0), mode=SMOOTHING_MODE)
    set_kernels(model, "readout", kernel=smoothed.reshape(kernel.shape))


@dataclass(frozen=True)
class DistillationConfig:
    """How a student is trained.

    Attributes:
        learning_rate: Adam's (paper: 1e-4).
        batch_size: images per step (paper: 64).
        block_size: images loaded (and their teacher responses cached) at a
            time (paper: 2,000).
        blocks_per_chunk: blocks between smoothings and checkpoints.
        epochs: passes over the pool (the paper made one pass over 12M).
        max_blocks: stop after this many blocks in all (a compute budget);
            None for every block of every epoch.
        smoothing_sigma: Gaussian sigma in pixels; 0 turns smoothing off.
        seed: orders the blocks and the images within them.
    """

    learning_rate: float = 1e-4
    batch_size: int = 64
    block_size: int = 2000
    blocks_per_chunk: int = 3
    epochs: int = 4
    max_blocks: int | None = None
    smoothing_sigma: float = SMOOTHING_SIGMA
    seed: int = 0

    def __post_init__(self):
        for name in ("batch_size", "block_size", "blocks_per_chunk", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if self.max_blocks is not None and self.max_blocks < 1:
            raise ValueError(f"max_blocks must be positive or None; got {self.max_blocks!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}.")
        if self.smoothing_sigma < 0:
            raise ValueError(f"smoothing_sigma must be >= 0; got {self.smoothing_sigma!r}.")


def block_slices(num_entries: int, block_size: int) -> list[slice]:
    """Consecutive blocks of a pool, the last one possibly shorter."""
    return [slice(start, min(start + block_size, num_entries)) for start in range(0, num_entries, block_size)]


def training_schedule(num_entries: int, config: DistillationConfig) -> list[list[tuple[int, int]]]:
    """The chunks of training: lists of ``(epoch, block_index)``.

    Each epoch visits every block once in an order drawn from the seed;
    ``max_blocks`` cuts the sequence short.
    """
    if num_entries < 1:
        raise ValueError("The pool is empty; nothing to train on.")
    num_blocks = len(block_slices(num_entries, config.block_size))
    sequence = []
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(num_blocks)
        sequence.extend((epoch, int(block)) for block in order)
    if config.max_blocks is not None:
        sequence = sequence[: config.max_blocks]
    step = config.blocks_per_chunk
    return [sequence[start:start + step] for start in range(0, len(sequence), step)]


def compile_student(model: keras.Model, learning_rate: float) -> keras.Model:
    """Attaches Adam and the MSE loss (in place) and returns the model."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def train_on_block(model: keras.Model, images, targets, batch_size: int, order=None) -> list[float]:
    """One pass over a block of images in batches.

    Args:
        model: a compiled student.
        images: recentred ``(n, 112, 112, 3)``.
        targets: ``(n,)`` teacher responses.
        order: permutation of ``range(n)``; None keeps the given order.

    Returns:
        The loss of every batch (before its update).
    """
    targets = np.asarray(targets, dtype=np.float32).reshape(-1, 1)
    if len(targets) != len(images):
        raise ValueError(f"{len(images)} images but {len(targets)} targets.")
    order = np.arange(len(images)) if order is None else np.asarray(order)
    losses = []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        losses.append(float(model.train_on_batch(images[batch], targets[batch])))
    return losses


def _run_folder(folder) -> RunFolder:
    return RunFolder(folder, (CHECKPOINT_PREFIX,), remedy="delete the folder to start over")


def load_checkpoint(folder, name: str) -> keras.Model:
    """Loads a saved student with its optimizer state.

    Raises:
        FileNotFoundError: ``folder`` holds no file ``name``.
    """
    return keras.models.load_model(_run_folder(folder).named_file(name))


def distill(
    model: keras.Model,
    pool,
    block_targets,
    config: DistillationConfig,
    folder,
    final_name: str = "student.keras",
    stop_after_chunks: int | None = None,
    show_progress: bool = True,
    description: str = "distilling",
) -> tuple[keras.Model, dict]:
    """Trains a student on a teacher's responses, resumably.

    Args:
        model: the initial student (used only when ``folder`` holds no state).
        pool: an :class:`classes.data.image_pool.ImagePool`.
        block_targets: ``block_targets(block_index)`` returns the teacher's
            responses ``(n,)`` to the pool entries of block ``block_index``
            (positions ``block_slices(len(pool), block_size)[block_index]``).
        config: a :class:`DistillationConfig`.
        folder: checkpoint folder; created when absent.
        final_name: file name of the finished model in ``folder``.
        stop_after_chunks: return after this many chunks in this call
            (training stays unfinished and resumes on the next call).

    Returns:
        ``(model, state)``; ``state["finished"]`` says whether every chunk
        is done.

    Raises:
        ValueError: ``folder`` holds a run with another configuration, pool
            or architecture.
    """
    run = _run_folder(folder)
    chunks = training_schedule(len(pool), config)
    model, state = _start_or_resume(run, model, pool, config, len(chunks), final_name)
    if state["finished"]:
        return model, state
    slices = block_slices(len(pool), config.block_size)
    blocks_done = sum(len(chunk) for chunk in chunks[: state["chunks_done"]])
    progress = tqdm(total=sum(len(chunk) for chunk in chunks), initial=blocks_done,
                    desc=description, unit="block", disable=not show_progress)
    last_chunk = len(chunks)
    if stop_after_chunks is not None:
        last_chunk = min(last_chunk, state["chunks_done"] + stop_after_chunks)
    for chunk_index in range(state["chunks_done"], last_chunk):
        start = time.perf_counter()
        losses = _train_chunk(model, pool, block_targets, chunks[chunk_index], slices, config, state, progress)
        _save_chunk(run, model, state, losses, start, final_name)
    progress.close()
    return model, state


def _train_chunk(model, pool, block_targets, chunk, slices, config, state: dict, progress) -> list[float]:
    """Trains on a chunk's blocks, then smooths the model.

    Args:
        chunk: ``(epoch, block_index)`` pairs from :func:`training_schedule`.
        slices: the pool's blocks, from :func:`block_slices`.
        state: its ``images_seen`` is advanced in place.

    Returns:
        The loss of every batch of the chunk.
    """
    losses = []
    for epoch, block in chunk:
        positions = np.arange(slices[block].start, slices[block].stop)
        images = pool.load(positions)
        targets = np.asarray(block_targets(block), dtype=np.float32).reshape(-1)
        order = np.random.default_rng([config.seed, epoch, block]).permutation(len(positions))
        losses.extend(train_on_block(model, images, targets, config.batch_size, order))
        state["images_seen"] += len(positions)
        progress.update(1)
        progress.set_postfix(loss=f"{np.mean(losses):.4g}")
    smooth_compact_model(model, config.smoothing_sigma)
    return losses


def _start_or_resume(run: RunFolder, model, pool, config, num_chunks: int, final_name: str):
    """The model and state to continue from: the folder's latest, or a fresh start.

    Returns:
        ``(model, state)``; a finished run's model is its final one.

    Raises:
        ValueError: the folder holds a run with other settings.
    """
    settings = {
        "config": asdict(config),
        "pool_fingerprint": pool.fingerprint(),
        "initial_nums_filters": nums_filters_of(model),
    }
    state = run.read_state()
    if state is None:
        state = dict(settings, chunks_done=0, num_chunks=num_chunks, images_seen=0,
                     checkpoint=None, finished=False, history=[], seconds=0.0)
        return compile_student(model, config.learning_rate), state
    run.check_settings(state, settings, remedy="pass --restart to discard it or choose another --out")
    return load_checkpoint(run.path, final_name if state["finished"] else state["checkpoint"]), state


def _save_chunk(run: RunFolder, model, state: dict, losses: list[float], start: float, final_name: str) -> None:
    """Records a finished chunk: its checkpoint, then the state that names it.

    Args:
        state: updated in place (chunks done, history, seconds, finished).
        losses: the chunk's batch losses.
        start: ``time.perf_counter()`` when the chunk began.
    """
    chunk = state["chunks_done"] + 1
    state["checkpoint"] = f"{CHECKPOINT_PREFIX}{chunk:04d}.keras"
    run.write_file(state["checkpoint"], model.save)
    state["chunks_done"] = chunk
    state["seconds"] += time.perf_counter() - start
    state["history"].append({
        "chunk": chunk,
        "images_seen": state["images_seen"],
        "mean_loss": float(np.mean(losses)),
        "first_batch_loss": losses[0],
        "last_batch_loss": losses[-1],
    })
    if chunk == state["num_chunks"]:
        run.write_file(final_name, model.save)
        state["finished"] = True
    run.commit(state, [state["checkpoint"], final_name])

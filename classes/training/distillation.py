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
got; :func:`distill` called again on the same folder continues from there
and returns at once when training had finished.

The teacher here is the released shared compact model trained from the
ensemble (200 filters; outputs ``(num_images, 219)`` in the neuron order of
:func:`classes.compact.model.all_model_ids`), whose output for a neuron
stands in for the ensemble's, whose weights the release lacks.
"""

from __future__ import annotations

import json
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
from classes.runtime.outputs import write_json
from classes.runtime.quiet_tensorflow import keras, tf

TEACHER_FOLDER = Path("data_shared_compact_models") / "from_ensemble_model"
TEACHER_FILTERS = 200
STUDENT_FILTERS = 100
SMOOTHING_SIGMA = 0.5
# The SPEC gives no border rule for smoothing a 5x5 kernel; "reflect" keeps
# a kernel's sum, so smoothing does not shrink the weights chunk after chunk.
SMOOTHING_MODE = "reflect"
STATE_FILE = "state.json"


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
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ValueError(
            f"Could not load the teacher {path} ({type(error).__name__}: {error}); "
            "the file is corrupt or truncated."
        ) from None


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


def _read_state(folder: Path) -> dict | None:
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete the folder to start over.") from None


def load_checkpoint(folder, name: str) -> keras.Model:
    """Loads a saved student with its optimizer state."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing though {folder / STATE_FILE} names it; delete the folder to start over.")
    return keras.models.load_model(path)


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
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chunks = training_schedule(len(pool), config)
    identity = {
        "config": asdict(config),
        "pool_fingerprint": pool.fingerprint(),
        "initial_nums_filters": nums_filters_of(model),
    }
    state = _read_state(folder)
    if state is not None:
        mismatched = [key for key, value in identity.items() if state.get(key) != value]
        if mismatched:
            raise ValueError(
                f"{folder} holds a run with a different {', '.join(mismatched)} "
                f"({', '.join(f'{key}={state.get(key)}' for key in mismatched)}); "
                "pass --restart to discard it or choose another --out."
            )
        if state["finished"]:
            return load_checkpoint(folder, final_name), state
        model = load_checkpoint(folder, state["checkpoint"])
    else:
        state = dict(identity, chunks_done=0, num_chunks=len(chunks), images_seen=0,
                     checkpoint=None, finished=False, history=[], seconds=0.0)
        compile_student(model, config.learning_rate)
    slices = block_slices(len(pool), config.block_size)
    blocks_done = sum(len(chunk) for chunk in chunks[: state["chunks_done"]])
    progress = tqdm(total=sum(len(chunk) for chunk in chunks), initial=blocks_done,
                    desc=description, unit="block", disable=not show_progress)
    chunks_this_call = 0
    for chunk_index in range(state["chunks_done"], len(chunks)):
        if stop_after_chunks is not None and chunks_this_call >= stop_after_chunks:
            break
        start = time.perf_counter()
        chunk_losses = []
        for epoch, block in chunks[chunk_index]:
            positions = np.arange(slices[block].start, slices[block].stop)
            images = pool.load(positions)
            targets = np.asarray(block_targets(block), dtype=np.float32).reshape(-1)
            order = np.random.default_rng([config.seed, epoch, block]).permutation(len(positions))
            chunk_losses.extend(train_on_block(model, images, targets, config.batch_size, order))
            state["images_seen"] += len(positions)
            progress.update(1)
            progress.set_postfix(loss=f"{np.mean(chunk_losses):.4g}")
        smooth_compact_model(model, config.smoothing_sigma)
        previous = state["checkpoint"]
        state["checkpoint"] = f"checkpoint_chunk{chunk_index + 1:04d}.keras"
        model.save(folder / state["checkpoint"])
        state["chunks_done"] = chunk_index + 1
        state["seconds"] += time.perf_counter() - start
        state["history"].append({
            "chunk": chunk_index + 1,
            "images_seen": state["images_seen"],
            "mean_loss": float(np.mean(chunk_losses)),
            "first_batch_loss": chunk_losses[0],
            "last_batch_loss": chunk_losses[-1],
        })
        if state["chunks_done"] == len(chunks):
            model.save(folder / final_name)
            state["finished"] = True
        # The state is written after the model it names, so a crash between
        # the two leaves the previous, consistent pair.
        write_json(folder / STATE_FILE, state)
        if previous and previous != state["checkpoint"]:
            (folder / previous).unlink(missing_ok=True)
        chunks_this_call += 1
    progress.close()
    return model, state

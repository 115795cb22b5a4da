"""What the four stages share: arguments, settings, folders, the teacher cache.

Folder layout under ``--out`` (default ``results/distill_and_prune/``)::

    settings.json                 pool settings, fixed by the first stage run here
    teacher_responses/*.npy       the teacher's 219 outputs per image block (shared by neurons)
    <session>_neuron<k>/distill/  state.json, checkpoint_chunk*.keras, student.keras
    <session>_neuron<k>/prune/    pruned.keras, pruning.json
    <session>_neuron<k>/retrain/  state.json, checkpoint_chunk*.keras, retrained.keras
    <session>_neuron<k>/evaluation.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classes.compact.model import ModelId, model_id
from classes.data.image_pool import build_image_pool, split_pool
from classes.data.images import load_images
from classes.data.preprocessing import recenter_images
from classes.data.sessions import TEST_SESSIONS, held_out_indices
from classes.reporting.script_support import add_common_arguments, exit_on_user_error, start_script
from classes.runtime import outputs
from classes.training.distillation import DistillationConfig, load_teacher_model, predict_teacher

SCRIPT_NAME = "distill_and_prune"
SETTINGS_FILE = "settings.json"

# Pool and student settings: the full run, and the CI-sized one (--tiny).
POOL_PRESETS = {
    "full": {"num_filters": 100, "pool_sessions": None, "max_images_per_session": None,
             "num_validation": 500, "evaluation_images": None, "seed": 0},
    "tiny": {"num_filters": 4, "pool_sessions": ["190923"], "max_images_per_session": 24,
             "num_validation": 4, "evaluation_images": 24, "seed": 0},
}
# Training budgets per stage. Full: about 4 passes over the ~31,000 training
# entries in chunks of 6,000 images, i.e. ~21 smoothings (the paper: 24).
TRAINING_PRESETS = {
    "full": {"distill": {"block_size": 2000, "blocks_per_chunk": 3, "epochs": 4, "max_blocks": None},
             "retrain": {"block_size": 2000, "blocks_per_chunk": 3, "epochs": 1, "max_blocks": None}},
    "tiny": {"distill": {"block_size": 16, "blocks_per_chunk": 1, "epochs": 1, "max_blocks": 2},
             "retrain": {"block_size": 16, "blocks_per_chunk": 1, "epochs": 1, "max_blocks": 2}},
}


def make_parser(description: str, training_stage: str | None = None, restart_help: str | None = None,
                source_help: str | None = None) -> argparse.ArgumentParser:
    """The arguments every stage takes, and those only some stages take.

    Args:
        description: the stage's one-line description.
        training_stage: ``"distill"`` or ``"retrain"`` to add the training
            budget (including ``--restart``); None for no training.
        restart_help: help of a ``--restart`` flag for a stage that does not
            train (prune); None for none.
        source_help: help of ``--source student|teacher`` (the stages that
            can work on the teacher's own network); None for none.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--session", default="190923", help=f"test session ({', '.join(TEST_SESSIONS)})")
    parser.add_argument("--neuron", default="0",
                        help="0-based neuron index within the session, or several comma-separated "
                        "(each is an independent job with its own folder)")
    parser.add_argument("--tiny", action="store_true",
                        help="CI-sized run: 4-filter student, 72-image pool from one session, 2 blocks of 16")
    pool = parser.add_argument_group("pool (fixed by the first stage run in --out; later stages reuse it)")
    pool.add_argument("--num-filters", type=int, default=None, help="student filters per layer (default 100)")
    pool.add_argument("--pool-sessions", default=None,
                      help="comma-separated sessions whose zips form the pool (default: every zip present)")
    pool.add_argument("--max-images-per-session", type=int, default=None,
                      help="use only the first N allowed images of each session (default: all)")
    pool.add_argument("--num-validation", type=int, default=None,
                      help="base images held out of training for pruning and validation, each in "
                      "its 3 variants (default 500)")
    pool.add_argument("--evaluation-images", type=int, default=None,
                      help="score on the first N images of the session's held-out half (default: all)")
    pool.add_argument("--seed", type=int, default=None, help="seed of the pool shuffle and split (default 0)")
    if training_stage is not None:
        training = parser.add_argument_group(f"training budget of the {training_stage} stage")
        training.add_argument("--epochs", type=int, default=None, help="passes over the training pool")
        training.add_argument("--max-blocks", type=int, default=None,
                              help="stop after this many blocks in all (a compute budget)")
        training.add_argument("--block-size", type=int, default=None, help="images per block (default 2000)")
        training.add_argument("--blocks-per-chunk", type=int, default=None,
                              help="blocks between smoothings and checkpoints (default 3)")
        training.add_argument("--learning-rate", type=float, default=1e-4, help="Adam (paper: 1e-4)")
        training.add_argument("--stop-after-chunks", type=int, default=None,
                              help="return after this many chunks in this call; a rerun resumes")
        training.add_argument("--restart", action="store_true",
                              help="discard this stage's earlier checkpoints for the chosen neurons")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step / forward pass")
    add_common_arguments(parser)
    if restart_help is not None:
        parser.add_argument("--restart", action="store_true", help=restart_help)
    if source_help is not None:
        parser.add_argument("--source", choices=("student", "teacher"), default="student", help=source_help)
    return parser


StageRun = Callable[[argparse.Namespace, Path, Path], list]


def run_stage(run: StageRun, description: str, argv=None, **parser_options) -> list:
    """Parses a stage's arguments, prepares data and ``--out``, runs the stage.

    Args:
        run: ``run(arguments, data_root, output_dir)``, the stage's work.
        description: the stage's one-line description (its ``--help``).
        argv: command-line arguments; None reads ``sys.argv``.
        **parser_options: ``training_stage``, ``restart_help`` and
            ``source_help`` of :func:`make_parser`.

    Returns:
        What ``run`` returns. A ValueError or a missing file exits with a
        one-line message instead.
    """
    arguments = make_parser(description, **parser_options).parse_args(argv)
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    return exit_on_user_error(lambda: run(arguments, data_root, output_dir))


def chosen_models(arguments) -> list[ModelId]:
    """The ``--session``/``--neuron`` pairs, validated."""
    try:
        neurons = [int(text) for text in str(arguments.neuron).split(",") if text.strip()]
    except ValueError:
        raise ValueError(f"--neuron must be comma-separated integers; got {arguments.neuron!r}.") from None
    if not neurons:
        raise ValueError("--neuron names no neuron.")
    return [model_id(arguments.session, neuron) for neuron in neurons]


def neuron_folder(output_dir: Path, identifier: ModelId) -> Path:
    return Path(output_dir) / f"{identifier.session_id}_neuron{identifier.neuron}"


def resolve_settings(arguments, output_dir: Path) -> dict:
    """Pool settings: from ``settings.json`` when an earlier stage wrote it.

    Raises:
        ValueError: a flag given now contradicts the recorded settings.
    """
    path = Path(output_dir) / SETTINGS_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else None
    preset = "tiny" if arguments.tiny else (recorded["preset"] if recorded else "full")
    if recorded and arguments.tiny and recorded["preset"] != "tiny":
        raise ValueError(f"{path} records a full run; --tiny needs another --out.")
    given = {
        "num_filters": arguments.num_filters,
        "pool_sessions": arguments.pool_sessions.split(",") if arguments.pool_sessions else None,
        "max_images_per_session": arguments.max_images_per_session,
        "num_validation": arguments.num_validation,
        "evaluation_images": arguments.evaluation_images,
        "seed": arguments.seed,
    }
    settings = {"preset": preset}
    for key, default in POOL_PRESETS[preset].items():
        if recorded is not None:
            if given[key] is not None and given[key] != recorded[key]:
                raise ValueError(
                    f"--{key.replace('_', '-')} {given[key]} contradicts {recorded[key]} recorded in "
                    f"{path} by an earlier stage; drop the flag or choose another --out."
                )
            settings[key] = recorded[key]
        else:
            settings[key] = given[key] if given[key] is not None else default
    if settings["num_filters"] < 1 or settings["num_validation"] < 1:
        raise ValueError("--num-filters and --num-validation must be positive.")
    if recorded is None:
        outputs.write_json(path, settings)
    return settings


def training_config(arguments, settings: dict, stage: str) -> DistillationConfig:
    """The stage's :class:`DistillationConfig` from its preset and flags."""
    values = dict(TRAINING_PRESETS[settings["preset"]][stage])
    for key in ("epochs", "max_blocks", "block_size", "blocks_per_chunk"):
        if getattr(arguments, key) is not None:
            values[key] = getattr(arguments, key)
    return DistillationConfig(learning_rate=arguments.learning_rate, batch_size=arguments.batch_size,
                              seed=settings["seed"], **values)


def build_pools(settings: dict, data_root) -> tuple:
    """``(training_pool, validation_pool)`` from the settings."""
    pool = build_image_pool(
        data_root, sessions=settings["pool_sessions"],
        max_images_per_session=settings["max_images_per_session"], seed=settings["seed"],
    )
    return split_pool(pool, settings["num_validation"], seed=settings["seed"])


def save_array(path: Path, array: np.ndarray) -> None:
    """Writes a .npy file atomically."""
    def writer(temporary):
        with open(temporary, "wb") as stream:
            np.save(stream, array)

    outputs.write_atomically(path, writer)


class TeacherCache:
    """The teacher's responses (all 219 outputs), computed once and kept as .npy files.

    Neurons share the files, so the teacher runs once per image however many
    neurons are distilled into the same ``--out``.
    """

    def __init__(self, output_dir: Path, data_root, batch_size: int = 64):
        self.folder = Path(output_dir) / "teacher_responses"
        self.data_root = data_root
        self.batch_size = batch_size
        self._teacher = None

    def _compute(self, key: str, load_images_function) -> np.ndarray:
        path = self.folder / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        if self._teacher is None:
            self._teacher = load_teacher_model(self.data_root)
        responses = predict_teacher(self._teacher, load_images_function(), self.batch_size)
        save_array(path, responses.astype(np.float32))
        return responses

    def pool_block(self, pool, block_slice: slice, key: str) -> np.ndarray:
        """Responses ``(n, 219)`` to the pool entries ``block_slice``."""
        positions = np.arange(block_slice.start, block_slice.stop)
        return self._compute(key, lambda: pool.load(positions))

    def block_targets(self, pool, config: DistillationConfig, column: int):
        """``block_targets(block_index)`` for :func:`classes.training.distillation.distill`."""
        from classes.training.distillation import block_slices

        slices = block_slices(len(pool), config.block_size)

        def targets(block_index: int) -> np.ndarray:
            key = f"train_{pool.fingerprint()}_block{config.block_size}_{block_index:05d}"
            return self.pool_block(pool, slices[block_index], key)[:, column]

        return targets

    def validation(self, validation_pool) -> np.ndarray:
        """Responses ``(n, 219)`` to the whole validation pool."""
        return self.pool_block(validation_pool, slice(0, len(validation_pool)),
                               f"validation_{validation_pool.fingerprint()}")

    def held_out(self, session_id: str, count: int | None) -> np.ndarray:
        """Responses ``(n, 219)`` to the session's held-out half (first ``count`` images)."""
        numbers = held_out_image_numbers(session_id, count)
        return self._compute(
            f"heldout_{session_id}_{len(numbers)}",
            lambda: recenter_images(load_images(session_id, numbers, data_root=self.data_root)),
        )


def held_out_image_numbers(session_id: str, count: int | None) -> np.ndarray:
    """1-based numbers of the held-out half's images used for scoring."""
    _, evaluation = held_out_indices(session_id)
    numbers = evaluation + 1
    return numbers if count is None else numbers[:count]


def remove_stage_folder(folder: Path) -> None:
    """Deletes a stage's checkpoints (``--restart``); only files this package writes."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and (path.suffix in (".keras", ".json") or path.name.endswith(".part")):
            path.unlink()

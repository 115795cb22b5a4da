"""Training one ensemble member across recording sessions (SPEC section 4).

Schedule, per member (seed 31490 + i):

- 5 epochs; an epoch visits every training session once, in a shuffled
  order; in epoch ``e`` (0-based) each session is trained for ``e + 1``
  passes over its images;
- SGD with momentum 0.75, gradients clipped at 0.5 (per value), learning
  rate 2.0 decayed by x0.85 per epoch (:mod:`classes.ensemble.optimization`);
- each session has its own neurons, so the readout (``mixing_stage``,
  ``spatial_pool_stage``) is re-initialised before training on it, and the
  responses are z-scored per neuron; a session with N neurons trains the
  first N of the 200 readout outputs (a masked mean squared error);
- after every session the validation score is computed (session 210224:
  median noise-corrected R2 of a cross-validated ridge mapping from the
  member's embeddings; :mod:`classes.ensemble.training_data`) and the
  weights with the best score are kept.

A checkpoint is written after every session (weights, optimizer slots and
progress, in a :class:`classes.training.checkpoints.RunFolder`), so an
interrupted run resumes where it stopped and, on the same device, continues
exactly as an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from classes.ensemble.architecture import MemberConfig, build_member, member_seed, reset_readout
from classes.ensemble.files import member_file_name, save_member
from classes.ensemble.optimization import (
    PAPER_SCHEDULE,
    TrainingSchedule,
    make_optimizer,
    make_strategy,
    make_train_step,
    train_pass,
    zero_readout_momentum,
)
from classes.ensemble.training_data import (
    SessionData,
    ValidationData,
    validation_score,
    zscored_targets,
)
from classes.runtime.outputs import write_json
from classes.runtime.quiet_tensorflow import keras, tf
from classes.training.checkpoints import RunFolder

# Targets are z-scored, so a loss far above 1 means the weights blew up.
DIVERGED_LOSS = 1e3
WEIGHTS_PREFIX = "weights_step"
OPTIMIZER_PREFIX = "optimizer_step"


@dataclass
class TrainingState:
    """Progress of one member, saved with every checkpoint."""

    member_index: int
    epoch: int = 0
    next_session: int = 0
    sessions_done: int = 0
    best_score: float | None = None
    best_at: list | None = None
    weights_file: str | None = None
    best_weights_file: str | None = None
    finished: bool = False
    history: list = field(default_factory=list)


@dataclass
class MemberTrainer:
    """A member with what trains it: optimizer, traced step and checkpoint folder."""

    member_index: int
    seed: int
    config: MemberConfig
    schedule: TrainingSchedule
    strategy: object
    run: RunFolder
    member: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: Callable


def member_run_folder(out_dir, member_index: int) -> RunFolder:
    """The checkpoint folder of one member: ``<out_dir>/checkpoints/member<i>``."""
    folder = Path(out_dir) / "checkpoints" / f"member{member_index}"
    return RunFolder(folder, (WEIGHTS_PREFIX, OPTIMIZER_PREFIX),
                     remedy=f"delete {folder} to start this member afresh")


def _optimizer_file(sessions_done: int) -> str:
    return f"{OPTIMIZER_PREFIX}{sessions_done:04d}.npz"


def _save_checkpoint(trainer: MemberTrainer, state: TrainingState, improved: bool) -> None:
    """Writes weights and optimizer slots under step-numbered names, then the
    state that names them (which removes the files no longer named)."""
    step = state.sessions_done
    weights_name = f"{WEIGHTS_PREFIX}{step:04d}.weights.h5"
    trainer.run.write_file(weights_name, trainer.member.save_weights)
    slots = {f"slot{k:04d}": np.asarray(v) for k, v in enumerate(trainer.optimizer.variables)}
    trainer.run.write_file(_optimizer_file(step), lambda path: np.savez(path, **slots))
    state.weights_file = weights_name
    if improved:
        state.best_weights_file = weights_name
    trainer.run.commit(asdict(state), [state.weights_file, state.best_weights_file, _optimizer_file(step)])


def _load_checkpoint(run: RunFolder, member, optimizer, member_index: int) -> TrainingState:
    """Restores the member and optimizer from the latest checkpoint, if any.

    Returns:
        The saved progress, or a fresh :class:`TrainingState`.

    Raises:
        ValueError: the state is unreadable, belongs to another member, or
            its files do not fit the member.
        FileNotFoundError: a file the state names is missing.
    """
    state = run.read_state(parse=lambda data: TrainingState(**data))
    if state is None:
        return TrainingState(member_index)
    run.check_settings(asdict(state), {"member_index": member_index})
    if state.weights_file is None:
        return state
    weights = run.named_file(state.weights_file)
    slots_path = run.named_file(_optimizer_file(state.sessions_done))
    try:
        member.load_weights(weights)
    except Exception as error:  # Keras raises many types for a mismatched file
        raise ValueError(
            f"Could not restore {weights} ({type(error).__name__}: {error}); was it written "
            "for another member configuration? Delete the checkpoint or match --tiny."
        ) from None
    with np.load(slots_path) as saved:
        values = [saved[key] for key in sorted(saved.files)]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{slots_path} holds {len(values)} optimizer slots; expected "
                         f"{len(optimizer.variables)}.")
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
    return state


def _start_member(member_index: int, seed: int, config: MemberConfig, schedule: TrainingSchedule,
                  strategy_name: str, out_dir: Path) -> tuple[MemberTrainer, TrainingState]:
    """Builds the member in the strategy's scope and restores its checkpoint."""
    strategy = make_strategy(strategy_name)
    run = member_run_folder(out_dir, member_index)
    with strategy.scope():
        member = build_member(config, seed=seed, name=f"ensemble_member{member_index}")
        optimizer = make_optimizer(member, schedule)
        state = _load_checkpoint(run, member, optimizer, member_index)
        step = make_train_step(member, optimizer, strategy)
    trainer = MemberTrainer(member_index, seed, config, schedule, strategy, run, member, optimizer, step)
    return trainer, state


def _session_order(num_sessions: int, seed: int, epoch: int) -> list[int]:
    return [int(k) for k in np.random.default_rng([seed, epoch]).permutation(num_sessions)]


def _session_arrays(data: SessionData, session_id: str, config: MemberConfig):
    """A session's features and z-scored targets, checked against the member.

    Returns:
        ``(features, targets)``: float32 ``(num_images, *feature_shape)`` and
        ``(num_images, num_outputs)``.
    """
    targets = zscored_targets(data.responses, config.num_outputs)
    features = np.asarray(data.features, dtype=np.float32)
    if features.shape[1:] != config.feature_shape or len(features) != len(targets):
        raise ValueError(
            f"Session {session_id}: features {features.shape} do not fit the member's input "
            f"{config.feature_shape} or the {len(targets)} images of its responses."
        )
    return features, targets


def _train_session(trainer: MemberTrainer, state: TrainingState, session_ids: list[str],
                   load_session: Callable[[str], SessionData], validation: ValidationData) -> bool:
    """Trains the state's next session, scores the member and advances ``state``.

    Returns:
        Whether the validation score is the best so far.

    Raises:
        ValueError: the session does not fit the member, or the loss diverged.
    """
    epoch, position, schedule = state.epoch, state.next_session, trainer.schedule
    session_id = session_ids[_session_order(len(session_ids), trainer.seed, epoch)[position]]
    features, targets = _session_arrays(load_session(session_id), session_id, trainer.config)
    generator = np.random.default_rng([trainer.seed, epoch, position])
    with trainer.strategy.scope():
        reset_readout(trainer.member, seed=int(generator.integers(2**31)))
        zero_readout_momentum(trainer.member, trainer.optimizer)
        trainer.optimizer.learning_rate.assign(schedule.learning_rate(epoch))
    features_tensor, targets_tensor = tf.constant(features), tf.constant(targets)
    losses = []
    for _ in range(schedule.passes(epoch)):
        order = generator.permutation(len(features))
        losses.append(train_pass(trainer.step, trainer.strategy, features_tensor, targets_tensor, order,
                                 schedule.batch_size))
        if not np.isfinite(losses[-1]) or losses[-1] > DIVERGED_LOSS:
            raise ValueError(
                f"Member {trainer.member_index} diverged in epoch {epoch} on session {session_id} "
                f"(loss {losses[-1]:.3g}; z-scored targets give about 1 at chance). Lower the "
                f"learning rate (now {schedule.learning_rate(epoch):g}); the checkpoint "
                f"before this session is kept in {trainer.run.path}."
            )
    score, _ = validation_score(trainer.member, validation)
    improved = state.best_score is None or score > state.best_score
    if improved:
        state.best_score, state.best_at = score, [epoch, position, session_id]
    state.history.append({
        "epoch": epoch, "position": position, "session": session_id,
        "learning_rate": schedule.learning_rate(epoch), "passes": schedule.passes(epoch),
        "pass_losses": losses, "validation_median_r2": score,
    })
    state.sessions_done += 1
    state.next_session = position + 1
    if state.next_session == len(session_ids):
        state.epoch, state.next_session = epoch + 1, 0
    state.finished = state.epoch >= schedule.num_epochs
    return improved


def train_member(
    member_index: int,
    session_ids: list[str],
    load_session: Callable[[str], SessionData],
    validation: ValidationData,
    out_dir,
    config: MemberConfig,
    schedule: TrainingSchedule = PAPER_SCHEDULE,
    strategy_name: str = "default",
    seed_base: int | None = None,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> dict:
    """Trains (or resumes) one member and saves the best one.

    Args:
        member_index: 0-based; the seed is ``31490 + member_index``.
        session_ids: training sessions.
        load_session: returns a session's :class:`SessionData`, called each
            time the session is trained (so features need not all sit in memory).
        validation: the validation session's data.
        out_dir: writes ``ensemble_model_member<i>.keras`` (best weights),
            ``training_log_member<i>.json`` and ``checkpoints/member<i>/``.
        config: member sizes (must match the features).
        schedule: optimiser and epochs.
        strategy_name: ``"default"`` or ``"mirrored"``.
        seed_base: default 31490.
        stop_after: train at most this many sessions in this call, then
            return (the checkpoint lets a later call resume).
        show_progress: tqdm bar over (epoch, session) steps.

    Returns:
        The training log (also written as JSON), with ``status`` either
        ``"finished"`` or ``"stopped"``.
    """
    if not session_ids:
        raise ValueError("No training sessions given.")
    out_dir = Path(out_dir)
    seed = member_seed(member_index) if seed_base is None else seed_base + member_index
    trainer, state = _start_member(member_index, seed, config, schedule, strategy_name, out_dir)
    total_steps = schedule.num_epochs * len(session_ids)
    progress = tqdm(total=total_steps, initial=min(state.sessions_done, total_steps),
                    desc=f"member {member_index}", disable=not show_progress)
    trained_now = 0
    while not state.finished and state.epoch < schedule.num_epochs:
        if stop_after is not None and trained_now >= stop_after:
            break
        improved = _train_session(trainer, state, session_ids, load_session, validation)
        _save_checkpoint(trainer, state, improved)
        trained_now += 1
        progress.update(1)
        last = state.history[-1]
        progress.set_postfix(loss=f"{last['pass_losses'][-1]:.3f}", val=f"{last['validation_median_r2']:.3f}")
    progress.close()
    return _write_log(trainer, state, session_ids, strategy_name, validation, out_dir)


def _write_log(trainer: MemberTrainer, state: TrainingState, session_ids: list[str], strategy_name: str,
               validation: ValidationData, out_dir: Path) -> dict:
    """Writes the training log and, once training finished, the best member."""
    log = {
        "member_index": trainer.member_index,
        "seed": trainer.seed,
        "status": "finished" if state.finished else "stopped",
        "sessions": list(session_ids),
        "config": asdict(trainer.config),
        "schedule": asdict(trainer.schedule),
        "strategy": strategy_name,
        "validation_session": validation.session_id,
        "validation_label": validation.label,
        "best_validation_median_r2": state.best_score,
        "best_at": state.best_at,
        "history": state.history,
    }
    if state.finished:
        with trainer.strategy.scope():
            best = build_member(trainer.config, name=f"ensemble_member{trainer.member_index}")
            best.load_weights(trainer.run.named_file(state.best_weights_file))
        log["member_file"] = str(save_member(best, out_dir / member_file_name(trainer.member_index)))
    write_json(out_dir / f"training_log_member{trainer.member_index}.json", log)
    return log

"""Training one ensemble member across recording sessions (SPEC section 4).

Schedule, per member (seed 31490 + i):

- 5 epochs; an epoch visits every training session once, in a shuffled
  order; in epoch ``e`` (0-based) each session is trained for ``e + 1``
  passes over its images;
- SGD with momentum 0.75, gradients clipped at 0.5 (per value), learning
  rate 2.0 decayed by x0.85 per epoch;
- each session has its own neurons, so the readout (``mixing_stage``,
  ``spatial_pool_stage``) is re-initialised before training on it, and the
  responses are z-scored per neuron; a session with N neurons trains the
  first N of the 200 readout outputs (a masked mean squared error);
- after every session the validation score is computed (session 210224:
  median noise-corrected R2 of a cross-validated ridge mapping from the
  member's embeddings) and the weights with the best score are kept.

A checkpoint is written after every session (weights, optimizer slots and
progress), so an interrupted run resumes where it stopped and, on the same
device, continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from classes.ensemble.architecture import (
    MemberConfig,
    build_member,
    member_seed,
    readout_variables,
    reset_readout,
)
from classes.ensemble.embeddings import member_embeddings
from classes.ensemble.files import member_file_name, save_member
from classes.runtime.outputs import write_atomically, write_json
from classes.runtime.quiet_tensorflow import keras, tf
from classes.scoring import metrics
from classes.scoring.ridge_mapping import cross_validated_noise_corrected_r2

STRATEGIES = ("default", "mirrored")
# Targets are z-scored, so a loss far above 1 means the weights blew up.
DIVERGED_LOSS = 1e3


@dataclass(frozen=True)
class TrainingSchedule:
    """Optimiser settings and the epoch schedule (defaults: the paper's)."""

    num_epochs: int = 5
    initial_learning_rate: float = 2.0
    decay_per_epoch: float = 0.85
    momentum: float = 0.75
    clipvalue: float = 0.5
    batch_size: int = 64

    def __post_init__(self):
        if self.num_epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"num_epochs and batch_size must be positive; got {self.num_epochs}, {self.batch_size}."
            )
        if self.initial_learning_rate <= 0 or not 0 < self.decay_per_epoch <= 1:
            raise ValueError(
                "initial_learning_rate must be positive and decay_per_epoch in (0, 1]; got "
                f"{self.initial_learning_rate}, {self.decay_per_epoch}."
            )

    def learning_rate(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.initial_learning_rate * self.decay_per_epoch**epoch

    @staticmethod
    def passes(epoch: int) -> int:
        """Passes over each session's images in 0-based ``epoch``."""
        return epoch + 1


@dataclass
class SessionData:
    """One training session's inputs.

    Attributes:
        session_id: e.g. ``"190925"``.
        features: ``(num_images, *feature_shape)`` ResNet50 (or stand-in) maps.
        responses: repeat-averaged ``(num_neurons, num_images)``.
    """

    session_id: str
    features: np.ndarray
    responses: np.ndarray


@dataclass
class ValidationData:
    """The validation session's inputs for the model-selection score.

    Attributes:
        features: ``(num_images, *feature_shape)``.
        means: repeat-averaged responses ``(num_neurons, num_images)``.
        noise_variance: trial variance per neuron ``(num_neurons,)``.
        num_repeats: repeats per image (scalar or per neuron).
        label: how the noise was obtained (e.g. the Poisson approximation).
    """

    session_id: str
    features: np.ndarray
    means: np.ndarray
    noise_variance: np.ndarray
    num_repeats: float | np.ndarray
    label: str = ""
    num_folds: int = 5


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


def make_strategy(name: str = "default"):
    """``"default"``: one device; ``"mirrored"``: tf.distribute.MirroredStrategy
    over every visible GPU (or the CPU when none)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def zscored_targets(responses, num_outputs: int) -> np.ndarray:
    """Per-neuron z-scored responses as targets, padded with NaN.

    Args:
        responses: ``(num_neurons, num_images)``.
        num_outputs: the readout's outputs (200 for the paper's member).

    Returns:
        float32 ``(num_images, num_outputs)``; columns beyond the session's
        neurons, and neurons that never vary, are NaN (left out of the loss).
    """
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim != 2:
        raise ValueError(f"responses must be (num_neurons, num_images); got {responses.shape}.")
    num_neurons, num_images = responses.shape
    if num_neurons > num_outputs:
        raise ValueError(
            f"The session has {num_neurons} neurons but the readout only {num_outputs} outputs."
        )
    if not np.all(np.isfinite(responses)):
        raise ValueError("responses contain NaN or infinite values.")
    std = responses.std(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        zscored = (responses - responses.mean(axis=1, keepdims=True)) / std
    zscored[np.squeeze(std, 1) == 0] = np.nan
    targets = np.full((num_images, num_outputs), np.nan, np.float32)
    targets[:, :num_neurons] = zscored.T
    return targets


def masked_mean_squared_error(targets, predictions):
    """Per-image mean squared error over the outputs whose target is not NaN."""
    valid = tf.math.is_finite(targets)
    difference = tf.where(valid, predictions - tf.where(valid, targets, 0.0), 0.0)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, predictions.dtype), axis=-1), 1.0)
    return tf.reduce_sum(tf.square(difference), axis=-1) / count


def validation_score(member: keras.Model, validation: ValidationData, seed: int = 0):
    """Median noise-corrected R2 of a cross-validated ridge mapping from the
    member's embeddings on the validation session.

    Returns:
        ``(median, per-neuron R2 (num_neurons,))``.
    """
    embeddings = member_embeddings(member, validation.features)
    r2 = cross_validated_noise_corrected_r2(
        embeddings, validation.means, validation.noise_variance, validation.num_repeats,
        num_folds=validation.num_folds, seed=seed,
    )
    return float(np.nanmedian(r2)), r2


def make_optimizer(member, schedule: TrainingSchedule):
    """SGD with momentum and value clipping, built for the member's weights.

    Call inside the strategy's scope so that its slots are distributed too.
    """
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule.initial_learning_rate,
        momentum=schedule.momentum,
        clipvalue=schedule.clipvalue,
    )
    optimizer.build(member.trainable_variables)
    return optimizer


def make_train_step(member, optimizer, strategy):
    """A traced training step on one (distributed) batch; returns its loss.

    Each replica computes the masked MSE of its share of the batch, scaled
    for the global batch; the optimizer sums the replicas' gradients.
    """

    def replica_step(features, targets):
        with tf.GradientTape() as tape:
            per_image = masked_mean_squared_error(targets, member(features, training=True))
            loss = tf.nn.compute_average_loss(per_image)
        gradients = tape.gradient(loss, member.trainable_variables)
        optimizer.apply_gradients(zip(gradients, member.trainable_variables, strict=True))
        return loss

    # reduce_retracing: a session's last, smaller batch should not cost a new trace.
    @tf.function(reduce_retracing=True)
    def step(features, targets):
        losses = strategy.run(replica_step, args=(features, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return step


def _train_pass(step, strategy, features, targets, order, batch_size) -> float:
    """One pass over a session's images in the given order; the mean loss."""
    dataset = (
        tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
        .batch(batch_size)
        .map(lambda batch: (tf.gather(features, batch), tf.gather(targets, batch)))
    )
    total, count = 0.0, 0
    for start, (batch_features, batch_targets) in zip(
        range(0, len(order), batch_size), strategy.experimental_distribute_dataset(dataset),
        strict=True,
    ):
        size = min(batch_size, len(order) - start)
        total += float(step(batch_features, batch_targets)) * size
        count += size
    return total / count


def _zero_readout_momentum(member, optimizer) -> None:
    """Clears the momentum of the freshly reset readout.

    Without this, the previous session's readout gradients would keep
    pushing the new session's readout for a few steps.
    """
    momentums = getattr(optimizer, "momentums", None)
    if not momentums:
        return
    for variable in readout_variables(member):
        slot = momentums[optimizer._get_variable_index(variable)]
        slot.assign(tf.zeros_like(slot))


def _save_checkpoint(member, optimizer, state: TrainingState, folder: Path, improved: bool) -> None:
    """Writes weights and optimizer slots under step-numbered names, then the
    state that points at them, then removes files no longer pointed at; a
    crash at any moment leaves a consistent checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    step = state.sessions_done
    weights_name = f"weights_step{step:04d}.weights.h5"
    write_atomically(folder / weights_name, member.save_weights)
    slots = {f"slot{k:04d}": np.asarray(v) for k, v in enumerate(optimizer.variables)}
    write_atomically(
        folder / f"optimizer_step{step:04d}.npz", lambda path: np.savez(path, **slots)
    )
    state.weights_file = weights_name
    if improved:
        state.best_weights_file = weights_name
    write_json(folder / "state.json", asdict(state))
    keep = {state.weights_file, state.best_weights_file, f"optimizer_step{step:04d}.npz"}
    for path in folder.iterdir():
        if path.name.startswith(("weights_step", "optimizer_step")) and path.name not in keep:
            path.unlink()


def _load_checkpoint(member, optimizer, folder: Path, member_index: int) -> TrainingState | None:
    state_path = folder / "state.json"
    if not state_path.is_file():
        return None
    try:
        state = TrainingState(**json.loads(state_path.read_text()))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{state_path} is not a readable checkpoint state ({error}); delete {folder} to "
            "start this member afresh."
        ) from None
    if state.member_index != member_index:
        raise ValueError(f"{state_path} belongs to member {state.member_index}, not {member_index}.")
    if state.weights_file is None:
        return state
    weights = folder / state.weights_file
    slots_path = folder / f"optimizer_step{state.sessions_done:04d}.npz"
    if not weights.is_file() or not slots_path.is_file():
        raise FileNotFoundError(
            f"Checkpoint {folder} is incomplete: {weights.name} or {slots_path.name} is missing. "
            f"Delete {folder} to start this member afresh."
        )
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


def _session_order(num_sessions: int, seed: int, epoch: int) -> list[int]:
    return [int(k) for k in np.random.default_rng([seed, epoch]).permutation(num_sessions)]


def train_member(
    member_index: int,
    session_ids: list[str],
    load_session: Callable[[str], SessionData],
    validation: ValidationData,
    out_dir,
    config: MemberConfig,
    schedule: TrainingSchedule = TrainingSchedule(),
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
    from tqdm import tqdm

    if not session_ids:
        raise ValueError("No training sessions given.")
    out_dir = Path(out_dir)
    folder = out_dir / "checkpoints" / f"member{member_index}"
    seed = member_seed(member_index) if seed_base is None else seed_base + member_index
    strategy = make_strategy(strategy_name)
    with strategy.scope():
        member = build_member(config, seed=seed, name=f"ensemble_member{member_index}")
        optimizer = make_optimizer(member, schedule)
        state = _load_checkpoint(member, optimizer, folder, member_index) or TrainingState(member_index)
        step = make_train_step(member, optimizer, strategy)
    num_sessions = len(session_ids)
    total_steps = schedule.num_epochs * num_sessions
    trained_now = 0
    progress = tqdm(total=total_steps, initial=min(state.sessions_done, total_steps),
                    desc=f"member {member_index}", disable=not show_progress)
    while not state.finished and state.epoch < schedule.num_epochs:
        if stop_after is not None and trained_now >= stop_after:
            break
        epoch = state.epoch
        position = state.next_session
        session_id = session_ids[_session_order(num_sessions, seed, epoch)[position]]
        data = load_session(session_id)
        targets = zscored_targets(data.responses, config.num_outputs)
        features = np.asarray(data.features, dtype=np.float32)
        if features.shape[1:] != config.feature_shape or len(features) != len(targets):
            raise ValueError(
                f"Session {session_id}: features {features.shape} do not fit the member's input "
                f"{config.feature_shape} or the {len(targets)} images of its responses."
            )
        step_seed = [seed, epoch, position]
        generator = np.random.default_rng(step_seed)
        with strategy.scope():
            reset_readout(member, seed=int(generator.integers(2**31)))
            _zero_readout_momentum(member, optimizer)
            optimizer.learning_rate.assign(schedule.learning_rate(epoch))
        features_tensor, targets_tensor = tf.constant(features), tf.constant(targets)
        losses = []
        for _ in range(schedule.passes(epoch)):
            order = generator.permutation(len(features))
            losses.append(_train_pass(step, strategy, features_tensor, targets_tensor, order,
                                      schedule.batch_size))
            if not np.isfinite(losses[-1]) or losses[-1] > DIVERGED_LOSS:
                raise ValueError(
                    f"Member {member_index} diverged in epoch {epoch} on session {session_id} "
                    f"(loss {losses[-1]:.3g}; z-scored targets give about 1 at chance). Lower the "
                    f"learning rate (now {schedule.learning_rate(epoch):g}); the checkpoint "
                    f"before this session is kept in {folder}."
                )
        score, _ = validation_score(member, validation)
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
        if state.next_session == num_sessions:
            state.epoch, state.next_session = epoch + 1, 0
        state.finished = state.epoch >= schedule.num_epochs
        _save_checkpoint(member, optimizer, state, folder, improved)
        trained_now += 1
        progress.update(1)
        progress.set_postfix(loss=f"{losses[-1]:.3f}", val=f"{score:.3f}")
    progress.close()

    log = {
        "member_index": member_index,
        "seed": seed,
        "status": "finished" if state.finished else "stopped",
        "sessions": list(session_ids),
        "config": asdict(config),
        "schedule": asdict(schedule),
        "strategy": strategy_name,
        "validation_session": validation.session_id,
        "validation_label": validation.label,
        "best_validation_median_r2": state.best_score,
        "best_at": state.best_at,
        "history": state.history,
    }
    if state.finished:
        with strategy.scope():
            best = build_member(config, name=f"ensemble_member{member_index}")
            best.load_weights(folder / state.best_weights_file)
        log["member_file"] = str(save_member(best, out_dir / member_file_name(member_index)))
    write_json(out_dir / f"training_log_member{member_index}.json", log)
    return log


def poisson_validation(session_id, features, means, num_repeats, num_folds: int = 5) -> ValidationData:
    """Validation data with the Poisson noise approximation.

    The validation session's raw repeats are not released, so its trial
    variance is approximated by the mean count (APPROXIMATE; see
    :func:`classes.scoring.metrics.poisson_noise_variance`) and the repeats by the
    session table's count.
    """
    means = np.asarray(means, dtype=np.float64)
    return ValidationData(
        session_id=str(session_id),
        features=features,
        means=means,
        noise_variance=metrics.poisson_noise_variance(means),
        num_repeats=num_repeats,
        label="approximate (Poisson noise model: trial variance = mean count)",
        num_folds=num_folds,
    )

"""Train ensemble members on the released V4 sessions (SPEC section 4).

Each member (seed 31490 + i) reads ResNet50 ``conv4_block4_out`` features of
every training session's images, trains across sessions with a readout per
session, and keeps the weights with the best validation score on session
210224. A checkpoint is written after every session: run the same command
again to resume an interrupted run.

Commands::

    # the paper's configuration (needs the ResNet50 ImageNet weights file;
    # hours per member on a GPU, impractical on a CPU)
    python -m code_train_ensemble_model.train --out results/ensemble \\
        --resnet50-weights resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5

    # the tiny CI configuration: a 32-channel member on random patch
    # features (NOT ResNet50), 48 images of 2 sessions; about a minute on 2 CPU cores
    python -m code_train_ensemble_model.train --out /tmp/tiny --members 1 --epochs 1 --tiny

Only 12 of the release's 45 image zips are present, so training on this
release uses only the training sessions whose zips are there (190925,
190927, 190928, 190929, 210305, 210322, 210621); the others are listed as
skipped. The validation score uses the Poisson approximation of the trial
variance (the validation session's raw repeats are not released), so it is
approximate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from classes.data.data_root import resolve_data_root
from classes.data.images import available_image_sessions, load_images
from classes.data.responses import load_repeat_averaged, load_training
from classes.data.sessions import SESSIONS, VALIDATION_SESSION, get_session
from classes.ensemble.architecture import (
    FULL_CONFIG,
    NUM_MEMBERS,
    SEED_BASE,
    TINY_CONFIG,
    MemberConfig,
)
from classes.ensemble.optimization import STRATEGIES, TrainingSchedule
from classes.ensemble.taskdriven_features import (
    RANDOM_FEATURES_LABEL,
    build_feature_extractor,
    extract_features,
    random_patch_features,
    resolve_weights_path,
)
from classes.ensemble.training import train_member
from classes.ensemble.training_data import SessionData, ValidationData, poisson_validation
from classes.runtime.outputs import write_atomically, write_json
from classes.training.checkpoints import refuse_changed_settings

TINY_DEFAULTS = {"max_images": 48, "validation_images": 80, "sessions": 2, "learning_rate": 0.05,
                 "batch_size": 16}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m code_train_ensemble_model.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder for members, logs and checkpoints")
    parser.add_argument("--data-root", default=None, help="release folder (default: found automatically)")
    parser.add_argument("--resnet50-weights", default=None,
                        help="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (ImageNet); "
                        "it cannot be downloaded here")
    parser.add_argument("--features", choices=("resnet50", "random"), default=None,
                        help="feature source; 'random' = fixed random patch features, NOT ResNet50 "
                        "(code-path checks only). Default: resnet50, or random with --tiny")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny CI configuration: 32-channel member on 16-channel random features, "
                        f"{TINY_DEFAULTS['max_images']} images of {TINY_DEFAULTS['sessions']} sessions")
    parser.add_argument("--members", type=int, default=NUM_MEMBERS, help="members to train (default 25)")
    parser.add_argument("--first-member", type=int, default=0,
                        help="index of the first member (seed 31490 + index); for parallel jobs")
    parser.add_argument("--epochs", type=int, default=5, help="epochs over the sessions (default 5)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="initial SGD learning rate (default: the paper's 2.0; tiny: 0.05)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default 64)")
    parser.add_argument("--sessions", default=None,
                        help="comma-separated training sessions (default: every training session "
                        "whose image zip is present)")
    parser.add_argument("--max-images", type=int, default=None,
                        help="use at most this many training images per session (first in file order)")
    parser.add_argument("--validation-images", type=int, default=None,
                        help="use at most this many validation images (first in file order)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: 'mirrored' trains on all visible GPUs")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="train at most this many sessions per member in this run, then stop "
                        "(rerun the same command to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    arguments = parser.parse_args(argv)
    for name in ("members", "epochs", "batch_size", "max_images", "validation_images", "stop_after"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if arguments.first_member < 0:
        parser.error(f"--first-member must be non-negative, got {arguments.first_member}")
    if arguments.learning_rate is not None and arguments.learning_rate <= 0:
        parser.error(f"--learning-rate must be positive, got {arguments.learning_rate}")
    return arguments


def choose_sessions(text, data_root, tiny: bool) -> tuple[list[str], list[str]]:
    """Training sessions to use and the notes on those left out."""
    present = set(available_image_sessions(data_root))
    if text:
        chosen = [get_session(item.strip()).session_id for item in text.split(",") if item.strip()]
        for session in chosen:
            if SESSIONS[session].split != "train":
                raise ValueError(f"--sessions: {session} is a {SESSIONS[session].split} session, "
                                 "not a training session.")
            if session not in present:
                raise FileNotFoundError(
                    f"--sessions: the images of {session} (data_V4_responses/images/"
                    f"images_{session}.zip) are not in this release; training sessions with "
                    f"images here: {', '.join(s for s in sorted(present) if SESSIONS[s].split == 'train')}."
                )
        return chosen, []
    training = [session for session, row in SESSIONS.items() if row.split == "train"]
    chosen = [session for session in training if session in present]
    skipped = [session for session in training if session not in present]
    if not chosen:
        raise FileNotFoundError("No training session's image zip is in this release.")
    notes = [f"{len(skipped)} of {len(training)} training sessions skipped: their image zips are not "
             f"in the release ({', '.join(skipped)})"] if skipped else []
    if tiny:
        # The smallest sessions keep the CI run short.
        chosen = sorted(chosen, key=lambda s: SESSIONS[s].num_images)[: TINY_DEFAULTS["sessions"]]
    return chosen, notes


class FeatureSource:
    """Features of a session's images: ResNet50 (cached on disk) or random."""

    def __init__(self, kind: str, weights, channels: int, cache_dir: Path, data_root):
        self.kind = kind
        self.channels = channels
        self.cache_dir = cache_dir
        self.data_root = data_root
        self.extractor = None
        if kind == "resnet50":
            self.extractor = build_feature_extractor("resnet50", resolve_weights_path(weights))

    @property
    def label(self) -> str:
        return "ResNet50 conv4_block4_out (ImageNet)" if self.kind == "resnet50" else RANDOM_FEATURES_LABEL

    def __call__(self, session_id: str, image_numbers: np.ndarray) -> np.ndarray:
        if self.kind == "random":
            images = load_images(session_id, image_numbers, data_root=self.data_root)
            return random_patch_features(images, num_channels=self.channels)
        # ResNet50 features are costly: keep them as float16 on disk, per session and image set.
        key = f"{image_numbers[0]}-{image_numbers[-1]}-{len(image_numbers)}"
        path = self.cache_dir / f"resnet50_{session_id}_{key}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
        images = load_images(session_id, image_numbers, data_root=self.data_root)
        features = extract_features(self.extractor, images, show_progress=True).astype(np.float16)
        write_atomically(path, lambda temporary: np.save(temporary, features))
        return features


def check_run_config(out_dir: Path, run_config: dict) -> None:
    """Records a run's settings in ``run_config.json``, or refuses to resume
    a run made with other settings.

    Raises:
        ValueError: ``out_dir`` holds a run made with other settings.
    """
    path = out_dir / "run_config.json"
    if path.is_file():
        refuse_changed_settings(json.loads(path.read_text()), run_config, out_dir,
                                "resume with the same arguments or choose another --out")
    else:
        write_json(path, run_config)


def member_settings(arguments) -> tuple[str, MemberConfig, TrainingSchedule, dict]:
    """Feature source, member sizes, schedule and image limits from the arguments.

    Raises:
        ValueError: ``--tiny`` with ResNet50 features.
    """
    tiny = arguments.tiny
    kind = arguments.features or ("random" if tiny else "resnet50")
    if tiny and kind == "resnet50":
        raise ValueError("--tiny trains a 16-channel member on random features; it cannot take "
                         "ResNet50 features. Drop --tiny or --features resnet50.")
    defaults = TINY_DEFAULTS if tiny else {}
    schedule = TrainingSchedule(
        num_epochs=arguments.epochs,
        initial_learning_rate=arguments.learning_rate or defaults.get("learning_rate", 2.0),
        batch_size=arguments.batch_size or defaults.get("batch_size", 64),
    )
    limits = {"max_images": arguments.max_images or defaults.get("max_images"),
              "validation_images": arguments.validation_images or defaults.get("validation_images")}
    return kind, TINY_CONFIG if tiny else FULL_CONFIG, schedule, limits


def load_validation(source: FeatureSource, data_root, validation_images) -> ValidationData:
    """The validation session's features and responses (Poisson noise model)."""
    means = load_repeat_averaged(VALIDATION_SESSION, data_root)
    validation_numbers = np.arange(1, means.shape[1] + 1)
    if validation_images:
        means, validation_numbers = means[:, :validation_images], validation_numbers[:validation_images]
    return poisson_validation(
        VALIDATION_SESSION, source(VALIDATION_SESSION, validation_numbers), means,
        get_session(VALIDATION_SESSION).num_repeats,
    )


def report_member(index: int, log: dict, validation: ValidationData) -> None:
    """Prints one member's status and best validation score."""
    best = log["best_validation_median_r2"]
    print(f"member {index}: {log['status']}; best validation median noise-corrected R2 "
          f"{best:.3f} ({validation.label}) at epoch {log['best_at'][0]}, session "
          f"{log['best_at'][2]}" + (f"; saved {log['member_file']}" if "member_file" in log else
                                     "; rerun the same command to resume"))


def run(arguments) -> list[dict]:
    started = time.perf_counter()
    data_root = resolve_data_root(arguments.data_root)
    out_dir = Path(arguments.out).expanduser()
    kind, config, schedule, limits = member_settings(arguments)
    sessions, notes = choose_sessions(arguments.sessions, data_root, arguments.tiny)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_run_config(out_dir, {
        "features": kind, "config": asdict(config), "schedule": asdict(schedule),
        "sessions": sessions, **limits, "validation_session": VALIDATION_SESSION,
    })
    source = FeatureSource(kind, arguments.resnet50_weights, config.feature_shape[2],
                           out_dir / "features", data_root)
    print(f"data root: {data_root}")
    print(f"features: {source.label}")
    print(f"training sessions ({len(sessions)}): {', '.join(sessions)}")
    for note in notes:
        print(f"note: {note}")

    def load_session(session_id: str) -> SessionData:
        responses, image_numbers = load_training(session_id, data_root)
        if limits["max_images"]:
            responses, image_numbers = responses[:, :limits["max_images"]], image_numbers[:limits["max_images"]]
        return SessionData(session_id, source(session_id, image_numbers), responses)

    validation = load_validation(source, data_root, limits["validation_images"])
    logs = []
    for index in range(arguments.first_member, arguments.first_member + arguments.members):
        log = train_member(
            index, sessions, load_session, validation, out_dir, config, schedule,
            strategy_name=arguments.strategy, seed_base=SEED_BASE,
            stop_after=arguments.stop_after, show_progress=not arguments.no_progress,
        )
        log["features"] = source.label
        log["notes"] = notes
        write_json(out_dir / f"training_log_member{index}.json", log)
        logs.append(log)
        report_member(index, log, validation)
    print(f"time: {time.perf_counter() - started:.1f} s")
    return logs


def main(argv=None) -> list[dict]:
    arguments = parse_arguments(argv)
    try:
        return run(arguments)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

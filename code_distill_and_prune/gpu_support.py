"""Helpers of ``code_distill_and_prune/gpu_distill.py``: clock, log, teacher, student, images on the device.

Nothing here imports TensorFlow or Keras: the GPU machines have PyTorch only.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from classes.compact.architecture import (
    ModelId,
    load_nums_filters,
    load_weights_npy,
    load_weights_npz,
    model_file,
    model_id,
    nums_filters_from_weights,
)
from classes.compact.torch_conversion import torch_model_from_keras_weights
from classes.compact.torch_model import require_torch
from classes.data.data_root import sha256_of_file
from classes.data.preprocessing import RGB_MEANS
from classes.runtime.outputs import write_atomically
from classes.scoring.metrics import raw_r2
from classes.training.student import parse_student_filters, seeded_student_weights
from classes.training.torch_trainer import TorchTrainer

LABEL_BATCH = 500  # images per teacher (and validation) forward pass


def _seconds_since_process_start() -> float:
    """Read off /proc (Linux): 0 where that fails or gives an implausible value."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        elapsed = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return elapsed if 0.0 <= elapsed < 600.0 else 0.0


# Start-up before this module's import (interpreter, torch) counts against --seconds.
_IMPORTED, _BEFORE_IMPORT = time.perf_counter(), _seconds_since_process_start()


def process_seconds() -> float:
    """Wall seconds since this process started (interpreter start-up and imports included, where /proc says)."""
    return _BEFORE_IMPORT + time.perf_counter() - _IMPORTED


class Log:
    """Prints progress lines at once and keeps them for ``gpu_distill_log.txt``."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def __call__(self, text: str) -> None:
        line = f"[{process_seconds():7.1f} s] {text}"
        print(line, flush=True)
        self.lines.append(line)

    def save(self) -> None:
        write_atomically(self.path, lambda target: Path(target).write_text("\n".join(self.lines) + "\n"))


def teacher_id(text: str) -> ModelId:
    """``"190923/0"`` or ``"190923/neuron0"`` -> ModelId (classes.compact.choice imports Keras)."""
    session, separator, neuron = str(text).strip().partition("/")
    if not separator or not neuron.removeprefix("neuron").isdigit():
        raise ValueError(f"--teacher: cannot read {text!r} as session/neuron, e.g. 190923/0.")
    return model_id(session, int(neuron.removeprefix("neuron")))


def initial_weights(arguments) -> tuple[list[np.ndarray], dict]:
    """The student's initial weights (``--student-weights`` or seeded) and how they were made.

    Raises:
        ValueError: the file's filter counts are not ``--student-filters``.
    """
    counts = parse_student_filters(arguments.student_filters)
    if arguments.student_weights is None:
        return seeded_student_weights(counts, arguments.seed), {"source": "seeded NumPy Glorot uniform",
                                                         "seed": arguments.seed}
    weights = load_weights_npz(arguments.student_weights)
    if nums_filters_from_weights(weights) != counts:
        raise ValueError(f"--student-weights {arguments.student_weights} has filters "
                         f"{nums_filters_from_weights(weights)}; --student-filters says {counts}.")
    return weights, {"source": str(arguments.student_weights), "sha256": sha256_of_file(arguments.student_weights)}


def load_teacher(identifier: ModelId, data_root, device):
    """The released compact model as a Torch model on ``device`` (eval mode) and its identity."""
    weights = load_weights_npy(identifier, data_root)
    counts = load_nums_filters(identifier, data_root)
    if nums_filters_from_weights(weights) != counts:
        raise ValueError(f"Teacher {identifier}: weights with filters {nums_filters_from_weights(weights)}, "
                         f"nums_filters says {counts}.")
    model = torch_model_from_keras_weights(weights).to(device).eval()
    describe = {"kind": "compact", "model": str(identifier), "nums_filters": counts,
                "weight_sha256": sha256_of_file(model_file(identifier, "npy", data_root))}
    return model, describe


def to_input(raw: np.ndarray, device):
    """Raw uint8 NHWC images -> recentred float32 NCHW on ``device`` (a new tensor: ``raw`` may be reused)."""
    torch = require_torch()
    images = torch.from_numpy(raw).to(device).permute(0, 3, 1, 2).float()
    return (images - torch.from_numpy(RGB_MEANS).to(device).view(1, 3, 1, 1)).contiguous()


def label(teacher, images):
    """The teacher's responses, float tensor ``(N,)`` on the images' device."""
    torch = require_torch()
    with torch.no_grad():
        return torch.cat([teacher(images[start:start + LABEL_BATCH])[:, 0]
                          for start in range(0, len(images), LABEL_BATCH)])


def validation_r2(trainer: TorchTrainer, validation) -> float | None:
    """R2 (squared Pearson r) of the student (inference mode) vs the teacher; None when not finite."""
    images, targets = validation
    outputs = trainer.predict(images, LABEL_BATCH).double().cpu().numpy()
    if not np.all(np.isfinite(outputs)):
        return None
    r2 = float(raw_r2(outputs[None], targets[None])[0])
    return 0.0 if math.isnan(r2) else r2  # a constant output correlates with nothing


def device_lines(device, tf32: str) -> list[str]:
    """What the run runs on: Python, PyTorch, CUDA, the CPUs, the device."""
    torch = require_torch()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    lines = [f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"cuDNN {cudnn}, {os.cpu_count()} CPUs ({usable} usable)",
             f"device {device}; float32 precision: {tf32}"]
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        lines.append(f"GPU {properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
                     f"{properties.multi_processor_count} SMs, capability {properties.major}.{properties.minor}")
    return lines


def choose_device(name: str):
    """``auto``: CUDA when PyTorch sees a GPU, else the CPU."""
    torch = require_torch()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no GPU here; use --device cpu or auto.")
    return torch.device(name)

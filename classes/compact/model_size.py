"""Model sizes: parameters of compact models and of the ensemble (Fig. 1i).

Compact-model counts follow from ``[K0..K4]`` alone and equal Keras
``count_params()`` (BN moving statistics included, as ``summary()`` counts
them). The ensemble's weights are not in the release, but its Keras summary
is (``data_ensemble_model/ensemble_model_summary.txt``): it holds the
ResNet50 stage's summary and one member's.
"""

from __future__ import annotations

import re

import numpy as np

from classes.data.data_root import resolve_data_root

NUM_ENSEMBLE_MEMBERS = 25
_COUNT = re.compile(r"^\s*(Total|Trainable|Non-trainable|Optimizer) params:\s*([\d,]+)")


def compact_parameter_count(nums_filters) -> np.ndarray | int:
    """Parameters of compact models from their filter counts.

    Per layer: layer 0 has 5*5*3*K0 kernel + K0 bias; layer i (1..4) has
    5*5*K_{i-1} depthwise + K_{i-1}*K_i pointwise + K_i bias; every layer's
    BN has 4*K_i (gamma, beta, moving mean, moving variance); the readout
    has 28*28*K4 + 1.

    Args:
        nums_filters: ``[K0..K4]`` or ``(num_models, 5)``.

    Returns:
        int or int array ``(num_models,)``.
    """
    counts = np.asarray(nums_filters, dtype=np.int64)
    if counts.shape[-1] != 5:
        raise ValueError(f"nums_filters must end in 5 counts; got shape {counts.shape}.")
    k = [counts[..., layer] for layer in range(5)]
    total = 75 * k[0] + k[0] + 4 * k[0]
    for layer in range(1, 5):
        total = total + 25 * k[layer - 1] + k[layer - 1] * k[layer] + k[layer] + 4 * k[layer]
    total = total + 28 * 28 * k[4] + 1
    return int(total) if np.ndim(total) == 0 else total


def parse_summary_counts(text: str) -> list[dict]:
    """Reads the parameter lines of each model in a Keras ``summary()`` text.

    Returns:
        One dict per model summary found, keys ``total``, ``trainable``,
        ``non_trainable`` and (when present) ``optimizer``.
    """
    summaries, current = [], {}
    for line in text.splitlines():
        match = _COUNT.match(line)
        if not match:
            continue
        key = match.group(1).lower().replace("-", "_")
        if key == "total" and current:
            summaries.append(current)
            current = {}
        current[key] = int(match.group(2).replace(",", ""))
    if current:
        summaries.append(current)
    return summaries


def ensemble_parameter_count(data_root=None) -> dict:
    """The ensemble's parameters, from the release's summary text.

    The ensemble is the ResNet50 stage (shared by all members) plus 25
    members. A member's summary 'Total params' includes the optimizer's
    slots; the weights proper are trainable + non-trainable.

    Returns:
        dict: ``resnet50_stage``, ``member`` (weights proper),
        ``member_summary_total`` (as printed, optimizer slots included),
        ``num_members`` and ``ensemble`` (stage + 25 members).

    Raises:
        FileNotFoundError: the summary file is missing.
        ValueError: the file does not hold the two expected summaries.
    """
    path = resolve_data_root(data_root) / "data_ensemble_model" / "ensemble_model_summary.txt"
    if not path.is_file():
        raise FileNotFoundError(f"Missing ensemble summary: {path}.")
    summaries = parse_summary_counts(path.read_text(encoding="utf-8"))
    if len(summaries) != 2:
        raise ValueError(
            f"{path} should hold two summaries (ResNet50 stage, one member); found {len(summaries)}."
        )
    stage, member = summaries
    member_weights = member["trainable"] + member["non_trainable"]
    return {
        "resnet50_stage": stage["total"],
        "member": member_weights,
        "member_summary_total": member["total"],
        "num_members": NUM_ENSEMBLE_MEMBERS,
        "ensemble": stage["total"] + NUM_ENSEMBLE_MEMBERS * member_weights,
    }

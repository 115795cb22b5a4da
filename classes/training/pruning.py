"""Pruning a distilled compact model down to the filters it needs (SPEC section 6).

Layers are pruned last first, each from statistics of held-out images
(:mod:`classes.training.pruning_statistics`):

- Layer 4: each filter's contribution to the output is its activity times
  its readout map, summed over space. Filters are sorted by the standard
  deviation of their contribution over the images, and the weakest are
  dropped one at a time while the squared correlation between the sum of
  the remaining contributions and the teacher's responses stays above
  ``0.9 x`` its value with every filter kept.
- Layers 3, 2, 1, 0: through the next separable layer. Input filter ``j`` of
  layer ``i+1`` (filter ``j`` of layer ``i``) scores the variance of its
  depthwise output times the squared norm of its pointwise weights (to the
  layer's kept output filters). A binary search finds the largest number
  ``m`` such that removing the ``m`` weakest keeps the *fraction of
  variance* of layer ``i+1``'s pre-BN output above 0.9, where

      fraction = 1 - sum (y_full - y_pruned)^2 / sum (y_full - mean_c)^2,

  both sums over the held-out images, every spatial position and every kept
  output filter ``c`` of layer ``i+1``; ``y_full`` is layer ``i+1``'s pre-BN
  output (bias included) with every filter of layer ``i`` present,
  ``y_pruned`` the same with the removed filters' depthwise kernels and
  pointwise rows gone, and ``mean_c`` the mean of ``y_full`` of filter ``c``
  over images and positions. Layer 0 is pruned through layer 1's depthwise
  filters in the same way.

Every layer keeps at least 3 filters (all of them when it has fewer). The
smaller network is then rebuilt with the kept weights
(:func:`classes.training.pruning_rebuild.rebuild_pruned_model`) and retrained on the
teacher's responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from classes.compact.architecture import NUM_LAYERS
from classes.compact.tools import get_kernels, nums_filters_of
from classes.runtime.quiet_tensorflow import keras
from classes.training.pruning_rebuild import rebuild_pruned_model
from classes.training.pruning_statistics import (
    PruningStatistics,
    collect_pruning_statistics,
    depthwise_variance,
    output_variance_total,
    removed_energy,
)

MIN_FILTERS = 3
CORRELATION_FRACTION = 0.9
VARIANCE_FRACTION = 0.9


@dataclass
class PruningResult:
    """Which filters stay, and why.

    Attributes:
        kept: five sorted int arrays, the kept filters of layers 0..4.
        details: per layer, a dict: ``order`` (filters weakest first),
            ``scores`` (the sorting score of each filter), ``num_removed``,
            and the criterion at the chosen cut (layer 4: ``r2_full`` and
            ``r2_kept``; layers 0-3: ``fraction_of_variance``).
    """

    kept: list
    details: list = field(default_factory=list)

    @property
    def nums_filters(self) -> list[int]:
        return [len(indices) for indices in self.kept]

    def to_json(self) -> dict:
        """``nums_filters``, ``kept`` and per layer its details, as JSON-ready values.

        A layer's ``order`` is written as ``order_weakest_first``.
        """
        layers = []
        for details in self.details:
            layer = {key: value for key, value in details.items() if key not in ("order", "scores")}
            layer["order_weakest_first"] = np.asarray(details["order"]).tolist()
            layer["scores"] = np.asarray(details["scores"]).tolist()
            layers.append(layer)
        return {"nums_filters": self.nums_filters, "kept": [np.asarray(indices).tolist() for indices in self.kept],
                "layers": layers}


def squared_correlation(first, second) -> float:
    """Squared Pearson correlation of two vectors; 0 when either is constant."""
    first = np.asarray(first, np.float64) - np.mean(first)
    second = np.asarray(second, np.float64) - np.mean(second)
    denominator = np.sum(first**2) * np.sum(second**2)
    if denominator <= 0:
        return 0.0
    return float(np.sum(first * second) ** 2 / denominator)


def largest_passing_count(passes, max_count: int) -> int:
    """Binary search for the largest ``m`` in ``0..max_count`` with ``passes(m)``.

    ``passes`` must be monotone (true up to some ``m`` and false after);
    ``passes(0)`` is taken as true without calling it. Calls ``passes`` about
    ``log2(max_count + 1)`` times.
    """
    if max_count < 0:
        raise ValueError(f"max_count must be >= 0; got {max_count}.")
    low, high = 0, int(max_count)
    while low < high:
        middle = (low + high + 1) // 2
        if passes(middle):
            low = middle
        else:
            high = middle - 1
    return low


def prune_last_layer(
    contributions, teacher_responses, min_filters: int = MIN_FILTERS,
    fraction: float = CORRELATION_FRACTION,
) -> tuple[np.ndarray, dict]:
    """Chooses the layer-4 filters to keep.

    Args:
        contributions: ``(num_images, K4)``, from :class:`PruningStatistics`.
        teacher_responses: ``(num_images,)`` on the same images.
        min_filters: never keep fewer (all when K4 is smaller).
        fraction: the squared correlation must stay above ``fraction`` times
            its unpruned value.

    Returns:
        ``(kept indices sorted, details)``.
    """
    contributions = np.asarray(contributions, np.float64)
    teacher_responses = np.asarray(teacher_responses, np.float64).reshape(-1)
    if contributions.ndim != 2 or len(contributions) != len(teacher_responses):
        raise ValueError(
            f"contributions {contributions.shape} must be (num_images, K4) with one "
            f"teacher response per image ({teacher_responses.shape})."
        )
    scores = contributions.std(axis=0)
    order = np.argsort(scores, kind="stable")
    r2_full = squared_correlation(contributions.sum(axis=1), teacher_responses)
    num_removed, r2_kept = 0, r2_full
    for count in range(1, max(0, len(order) - min_filters) + 1):
        r2 = squared_correlation(contributions[:, order[count:]].sum(axis=1), teacher_responses)
        if not r2 > fraction * r2_full:
            break
        num_removed, r2_kept = count, r2
    details = {"order": order, "scores": scores, "num_removed": num_removed,
               "r2_full": r2_full, "r2_kept": r2_kept}
    return np.sort(order[num_removed:]), details


def fraction_of_variance(
    statistics: PruningStatistics, layer: int, pointwise_rows, kept_outputs, removed
) -> float:
    """Fraction of variance of layer ``layer``'s pre-BN output left when inputs go.

    ``1 - sum (y_full - y_pruned)^2 / sum (y_full - mean_c)^2`` over images,
    positions and the kept output filters (see the module docstring).

    Args:
        layer: the separable layer 1..4 whose input filters are removed.
        pointwise_rows: ``(K_{layer-1}, num_kept_outputs)``.
        kept_outputs: the layer's kept output filters.
        removed: input filters removed.
    """
    total = output_variance_total(statistics, layer, kept_outputs)
    if total <= 0:
        return 1.0 if len(removed) == 0 else -np.inf
    return 1.0 - removed_energy(statistics, layer, pointwise_rows, removed) / total


def prune_through_next_layer(
    statistics: PruningStatistics, layer: int, pointwise, kept_outputs,
    min_filters: int = MIN_FILTERS, fraction: float = VARIANCE_FRACTION,
) -> tuple[np.ndarray, dict]:
    """Chooses the filters of layer ``layer`` (0..3) to keep.

    Args:
        statistics: from :func:`collect_pruning_statistics`.
        layer: 0..3; pruned through layer ``layer + 1``.
        pointwise: layer ``layer + 1``'s pointwise kernel ``(1, 1, K_layer, K_{layer+1})``.
        kept_outputs: kept filters of layer ``layer + 1``.

    Returns:
        ``(kept indices sorted, details)``.
    """
    following = layer + 1
    rows = np.asarray(pointwise, np.float64)[0, 0][:, np.asarray(kept_outputs, np.int64)]
    scores = depthwise_variance(statistics, following) * np.sum(rows**2, axis=1)
    order = np.argsort(scores, kind="stable")

    def passes(count: int) -> bool:
        return fraction_of_variance(statistics, following, rows, kept_outputs, order[:count]) > fraction

    num_removed = largest_passing_count(passes, max(0, len(order) - min_filters))
    details = {
        "order": order, "scores": scores, "num_removed": num_removed,
        "fraction_of_variance": fraction_of_variance(
            statistics, following, rows, kept_outputs, order[:num_removed]
        ),
    }
    return np.sort(order[num_removed:]), details


def select_filters(
    statistics: PruningStatistics, pointwise_kernels, teacher_responses,
    min_filters: int = MIN_FILTERS, correlation_fraction: float = CORRELATION_FRACTION,
    variance_fraction: float = VARIANCE_FRACTION,
) -> PruningResult:
    """Runs the whole selection, layer 4 first, then 3, 2, 1, 0.

    Args:
        pointwise_kernels: per layer 1..4 the pointwise kernel
            (index 0 unused), ``(1, 1, K_{i-1}, K_i)``.
        teacher_responses: ``(num_images,)`` on the statistics' images.
    """
    kept = [None] * NUM_LAYERS
    details = [None] * NUM_LAYERS
    kept[4], details[4] = prune_last_layer(
        statistics.contributions, teacher_responses, min_filters, correlation_fraction
    )
    for layer in range(NUM_LAYERS - 2, -1, -1):
        kept[layer], details[layer] = prune_through_next_layer(
            statistics, layer, pointwise_kernels[layer + 1], kept[layer + 1],
            min_filters, variance_fraction,
        )
    return PruningResult(kept, details)


def prune_compact_model(
    model: keras.Model, images, teacher_responses, batch_size: int = 32,
    min_filters: int = MIN_FILTERS, correlation_fraction: float = CORRELATION_FRACTION,
    variance_fraction: float = VARIANCE_FRACTION, show_progress: bool = False,
) -> tuple[keras.Model, PruningResult]:
    """Prunes a compact model and rebuilds the smaller network.

    Args:
        model: the distilled (unpruned) compact model.
        images: recentred held-out images ``(num_images, 112, 112, 3)``.
        teacher_responses: ``(num_images,)``, the teacher on those images.

    Returns:
        ``(smaller model, result)``; the smaller model's outputs equal those
        of ``model`` with the removed filters zeroed.
    """
    teacher_responses = np.asarray(teacher_responses, np.float64).reshape(-1)
    if len(teacher_responses) != len(images):
        raise ValueError(f"{len(images)} images but {len(teacher_responses)} teacher responses.")
    if min_filters < 1:
        raise ValueError(f"min_filters must be at least 1; got {min_filters}.")
    statistics = collect_pruning_statistics(model, images, batch_size, show_progress)
    pointwise = [None] + [get_kernels(model, layer)["pointwise"] for layer in range(1, NUM_LAYERS)]
    result = select_filters(
        statistics, pointwise, teacher_responses, min_filters,
        correlation_fraction, variance_fraction,
    )
    if any(len(indices) > count for indices, count in zip(result.kept, nums_filters_of(model), strict=True)):
        raise RuntimeError("Pruning kept more filters than the model has; this is a bug.")
    return rebuild_pruned_model(model, result.kept), result

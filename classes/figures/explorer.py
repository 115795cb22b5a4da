"""The comparison table of ``script9_explorer.py``: the paper's numbers the site's models show."""

from __future__ import annotations

import numpy as np

from classes.figures.filter_analysis import signal_correlation_row
from classes.reporting.comparison import comparison_row
from classes.reporting.published import published

NUM_RELEASED = 219


def comparison_rows(num_models: int, convolutional_filters, signal: dict | None, num_normal_images: int) -> list[dict]:
    """Models with a page, their median filter count and their mean squared signal correlation.

    Args:
        num_models: models with a page.
        convolutional_filters: each built model's filter count as the paper counts them.
        signal: :func:`classes.analysis.layer_comparison.signal_correlation` of the
            built models on normal images, or None for fewer than two models.
        num_normal_images: the normal images it used.

    Returns:
        Rows of :func:`classes.reporting.comparison.comparison_row`.
    """
    partial = "" if num_models == NUM_RELEASED else f"a partial build of {num_models} models"
    rows = [comparison_row("compact models with a page", published("num_compact_models").value, num_models,
                           "reproduced" if num_models == NUM_RELEASED else "differs", partial)]
    median = float(np.median(convolutional_filters))
    rows.append(comparison_row("median convolutional filters", published("median_convolutional_filters").value,
                               median, "reproduced" if median == published("median_convolutional_filters").value
                               else "approximate" if partial else "differs", partial))
    rho2 = published("signal_correlation_rho2").value
    if signal is None or partial:
        rows.append(comparison_row("mean squared signal correlation rho^2", rho2, None if signal is None
                                   else signal["mean_r2"], "not computable",
                                   f"over all 219 models; {partial}"))
        return rows
    rows.append(signal_correlation_row(signal["mean_r2"], num_normal_images))
    return rows

"""Figure and tables of script1: a session's images and V4 responses, with its table row.

The figure is a grid of the session's first images above a heatmap of every
neuron's repeat-averaged response to every image; the tables summarise the
responses (and raw repeats where present) and compare the session's row of
Ext. Data Table 1 with the released files.
"""

from __future__ import annotations

import math

import numpy as np

from classes.data.responses import repeat_average
from classes.data.sessions import training_image_indices
from classes.reporting.comparison import comparison_row
from classes.runtime.outputs import pyplot

GRID_COLUMNS = 8


def _spread(values: np.ndarray, kind=float) -> dict:
    return {"min": kind(values.min()), "median": float(np.median(values)), "max": kind(values.max())}


def response_summary(responses: np.ndarray) -> dict:
    """Summary statistics of repeat-averaged responses.

    Args:
        responses: ``(num_neurons, num_images)``.

    Returns:
        Shape, overall mean, s.d., median, min, max, fraction of zeros and
        NaN count; the spread over neurons of their mean and s.d.; how many
        neurons never vary.
    """
    per_neuron_mean = responses.mean(axis=1)
    per_neuron_std = responses.std(axis=1)
    return {
        "shape": list(responses.shape),
        "mean": float(responses.mean()),
        "std": float(responses.std()),
        "median": float(np.median(responses)),
        "min": float(responses.min()),
        "max": float(responses.max()),
        "fraction_zero": float(np.mean(responses == 0)),
        "num_nan": int(np.isnan(responses).sum()),
        "neuron_mean_response": _spread(per_neuron_mean),
        "neuron_response_std": _spread(per_neuron_std),
        "neurons_with_zero_variance": int(np.sum(per_neuron_std == 0)),
    }


def repeat_summary(raw: np.ndarray, averaged: np.ndarray) -> dict:
    """Repeats per image from raw responses, and their agreement with the average.

    Args:
        raw: ``(num_neurons, num_images, max_repeats)``, NaN where a repeat is missing.
        averaged: the released repeat-averaged responses ``(num_neurons, num_images)``.

    Returns:
        ``max_repeats``, the spread of ``repeats_per_image`` and the largest
        |average of ``raw`` - ``averaged``|.
    """
    counts = np.sum(~np.isnan(raw), axis=2)[0]
    difference = np.abs(repeat_average(raw) - averaged)
    return {
        "max_repeats": int(raw.shape[2]),
        "repeats_per_image": _spread(counts, int),
        "repeat_average_max_abs_difference": float(np.nanmax(difference)),
    }


def _images_row(session, images_in_file: int) -> dict:
    used = len(training_image_indices(session.session_id))
    if images_in_file == session.num_images:
        return comparison_row("images", session.num_images, images_in_file, "reproduced")
    if used == session.num_images:
        return comparison_row("images", session.num_images, used, "reproduced",
                              f"the file holds {images_in_file}; images 601-900 (synthesized) are "
                              "left out of training, leaving the table's count")
    return comparison_row("images", session.num_images, images_in_file, "differs",
                          f"the released files hold {images_in_file} images; the table counts "
                          f"{session.num_images} (image types listed: {session.image_types})")


def _repeats_row(session, repeats: dict | None) -> dict:
    if repeats is None:
        return comparison_row("repeats per image", session.num_repeats, None, "not computable",
                              f"raw responses of {session.session_id} are not in this release "
                              f"(data_V4_responses/responses_raw/responses_{session.session_id}.npy)")
    median = repeats["repeats_per_image"]["median"]
    low, high = repeats["repeats_per_image"]["min"], repeats["repeats_per_image"]["max"]
    return comparison_row("repeats per image", session.num_repeats, median,
                          "reproduced" if median == session.num_repeats else "approximate",
                          f"median of per-image repeat counts in the raw file (range {low}-{high})")


def compare_with_table(session, averaged: np.ndarray, repeats: dict | None) -> list[dict]:
    """Published-vs-file rows for one session's Ext. Data Table 1 entry.

    Args:
        session: the session's table row (:func:`classes.data.sessions.get_session`).
        averaged: its repeat-averaged responses ``(num_neurons, num_images_in_file)``.
        repeats: :func:`repeat_summary` of its raw responses; None when absent.

    Returns:
        Comparison rows: neurons, images, repeats per image.
    """
    neurons = comparison_row("neurons", session.num_neurons, averaged.shape[0],
                             "reproduced" if averaged.shape[0] == session.num_neurons else "differs",
                             "rows of responses_repeat_averaged")
    return [neurons, _images_row(session, averaged.shape[1]), _repeats_row(session, repeats)]


def session_title(session, images_in_file: int) -> str:
    """The figure's title and the console's first lines: the session's table row."""
    return (
        f"Session {session.session_id}: animal {session.animal}, {session.split} split, "
        f"{session.num_neurons} neurons, {session.num_repeats} repeats/image, "
        f"{session.num_images} images ({images_in_file} in file)\n"
        f"image types: {session.image_types}"
    )


def _plot_image_grid(figure_part, images, first_numbers, missing_note):
    if images is None or len(images) == 0:
        axis = figure_part.add_subplot(1, 1, 1)
        axis.axis("off")
        text = missing_note or "no images requested (--num-images 0)"
        axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10,
                  color="firebrick" if missing_note else "black")
        return
    columns = min(GRID_COLUMNS, len(images))
    rows = math.ceil(len(images) / columns)
    axes = figure_part.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index])
            axis.set_title(f"image {first_numbers[index]}", fontsize=7)


def _mark_held_out_images(axis, session, num_neurons: int, num_images: int) -> None:
    if session.is_held_out_test:
        half = session.num_images_in_file // 2
        axis.axvline(half + 0.5, color="white", linewidth=1.0, linestyle="--")
        axis.text(half + 0.5, num_neurons - 0.5, " held-out half", color="white", va="bottom", fontsize=8)
    elif len(training_image_indices(session.session_id)) < num_images:
        axis.axvspan(600.5, 900.5, color="white", alpha=0.35, linewidth=0)
        axis.text(750.5, num_neurons - 0.5, "left out of training (601-900)", ha="center", va="bottom",
                  fontsize=8)


def _plot_heatmap(figure_part, responses, session, sort_neurons):
    order = np.argsort(-responses.mean(axis=1), kind="stable") if sort_neurons else None
    shown = responses[order] if sort_neurons else responses
    axis = figure_part.add_subplot(1, 1, 1)
    # Clip the colour scale at the 99th percentile so a few bursts do not wash it out.
    upper = float(np.percentile(shown, 99)) if shown.size else 1.0
    image = axis.imshow(
        shown, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0,
        vmax=max(upper, 1e-9), extent=(0.5, shown.shape[1] + 0.5, shown.shape[0] - 0.5, -0.5),
    )
    axis.set_xlabel("image number (1-based, file order)")
    axis.set_ylabel("neuron rank by mean response (order in JSON)" if sort_neurons else "neuron index")
    colorbar = figure_part.colorbar(image, ax=axis, fraction=0.03, pad=0.01)
    colorbar.set_label("spike count per 100 ms, repeat-averaged")
    _mark_held_out_images(axis, session, shown.shape[0], responses.shape[1])
    return order


def figure_session(session, averaged, images, numbers, missing_note, sort_neurons: bool):
    """The image grid above the response heatmap.

    Args:
        session: the session's table row.
        averaged: repeat-averaged responses ``(num_neurons, num_images_in_file)``.
        images: the shown images ``(n, 112, 112, 3)``; None when the zip is missing.
        numbers: their 1-based image numbers.
        missing_note: what to show instead of the grid when ``images`` is None.
        sort_neurons: order the heatmap's rows by mean response, highest first.

    Returns:
        ``(figure, neuron order)``; the order is None when not sorted.
    """
    grid_rows = math.ceil(len(numbers) / GRID_COLUMNS) if images is not None else 1
    figure = pyplot().figure(figsize=(12, 1.6 * max(grid_rows, 1) + 5.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.6 * max(grid_rows, 1), 5.0])
    _plot_image_grid(top, images, numbers, missing_note)
    order = _plot_heatmap(bottom, averaged, session, sort_neurons)
    figure.suptitle(session_title(session, averaged.shape[1]), fontsize=10)
    return figure, order

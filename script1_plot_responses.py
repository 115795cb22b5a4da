"""Script 1: a session's images and V4 responses, with its table row.

Reproduces the release's per-session plot of images and responses (the
release's data readme: "plot images and responses per session") and checks
the session's row of Ext. Data Table 1 (the release's
``data_V4_responses/readme.txt``) against the released files.

For one session it draws a grid of its first images (``--num-images``, 24 by
default) above a heatmap of every neuron's repeat-averaged response to every
image (neurons x images; neurons sorted by mean response unless
``--no-sort-neurons``). The title gives the session's animal, split, neurons,
repeats, images and image types. Sessions whose image zip is not in the
release (33 of 45, e.g. test session 211022) still get the heatmap; the
figure and the console say which zip is missing.

Command::

    python script1_plot_responses.py --session 190923
    python script1_plot_responses.py --session 211022 --num-images 12 --out results/s1

Expected run time on a 2-core CPU: about 10 s (8 s of CPU time, most of it
importing matplotlib, decoding the session's zip once into the image cache,
and writing the 1,200-column heatmap to PDF); later runs of the same session
read the cache.

Writes to ``results/script1_plot_responses/`` (or ``--out``):
``session_<id>.png`` and ``.pdf`` (the figure) and ``session_<id>.json``
(the table row, response summary statistics, and the published-vs-file
comparison).

Published numbers compared with (Ext. Data Table 1, per session): neurons,
images, repeats per image. Neurons and images are compared with the released
response file's shape; repeats only where the raw file is present (201016,
210325), otherwise "not computable". The table counts images used, so for
190924-190929 (1200 in file, 601-900 left out) and 201016-201017 (600 in
file) the file holds a different number; the JSON notes why.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from classes.reporting.comparison import comparison_row, format_comparison_table
from classes.reporting.script_support import start_script
from classes.runtime.outputs import add_common_arguments, save_figure, write_json

SCRIPT_NAME = "script1_plot_responses"
GRID_COLUMNS = 8


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Plot a session's images and its neurons' repeat-averaged V4 responses."
    )
    parser.add_argument("--session", default="190923", help="session id, e.g. 190923 (default)")
    parser.add_argument(
        "--num-images", type=int, default=24, help="images shown in the grid (default 24)"
    )
    parser.add_argument(
        "--sort-neurons",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="order heatmap rows by mean response, highest first (default on)",
    )
    add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    from classes.data.sessions import get_session

    try:
        session = get_session(arguments.session)
    except ValueError as error:
        parser.error(str(error))
    if arguments.num_images < 0 or arguments.num_images > session.num_images_in_file:
        parser.error(
            f"--num-images must be 0..{session.num_images_in_file} for session "
            f"{session.session_id}; got {arguments.num_images}."
        )
    arguments.session = session.session_id
    return arguments


def response_summary(responses: np.ndarray) -> dict:
    """Summary statistics of repeat-averaged responses ``(neurons, images)``."""
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
        "neuron_mean_response": {
            "min": float(per_neuron_mean.min()),
            "median": float(np.median(per_neuron_mean)),
            "max": float(per_neuron_mean.max()),
        },
        "neuron_response_std": {
            "min": float(per_neuron_std.min()),
            "median": float(np.median(per_neuron_std)),
            "max": float(per_neuron_std.max()),
        },
        "neurons_with_zero_variance": int(np.sum(per_neuron_std == 0)),
    }


def repeat_summary(raw: np.ndarray, averaged: np.ndarray) -> dict:
    """Repeats per image from raw responses, and their agreement with the average."""
    from classes.data.responses import repeat_average

    counts = np.sum(~np.isnan(raw), axis=2)[0]
    difference = np.abs(repeat_average(raw) - averaged)
    return {
        "max_repeats": int(raw.shape[2]),
        "repeats_per_image": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
        },
        "repeat_average_max_abs_difference": float(np.nanmax(difference)),
    }


def compare_with_table(session, averaged: np.ndarray, repeats: dict | None) -> list[dict]:
    """Published-vs-file rows for one session's Ext. Data Table 1 entry."""
    from classes.data.sessions import training_image_indices

    rows = [
        comparison_row(
            "neurons",
            session.num_neurons,
            averaged.shape[0],
            "reproduced" if averaged.shape[0] == session.num_neurons else "differs",
            "rows of responses_repeat_averaged",
        )
    ]
    images_in_file = averaged.shape[1]
    used = len(training_image_indices(session.session_id))
    if images_in_file == session.num_images:
        rows.append(comparison_row("images", session.num_images, images_in_file, "reproduced"))
    elif used == session.num_images:
        rows.append(
            comparison_row(
                "images",
                session.num_images,
                used,
                "reproduced",
                f"the file holds {images_in_file}; images 601-900 (synthesized) are "
                "left out of training, leaving the table's count",
            )
        )
    else:
        rows.append(
            comparison_row(
                "images",
                session.num_images,
                images_in_file,
                "differs",
                f"the released files hold {images_in_file} images; the table counts "
                f"{session.num_images} (image types listed: {session.image_types})",
            )
        )
    if repeats is None:
        rows.append(
            comparison_row(
                "repeats per image",
                session.num_repeats,
                None,
                "not computable",
                f"raw responses of {session.session_id} are not in this release "
                f"(data_V4_responses/responses_raw/responses_{session.session_id}.npy)",
            )
        )
    else:
        median = repeats["repeats_per_image"]["median"]
        low, high = repeats["repeats_per_image"]["min"], repeats["repeats_per_image"]["max"]
        rows.append(
            comparison_row(
                "repeats per image",
                session.num_repeats,
                median,
                "reproduced" if median == session.num_repeats else "approximate",
                f"median of per-image repeat counts in the raw file (range {low}-{high})",
            )
        )
    return rows


def _plot_image_grid(figure_part, images, first_numbers, missing_note):
    import matplotlib.pyplot as plt  # noqa: F401  (backend set in main)

    if images is None or len(images) == 0:
        axis = figure_part.add_subplot(1, 1, 1)
        axis.axis("off")
        text = missing_note or "no images requested (--num-images 0)"
        axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10,
                  color="firebrick" if missing_note else "black")  # fmt: skip
        return
    columns = min(GRID_COLUMNS, len(images))
    rows = math.ceil(len(images) / columns)
    axes = figure_part.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index])
            axis.set_title(f"image {first_numbers[index]}", fontsize=7)


def _plot_heatmap(figure_part, responses, session, sort_neurons):
    order = np.argsort(-responses.mean(axis=1), kind="stable") if sort_neurons else None
    shown = responses[order] if sort_neurons else responses
    axis = figure_part.add_subplot(1, 1, 1)
    # Clip the colour scale at the 99th percentile so a few bursts do not wash it out.
    upper = float(np.percentile(shown, 99)) if shown.size else 1.0
    image = axis.imshow(
        shown, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0,
        vmax=max(upper, 1e-9), extent=(0.5, shown.shape[1] + 0.5, shown.shape[0] - 0.5, -0.5),
    )  # fmt: skip
    axis.set_xlabel("image number (1-based, file order)")
    axis.set_ylabel(
        "neuron rank by mean response (order in JSON)" if sort_neurons else "neuron index"
    )
    colorbar = figure_part.colorbar(image, ax=axis, fraction=0.03, pad=0.01)
    colorbar.set_label("spike count per 100 ms, repeat-averaged")
    from classes.data.sessions import training_image_indices

    if session.is_held_out_test:
        half = session.num_images_in_file // 2
        axis.axvline(half + 0.5, color="white", linewidth=1.0, linestyle="--")
        axis.text(half + 0.5, shown.shape[0] - 0.5, " held-out half", color="white",
                  va="bottom", fontsize=8)  # fmt: skip
    elif len(training_image_indices(session.session_id)) < responses.shape[1]:
        axis.axvspan(600.5, 900.5, color="white", alpha=0.35, linewidth=0)
        axis.text(750.5, shown.shape[0] - 0.5, "left out of training (601-900)",
                  ha="center", va="bottom", fontsize=8)  # fmt: skip
    return order


def main(argv=None) -> dict:
    """Plots one session; returns the summary written to JSON."""
    arguments = parse_arguments(argv)
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from classes.data.images import image_zip_path, load_images
    from classes.data.responses import load_raw, load_repeat_averaged
    from classes.data.sessions import get_session

    session = get_session(arguments.session)
    try:
        averaged = load_repeat_averaged(session.session_id, data_root)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")

    try:
        raw = load_raw(session.session_id, data_root)
        repeats = repeat_summary(raw, averaged)
    except FileNotFoundError:
        repeats = None

    numbers = np.arange(1, arguments.num_images + 1)
    missing_note = None
    images = None
    try:
        image_zip_path(session.session_id, data_root)
        images = load_images(session.session_id, numbers, data_root)
    except FileNotFoundError as error:
        missing_file = f"data_V4_responses/images/images_{session.session_id}.zip"
        missing_note = (
            f"Images not computable: {missing_file} is not in this release.\n"
            "The heatmap below uses the released responses."
        )
        print(f"note: {error}")
    except ValueError as error:
        sys.exit(f"error: {error}")

    title = (
        f"Session {session.session_id}: animal {session.animal}, {session.split} split, "
        f"{session.num_neurons} neurons, {session.num_repeats} repeats/image, "
        f"{session.num_images} images ({averaged.shape[1]} in file)\n"
        f"image types: {session.image_types}"
    )
    grid_rows = math.ceil(len(numbers) / GRID_COLUMNS) if images is not None else 1
    figure = plt.figure(figsize=(12, 1.6 * max(grid_rows, 1) + 5.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.6 * max(grid_rows, 1), 5.0])
    _plot_image_grid(top, images, numbers, missing_note)
    order = _plot_heatmap(bottom, averaged, session, arguments.sort_neurons)
    figure.suptitle(title, fontsize=10)
    stem = output_dir / f"session_{session.session_id}"
    figure_paths = save_figure(figure, stem)
    plt.close(figure)

    rows = compare_with_table(session, averaged, repeats)
    summary = {
        "session": {
            "session_id": session.session_id,
            "animal": session.animal,
            "split": session.split,
            "num_neurons": session.num_neurons,
            "num_repeats": session.num_repeats,
            "num_images": session.num_images,
            "num_images_in_file": session.num_images_in_file,
            "image_types": session.image_types,
            "is_held_out_test": session.is_held_out_test,
        },
        "images": {
            "shown": numbers.tolist() if images is not None else [],
            "available": images is not None,
            "missing_file": None if images is not None
            else f"data_V4_responses/images/images_{session.session_id}.zip",
        },
        "responses": response_summary(averaged),
        "repeats": repeats
        if repeats is not None
        else {
            "status": "not computable",
            "missing_file": f"data_V4_responses/responses_raw/responses_{session.session_id}.npy",
        },
        "neuron_order": order.tolist() if order is not None else list(range(averaged.shape[0])),
        "comparison": rows,
        "figures": [path.name for path in figure_paths],
    }
    write_json(stem.with_suffix(".json"), summary)
    print(title)
    print(format_comparison_table(rows))
    print(f"wrote {', '.join(path.name for path in figure_paths)} and {stem.name}.json "
          f"to {output_dir}")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()

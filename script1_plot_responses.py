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

import numpy as np

from classes.data.images import image_zip_path, load_images
from classes.data.responses import load_raw, load_repeat_averaged
from classes.data.sessions import get_session
from classes.figures.responses import (
    compare_with_table,
    figure_session,
    repeat_summary,
    response_summary,
    session_title,
)
from classes.reporting import script_support
from classes.reporting.comparison import format_comparison_table
from classes.runtime.outputs import pyplot, save_figure, write_json


def load_responses(session, data_root) -> tuple[np.ndarray, dict | None]:
    """Repeat-averaged responses and the summary of the raw repeats (None when absent)."""
    averaged = load_repeat_averaged(session.session_id, data_root)
    try:
        raw = load_raw(session.session_id, data_root)
    except FileNotFoundError:
        return averaged, None
    return averaged, repeat_summary(raw, averaged)


def load_shown_images(session, num_images: int, data_root):
    """The grid's first ``num_images`` images, or a note saying their zip is missing.

    Returns:
        ``(numbers (1-based), images or None, missing note or None)``.
    """
    numbers = np.arange(1, num_images + 1)
    try:
        image_zip_path(session.session_id, data_root)
        return numbers, load_images(session.session_id, numbers, data_root), None
    except FileNotFoundError as error:
        missing_file = f"data_V4_responses/images/images_{session.session_id}.zip"
        print(f"note: {error}")
        return numbers, None, (f"Images not computable: {missing_file} is not in this release.\n"
                               "The heatmap below uses the released responses.")


def session_result(session, averaged, numbers, images, repeats, order, rows, figure_paths) -> dict:
    """What session_<id>.json holds."""
    return {
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
        "repeats": repeats if repeats is not None else {
            "status": "not computable",
            "missing_file": f"data_V4_responses/responses_raw/responses_{session.session_id}.npy",
        },
        "neuron_order": order.tolist() if order is not None else list(range(averaged.shape[0])),
        "comparison": rows,
        "figures": [path.name for path in figure_paths],
    }


def run(arguments) -> dict:
    """Plots one session; returns the summary written to JSON."""
    data_root, output_dir = script_support.start_script(arguments, __file__)
    session = get_session(arguments.session)
    averaged, repeats = load_responses(session, data_root)
    numbers, images, missing_note = load_shown_images(session, arguments.num_images, data_root)
    figure, order = figure_session(session, averaged, images, numbers, missing_note, arguments.sort_neurons)
    stem = output_dir / f"session_{session.session_id}"
    figure_paths = save_figure(figure, stem)
    pyplot().close(figure)
    rows = compare_with_table(session, averaged, repeats)
    summary = session_result(session, averaged, numbers, images, repeats, order, rows, figure_paths)
    write_json(stem.with_suffix(".json"), summary)
    print(session_title(session, averaged.shape[1]))
    print(format_comparison_table(rows))
    print(f"wrote {', '.join(path.name for path in figure_paths)} and {stem.name}.json "
          f"to {script_support.shown(output_dir)}")
    return summary


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = script_support.script_parser(__doc__)
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
    arguments = script_support.parse(parser, argv)
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


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

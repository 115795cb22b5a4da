"""Script 3: one compact model loaded in every released format, outputs compared.

Reproduces: no figure of the paper. It shows how to load a released compact
model in each format of the release (``.keras``; the ``model_weights_npy``
list with ``nums_filters``; the PyTorch ``.pt`` state dict; a PyTorch port
built from the Keras weights; a ``.keras`` and a ``.weights.h5`` save/reload
round trip) and checks that all give the same responses to the held-out half
of the model's own test session.

Command::

    python script3_load_compact_models.py --session 190923 --neuron 0

Run time on this 2-core CPU machine: 2.7 minutes for the 600 held-out images
of 190923 measured while other jobs loaded the CPU (43 s of CPU time, so
about 1 minute on an idle machine); ``--num-images 48`` takes about 20 s.

Published numbers compared: the release says its PyTorch files give outputs
within about 1% of Keras's. The release does not define the 1%; this script
reports the largest |Keras - Torch| both over the response s.d. and over the
largest |Keras response|. The ``.pt`` files hold Keras's variance + 0.001 in
layers 1-4 for PyTorch's BN epsilon 1e-5, so those layers divide by
``var + 0.00101`` instead of ``var + 0.001``: a small, real difference where
layer-3/4 variances are tiny, while the port from the Keras weights matches
to float precision (docs/torch_port.md).

Session 211022's images are not in the release; its models are evaluated on
the second half of session 210224's images instead, and the outputs say so.

Outputs in ``results/script3_load_compact_models/`` (or ``--out``):
``agreement.json``, ``responses.csv`` and ``agreement.png``/``.pdf`` (each
format's responses against the ``.keras`` model's).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from classes.compact.architecture import load_nums_filters, model_file, model_id
from classes.compact.model import build_compact_model, load_compact_model, save_compact_model
from classes.compact.tools import nums_filters_of, predict_responses
from classes.compact.torch_agreement import agreement_statistics, evaluation_images
from classes.compact.torch_conversion import (
    load_torch_compact_model,
    torch_model_from_keras_weights,
)
from classes.compact.torch_model import predict_responses_torch, torch_available
from classes.figures.formats import (
    REFERENCE,
    format_agreement_table,
    plot_agreement,
    release_comparison_rows,
)
from classes.reporting import script_support
from classes.reporting.comparison import format_comparison_table
from classes.runtime.outputs import save_figures, write_csv, write_json
from classes.runtime.quiet_tensorflow import keras

# (name, what it is) in the order reported.
FORMATS = (
    ("keras", ".keras file (reference)"),
    ("npy", "model_weights_npy + nums_filters into build_compact_model"),
    ("torch_release", ".pt state dict, release semantics (BN epsilon 1e-5)"),
    ("torch_from_keras", "PyTorch port of the Keras weights (BN epsilon 1e-3)"),
    ("keras_roundtrip", ".keras saved and reloaded (temp dir)"),
    ("weights_h5_roundtrip", ".weights.h5 saved, reloaded into build_compact_model"),
)



def load_model_images(arguments, data_root):
    """The model's id and its held-out images ``(images, image_session, image_numbers, note)``."""
    identifier = model_id(arguments.session, arguments.neuron)
    if arguments.num_images is not None and arguments.num_images < 1:
        raise ValueError(f"--num-images must be positive, got {arguments.num_images}.")
    images, image_session, image_numbers, note = evaluation_images(identifier.session_id, data_root, arguments.num_images)
    print(f"model {identifier}: {len(images)} held-out images of session {image_session} "
          f"(image{image_numbers[0]:04d}..image{image_numbers[-1]:04d})")
    if note:
        print(f"note: {note}")
    return identifier, (images, image_session, image_numbers, note)


def predict_torch_formats(identifier, keras_model, images, data_root, batch_size: int) -> dict:
    """The release's ``.pt`` model and the port of the Keras weights, or why they are unavailable."""
    if not torch_available():
        reason = "PyTorch is not installed (pip install torch)"
        return {name: {"status": "unavailable", "reason": reason} for name in ("torch_release", "torch_from_keras")}
    release = load_torch_compact_model(identifier.session_id, identifier.neuron, data_root)
    ported = torch_model_from_keras_weights(keras_model)
    return {
        "torch_release": {"file": model_file(identifier, "torch", data_root),
                          "responses": predict_responses_torch(release, images, batch_size)},
        "torch_from_keras": {"responses": predict_responses_torch(ported, images, batch_size)},
    }


def predict_roundtrip_formats(identifier, keras_model, images, batch_size: int) -> dict:
    """The model saved as ``.keras`` and as ``.weights.h5`` in a temporary folder, reloaded."""
    with tempfile.TemporaryDirectory(prefix="script3_") as folder:
        keras_path = save_compact_model(keras_model, Path(folder) / f"{identifier.stem}.keras")
        reloaded = keras.models.load_model(keras_path, compile=False)
        weights_path = save_compact_model(keras_model, Path(folder) / f"{identifier.stem}.weights.h5")
        rebuilt = build_compact_model(nums_filters_of(keras_model), name=identifier.stem)
        rebuilt.load_weights(weights_path)
        return {"keras_roundtrip": {"responses": predict_responses(reloaded, images, batch_size)},
                "weights_h5_roundtrip": {"responses": predict_responses(rebuilt, images, batch_size)}}


def predict_every_format(identifier, images, data_root, batch_size: int) -> dict:
    """Responses of one model in every format, with their agreement with ``.keras``.

    Returns:
        ``{format: {"status": "ok", "responses": (n,), statistics...}`` or
        ``{"status": "unavailable", "reason": ...}}``, in the order of ``FORMATS``.
    """
    models = {kind: load_compact_model(identifier.session_id, identifier.neuron, kind, data_root)
              for kind in ("keras", "npy")}
    results = {kind: {"file": model_file(identifier, kind, data_root),
                      "responses": predict_responses(model, images, batch_size)} for kind, model in models.items()}
    results.update(predict_torch_formats(identifier, models["keras"], images, data_root, batch_size))
    results.update(predict_roundtrip_formats(identifier, models["keras"], images, batch_size))
    reference = results[REFERENCE]["responses"]
    for name, _ in FORMATS:
        results[name].setdefault("status", "ok")
        if results[name]["status"] == "ok":
            results[name].update(agreement_statistics(reference, results[name]["responses"]))
    return {name: results[name] for name, _ in FORMATS}


def write_outputs(output_dir, identifier, evaluation, formats: dict) -> None:
    """agreement.png/.pdf and responses.csv (one row per image, one column per available format)."""
    images, image_session, image_numbers, _ = evaluation
    title = f"compact model {identifier}: formats vs .keras ({len(images)} images of {image_session})"
    save_figures([(plot_agreement(formats, title), "agreement")], output_dir)
    columns = {"image_session": [image_session] * len(images), "image_number": image_numbers}
    columns.update({name: entry["responses"] for name, entry in formats.items() if entry["status"] == "ok"})
    write_csv(output_dir / "responses.csv",
              [{key: values[index] for key, values in columns.items()} for index in range(len(images))])


def agreement_result(identifier, evaluation, formats: dict, comparison, data_root, started: float) -> dict:
    """What agreement.json holds."""
    images, image_session, image_numbers, note = evaluation
    return {
        "model": identifier.stem, "session": identifier.session_id, "neuron": identifier.neuron,
        "nums_filters": load_nums_filters(identifier, data_root), "image_session": image_session,
        "image_numbers": [int(number) for number in image_numbers], "num_images": len(images),
        "image_note": note, "response_sd": float(np.std(formats[REFERENCE]["responses"])),
        "formats": {name: {"description": description,
                           **{key: value for key, value in formats[name].items() if key != "responses"}}
                    for name, description in FORMATS},
        "comparison": comparison, "seconds": time.time() - started,
    }


def run(arguments) -> dict:
    """Loads, predicts, compares and writes the outputs; returns the JSON content."""
    data_root, output_dir = script_support.start_script(arguments, __file__)
    started = time.time()
    identifier, evaluation = load_model_images(arguments, data_root)
    formats = predict_every_format(identifier, evaluation[0], data_root, arguments.batch_size)
    comparison = release_comparison_rows(formats)
    print(f"\n{format_agreement_table(formats)}\n\n{format_comparison_table(comparison)}")
    write_outputs(output_dir, identifier, evaluation, formats)
    result = agreement_result(identifier, evaluation, formats, comparison, data_root, started)
    write_json(output_dir / "agreement.json", result)
    print(f"\nwrote {script_support.shown(output_dir)}/agreement.json, responses.csv, agreement.png/.pdf ({result['seconds']:.0f} s)")
    return result


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load one released compact model in every format and compare outputs.")
    parser.add_argument("--session", default="190923", help="test session of the model")
    parser.add_argument("--neuron", type=int, default=0, help="0-based neuron index")
    parser.add_argument("--num-images", type=int, default=None,
                        help="use the first N held-out images (default: the whole held-out half)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    return script_support.parse(parser, argv)


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

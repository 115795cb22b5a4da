"""Preferred stimuli of the compact models: Fig. 2a and Ext. Data Fig. 3, with
the model side of Fig. 2b-f and Ext. Data Fig. 4.

Default run, for one compact model (``--session``/``--neuron``):

- nine maximizing synthesized images (SPEC section 7: noise start, RMS-
  normalised blurred gradient, 10-pixel steps, clipping, a blur every 50
  steps, best image kept) in a grid titled with the response, and three
  minimizing ones;
- the model's top images among every image in the release's zips (12,640 in
  12 zips) and its top *normal* images (zips whose images are all normal:
  190923, 201025, 210224, 210225, 210621; 5,600 images);
- model-predicted percent changes of the maximizing normal and synthesized
  images over the mean of the normal images, of adversarial images (largest
  pixel change at most ``--max-pixel-change``) over their base images, of
  smooth- images and their random-patch control; saliency maps.

``--all`` synthesizes one maximizing image for each of the 219 models (Ext.
Data Fig. 3 sheet), saving ``all/<model>.npy`` and ``.json`` atomically and
skipping models already done, so an interrupted run resumes; it then gives
the across-model percent changes (Fig. 2b-c counterpart).

Percent changes (classes/scoring/percent_changes.py): compact models output centred
values, so the headline ``calibrated`` change maps outputs to predicted spike
counts by a line fitted on the model's own session (fit half, images 1-600);
``raw`` (plain formula, NaN where the reference is not positive) and
``percent_of_range`` are reported beside it. 211022's models cannot be
calibrated: its image zip is not in the release.

Commands::

    python script6_synthesize.py                          # one model, results/script6_synthesize/
    python script6_synthesize.py --session 201025 --neuron 27 --grayscale
    python script6_synthesize.py --all                    # 219-model sheet, resumable
    python script6_synthesize.py --all --models 190923/0,201025/27

Expected run time on this 2-core CPU (measured, machine shared with other
jobs): default run about 2 minutes (102 s: synthesis 41 s, pool of 12,640
images and calibration 33 s); ``--all`` 9-13 s per model,
i.e. 35-50 minutes for the 219 models (300 steps each, pool of 1,000 normal
images); interrupt and rerun to resume.

Default step count: 300. For three models measured with 1,000 steps, the best
response at 300 steps was 96% of the 1,000-step value (93% at 200, 98.5% at
500).

Published numbers compared with (real V4 neurons in later sessions, Fig. 2):
maximizing normal images +137.3% +/- 9.2%, maximizing synthesized images
+152.8% +/- 10.8% over random normal images; adversarial+ +83.6%,
adversarial- -33.2%, smooth- -46.1% versus base images. The values here are
model-predicted, so they are counterparts, not replications.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from classes.analysis.causal_images import (
    DEFAULT_MAX_PIXEL_CHANGE,
    DEFAULT_NUM_SMOOTHED_PATCHES,
    DEFAULT_SALIENCY_PATCH,
    adversarial_images,
    predict_raw,
    random_smooth_image,
    saliency_map,
    smooth_minus_image,
)
from classes.analysis.synthesis import DEFAULT_NUM_STEPS, synthesize_images
from classes.analysis.synthesis_sheet import (
    across_model_rows,
    is_done,
    load_records,
    make_record,
    per_model_changes,
    summarize_records,
    write_record,
)
from classes.compact.model import (
    ModelId,
    all_model_ids,
    load_compact_model,
    model_id,
    parse_model_stem,
)
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.data.images import available_image_sessions
from classes.figures.synthesis import (
    close,
    figure_across,
    figure_percent_changes,
    figure_saliency,
    figure_sheet,
    image_grid,
)
from classes.reporting.comparison import comparison_row, format_comparison_table
from classes.reporting.script_support import format_timings, run_script, start_script
from classes.runtime import outputs
from classes.scoring.calibration import calibrate_models, pool_responses
from classes.scoring.percent_changes import (
    KINDS,
    PUBLISHED,
    format_change,
    format_published,
    percent_changes,
    status_against,
    summarize,
)

SCRIPT_NAME = "script6_synthesize"
ALL_POOL_SIZE = 1000
CHUNK = 16
BAR_LABELS = (("maximizing_normal", "max. normal"), ("maximizing_synthesized", "max. synthesized"),
              ("adversarial_increase", "adversarial+"), ("adversarial_decrease", "adversarial-"),
              ("smooth_minus", "smooth-"), ("smooth_random_control", "random smoothing"))


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--session", default="190923", help="test session of the chosen model")
    parser.add_argument("--neuron", type=int, default=0, help="0-based neuron index in --session")
    parser.add_argument("--num-images", type=int, default=9, help="maximizing images synthesized")
    parser.add_argument("--num-minimizing", type=int, default=3, help="minimizing images (0: none)")
    parser.add_argument("--steps", type=int, default=DEFAULT_NUM_STEPS, help="gradient steps per image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start noise and of every random choice")
    parser.add_argument("--grayscale", action="store_true", help="synthesize grayscale images")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="random subset of candidate images (default: every image in the zips; "
                        f"with --all, {ALL_POOL_SIZE} normal images)")
    parser.add_argument("--num-base-images", type=int, default=9,
                        help="random normal base images for adversarial images")
    parser.add_argument("--max-pixel-change", type=float, default=DEFAULT_MAX_PIXEL_CHANGE,
                        help="adversarial threshold on the largest absolute pixel change (raw units)")
    parser.add_argument("--num-smooth-images", type=int, default=5,
                        help="top normal images used as bases for smooth- images")
    parser.add_argument("--smooth-patches", type=int, default=DEFAULT_NUM_SMOOTHED_PATCHES,
                        help="16x16 patches smoothed per smooth- image (of 49)")
    parser.add_argument("--saliency-stride", type=int, default=4,
                        help="spacing of the saliency grid in pixels (4: a 28x28 map)")
    parser.add_argument("--all", action="store_true",
                        help="one maximizing image per model for all 219 models (Ext. Data Fig. 3); resumable")
    parser.add_argument("--models", default="all",
                        help="with --all: comma-separated models as session/neuron (e.g. 190923/0), or 'all'")
    outputs.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    for name in ("num_images", "steps", "num_base_images", "num_smooth_images", "smooth_patches",
                 "saliency_stride"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.num_minimizing < 0 or (arguments.pool_size is not None and arguments.pool_size < 10):
        parser.error("--num-minimizing must be >= 0 and --pool-size >= 10")
    if not arguments.max_pixel_change > 0:
        parser.error("--max-pixel-change must be positive")
    return arguments


def parse_models(text: str) -> list[ModelId]:
    """``"all"`` or ``"190923/0,201025/27"`` to model ids (ValueError if invalid)."""
    if text.strip() == "all":
        return all_model_ids()
    chosen = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.startswith("compact_model_"):
            chosen.append(parse_model_stem(item))
            continue
        session, separator, neuron = item.partition("/")
        try:
            if not separator:
                raise ValueError("no '/'")
            chosen.append(model_id(session, int(neuron.removeprefix("neuron"))))
        except ValueError as error:
            raise ValueError(f"--models: cannot read {item!r} as session/neuron, e.g. 190923/0 ({error})") from None
    if not chosen:
        raise ValueError("--models chose no model.")
    return list(dict.fromkeys(chosen))


def save(figure, stem) -> None:
    outputs.save_figure(figure, stem)
    close(figure)


# ------------------------------------------------------------ default run


def synthesize(model, arguments, direction: str, count: int):
    """Synthesized images rounded to uint8, as saved, and their responses."""
    with tqdm(total=arguments.steps, desc=f"synthesis ({direction}, {count} images)") as bar:
        result = synthesize_images(model, num_images=count, direction=direction, num_steps=arguments.steps,
                                   seed=arguments.seed, grayscale=arguments.grayscale, progress=bar)
    saved = np.round(result.images).astype(np.uint8)
    return result, saved, predict_raw(model, saved)


def run_default(arguments, data_root, output_dir) -> tuple[dict, list, dict]:
    timings, notes = {}, []
    identifier = model_id(arguments.session, arguments.neuron)
    stem = identifier.stem
    model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)

    start = time.perf_counter()
    maximizing, max_images, max_responses = synthesize(model, arguments, "maximize", arguments.num_images)
    outputs.write_npy(output_dir / f"synthesized_maximizing_{stem}.npy", max_images)
    min_images = min_responses = None
    if arguments.num_minimizing:
        _, min_images, min_responses = synthesize(model, arguments, "minimize", arguments.num_minimizing)
        outputs.write_npy(output_dir / f"synthesized_minimizing_{stem}.npy", min_images)
    timings["synthesis"] = time.perf_counter() - start

    start = time.perf_counter()
    sessions = available_image_sessions(data_root)
    pool, sources = load_image_pool(sessions, data_root, size=arguments.pool_size, seed=arguments.seed)
    responses = pool_responses([identifier], pool, data_root, description=f"pool of {len(pool)} images")[0]
    normal_sessions = normal_image_sessions(data_root)
    normal = np.isin(sources[:, 0], [int(session) for session in normal_sessions])
    if normal.sum() < 10:
        raise ValueError(f"Only {normal.sum()} normal images in the pool; raise --pool-size.")
    normal_responses = responses[normal]
    reference = float(normal_responses.mean())
    calibration, calibration_note = calibrate_models([identifier], data_root)[stem]
    if calibration is None:
        notes.append(calibration_note)
    timings["image pool and calibration"] = time.perf_counter() - start

    order = np.argsort(-responses)
    normal_order = np.flatnonzero(normal)[np.argsort(-normal_responses)]
    top_normal = pool[normal_order[: arguments.num_smooth_images]]
    start = time.perf_counter()
    base_rows = np.random.default_rng(arguments.seed).choice(
        np.flatnonzero(normal), size=min(arguments.num_base_images, int(normal.sum())), replace=False)
    adversarial = {direction: adversarial_images(model, pool[base_rows], direction, arguments.max_pixel_change)
                   for direction in ("increase", "decrease")}
    timings["adversarial"] = time.perf_counter() - start

    start = time.perf_counter()
    smooth_results, random_results = [], []
    for index, image in enumerate(tqdm(top_normal, desc="smooth- images")):
        smooth_results.append(smooth_minus_image(model, image, arguments.smooth_patches))
        random_results.append(random_smooth_image(model, image, arguments.smooth_patches, seed=arguments.seed + index))
    best_synthesized = max_images[int(np.argmax(max_responses))]
    saliency_entries = [
        (label, image, saliency_map(model, image, stride=arguments.saliency_stride))
        for label, image in (("top normal image", pool[normal_order[0]]), ("best synthesized image", best_synthesized))
    ]
    timings["smooth- and saliency"] = time.perf_counter() - start

    def changes(values, reference_values):
        return percent_changes(values, reference_values, normal_responses, calibration)

    model_changes = {
        "maximizing_normal": changes(normal_responses.max(), reference),
        "maximizing_synthesized": changes(max_responses.max(), reference),
        "maximizing_synthesized_all_seeds": changes(max_responses, reference),
        "adversarial_increase": changes(adversarial["increase"].responses, adversarial["increase"].base_responses),
        "adversarial_decrease": changes(adversarial["decrease"].responses, adversarial["decrease"].base_responses),
        "smooth_minus": changes([item.response for item in smooth_results],
                                [item.base_response for item in smooth_results]),
        "smooth_random_control": changes([item.response for item in random_results],
                                         [item.base_response for item in random_results]),
    }
    summaries = {name: {kind: summarize(values[kind]) for kind in KINDS} for name, values in model_changes.items()}

    # Figures.
    title = (f"{identifier}: maximizing synthesized images ({arguments.steps} steps, seed {arguments.seed}"
             f"{', grayscale' if arguments.grayscale else ''}); normal images: mean {reference:.2f}, "
             f"max {normal_responses.max():.2f}")
    save(image_grid(max_images, [f"response {value:.2f}" for value in max_responses], 3, title),
         output_dir / f"fig2a_synthesized_{stem}")
    if min_images is not None:
        save(image_grid(min_images, [f"response {value:.2f}" for value in min_responses], len(min_images),
                        f"{identifier}: minimizing synthesized images (normal min {normal_responses.min():.2f})"),
             output_dir / f"synthesized_minimizing_{stem}")
    save(image_grid(pool[order[:9]], [f"{responses[row]:.2f} ({sources[row, 0]} #{sources[row, 1]})"
                                      for row in order[:9]], 3,
                    f"{identifier}: top images of {len(pool)} in the release's zips (response, session #image)"),
         output_dir / f"top_images_{stem}")
    shown, titles = [], []
    for column in range(min(3, len(base_rows))):
        shown += [pool[base_rows[column]], adversarial["increase"].images[column],
                  adversarial["decrease"].images[column]]
        titles += [f"base {adversarial['increase'].base_responses[column]:.2f}",
                   f"adversarial+ {adversarial['increase'].responses[column]:.2f}",
                   f"adversarial- {adversarial['decrease'].responses[column]:.2f}"]
    save(image_grid(shown, titles, 3, f"{identifier}: adversarial images (max pixel change "
                                      f"{arguments.max_pixel_change:g})"), output_dir / f"adversarial_{stem}")
    shown, titles = [], []
    for column in range(min(3, len(smooth_results))):
        shown += [top_normal[column], smooth_results[column].image, random_results[column].image]
        titles += [f"base {smooth_results[column].base_response:.2f}", f"smooth- {smooth_results[column].response:.2f}",
                   f"random patches {random_results[column].response:.2f}"]
    save(image_grid(shown, titles, 3, f"{identifier}: smooth- images ({arguments.smooth_patches} of 49 patches "
                                      "smoothed)"), output_dir / f"smooth_minus_{stem}")
    save(figure_saliency(saliency_entries, f"{identifier}: saliency maps", DEFAULT_SALIENCY_PATCH),
         output_dir / f"saliency_{stem}")
    bars = [{"label": label, "value": summaries[name]["calibrated"]["mean"],
             "sem": summaries[name]["calibrated"]["sem"],
             "published": PUBLISHED[name][0] if name in PUBLISHED else None} for name, label in BAR_LABELS]
    save(figure_percent_changes(bars, f"{identifier}: model-predicted percent changes (calibrated to spike counts)"),
         output_dir / f"percent_changes_{stem}")

    table = default_comparison_rows(summaries, calibration_note if calibration is not None else None)
    records, _ = load_records(output_dir / "all")
    across = summarize_records(records)
    if across is None:
        notes.append("across-model percent changes (Fig. 2b-c counterpart) come from --all; "
                     f"no --all results in {output_dir / 'all'} yet")
    else:
        table += across_model_rows(across)
    record = {
        "model": str(identifier),
        "settings": maximizing.settings | {"seed": arguments.seed},
        "synthesized_maximizing_responses": max_responses,
        "synthesized_maximizing_initial_responses": maximizing.initial_responses,
        "synthesized_minimizing_responses": min_responses,
        "pool": {"num_images": len(pool), "num_normal": int(normal.sum()), "normal_sessions": normal_sessions,
                 "all_sessions": sessions, "normal_mean": reference,
                 "normal_min": float(normal_responses.min()), "normal_max": float(normal_responses.max()),
                 "top_images": [{"session": int(sources[row, 0]), "image": int(sources[row, 1]),
                                 "response": float(responses[row])} for row in order[:9]]},
        "calibration": None if calibration is None else {"intercept": calibration[0], "slope": calibration[1],
                                                         "note": calibration_note},
        "adversarial": {direction: {"base_images": [{"session": int(sources[row, 0]), "image": int(sources[row, 1])}
                                                    for row in base_rows],
                                    "base_responses": result.base_responses, "responses": result.responses,
                                    "max_pixel_change": result.max_pixel_change, "steps": result.num_steps}
                        for direction, result in adversarial.items()},
        "smooth_minus": [{"base": item.base_response, "smooth_minus": item.response, "patches": item.patches,
                          "random_control": control.response, "random_patches": control.patches}
                         for item, control in zip(smooth_results, random_results, strict=True)],
        "percent_changes": summaries,
        "across_models": across,
        "comparison": table,
        "notes": notes,
    }
    return record, table, timings


def default_comparison_rows(summaries, calibration_note) -> list[dict]:
    """Comparison rows of one model's percent changes against Fig. 2."""
    row = comparison_row
    table = []
    for name, label in (("maximizing_normal", "max. normal image vs random normal (% change)"),
                        ("maximizing_synthesized", "max. synthesized image vs random normal (% change)"),
                        ("adversarial_increase", "adversarial+ vs base (% change)"),
                        ("adversarial_decrease", "adversarial- vs base (% change)"),
                        ("smooth_minus", "smooth- vs base (% change)")):
        calibrated, raw, ranged = (summaries[name][kind] for kind in KINDS)
        others = f"raw-output formula {format_change(raw)}; % of normal range {format_change(ranged)}"
        if calibration_note is None:
            table.append(row(label, format_published(name), None, "not computable",
                             f"the model's session has no images in the release for the spike-count "
                             f"calibration; {others}"))
        else:
            table.append(row(label, format_published(name), format_change(calibrated),
                             status_against(PUBLISHED[name][0], calibrated["mean"]),
                             f"ONE model, model-predicted (calibrated to spike counts: {calibration_note}); "
                             f"{others}; published: real neurons, later sessions"))
    table.append(row("smooth- random-patch control (% change)", None,
                     format_change(summaries["smooth_random_control"]["calibrated"]), "approximate",
                     "control: the same number of random patches smoothed; should change less than smooth-"))
    return table


# ----------------------------------------------------------------- --all


def run_all(arguments, data_root, output_dir) -> tuple[dict, list, dict]:
    timings, notes = {}, []
    folder = output_dir / "all"
    folder.mkdir(parents=True, exist_ok=True)
    identifiers = parse_models(arguments.models)
    pending = [identifier for identifier in identifiers if not is_done(folder, identifier)]
    print(f"--all: {len(identifiers) - len(pending)} of {len(identifiers)} models already done in {folder}; "
          f"{len(pending)} to go")
    start = time.perf_counter()
    if pending:
        pool, _ = load_image_pool(normal_image_sessions(data_root), data_root,
                                  size=arguments.pool_size or ALL_POOL_SIZE, seed=arguments.seed)
        settings = {"steps": arguments.steps, "seed": arguments.seed, "grayscale": arguments.grayscale}
        with tqdm(total=len(pending), desc="models") as bar:
            # Pool and calibration predictions of a chunk of models run together
            # (stacked fast path); each finished model is saved at once (resumable).
            for first in range(0, len(pending), CHUNK):
                chunk = pending[first : first + CHUNK]
                normal = pool_responses(chunk, pool, data_root, show_progress=False)
                calibrations = calibrate_models(chunk, data_root)
                for row, identifier in enumerate(chunk):
                    model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
                    result = synthesize_images(model, num_images=1, num_steps=arguments.steps, seed=arguments.seed,
                                               grayscale=arguments.grayscale)
                    image = np.round(result.images).astype(np.uint8)
                    record = make_record(identifier, float(predict_raw(model, image)[0]),
                                         float(result.initial_responses[0]), normal[row],
                                         *calibrations[identifier.stem], settings)
                    write_record(folder, identifier, image, record)
                    bar.update(1)
        timings["per model"] = (time.perf_counter() - start) / len(pending)
    timings["synthesis and pool"] = time.perf_counter() - start
    records, images = load_records(folder)
    across = summarize_records(records)
    if len(records) < 219:
        notes.append(f"{219 - len(records)} of 219 models have no synthesized image yet (run --all again to resume)")
    uncalibrated = sum(item["calibration"] is None for item in records)
    if uncalibrated:
        notes.append(f"{uncalibrated} models (session 211022) cannot be calibrated to spike counts: their "
                     "session's image zip is not in the release; they count in the raw and %-of-range rows only")
    labels = [f"{identifier.session_id}/{identifier.neuron}" for identifier in all_model_ids()]
    steps = sorted({item["steps"] for item in records})
    save(figure_sheet(images, labels, f"Maximizing synthesized image of each compact model ({len(records)} of "
                                      f"219; {steps} steps)"), output_dir / "ext_data_fig3_sheet")
    table = []
    if across is not None:
        save(figure_across(per_model_changes(records, "maximizing_normal"),
                           per_model_changes(records, "maximizing_synthesized"),
                           f"Model-predicted percent changes over random normal images ({len(records)} models)"),
             output_dir / "fig2bc_across_models")
        table = across_model_rows(across)
        outputs.write_csv(output_dir / "all_models.csv",
                          [{key: value for key, value in item.items() if key != "calibration"} for item in records])
    return {"across_models": across, "comparison": table, "notes": notes}, table, timings


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    if arguments.all:
        record, table, timings = run_all(arguments, data_root, output_dir)
        name = "summary_all.json"
    else:
        record, table, timings = run_default(arguments, data_root, output_dir)
        name = "summary.json"
    timings["total"] = time.perf_counter() - started
    record["timings_seconds"] = timings
    outputs.write_json(output_dir / name, record)
    if table:
        print()
        print(format_comparison_table(table))
    if "percent_changes" in record:
        print(f"\nmodel-predicted percent changes for {record['model']} (calibrated | raw formula | % of range):")
        for change, values in record["percent_changes"].items():
            print(f"  {change:34s} " + " | ".join(format_change(values[kind]) for kind in KINDS))
    for note in record.get("notes", []):
        print(f"note: {note}")
    print(f"\nwrote {output_dir}/{name} and figures")
    print(format_timings(timings))
    return record


def main(argv=None) -> dict:
    return run_script(parse_arguments, run, argv)


if __name__ == "__main__":
    main()

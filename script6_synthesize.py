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
the across-model percent changes (Fig. 2b-c counterpart). It also makes one
minimizing image per model (``all/<model>_minimize.npy`` and ``.json``;
``--num-minimizing 0`` skips them), which the explorer
(``script9_explorer.py``) shows beside the maximizing one.

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

Expected run time on this 2-core CPU: default run under a minute (48 s
measured on the idle machine by benchmarks/bench_paper.py); ``--all`` about
11.5 minutes for the 219 models (689 s measured on 2026-12-05: maximizing
images with their pool and calibration 392 s, 1.8 s per model; minimizing
images 286 s, 1.3 s per model; 300 steps each, the synthesis loop traced
once for all models; 35-50 minutes before it was); interrupt and rerun to
resume.

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

import time

from classes.analysis import preferred_stimuli, synthesis_sheet
from classes.analysis.causal_images import DEFAULT_MAX_PIXEL_CHANGE, DEFAULT_NUM_SMOOTHED_PATCHES
from classes.analysis.synthesis import DEFAULT_NUM_STEPS
from classes.compact.architecture import model_id
from classes.compact.choice import parse_model_list
from classes.compact.model import load_compact_model
from classes.figures import synthesis as synthesis_figures
from classes.reporting import script_support
from classes.runtime import outputs


def run(arguments) -> dict:
    started = time.perf_counter()
    # Per-model records under all/ are resumed by --all and read by the default run.
    data_root, output_dir = script_support.start_script(arguments, __file__, keep=("all",))
    if arguments.all:
        record, timings = run_all(arguments, data_root, output_dir)
        name, changes = "summary_all.json", None
    else:
        record, timings = run_default(arguments, data_root, output_dir)
        name = "summary.json"
        changes = synthesis_figures.format_model_changes(record["model"], record["percent_changes"])
    timings["total"] = time.perf_counter() - started
    record["timings_seconds"] = timings
    script_support.report_results(output_dir, record, record["comparison"], f"{output_dir}/{name} and figures",
                   script_support.format_timings(timings), record["notes"], extra_text=changes, result_name=name)
    return record


def run_default(arguments, data_root, output_dir) -> tuple[dict, dict]:
    """One model: synthesized images, pool, adversarial, smooth- and saliency images, percent changes."""
    timings, identifier = {}, model_id(arguments.session, arguments.neuron)
    model = load_compact_model(identifier.session_id, identifier.neuron, data_root=data_root)
    start = time.perf_counter()
    synthesized = {}
    for name, direction, count in (("maximizing", "maximize", arguments.num_images),
                                   ("minimizing", "minimize", arguments.num_minimizing)):
        if count:
            synthesized[name] = preferred_stimuli.synthesize_saved(model, direction, count, arguments.steps,
                                                                   arguments.seed, arguments.grayscale)
            outputs.write_npy(output_dir / f"synthesized_{name}_{identifier.stem}.npy", synthesized[name].images)
    timings["synthesis"] = time.perf_counter() - start
    start = time.perf_counter()
    pool = preferred_stimuli.respond_to_pool(identifier, data_root, arguments.pool_size, arguments.seed)
    timings["image pool and calibration"] = time.perf_counter() - start
    start = time.perf_counter()
    base_rows, adversarial = preferred_stimuli.adversarial_tests(model, pool, arguments.num_base_images,
                                                                 arguments.max_pixel_change, arguments.seed)
    timings["adversarial"] = time.perf_counter() - start
    start = time.perf_counter()
    smooth = preferred_stimuli.smooth_tests(model, pool, synthesized["maximizing"], arguments.num_smooth_images,
                                            arguments.smooth_patches, arguments.saliency_stride, arguments.seed)
    timings["smooth- and saliency"] = time.perf_counter() - start

    stimuli = preferred_stimuli.PreferredStimuli(identifier, synthesized["maximizing"], synthesized.get("minimizing"),
                                                 pool, base_rows, adversarial, smooth)
    summaries = preferred_stimuli.model_percent_changes(stimuli)
    outputs.save_figures(synthesis_figures.preferred_stimuli_figures(
        stimuli, summaries, arguments.max_pixel_change, arguments.smooth_patches), output_dir)
    across, across_notes = synthesis_sheet.load_across_models(output_dir / "all")
    notes = ([pool.calibration_note] if pool.calibration is None else []) + across_notes
    table = synthesis_figures.default_comparison_rows(
        summaries, None if pool.calibration is None else pool.calibration_note, across)
    record = preferred_stimuli.preferred_stimuli_record(stimuli, summaries)
    return record | {"across_models": across, "comparison": table, "notes": notes}, timings


def run_all(arguments, data_root, output_dir) -> tuple[dict, dict]:
    """One maximizing and one minimizing image per chosen model (resumable), the sheet and the across-model changes."""
    timings, folder = {}, output_dir / "all"
    folder.mkdir(parents=True, exist_ok=True)
    identifiers = parse_model_list(arguments.models)
    pending = [identifier for identifier in identifiers if not synthesis_sheet.is_done(folder, identifier)]
    print(f"--all: {len(identifiers) - len(pending)} of {len(identifiers)} models already done in {script_support.shown(folder)}; "
          f"{len(pending)} to go")
    start = time.perf_counter()
    if pending:
        synthesis_sheet.synthesize_sheet(pending, folder, data_root, arguments.steps, arguments.seed,
                                         arguments.grayscale, arguments.pool_size or synthesis_sheet.SHEET_POOL_SIZE)
        timings["per model"] = (time.perf_counter() - start) / len(pending)
    timings["synthesis and pool"] = time.perf_counter() - start
    if arguments.num_minimizing:
        start = time.perf_counter()
        lacking = [identifier for identifier in identifiers
                   if not synthesis_sheet.direction_done(folder, identifier, "minimize")]
        synthesis_sheet.synthesize_direction(lacking, folder, data_root, "minimize", arguments.steps, arguments.seed,
                                             arguments.grayscale)
        timings["minimizing images"] = time.perf_counter() - start
    records, images = synthesis_sheet.load_records(folder)
    across = synthesis_sheet.summarize_records(records)
    outputs.save_figures(synthesis_figures.sheet_figures(records, images, across), output_dir)
    table = []
    if across is not None:
        table = synthesis_figures.across_model_rows(across)
        outputs.write_csv(output_dir / "all_models.csv",
                          [{key: value for key, value in item.items() if key != "calibration"} for item in records])
    return {"across_models": across, "comparison": table, "notes": synthesis_sheet.sheet_notes(records)}, timings


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--session", default="190923", help="test session of the chosen model")
    parser.add_argument("--neuron", type=int, default=0, help="0-based neuron index in --session")
    parser.add_argument("--num-images", type=int, default=9, help="maximizing images synthesized")
    parser.add_argument("--num-minimizing", type=int, default=3,
                        help="minimizing images (0: none); with --all, any positive number makes one per model")
    parser.add_argument("--steps", type=int, default=DEFAULT_NUM_STEPS, help="gradient steps per image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start noise and of every random choice")
    parser.add_argument("--grayscale", action="store_true", help="synthesize grayscale images")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="random subset of candidate images (default: every image in the zips; "
                        f"with --all, {synthesis_sheet.SHEET_POOL_SIZE} normal images)")
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
                        help="one maximizing image per model for all 219 models (Ext. Data Fig. 3) and one "
                        "minimizing image (for the explorer); resumable")
    parser.add_argument("--models", default="all",
                        help="with --all: comma-separated models as session/neuron (e.g. 190923/0), or 'all'")
    arguments = script_support.parse(parser, argv)
    for name in ("num_images", "steps", "num_base_images", "num_smooth_images", "smooth_patches",
                 "saliency_stride"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.num_minimizing < 0 or (arguments.pool_size is not None and arguments.pool_size < 10):
        parser.error("--num-minimizing must be >= 0 and --pool-size >= 10")
    if not arguments.max_pixel_change > 0:
        parser.error("--max-pixel-change must be positive")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

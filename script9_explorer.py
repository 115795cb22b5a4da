"""The V4 explorer: a static website with a page for every compact model (issue 12).

What the authors promised and never released: a site where anyone can browse
the 219 compact models of V4 neurons. ``index.html`` shows every model as
its maximizing synthesized image, filtered and sorted by session, animal,
Pearson r, noise-corrected R2 (approximate, as script4), filters and dot
selectivity; ``figures.html`` holds scripts 1-8's figures and published-vs-
reproduced tables. Each ``neurons/<session>_neuron<k>.html`` shows the
model's preferred and least-preferred release images (of all 12,640),
its maximizing and minimizing synthesized images (Fig. 2a), all its weights
drawn layer by layer (Fig. 1j), prediction vs V4 on the held-out images,
dot tuning (Fig. 4), the most similar models (signal correlation, Fig. 3)
and the model running live in the page: draw, upload or pick an image, or
synthesize a preferred image by the gradient ascent of SPEC section 7, in
JavaScript from the exported weights. The rendered tutorials (``python -m
tutorials.build --out docs/tutorials``), when built, are copied into
``tutorials/`` and linked from the front page, which otherwise says how to
build them. Nothing is fetched from the internet; the site works from
``file://`` and any static host.

The build reuses ``script6_synthesize.py --all``'s maximizing images and
computes the rest into ``--cache-dir`` (resumable, with progress bars; a
rebuild reads it back): responses of every model to the release's images
and the dot screen (the fast engine of classes.prediction), minimizing (and
missing maximizing) images, dot tuning.

Commands::

    python script9_explorer.py                                   # results/explorer/
    python script9_explorer.py --neurons 190923/0,201025/2       # a partial site
    python script9_explorer.py --serve                           # build, then serve on localhost
    python script9_explorer.py --pool-size 2000                  # fewer release images (faster first build)
    python -m tutorials.build --out docs/tutorials && python script9_explorer.py   # with the tutorials

Expected run time on this 2-core CPU (all 219 models, measured on
2026-12-05 from a fresh clone and an empty cache): a first build with
``script6_synthesize.py --all``'s images present 12 minutes (730 s: the
responses of every model to the 12,031 distinct release images and the 294
screen dots 678 s, dot tuning 45 s, pages 4 s); without them the
maximizing and minimizing images are synthesized here, 519 s more (about 21
minutes); a rebuild from the cache about 15 s. ``--pool-size`` shortens the
response pass in proportion to the images kept.

Published numbers compared with: 219 compact models; median 164
convolutional filters (Fig. 1i inset); mean squared signal correlation
between models rho^2 = 0.11 (Fig. 3, text).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from classes.analysis.layer_comparison import signal_correlation
from classes.analysis.synthesis import DEFAULT_NUM_STEPS
from classes.compact.architecture import all_model_ids
from classes.compact.choice import parse_model_list
from classes.explorer import responses, site, site_files, summaries
from classes.explorer.dot_tuning import dot_records
from classes.explorer.synthesized import synthesized_images
from classes.figures.explorer import comparison_rows
from classes.reporting import script_support
from classes.runtime.paths import REPOSITORY_ROOT

# python -m tutorials.build's default --out (tutorials.build.DEFAULT_OUTPUT, not imported: it needs nbconvert).
TUTORIALS_DIR = REPOSITORY_ROOT / "docs" / "tutorials"


def choose_models(text: str) -> list:
    """The models of ``--neurons``, in the release's order (previous / next follow it)."""
    chosen = set(parse_model_list(text, "--neurons"))
    return [identifier for identifier in all_model_ids() if identifier in chosen]


def timed(timings: dict, name: str, function):
    """Runs ``function()``, adding its seconds to ``timings[name]``."""
    start = time.perf_counter()
    result = function()
    timings[name] = time.perf_counter() - start
    return result


def model_responses(arguments, models, data_root):
    """The images, and every model's responses to them and to the dot screen (cached)."""
    image_set = responses.load_image_set(data_root, arguments.pool_size, arguments.seed)
    folder = responses.response_folder(arguments.cache_dir, image_set)
    responses.compute_responses(models, image_set, folder, data_root)
    return (image_set, *responses.load_responses(models, image_set, folder))


def compute_results(arguments, models, data_root, timings) -> site.ExplorerResults:
    """Responses, synthesized images, dot tuning, scores and similarities (cached, resumable)."""
    cache = arguments.cache_dir
    image_set, natural, dots = timed(timings, "images and responses",
                                     lambda: model_responses(arguments, models, data_root))
    synthesized = timed(timings, "synthesized images", lambda: synthesized_images(
        models, cache / f"synthesis_steps{arguments.steps}_seed{arguments.seed}", arguments.script6_dir, data_root,
        arguments.steps, arguments.seed))
    records = timed(timings, "dot tuning", lambda: dot_records(
        models, dots, natural[:, image_set.normal], image_set.dot_labels,
        cache / f"dots_grid{arguments.dot_grid}_seed{arguments.seed}", arguments.dot_grid, arguments.seed, data_root))
    scores = timed(timings, "scores", lambda: summaries.held_out_scores(models, image_set, natural, data_root))
    return site.ExplorerResults(models, image_set, natural, synthesized, records, scores,
                                summaries.signal_correlations(natural))


def write_pages(arguments, output_dir, results, data_root) -> dict:
    """The site's files, with a progress bar over the pages."""
    with tqdm(total=len(results.models), desc="pages") as bar:
        return site.write_site(output_dir, results, arguments.results_dir, arguments.page_steps, data_root, bar,
                               tutorials_dir=arguments.tutorials_dir)


def compare_with_paper(results, data_root) -> list[dict]:
    """Models with a page, their median filter count and signal correlation vs the paper's."""
    normal = results.natural[:, results.image_set.normal]
    signal = signal_correlation(normal) if len(results.models) > 1 else None
    filters = [summaries.model_facts(identifier, data_root)["convolutional_filters"] for identifier in results.models]
    return comparison_rows(len(results.models), filters, signal, normal.shape[1])


def run(arguments) -> dict:
    started, timings = time.perf_counter(), {}
    models = choose_models(arguments.neurons)
    data_root, output_dir = script_support.start_script(arguments, "explorer")
    results = compute_results(arguments, models, data_root, timings)
    written = timed(timings, "pages", lambda: write_pages(arguments, output_dir, results, data_root))
    table = compare_with_paper(results, data_root)
    timings["total"] = time.perf_counter() - started
    record = {"comparison": table, "site": written, "num_images": int(results.natural.shape[1]),
              "cache_dir": str(arguments.cache_dir), "timings_seconds": timings}
    script_support.report_results(
        output_dir, record, table,
        f"{output_dir}: index.html, figures.html and {written['pages']} neuron pages ({written['files']} files, "
        f"{written['bytes'] / 1e6:.1f} MB); open {output_dir / 'index.html'}",
        script_support.format_timings(timings), result_name="build.json")
    if arguments.serve:
        site_files.serve(output_dir, arguments.port)
    return record


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--neurons", default="all",
                        help="models with a page: comma-separated session/neuron (e.g. 190923/0,201025/2) or 'all'")
    parser.add_argument("--serve", action="store_true", help="serve the site on http://127.0.0.1:--port/ when built")
    parser.add_argument("--port", type=int, default=8000, help="port of --serve (0: any free port)")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="a seeded random subset of the release's images (plus the held-out halves) instead "
                        "of all 12,640: a faster first build")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthesis noise, the pool and the dots")
    parser.add_argument("--steps", type=int, default=DEFAULT_NUM_STEPS,
                        help="gradient steps of the synthesized images made here (script6's: 300)")
    parser.add_argument("--page-steps", type=int, default=100, help="default step budget of the in-page synthesis")
    parser.add_argument("--dot-grid", type=int, default=14, help="dot locations per side of the location tuning")
    parser.add_argument("--cache-dir", default=str(REPOSITORY_ROOT / "results" / "explorer_cache"),
                        help="where computed responses, images and tunings are kept (default results/explorer_cache)")
    parser.add_argument("--script6-dir", default=str(REPOSITORY_ROOT / "results" / "script6_synthesize" / "all"),
                        help="script6_synthesize.py --all's folder of maximizing images, reused when present")
    parser.add_argument("--results-dir", default=str(REPOSITORY_ROOT / "results"),
                        help="the folder of scripts 1-8's results, for the figures page")
    parser.add_argument("--tutorials-dir", default=str(TUTORIALS_DIR),
                        help="the rendered tutorials (python -m tutorials.build --out DIR), copied into the site "
                        "when built (default docs/tutorials)")
    arguments = script_support.parse(parser, argv)
    for name in ("steps", "page_steps", "dot_grid"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.pool_size is not None and arguments.pool_size < 10:
        parser.error("--pool-size must be at least 10")
    if not 0 <= arguments.port <= 65535 or arguments.dot_grid > 112:
        parser.error("--port must be 0-65535 and --dot-grid at most 112")
    arguments.cache_dir, arguments.results_dir = Path(arguments.cache_dir), Path(arguments.results_dir)
    arguments.script6_dir, arguments.tutorials_dir = Path(arguments.script6_dir), Path(arguments.tutorials_dir)
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

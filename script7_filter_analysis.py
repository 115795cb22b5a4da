"""Inside the compact models: filters per layer, kernel similarity, CKA (Fig. 3a-c).

- Fig. 3a: filters per layer of all 219 compact models (dots) and medians.
- Fig. 3b: kernel similarity between the kernels of the same layer in two
  models (definition in :mod:`classes.analysis.kernel_similarity`: symmetrised mean
  best-match absolute cosine similarity; layer 0's 5x5x3 kernels, layers
  1-4's 5x5 depthwise kernels), over 500 random pairs of models (mean and
  s.d.) and over all pairs, against standard-normal kernels of the same
  counts; permutation test between paper layers 2-3 and 4-5.
- Fig. 3c: linear CKA between the activity (after ReLU) of the same layer
  in two models over all 23,871 model pairs, on normal images from the
  release; permutation test between paper layers 1-2 and 3-4.
- Signal correlation: mean squared Pearson correlation between the outputs
  of all pairs of compact models on the same normal images.

Layer numbering: the paper's layers 1-5 are the code's ``layer0``..``layer4``
(paper layer = code layer + 1). Every figure and table names both.

Images: ``--num-images`` (default 1000) normal images drawn at random from
the release's sessions that hold only normal images and whose zip is present
(190923, 201025, 210224, 210225, 210621: 5,600 images); the paper used
10,000. Gram matrices for CKA are estimated from ``--positions`` (default
512) random spatial positions per layer, the same for all models: 512 of
12,544 in layer 0, of 3,136 in layer 1 and of 784 in layers 2-4 (a layer
with no more positions than that uses all of them, exactly). Checked on 200
images and three model pairs: at 512 positions the CKA of layers 0-1 was
0.005-0.016 below the exact value (0.01-0.07 below at 128 positions). The
centred, normalized Gram matrices are stored once per model and layer on
disk (float32, ``<out>/gram_cache``, 4.4 GB at 1,000 images; deleted at the
end unless ``--keep-cache``; an interrupted run resumes from it).

Command::

    python script7_filter_analysis.py                    # results/script7_filter_analysis/
    python script7_filter_analysis.py --num-images 500   # faster
    python script7_filter_analysis.py --quick --out /tmp/s7   # 8 models, 60 images (a minute)

Expected run time on the 2-core CPU: about 3.7 minutes (219 s measured by
benchmarks/bench_paper.py on 2026-12-05 after the kernel's Winograd layer 0,
230 s before it: layer activity sampled by the
compiled kernel into memory reused model after model, about 90 s, then the
Gram matrices by BLAS ``ssyrk``, about 130 s, and the kernel similarities;
252-286 s before the reuse); ``--quick`` about a minute.

Published numbers compared with (Cowley et al. 2023, Fig. 3a-c and text):
about 50 filters in early layers and 5-10 in deep layers; kernel similarity
higher in layers 2-3 than in layers 4-5; CKA higher in layers 1-2 than in
layers 3-4 (about 23,000 model pairs); mean squared signal correlation
between compact models rho^2 = 0.11 (10,000 normal images).
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from classes.analysis.layer_comparison import (
    cka_analysis,
    compute_grams,
    filters_per_layer,
    kernel_similarity_analysis,
    signal_correlation,
)
from classes.compact.architecture import load_nums_filters
from classes.compact.choice import spread_models
from classes.data.normal_images import load_normal_images
from classes.figures.filter_analysis import (
    comparison_rows,
    save_filter_figures,
    summarize,
    write_tables,
)
from classes.reporting import script_support
from classes.runtime import outputs


def choose_pairable_models(num_models):
    """The models compared: ``--num-models`` spread over the 219, at least two to form pairs."""
    models = spread_models(num_models)
    if len(models) < 2:
        raise ValueError(f"--num-models must be at least 2 (script 7 compares pairs of models); got {num_models}.")
    return models


def run(arguments) -> dict:
    started = time.perf_counter()
    models = choose_pairable_models(arguments.num_models)
    data_root, output_dir = script_support.start_script(arguments, __file__, keep=("gram_cache",))
    timings = {"load models": 0.0, "forward passes": 0.0, "Gram matrices": 0.0}
    nums_filters = np.array([load_nums_filters(identifier, data_root) for identifier in models])
    filters = filters_per_layer(nums_filters)

    start = time.perf_counter()
    kernels = kernel_similarity_analysis(models, data_root, arguments.runs, arguments.permutations, arguments.seed)
    timings["kernel similarity"] = time.perf_counter() - start
    start = time.perf_counter()
    images, picked = load_normal_images(arguments.num_images, arguments.seed, data_root)
    timings["load images"] = time.perf_counter() - start
    store = compute_grams(models, data_root, images, [f"{session}/{number}" for session, number in picked],
                          output_dir / "gram_cache", arguments.positions, arguments.seed, arguments.batch_size,
                          timings)
    start = time.perf_counter()
    cka = cka_analysis(store, arguments.permutations, arguments.seed)
    timings["CKA and tests"] = time.perf_counter() - start
    responses = np.array(store.responses)
    del store  # closes the memory maps before their folder is deleted
    signal = signal_correlation(responses)

    table = comparison_rows(filters, kernels, cka, signal, len(models), len(images))
    save_filter_figures(output_dir, nums_filters, filters, kernels, cka, signal)
    write_tables(output_dir, models, nums_filters, kernels, cka, signal, responses)
    if not arguments.keep_cache:
        shutil.rmtree(output_dir / "gram_cache", ignore_errors=True)
    timings["total"] = time.perf_counter() - started
    summary = summarize(arguments, models, picked, filters, kernels, cka, signal, table, timings)
    outputs.write_csv(output_dir / "comparison.csv", table)
    script_support.report_results(output_dir, summary, table,
                   f"{output_dir}: fig3a_filters_per_layer, fig3b_kernel_similarity, fig3c_cka, "
                   "signal_correlation (.png/.pdf), summary.json, comparison.csv, per_model.csv, per_layer.csv, "
                   "kernel_similarity_runs.csv, matrices.npz", script_support.format_timings(timings))
    return summary


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--num-images", type=int, default=1000,
                        help="normal images for CKA and signal correlation (default 1000; paper 10,000)")
    parser.add_argument("--positions", type=int, default=512,
                        help="random spatial positions per layer for the Gram matrices (default 512)")
    parser.add_argument("--runs", type=int, default=500, help="random model pairs for Fig. 3b (paper: 500)")
    parser.add_argument("--permutations", type=int, default=2000, help="permutations per test (default 2000)")
    parser.add_argument("--num-models", type=int, default=None,
                        help="use only this many models (at least 2), spread over the 219 (default all)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="random seed (images, positions, pairs)")
    parser.add_argument("--keep-cache", action="store_true",
                        help="keep the on-disk Gram matrices in <out>/gram_cache after the run")
    parser.add_argument("--quick", action="store_true",
                        help="a small test run: 8 models, 60 images, 64 positions, 50 runs, 200 permutations")
    arguments = script_support.parse(parser, argv)
    if arguments.quick:
        # Quick values replace the defaults only; flags given explicitly still win.
        parser.set_defaults(num_models=8, num_images=60, positions=64, runs=50, permutations=200)
        arguments = parser.parse_args(argv)
    for name in ("num_images", "positions", "runs", "permutations", "batch_size"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if arguments.num_images < 3:
        parser.error("--num-images must be at least 3")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

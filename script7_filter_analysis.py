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

Expected run time on the 2-core CPU: an estimated 10-20 minutes alone (the default
run used 1,155 CPU-seconds, mostly forward passes of 219 models on 1,000
images and their Gram matrices; it took 77 minutes wall-clock while sharing
the 2 cores with other jobs); ``--quick`` about a minute.

Published numbers compared with (Cowley et al. 2023, Fig. 3a-c and text):
about 50 filters in early layers and 5-10 in deep layers; kernel similarity
higher in layers 2-3 than in layers 4-5; CKA higher in layers 1-2 than in
layers 3-4 (about 23,000 model pairs); mean squared signal correlation
between compact models rho^2 = 0.11 (10,000 normal images).
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np
from tqdm import tqdm

from classes.analysis.cka import (
    GramStore,
    activity_features,
    cka_matrix,
    normalized_gram,
    position_subset,
)
from classes.analysis.kernel_similarity import (
    all_pair_similarities,
    kernels_from_weights,
    permutation_test,
    sample_pair_similarities,
)
from classes.compact.model import (
    NUM_LAYERS,
    all_model_ids,
    load_nums_filters,
    load_weights_npy,
)
from classes.data.normal_images import load_normal_images
from classes.figures.filter_analysis import (
    figure_cka,
    figure_filters,
    figure_kernel_similarity,
    figure_signal,
)
from classes.reporting.comparison import comparison_row
from classes.reporting.script_support import (
    format_timings,
    report_results,
    run_script,
    start_script,
)
from classes.runtime import outputs

SCRIPT_NAME = "script7_filter_analysis"
MAP_SIZES = (112, 56, 28, 28, 28)
# Paper layers 2-3 vs 4-5 (kernel similarity) and 1-2 vs 3-4 (CKA), in code numbering.
KERNEL_GROUPS = ((1, 2), (3, 4))
CKA_GROUPS = ((0, 1), (2, 3))
PUBLISHED_RHO2 = 0.11


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=1000,
                        help="normal images for CKA and signal correlation (default 1000; paper 10,000)")
    parser.add_argument("--positions", type=int, default=512,
                        help="random spatial positions per layer for the Gram matrices (default 512)")
    parser.add_argument("--runs", type=int, default=500, help="random model pairs for Fig. 3b (paper: 500)")
    parser.add_argument("--permutations", type=int, default=2000, help="permutations per test (default 2000)")
    parser.add_argument("--num-models", type=int, default=None,
                        help="use only this many models, spread over the 219 (default all)")
    parser.add_argument("--batch-size", type=int, default=50, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="random seed (images, positions, pairs)")
    parser.add_argument("--keep-cache", action="store_true",
                        help="keep the on-disk Gram matrices in <out>/gram_cache after the run")
    parser.add_argument("--quick", action="store_true",
                        help="a small test run: 8 models, 60 images, 64 positions, 50 runs, 200 permutations")
    outputs.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    if arguments.quick:
        # Quick values replace the defaults only; flags given explicitly still win.
        parser.set_defaults(num_models=8, num_images=60, positions=64, runs=50, permutations=200)
        arguments = parser.parse_args(argv)
    for name in ("num_images", "positions", "runs", "permutations", "batch_size"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if arguments.num_images < 3:
        parser.error("--num-images must be at least 3")
    if arguments.num_models is not None and not 2 <= arguments.num_models <= 219:
        parser.error("--num-models must be between 2 and 219")
    return arguments


def choose_models(num_models):
    """All 219 models, or ``num_models`` of them spread evenly over the list."""
    models = all_model_ids()
    if num_models is None or num_models >= len(models):
        return models
    return [models[index] for index in np.linspace(0, len(models) - 1, num_models).round().astype(int)]


def filters_per_layer(nums_filters) -> dict:
    medians = np.median(nums_filters, axis=0)
    return {
        "medians": medians,
        "means": nums_filters.mean(axis=0),
        "minimum": nums_filters.min(axis=0),
        "maximum": nums_filters.max(axis=0),
    }


def kernel_similarity_analysis(models, arguments, data_root) -> dict:
    kernels = []
    for identifier in tqdm(models, desc="kernels"):
        weights = load_weights_npy(identifier, data_root)
        kernels.append([kernels_from_weights(weights, layer) for layer in range(NUM_LAYERS)])
    sampled = sample_pair_similarities(kernels, num_runs=arguments.runs, seed=arguments.seed)
    all_pairs = np.stack([all_pair_similarities(kernels, layer) for layer in range(NUM_LAYERS)])
    similarity, baseline = sampled["similarity"], sampled["baseline"]
    first, second = KERNEL_GROUPS
    test = permutation_test(similarity[:, list(first)], similarity[:, list(second)],
                            arguments.permutations, arguments.seed)
    adjusted = similarity - baseline
    adjusted_test = permutation_test(adjusted[:, list(first)], adjusted[:, list(second)],
                                     arguments.permutations, arguments.seed)
    return {
        "sampled": sampled,
        "all_pairs": all_pairs,
        "mean": similarity.mean(axis=0),
        "sd": similarity.std(axis=0, ddof=1) if len(similarity) > 1 else np.zeros(NUM_LAYERS),
        "baseline_mean": baseline.mean(axis=0),
        "baseline_sd": baseline.std(axis=0, ddof=1) if len(baseline) > 1 else np.zeros(NUM_LAYERS),
        "all_pairs_mean": all_pairs.mean(axis=1),
        "test": test,
        "test_above_baseline": adjusted_test,
    }


def compute_grams(models, images, arguments, data_root, output_dir, timings) -> GramStore:
    positions = [position_subset(size, size, arguments.positions, arguments.seed) for size in MAP_SIZES]
    key = {
        "models": [str(identifier) for identifier in models],
        "images": arguments.image_ids,
        "positions": arguments.positions,
        "seed": arguments.seed,
    }
    store = GramStore(output_dir / "gram_cache", key, len(models), len(images), NUM_LAYERS)
    if store.done.any():
        print(f"resuming: {int(store.done.sum())} of {len(models)} models already in {store.folder}")
    for index, identifier in enumerate(tqdm(models, desc="models (activity, Gram)")):
        if store.done[index]:
            continue
        start = time.perf_counter()
        weights = load_weights_npy(identifier, data_root)
        middle = time.perf_counter()
        features, responses = activity_features(weights, images, positions, arguments.batch_size)
        after = time.perf_counter()
        store.store(index, [normalized_gram(layer) for layer in features], responses)
        timings["load models"] += middle - start
        timings["forward passes"] += after - middle
        timings["Gram matrices"] += time.perf_counter() - after
    return store


def cka_analysis(store: GramStore, arguments) -> dict:
    num_models = store.done.size
    rows, columns = np.triu_indices(num_models, k=1)
    matrices = np.stack([cka_matrix(store.grams[layer]) for layer in range(NUM_LAYERS)])
    values = matrices[:, rows, columns]
    first, second = CKA_GROUPS
    test = permutation_test(values[list(first)], values[list(second)], arguments.permutations, arguments.seed)
    return {
        "matrices": matrices,
        "values": values,
        "mean": np.nanmean(values, axis=1),
        "sd": np.nanstd(values, axis=1, ddof=1),
        "median": np.nanmedian(values, axis=1),
        "num_pairs": int(values.shape[1]),
        "test": test,
    }


def signal_correlation(responses) -> dict:
    responses = np.asarray(responses, dtype=np.float64)
    correlation = np.corrcoef(responses)
    rows, columns = np.triu_indices(len(responses), k=1)
    squared = correlation[rows, columns] ** 2
    return {
        "mean_r2": float(np.nanmean(squared)),
        "median_r2": float(np.nanmedian(squared)),
        "mean_r": float(np.nanmean(correlation[rows, columns])),
        "squared": squared,
        "matrix": correlation,
    }


def _paper(layers) -> str:
    return "-".join(str(layer + 1) for layer in layers)


def comparison_rows(filters, kernels, cka, signal, num_models, num_images) -> list[dict]:
    row = comparison_row
    medians = filters["medians"]
    early_ok = bool(np.all(np.abs(medians[:2] - 50) <= 10))
    deep_ok = bool(np.all((medians[2:] >= 5) & (medians[2:] <= 10)))
    table = [
        row("Fig. 3a median filters, early layers (paper 1-2 = code 0-1)", "about 50",
            ", ".join(f"{value:.0f}" for value in medians[:2]), "reproduced" if early_ok else "differs"),
        row("Fig. 3a median filters, deep layers (paper 3-5 = code 2-4)", "5-10",
            ", ".join(f"{value:.0f}" for value in medians[2:]), "reproduced" if deep_ok else "differs",
            "" if deep_ok else "far fewer filters than early layers as published, but the medians of paper "
            "layers 3 and 5 are 3 (the pruning floor), below 5; means "
            + ", ".join(f"{value:.1f}" for value in filters["means"][2:])),
    ]
    for name, result, groups, claim in (
        ("Fig. 3b kernel similarity", kernels, KERNEL_GROUPS, "higher in layers 2-3 than 4-5"),
        ("Fig. 3c CKA", cka, CKA_GROUPS, "higher in layers 1-2 than 3-4"),
    ):
        test = result["test"]
        holds = test["difference"] > 0 and test["p_value"] < 0.05
        means = ", ".join(f"L{layer + 1} {result['mean'][layer]:.3f}" for layer in range(NUM_LAYERS))
        table.append(row(
            f"{name}: paper layers {_paper(groups[0])} vs {_paper(groups[1])}", claim,
            f"difference {test['difference']:+.3f}, p = {test['p_value']:.2g}",
            "reproduced" if holds else "differs",
            f"means per paper layer: {means}; permutation test of the difference of means "
            f"({test['num_permutations']} permutations, two-sided; pairs share models, so the values "
            "are not independent and p is optimistic)",
        ))
    kernel_adjusted = kernels["test_above_baseline"]
    table.append(row(
        "Fig. 3b kernel similarity above the normal baseline, layers 2-3 vs 4-5", "(not stated)",
        f"difference {kernel_adjusted['difference']:+.3f}, p = {kernel_adjusted['p_value']:.2g}",
        "reproduced" if kernel_adjusted["difference"] > 0 and kernel_adjusted["p_value"] < 0.05 else "differs",
        "similarity minus the standard-normal baseline of the same kernel counts",
    ))
    expected_pairs = num_models * (num_models - 1) // 2
    table.append(row("CKA model pairs per layer", "about 23,000", cka["num_pairs"],
                     "reproduced" if num_models == 219 else "differs",
                     "" if num_models == 219 else f"a subset of {num_models} models ({expected_pairs} pairs)"))
    difference = abs(signal["mean_r2"] - PUBLISHED_RHO2)
    status = "reproduced" if difference <= 0.02 else "approximate" if difference <= 0.05 else "differs"
    table.append(row("mean squared signal correlation rho^2", PUBLISHED_RHO2, signal["mean_r2"], status,
                     f"{num_images} normal images from the release (paper: 10,000); reproduced within "
                     "0.02, approximate within 0.05"))
    return table


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    timings = {"load models": 0.0, "forward passes": 0.0, "Gram matrices": 0.0}
    models = choose_models(arguments.num_models)
    nums_filters = np.array([load_nums_filters(identifier, data_root) for identifier in models])
    filters = filters_per_layer(nums_filters)

    start = time.perf_counter()
    kernels = kernel_similarity_analysis(models, arguments, data_root)
    timings["kernel similarity"] = time.perf_counter() - start

    start = time.perf_counter()
    images, picked = load_normal_images(arguments.num_images, arguments.seed, data_root)
    arguments.image_ids = [f"{session}/{number}" for session, number in picked]
    timings["load images"] = time.perf_counter() - start
    store = compute_grams(models, images, arguments, data_root, output_dir, timings)

    start = time.perf_counter()
    cka = cka_analysis(store, arguments)
    timings["CKA and tests"] = time.perf_counter() - start
    signal = signal_correlation(np.asarray(store.responses))
    table = comparison_rows(filters, kernels, cka, signal, len(models), len(images))

    outputs.save_figures((
        (figure_filters(nums_filters, filters["medians"]), "fig3a_filters_per_layer"),
        (figure_kernel_similarity(kernels), "fig3b_kernel_similarity"),
        (figure_cka(cka), "fig3c_cka"),
        (figure_signal(signal, PUBLISHED_RHO2), "signal_correlation"),
    ), output_dir)
    write_tables(output_dir, models, nums_filters, kernels, cka, signal, store)
    if not arguments.keep_cache:
        del store
        shutil.rmtree(output_dir / "gram_cache", ignore_errors=True)
    timings["total"] = time.perf_counter() - started
    summary = summarize(arguments, models, picked, filters, kernels, cka, signal, table, timings)
    outputs.write_csv(output_dir / "comparison.csv", table)
    report_results(output_dir, summary, table,
                   f"{output_dir}: fig3a_filters_per_layer, fig3b_kernel_similarity, fig3c_cka, "
                   "signal_correlation (.png/.pdf), summary.json, comparison.csv, per_model.csv, per_layer.csv, "
                   "kernel_similarity_runs.csv, matrices.npz", format_timings(timings))
    return summary


def write_tables(output_dir, models, nums_filters, kernels, cka, signal, store) -> None:
    outputs.write_csv(output_dir / "per_model.csv", [
        {"session": identifier.session_id, "neuron": identifier.neuron,
         **{f"K{layer}": int(nums_filters[index, layer]) for layer in range(NUM_LAYERS)}}
        for index, identifier in enumerate(models)
    ])
    outputs.write_csv(output_dir / "per_layer.csv", [
        {"code_layer": layer, "paper_layer": layer + 1,
         "median_filters": float(np.median(nums_filters[:, layer])),
         "kernel_similarity_mean": kernels["mean"][layer], "kernel_similarity_sd": kernels["sd"][layer],
         "baseline_mean": kernels["baseline_mean"][layer], "baseline_sd": kernels["baseline_sd"][layer],
         "kernel_similarity_all_pairs_mean": kernels["all_pairs_mean"][layer],
         "cka_mean": cka["mean"][layer], "cka_sd": cka["sd"][layer], "cka_median": cka["median"][layer]}
        for layer in range(NUM_LAYERS)
    ])
    sampled = kernels["sampled"]
    outputs.write_csv(output_dir / "kernel_similarity_runs.csv", [
        {"run": run, "model_a": str(models[pair[0]]), "model_b": str(models[pair[1]]),
         **{f"similarity_L{layer + 1}": sampled["similarity"][run, layer] for layer in range(NUM_LAYERS)},
         **{f"baseline_L{layer + 1}": sampled["baseline"][run, layer] for layer in range(NUM_LAYERS)}}
        for run, pair in enumerate(sampled["models"])
    ])

    def save(path):
        with open(path, "wb") as stream:
            np.savez_compressed(
                stream, cka=cka["matrices"], kernel_similarity_all_pairs=kernels["all_pairs"],
                signal_correlation=signal["matrix"], responses=np.asarray(store.responses),
                models=np.array([str(identifier) for identifier in models]),
            )

    outputs.write_atomically(output_dir / "matrices.npz", save)


def summarize(arguments, models, picked, filters, kernels, cka, signal, table, timings) -> dict:
    sessions = {}
    for session, _ in picked:
        sessions[session] = sessions.get(session, 0) + 1
    return {
        "comparison": table,
        "layer_numbering": "paper layer = code layer + 1 (paper 1-5 = layer0..layer4)",
        "num_models": len(models),
        "num_images": len(picked),
        "images_per_session": sessions,
        "positions_per_layer": [int(min(arguments.positions, size * size)) for size in MAP_SIZES],
        "filters_per_layer": filters,
        "kernel_similarity": {
            "definition": "S(A,B) = (mean_j max_k |cos(a_j,b_k)| + mean_k max_j |cos(a_j,b_k)|) / 2; "
                          "layer 0: 5x5x3 conv kernels, layers 1-4: 5x5 depthwise kernels",
            "runs": arguments.runs,
            "mean": kernels["mean"], "sd": kernels["sd"],
            "baseline_mean": kernels["baseline_mean"], "baseline_sd": kernels["baseline_sd"],
            "all_pairs_mean": kernels["all_pairs_mean"],
            "test_paper_layers_2_3_vs_4_5": kernels["test"],
            "test_above_baseline": kernels["test_above_baseline"],
        },
        "cka": {
            "num_pairs": cka["num_pairs"], "mean": cka["mean"], "sd": cka["sd"], "median": cka["median"],
            "test_paper_layers_1_2_vs_3_4": cka["test"],
        },
        "signal_correlation": {key: signal[key] for key in ("mean_r2", "median_r2", "mean_r")},
        "seed": arguments.seed,
        "timings_seconds": timings,
    }


def main(argv=None) -> dict:
    return run_script(parse_arguments, run, argv)


if __name__ == "__main__":
    main()

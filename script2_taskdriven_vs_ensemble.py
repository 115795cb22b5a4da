"""Task-driven features vs the ensemble model on V4 responses: Fig. 1b (and
Ext. Data Fig. 2).

For each held-out test session, the first half of the images (file order)
fits a linear mapping from model features to each neuron and the second half
is scored, per neuron, with the noise-corrected R2. Models: ResNet50
``conv4_block4_out`` features (ridge and factorized mappings) and the
25-member ensemble (each member's ``layer4_add`` embeddings mapped by ridge
and by the factorized mapping; predictions averaged over members).

The release holds neither the ResNet50 ImageNet weights nor the ensemble
members, and no raw repeats of the test sessions. So:

- with ``--resnet50-weights`` (and ``--ensemble-dir`` holding
  ``ensemble_model_member<i>.keras``) the per-neuron R2 are computed, with
  the noise-corrected R2 APPROXIMATE (Poisson noise model, trial variance =
  mean count; see classes/scoring/performance.py); test session 211022 has no image
  zip and is left out;
- without them it says which results are not computable and which files are
  missing, and still checks the ensemble member's architecture (layer names,
  output shapes, parameter counts) and the ResNet50 stage against the
  release's ``data_ensemble_model/ensemble_model_summary.txt``.

``--features random`` replaces ResNet50 by fixed random patch features (NOT
ResNet50): it exercises the whole path quickly, and its numbers are never
compared with the published ones.

Commands::

    python script2_taskdriven_vs_ensemble.py          # architecture check, the rest not computable
    python script2_taskdriven_vs_ensemble.py --resnet50-weights resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        --ensemble-dir results/ensemble               # the full comparison

Expected run time on this 2-core CPU: about 30 s without weights; with
weights several hours (ResNet50 features of 3,600 images take about half an
hour, the factorized mappings of 25 members most of the rest; ``--mappings
ridge`` and ``--max-members`` shorten it); minutes on a GPU.

Published numbers compared with (Cowley et al. 2023, Fig. 1b, Ext. Data
Fig. 2), median noise-corrected R2 over the test neurons: ensemble 0.61;
ResNet50 features with ridge 0.43, factorized 0.46; ensemble embeddings with
ridge 0.59, factorized 0.61.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from classes.data.images import available_image_sessions, load_images
from classes.data.responses import load_repeat_averaged
from classes.data.sessions import TEST_SESSIONS, get_session, held_out_indices
from classes.ensemble.architecture import FULL_CONFIG, build_member, parameter_counts
from classes.ensemble.embeddings import ensemble_mapped_predictions
from classes.ensemble.files import find_member_files, load_ensemble
from classes.ensemble.summary import (
    compare_with_summary,
    parse_summary_tables,
    release_member_table,
    release_summary_path,
)
from classes.ensemble.taskdriven_features import (
    RANDOM_FEATURES_LABEL,
    build_feature_extractor,
    extract_features,
    random_patch_features,
    resolve_weights_path,
)
from classes.reporting.comparison import comparison_row
from classes.reporting.script_support import report_results, run_script, start_script
from classes.runtime import outputs
from classes.scoring import metrics
from classes.scoring.factorized_mapping import FactorizedMapping
from classes.scoring.performance import POISSON_LABEL
from classes.scoring.ridge_mapping import RidgeMapping

SCRIPT_NAME = "script2_taskdriven_vs_ensemble"
MAPPINGS = ("ridge", "factorized")
PUBLISHED = {
    ("resnet50", "ridge"): 0.43,
    ("resnet50", "factorized"): 0.46,
    ("ensemble", "ridge"): 0.59,
    ("ensemble", "factorized"): 0.61,
}
PUBLISHED_ENSEMBLE = 0.61  # Fig. 1b's ensemble: its embeddings with the factorized mapping


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resnet50-weights", default=None,
                        help="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (ImageNet weights "
                        "of keras.applications); cannot be downloaded here")
    parser.add_argument("--ensemble-dir", default=None,
                        help="folder of ensemble_model_member<i>.keras (default: the release's "
                        "data_ensemble_model/, which lacks them)")
    parser.add_argument("--features", choices=("resnet50", "random"), default="resnet50",
                        help="'random': random patch features instead of ResNet50 (code-path check, "
                        "never compared with the published numbers)")
    parser.add_argument("--sessions", default=",".join(TEST_SESSIONS), help="comma-separated test sessions")
    parser.add_argument("--mappings", default=",".join(MAPPINGS), help="ridge, factorized or both")
    parser.add_argument("--max-members", type=int, default=None, help="use only the first N members")
    parser.add_argument("--max-images", type=int, default=None,
                        help="use only the first N images of each half (quick runs; not comparable)")
    parser.add_argument("--factorized-steps", type=int, default=300,
                        help="gradient steps per factorized fit")
    parser.add_argument("--skip-architecture-check", action="store_true",
                        help="skip building the member and ResNet50 stage for the summary check")
    outputs.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    for name in ("max_members", "max_images", "factorized_steps"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return arguments


def parse_choices(text: str, allowed, flag: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    for item in chosen:
        if item not in allowed:
            raise ValueError(f"{flag}: {item!r} is not one of {', '.join(allowed)}.")
    if not chosen:
        raise ValueError(f"{flag} chose nothing.")
    return chosen


def architecture_check(data_root) -> tuple[list[dict], dict]:
    """The member and the ResNet50 stage against the release's summary text."""
    row = comparison_row
    member = build_member(FULL_CONFIG, seed=31490)
    problems = compare_with_summary(member, release_member_table(data_root))
    counts = parameter_counts(member)
    text = release_summary_path(data_root).read_text(encoding="utf-8")
    stage_table = parse_summary_tables(text)[0]
    stage = build_feature_extractor("resnet50", allow_random_weights=True)
    stage_problems = compare_with_summary(stage, stage_table)
    published_member = "2,252,248 trainable + 5,120 non-trainable"
    rows = [
        row("ensemble member layers (names, types, shapes, parameters, inputs)",
            f"{len(release_member_table(data_root))} layers in the release summary",
            f"{len(member.layers)} layers, {len(problems)} differences",
            "reproduced" if not problems else "differs", "; ".join(problems[:5])),
        row("ensemble member parameters", published_member,
            f"{counts['trainable']:,} trainable + {counts['non_trainable']:,} non-trainable",
            "reproduced" if (counts["trainable"], counts["non_trainable"]) == (2_252_248, 5_120)
            else "differs"),
        row("member optimizer slots (SGD momentum)", "2,252,250", f"{counts['optimizer']:,}",
            "reproduced" if counts["optimizer"] == 2_252_250 else "differs"),
        row("ResNet50 stage (cut at conv4_block4_out) parameters",
            f"{sum(r.parameters for r in stage_table):,}", f"{stage.count_params():,}",
            "reproduced" if not stage_problems else "differs", "; ".join(stage_problems[:5])),
    ]
    return rows, {"member_problems": problems, "stage_problems": stage_problems, "member_counts": counts}


def score(predictions, means, session) -> dict:
    """Per-neuron scores against repeat-averaged held-out responses."""
    noise = metrics.poisson_noise_variance(means)
    return {
        "pearson_r": metrics.pearson_r(predictions, means),
        "raw_r2": metrics.raw_r2(predictions, means),
        "noise_corrected_r2_poisson": metrics.noise_corrected_r2_from_summary(
            predictions, means, noise, session.num_repeats
        ),
    }


def make_mapping(kind: str, arguments):
    if kind == "ridge":
        return RidgeMapping()
    return FactorizedMapping(num_steps=arguments.factorized_steps)


def evaluate_session(session_id, features_of, members, mappings, arguments, data_root) -> list[dict]:
    """Per-neuron rows for one session: every (model, mapping) available."""
    session = get_session(session_id)
    fit, evaluation = held_out_indices(session.session_id)
    if arguments.max_images:
        fit, evaluation = fit[: arguments.max_images], evaluation[: arguments.max_images]
    responses = load_repeat_averaged(session.session_id, data_root)
    images = load_images(session.session_id, np.concatenate([fit, evaluation]) + 1, data_root=data_root)
    features = features_of(images)
    fit_features, evaluation_features = features[: len(fit)], features[len(fit):]
    fit_responses, means = responses[:, fit], responses[:, evaluation]
    rows = []
    for mapping in mappings:
        feature_model = "random_features" if arguments.features == "random" else "resnet50"
        results = {feature_model: make_mapping(mapping, arguments).fit(fit_features, fit_responses)
                   .predict(evaluation_features)}
        if members:
            results["ensemble"] = ensemble_mapped_predictions(
                members, fit_features, fit_responses, evaluation_features,
                lambda mapping=mapping: make_mapping(mapping, arguments),
            )
        for model, predictions in results.items():
            scores = score(predictions, means, session)
            for neuron in range(session.num_neurons):
                rows.append({"session": session.session_id, "neuron": neuron, "model": model,
                             "mapping": mapping, "fit_images": len(fit),
                             "evaluation_images": len(evaluation),
                             **{key: value[neuron] for key, value in scores.items()}})
    return rows


def comparison_rows(rows, mappings, feature_note, ensemble_note, random_features) -> list[dict]:
    row = comparison_row
    table = []
    for (model, mapping), published in PUBLISHED.items():
        quantity = f"{'ResNet50' if model == 'resnet50' else 'ensemble'} {mapping} median noise-corrected R2"
        row_model = "random_features" if random_features and model == "resnet50" else model
        values = np.array([item["noise_corrected_r2_poisson"] for item in rows
                           if item["model"] == row_model and item["mapping"] == mapping])
        missing = [feature_note and "ResNet50 ImageNet weights (--resnet50-weights "
                   "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5)"]
        if model == "ensemble":
            missing.append(ensemble_note and "ensemble members (ensemble_model_member<i>.keras; "
                           "--ensemble-dir)")
        reason = "missing " + " and ".join(item for item in missing if item) if any(missing) else ""
        if mapping not in mappings:
            table.append(row(quantity, published, None, "not computable", "mapping not chosen (--mappings)"))
        elif reason:
            table.append(row(quantity, published, None, "not computable", reason))
        elif random_features:
            table.append(row(quantity, published, None, "not computable",
                             f"{RANDOM_FEATURES_LABEL}: code-path median {np.nanmedian(values):.3f} "
                             "in summary.json, not a reproduction"))
        else:
            table.append(row(quantity, published, float(np.nanmedian(values)), "approximate",
                             f"{POISSON_LABEL}; {len(values)} neurons"))
    ensemble = [entry for entry in table if entry["quantity"].startswith("ensemble factorized")][0]
    table.insert(0, {**ensemble, "quantity": "ensemble median noise-corrected R2 (Fig. 1b)",
                     "published": PUBLISHED_ENSEMBLE})
    return table


def figure_fig1b(rows, label: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    groups = list(dict.fromkeys((r["model"], r["mapping"]) for r in rows))
    figure, axis = pyplot.subplots(figsize=(1.8 * len(groups) + 2, 4))
    generator = np.random.default_rng(0)
    for position, (model, mapping) in enumerate(groups):
        values = np.array([r["noise_corrected_r2_poisson"] for r in rows
                           if r["model"] == model and r["mapping"] == mapping])
        axis.scatter(position + generator.uniform(-0.2, 0.2, len(values)), values, s=6, alpha=0.5)
        axis.plot([position - 0.3, position + 0.3], [np.nanmedian(values)] * 2, "k-", lw=2)
        published = PUBLISHED[("resnet50" if model == "random_features" else model, mapping)]
        axis.plot([position - 0.3, position + 0.3], [published] * 2, "r:", lw=2)
    axis.set_xticks(range(len(groups)), [f"{m}\n{k}" for m, k in groups])
    axis.set_ylabel("noise-corrected R2 (approx., Poisson)")
    axis.set_title(f"Fig. 1b: black = median, red dotted = published\n{label}", fontsize=9)
    return figure


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = start_script(arguments, SCRIPT_NAME)
    sessions = parse_choices(arguments.sessions, TEST_SESSIONS, "--sessions")
    mappings = parse_choices(arguments.mappings, MAPPINGS, "--mappings")
    notes, summary = [], {}
    table = []
    if not arguments.skip_architecture_check:
        architecture_rows, summary["architecture"] = architecture_check(data_root)
        table.extend(architecture_rows)

    random_features = arguments.features == "random"
    feature_note = ""
    extractor = None
    if not random_features:
        try:
            weights = resolve_weights_path(arguments.resnet50_weights)
        except FileNotFoundError as error:
            if arguments.resnet50_weights is not None:
                raise  # a path the user named must exist
            feature_note = f"ResNet50 ImageNet weights missing: {error}"
        else:
            extractor = build_feature_extractor("resnet50", weights)
    members, ensemble_note = [], ""
    ensemble_dir = arguments.ensemble_dir or data_root / "data_ensemble_model"
    try:
        find_member_files(ensemble_dir)
    except FileNotFoundError as error:
        if arguments.ensemble_dir is not None:
            raise
        ensemble_note = f"ensemble members missing: {error}"
    else:
        members = load_ensemble(ensemble_dir, arguments.max_members)
    if members and not random_features and not feature_note:
        expected = tuple(members[0].input_shape[1:])
        if expected != FULL_CONFIG.feature_shape:
            raise ValueError(f"The members in {ensemble_dir} take features {expected}, not ResNet50's "
                             f"{FULL_CONFIG.feature_shape}; were they trained with --tiny?")
    channels = members[0].input_shape[-1] if members else 16

    def features_of(images):
        if random_features:
            return random_patch_features(images, num_channels=channels)
        return extract_features(extractor, images, show_progress=True)

    present = set(available_image_sessions(data_root))
    rows = []
    if not feature_note:
        for session in sessions:
            if session not in present:
                notes.append(f"session {session}: its images (data_V4_responses/images/images_{session}.zip) "
                             "are not in the release; its neurons are left out")
                continue
            rows.extend(evaluate_session(session, features_of, members, mappings, arguments, data_root))
    if feature_note:
        notes.append(f"not computable: every R2 needs ResNet50 features ({feature_note})")
    if ensemble_note:
        notes.append(f"not computable: ensemble R2 ({ensemble_note})")
    if arguments.max_images:
        notes.append(f"--max-images {arguments.max_images}: only part of each half was used")
    table.extend(comparison_rows(rows, mappings, feature_note, ensemble_note, random_features))

    label = RANDOM_FEATURES_LABEL if random_features else POISSON_LABEL
    if rows:
        outputs.write_csv(output_dir / "per_neuron.csv", rows)
        outputs.save_figure(figure_fig1b(rows, label), output_dir / "fig1b_taskdriven_vs_ensemble")
        summary["medians"] = {
            f"{model} {mapping}": float(np.nanmedian([r["noise_corrected_r2_poisson"] for r in rows
                                                      if r["model"] == model and r["mapping"] == mapping]))
            for model, mapping in dict.fromkeys((r["model"], r["mapping"]) for r in rows)
        }
    summary.update({
        "comparison": table, "notes": notes, "features": "resnet50" if not random_features else label,
        "noise_corrected_r2_label": POISSON_LABEL, "num_members": len(members),
        "seconds": time.perf_counter() - started,
    })
    report_results(output_dir, summary, table,
                   f"{output_dir}/summary.json"
                   + (", per_neuron.csv, fig1b_taskdriven_vs_ensemble.(png|pdf)" if rows else ""),
                   f"time: {summary['seconds']:.1f} s", notes)
    return summary


def main(argv=None) -> dict:
    return run_script(parse_arguments, run, argv)


if __name__ == "__main__":
    main()

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

import time

from classes.compact.choice import choose_from
from classes.data.images import available_image_sessions
from classes.data.sessions import TEST_SESSIONS
from classes.ensemble.architecture import FULL_CONFIG
from classes.ensemble.files import find_member_files, load_ensemble
from classes.ensemble.taskdriven_features import (
    RANDOM_FEATURES_LABEL,
    build_feature_extractor,
    extract_features,
    random_patch_features,
    resolve_weights_path,
)
from classes.ensemble.taskdriven_scores import MAPPINGS, evaluate_session
from classes.figures.taskdriven import architecture_rows, comparison_rows, figure_fig1b, medians
from classes.reporting import script_support
from classes.runtime import outputs
from classes.scoring.performance import POISSON_LABEL


def load_feature_extractor(arguments):
    """``(ResNet50 cut at conv4_block4_out or None, why it is missing or "")``; a named missing file raises."""
    if arguments.features == "random":
        return None, ""
    try:
        weights = resolve_weights_path(arguments.resnet50_weights)
    except FileNotFoundError as error:
        if arguments.resnet50_weights is not None:
            raise  # a path the user named must exist
        return None, f"ResNet50 ImageNet weights missing: {error}"
    return build_feature_extractor("resnet50", weights), ""


def load_members(arguments, data_root, features_present: bool):
    """``(ensemble members, why they are missing or "")``; a named folder without members raises."""
    ensemble_dir = arguments.ensemble_dir or data_root / "data_ensemble_model"
    try:
        find_member_files(ensemble_dir)
    except FileNotFoundError as error:
        if arguments.ensemble_dir is not None:
            raise
        return [], f"ensemble members missing: {error}"
    members = load_ensemble(ensemble_dir, arguments.max_members)
    if members and arguments.features != "random" and features_present:
        expected = tuple(members[0].input_shape[1:])
        if expected != FULL_CONFIG.feature_shape:
            raise ValueError(f"The members in {ensemble_dir} take features {expected}, not ResNet50's "
                             f"{FULL_CONFIG.feature_shape}; were they trained with --tiny?")
    return members, ""


def evaluate_sessions(arguments, sessions, mappings, extractor, members, data_root):
    """Per-neuron rows of every chosen session with images, and notes on those left out."""
    channels = members[0].input_shape[-1] if members else 16

    def features_of(images):
        if arguments.features == "random":
            return random_patch_features(images, num_channels=channels)
        return extract_features(extractor, images, show_progress=True)

    present = set(available_image_sessions(data_root))
    rows, notes = [], []
    for session in sessions:
        if session not in present:
            notes.append(f"session {session}: its images (data_V4_responses/images/images_{session}.zip) "
                         "are not in the release; its neurons are left out")
            continue
        rows.extend(evaluate_session(
            session, features_of, members, mappings, data_root=data_root, max_images=arguments.max_images,
            feature_model="random_features" if arguments.features == "random" else "resnet50",
            factorized_steps=arguments.factorized_steps))
    return rows, notes


def missing_notes(arguments, feature_note: str, ensemble_note: str) -> list[str]:
    """Notes on what could not be computed and on partial runs."""
    notes = [f"not computable: every R2 needs ResNet50 features ({feature_note})" if feature_note else "",
             f"not computable: ensemble R2 ({ensemble_note})" if ensemble_note else "",
             f"--max-images {arguments.max_images}: only part of each half was used" if arguments.max_images else ""]
    return [note for note in notes if note]


def run(arguments) -> dict:
    started = time.perf_counter()
    data_root, output_dir = script_support.start_script(arguments, __file__)
    sessions = choose_from(arguments.sessions, TEST_SESSIONS, "sessions")
    mappings = choose_from(arguments.mappings, MAPPINGS, "mappings")
    summary, table, rows, notes = {}, [], [], []
    if not arguments.skip_architecture_check:
        architecture, summary["architecture"] = architecture_rows(data_root)
        table.extend(architecture)
    extractor, feature_note = load_feature_extractor(arguments)
    members, ensemble_note = load_members(arguments, data_root, features_present=not feature_note)
    if not feature_note:
        rows, notes = evaluate_sessions(arguments, sessions, mappings, extractor, members, data_root)
    notes += missing_notes(arguments, feature_note, ensemble_note)
    random_features = arguments.features == "random"
    table.extend(comparison_rows(rows, mappings, feature_note, ensemble_note, random_features))
    label = RANDOM_FEATURES_LABEL if random_features else POISSON_LABEL
    if rows:
        outputs.write_csv(output_dir / "per_neuron.csv", rows)
        outputs.save_figures([(figure_fig1b(rows, label), "fig1b_taskdriven_vs_ensemble")], output_dir)
        summary["medians"] = medians(rows)
    summary.update({"comparison": table, "notes": notes, "features": "resnet50" if not random_features else label,
                    "noise_corrected_r2_label": POISSON_LABEL, "num_members": len(members),
                    "seconds": time.perf_counter() - started})
    script_support.report_results(output_dir, summary, table, f"{output_dir}/summary.json"
                   + (", per_neuron.csv, fig1b_taskdriven_vs_ensemble.(png|pdf)" if rows else ""),
                   f"time: {summary['seconds']:.1f} s", notes)
    return summary


def parse_arguments(argv=None):
    parser = script_support.script_parser(__doc__)
    parser.add_argument("--resnet50-weights", default=None,
                        help="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (ImageNet weights "
                        "of keras.applications); cannot be downloaded here")
    parser.add_argument("--ensemble-dir", default=None,
                        help="folder of ensemble_model_member<i>.keras (default: the release's "
                        "data_ensemble_model/, which lacks them)")
    parser.add_argument("--features", choices=("resnet50", "random"), default="resnet50",
                        help="'random': random patch features instead of ResNet50 (code-path check, "
                        "never compared with the published numbers)")
    parser.add_argument("--sessions", default=",".join(TEST_SESSIONS), help="comma-separated test sessions or 'all'")
    parser.add_argument("--mappings", default=",".join(MAPPINGS), help="ridge, factorized or both")
    parser.add_argument("--max-members", type=int, default=None, help="use only the first N members")
    parser.add_argument("--max-images", type=int, default=None,
                        help="use only the first N images of each half (quick runs; not comparable)")
    parser.add_argument("--factorized-steps", type=int, default=300,
                        help="gradient steps per factorized fit")
    parser.add_argument("--skip-architecture-check", action="store_true",
                        help="skip building the member and ResNet50 stage for the summary check")
    arguments = script_support.parse(parser, argv)
    for name in ("max_members", "max_images", "factorized_steps"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return arguments


main = script_support.entry_point(parse_arguments, run)


if __name__ == "__main__":
    main()

"""The arithmetic each numbered script did, estimated from what it wrote.

One estimator per script reads the script's results folder (its summary
JSON and CSV tables) and counts floating-point operations with
:func:`classes.prediction.folding.compact_model_flops` (``F(K)`` below: every
multiply-add of one compact model with filter counts ``K`` on one image, 2
FLOPs each). Each returns the total, the formula, and what it leaves out:
the counts are of the dominant model evaluations and matrix products, so
they are lower bounds; a script whose arithmetic its outputs do not show
gets ``flops: None`` and the reason, never a guess.

Formulas (``n`` images, ``H(s)`` the held-out half of session ``s``, 600
images for each test session with images):

- script1: none (it reads responses and draws; no model is evaluated).
- script2: not estimated (its features' arithmetic is not in its outputs).
- script3: ``F(K) x num_images x formats evaluated``.
- script4: ``sum over scored models of F(K) x |H(session)|``.
- script5: compact models ``sum over scored models of F(K) x |H(session)|``
  (none when it took script4's held-out predictions)
  plus ``sum over all chosen models of F(K) x order images``; shared models
  ``sum over (teacher, K) of S(K) x sum of |H(s)|`` with ``S(K)`` the shared
  model: ``F([K, K, K, 100, 100])`` less the compact readout, plus the 1x1
  mixing to 219 outputs and their 28 x 28 spatial pooling.
- script6: synthesis ``2 F(K) x steps x synthesized images`` (a forward pass
  and the gradient with respect to the image, which costs about one more)
  plus the candidate pool ``F(K) x pool images``.
- script7: forward passes ``sum over models of F(K) x n``; Gram matrices
  ``sum over models and layers of 2 n^2 x positions x K_layer``; CKA
  ``5 layers x pairs x 2 n^2``.
- script8: screen ``sum over screened models of F(K) x (2 x radii x grid^2 +
  natural images)``; the chosen model's ablations ``F(K) x (ablated filters +
  cumulative steps) x probe images`` (probe: 1 blank + radii x up to 9 centres +
  numbers x draws); synthesis ``2 F(K) x steps``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from classes.compact.architecture import load_nums_filters
from classes.compact.choice import parse_model
from classes.data.sessions import held_out_indices
from classes.prediction.folding import compact_model_flops

SHARED_DEEP_FILTERS = 100
SHARED_OUTPUTS = 219
READOUT_PIXELS = 28 * 28
NUM_LAYERS = 5


def _table(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _held_out_count(session: str) -> int:
    return len(held_out_indices(session)[1])


def _filters(row: dict) -> list[int]:
    return [int(row[f"K{layer}"]) for layer in range(NUM_LAYERS)]


def _nums_filters(session, neuron, data_root) -> list[int]:
    return load_nums_filters(parse_model(f"{session}/{neuron}"), data_root)


def shared_model_flops(num_filters: int) -> int:
    """FLOPs of one shared compact model with ``num_filters`` shared filters on one image."""
    trunk = compact_model_flops([num_filters] * 3 + [SHARED_DEEP_FILTERS] * 2) - 2 * READOUT_PIXELS * SHARED_DEEP_FILTERS
    return int(trunk + 2 * READOUT_PIXELS * (SHARED_DEEP_FILTERS * SHARED_OUTPUTS + SHARED_OUTPUTS))


def _estimate(flops, formula: str, not_counted: str = "") -> dict:
    return {"flops": None if flops is None else int(flops), "formula": formula, "not_counted": not_counted}


def _script1(folder: Path, data_root) -> dict:
    return _estimate(0, "no model evaluation (reads responses, draws the figure)")


def _script2(folder: Path, data_root) -> dict:
    return _estimate(None, "not estimated: the summary does not say which features were computed on how "
                     "many images (without the ResNet50 weights and the members nothing is predicted)")


def _script3(folder: Path, data_root) -> dict:
    result = json.loads((folder / "agreement.json").read_text())
    formats = [name for name, item in result["formats"].items() if item.get("status") == "ok"]
    flops = compact_model_flops(result["nums_filters"]) * result["num_images"] * len(formats)
    return _estimate(flops, f"F(K) x {result['num_images']} images x {len(formats)} formats",
                     "the save/reload round trips' file work")


def _script4(folder: Path, data_root) -> dict:
    scored = [row for row in _table(folder / "per_neuron.csv") if row["pearson_r"] != ""]
    flops = sum(compact_model_flops(_filters(row)) * _held_out_count(row["session"]) for row in scored)
    return _estimate(flops, f"sum over {len(scored)} scored models of F(K) x held-out images of its session",
                     "scoring (correlations, noise model): negligible")


def _script5(folder: Path, data_root) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    rows = _table(folder / "per_neuron.csv")
    compact_label = summary["summary"][0]["teacher"]
    scored = [row for row in rows if row["teacher"] == compact_label]
    pairs = [(row["teacher"], int(row["num_filters"])) for row in summary["summary"][1:]]
    order_rows = _table(folder / "order_check.csv")
    chosen = {(row["session"], row["neuron"]) for row in order_rows
              if pairs and (row["teacher"], int(row["num_filters"])) == pairs[0]}
    held_out = sum(_held_out_count(session) for session in summary["scored_sessions"])
    # Held-out predictions taken from script4's results were not computed by this run.
    reused = summary.get("compact_held_out_predictions_reused", False)
    compact = 0 if reused else sum(compact_model_flops(_nums_filters(row["session"], row["neuron"], data_root))
                                   * _held_out_count(row["session"]) for row in scored)
    order = sum(compact_model_flops(_nums_filters(session, neuron, data_root)) * summary["order_images"]
                for session, neuron in chosen)
    shared = sum(shared_model_flops(count) for _, count in pairs) * held_out
    terms = ([] if reused else [f"{len(scored)} compact models x their held-out images"]) + [
        f"{len(chosen)} x {summary['order_images']} order images", f"{len(pairs)} shared models x {held_out} images"]
    not_counted = "scoring and the order check's correlations: negligible"
    if reused:
        not_counted += "; the compact models' held-out predictions, taken from script4's results"
    return _estimate(compact + order + shared, " + ".join(terms), not_counted)

def _script6(folder: Path, data_root) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    forward = compact_model_flops(load_nums_filters(parse_model(summary["model"]), data_root))
    images = len(summary["synthesized_maximizing_responses"]) + len(summary.get("synthesized_minimizing_responses") or [])
    steps, pool = summary["settings"]["num_steps"], summary["pool"]["num_images"]
    return _estimate(2 * forward * steps * images + forward * pool,
                     f"2 F(K) x {steps} steps x {images} synthesized images + F(K) x {pool} pool images",
                     "adversarial and smooth- searches and saliency maps (their step and image counts are "
                     "not in the summary), calibration")


def _script7(folder: Path, data_root) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    counts = np.array([_filters(row) for row in _table(folder / "per_model.csv")], dtype=np.int64)
    images, positions = summary["num_images"], np.asarray(summary["positions_per_layer"], dtype=np.int64)
    forward = int(np.sum(compact_model_flops(counts))) * images
    gram = int(np.sum(2 * images**2 * positions * counts))
    cka = NUM_LAYERS * summary["cka"]["num_pairs"] * 2 * images**2
    return _estimate(forward + gram + cka,
                     f"{len(counts)} models x F(K) x {images} images + Gram 2 n^2 x positions x K per layer "
                     f"+ CKA {NUM_LAYERS} x {summary['cka']['num_pairs']} pairs x 2 n^2",
                     "kernel similarity, permutation tests, signal correlation")


def _script8(folder: Path, data_root) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    settings = summary["settings"]
    screened = _table(folder / "screen.csv")
    screen_images = 2 * len(settings["screen_radii"]) * settings["screen_grid"] ** 2 + settings["num_natural"]
    screen = sum(compact_model_flops(_nums_filters(row["session"], row["neuron"], data_root))
                 for row in screened) * screen_images
    chosen = compact_model_flops(load_nums_filters(parse_model(summary["chosen_model"]), data_root))
    probe = 1 + len(settings["radii"]) * 9 + len(settings["numbers"]) * settings["draws"]
    ablated = len(_table(folder / "ablation.csv")) + sum(len(steps) for steps in summary["cumulative_ablation"].values())
    return _estimate(screen + chosen * (ablated * probe + 2 * settings["steps"]),
                     f"{len(screened)} models x F(K) x {screen_images} screen images + F(K) x {ablated} "
                     f"ablations x {probe} probe images + 2 F(K) x {settings['steps']} steps",
                     "the candidates' location maps and tuning (model choice)")


ESTIMATORS = {1: _script1, 2: _script2, 3: _script3, 4: _script4, 5: _script5, 6: _script6, 7: _script7, 8: _script8}


def estimate_flops(number: int, folder: Path, data_root) -> dict:
    """The arithmetic script ``number`` did, from its results in ``folder``.

    Returns:
        ``{"flops": int or None, "formula": str, "not_counted": str}``; when
        an output the estimate needs is missing or lacks a field, ``flops``
        is None and ``formula`` says what is missing.
    """
    try:
        return ESTIMATORS[number](Path(folder), data_root)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as error:
        return _estimate(None, f"not estimated: its outputs lack what the estimate needs ({type(error).__name__}: "
                         f"{error})")

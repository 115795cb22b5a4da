"""One compact model's preferred stimuli and causal-test images (Fig. 2, Ext. Data Fig. 4).

What ``script6_synthesize.py`` computes for one model by default:
maximizing and minimizing synthesized images (:mod:`classes.analysis.synthesis`),
the model's responses to a candidate pool of the release's images and its
spike-count calibration (:mod:`classes.scoring.calibration`), adversarial,
smooth- and random-patch control images and saliency maps
(:mod:`classes.analysis.causal_images`), and the model-predicted percent
changes of Fig. 2b-f (:mod:`classes.scoring.percent_changes`). Its figures
and tables are in :mod:`classes.figures.synthesis`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from classes.analysis.causal_images import (
    AdversarialResult,
    adversarial_images,
    predict_raw,
    random_smooth_image,
    saliency_map,
    smooth_minus_image,
)
from classes.analysis.synthesis import SynthesisResult, synthesize_images
from classes.compact.architecture import ModelId
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.data.images import available_image_sessions
from classes.scoring.calibration import calibrate_models, pool_responses
from classes.scoring.percent_changes import KINDS, percent_changes, summarize


@dataclass
class SynthesizedImages:
    """Synthesized images as saved and the model's responses to them.

    Attributes:
        result: the synthesis result (float images, settings, start responses).
        images: uint8 ``(N, 112, 112, 3)``, ``result.images`` rounded.
        responses: float32 ``(N,)``, responses to ``images``.
    """

    result: SynthesisResult
    images: np.ndarray
    responses: np.ndarray


def synthesize_saved(model, direction: str, count: int, num_steps: int, seed: int,
                     grayscale: bool) -> SynthesizedImages:
    """Synthesizes ``count`` images (progress bar shown) and scores them as saved, in uint8."""
    with tqdm(total=num_steps, desc=f"synthesis ({direction}, {count} images)") as bar:
        result = synthesize_images(model, num_images=count, direction=direction, num_steps=num_steps,
                                   seed=seed, grayscale=grayscale, progress=bar)
    saved = np.round(result.images).astype(np.uint8)
    return SynthesizedImages(result, saved, predict_raw(model, saved))


@dataclass
class PoolResponses:
    """A model's responses to the candidate pool, and its spike-count calibration.

    Attributes:
        pool: raw uint8 ``(N, 112, 112, 3)``; ``sources``: int ``(N, 2)``
            (session as int, 1-based image number).
        responses: float32 ``(N,)``.
        normal: bool ``(N,)``, whether each image comes from a normal-image zip.
        sessions, normal_sessions: the zips read, and those of normal images.
        calibration: ``(intercept, slope)`` or None; ``calibration_note`` says
            how it was fitted or why it is missing.
    """

    pool: np.ndarray
    sources: np.ndarray
    responses: np.ndarray
    normal: np.ndarray
    sessions: list
    normal_sessions: list
    calibration: tuple | None
    calibration_note: str

    @property
    def normal_responses(self) -> np.ndarray:
        return self.responses[self.normal]

    @property
    def reference(self) -> float:
        """Mean response to the normal images: the reference of the percent changes."""
        return float(self.normal_responses.mean())

    @property
    def normal_order(self) -> np.ndarray:
        """Pool rows of the normal images, most driving first."""
        return np.flatnonzero(self.normal)[np.argsort(-self.normal_responses)]


def respond_to_pool(identifier: ModelId, data_root, pool_size: int | None, seed: int) -> PoolResponses:
    """Responses of one model to every image in the release's zips (or a seeded subset), and its calibration.

    Raises:
        ValueError: fewer than 10 normal images in the pool.
    """
    sessions = available_image_sessions(data_root)
    pool, sources = load_image_pool(sessions, data_root, size=pool_size, seed=seed)
    responses = pool_responses([identifier], pool, data_root, description=f"pool of {len(pool)} images")[0]
    normal_sessions = normal_image_sessions(data_root)
    normal = np.isin(sources[:, 0], [int(session) for session in normal_sessions])
    if normal.sum() < 10:
        raise ValueError(f"Only {normal.sum()} normal images in the pool; raise --pool-size.")
    calibration, note = calibrate_models([identifier], data_root)[identifier.stem]
    return PoolResponses(pool, sources, responses, normal, sessions, normal_sessions, calibration, note)


def adversarial_tests(model, pool: PoolResponses, num_base_images: int, max_pixel_change: float,
                      seed: int) -> tuple[np.ndarray, dict[str, AdversarialResult]]:
    """Adversarial images in both directions from seeded random normal base images.

    Returns:
        ``(base_rows, results)``: the base images' pool rows and
        ``"increase"``/``"decrease"`` -> :class:`AdversarialResult`.
    """
    base_rows = np.random.default_rng(seed).choice(
        np.flatnonzero(pool.normal), size=min(num_base_images, int(pool.normal.sum())), replace=False)
    results = {direction: adversarial_images(model, pool.pool[base_rows], direction, max_pixel_change)
               for direction in ("increase", "decrease")}
    return base_rows, results


@dataclass
class SmoothTests:
    """smooth- images of the top normal images, their controls, and saliency maps.

    Attributes:
        top_normal: raw uint8 base images, most driving first.
        smooth, control: one :class:`SmoothResult` per base image.
        saliency: ``(label, raw image, SaliencyResult)`` for the top normal
            image and the best synthesized image.
    """

    top_normal: np.ndarray
    smooth: list
    control: list
    saliency: list


def smooth_tests(model, pool: PoolResponses, maximizing: SynthesizedImages, num_images: int, num_patches: int,
                 saliency_stride: int, seed: int) -> SmoothTests:
    """smooth- and random-patch images of the top ``num_images`` normal images, and two saliency maps."""
    normal_order = pool.normal_order
    top_normal = pool.pool[normal_order[:num_images]]
    smooth, control = [], []
    for index, image in enumerate(tqdm(top_normal, desc="smooth- images")):
        smooth.append(smooth_minus_image(model, image, num_patches))
        control.append(random_smooth_image(model, image, num_patches, seed=seed + index))
    best_synthesized = maximizing.images[int(np.argmax(maximizing.responses))]
    saliency = [(label, image, saliency_map(model, image, stride=saliency_stride))
                for label, image in (("top normal image", pool.pool[normal_order[0]]),
                                     ("best synthesized image", best_synthesized))]
    return SmoothTests(top_normal, smooth, control, saliency)


@dataclass
class PreferredStimuli:
    """Everything the default run computes for one model (see the module docstring).

    Attributes:
        identifier: the model.
        maximizing, minimizing: synthesized images (``minimizing`` None when
            none were asked for).
        pool: responses to the candidate pool and the calibration.
        base_rows, adversarial: :func:`adversarial_tests`' results.
        smooth: :func:`smooth_tests`' results.
    """

    identifier: ModelId
    maximizing: SynthesizedImages
    minimizing: SynthesizedImages | None
    pool: PoolResponses
    base_rows: np.ndarray
    adversarial: dict
    smooth: SmoothTests


def model_percent_changes(stimuli: PreferredStimuli) -> dict:
    """Summaries (:func:`summarize`) of every Fig. 2 percent change, in all :data:`KINDS`.

    Returns:
        dict change name -> kind -> summary.
    """
    pool, adversarial, smooth = stimuli.pool, stimuli.adversarial, stimuli.smooth
    normal_responses, reference = pool.normal_responses, pool.reference

    def changes(values, reference_values):
        return percent_changes(values, reference_values, normal_responses, pool.calibration)

    model_changes = {
        "maximizing_normal": changes(normal_responses.max(), reference),
        "maximizing_synthesized": changes(stimuli.maximizing.responses.max(), reference),
        "maximizing_synthesized_all_seeds": changes(stimuli.maximizing.responses, reference),
        "adversarial_increase": changes(adversarial["increase"].responses, adversarial["increase"].base_responses),
        "adversarial_decrease": changes(adversarial["decrease"].responses, adversarial["decrease"].base_responses),
        "smooth_minus": changes([item.response for item in smooth.smooth],
                                [item.base_response for item in smooth.smooth]),
        "smooth_random_control": changes([item.response for item in smooth.control],
                                         [item.base_response for item in smooth.control]),
    }
    return {name: {kind: summarize(values[kind]) for kind in KINDS} for name, values in model_changes.items()}


def preferred_stimuli_record(stimuli: PreferredStimuli, summaries: dict) -> dict:
    """The default run's JSON record of one model (without comparison, notes and timings).

    Args:
        summaries: :func:`model_percent_changes`' result.
    """
    pool, maximizing, minimizing = stimuli.pool, stimuli.maximizing, stimuli.minimizing
    normal_responses, sources = pool.normal_responses, pool.sources
    order = np.argsort(-pool.responses)
    return {
        "model": str(stimuli.identifier),
        "settings": maximizing.result.settings | {"seed": maximizing.result.seed},
        "synthesized_maximizing_responses": maximizing.responses,
        "synthesized_maximizing_initial_responses": maximizing.result.initial_responses,
        "synthesized_minimizing_responses": None if minimizing is None else minimizing.responses,
        "pool": {"num_images": len(pool.pool), "num_normal": int(pool.normal.sum()),
                 "normal_sessions": pool.normal_sessions, "all_sessions": pool.sessions,
                 "normal_mean": pool.reference, "normal_min": float(normal_responses.min()),
                 "normal_max": float(normal_responses.max()),
                 "top_images": [{"session": int(sources[row, 0]), "image": int(sources[row, 1]),
                                 "response": float(pool.responses[row])} for row in order[:9]]},
        "calibration": None if pool.calibration is None else {
            "intercept": pool.calibration[0], "slope": pool.calibration[1], "note": pool.calibration_note},
        "adversarial": {direction: {"base_images": [{"session": int(sources[row, 0]), "image": int(sources[row, 1])}
                                                    for row in stimuli.base_rows],
                                    "base_responses": result.base_responses, "responses": result.responses,
                                    "max_pixel_change": result.max_pixel_change, "steps": result.num_steps}
                        for direction, result in stimuli.adversarial.items()},
        "smooth_minus": [{"base": item.base_response, "smooth_minus": item.response, "patches": item.patches,
                          "random_control": control.response, "random_patches": control.patches}
                         for item, control in zip(stimuli.smooth.smooth, stimuli.smooth.control, strict=True)],
        "percent_changes": summaries,
    }

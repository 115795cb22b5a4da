"""Adversarial, saliency and smooth- images (classes/analysis/causal_images.py), percent
changes (classes/scoring/percent_changes.py) and the candidate pool (classes/data/candidate_images.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from classes.analysis.causal_images import (
    adversarial_images,
    patch_grid,
    predict_raw,
    random_smooth_image,
    saliency_map,
    smooth_minus_image,
    smoothed,
)
from classes.data.candidate_images import load_image_pool, normal_image_sessions
from classes.scoring.percent_changes import (
    calibrated_percent_change,
    percent_change,
    percent_changes,
    percent_of_normal_range,
    spike_count_calibration,
    status_against,
    summarize,
)


@pytest.fixture(scope="module")
def released_model(data_root):
    from classes.compact.model import load_compact_model

    return load_compact_model("201025", 27, data_root=data_root)


@pytest.fixture(scope="module")
def natural_images(data_root):
    from classes.data.images import load_images

    return load_images("201025", [601, 700, 800, 900], data_root=data_root)


def test_percent_change_known_values_and_undefined_references():
    np.testing.assert_allclose(percent_change([3.0, 1.0], 2.0), [50.0, -50.0])
    assert np.all(np.isnan(percent_change([1.0, 2.0], [0.0, -1.0])))
    np.testing.assert_allclose(percent_of_normal_range([3.0], 1.0, [-1.0, 0.0, 3.0]), [50.0])
    with pytest.raises(ValueError, match="constant"):
        percent_of_normal_range([1.0], 0.0, [2.0, 2.0])
    changes = percent_changes([3.0, 5.0], 1.0, [1.0, 3.0], calibration=(2.0, 1.0))
    np.testing.assert_allclose(changes["raw"], [200.0, 400.0])
    np.testing.assert_allclose(changes["percent_of_range"], [100.0, 200.0])
    np.testing.assert_allclose(changes["calibrated"], [100 * 2 / 3, 100 * 4 / 3])
    assert np.all(np.isnan(percent_changes([3.0], 1.0, [1.0, 3.0], None)["calibrated"]))


def test_summaries_and_status_against_published():
    summary = summarize([1.0, 3.0, np.nan, 5.0])
    assert summary["n"] == 3 and summary["total"] == 4
    np.testing.assert_allclose([summary["mean"], summary["median"]], [3.0, 3.0])
    np.testing.assert_allclose(summary["sem"], 2.0 / np.sqrt(3))
    assert summarize([np.nan])["n"] == 0
    assert status_against(137.3, 100.0) == "approximate"
    assert status_against(137.3, 20.0) == "differs"
    assert status_against(137.3, 252.1) == "differs"
    assert status_against(-46.1, -44.3) == "approximate"
    assert status_against(-33.2, 10.0) == "differs"
    assert status_against(83.6, np.nan) == "not computable"


def test_spike_count_calibration_recovers_a_line():
    predictions = np.linspace(-1.0, 2.0, 50)
    intercept, slope = spike_count_calibration(predictions, 3.0 + 0.5 * predictions)
    np.testing.assert_allclose([intercept, slope], [3.0, 0.5], atol=1e-10)
    # 2 -> 4 predicted spikes from 3 + 0.5 * 0 = 3: +33.3%.
    np.testing.assert_allclose(calibrated_percent_change(2.0, 0.0, intercept, slope), 100 / 3)
    with pytest.raises(ValueError, match="constant"):
        spike_count_calibration(np.ones(5), np.arange(5.0))


def test_patch_grid_tiles_without_overlap():
    coverage = np.zeros((112, 112), int)
    tiles = patch_grid(16)
    assert len(tiles) == 49
    for rows, columns in tiles:
        coverage[rows, columns] += 1
    assert coverage.max() == 1 and coverage.sum() == 112 * 112
    assert len(patch_grid(15)) == 49 and patch_grid(15)[0][0] == slice(3, 18)
    with pytest.raises(ValueError, match="patch_size"):
        patch_grid(0)


def test_normal_sessions_and_pool_match_the_zips(data_root):
    from classes.data.images import load_images

    assert normal_image_sessions(data_root) == ["190923", "201025", "210224", "210225", "210621"]
    images, sources = load_image_pool(["190923", "201025"], data_root, size=12, seed=1)
    assert images.shape == (12, 112, 112, 3) and sources.shape == (12, 2)
    for image, (session, number) in zip(images, sources, strict=True):
        np.testing.assert_array_equal(image, load_images(str(session), [number], data_root=data_root)[0])


def test_adversarial_images_move_output_within_the_threshold(released_model, natural_images):
    base = natural_images[:2]
    threshold = 8.0
    up = adversarial_images(released_model, base, "increase", max_pixel_change=threshold)
    down = adversarial_images(released_model, base, "decrease", max_pixel_change=threshold)
    np.testing.assert_allclose(up.base_responses, predict_raw(released_model, base), rtol=1e-5)
    assert np.all(up.responses > up.base_responses + 0.5)
    assert np.all(down.responses < down.base_responses)
    for result in (up, down):
        assert np.all(result.max_pixel_change <= threshold + 1e-3)
        assert np.all(result.max_pixel_change > threshold - 1.0 - 1e-3)  # stopped just before passing it
        np.testing.assert_allclose(np.abs(result.images - base).max(axis=(1, 2, 3)), result.max_pixel_change)
        assert result.images.min() >= 0 and result.images.max() <= 255
        np.testing.assert_allclose(result.responses, predict_raw(released_model, result.images), rtol=1e-5)
    normalized = adversarial_images(released_model, base[:1], "increase", threshold, method="normalized")
    assert normalized.max_pixel_change[0] <= threshold + 1e-3
    assert normalized.responses[0] > normalized.base_responses[0]
    with pytest.raises(ValueError, match="direction"):
        adversarial_images(released_model, base, "up")


def test_saliency_entries_equal_manual_patch_smoothing(released_model, natural_images):
    image = natural_images[0]
    result = saliency_map(released_model, image, patch_size=15, stride=28, sigma=3.0)
    assert result.change.shape == (4, 4)
    np.testing.assert_array_equal(result.centres, [14, 42, 70, 98])
    blurred = gaussian_filter(image.astype(np.float32), sigma=(3, 3, 0), mode="reflect")
    manual = image.astype(np.float32).copy()
    manual[35:50, 63:78] = blurred[35:50, 63:78]  # patch centred at row 42, column 70
    expected = predict_raw(released_model, manual[None])[0] - predict_raw(released_model, image[None])[0]
    np.testing.assert_allclose(result.change[1, 2], expected, atol=1e-3)


def test_smooth_minus_picks_the_most_lowering_patch(released_model, natural_images):
    image = natural_images[1]
    greedy = smooth_minus_image(released_model, image, num_patches=2, patch_size=28)
    blurred = smoothed(image[None])[0]
    singles = []
    for rows, columns in patch_grid(28):
        candidate = image.astype(np.float32).copy()
        candidate[rows, columns] = blurred[rows, columns]
        singles.append(candidate)
    single_responses = predict_raw(released_model, np.stack(singles))
    assert greedy.patches[0] == int(np.argmin(single_responses))
    np.testing.assert_allclose(greedy.trajectory[0], single_responses.min(), atol=1e-4)
    assert len(set(greedy.patches)) == 2
    np.testing.assert_allclose(greedy.response, predict_raw(released_model, greedy.image[None])[0], atol=1e-4)
    control = random_smooth_image(released_model, image, num_patches=2, patch_size=28, seed=0)
    assert len(set(control.patches)) == 2
    # No single patch lowers the output more than greedy's first pick.
    assert control.trajectory[0] >= greedy.trajectory[0] - 1e-4
    np.testing.assert_allclose(control.trajectory[0], single_responses[control.patches[0]], atol=1e-4)
    with pytest.raises(ValueError, match="num_patches"):
        smooth_minus_image(released_model, image, num_patches=17, patch_size=28)

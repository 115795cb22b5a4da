"""Recentring, gaudy and grayscale images, white noise, and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from classes.data.preprocessing import (
    RECENTERED_MAX,
    RECENTERED_MIN,
    RGB_MEANS,
    RecentredImages,
    RecentringBuffer,
    as_recentred,
    check_images,
    gaudy_images,
    grayscale_images,
    recenter_images,
    uncenter_images,
    white_noise_images,
)


@pytest.fixture
def random_images() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(4, 112, 112, 3), dtype=np.uint8)


def _every_uint8_value() -> np.ndarray:
    """Four images that together hold every value 0..255 in every channel."""
    values = np.arange(256, dtype=np.uint8)
    tiled = np.resize(values, 4 * 112 * 112)
    return np.repeat(tiled[:, None], 3, axis=1).reshape(4, 112, 112, 3)


def test_rgb_means_and_range():
    np.testing.assert_allclose(RGB_MEANS, [116.222, 109.270, 100.381], rtol=0, atol=1e-4)
    assert RGB_MEANS.dtype == np.float32
    assert RECENTERED_MIN == pytest.approx(-116.222, abs=1e-3)
    assert RECENTERED_MAX == pytest.approx(255 - 100.381, abs=1e-3)


def test_recenter_subtracts_channel_means(random_images):
    recentred = recenter_images(random_images)
    assert recentred.dtype == np.float32 and recentred.shape == random_images.shape
    expected = random_images.astype(np.float64) - np.array([116.222, 109.270, 100.381])
    np.testing.assert_allclose(recentred, expected, atol=1e-4)


def test_recenter_into_a_buffer_equals_a_new_array_and_checks_the_buffer(random_images):
    buffer = np.full((len(random_images) + 2,) + random_images.shape[1:], np.nan, np.float32)
    recentred = recenter_images(random_images, out=buffer)
    np.testing.assert_array_equal(recentred, recenter_images(random_images))
    assert isinstance(recentred, RecentredImages) and np.shares_memory(recentred, buffer)
    assert np.isnan(buffer[len(random_images):]).all()
    for bad in (buffer[:1], buffer.astype(np.float64), buffer[:, ::2], [[0.0]]):
        with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
            recenter_images(random_images, out=bad)


def test_recentring_buffer_grows_once_and_reuses_its_memory(random_images):
    buffer = RecentringBuffer()
    first = buffer.recentred(random_images)
    np.testing.assert_array_equal(first, recenter_images(random_images))
    smaller = buffer.recentred(random_images[:1])
    assert np.shares_memory(first, smaller) and len(smaller) == 1
    np.testing.assert_array_equal(smaller, recenter_images(random_images[:1]))


def test_recenter_uncenter_round_trip_is_exact_for_uint8():
    images = _every_uint8_value()
    back = uncenter_images(recenter_images(images))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)
    as_float = uncenter_images(recenter_images(images), as_uint8=False)
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, images, atol=1e-4)


def test_uncenter_clips_to_valid_pixels():
    recentred = np.zeros((1, 112, 112, 3), np.float32)
    recentred[0, 0, 0] = RECENTERED_MIN  # red channel of -116.222 -> 0
    recentred[0, 0, 1] = RECENTERED_MAX  # blue of +154.6 -> 255, others clip
    raw = uncenter_images(recentred)
    np.testing.assert_array_equal(raw[0, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(raw[0, 0, 1], [255, 255, 255])
    np.testing.assert_array_equal(raw[0, 5, 5], [116, 109, 100])


def _assert_thresholded_at_mean(gaudy_channel, values):
    """``gaudy_channel`` is 255 where ``values`` >= their mean, else 0.

    Pixels within float32 rounding of the mean (a float32 mean over 12,544
    pixels is off by a few 1e-4) may go either way.
    """
    values = values.astype(np.float64)
    mean = values.mean()
    decided = np.abs(values - mean) > 2e-3
    assert np.mean(~decided) < 5e-3
    np.testing.assert_array_equal((gaudy_channel == 255)[decided], (values >= mean)[decided])


def test_gaudy_thresholds_each_channel_at_its_mean(random_images):
    # Smooth the noise a little so channel means are not all near 127.5.
    images = gaussian_filter(random_images.astype(float), (0, 3, 3, 0)) * [1.0, 0.6, 0.3]
    gaudy = gaudy_images(images)
    assert gaudy.dtype == np.uint8 and gaudy.shape == images.shape
    assert set(np.unique(gaudy)) <= {0, 255}
    for image in range(len(images)):
        for channel in range(3):
            _assert_thresholded_at_mean(gaudy[image, :, :, channel], images[image, :, :, channel])
    # Uses both levels in every image and channel.
    assert np.all(gaudy.max(axis=(1, 2)) == 255) and np.all(gaudy.min(axis=(1, 2)) == 0)


def test_gaudy_blur_is_spatial_per_image_and_channel(random_images):
    sigma = 2.0
    gaudy = gaudy_images(random_images, blur_sigma=sigma)
    for image in range(len(random_images)):
        for channel in range(3):
            blurred = gaussian_filter(random_images[image, :, :, channel].astype(np.float32), sigma)
            _assert_thresholded_at_mean(gaudy[image, :, :, channel], blurred)
    # Blurring merges the noise into blobs: far fewer 0/255 flips between neighbours.
    flips_blurred = np.mean(gaudy[:, 1:] != gaudy[:, :-1])
    flips_plain = np.mean(gaudy_images(random_images)[:, 1:] != gaudy_images(random_images)[:, :-1])
    assert flips_blurred < 0.5 * flips_plain


def test_gaudy_of_single_bright_pixel():
    image = np.zeros((1, 112, 112, 3), np.uint8)
    image[0, 50, 60] = 255
    plain = gaudy_images(image)
    assert plain[0, :, :, 0].sum() == 255  # only that pixel is above the mean
    blurred = gaudy_images(image, blur_sigma=3.0)
    assert blurred[0, 50, 60, 0] == 255
    assert 1 < np.count_nonzero(blurred[0, :, :, 0]) < 112 * 112 // 2


def test_grayscale_equal_channels_and_luminance(random_images):
    gray = grayscale_images(random_images)
    assert gray.dtype == np.uint8 and gray.shape == random_images.shape
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    luminance = random_images.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(gray[..., 0] - luminance).max() <= 0.5 + 1e-3
    red = np.zeros((1, 112, 112, 3), np.uint8)
    red[..., 0] = 255
    assert grayscale_images(red)[0, 0, 0, 0] == 76


def test_white_noise_seed_reproducibility():
    first = white_noise_images(3, seed=11)
    assert first.shape == (3, 112, 112, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, white_noise_images(3, seed=11))
    assert not np.array_equal(first, white_noise_images(3, seed=12))
    assert first.min() == 0 and first.max() == 255
    assert abs(first.mean() - 127.5) < 1.0
    assert white_noise_images(0).shape == (0, 112, 112, 3)
    with pytest.raises(ValueError, match="non-negative"):
        white_noise_images(-1)


def test_check_images_accepts_valid_batches(random_images):
    assert check_images(random_images) is random_images
    recentred = recenter_images(random_images)
    assert check_images(recentred, "recentered") is recentred
    assert check_images(np.zeros((0, 112, 112, 3))).shape == (0, 112, 112, 3)
    as_list = check_images(random_images[:1].tolist())
    np.testing.assert_array_equal(as_list, random_images[:1])


@pytest.mark.parametrize(
    "shape", [(2, 112, 112), (2, 224, 224, 3), (2, 3, 112, 112), (112, 112), (2, 112, 112, 1)]
)
def test_check_images_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"\(num_images, 112, 112, 3\)"):
        check_images(np.zeros(shape, np.uint8))


def test_check_images_single_image_hint(random_images):
    with pytest.raises(ValueError, match=r"single image.*image\[None\]"):
        check_images(random_images[0])


@pytest.mark.parametrize("dtype", [object, "U3", bool, complex])
def test_check_images_wrong_dtype(dtype):
    with pytest.raises(ValueError, match="must hold numbers"):
        check_images(np.zeros((1, 112, 112, 3), dtype=dtype))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("space", ["raw", "recentered"])
def test_check_images_non_finite(bad_value, space):
    images = np.zeros((2, 112, 112, 3), np.float32)
    images[1, 3, 4, 2] = bad_value
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(images, space)


def test_raw_uint8_passed_as_recentred_hint(random_images):
    with pytest.raises(ValueError, match=r"uint8.*recenter_images"):
        check_images(random_images, "recentered")


def test_raw_float_passed_as_recentred_hint(random_images):
    # Raw floats above 155.6 do not fit the recentred range.
    with pytest.raises(ValueError, match=r"look like raw.*recenter_images"):
        check_images(random_images.astype(np.float32), "recentered")


def test_recentred_passed_as_raw_hint(random_images):
    plain = np.asarray(recenter_images(random_images))
    with pytest.raises(ValueError, match=r"look recentred already.*uncenter_images"):
        check_images(plain, "raw")
    # Declared recentred images are refused as raw whatever their values.
    with pytest.raises(ValueError, match=r"are recentred.*uncenter_images"):
        recenter_images(recenter_images(random_images))
    bright = recenter_images(np.full((1, 112, 112, 3), 200, np.uint8))
    assert bright.min() > 0
    with pytest.raises(ValueError, match=r"are recentred.*uncenter_images"):
        check_images(bright, "raw")


def test_out_of_both_ranges_has_no_misleading_hint():
    images = np.full((1, 112, 112, 3), -500.0, np.float32)
    with pytest.raises(ValueError, match="0..255") as error:
        check_images(images, "raw")
    assert "recentred already" not in str(error.value)
    with pytest.raises(ValueError, match="maximum 300"):
        check_images(np.full((1, 112, 112, 3), 300.0), "raw")
    with pytest.raises(ValueError) as error:
        check_images(np.full((1, 112, 112, 3), 400.0, np.float32), "recentered")
    assert "look like raw" not in str(error.value)


def test_check_images_unknown_space(random_images):
    with pytest.raises(ValueError, match="space must be"):
        check_images(random_images, "normalized")


# Property-based checks of the image kinds (raw pixels vs recentred images):
# batches are drawn as a few pixel values tiled over 1-3 images, so that every
# range, including the one both kinds share, is reached quickly.
_PIXELS = 112 * 112 * 3


def _batch(values, num_images: int, dtype) -> np.ndarray:
    return np.resize(np.asarray(values, dtype=dtype), num_images * _PIXELS).reshape(num_images, 112, 112, 3)


def _float_batches(low: float, high: float):
    values = st.lists(st.floats(low, high), min_size=1, max_size=6)
    return st.builds(_batch, values, st.integers(1, 3), st.just(np.float32))


_RAW_UINT8 = st.builds(_batch, st.lists(st.integers(0, 255), min_size=1, max_size=6), st.integers(1, 3),
                       st.just(np.uint8))
_SETTINGS = settings(max_examples=40, deadline=None)


@_SETTINGS
@given(_RAW_UINT8)
def test_property_uint8_is_raw_and_round_trips(images):
    assert check_images(images, "raw") is images
    with pytest.raises(ValueError, match="raw pixels"):
        check_images(images, "recentered")
    recentred = recenter_images(images)
    assert isinstance(recentred, RecentredImages) and recentred.dtype == np.float32
    assert check_images(recentred, "recentered") is recentred
    np.testing.assert_array_equal(uncenter_images(recentred), images)
    with pytest.raises(ValueError, match="are recentred"):
        check_images(recentred, "raw")


@_SETTINGS
@given(_float_batches(0.0, RECENTERED_MAX))
def test_property_values_both_kinds_fit_must_be_declared(images):
    assert check_images(images, "raw") is images
    with pytest.raises(ValueError, match="fits raw pixels and recentred images alike"):
        check_images(images, "recentered")
    declared = as_recentred(images)
    assert check_images(declared, "recentered") is declared
    np.testing.assert_array_equal(np.asarray(declared), images)
    np.testing.assert_allclose(np.asarray(recenter_images(images)), images - RGB_MEANS, rtol=0, atol=1e-4)


@_SETTINGS
@given(_float_batches(RECENTERED_MIN, -0.01))
def test_property_negative_values_can_only_be_recentred(images):
    assert check_images(images, "recentered") is not None
    with pytest.raises(ValueError, match="Raw images must lie in 0..255"):
        check_images(images, "raw")


@_SETTINGS
@given(_float_batches(RECENTERED_MAX + 0.01, 255.0))
def test_property_values_above_the_recentred_range_can_only_be_raw(images):
    assert check_images(images, "raw") is images
    with pytest.raises(ValueError, match="look like raw"):
        check_images(images, "recentered")
    with pytest.raises(ValueError, match="look like raw"):
        as_recentred(images)


@_SETTINGS
@given(_RAW_UINT8, st.integers(0, 2))
def test_property_selections_stay_declared_and_arithmetic_does_not(images, start):
    recentred = recenter_images(images)
    for selection in (recentred[start:], recentred[[0]], recentred.copy(), recentred.astype(np.float64)):
        assert isinstance(selection, RecentredImages)
    for result in (recentred + 0.0, np.clip(recentred, -1, 1), -recentred):
        assert type(result) is np.ndarray
    assert type(recentred.min()) is np.float32


def test_declaring_integers_or_out_of_range_values_is_refused():
    with pytest.raises(ValueError, match=r"uint8, which means raw pixels"):
        as_recentred(np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match=r"int64, which means raw pixels"):
        check_images(np.zeros((1, 112, 112, 3), np.int64), "recentered")
    with pytest.raises(ValueError, match="Recentred images must lie in"):
        as_recentred(np.full((1, 112, 112, 3), -200.0))

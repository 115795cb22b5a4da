"""The seeded image stream on the real release: reproducibility, exclusions, augmentations."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from classes.data.image_stream import (
    DESCRIPTION_DTYPE,
    ImageStream,
    augment,
    crop_and_rescale,
)
from classes.data.images import available_image_sessions, count_images, load_images
from classes.data.preprocessing import (
    RECENTERED_MAX,
    RECENTERED_MIN,
    gaudy_images,
    recenter_images,
)
from classes.data.sessions import held_out_indices

BLOCK_SIZE = 32
HELD_OUT_SESSIONS = ("190923", "201025", "210225")


@pytest.fixture(scope="module")
def stream(data_root):
    return ImageStream(seed=3, block_size=BLOCK_SIZE, data_root=data_root, num_validation=40)


def _hashes(images) -> set[bytes]:
    return {hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest() for image in images}


def _held_out_ids() -> set[tuple[str, int]]:
    return {
        (session, int(index) + 1) for session in HELD_OUT_SESSIONS for index in held_out_indices(session)[1]
    }


def _drawn_ids(description) -> set[tuple[str, int]]:
    drawn = set(zip(description["base_session"].tolist(), description["base_number"].tolist(), strict=True))
    mixed = description["second_number"] > 0
    return drawn | set(
        zip(description["second_session"][mixed].tolist(), description["second_number"][mixed].tolist(), strict=True)
    )


def test_block_shape_dtype_and_range(stream):
    images, description = stream.block(0)
    assert images.shape == (BLOCK_SIZE, 112, 112, 3) and images.dtype == np.float32
    assert RECENTERED_MIN - 1e-3 <= images.min() and images.max() <= RECENTERED_MAX + 1e-3
    assert description.dtype == DESCRIPTION_DTYPE and len(description) == BLOCK_SIZE
    np.testing.assert_array_equal(description, stream.description(0))


def test_same_settings_same_blocks_other_seed_differs(stream, data_root):
    twin = ImageStream(seed=3, block_size=BLOCK_SIZE, data_root=data_root, num_validation=40)
    assert twin.fingerprint() == stream.fingerprint()
    first, first_description = stream.block(2)
    second, second_description = twin.block(2)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first_description, second_description)
    np.testing.assert_array_equal(twin.validation_images(), stream.validation_images())
    other = ImageStream(seed=4, block_size=BLOCK_SIZE, data_root=data_root, num_validation=40)
    assert other.fingerprint() != stream.fingerprint()
    assert not np.array_equal(other.block(2)[0], first)
    assert not np.array_equal(other.validation_positions, stream.validation_positions)
    resized = ImageStream(seed=3, block_size=BLOCK_SIZE + 1, data_root=data_root, num_validation=40)
    assert resized.fingerprint() != stream.fingerprint()


def test_blocks_do_not_depend_on_order_of_access(stream, data_root):
    in_order = [stream.block(index)[0] for index in range(3)]
    fresh = ImageStream(seed=3, block_size=BLOCK_SIZE, data_root=data_root, num_validation=40)
    np.testing.assert_array_equal(fresh.block(2)[0], in_order[2])
    np.testing.assert_array_equal(fresh.block(0)[0], in_order[0])
    assert not np.array_equal(in_order[0], in_order[1])


def test_base_images_are_the_pool_split_into_training_and_validation(stream, data_root):
    expected = sum(count_images(session, data_root) for session in available_image_sessions(data_root))
    expected -= sum(len(held_out_indices(session)[1]) for session in HELD_OUT_SESSIONS
                    if session in available_image_sessions(data_root))
    assert len(stream.base_ids) == expected
    assert len(stream.validation_positions) == 40
    assert np.intersect1d(stream.validation_positions, stream.training_positions).size == 0
    assert len(stream.validation_positions) + len(stream.training_positions) == expected
    assert not _held_out_ids() & set(stream.base_image_ids(np.arange(len(stream.base_ids))))


def test_validation_images_are_the_raw_originals(stream, data_root):
    validation = stream.validation_images()
    assert validation.shape == (40, 112, 112, 3) and validation.dtype == np.float32
    for row in (0, 17, 39):
        session, number = stream.base_image_ids([stream.validation_positions[row]])[0]
        np.testing.assert_array_equal(validation[row], recenter_images(load_images(session, [number], data_root))[0])


def test_no_repeats_and_no_validation_or_held_out_images(stream, data_root):
    blocks = np.concatenate([stream.block(index)[0] for index in range(8)])
    hashes = _hashes(blocks)
    assert len(hashes) == len(blocks)
    assert not hashes & _hashes(stream.validation_images())
    held_out = np.concatenate([
        recenter_images(load_images(session, held_out_indices(session)[1] + 1, data_root))
        for session in HELD_OUT_SESSIONS
    ])
    assert len(held_out) == 1800
    assert not hashes & _hashes(held_out)


def test_held_out_and_validation_ids_are_never_drawn(stream):
    forbidden = _held_out_ids() | set(stream.base_image_ids(stream.validation_positions))
    drawn = set()
    for index in range(1000):
        drawn |= _drawn_ids(stream.description(index))
    assert not drawn & forbidden
    # 32,000 draws (plus mixture partners) over ~10,300 training images reach almost all of them.
    assert len(drawn) > 0.9 * len(stream.training_positions)


def test_drawn_augmentations_follow_the_documented_distributions(stream):
    description = np.concatenate([stream.description(index) for index in range(300)])
    mixed = description["second_number"] > 0
    for flag, probability in (("flipped", 0.5), ("gaudy", 0.2), ("grayscale", 0.1)):
        assert abs(description[flag].mean() - probability) < 0.02, flag
    assert abs(mixed.mean() - 0.2) < 0.02
    assert np.all(description["mixture_weight"][~mixed] == 1.0)
    assert 0.3 <= description["mixture_weight"][mixed].min() and description["mixture_weight"].max() <= 1.0
    side = description["crop_side"]
    assert 56 <= side.min() and side.max() <= 112
    assert np.all(description["crop_left"] >= 0) and np.all(description["crop_left"] + side <= 112 + 1e-3)
    assert np.all(description["crop_top"] >= 0) and np.all(description["crop_top"] + side <= 112 + 1e-3)
    assert 0.8 <= description["gains"].min() and description["gains"].max() <= 1.2
    assert not np.any((description["base_session"] == description["second_session"])
                      & (description["base_number"] == description["second_number"]))


def _neutral_draws(count: int) -> dict:
    return {
        "mixed": np.zeros(count, bool), "weight": np.full(count, 0.5),
        "crop_side": np.full(count, 112.0), "crop_left": np.zeros(count), "crop_top": np.zeros(count),
        "flipped": np.zeros(count, bool), "gaudy": np.zeros(count, bool), "gains": np.ones((count, 3)),
        "contrast": np.ones(count), "brightness": np.zeros(count), "grayscale": np.zeros(count, bool),
    }


def test_each_augmentation_against_a_reference(data_root):
    first = load_images("190925", [1, 2], data_root)
    second = load_images("190925", [3, 4], data_root)
    np.testing.assert_array_equal(augment(first, second, _neutral_draws(2)), first)
    draws = _neutral_draws(2) | {"flipped": np.array([True, False])}
    np.testing.assert_array_equal(augment(first, second, draws), np.stack([first[0, :, ::-1], first[1]]))
    draws = _neutral_draws(2) | {"gaudy": np.array([False, True])}
    np.testing.assert_array_equal(augment(first, second, draws)[1], gaudy_images(first[1:])[0])
    draws = _neutral_draws(2) | {"mixed": np.array([True, False]), "weight": np.array([0.3, 0.5])}
    blend = np.round(0.3 * first[0].astype(float) + 0.7 * second[0])
    np.testing.assert_array_equal(augment(first, second, draws)[0], blend)
    gains, contrast, brightness = np.array([[0.8, 1.0, 1.2]] * 2), np.array([0.6, 1.4]), np.array([-30.0, 25.0])
    draws = _neutral_draws(2) | {"gains": gains, "contrast": contrast, "brightness": brightness}
    scaled = first.astype(np.float64) * gains[:, None, None, :]
    means = scaled.mean(axis=(1, 2, 3), keepdims=True)
    expected = np.clip((scaled - means) * contrast[:, None, None, None] + means + brightness[:, None, None, None],
                       0, 255)
    np.testing.assert_allclose(augment(first, second, draws), expected, atol=1e-3)
    draws = _neutral_draws(2) | {"grayscale": np.array([True, True])}
    grayscale = augment(first, second, draws)
    assert np.all(grayscale[..., 0] == grayscale[..., 1]) and np.all(grayscale[..., 1] == grayscale[..., 2])


def test_crop_matches_bilinear_interpolation():
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    left, top, side = 10.0, 20.0, 56.0
    # Bilinear with pixel centres at +0.5, as PIL samples when enlarging.
    rows = np.clip(top + (np.arange(112) + 0.5) * side / 112 - 0.5, 0, 111)
    columns = np.clip(left + (np.arange(112) + 0.5) * side / 112 - 0.5, 0, 111)
    row0, column0 = np.floor(rows).astype(int), np.floor(columns).astype(int)
    row1, column1 = np.minimum(row0 + 1, 111), np.minimum(column0 + 1, 111)
    row_weight, column_weight = (rows - row0)[:, None, None], (columns - column0)[None, :, None]
    source = image.astype(float)
    top_row = source[row0][:, column0] * (1 - column_weight) + source[row0][:, column1] * column_weight
    bottom_row = source[row1][:, column0] * (1 - column_weight) + source[row1][:, column1] * column_weight
    expected = top_row * (1 - row_weight) + bottom_row * row_weight
    assert np.abs(crop_and_rescale(image, left, top, side) - expected).max() <= 1.0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"block_size": 0}, "block_size must be at least 1"),
        ({"block_size": 2.5}, "block_size must be an integer"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"seed": True}, "seed must be an integer"),
        ({"num_validation": 10**6}, "num_validation=1000000 leaves fewer than 2"),
        ({"num_validation": -1}, "num_validation must be at least 0"),
    ],
)
def test_bad_settings_are_refused(data_root, arguments, message):
    with pytest.raises(ValueError, match=message):
        ImageStream(data_root=data_root, **arguments)


@pytest.mark.parametrize("index, message", [(-1, "at least 0"), (1.0, "integer"), ("0", "integer")])
def test_bad_block_index_is_refused(stream, index, message):
    with pytest.raises(ValueError, match=f"block index must be.*{message}"):
        stream.block(index)
    with pytest.raises(ValueError, match="block index"):
        stream.description(index)


def test_data_root_without_images_is_refused(tmp_path):
    marker = tmp_path / "data_compact_models" / "models_keras"
    marker.mkdir(parents=True)
    (marker / "placeholder.keras").write_text("")
    with pytest.raises(FileNotFoundError, match="No image zips"):
        ImageStream(data_root=tmp_path)

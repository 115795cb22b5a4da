"""Images read from the release's zips: counts, indexing, cache, resizing, errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import classes.data.images as images_module
from classes.data.images import (
    available_image_sessions,
    count_images,
    image_zip_path,
    load_images,
)
from classes.data.sessions import get_session

PRESENT = (
    "190923", "190925", "190927", "190928", "190929", "201025",
    "210224", "210225", "210305", "210322", "210325", "210621",
)  # fmt: skip


def _decode_member_directly(data_root, session_id: str, number: int) -> np.ndarray:
    """Reference decode: find image####.jpg in the zip by name and read it with PIL."""
    path = data_root / "data_V4_responses" / "images" / f"images_{session_id}.zip"
    with zipfile.ZipFile(path) as archive:
        wanted = f"image{number:04d}.jpg"
        (member,) = [name for name in archive.namelist() if name.split("/")[-1] == wanted]
        with Image.open(io.BytesIO(archive.read(member))) as image:
            return np.asarray(image.convert("RGB"))


def _tmp_images_root(tmp_path, data_root):
    """A data root with an empty, writable images folder (and real responses)."""
    root = tmp_path / "release"
    images = root / "data_V4_responses" / "images"
    images.mkdir(parents=True)
    (root / "data_V4_responses" / "responses_repeat_averaged").symlink_to(
        data_root / "data_V4_responses" / "responses_repeat_averaged"
    )
    return root, images


def test_present_zips_are_the_twelve_of_the_release(data_root):
    assert available_image_sessions(data_root) == list(PRESENT)


@pytest.mark.parametrize("session_id", PRESENT)
def test_zip_counts_and_first_last_decode(data_root, session_id):
    expected = get_session(session_id).num_images_in_file
    assert count_images(session_id, data_root) == expected
    first_last = load_images(session_id, [1, expected], data_root, use_cache=False)
    assert first_last.shape == (2, 112, 112, 3)
    assert first_last.dtype == np.uint8
    np.testing.assert_array_equal(first_last[0], _decode_member_directly(data_root, session_id, 1))
    np.testing.assert_array_equal(
        first_last[1], _decode_member_directly(data_root, session_id, expected)
    )
    # One past the last image is out of range.
    with pytest.raises(ValueError, match="1-based"):
        load_images(session_id, [expected + 1], data_root, use_cache=False)


@pytest.mark.parametrize("session_id", ["190923", "190925"])
def test_indices_are_one_based(data_root, image_cache, session_id):
    # 190923 keeps its JPEGs in a top folder; 190925's zip lists them out of order.
    all_images = load_images(session_id, None, data_root, cache_dir=image_cache)
    assert all_images.shape == (1200, 112, 112, 3)
    first = load_images(session_id, [1], data_root, use_cache=False)
    np.testing.assert_array_equal(first[0], all_images[0])
    np.testing.assert_array_equal(first[0], _decode_member_directly(data_root, session_id, 1))
    np.testing.assert_array_equal(
        all_images[1017], _decode_member_directly(data_root, session_id, 1018)
    )
    assert not np.array_equal(all_images[0], all_images[1])


@pytest.mark.parametrize("use_cache", [False, True])
def test_arbitrary_order_of_indices(data_root, image_cache, use_cache):
    numbers = [700, 3, 1200, 3, 1, 451]
    chosen = load_images("190923", numbers, data_root, use_cache=use_cache, cache_dir=image_cache)
    assert chosen.shape == (6, 112, 112, 3)
    for row, number in enumerate(numbers):
        np.testing.assert_array_equal(
            chosen[row], _decode_member_directly(data_root, "190923", number)
        )
    # A numpy array of indices, 2-D, gives the same flattened selection.
    again = load_images("190923", np.array([[700, 3], [1200, 3], [1, 451]]), data_root,
                        use_cache=use_cache, cache_dir=image_cache)  # fmt: skip
    np.testing.assert_array_equal(again, chosen)


def test_empty_index_list(data_root):
    empty = load_images("210305", [], data_root, use_cache=False)
    assert empty.shape == (0, 112, 112, 3) and empty.dtype == np.uint8


def test_second_call_reads_the_cache(data_root, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = load_images("210305", [5, 1, 400], data_root, cache_dir=cache_dir)
    cached_files = list(cache_dir.glob("images_210305_*.npy"))
    assert len(cached_files) == 1
    cached = np.load(cached_files[0])
    assert cached.shape == (400, 112, 112, 3) and cached.dtype == np.uint8

    def refuse_to_decode(path):
        raise AssertionError("decoded the zip again instead of reading the cache")

    monkeypatch.setattr(images_module, "_decode_all", refuse_to_decode)
    second = load_images("210305", [5, 1, 400], data_root, cache_dir=cache_dir)
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(second, cached[[4, 0, 399]])
    everything = load_images("210305", None, data_root, cache_dir=cache_dir)
    np.testing.assert_array_equal(everything, cached)


def test_corrupt_cache_file_is_rebuilt(data_root, tmp_path):
    cache_dir = tmp_path / "cache"
    reference = load_images("210305", [2], data_root, cache_dir=cache_dir)
    (cached,) = cache_dir.glob("images_210305_*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    again = load_images("210305", [2], data_root, cache_dir=cache_dir)
    np.testing.assert_array_equal(again, reference)
    assert np.load(cached).shape == (400, 112, 112, 3)


def test_cache_dir_from_environment(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(tmp_path / "from_env"))
    load_images("210305", [1], data_root)
    assert len(list((tmp_path / "from_env").glob("images_210305_*.npy"))) == 1


def _bilinear_reference(images: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centred bilinear upsampling in NumPy, float64 ``(N, size, size, 3)``."""
    length = images.shape[1]
    coordinates = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
    low = np.floor(coordinates).astype(int)
    high = np.minimum(low + 1, length - 1)
    weight = coordinates - low
    pixels = images.astype(np.float64)
    rows = pixels[:, low] * (1 - weight)[:, None, None] + pixels[:, high] * weight[:, None, None]
    return rows[:, :, low] * (1 - weight)[:, None] + rows[:, :, high] * weight[:, None]


def test_resize_to_224(data_root, image_cache):
    small = load_images("190923", [1, 2], data_root, cache_dir=image_cache)
    large = load_images("190923", [1, 2], data_root, cache_dir=image_cache, size=224)
    assert large.shape == (2, 224, 224, 3) and large.dtype == np.uint8
    # PIL rounds its fixed-point weights, hence up to one grey level apart.
    difference = np.abs(large - _bilinear_reference(small, 224))
    assert difference.max() <= 1.0
    kept = load_images("190923", [1], data_root, cache_dir=image_cache, size=112)
    np.testing.assert_array_equal(kept, small[:1])


def test_missing_zip_names_present_sessions(data_root):
    with pytest.raises(FileNotFoundError) as error:
        load_images("211022", [1], data_root)
    message = str(error.value)
    assert "images_211022.zip" in message
    assert ", ".join(PRESENT) in message
    with pytest.raises(FileNotFoundError, match="images_211022.zip"):
        image_zip_path("211022", data_root)


@pytest.mark.parametrize("bad", [[0], [1201], [-3], [1, 5000]])
def test_out_of_range_index(data_root, image_cache, bad):
    with pytest.raises(ValueError, match="1-based"):
        load_images("190923", bad, data_root, cache_dir=image_cache)
    with pytest.raises(ValueError, match="1-based"):
        load_images("190923", bad, data_root, use_cache=False)


@pytest.mark.parametrize("bad", [[1.5], [1.0, 2.0], ["3"]])
def test_non_integer_index(data_root, image_cache, bad):
    with pytest.raises(ValueError, match="integers"):
        load_images("190923", bad, data_root, cache_dir=image_cache)


def test_unknown_session(data_root):
    with pytest.raises(ValueError, match="Unknown session"):
        load_images("123456", [1], data_root)


@pytest.mark.parametrize("use_cache", [False, True])
def test_truncated_zip_raises_value_error(data_root, tmp_path, use_cache):
    root, folder = _tmp_images_root(tmp_path, data_root)
    source = data_root / "data_V4_responses" / "images" / "images_210305.zip"
    content = source.read_bytes()
    (folder / source.name).write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_images("210305", [1], root, use_cache=use_cache, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        count_images("210305", root)


def test_zip_with_damaged_member_raises_value_error(data_root, tmp_path):
    root, folder = _tmp_images_root(tmp_path, data_root)
    source = data_root / "data_V4_responses" / "images" / "images_210305.zip"
    content = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("image0002.jpg")
    # Overwrite bytes in the middle of image0002.jpg's data (the central
    # directory stays intact, so only that member fails its CRC).
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    content[start : start + 64] = bytes(64)
    (folder / source.name).write_bytes(bytes(content))
    np.testing.assert_array_equal(
        load_images("210305", [1], root, use_cache=False),
        load_images("210305", [1], data_root, use_cache=False),
    )
    with pytest.raises(ValueError, match="image0002.jpg"):
        load_images("210305", [2], root, use_cache=False)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_images("210305", None, root, cache_dir=tmp_path / "cache")

"""Per-image repeat counts recovered from repeat-averaged responses."""

from __future__ import annotations

import numpy as np
import pytest

from classes.data.repeat_counts import recover_repeat_counts, repeat_counts, repeat_counts_fit
from classes.data.responses import load_raw, load_repeat_averaged


def averaged_spike_counts(counts, num_neurons=20, rate=3.0, seed=0):
    """Means of Poisson spike counts over each image's ``counts[j]`` repeats, as the release stores them."""
    generator = np.random.default_rng(seed)
    spikes = generator.poisson(rate, size=(num_neurons, len(counts), max(counts))).astype(np.float64)
    padded = np.where(np.arange(max(counts))[None, None, :] < np.asarray(counts)[None, :, None], spikes, np.nan)
    return np.nanmean(padded, axis=2)


def test_recovers_known_counts():
    counts = np.random.default_rng(1).integers(1, 34, size=300)
    np.testing.assert_array_equal(recover_repeat_counts(averaged_spike_counts(counts)), counts)


@pytest.mark.parametrize("session", ["201016", "210325"])
def test_recovered_counts_equal_the_raw_files_counts(session, data_root, tmp_path):
    raw = load_raw(session, data_root)
    counts = np.sum(~np.isnan(raw), axis=2)
    assert np.all(counts == counts[:1])  # every neuron saw the same repeats
    recovered = repeat_counts(session, data_root, cache_dir=tmp_path)
    np.testing.assert_array_equal(recovered, counts[0])
    assert recovered.dtype == np.int64 and len(list(tmp_path.glob(f"repeat_counts_responses_{session}_*.npy"))) == 1


def test_test_sessions_counts_fit_their_averages(data_root, tmp_path):
    for session in ("190923", "201025", "210225", "211022"):
        averaged = load_repeat_averaged(session, data_root)
        counts = repeat_counts(session, data_root, cache_dir=tmp_path)
        assert repeat_counts_fit(averaged, counts)
        # The smallest fitting count: one repeat fewer does not fit any image.
        assert not np.any(np.all(np.abs(averaged * (counts - 1) - np.round(averaged * (counts - 1))) < 1e-9, axis=0)
                          & (counts > 1))


def test_cache_is_used_and_a_wrong_cache_is_replaced(data_root, tmp_path):
    first = repeat_counts("210325", data_root, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("repeat_counts_*.npy")
    np.save(cached, first + 1)  # counts that do not fit the averages
    np.testing.assert_array_equal(repeat_counts("210325", data_root, cache_dir=tmp_path), first)
    np.testing.assert_array_equal(np.load(cached), first)
    cached.write_bytes(b"not an npy file")
    np.testing.assert_array_equal(repeat_counts("210325", data_root, cache_dir=tmp_path), first)
    np.testing.assert_array_equal(repeat_counts("210325", data_root, use_cache=False), first)


@pytest.mark.parametrize("averaged, message", [
    (np.array([[1.0, 0.0], [2.0, 0.0]]), "every neuron's average is 0"),
    (np.array([[1.0, -0.5]]), "non-negative"),
    (np.array([[1.0, np.nan]]), "finite"),
    (np.array([[1.0, 1 / np.pi]]), "No repeat count up to 200"),
    (np.ones(3), r"\(num_neurons, num_images\)"),
])
def test_unrecoverable_averages_raise(averaged, message):
    with pytest.raises(ValueError, match=message):
        recover_repeat_counts(averaged)


def test_counts_fit_check():
    averaged = averaged_spike_counts([3, 5, 7], num_neurons=30)
    assert repeat_counts_fit(averaged, np.array([3, 5, 7]))
    assert not repeat_counts_fit(averaged, np.array([3, 5, 8]))
    assert not repeat_counts_fit(averaged, np.array([3.0, 5.0, 7.0]))  # counts are integers
    assert not repeat_counts_fit(averaged, np.array([3, 5]))

"""script1_plot_responses.py end to end on the real release."""

from __future__ import annotations

import json

import numpy as np
import pytest

import script1_plot_responses as script1
from classes.data.responses import load_repeat_averaged


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, image_cache):
    monkeypatch.setenv("COWLEY2023_CACHE_DIR", str(image_cache))


def _read_json(folder, session_id):
    return json.loads((folder / f"session_{session_id}.json").read_text())


def test_session_with_images(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    summary = script1.main(
        ["--session", "190923", "--num-images", "10", "--out", str(out), "--data-root", str(data_root)]
    )
    assert sorted(path.name for path in out.iterdir()) == [
        ".cowley2023-results", "session_190923.json", "session_190923.pdf", "session_190923.png",
    ]  # fmt: skip
    assert (out / "session_190923.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "session_190923.pdf").read_bytes()[:5] == b"%PDF-"
    written = _read_json(out, "190923")
    assert written["session"] == {
        "session_id": "190923", "animal": "WE", "split": "test", "num_neurons": 33,
        "num_repeats": 14, "num_images": 1200, "num_images_in_file": 1200,
        "image_types": "normal (1,200)", "is_held_out_test": True,
    }  # fmt: skip
    assert written["images"]["available"] is True
    assert written["images"]["shown"] == list(range(1, 11))
    responses = load_repeat_averaged("190923", data_root)
    assert written["responses"]["shape"] == [33, 1200]
    assert written["responses"]["mean"] == pytest.approx(responses.mean())
    assert written["responses"]["max"] == pytest.approx(responses.max())
    assert written["responses"]["neuron_mean_response"]["median"] == pytest.approx(
        np.median(responses.mean(axis=1))
    )
    # Neurons sorted by mean response, highest first.
    order = written["neuron_order"]
    assert sorted(order) == list(range(33))
    means = responses.mean(axis=1)[order]
    assert np.all(np.diff(means) <= 0)
    statuses = {row["quantity"]: row["status"] for row in written["comparison"]}
    assert statuses == {
        "neurons": "reproduced", "images": "reproduced", "repeats per image": "not computable",
    }  # fmt: skip
    assert written["repeats"]["missing_file"].endswith("responses_raw/responses_190923.npy")
    assert summary["session"]["session_id"] == "190923"
    printed = capsys.readouterr().out
    assert "Session 190923: animal WE, test split, 33 neurons" in printed


def test_session_without_images(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    script1.main(["--session", "211022", "--out", str(out), "--data-root", str(data_root)])
    assert {path.name for path in out.iterdir()} == {
        ".cowley2023-results", "session_211022.json", "session_211022.pdf", "session_211022.png",
    }  # fmt: skip
    written = _read_json(out, "211022")
    assert written["images"] == {
        "shown": [],
        "available": False,
        "missing_file": "data_V4_responses/images/images_211022.zip",
    }
    assert written["responses"]["shape"] == [42, 1600]
    assert written["session"]["num_repeats"] == 20
    printed = capsys.readouterr().out
    assert "note:" in printed and "images_211022.zip" in printed


def test_session_with_raw_responses(data_root, tmp_path):
    out = tmp_path / "out"
    script1.main(["--session", "201016", "--num-images", "0", "--out", str(out),
                  "--data-root", str(data_root), "--no-sort-neurons"])  # fmt: skip
    written = _read_json(out, "201016")
    assert written["neuron_order"] == list(range(82))
    assert written["repeats"]["max_repeats"] == 10
    assert written["repeats"]["repeats_per_image"] == {"min": 5, "median": 6.0, "max": 9}
    assert written["repeats"]["repeat_average_max_abs_difference"] == 0.0
    rows = {row["quantity"]: row for row in written["comparison"]}
    assert rows["repeats per image"]["status"] == "reproduced"
    # The readme counts 900 images; the released files hold 600.
    assert rows["images"]["status"] == "differs"
    assert rows["images"]["reproduced"] == 600


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--session", "190930"], "Unknown session"),
        (["--session", "190923", "--num-images", "1201"], "--num-images must be 0..1200"),
        (["--session", "190923", "--num-images", "-1"], "--num-images"),
    ],
)
def test_bad_arguments_exit_cleanly(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        script1.main(argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_data_root_exits_cleanly(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        script1.main(["--session", "190923", "--data-root", str(tmp_path / "nowhere"),
                      "--out", str(tmp_path / "out")])  # fmt: skip
    assert "does not exist" in str(exit_info.value.code)

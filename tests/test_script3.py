"""script3_load_compact_models: every format of one released model agrees."""

from __future__ import annotations

import json
import os

import pytest

import script3_load_compact_models as script3
from classes.compact.torch_agreement import MEASURED_MAX_RELATIVE_DIFFERENCE
from classes.compact.torch_model import torch_available

# As in tests/test_torch_port.py: headroom over the measurement of
# docs/torch_port.md, float-rounding floor for the exact port.
RELEASE_BOUND = 1.5 * MEASURED_MAX_RELATIVE_DIFFERENCE["release_pt"]
FROM_KERAS_BOUND = max(1.5 * MEASURED_MAX_RELATIVE_DIFFERENCE["from_keras"], 1e-5)


def _torch_expected() -> bool:
    if os.environ.get("CI") and not torch_available():
        pytest.fail("CI needs PyTorch for the Torch formats (pip install torch).")
    return torch_available()


@pytest.fixture(scope="module")
def result_folder(data_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("script3")
    script3.main(
        ["--session", "190923", "--neuron", "0", "--num-images", "48", "--out", str(folder)]
    )
    return folder


def test_outputs_written(result_folder):
    for name in ("agreement.json", "responses.csv", "agreement.png", "agreement.pdf"):
        assert (result_folder / name).stat().st_size > 0, name
    lines = (result_folder / "responses.csv").read_text().splitlines()
    assert len(lines) == 49
    assert lines[1].startswith("190923,601,")


def test_agreement_values(result_folder):
    result = json.loads((result_folder / "agreement.json").read_text())
    assert result["model"] == "compact_model_190923_neuron0"
    assert result["image_session"] == "190923" and result["image_note"] == ""
    assert result["image_numbers"][0] == 601 and result["num_images"] == 48
    assert result["response_sd"] > 0
    formats = result["formats"]
    assert list(formats) == [name for name, _ in script3.FORMATS]
    for name in ("npy", "keras_roundtrip", "weights_h5_roundtrip"):
        assert formats[name]["status"] == "ok"
        assert formats[name]["max_abs_diff"] == 0.0, name
        assert formats[name]["identical"] is True, name
    if _torch_expected():
        ported = formats["torch_from_keras"]
        assert ported["status"] == "ok"
        assert 0 < ported["max_diff_over_sd"] <= FROM_KERAS_BOUND
        assert ported["pearson_r"] > 0.999999
        release = formats["torch_release"]
        assert release["status"] == "ok"
        assert 1e-3 <= release["max_diff_over_sd"] <= RELEASE_BOUND
        assert release["file"].endswith("compact_model_190923_neuron0.pt")
    else:
        for name in ("torch_release", "torch_from_keras"):
            assert formats[name]["status"] == "unavailable"
            assert "pip install torch" in formats[name]["reason"]
    # Three rows with PyTorch (release .pt over the largest response and over
    # the s.d., then the exact port); one "not computable" row without it.
    statuses = [row["status"] for row in result["comparison"]]
    if _torch_expected():
        assert statuses == ["reproduced", "approximate", "reproduced"], statuses
        assert result["comparison"][0]["reproduced"] == pytest.approx(
            formats["torch_release"]["max_diff_over_max_abs_response"]
        )
    else:
        assert statuses == ["not computable"], statuses


def test_session_without_images_uses_substitute(data_root, tmp_path):
    result = script3.main(
        ["--session", "211022", "--neuron", "41", "--num-images", "4", "--out", str(tmp_path)]
    )
    assert result["image_session"] == "210224"
    assert result["image_numbers"] == [401, 402, 403, 404]
    assert "images_211022.zip" in result["image_note"]
    assert result["formats"]["npy"]["max_abs_diff"] == 0.0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--session", "210224"], "no compact models"),
        (["--session", "190923", "--neuron", "33"], "neurons 0..32"),
        (["--session", "190923", "--num-images", "0"], "must be positive"),
    ],
)
def test_bad_arguments_exit_cleanly(data_root, tmp_path, arguments, message):
    with pytest.raises(SystemExit) as raised:
        script3.main(arguments + ["--out", str(tmp_path)])
    assert message in str(raised.value.code)

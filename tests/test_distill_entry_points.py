"""``python -m code_distill_and_prune.run``, CI-sized, on the release: stages, resuming, the record, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classes.compact.architecture import load_nums_filters, model_id
from classes.compact.tools import predict_responses
from classes.data.image_stream import ImageStream
from classes.data.responses import load_held_out
from classes.runtime.keras_files import load_keras_file
from classes.training.compression_report import held_out_images, score_models
from classes.training.distillation import initial_student_weights
from classes.training.pruning_rebuild import mask_pruned_filters
from classes.training.teacher import Teacher
from code_distill_and_prune import run

TINY = ["--student-filters", "8,6,4,4,3", "--block-size", "16", "--images", "48", "--retrain-images", "32",
        "--num-validation", "16"]
SCORES = {"nums_filters", "convolutional_filters", "r2_teacher_validation", "r2_teacher_held_out", "pearson_r",
          "noise_corrected_r2"}


def test_the_pipeline_runs_records_and_resumes(data_root, tmp_path):
    common = ["--session", "190923", "--neuron", "0", "--teacher", "compact", "--out", str(tmp_path),
              "--data-root", str(data_root), *TINY]
    record = run.main(common)
    folder = tmp_path / "compact_190923_neuron0"
    for name in ("distill/student.keras", "prune/pruned.keras", "retrain/retrained.keras", "evaluation.json",
                 "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert set(record["models"]) == {"student", "pruned", "retrained", "released", "teacher"}
    for name in ("student", "pruned", "retrained", "released"):
        assert set(record["models"][name]) == SCORES, name
        counts = record["models"][name]["nums_filters"]
        assert record["models"][name]["convolutional_filters"] == 2 * counts[0] + sum(counts[1:])
    assert record["models"]["student"]["nums_filters"] == [8, 6, 4, 4, 3]
    released = record["models"]["released"]
    assert released["nums_filters"] == load_nums_filters(model_id("190923", 0), data_root)
    # The compact teacher is the released model itself: a planted truth.
    assert released["r2_teacher_validation"] == pytest.approx(1, abs=1e-6)
    assert released["r2_teacher_held_out"] == pytest.approx(1, abs=1e-6)
    teacher = Teacher("compact", "190923/0", data_root=data_root).responses(held_out_images("190923", data_root))[0]
    _, means, _ = load_held_out("190923", data_root)
    assert record["models"]["teacher"]["pearson_r"] == pytest.approx(np.corrcoef(teacher, means[0])[0, 1], rel=1e-5)

    pruned = record["pruning"]["nums_filters"]
    assert all(3 <= count <= total for count, total in zip(pruned, [8, 6, 4, 4, 3], strict=True))
    assert record["models"]["pruned"]["nums_filters"] == record["models"]["retrained"]["nums_filters"] == pruned
    student = load_keras_file(folder / "distill/student.keras")
    images = held_out_images("190923", data_root)[:8]
    np.testing.assert_allclose(predict_responses(load_keras_file(folder / "prune/pruned.keras"), images),
                               predict_responses(mask_pruned_filters(student, record["pruning"]["kept"]), images),
                               rtol=1e-4, atol=1e-5)
    assert [record["costs"][stage]["images"] for stage in ("distill", "prune", "retrain")] == [48, 32, 32]
    assert record["pruning"]["mirrored"] and record["notes"] == []
    assert [len(record["learning_curves"][stage]) for stage in ("distill", "retrain")] == [4, 3]
    assert list(json.loads((tmp_path / "compression_results.json").read_text())) == ["planted_190923_neuron0"]
    assert (tmp_path / "learning_curves.png").is_file() and (tmp_path / "learning_curves.pdf").is_file()

    state = (folder / "distill/state.json").read_text()
    modified = (folder / "retrain/retrained.keras").stat().st_mtime_ns
    assert run.main([*common, "--until", "retrain"]) is None  # every stage done: nothing is trained again
    assert (folder / "distill/state.json").read_text() == state
    assert (folder / "retrain/retrained.keras").stat().st_mtime_ns == modified
    with pytest.raises(SystemExit, match=r"other settings \(num_images: 48 -> 64\)"):
        run.main([*common, "--images", "64"])
    # Distillation is unchanged and passes; retraining names its own rate.
    assert record["learning_curves"]["retrain"][-1]["learning_rate"] == 1e-4
    with pytest.raises(SystemExit, match=r"retrain holds a run made with other settings \(learning_rate: 0.0001 -> 5e-05\)"):
        run.main([*common, "--retrain-learning-rate", "5e-5"])


def _error(argv) -> str:
    with pytest.raises(SystemExit) as raised:
        run.main(argv)
    message = str(raised.value)
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_bad_input_is_a_one_line_error(data_root, tmp_path):
    common = ["--out", str(tmp_path / "out"), "--data-root", str(data_root), *TINY]
    assert "below one block of 16" in _error(["--session", "190923", "--neuron", "0", *common, "--images", "8"])
    assert "--retrain-images: The image budget (4) is below one block" in _error(
        ["--session", "190923", "--neuron", "0", *common, "--retrain-images", "4"])
    assert "--retrain-learning-rate must be positive; got 0.0" in _error(
        ["--session", "190923", "--neuron", "0", *common, "--retrain-learning-rate", "0"])
    assert "--num-validation" in _error(["--session", "190923", "--neuron", "0", *common, "--num-validation", "1"])
    assert "--student-filters" in _error(["--session", "190923", "--neuron", "0", *common, "--student-filters", "8,4"])
    assert "neurons 0..32" in _error(["--session", "190923", "--neuron", "40", *common])
    assert "190924" in _error(["--session", "190924", "--neuron", "0", *common, "--teacher", "compact"])


def test_a_missing_or_corrupt_teacher_is_a_one_line_error(tmp_path):
    release = tmp_path / "release"
    (release / "data_compact_models" / "model_weights_npy").mkdir(parents=True)
    (release / "data_compact_models" / "model_weights_npy" / "compact_model_190923_neuron0.npy").write_bytes(b"bad")
    shared = release / "data_shared_compact_models" / "from_ensemble_model"
    shared.mkdir(parents=True)
    common = ["--out", str(tmp_path / "out"), "--data-root", str(release), *TINY, "--session", "190923"]
    assert "corrupt" in _error([*common, "--neuron", "0", "--teacher", "compact"])
    assert "compact_model_190923_neuron1.npy" in _error([*common, "--neuron", "1", "--teacher", "compact"])
    assert "shared_compact_model_200filters.keras" in _error([*common, "--neuron", "0", "--teacher", "shared"])
    (shared / "shared_compact_model_200filters.keras").write_bytes(b"bad")
    assert "corrupt" in _error([*common, "--neuron", "0", "--teacher", "shared"])


def test_a_session_without_images_says_what_cannot_be_scored(data_root):
    stream = ImageStream(seed=0, block_size=4, data_root=data_root, num_validation=6)
    teacher = Teacher("compact", "211022/3", data_root=data_root)
    images = stream.validation_images()
    validation = (images, teacher.responses(images)[0])
    weights = initial_student_weights([4, 4, 3, 3, 3], 0)
    scores = score_models({"student": weights, "released": model_id("211022", 3)}, teacher, 0,
                          model_id("211022", 3), validation, data_root)
    assert "211022" in scores["notes"][0] and "cannot be computed" in scores["notes"][0]
    assert set(scores["models"]) == {"student", "released"}
    assert set(scores["models"]["student"]) == {"nums_filters", "convolutional_filters", "r2_teacher_validation"}
    assert scores["models"]["released"]["r2_teacher_validation"] == pytest.approx(1, abs=1e-6)


def _record(teacher: str, distill: list, retrain: list) -> dict:
    def curve(points):
        return [{"images_seen": seen, "r2_validation": r2} for seen, r2 in points]

    scores = {"nums_filters": [3, 3, 3, 3, 3], "convolutional_filters": 18, "r2_teacher_held_out": 0.5,
              "pearson_r": 0.4, "noise_corrected_r2": 0.2}
    return {"model": "190923/neuron0", "teacher": {"model": teacher, "kind": "shared"},
            "learning_curves": {"distill": curve(distill), "retrain": curve(retrain)},
            "models": {"student": scores, "retrained": scores, "released": scores, "teacher": scores},
            "costs": {"distill": {"images": 200, "cpu_seconds": 1800.0}, "retrain": {"images": 100, "cpu_seconds": 1800.0}}}


def test_all_runs_learning_curves_continue_retraining_where_distillation_ended():
    from classes.figures.compression import figure_learning_curves_of_runs, format_results_table

    records = {"190923_neuron0": _record("t/200", [(0, 0.0), (100, 0.2), (200, 0.4)], [(0, 0.1), (100, 0.3)]),
               "201025_neuron2": _record("t/200", [(0, 0.0), (200, 0.5)], [(0, 0.2), (50, 0.4), (100, 0.45)])}
    lines = figure_learning_curves_of_runs(records).axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [[0, 100, 200], [200, 300], [0, 200], [200, 250, 300]]
    assert [line.get_linestyle() for line in lines] == ["-", ":", "-", ":"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    table = format_results_table(records).splitlines()
    assert len(table) == 4 and table[2].endswith("| 0.500 / 0.500 | 0.400 / 0.400 | 0.200 / 0.200 / 0.200 | 200 + 100 | 1.00 |")

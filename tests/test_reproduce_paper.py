"""reproduce_paper.py: one real quick run, and the orchestration on fake script outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import reproduce_paper
from classes.reporting import paper_runner
from classes.reporting.paper_report import figure_of
from classes.reporting.paper_scripts import PAPER_SCRIPTS, select_scripts

BY_NUMBER = {script.number: script for script in PAPER_SCRIPTS}


def test_quick_script1_runs_for_real_and_is_then_skipped(data_root, tmp_path):
    out = tmp_path / "paper"
    assert reproduce_paper.main(["--scripts", "1", "--quick", "--out", str(out)]) == 0
    result = json.loads((out / "script1_plot_responses" / "session_190923.json").read_text())
    report = json.loads((out / "report.json").read_text())
    [entry] = report["scripts"]
    assert (entry["outcome"], entry["exit_status"], entry["num_rows"]) == ("succeeded", 0, len(result["comparison"]))
    assert [(row["quantity"], row["published"], row["reproduced"], row["status"], row["reason"])
            for row in report["rows"]] == [(row["quantity"], row["published"], row["reproduced"], row["status"],
                                            row["note"]) for row in result["comparison"]]
    assert {row["figure"] for row in report["rows"]} == {"Ext. Data Table 1"}
    log = out / "logs" / "script1_plot_responses.log"
    assert "Session 190923" in log.read_text() and entry["seconds"] > 0
    page = (out / "report.html").read_text()
    assert "repeats per image" in page and not re.search(r"(src|href)=|<link|<script|@import", page)
    assert "| Ext. Data Table 1 | neurons | 33 | 33 | reproduced |" in (out / "report.md").read_text()
    # The same settings again: nothing reruns, the earlier log and run time stay.
    written = log.stat().st_mtime_ns
    assert reproduce_paper.main(["--scripts", "1", "--quick", "--out", str(out)]) == 0
    again = json.loads((out / "report.json").read_text())["scripts"][0]
    assert again["outcome"] == "skipped" and again["seconds"] == entry["seconds"]
    assert log.stat().st_mtime_ns == written


# --- fake script outputs -------------------------------------------------------------------------


def _rows(script) -> list[dict]:
    return [
        {"quantity": f"Fig. 9z value of {script.name}", "published": 1.5, "reproduced": 1.25,
         "status": "approximate", "note": "a | b <c>"},
        {"quantity": f"count of {script.name}", "published": 219, "reproduced": None,
         "status": "not computable", "note": "file missing"},
    ]


class FakeScripts:
    """Stands in for :func:`paper_runner.run_process`: writes each script's result JSON, or fails."""

    def __init__(self, exit_statuses=None, no_result=(), interrupt=None, fields=None):
        self.exit_statuses, self.no_result, self.interrupt = exit_statuses or {}, no_result, interrupt
        self.fields = fields or {}
        self.calls = []

    def __call__(self, command, log, tick):
        folder = Path(command[command.index("--out") + 1])
        script = next(script for script in PAPER_SCRIPTS if script.name == folder.name)
        if script.number == self.interrupt:
            raise KeyboardInterrupt
        self.calls.append((script.number, command[2:command.index("--out")]))
        tick(1.0)
        status = self.exit_statuses.get(script.number, 0)
        log.write_text("".join(f"line {index}\n" for index in range(100))
                       + ("Traceback (most recent call last):\nMemoryError: fake\n" if status else "done\n"))
        if status == 0 and script.number not in self.no_result:
            folder.mkdir(parents=True, exist_ok=True)
            name = script.result_pattern.replace("*", "190923")
            (folder / name).write_text(json.dumps({"comparison": _rows(script), **self.fields.get(script.number, {})}))
        return status


@pytest.fixture
def release(tmp_path):
    """A folder that passes for the release (the fake scripts never read it)."""
    folder = tmp_path / "release"
    (folder / "data_V4_responses" / "responses_repeat_averaged").mkdir(parents=True)
    (folder / "data_V4_responses" / "responses_repeat_averaged" / "placeholder.npy").write_bytes(b"")
    return folder


def _run(monkeypatch, fake, out, release, *arguments) -> tuple[int, dict]:
    monkeypatch.setattr(paper_runner, "run_process", fake)
    status = reproduce_paper.main([*arguments, "--data-root", str(release), "--out", str(out)])
    return status, json.loads((out / "report.json").read_text())


def test_report_holds_every_row_of_every_script(monkeypatch, tmp_path, release):
    status, report = _run(monkeypatch, FakeScripts(), tmp_path / "out", release, "--scripts", "1,3,7")
    assert status == 0 and report["all_succeeded"]
    assert [entry["script"] for entry in report["scripts"]] == [BY_NUMBER[n].name for n in (1, 3, 7)]
    assert [(row["script"], row["quantity"]) for row in report["rows"]] == [
        (BY_NUMBER[n].name, row["quantity"]) for n in (1, 3, 7) for row in _rows(BY_NUMBER[n])]
    # A figure named in the quantity wins; otherwise the script's.
    assert [row["figure"] for row in report["rows"][:2]] == ["Fig. 9z", "Ext. Data Table 1"]
    assert report["rows"][5]["figure"] == "Fig. 3a-c" and report["rows"][1]["reason"] == "file missing"
    assert report["status_counts"] == {"reproduced": 0, "approximate": 3, "not computable": 3, "differs": 0}
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| Fig. 9z | Fig. 9z value of script3_load_compact_models | 1.5 | 1.25 | approximate | a \\| b <c> |" \
        in markdown
    assert "a | b &lt;c&gt;" in (tmp_path / "out" / "report.html").read_text()
    assert "Failures" not in markdown


def test_failed_script_is_reported_and_the_others_still_run(monkeypatch, tmp_path, release):
    fake = FakeScripts(exit_statuses={4: 1}, no_result=(6,))
    status, report = _run(monkeypatch, fake, tmp_path / "out", release, "--scripts", "4-6")
    assert status == 1 and not report["all_succeeded"] and [call[0] for call in fake.calls] == [4, 5, 6]
    failed, succeeded, silent = report["scripts"]
    assert (failed["outcome"], failed["exit_status"], failed["num_rows"]) == ("failed", 1, 0)
    assert failed["log_tail"].endswith("MemoryError: fake") and "line 59" not in failed["log_tail"]
    assert succeeded["outcome"] == "succeeded" and succeeded["log_tail"] is None
    assert silent["outcome"] == "failed" and silent["problems"] == [
        "exit status 0 but no summary.json in script6_synthesize/"]
    assert [row["script"] for row in report["rows"]] == ["script5_shared_compact_perf"] * 2
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "2 of 3 scripts failed: script4_compact_perf, script6_synthesize." in markdown
    assert "MemoryError: fake" in markdown and "MemoryError: fake" in (tmp_path / "out" / "report.html").read_text()


def test_complete_scripts_are_skipped_until_their_settings_or_results_change(monkeypatch, tmp_path, release):
    out = tmp_path / "out"
    first = FakeScripts(exit_statuses={5: 1})
    _run(monkeypatch, first, out, release, "--scripts", "4,5")
    assert [call[0] for call in first.calls] == [4, 5]
    again = FakeScripts()
    status, report = _run(monkeypatch, again, out, release, "--scripts", "4,5")
    assert status == 0 and [call[0] for call in again.calls] == [5]  # only the failed one reruns
    assert [entry["outcome"] for entry in report["scripts"]] == ["skipped", "succeeded"]
    (out / "script4_compact_perf" / "summary.json").write_text('{"comparison": []}')  # changed since its run
    quick, forced = FakeScripts(), FakeScripts()
    _run(monkeypatch, quick, out, release, "--scripts", "4,5", "--quick")  # other arguments
    assert [call[0] for call in quick.calls] == [4, 5]
    assert quick.calls[0][1][:4] == ["--sessions", "190923", "--neurons", "0,1,2,3"]
    _run(monkeypatch, forced, out, release, "--scripts", "4,5", "--quick", "--force")
    assert [call[0] for call in forced.calls] == [4, 5]
    changed = FakeScripts()
    (out / "script4_compact_perf" / "summary.json").write_text('{"comparison": []}')
    _run(monkeypatch, changed, out, release, "--scripts", "4,5", "--quick")
    assert [call[0] for call in changed.calls] == [4]


def test_interrupted_run_keeps_what_finished(monkeypatch, tmp_path, release):
    out = tmp_path / "out"
    monkeypatch.setattr(paper_runner, "run_process", FakeScripts(interrupt=5))
    with pytest.raises(SystemExit) as exit_info:
        reproduce_paper.main(["--scripts", "4,5", "--data-root", str(release), "--out", str(out)])
    assert exit_info.value.code == 130
    assert (out / "script4_compact_perf" / "summary.json").is_file() and not list(tmp_path.glob("out.partial-*"))
    resumed = FakeScripts()
    _run(monkeypatch, resumed, out, release, "--scripts", "4,5")
    assert [call[0] for call in resumed.calls] == [5]


def test_script_selection():
    assert [script.number for script in select_scripts("4,5")] == [4, 5]
    assert [script.number for script in select_scripts(" 5, 4,4 ")] == [4, 5]
    assert [script.number for script in select_scripts("1-3,8")] == [1, 2, 3, 8]
    assert [script.number for script in select_scripts("all")] == list(range(1, 9))
    for text, message in (("9", "no script numbered 9"), ("0,4", "no script numbered 0"), ("3-1", "numbered 3-1"),
                          ("x", "got 'x'"), ("4;5", "got '4;5'"), (",", "chooses no script"), ("", "no script")):
        with pytest.raises(ValueError, match=message):
            select_scripts(text)


@pytest.mark.parametrize("selection", ["9", " , "])
def test_bad_selection_exits_before_any_work(tmp_path, capsys, selection):
    with pytest.raises(SystemExit) as exit_info:
        reproduce_paper.main(["--scripts", selection, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--scripts" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_refused_before_any_script_runs(monkeypatch, tmp_path, release, unwritable_folder):
    folder = unwritable_folder
    fake = FakeScripts()
    monkeypatch.setattr(paper_runner, "run_process", fake)
    with pytest.raises(SystemExit) as exit_info:
        reproduce_paper.main(["--data-root", str(release), "--out", str(folder / "results")])
    assert str(exit_info.value.code).startswith(f"error: --out {folder / 'results'} cannot be")
    assert fake.calls == []


def test_docstring_table_lists_each_quick_argument():
    lines = reproduce_paper.__doc__.splitlines()
    borders = [index for index, line in enumerate(lines) if line.startswith("======  ")]
    documented, number = {}, None
    for line in lines[borders[1] + 1:borders[2]]:
        columns = re.split(r"\s{2,}", line.strip())
        if columns[0].isdigit():
            number = int(columns[0])
            documented[number] = []
            columns = columns[1:]
        if number is not None and columns and columns[0].startswith(("--", "(none)")):
            documented[number] += [] if columns[0] == "(none)" else columns[0].split()
    assert documented == {script.number: list(script.quick_arguments) for script in PAPER_SCRIPTS}


def test_figure_of():
    assert figure_of("Fig. 3b kernel similarity: paper layers 2-3", "Fig. 3a-c") == "Fig. 3b"
    assert figure_of("ensemble median noise-corrected R2 (Fig. 1b)", "x") == "Fig. 1b"
    assert figure_of("Ext. Data Fig. 5c invariance", "x") == "Ext. Data Fig. 5c"
    assert figure_of("neurons", "Ext. Data Table 1") == "Ext. Data Table 1"


# --- timing mode: benchmarks/bench_paper.py ------------------------------------------------------


def _write_csv(path: Path, header: str, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")


def test_arithmetic_estimates_on_known_outputs(tmp_path):
    from benchmarks.paper_arithmetic import estimate_flops
    from classes.prediction.folding import compact_model_flops

    header = "session,neuron,K0,K1,K2,K3,K4,pearson_r"
    _write_csv(tmp_path / "s4" / "per_neuron.csv", header, ["190923,0,2,3,4,5,6,0.5", "211022,1,9,9,9,9,9,"])
    # Only the scored model counts, on the 600 held-out images of 190923 (the second half of 1,200).
    assert estimate_flops(4, tmp_path / "s4", None)["flops"] == compact_model_flops([2, 3, 4, 5, 6]) * 600
    _write_csv(tmp_path / "s7" / "per_model.csv", "session,neuron,K0,K1,K2,K3,K4",
               ["190923,0,1,1,1,1,1", "190923,1,1,1,1,1,1"])
    (tmp_path / "s7" / "summary.json").write_text(json.dumps(
        {"num_images": 10, "positions_per_layer": [4] * 5, "cka": {"num_pairs": 1}}))
    # Forward passes, Gram matrices (2 models x 5 layers x 2 x 10^2 x 4 x 1) and CKA (5 layers x 1 pair x 2 x 10^2).
    expected = 2 * compact_model_flops([1] * 5) * 10 + 2 * 5 * 2 * 100 * 4 + 5 * 2 * 100
    assert estimate_flops(7, tmp_path / "s7", None)["flops"] == expected
    assert estimate_flops(1, tmp_path, None)["flops"] == 0
    for number, folder in ((2, tmp_path), (5, tmp_path / "absent")):
        estimate = estimate_flops(number, folder, None)
        assert estimate["flops"] is None and estimate["formula"].startswith("not estimated")


def test_shared_model_flops_count_the_released_model(data_root):
    from benchmarks.paper_arithmetic import shared_model_flops
    from classes.compact.shared_model import load_shared_compact_model

    model = load_shared_compact_model("from_ensemble_model", 5, data_root)
    multiply_adds = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            continue
        _, height, width, channels = layer.output.shape
        kernel = layer.get_weights()[0].shape  # (kh, kw, inputs, outputs or depth multiplier)
        if kind == "SeparableConv2D":  # a depthwise then a pointwise convolution, at the output's pixels
            multiply_adds += height * width * kernel[2] * (kernel[0] * kernel[1] + channels)
        else:
            multiply_adds += height * width * channels * kernel[0] * kernel[1] * (kernel[2] if kind == "Conv2D" else 1)
    assert shared_model_flops(5) == 2 * multiply_adds


def test_bench_paper_rates_each_script_against_the_same_run_matmul(monkeypatch, tmp_path, release):
    from benchmarks import bench_paper
    from classes.prediction.folding import compact_model_flops

    agreement = {"nums_filters": [4, 5, 3, 3, 3], "num_images": 5,
                 "formats": {"keras": {"status": "ok"}, "npy": {"status": "ok"}, "torch": {"status": "missing"}}}
    monkeypatch.setattr(paper_runner, "run_process", FakeScripts(fields={3: agreement}, exit_statuses={4: 1}))
    monkeypatch.setattr(bench_paper, "matmul_rates", lambda repeats: {"numpy": 50.0, "tensorflow": 100.0})
    monkeypatch.setattr(bench_paper, "load_average", lambda: 1.5)
    result = bench_paper.main(["--scripts", "1-4", "--quick", "--data-root", str(release), "--out", str(tmp_path / "bench")])
    written = json.loads((tmp_path / "bench" / "bench_paper_quick_scripts1234.json").read_text())
    assert written["matmul_gflops"]["reference"] == 100.0 and written["load_average"] == {"before": 1.5, "after": 1.5}
    one, two, three, four = written["scripts"]
    assert (one["flops"], two["flops"], four["flops"]) == (0, None, None) and four["outcome"] == "failed"
    assert three["flops"] == compact_model_flops([4, 5, 3, 3, 3]) * 5 * 2
    assert three["gflops"] == pytest.approx(three["flops"] / three["wall_seconds"] / 1e9)
    assert three["fraction_of_matmul"] == pytest.approx(three["gflops"] / 100.0)
    assert written["total"]["flops"] == three["flops"] and result["mode"] == "quick_scripts1234"
    assert (tmp_path / "bench" / "reproduction_quick_scripts1234" / "report.md").is_file()

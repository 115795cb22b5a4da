"""benchmarks/bench_predict.py on a tiny real workload: every path, one record."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_predict
from classes.prediction.kernel import kernel_unavailable_reason
from classes.runtime.native import available_isas


def test_tiny_benchmark_times_every_path_and_compares_them(tmp_path, data_root):
    result = bench_predict.main([
        "--sessions", "190923", "--models-per-session", "2", "--num-images", "3",
        "--matmul-repeats", "1", "--keras-batch-size", "2", "--out", str(tmp_path),
    ])
    written = json.loads((tmp_path / "bench_predict_custom.json").read_text())
    assert written["workload"]["model_image_evaluations"] == 6
    kernels = [f"fast_kernel_{isa}" for isa in available_isas() if kernel_unavailable_reason(isa) is None]
    engines = ["fast_tensorflow", *kernels]
    for name in ["straightforward", *engines]:
        path = written[name]
        assert path["predict_seconds"] > 0 and path["gflops"] > 0
        assert path["fraction_of_matmul"] == pytest.approx(path["gflops"] / written["matmul_gflops"]["reference"])
    for name in engines:
        assert written[name]["deviation_from_straightforward"]["max_abs_over_response_sd"] < 1e-4
        assert written[name]["speed_ratio_over_straightforward"] > 0
    assert result["workload"] == written["workload"]
    if kernels:  # every instruction set side by side, against the fastest one and the TensorFlow engine
        comparison = written["isa_comparison"]
        seconds = {name.removeprefix("fast_kernel_"): written[name]["predict_seconds"] for name in kernels}
        assert comparison["reference_isa"] == min(seconds, key=seconds.get)
        for isa, time in seconds.items():
            assert comparison["seconds_over_reference"][isa] == pytest.approx(time / min(seconds.values()))
            assert comparison["speedup_over_tensorflow"][isa] == pytest.approx(
                written["fast_tensorflow"]["predict_seconds"] / time)


def test_unknown_engines_and_instruction_sets_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench_predict.parse_arguments(["--engines", "gpu"])
    assert "--engines takes kernel and/or tensorflow" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_predict.parse_arguments(["--isas", "avx512,neon"])
    assert "--isas takes some of" in capsys.readouterr().err

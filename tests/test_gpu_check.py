"""benchmarks/gpu_check.py: its CPU smoke run end to end, and how it reports a failed measurement."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    return gpu_check


def test_smoke_run_writes_every_table(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(out), "--smoke"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["facts"]["smoke"] and results["facts"]["precision"] == "fp32" and results["facts"]["torch"]
    assert results["matmul_tflops"]["fp32"] > 0
    assert [(r["arch"], r["batch"], r["mode"]) for r in results["training"]] == \
        [("ndt1", 4, "eager"), ("ndt1", 8, "eager"), ("ndt2", 4, "eager"), ("ndt2", 8, "eager")]
    assert all(r["trials_per_s"] > 0 and r["tokens_per_s"] > r["trials_per_s"] for r in results["training"])
    assert [r["task"] for r in results["evaluation"]] == ["co-smooth", "forward-pred", "intra-region", "inter-region",
                                                          "all four"]
    assert results["evaluation"][-1]["passes"] == sum(r["passes"] for r in results["evaluation"][:4]) > 0
    assert [(r["batch"], r["rule"]) for r in results["large_batch"]] == [(16, "base"), (32, "sqrt"), (32, "linear")]
    assert results["errors"] == [] and len(results["skipped"]) == 6  # the compiled runs: not on a CPU smoke run
    table = (out / "results.md").read_text()
    for heading in ("## Training throughput", "## Evaluation of one paper-size test split", "## Large batch"):
        assert heading in table
    assert "| NDT2 | 8 | fp32 | eager |" in table and "| all four | 66 |" in table and "| 32 | linear |" in table


def test_a_failed_measurement_is_recorded_and_fails_the_run(gpu_check, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_check, "measure_training", broken)
    monkeypatch.setattr(gpu_check, "evaluation_section", lambda *args: None)
    monkeypatch.setattr(gpu_check, "comparison_section", lambda *args: None)
    assert gpu_check.main([str(tmp_path), "--smoke"]) == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["errors"]) == 4 and "RuntimeError: CUDA out of memory" in results["errors"][0]
    assert (tmp_path / "results.md").read_text().count("failed (see errors)") == 4
    assert "gpu_check: error: 4 measurement(s) failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # nothing already written is overwritten
        gpu_check.main([str(tmp_path), "--smoke"])
    assert exit_.value.code == 2
    assert "already holds results.json" in capsys.readouterr().err

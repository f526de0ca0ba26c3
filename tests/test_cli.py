import subprocess
import sys

from mtm.baselines import ORACLE_ROW
from mtm.cli import main
from mtm.data import Session


def test_data_synthetic_and_info(tmp_path, capsys):
    assert main(["data", "synthetic", "--n-sessions", "2", "--seed", "7", "--out", str(tmp_path), "--quiet"]) == 0
    files = sorted(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == ["synthetic-0007.npz", "synthetic-0008.npz"]
    assert Session.load(files[0]).meta["preset"] == "small"
    assert main(["data", "info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Session(eid='synthetic-0008'" in out and "firing: mean" in out and "ground-truth rates: stored" in out
    assert "20 latents, task inputs" in out


def test_evaluate_writes_tables_and_figures(tmp_path, capsys):
    data = tmp_path / "data"
    main(["data", "synthetic", "--n-sessions", "1", "--n-trials", "50", "--n-neurons", "25", "--out", str(data),
          "--quiet"])
    session = data / "synthetic-0000.npz"
    for masking in ("mtm", "temporal"):
        assert main(["train", "--data", str(session), "--masking", masking, "--epochs", "1", "--out",
                     str(tmp_path / masking)]) == 0
    evaluate = ["evaluate", str(tmp_path / "mtm" / "best.safetensors"), str(session), "--compare",
                str(tmp_path / "temporal" / "best.safetensors"), "--out", str(tmp_path / "eval"),
                "--bwb", str(tmp_path / "bwb")]
    assert main(evaluate) == 0
    names = {p.name for p in (tmp_path / "eval").iterdir()}
    assert {"results.md", "results.csv", "bps_co-smooth.png", "bps_inter-region.png",
            "predicted_vs_true_VISa.png", "per_neuron.png"} <= names
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "mtm (mtm)" in table and "temporal (temporal)" in table and ORACLE_ROW in table
    assert "True rates (not reachable" in table and "Share of the Bayes reference" in table and "ceiling" not in table
    assert "### Poisson D^2 (mean over neurons)" in table and "## BrainWideBench TS2" in table
    assert "co_smoothing D2" in table and "python -m ibl_bwb_eval.scoring.ts2 --pred_dir" in table
    assert "Co-smooth" in capsys.readouterr().out
    header = (tmp_path / "eval" / "results.csv").read_text().splitlines()[0].split(",")
    assert {"co-smooth D2", "co_smoothing D2", "forecasting bps"} <= set(header)
    written = sorted(p.relative_to(tmp_path / "bwb").as_posix() for p in (tmp_path / "bwb").rglob("*.safetensors"))
    assert written == sorted([f"ground_truth/ts2-{task}/synthetic-0000/ground_truth.safetensors" for task in
                              ("co_smoothing", "forecasting")] +
                             [f"predictions/{run}/ts2-{task}/synthetic-0000/seed_0.safetensors"
                              for run in ("mtm", "temporal") for task in ("co_smoothing", "forecasting")])
    assert main(evaluate[:-2] + ["--force", "--bwb", str(session)]) == 2
    assert "--bwb: " in capsys.readouterr().err


def test_bad_cli_input_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing")]) == 2
    assert "no session file or folder" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a session")
    assert main(["data", "info", str(tmp_path / "bad.npz")]) == 2
    assert "not a readable session file" in capsys.readouterr().err


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "mtm", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "reproduce" in done.stdout and "finetune" in done.stdout

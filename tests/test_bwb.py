"""BrainWideBench's TS2 suite (mtm.bwb): its tasks on a Session, its files, and the check that counts:
the benchmark's own scorer (ibl-bwb-eval 0.1.0, installed without dependencies into a temporary
folder) gives the same bits per spike and Poisson D^2 as mtm on mtm's export of a trained model."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mtm import bwb
from mtm.checkpoint import load_model
from mtm.data import Session, bwb_eval_eids, synthetic_session
from mtm.masking import PROMPT_IDS
from mtm.metrics import bits_per_spike, poisson_d2
from mtm.models import ModelConfig
from mtm.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
#: the benchmark's evaluation package and the three packages its scorer imports that the project lacks
BWB_PACKAGES = ("ibl-bwb-eval==0.1.0", "torchmetrics==1.9.0", "lightning-utilities", "rich==15.0.0")


@pytest.fixture(scope="session")
def bwb_package(tmp_path_factory):
    """A folder holding ibl-bwb-eval 0.1.0 and its scorer's imports, installed once per test session
    with ``pip install --no-deps --target``: the package pins exact versions of torch, numpy, scipy and
    scikit-learn, so it runs here beside the project's own, never installed into the environment."""
    target = tmp_path_factory.mktemp("ibl_bwb_eval")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
               "--target", str(target), *BWB_PACKAGES]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("ibl-bwb-eval 0.1.0 could not be installed: the package registry did not answer in 300 s")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        pytest.skip(f"ibl-bwb-eval 0.1.0 could not be installed from the package registry (offline?): {why}")
    return target


#: run in a subprocess with the benchmark on the path: its scorer's command line, then its scorer,
#: writer and metrics as functions, written to a JSON report
CHECK = r'''
import json, runpy, sys
from pathlib import Path
import numpy as np, torch
from safetensors import safe_open
from safetensors.torch import load_file
import ibl_bwb_eval
from ibl_bwb_eval.entity_ids import decode_entity_ids
from ibl_bwb_eval.metrics import BPS, PoissonD2Score
from ibl_bwb_eval.predictions import PredictionsWriter
from ibl_bwb_eval.scoring.ts2 import score_dir
from ibl_bwb_eval.tasks.ts2 import COSMOOTH_TARGET_WINDOW, FORECAST_BASE_WINDOW, get_ts2_readout_spec

pred_dir, gt_dir, cases, rewrite, report_path = sys.argv[1:6]
sys.argv = ["ts2", "--pred_dir", pred_dir, "--gt_dir", gt_dir]
runpy.run_module("ibl_bwb_eval.scoring.ts2", run_name="__main__")

report = {"version": ibl_bwb_eval.__version__, "eval_ids": Path(ibl_bwb_eval.EVAL_RECORDING_IDS).read_text(),
          "eval_seeds": ibl_bwb_eval.EVAL_SEEDS, "windows": [COSMOOTH_TARGET_WINDOW, FORECAST_BASE_WINDOW],
          "primary": {t: get_ts2_readout_spec(t).primary_metric for t in ("co_smoothing", "forecasting")},
          "scores": {"/".join(map(str, key)): value for key, value in score_dir(pred_dir, gt_dir).items()},
          "files": {}, "cases": []}
for path in sorted(Path(pred_dir).rglob("seed_*.safetensors")):
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    common = ("label", "task", "seed", "ibl_bwb_eval_version")
    writer = PredictionsWriter(True, rewrite, meta["task"], int(meta["seed"]), label=meta["label"],
                               metadata={k: v for k, v in meta.items() if k not in common},
                               path_fn=lambda p, m: p / m["recording_id"])
    writer.add(predictions=tensors["predictions"])
    writer.add(window_timestamps=tensors["window_timestamps"], dtype=torch.float64)
    writer.set(unit_ids=tensors["unit_ids"])
    writer.save()
    again = writer._output_path()
    with safe_open(str(again), framework="pt") as fh:
        again_meta = fh.metadata()
    again_tensors = load_file(str(again))
    report["files"][path.relative_to(pred_dir).as_posix()] = {
        "writer_path": again.relative_to(rewrite).as_posix(), "same_metadata": again_meta == meta,
        "same_tensors": sorted(tensors) == sorted(again_tensors) and all(
            tensors[k].dtype == again_tensors[k].dtype and torch.equal(tensors[k], again_tensors[k]) for k in tensors),
        "dtypes": {k: str(v.dtype) for k, v in tensors.items()},
        "unit_ids": decode_entity_ids(tensors["unit_ids"]).tolist()}
data = np.load(cases)
for i in range(len(data.files) // 2):
    preds, target = torch.from_numpy(data[f"log_rates{i}"]), torch.from_numpy(data[f"targets{i}"])
    bps, d2 = BPS(), PoissonD2Score()
    bps.update(preds, target)
    d2.update(preds, target)
    report["cases"].append({"bps": bps.compute().item(), "poisson_d2": d2.compute().item()})
Path(report_path).write_text(json.dumps(report))
'''


def run_benchmark(package: Path, pred_dir: Path, gt_dir: Path, cases: list, tmp_path: Path):
    """The benchmark's scorer (command line and functions), writer and metrics on these files and
    ``cases`` [(rates, counts) of (samples, units)], in a subprocess beside the project's torch."""
    np.savez(tmp_path / "cases.npz", **{f"{name}{i}": value for i, (rates, counts) in enumerate(cases)
                                        for name, value in (("log_rates", np.log(rates)), ("targets", counts))})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package), str(ROOT)]), COLUMNS="200")
    done = subprocess.run([sys.executable, "-c", CHECK, str(pred_dir), str(gt_dir), str(tmp_path / "cases.npz"),
                           str(tmp_path / "rewritten"), str(tmp_path / "report.json")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads((tmp_path / "report.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny prompted MtM model trained for two epochs on a tiny synthetic session."""
    session = synthetic_session(5, n_trials=25, n_neurons=20, preset="small")
    cfg = TrainConfig.preset("small", masking="mtm", epochs=2, seed=43, model=dict(hidden=32, n_layers=1, mlp=64))
    best = train([session], cfg, tmp_path_factory.mktemp("run") / "mtm", progress=False)
    return load_model(best)[0], session


def test_the_benchmarks_scorer_gives_mtms_scores(bwb_package, trained, tmp_path):
    model, session = trained
    results = bwb.export_ts2(model, session, "mtm", tmp_path / "bwb", "mtm-tiny", 43)
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 0.2, (400, 6))
    counts = rng.poisson(rates * rng.uniform(0.5, 1.5, rates.shape)).astype(np.float32)
    counts[:, 2] = 0                        # a silent unit: BrainWideBench's bps drops it, NLB's keeps it
    counts[:, 4] = 1                        # constant counts: D^2 undefined for the unit (denominator 0)
    cases = [(rates, counts), (np.full((50, 3), 0.2), rng.poisson(0.2, (50, 3)).astype(np.float32))]
    out, report = run_benchmark(bwb_package, tmp_path / "bwb" / "predictions", tmp_path / "bwb" / "ground_truth",
                                cases, tmp_path)

    assert report["version"] == bwb.EVAL_VERSION and tuple(report["eval_seeds"]) == bwb.EVAL_SEEDS
    assert report["windows"] == [bwb.WINDOW, bwb.WINDOW]
    assert report["primary"] == {"co_smoothing": "poisson_d2", "forecasting": "poisson_d2"}
    assert report["eval_ids"] == (ROOT / "mtm/data/eids/bwb_eval_eids.txt").read_text()
    assert "TS2 Scoring Results" in out and "ts2-co_smoothing" in out and "ts2-forecasting" in out
    recording = session.eid
    for task, result in results.items():
        theirs = report["scores"][f"mtm-tiny/ts2-{task}/{recording}/43"]
        print(f"{task}: mtm bps {result.bps:.7f} D2 {result.poisson_d2:.7f}; "
              f"benchmark bps {theirs['bps']:.7f} D2 {theirs['poisson_d2']:.7f}")
        assert math.isfinite(result.bps) and math.isfinite(result.poisson_d2)
        assert abs(theirs["bps"] - result.bps) < 1e-6
        assert abs(theirs["poisson_d2"] - result.poisson_d2) < 1e-6
        written = report["files"][f"mtm-tiny/ts2-{task}/{recording}/seed_43.safetensors"]
        assert written["writer_path"] == f"mtm-tiny/ts2-{task}/{recording}/seed_43.safetensors"
        assert written["same_metadata"] and written["same_tensors"]
        assert written["dtypes"] == {"predictions": "torch.float32", "window_timestamps": "torch.float64",
                                     "unit_ids": "torch.uint8"}
        assert written["unit_ids"] == result.unit_ids.tolist()
    for (rates, counts), theirs in zip(cases, report["cases"]):
        assert abs(theirs["bps"] - bits_per_spike(rates[None], counts[None], drop_silent=True)) < 1e-6
        assert abs(theirs["poisson_d2"] - poisson_d2(rates[None], counts[None])) < 1e-6
    silent = cases[0]
    assert abs(bits_per_spike(silent[0][None], silent[1][None]) - report["cases"][0]["bps"]) > 1e-3


# ------------------------------------------------------------------------------ the tasks on a Session
def test_held_out_units_follow_the_benchmarks_rule():
    ids = [f"unit-{i}" for i in range(37)]
    mask = bwb.held_out_units(ids)
    digests = sorted((hashlib.sha256(f"ts2_co_smoothing_test:{u}".encode()).hexdigest(), u) for u in ids)
    assert mask.sum() == 4 and {ids[i] for i in np.flatnonzero(mask)} == {u for _, u in digests[:4]}
    order = np.random.default_rng(0).permutation(37)
    assert np.array_equal(bwb.held_out_units([ids[i] for i in order]), mask[order])
    assert bwb.held_out_units(["a", "b", "c"]).sum() == 1                 # never zero
    assert not np.array_equal(bwb.held_out_units(ids, salt="ts2_co_smoothing_val"), mask)
    with pytest.raises(ValueError, match="ids"):
        bwb.held_out_units([])


def test_unit_ids_of_ibl_nwb_and_other_sessions():
    counts = np.ones((4, 60, 3), int)
    ibl = Session("e", counts, ["CA1"] * 3, meta={"neurons": {"cluster_uuid": ["u0", "u1", "u2"]}})
    nwb = Session("e", counts, ["CA1"] * 3, meta={"unit_ids": [7, 8, 9]})
    assert bwb.unit_ids(ibl).tolist() == ["u0", "u1", "u2"] and bwb.unit_ids(nwb).tolist() == ["7", "8", "9"]
    partial = Session("e", counts, ["CA1"] * 3, meta={"neurons": {"cluster_uuid": ["u0", None, "u2"]}})
    assert bwb.unit_ids(partial).tolist() == ["e/0", "e/1", "e/2"]


def test_windows_slide_inside_each_test_trial(trained):
    _, session = trained
    trial, first, stamps = bwb.windows(session)
    test = session.splits["test"]
    assert len(stamps) == len(test) * (session.n_bins - 49) and len(np.unique(stamps)) == len(stamps)
    assert np.array_equal(np.unique(trial), test) and first.min() == 0 and first.max() == session.n_bins - 50
    np.testing.assert_allclose(stamps, (trial * session.n_bins + first) * 0.02)
    counts = bwb.window_counts(session, trial, first)
    w = len(stamps) // 2
    assert counts.shape == (len(stamps), 50, session.n_neurons)
    assert np.array_equal(counts[w], session.spikes[trial[w], first[w]:first[w] + 50])


class Recorder(nn.Module):
    """A fake prompted model: each neuron's rate is its own input count + 0.5; records every input."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.cfg = ModelConfig(use_prompt=True)
        self.calls = []

    def forward(self, x, session, prompt=None, causal=False, select=None, hide=None):
        if hide is not None:
            x = x[hide[0]] * ~hide[1].unsqueeze(1)
        self.calls.append((x.clone(), prompt, causal))
        log_rates = torch.log(x + 0.5)
        return log_rates if select is None else log_rates[select[0], :, select[1]]


def test_the_model_sees_each_window_with_the_tasks_entries_zeroed(trained):
    _, session = trained
    model = Recorder()
    results = bwb.predict_ts2(model, session, "mtm", tasks="co_smoothing", batch_trials=64)
    hidden = bwb.held_out_units(bwb.unit_ids(session))
    inputs = torch.cat([x for x, _, _ in model.calls])
    assert inputs.shape[1] == 50 and not inputs[:, :, torch.as_tensor(hidden)].any()
    assert inputs[:, :, torch.as_tensor(~hidden)].sum() > 0
    assert {(p, c) for _, p, c in model.calls} == {(PROMPT_IDS["neuron"], False)}
    co = results["co_smoothing"]
    assert co.rates.shape == co.targets.shape == (len(co.window_timestamps), 50, hidden.sum())
    assert np.all(co.rates == np.float32(0.5)) and co.unit_ids.tolist() == bwb.unit_ids(session)[hidden].tolist()

    model.calls.clear()
    forecast = bwb.predict_ts2(model, session, "mtm", tasks="forecasting")["forecasting"]
    inputs = torch.cat([x for x, _, _ in model.calls])
    assert not inputs[:, 45:].any() and inputs[:, :45].sum() > 0
    assert {(p, c) for _, p, c in model.calls} == {(PROMPT_IDS["causal"], True)}
    trial, first, _ = bwb.windows(session)
    assert forecast.targets.shape == (len(trial), 5, session.n_neurons)
    assert np.array_equal(forecast.targets[3], session.spikes[trial[3], first[3] + 45:first[3] + 50])
    assert forecast.bps == bits_per_spike(forecast.rates, forecast.targets, drop_silent=True)


def test_bad_sessions_labels_and_existing_files(trained, tmp_path):
    model, session = trained
    ten_ms = Session("fine", np.ones((4, 200, 3), int), ["CA1"] * 3, bin_size=0.01)
    with pytest.raises(ValueError, match="bin_size: BrainWideBench bins at 20 ms"):
        bwb.predict_ts2(model, ten_ms, "mtm")
    short = Session("short", np.ones((4, 40, 3), int), ["CA1"] * 3)
    with pytest.raises(ValueError, match=r"n_bins: .*\(50 bins\)"):
        bwb.windows(short)
    with pytest.raises(ValueError, match="task"):
        bwb.predict_ts2(model, session, "mtm", tasks="co-smooth")
    with pytest.raises(ValueError, match="training_masking"):
        bwb.predict_ts2(model, session, "neuron-masking")
    with pytest.raises(ValueError, match="label"):
        bwb.check_export(tmp_path, "a/b", 0, session)
    with pytest.raises(ValueError, match="seed"):
        bwb.check_export(tmp_path, "model", -1, session)
    bwb.export_ts2(model, session, "mtm", tmp_path, "model", 0)
    with pytest.raises(ValueError, match="--force"):
        bwb.export_ts2(model, session, "mtm", tmp_path, "model", 0)
    assert len(bwb.export_ts2(model, session, "mtm", tmp_path, "model", 0, force=True)) == 2


def test_the_eval_recordings_ship_with_the_package():
    eids = bwb_eval_eids()
    assert len(eids) == len(set(eids)) == 29 and eids[0] == "0802ced5-33a3-405e-8336-b65ebc5cb07c"
    listed = hashlib.sha256((ROOT / "mtm/data/eids/bwb_eval_eids.txt").read_bytes()).hexdigest()
    assert listed in (ROOT / "mtm/data/eids/PROVENANCE.md").read_text()

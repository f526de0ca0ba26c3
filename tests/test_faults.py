"""Fault injection: no run lost, no traceback, no silent wrong answer.

Each test is one way a careless or hostile user (or a machine) can break a run: bad files, bad
settings, two runs in one folder, a killed run, a full or read-only disk, an interrupt. The
command line must answer with one ``mtm: error: ...`` line (exit status 1 or 2), the Python API
with a ``ValueError`` naming the problem, and nothing already saved may be lost.
"""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mtm import checkpoint
from mtm.cli import main
from mtm.data import Session, synthetic_session
from mtm.evaluate import evaluate_model, evaluate_rates, scored_bins
from mtm.reproduce import Plan, _finished
from mtm.runlock import LOCK_NAME, RunLockedError, run_lock
from mtm.train import TrainConfig, finetune, train

TINY_MODEL = dict(hidden=16, n_layers=1, n_heads=2, mlp=32, n_channels=16, patch_size=8)
REPO = Path(__file__).resolve().parents[1]
VALID_EID = "56956777-dca5-468c-87cb-78150432cc57"


def tiny(**overrides):
    return TrainConfig.preset("small", **{"epochs": 1, "lr": 3e-3, "model": dict(TINY_MODEL), **overrides})


@pytest.fixture(scope="module")
def session():
    return synthetic_session(0, n_trials=24, n_neurons=15)


@pytest.fixture(scope="module")
def trained(session, tmp_path_factory):
    """A finished 1-epoch run of ``mtm train`` (its folder; settings :func:`cli_config`) and its session file."""
    root = tmp_path_factory.mktemp("trained")
    path = session.save(root / "session.npz")
    assert main(["train", "--data", str(path), "--epochs", "1", "--out", str(root / "run")]) == 0
    return root / "run", path


def cli_config(**overrides):
    """The settings of ``mtm train --epochs 1`` (the ``trained`` run)."""
    return TrainConfig.preset("small", **{"epochs": 1, **overrides})


def mtm_cli(*args, env=None, timeout=120, **popen):
    """Run ``python -m mtm`` in a subprocess; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mtm", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, **popen)


def one_line_error(capsys, code, *words):
    """The command failed with exit status 1 or 2 and one ``mtm: error:`` line holding ``words``
    (progress bars may precede it on stderr); returns that line."""
    err = capsys.readouterr().err if not isinstance(capsys, str) else capsys
    assert code in (1, 2), err
    assert "Traceback" not in err and "weights_only" not in err, err
    errors = [line for line in err.splitlines() if "mtm: error" in line]
    assert len(errors) == 1 and errors[0].startswith("mtm: error: ") and err.rstrip().endswith(errors[0]), err
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def copy_run(trained, tmp_path, name="run"):
    run, _ = trained
    return Path(shutil.copytree(run, tmp_path / name))


#: ``python -c CHECKPOINT_DRIVER EPOCH ARGS...``: ``mtm ARGS...`` that prints ``checkpoint <epoch>``
#: after writing each last checkpoint and, after the one of ``EPOCH``, waits there for a signal: a
#: test signals a run at a known point instead of polling the folder while the run races on.
#: A shell that starts a job in the background (``cmd &``, as CI scripts do) starts it with SIGINT
#: ignored, and Python keeps an ignored SIGINT ignored: the driver restores the handler a terminal's
#: Ctrl-C meets, so the test interrupts the run the way a user does wherever the suite runs.
CHECKPOINT_DRIVER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from mtm import checkpoint
from mtm.cli import main
save_last = checkpoint.RunFolder.save_last
def announce(self, *args, epoch, **kwargs):
    save_last(self, *args, epoch=epoch, **kwargs)
    print(f"checkpoint {epoch}", flush=True)
    if epoch == int(sys.argv[1]):
        time.sleep(120)
checkpoint.RunFolder.save_last = announce
sys.exit(main(sys.argv[2:]))
"""


def run_to_checkpoint(args, epoch: int) -> subprocess.Popen:
    """Start ``mtm *args`` (one thread) and return it once it has written its checkpoint of ``epoch``
    and waits there."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHECKPOINT_DRIVER, str(epoch), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.strip() == f"checkpoint {epoch}":
            return proc
    proc.wait(timeout=60)
    raise AssertionError(f"the run ended before its checkpoint of epoch {epoch}: {proc.stderr.read()[-2000:]}")


# ----------------------------------------------------------------------------- 1. IBL through ONE 3.x
def test_ibl_without_an_account_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("ALYX_LOGIN", "ALYX_PASSWORD", "ALYX_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code = main(["data", "ibl", "--eid", VALID_EID, "--out", str(tmp_path / "out")])
    one_line_error(capsys, code, "openalyx.internationalbrainlab.org/signup", "--username", "ALYX_LOGIN")
    assert not any(home.iterdir())


def test_ibl_malformed_eid_is_refused_before_any_network_call(tmp_path, monkeypatch, capsys):
    import mtm.data.ibl as ibl

    def no_client(*args, **kwargs):
        raise AssertionError("a ONE client was made for a malformed eid")

    monkeypatch.setattr(ibl, "ibl_one", no_client)
    code = main(["data", "ibl", "--eid", "not-a-uuid", "--username", "me", "--password", "pw",
                 "--out", str(tmp_path / "out")])
    line = one_line_error(capsys, code, "UUID", "not-a-uuid")
    assert line.startswith("mtm: error: ")


def test_ibl_writes_nothing_outside_the_cache_folder(tmp_path):
    """With an account but no network, ONE's set-up and login attempt stay in --cache-dir: HOME and
    ~/Downloads/ONE stay untouched, and the failure is one line."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    done = mtm_cli("data", "ibl", "--eid", VALID_EID, "--cache-dir", cache, "--out", tmp_path / "out",
                   env={"HOME": str(home), "ALYX_LOGIN": "someone", "ALYX_PASSWORD": "pw",
                        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    one_line_error(done.stderr, done.returncode)
    assert not any(home.iterdir()), sorted(home.rglob("*"))
    assert (cache / ".one_settings" / ".one").is_dir()  # ONE's settings went to the cache folder


def test_ibl_local_cache_leaves_home_untouched(tmp_path, monkeypatch):
    from mtm.data.alf import build_one_cache, session_to_alf

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    folder = session_to_alf(synthetic_session(1, 12, 15), tmp_path / "alf")
    eid = build_one_cache(tmp_path / "alf")[folder.resolve()]
    assert main(["data", "ibl", "--local", "--cache-dir", str(tmp_path / "alf"), "--eid", eid,
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / f"{eid}.npz").exists()
    assert not any(home.iterdir()), sorted(home.rglob("*"))


def test_ibl_one_takes_credentials_from_the_environment(tmp_path, monkeypatch):
    import one.api

    import mtm.data.ibl as ibl

    seen = {}

    def fake_one(**kwargs):
        seen.update(kwargs, home=os.environ["HOME"])
        return "client"

    monkeypatch.setattr(one.api, "ONE", fake_one)
    monkeypatch.setenv("ALYX_LOGIN", "reader")
    monkeypatch.setenv("ALYX_PASSWORD", "secret")
    assert ibl.ibl_one(tmp_path / "cache") == "client"
    assert seen["username"] == "reader" and seen["password"] == "secret"
    assert Path(seen["cache_dir"]) == tmp_path / "cache"
    assert Path(seen["home"]) == (tmp_path / "cache" / ".one_settings").resolve()
    assert os.environ["HOME"] != seen["home"]  # restored
    with pytest.raises(ValueError, match="no password"):
        monkeypatch.delenv("ALYX_PASSWORD")
        ibl.ibl_one(tmp_path / "cache")


# ----------------------------------------------------------------------------- 2. one run per folder
def test_concurrent_runs_into_one_folder(trained, tmp_path):
    """A second run started into a folder while a first one trains there is refused; the folder
    holds the first run's config and weights, and the first run is unharmed."""
    _, data = trained
    out = tmp_path / "shared"
    args = ["train", "--data", data, "--out", out]
    first = run_to_checkpoint(args + ["--seed", "1", "--epochs", "3"], epoch=0)
    second = mtm_cli(*args, "--seed", "2", "--epochs", "2")
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 130 and "interrupted" in first_err, first_err
    assert second.returncode == 2 and "another run (pid" in second.stderr and "Traceback" not in second.stderr
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    assert json.loads(checkpoint.load_state(out / "last.pt")["config"])["train"]["seed"] == 1
    assert not (out / LOCK_NAME).exists()  # released when the first run stopped


def test_stale_lock_is_reported_not_stolen(session, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = run / LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}))
    with pytest.raises(RunLockedError, match=f"stale lock .*pid {dead.pid}.*delete .*{LOCK_NAME}"):
        train([session], tiny(), run, progress=False)
    assert lock.exists() and not (run / "last.pt").exists()
    lock.write_text("")  # killed while writing its lock
    with pytest.raises(RunLockedError, match="unreadable"):
        train([session], tiny(), run, progress=False)


def test_lock_is_released_after_an_error(session, tmp_path):
    with pytest.raises(ValueError, match="no last.pt"):
        train([session], tiny(), tmp_path / "run", resume=True, progress=False)
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunLockedError, match="another run"):
            with run_lock(tmp_path / "run"):
                pass


def test_best_without_last_pt_is_refused_and_kept(trained, session, tmp_path):
    run = copy_run(trained, tmp_path)
    (run / "last.pt").unlink()
    best = (run / "best.safetensors").read_bytes()
    with pytest.raises(ValueError, match="best.safetensors but no last.pt"):
        train([session], tiny(seed=5), run, progress=False)
    with pytest.raises(ValueError, match="best.safetensors but no last.pt"):
        finetune(run / "best.safetensors", session, tiny(seed=5), run, progress=False)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["train"])
    assert not _finished(run, cfg, [session])  # reproduce does not reuse it as finished
    assert (run / "best.safetensors").read_bytes() == best


# ----------------------------------------------------------------------------- 3. counts above 255
@pytest.mark.parametrize("big", [300, 70_000])
def test_counts_above_255_train_and_evaluate(session, tmp_path, big):
    spikes = np.array(session.spikes).astype(np.int64)
    spikes[0, 0, 0] = big
    wide = session.replace(spikes=spikes, rates=None, truth=None)
    assert wide.spikes.dtype == (np.uint16 if big < 2 ** 16 else np.uint32)
    best = train([wide], tiny(), tmp_path / "run", progress=False)
    model, _ = checkpoint.load_model(best)
    results = evaluate_model(model, wide, "mtm", tasks=("co-smooth", "forward-pred"))
    assert np.isfinite(results["co-smooth"].mean_bps)


# ----------------------------------------------------------------------------- 3b. no write outside --out
#: labels a hostile or careless file can hold (NWB ``location`` strings, session ids, ...)
HOSTILE = ["..", "/", "/../../../../victim/precious", "a\x00b", "x" * 300, ""]


def outside(root: Path, out: Path) -> dict:
    """Every file and folder under ``root`` but outside ``out`` (and not one of its parents), with the
    bytes of each file."""
    return {p: p.read_bytes() if p.is_file() else None for p in root.rglob("*")
            if p != out and out not in p.parents and p not in out.parents}


def write_small_nwb(path, regions, spike_times, ids=None, n_trials=4, trial_s=100.0):
    """An NWB file with one unit per region label (its spike times in s; ``ids``: the units' ids)
    and ``n_trials`` back-to-back trials of ``trial_s`` s."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="faults", identifier="faults",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    nwb.add_unit_column("location", "brain region of the unit")
    for i, (region, times) in enumerate(zip(regions, spike_times)):
        nwb.add_unit(spike_times=np.asarray(times, dtype=float), location=region, id=i if ids is None else ids[i])
    for k in range(n_trials):
        nwb.add_trial(start_time=k * trial_s, stop_time=(k + 1) * trial_s)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_safe_name_keeps_hostile_labels_inside_and_apart():
    from mtm.paths import safe_name

    names = [safe_name(label) for label in HOSTILE + ["VISp2/3", "VISp2_3", "CA1", "ca1", ".hidden"]]
    assert len(set(names)) == len(names)  # distinct labels, distinct names
    for name in names:
        assert "/" not in name and "\x00" not in name and name not in (".", "..") and not name.startswith(".")
        assert 0 < len(name) <= 80 and Path(name).name == name
    assert safe_name("CA1") == "CA1" and safe_name(VALID_EID) == VALID_EID  # ordinary labels kept as they are
    assert safe_name("VISp2/3") != "VISp2_3"  # a replaced character never lands on another label's name


@pytest.mark.parametrize("label", HOSTILE[:-1])
def test_evaluate_with_a_hostile_region_label_writes_only_inside_out(trained, session, tmp_path, label):
    """The region label names the predicted-vs-true figure: it stays in --out, under a safe name."""
    from mtm.paths import safe_name

    hostile = session.replace(regions=[label] * 7 + ["B"] * 8)
    data = hostile.save(tmp_path / "hostile.npz")
    out = tmp_path / "a" / "b" / "c" / "d" / "out"
    victim = tmp_path / "a" / "b" / "victim" / "precious.png"  # where /../../../../victim/precious aimed
    victim.parent.mkdir(parents=True)
    victim.write_text("precious")
    before = outside(tmp_path, out)
    assert main(["evaluate", str(trained[0] / "best.safetensors"), str(data), "--out", str(out)]) == 0
    assert outside(tmp_path, out) == before
    written = {p.name for p in out.rglob("*")}
    assert f"predicted_vs_true_{safe_name(label)}.png" in written and all((out / n).is_file() for n in written)


def test_evaluate_figures_of_two_labels_stay_apart(trained, session, tmp_path):
    data = session.replace(regions=["VISp2/3"] * 7 + ["VISp2_3"] * 8).save(tmp_path / "s.npz")
    out = tmp_path / "out"
    for region in ("VISp2/3", "VISp2_3"):
        assert main(["evaluate", str(trained[0] / "best.safetensors"), str(data), "--region", region, "--force",
                     "--out", str(out)]) == 0
    assert len(list(out.glob("predicted_vs_true_*.png"))) == 2


@pytest.mark.parametrize("label", [label for label in HOSTILE if "\x00" not in label])  # HDF5 strings hold no NUL
def test_data_nwb_with_hostile_labels_writes_only_inside_out(tmp_path, capsys, label):
    """Hostile ``location`` strings and session id: the session file is <file stem>.npz in --out, or
    (an empty label) one line; nothing is written elsewhere."""
    path = write_small_nwb(tmp_path / "rec.nwb", [label, "B"], [[1.0, 2.0], [3.0]])
    out = tmp_path / "deep" / "out"
    before = outside(tmp_path, out)
    code = main(["data", "nwb", str(path), "--window", "0", "100", "--bin-size", "100", "--eid", label or "x",
                 "--out", str(out)])
    if label == "":
        one_line_error(capsys, code, "empty region label")
    else:
        assert code == 0
        assert sorted(p.name for p in out.rglob("*")) == ["rec.npz"]
        assert Session.load(out / "rec.npz").region_names == [label, "B"]
    assert outside(tmp_path, out) == before


def test_ibl_and_reproduce_name_files_of_hostile_session_ids_safely(session, tmp_path, monkeypatch):
    import mtm.data.ibl as ibl
    from mtm.paths import safe_name
    from mtm.reproduce import run_experiment
    from mtm.reproduce.scheduler import add_pretrain_finetune, add_single

    eid = "/../../evil"
    hostile = session.replace(eid=eid)
    monkeypatch.setattr(ibl, "load_ibl_session", lambda e, one, **kwargs: hostile)
    out = tmp_path / "deep" / "out"
    before = outside(tmp_path, out)
    assert ibl.save_ibl_sessions([eid], out, one=object()) == [out / f"{safe_name(eid)}.npz"]
    assert outside(tmp_path, out) == before
    with pytest.raises(ValueError, match="already exists and is kept; pass --force"):
        ibl.save_ibl_sessions([eid], out, one=object())
    jobs, rows = {}, {}
    add_single(jobs, rows, [hostile], tiny(), out, "temporal", "row")
    add_pretrain_finetune({}, jobs, rows, [session], [hostile], tiny(), tiny(), out, "mtm", "row")
    for job in jobs.values():
        run_dir = Path(job["run_dir"])
        assert run_dir.resolve().is_relative_to(out.resolve()) and ".." not in run_dir.parts
    with pytest.raises(ValueError, match=r"heldout: the session ids \['synthetic-0000'\] occur more than once"):
        run_experiment([], [session, session], Plan.for_preset("small"), tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


# ----------------------------------------------------------------------------- 3c. nothing replaced unasked
def test_import_reference_refuses_to_replace_a_checkpoint(trained, tmp_path, capsys):
    from mtm.data import reference_checkpoint_dir

    folder = reference_checkpoint_dir()
    if folder is None:
        pytest.skip("reference checkpoint fixture not found (MTM_REFERENCE_CHECKPOINT)")
    run = copy_run(trained, tmp_path)
    best = run / "best.safetensors"
    kept = best.read_bytes()
    argv = ["import-reference", str(folder / "reference_ndt1_stitch_prompting_small.pt"), "--out", str(best)]
    one_line_error(capsys, main(argv), "best.safetensors", "already exists", "--force")
    assert best.read_bytes() == kept
    assert main(argv + ["--force"]) == 0 and best.read_bytes() != kept


def test_data_synthetic_and_nwb_refuse_to_replace_a_session_file(trained, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("synthetic-0000.npz", "rec.npz"):
        shutil.copy(trained[1], out / name)
    kept = trained[1].read_bytes()
    synthetic = ["data", "synthetic", "--n-trials", "20", "--n-neurons", "15", "--quiet", "--out", str(out)]
    one_line_error(capsys, main(synthetic), "synthetic-0000.npz", "--force")
    nwb = ["data", "nwb", str(write_small_nwb(tmp_path / "rec.nwb", ["A", "B"], [[1.0], [2.0]])), "--window", "0",
           "100", "--bin-size", "100", "--out", str(out)]
    one_line_error(capsys, main(nwb), "rec.npz", "--force")
    assert (out / "synthetic-0000.npz").read_bytes() == kept and (out / "rec.npz").read_bytes() == kept
    assert main(synthetic + ["--force"]) == 0 and main(nwb + ["--force"]) == 0
    assert Session.load(out / "rec.npz").n_neurons == 2


def test_evaluate_refuses_to_replace_an_earlier_evaluation(trained, tmp_path, capsys):
    argv = ["evaluate", str(trained[0] / "best.safetensors"), str(trained[1]), "--out", str(tmp_path / "ev")]
    assert main(argv) == 0
    kept = (tmp_path / "ev" / "results.md").read_bytes()
    (tmp_path / "ev" / "results.md").write_text("my notes")
    capsys.readouterr()
    one_line_error(capsys, main(argv), "results.md", "--force")
    assert (tmp_path / "ev" / "results.md").read_text() == "my notes"
    assert main(argv + ["--force"]) == 0 and (tmp_path / "ev" / "results.md").read_bytes() == kept


# ----------------------------------------------------------------------------- 3d. counts never wrap
def test_binning_counts_70000_spikes_in_one_bin():
    from mtm.data.binning import bin_spikes

    times = np.r_[np.linspace(0.001, 0.019, 70_000), 0.5]
    counts = bin_spikes(times, np.zeros(times.size, int), 2, [0.0], 50, 0.02)
    assert counts[0, 0, 0] == 70_000 and counts[0, 25, 0] == 1 and counts.sum() == 70_001
    assert bin_spikes(times[:10], np.zeros(10, int), 2, [0.0], 50, 0.02).dtype == np.uint16  # narrow when it fits


def test_data_nwb_bin_size_100_keeps_70000_spikes(tmp_path):
    burst = np.linspace(10.0, 90.0, 70_000)  # 70,000 spikes in the first trial's one 100 s bin
    path = write_small_nwb(tmp_path / "burst.nwb", ["A", "B"], [burst, [150.0]])
    assert main(["data", "nwb", str(path), "--window", "0", "100", "--bin-size", "100", "--out", str(tmp_path)]) == 0
    session = Session.load(tmp_path / "burst.npz")
    assert session.spikes[0, 0, 0] == 70_000 and session.spikes[1, 0, 1] == 1


# ------------------------------------------------------------------- 3e. silent wrong answers, second pass
def test_compare_with_two_folders_named_model(trained, tmp_path, capsys, monkeypatch):
    """Both rows kept, labelled by path, and the scatter drawn against the second model."""
    import mtm.cli

    first, second = (copy_run(trained, tmp_path / side, "model") for side in ("a", "b"))
    drawn, real = [], mtm.cli.plot_bps_scatter
    monkeypatch.setattr(mtm.cli, "plot_bps_scatter", lambda *a, **k: drawn.append(a[2:4]) or real(*a, **k))
    assert main(["evaluate", str(first / "best.safetensors"), str(trained[1]), "--compare",
                 str(second / "best.safetensors"), "--out", str(tmp_path / "ev")]) == 0
    table = (tmp_path / "ev" / "results.md").read_text()
    assert str(first / "best.safetensors") in table and str(second / "best.safetensors") in table
    assert drawn and all(str(second) in other and str(first) in model for other, model in drawn)
    capsys.readouterr()
    code = main(["evaluate", str(first / "best.safetensors"), str(trained[1]), "--compare",
                 str(first / ".." / "model" / "best.safetensors"), "--out", str(tmp_path / "ev2")])
    one_line_error(capsys, code, "--compare", "is the checkpoint being evaluated")


@pytest.mark.parametrize("ratio", [0, 0.0, 1, -0.1, float("nan")])
def test_mask_ratio_without_targets_or_inputs_is_refused(ratio):
    with pytest.raises(ValueError, match="mask_ratio: expected a probability strictly between 0 and 1"):
        TrainConfig.preset("small", masking="temporal", mask_ratio=ratio)
    assert TrainConfig.preset("small", masking="temporal", mask_ratio=0.1).mask_ratio == 0.1


def test_evaluate_model_refuses_an_unknown_masking_or_task(trained, session):
    model, _ = checkpoint.load_model(trained[0] / "best.safetensors")
    with pytest.raises(ValueError, match=r"training_masking: .* one of \('mtm', 'temporal'.*got 'banana'"):
        evaluate_model(model, session, "banana")
    with pytest.raises(ValueError, match=r"tasks: expected some of \('co-smooth'.*got \['banana'\]"):
        evaluate_model(model, session, "mtm", tasks=("banana",))
    assert list(evaluate_model(model, session, "mtm", tasks="co-smooth")) == ["co-smooth"]


def test_select_trials_refuses_fractions_and_takes_a_mask(session):
    with pytest.raises(ValueError, match=r"select_trials: expected integer trial indices .* values \[0.2, 1.9\]"):
        session.select_trials([0.2, 1.9])
    mask = np.zeros(session.n_trials, bool)
    mask[[2, 5, 7]] = True
    assert session.select_trials(mask) == session.select_trials([2, 5, 7])
    with pytest.raises(ValueError, match=r"a boolean mask needs one entry per trial, shape \(24,\); got shape \(3,\)"):
        session.select_trials([True, False, True])


def test_prompted_checkpoint_described_as_temporal_is_refused(trained, tmp_path, capsys):
    run, data = trained
    path = tmp_path / "relabelled.safetensors"
    description = checkpoint.read_description(run / "best.safetensors")
    assert description["model"]["use_prompt"]
    description["extra"]["train"]["masking"] = "temporal"
    save_file(load_file(str(run / "best.safetensors")), str(path), metadata={"mtm": json.dumps(description)})
    with pytest.raises(ValueError, match="hold prompt tokens, which only mtm masking trains, but its description "
                                         "says masking 'temporal'"):
        checkpoint.load_model(path)
    one_line_error(capsys, main(["evaluate", str(path), str(data), "--out", str(tmp_path / "ev")]), "prompt tokens")
    assert not (tmp_path / "ev").exists()


# --------------------------------------------------- 3f. tracebacks and unclear messages, second pass
def test_nwb_with_repeated_unit_ids_is_refused(tmp_path, capsys):
    path = write_small_nwb(tmp_path / "dup.nwb", ["A", "B", "B"], [[1.0], [2.0], [3.0]], ids=[4, 7, 7])
    code = main(["data", "nwb", str(path), "--window", "0", "100", "--bin-size", "100", "--out", str(tmp_path / "o")])
    one_line_error(capsys, code, "unit ids [7] occur more than once")
    assert not (tmp_path / "o").exists()


def _npz_claiming(path, shape):
    """An .npz archive whose one array's header claims ``shape`` (float64) but holds 64 bytes."""
    import io
    import zipfile

    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spikes.npy", buffer.getvalue() + bytes(64))
    return path


@pytest.mark.parametrize("name, make, words", [
    ("huge.npz", lambda p: _npz_claiming(p, (2 ** 40, 9)), ["huge.npz", "'spikes' claims shape (1099511627776, 9)",
                                                           "73,728.0 GiB", "holds 64 bytes"]),
    ("text.npz", lambda p: p.write_text("eid,spikes\nx,1\n"), ["text.npz", "not an npz archive", "b'eid,sp'"]),
    ("empty.npz", lambda p: p.write_bytes(b""), ["empty.npz", "not an npz archive", "it is empty"]),
    ("objects.npz", lambda p: np.savez(p, spikes=np.array([{"a": 1}], dtype=object)), ["holds Python objects"]),
])
def test_files_that_are_no_session_are_named_so(tmp_path, capsys, name, make, words):
    """No MemoryError, and no invitation to load pickled data: one line from ``mtm data info``, the
    same ValueError from Session.load."""
    path = tmp_path / name
    make(path)
    line = one_line_error(capsys, main(["data", "info", str(path)]), *words)
    assert "pickle" not in line and "MemoryError" not in line
    with pytest.raises(ValueError, match="not a readable session file|holds Python objects"):
        Session.load(path)


def test_checkpoint_with_ten_billion_bins_is_refused_before_allocating(trained, tmp_path, capsys):
    run, data = trained
    path = tmp_path / "huge.safetensors"
    description = checkpoint.read_description(run / "best.safetensors")
    description["model"]["max_bins"] = 10 ** 10
    save_file(load_file(str(run / "best.safetensors")), str(path), metadata={"mtm": json.dumps(description)})
    with pytest.raises(ValueError, match=r"position.weight \(100, 64\) \(expected \(10000000000, 64\)\)"):
        checkpoint.load_model(path)
    one_line_error(capsys, main(["evaluate", str(path), str(data), "--out", str(tmp_path / "ev")]), "do not fit")


def _reference_part(obj, *names):
    """The attributes of the pickled reference module ``encoder.<names...>``."""
    record = obj["model"].attributes["_modules"]["encoder"]
    for name in names:
        record = record.attributes["_modules"][name]
    return record.attributes


def _missing_key(obj):
    del _reference_part(obj, "layers", "0", "attn", "query")["_parameters"]["weight"]


def _self_containing(obj):
    _reference_part(obj, "layers")["_modules"]["1"] = obj["model"].attributes["_modules"]["encoder"]


def _wrong_size(obj):
    _reference_part(obj, "out_norm")["_parameters"]["weight"] = torch.ones(7)


@pytest.mark.parametrize("damage, words", [
    (_missing_key, ["not a complete reference NDT1 checkpoint", "lacks 'encoder.layers.0.attn.query.weight'"]),
    (_self_containing, ["encoder.layers.1 is one of its own parents"]),
    (_wrong_size, ["encoder.out_norm.weight is (7,)", "other sizes give (64,)"]),
])
def test_damaged_reference_checkpoints_are_one_line(tmp_path, capsys, monkeypatch, damage, words):
    import mtm.reference_import as reference
    from mtm.data import reference_checkpoint_dir

    folder = reference_checkpoint_dir()
    if folder is None:
        pytest.skip("reference checkpoint fixture not found (MTM_REFERENCE_CHECKPOINT)")
    path = folder / "reference_ndt1_stitch_prompting_small.pt"
    obj = reference.read_reference_pickle(path)
    damage(obj)
    monkeypatch.setattr(reference, "read_reference_pickle", lambda p: obj)
    code = main(["import-reference", str(path), "--out", str(tmp_path / "x.safetensors")])
    one_line_error(capsys, code, *words)
    assert not (tmp_path / "x.safetensors").exists()


def test_import_reference_refuses_temporal_for_a_prompted_checkpoint(tmp_path, capsys):
    from mtm.data import reference_checkpoint_dir

    folder = reference_checkpoint_dir(required=True)  # installed with the package
    code = main(["import-reference", str(folder / "reference_ndt1_stitch_prompting_small.pt"), "--masking",
                 "temporal", "--out", str(tmp_path / "x.safetensors")])
    assert "prompt tokens" in one_line_error(capsys, code, "'temporal'")
    assert not (tmp_path / "x.safetensors").exists()  # nothing written for a refused import



# ----------------------------------------------------------------------------- 4. silent wrong answers
def test_forward_prediction_needs_more_than_ten_bins():
    rng = np.random.default_rng(0)
    short = Session("short", rng.poisson(1, (20, 10, 6)), ["A"] * 3 + ["B"] * 3)
    with pytest.raises(ValueError, match="needs more than 10 bins; the session has 10"):
        evaluate_rates(np.ones((20, 10, 6)), short)
    with pytest.raises(ValueError, match="needs more than 10 bins"):
        scored_bins("forward-pred", 4)
    assert list(scored_bins("forward-pred", 11)) == list(range(1, 11))


def test_bin_size_true_is_rejected():
    with pytest.raises(ValueError, match="bin_size"):
        Session("x", np.zeros((3, 5, 2), int), ["A", "B"], bin_size=True)


def test_all_zero_session_is_an_error_not_nan(tmp_path):
    silent = Session("silent", np.zeros((20, 30, 6), int), ["A"] * 3 + ["B"] * 3)
    with pytest.raises(ValueError, match="no spike in its 'test' split"):
        evaluate_rates(np.ones((20, 30, 6)), silent)
    with pytest.raises(ValueError, match="no spike in its train split"):
        train([silent], tiny(), tmp_path / "run", progress=False)


def test_checkpoint_records_its_data_and_evaluation_checks_it(trained, session, tmp_path, capsys):
    run, _ = trained
    _, extra = checkpoint.load_model(run / "best.safetensors")
    assert extra["data"]["bins"] == {session.eid: session.n_bins} and extra["data"]["bin_size"] == session.bin_size
    assert len(extra["data"]["fingerprints"][session.eid]) == 16
    shorter = session.replace(spikes=np.array(session.spikes)[:, :50], rates=None, truth=None, align=None,
                              behavior={k: v for k, v in session.behavior.items() if v.ndim == 1})
    code = main(["evaluate", str(run / "best.safetensors"), str(shorter.save(tmp_path / "short.npz")),
                 "--out", str(tmp_path / "ev1")])
    one_line_error(capsys, code, "100 bins", "has 50")
    coarser = session.replace(bin_size=0.04, align=None)
    code = main(["evaluate", str(run / "best.safetensors"), str(coarser.save(tmp_path / "coarse.npz")),
                 "--out", str(tmp_path / "ev2")])
    one_line_error(capsys, code, "20 ms bins", "40 ms")
    other = session.replace(spikes=np.array(session.spikes)[::-1], rates=None, truth=None)
    with pytest.warns(UserWarning, match="other counts"):
        checkpoint.check_session_fits(run / "best.safetensors", extra, other)


@pytest.mark.parametrize("argv, word", [
    (["reproduce", "--epochs", "0"], "epochs"),
    (["reproduce", "--n-pretrain", "-1"], "n_pretrain"),
    (["reproduce", "--n-test", "0"], "n_test"),
    (["reproduce", "--seeds", "0"], "n_seeds"),
    (["data", "synthetic", "--n-sessions", "-1", "--out", "{tmp}"], "--n-sessions"),
])
def test_nonsense_counts_are_refused(argv, word, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path / "x")) for a in argv]
    if argv[0] == "reproduce":
        argv += ["--out", str(tmp_path / "rep")]
    one_line_error(capsys, main(argv), word)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "x").exists()
    assert Plan.for_preset("small", n_pretrain=0).n_pretrain == 0  # single-session only is a plan


# ----------------------------------------------------------------------------- 5. refusals for the right reason
@pytest.mark.parametrize("changed", [dict(device="cpu"), dict(precision="fp32"), dict(compile=True)])
def test_resume_and_reuse_ignore_execution_settings(trained, session, tmp_path, changed):
    run = copy_run(trained, tmp_path)
    cfg = cli_config(**changed)
    assert _finished(run, cfg, [session])
    train([session], cfg, run, resume=True, progress=False)  # nothing left to do, and not refused


def test_a_run_on_other_counts_under_the_same_session_name_is_refused_not_reused(trained, session, tmp_path):
    """Same id, same neuron count, other counts (e.g. a synthetic session of another world or trial
    count): reusing the finished run or resuming it would silently answer for other data."""
    run = copy_run(trained, tmp_path)
    other = session.replace(spikes=session.spikes[::-1].copy())
    assert other.eid == session.eid and other.n_neurons == session.n_neurons
    with pytest.raises(ValueError, match="other data: the session .* holds other counts"):
        train([other], cli_config(), run, resume=True, progress=False)
    with pytest.raises(ValueError, match="holds other counts than the data the run was trained on"):
        _finished(run, cli_config(), [other])
    assert _finished(run, cli_config(), [session])  # the run's own data is still reused


def test_refusal_names_the_first_differing_setting(trained, session, tmp_path):
    run = copy_run(trained, tmp_path)
    with pytest.raises(ValueError, match=r"first difference: lr \(0.002 in the saved run, 0.5 now\)"):
        train([session], cli_config(lr=0.5), run, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"first difference: model.hidden \(64 in the saved run, 32 now\)"):
        _finished(run, cli_config(model=dict(hidden=32)), [session])


# ----------------------------------------------------------------------------- 6. tracebacks to clear errors
def _flip(data: bytes) -> bytes:
    data = bytearray(data)
    for i in range(200, len(data) - 200, 97):
        data[i] ^= 0xFF
    return bytes(data)


def _npz(header, path):
    np.savez(path, header=np.array(header), spikes=np.zeros((2, 3, 4), np.uint8), regions=np.array(["A"] * 4))


@pytest.mark.parametrize("name, make, words", [
    ("truncated.npz", lambda p, good: p.write_bytes(good[:len(good) // 2]), ["truncated.npz", "not a readable"]),
    ("corrupt.npz", lambda p, good: p.write_bytes(_flip(good)), ["corrupt.npz", "not a readable"]),
    ("array.npy", lambda p, good: np.save(p, np.zeros((3, 4, 5))), [".npy", "not a session file"]),
    ("notjson.npz", lambda p, good: _npz("not json {", p), ["header is not JSON"]),
    ("list.npz", lambda p, good: _npz("[1, 2]", p), ["header is a JSON list"]),
    ("noeid.npz", lambda p, good: _npz(json.dumps({"format": "mtm.Session", "version": 1}), p), ["lacks ['eid'"]),
])
def test_bad_session_files(trained, tmp_path, capsys, name, make, words):
    _, good = trained
    path = tmp_path / name
    make(path, good.read_bytes())
    line = one_line_error(capsys, main(["data", "info", str(path)]), *words)
    assert all(word in line for word in words)


def _evil_state(path, marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Payload()}, path)


@pytest.mark.parametrize("damage, words", [
    ("truncated", ["last.pt", "truncated or corrupt"]),
    ("pickle", ["last.pt", "nothing in it was run"]),
    ("missing", ["last.pt", "missing ['model'"]),
    ("not a dict", ["last.pt", "not a training state"]),
])
def test_damaged_last_pt_is_refused_and_kept(trained, tmp_path, capsys, damage, words):
    run = copy_run(trained, tmp_path)
    last, marker = run / "last.pt", tmp_path / "payload_ran"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:1000])
    elif damage == "pickle":
        _evil_state(last, marker)
    elif damage == "missing":
        torch.save({"epoch": 0}, last)
    else:
        torch.save([1, 2], last)
    before = last.read_bytes()
    code = main(["train", "--data", str(trained[1]), "--epochs", "2", "--out", str(run), "--resume"])
    one_line_error(capsys, code, *words)
    assert not marker.exists()  # the pickle payload never ran
    assert last.read_bytes() == before


NONSENSE = {
    "not json": "{not json",
    "json list": "[1, 2]",
    "no model": json.dumps({"format": "mtm.model", "sessions": [["a", 3]]}),
    "model a string": json.dumps({"format": "mtm.model", "model": "x", "sessions": [["a", 3]]}),
    "model unknown field": json.dumps({"format": "mtm.model", "model": {"zzz": 1}, "sessions": [["a", 3]]}),
    "zero heads": json.dumps({"format": "mtm.model", "model": {"n_heads": 0}, "sessions": [["a", 3]]}),
    "no sessions": json.dumps({"format": "mtm.model", "model": {}}),
    "bad sessions": json.dumps({"format": "mtm.model", "model": {}, "sessions": [["a"]]}),
    "wrong sizes": json.dumps({"format": "mtm.model", "model": {"hidden": 48, "n_heads": 2}, "sessions": [["a", 3]]}),
}


@pytest.mark.parametrize("label", list(NONSENSE))
def test_nonsense_safetensors_metadata(trained, tmp_path, capsys, label):
    run, session_path = trained
    path = tmp_path / "edited.safetensors"
    save_file(load_file(str(run / "best.safetensors")), str(path), metadata={"mtm": NONSENSE[label]})
    code = main(["evaluate", str(path), str(session_path), "--out", str(tmp_path / "ev")])
    one_line_error(capsys, code, str(path))
    assert not (tmp_path / "ev").exists()


def test_full_disk_on_a_tiny_tmpfs(trained, tmp_path):
    """A real full disk (a 96 KiB tmpfs; needs root and mount): one line, exit status 1."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); test_full_disk_simulated covers ENOSPC")
    try:
        done = mtm_cli("train", "--data", trained[1], "--epochs", "1", "--out", mnt / "run")
    finally:
        subprocess.run(["umount", str(mnt)])
    assert "No space left on device" in one_line_error(done.stderr, done.returncode)


@pytest.mark.parametrize("failure", ["enospc", "torch unexpected pos", "read-only"])
def test_full_or_read_only_disk_keeps_the_saved_run(trained, tmp_path, monkeypatch, capsys, failure):
    """The disk fails while epoch 1's training state is written (ENOSPC from a write, torch's
    "unexpected pos" on a full disk, EROFS): one line, exit status 1, and epoch 0's checkpoints stay
    whole, so the run resumes from them."""
    import mtm.checkpoint as ckpt

    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def failing_save(obj, tmp):
        calls.append(tmp)
        if len(calls) == 1:
            return real_save(obj, tmp)
        Path(tmp).write_bytes(b"partial")
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        if failure == "read-only":
            raise OSError(errno.EROFS, "Read-only file system", str(tmp))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    code = main(["train", "--data", str(trained[1]), "--epochs", "3", "--out", str(run)])
    line = one_line_error(capsys, code)
    assert code == 1 and ("space" in line or "Read-only" in line), line
    assert checkpoint.load_state(run / "last.pt")["epoch"] == 0
    checkpoint.load_model(run / "best.safetensors")
    assert not list(run.glob(".*.tmp")) and not (run / LOCK_NAME).exists()
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert main(["train", "--data", str(trained[1]), "--epochs", "3", "--out", str(run), "--resume"]) == 0
    assert checkpoint.load_state(run / "last.pt")["epoch"] == 2


def test_cuda_without_a_gpu(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", "--data", str(trained[1]), "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert "no GPU" in one_line_error(capsys, code, "--device cpu")
    assert not (tmp_path / "r" / "best.safetensors").exists()


def test_out_naming_a_file(trained, tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    code = main(["train", "--data", str(trained[1]), "--epochs", "1", "--out", str(tmp_path / "afile")])
    one_line_error(capsys, code, "is a file")
    code = main(["evaluate", str(trained[0] / "best.safetensors"), str(trained[1]), "--out", str(tmp_path / "afile")])
    one_line_error(capsys, code, "is a file")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_sigint_is_one_line_and_the_run_resumes(trained, tmp_path):
    run = tmp_path / "run"
    proc = run_to_checkpoint(["train", "--data", trained[1], "--epochs", "3", "--out", run], epoch=0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "mtm: interrupted; resume with --resume"
    assert not (run / LOCK_NAME).exists()
    assert checkpoint.load_state(run / "last.pt")["epoch"] >= 0


def test_sigkill_then_resume_is_bitwise_equal(session, tmp_path):
    """A run killed with SIGKILL after its checkpoint of epoch 1 leaves a stale lock (reported);
    cleared, the resumed run ends with weights bitwise equal to a run never stopped."""
    data = session.save(tmp_path / "s.npz")
    common = ["train", "--data", data, "--epochs", "4", "--arch", "ndt1", "--seed", "3"]
    # every stage in a process of its own with one thread: float sums are then bitwise repeatable
    assert mtm_cli(*common, "--out", tmp_path / "full").returncode == 0
    cut = tmp_path / "cut"
    proc = run_to_checkpoint([*common, "--out", cut], epoch=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.load_state(cut / "last.pt")["epoch"] == 1
    with pytest.raises(RunLockedError, match="no longer running"):
        train([session], TrainConfig.preset("small", epochs=4, seed=3), cut, resume=True, progress=False)
    (cut / LOCK_NAME).unlink()
    assert mtm_cli(*common, "--out", cut, "--resume").returncode == 0
    full, _ = checkpoint.load_model(tmp_path / "full" / "last.safetensors")
    resumed, _ = checkpoint.load_model(cut / "last.safetensors")
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_ndt2_finetune_takes_the_architecture_from_the_checkpoint(trained, tmp_path, capsys):
    data = str(trained[1])
    assert main(["train", "--data", data, "--epochs", "1", "--arch", "ndt2", "--masking", "random-token",
                 "--out", str(tmp_path / "ndt2")]) == 0
    assert main(["finetune", str(tmp_path / "ndt2" / "best.safetensors"), "--data", data, "--epochs", "1",
                 "--out", str(tmp_path / "ft")]) == 0
    model, _ = checkpoint.load_model(tmp_path / "ft" / "best.safetensors")
    assert model.cfg.arch == "ndt2"
    capsys.readouterr()
    code = main(["finetune", str(tmp_path / "ndt2" / "best.safetensors"), "--data", data, "--epochs", "1",
                 "--arch", "ndt1", "--out", str(tmp_path / "ft1")])
    one_line_error(capsys, code, "ndt2 model, not ndt1")


def test_sessions_longer_than_100_bins(session, tmp_path, capsys):
    spikes = np.concatenate([np.array(session.spikes)] * 2, axis=1)  # 200 bins
    long = session.replace(spikes=spikes, rates=None, truth=None, align=None,
                           behavior={k: v for k, v in session.behavior.items() if v.ndim == 1})
    path = str(long.save(tmp_path / "long.npz"))
    code = main(["train", "--data", path, "--epochs", "1", "--out", str(tmp_path / "a")])
    one_line_error(capsys, code, "200 bins", "--max-bins 200")
    assert main(["train", "--data", path, "--epochs", "1", "--max-bins", "200", "--out", str(tmp_path / "b")]) == 0
    model, _ = checkpoint.load_model(tmp_path / "b" / "best.safetensors")
    assert model.cfg.max_bins == 200


def test_nwb_window_longer_than_100_bins_warns(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_nwb import write_nwb

    path = write_nwb(tmp_path / "rec.nwb")
    assert main(["data", "nwb", str(path), "--window", "-1", "2", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "mtm: warning:" in err and "150 bins" in err and "--max-bins 150" in err


def test_evaluate_unknown_region_writes_nothing(trained, tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["evaluate", str(trained[0] / "best.safetensors"), str(trained[1]), "--region", "NOPE",
                 "--out", str(out)])
    one_line_error(capsys, code, "NOPE")
    assert not out.exists()


def test_every_write_is_atomic_and_orphans_are_cleaned(trained, tmp_path, monkeypatch):
    import mtm.atomic

    written = []
    original = mtm.atomic.atomic_write

    def spy(path, write):
        written.append(Path(path).name)
        return original(path, write)

    run = tmp_path / "run"
    run.mkdir()
    orphan = run / ".last.pt.abc123.tmp"  # left by a write killed mid-way
    orphan.write_bytes(b"partial")
    import mtm.cli
    import mtm.tables

    for module in (mtm.atomic, checkpoint, mtm.tables, mtm.cli):  # every module that writes files
        monkeypatch.setattr(module, "atomic_write", spy)
    assert main(["train", "--data", str(trained[1]), "--epochs", "1", "--out", str(run)]) == 0
    assert not orphan.exists()
    assert main(["evaluate", str(run / "best.safetensors"), str(trained[1]), "--out", str(tmp_path / "ev")]) == 0
    assert {"config.json", "log.csv", "results.md", "results.csv"} <= set(written)


# ----------------------------------------------------------------------------- issue 21: the trainer and the run folder
def _finite(path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(path)).values())


@pytest.mark.parametrize("lr, epochs", [("inf", "1"), ("1e30", "3")])
def test_a_diverging_run_is_an_error_and_never_saves_nan_weights(trained, tmp_path, capsys, lr, epochs):
    """``mtm train --lr inf``: one error line, and no file of the run holds NaN weights (the run used
    to exit 0 with NaN weights as best.safetensors)."""
    run = tmp_path / "run"
    code = main(["train", "--data", str(trained[1]), "--epochs", epochs, "--lr", lr, "--out", str(run)])
    for name in ("best.safetensors", "last.safetensors"):
        assert not (run / name).exists() or _finite(run / name), name
    line = one_line_error(capsys, code, "became", "nothing of that epoch is saved")
    if (run / "last.pt").exists():  # an epoch before the divergence was finite: its checkpoint is named
        epoch = checkpoint.load_state(run / "last.pt")["epoch"]
        assert f"last finite checkpoint stays: {run / 'last.pt'} (epoch {epoch})" in line
    else:
        assert "no checkpoint was written before it" in line
    assert not (run / LOCK_NAME).exists()


def test_divergence_after_a_checkpoint_names_it_and_keeps_it(session, tmp_path):
    """Weights that turn NaN after epoch 0: the run stops in epoch 1, naming last.pt of epoch 0, and
    every file holds the finite weights of epoch 0."""
    def poison(trainer, epoch, row):
        if epoch == 0:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"in epoch 1; .*last finite checkpoint stays: .*last\.pt \(epoch 0\)"):
        train([session], tiny(epochs=3), run, callbacks=[poison], progress=False)
    assert checkpoint.load_state(run / "last.pt")["epoch"] == 0
    assert _finite(run / "best.safetensors") and _finite(run / "last.safetensors")
    assert checkpoint.load_model(run / "last.safetensors")[1]["epoch"] == 0


def test_sigterm_is_handled_like_sigint(trained, tmp_path):
    """SIGTERM (timeout, Slurm, docker stop): one line, the lock released, the checkpoint resumable."""
    run = tmp_path / "run"
    proc = run_to_checkpoint(["train", "--data", trained[1], "--epochs", "3", "--out", run], epoch=0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "mtm: terminated (SIGTERM); resume with --resume"
    assert not (run / LOCK_NAME).exists()
    assert checkpoint.load_state(run / "last.pt")["epoch"] == 0


def test_resume_with_another_masking_names_the_option(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    code = main(["train", "--data", str(trained[1]), "--epochs", "1", "--masking", "temporal", "--resume",
                 "--out", str(run)])
    line = one_line_error(capsys, code, "first difference: masking ('mtm' in the saved run, 'temporal' now)",
                          "--masking")
    assert "use_prompt" not in line
    code = main(["train", "--data", str(trained[1]), "--epochs", "1", "--no-prompt", "--resume", "--out", str(run)])
    assert "use_prompt" not in one_line_error(capsys, code, "prompted (True in the saved run, False now)",
                                              "--no-prompt")


def test_a_run_on_sessions_of_several_bin_counts_evaluates_each(session, tmp_path, capsys):
    """Trained on a 100-bin and a 50-bin session: the checkpoint records each session's bins and
    evaluates its own 50-bin session; a new session must have one of the trained bin counts."""
    short = session.replace(eid="short", spikes=np.array(session.spikes)[:, :50], rates=None, truth=None,
                            align=None, behavior={k: v for k, v in session.behavior.items() if v.ndim == 1})
    files = [str(s.save(tmp_path / f"{s.eid}.npz")) for s in (session, short)]
    assert main(["train", "--data", *files, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    best = tmp_path / "run" / "best.safetensors"
    assert checkpoint.load_model(best)[1]["data"]["bins"] == {session.eid: 100, "short": 50}
    capsys.readouterr()
    assert main(["evaluate", str(best), files[1], "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "results.csv").exists()
    other = short.replace(eid="other", spikes=np.array(session.spikes)[:, :70])
    code = main(["evaluate", str(best), str(other.save(tmp_path / "other.npz")), "--out", str(tmp_path / "ev2")])
    one_line_error(capsys, code, "trained on sessions of 50 or 100 bins", "has 70")


def test_a_model_name_with_a_comma_stays_one_csv_field(trained, tmp_path):
    """``mtm evaluate "runs/my,run/best.safetensors"``: results.csv keeps one field per column."""
    import csv

    run = copy_run(trained, tmp_path, "my,run")
    assert main(["evaluate", str(run / "best.safetensors"), str(trained[1]), "--out", str(tmp_path / "ev")]) == 0
    with open(tmp_path / "ev" / "results.csv", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert header[0] == "model" and rows[0][0] == "my,run (mtm)"
    assert all(len(row) == len(header) for row in rows)

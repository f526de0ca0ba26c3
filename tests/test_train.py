import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mtm import checkpoint
from mtm.data import Session, synthetic_session, synthetic_sessions
from mtm.masking import mask_batch
from mtm.models import poisson_nll
from mtm.checkpoint import read_log
from mtm.device import resolve_precision
from mtm.metrics import top50_trial_r2
from mtm.models import finetune_model
from mtm.train import SELECTIONS, TrainConfig, finetune, train

TINY_MODEL = dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32, patch_size=16)


def tiny_config(**overrides):
    base = dict(epochs=4, lr=3e-3, model=dict(TINY_MODEL), seed=0)
    base.update(overrides)
    return TrainConfig.preset("small", **base)


@pytest.fixture(scope="module")
def session():
    return synthetic_session(0, n_trials=96, n_neurons=40)


def heldout_nll(model, session, scheme="temporal"):
    """Masked Poisson NLL per target entry on the test split, with fixed masks."""
    spikes = torch.as_tensor(np.array(session.spikes[session.splits["test"]]))
    masked, target = mask_batch(spikes, scheme, session.regions, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_rates = model.eval()(masked, session.eid, None if not model.cfg.use_prompt else 0)
    loss, count = poisson_nll(log_rates, spikes, target)
    return (loss / count).item()


def test_small_run_lowers_the_heldout_poisson_loss(session, tmp_path):
    from mtm.models import build_model

    cfg = tiny_config(masking="temporal", epochs=12)
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model, [(session.eid, session.n_neurons)])
    before = heldout_nll(untrained, session)
    best = train([session], cfg, tmp_path / "run", progress=False)
    model, extra = checkpoint.load_model(best)
    after = heldout_nll(model, session)
    assert after < before - 0.1, (before, after)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,train_loss,lr,seconds,trials_per_s,val_bps,r2_top50,best") and len(log) == 13
    assert extra["train"]["masking"] == "temporal" and 0 <= extra["epoch"] < 12


def stop_after(stop_epoch):
    def interrupt(trainer, epoch, row):
        if epoch == stop_epoch:
            raise KeyboardInterrupt
    return interrupt


def test_resume_reaches_the_same_weights(session, tmp_path):
    """Validated and checkpointed every 2 epochs, stopped after epoch 2: last.pt holds epoch 1, and the
    resumed run repeats epoch 2 and reaches the weights of a run never stopped."""
    cfg = tiny_config(masking="mtm", epochs=4, eval_every=2, checkpoint_every=2)
    train([session], cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train([session], cfg, tmp_path / "cut", callbacks=[stop_after(2)], progress=False)
    assert json.loads(json.dumps(checkpoint.load_state(tmp_path / "cut" / "last.pt")["epoch"])) == 1
    assert "val_bps" in (tmp_path / "cut" / "log.csv").read_text().splitlines()[0]  # epoch 1's, kept after epoch 2
    train([session], cfg, tmp_path / "cut", resume=True, progress=False)
    for name in ("last.safetensors", "best.safetensors"):
        full, _ = checkpoint.load_model(tmp_path / "full" / name)
        resumed, _ = checkpoint.load_model(tmp_path / "cut" / name)
        for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
            assert torch.equal(a, b), (name, key)
    log = (tmp_path / "cut" / "log.csv").read_text().splitlines()
    assert len(log) == 5  # the resumed run's log holds every epoch once
    assert [row["val_bps"] != "" for row in csv.DictReader(log)] == [False, True, False, True]  # every 2 epochs


def test_checkpoint_cadence_in_epochs_and_minutes(session, tmp_path):
    cfg = tiny_config(epochs=3, checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        train([session], cfg, tmp_path / "epochs", callbacks=[stop_after(1)], progress=False)
    assert not (tmp_path / "epochs" / "last.pt").exists()  # not due before epoch 10 or the last
    with pytest.raises(KeyboardInterrupt):  # due by time after every epoch
        train([session], tiny_config(epochs=3, checkpoint_every=10, checkpoint_minutes=1e-9), tmp_path / "minutes",
              callbacks=[stop_after(1)], progress=False)
    assert checkpoint.load_state(tmp_path / "minutes" / "last.pt")["epoch"] == 1
    train([session], cfg, tmp_path / "end", progress=False)
    assert checkpoint.load_state(tmp_path / "end" / "last.pt")["epoch"] == 2  # always after the last epoch
    assert TrainConfig.preset("paper", eval_every=1).eval_every == 1  # a preset's value gives way to an override


def test_fp16_with_gradient_scaler_resumes_exactly(session, tmp_path):
    """fp16 autocast with a gradient scaler (the path of GPUs without native bf16), here on the CPU: the
    scaler's state travels in last.pt, so a resumed run reaches the same weights."""
    cfg = tiny_config(epochs=3, precision="fp16")
    train([session], cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train([session], cfg, tmp_path / "cut", callbacks=[stop_after(0)], progress=False)
    state = checkpoint.load_state(tmp_path / "cut" / "last.pt")
    assert state["scaler"]["scale"] > 0
    train([session], cfg, tmp_path / "cut", resume=True, progress=False)
    full, _ = checkpoint.load_model(tmp_path / "full" / "last.safetensors")
    resumed, _ = checkpoint.load_model(tmp_path / "cut" / "last.safetensors")
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), key
        assert torch.isfinite(a).all(), key


@pytest.mark.parametrize("precision, device, capability, expected", [
    ("auto", "cpu", None, "fp32"),
    ("auto", "mps", None, "fp32"),
    ("auto", "cuda", (7, 5), "fp16"),   # T4: bf16 only emulated
    ("auto", "cuda", (7, 0), "fp16"),   # V100
    ("auto", "cuda", (8, 0), "bf16"),   # A100
    ("auto", "cuda", (9, 0), "bf16"),   # H100
    ("fp32", "cuda", (9, 0), "fp32"),
    ("fp16", "cuda", (9, 0), "fp16"),
    ("bf16", "cpu", None, "bf16"),      # asked for: emulated, slow, allowed
    ("fp32", "cuda", (7, 5), "fp32"),
])
def test_precision_choice(precision, device, capability, expected):
    assert resolve_precision(precision, device, capability) == expected


def test_precision_choice_errors():
    with pytest.raises(ValueError, match="bf16 needs a GPU with native bfloat16.*this GPU has 7.5"):
        resolve_precision("bf16", "cuda", (7, 5))
    with pytest.raises(ValueError, match="precision: expected one of"):
        resolve_precision("fp8", "cuda", (9, 0))
    with pytest.raises(ValueError, match="capability"):
        resolve_precision("auto", "cuda")


def test_loss_and_exponential_in_fp32_under_autocast():
    log_rates = torch.randn(2, 5, 3).to(torch.bfloat16)
    spikes = torch.poisson(torch.ones(2, 5, 3))
    loss, _ = poisson_nll(log_rates, spikes, torch.ones(2, 5, 3, dtype=torch.bool))
    assert loss.dtype == torch.float32
    exact = (torch.exp(log_rates.double()) - spikes.double() * log_rates.double()).sum()
    assert abs(loss.double() - exact) < 1e-5 * abs(exact)


def test_multi_session_pretraining_then_finetuning(tmp_path):
    sessions = synthetic_sessions(3, seed=10, n_trials=48, n_neurons=30)
    pretrained = train(sessions[:2], tiny_config(epochs=2), tmp_path / "pre", progress=False)
    model, _ = checkpoint.load_model(pretrained)
    assert model.session_ids == [s.eid for s in sessions[:2]]
    best = finetune(pretrained, sessions[2], tiny_config(epochs=2), tmp_path / "ft", progress=False)
    tuned, extra = checkpoint.load_model(best)
    assert tuned.session_ids == [sessions[2].eid] and extra["pretrained"] == str(pretrained)
    # frozen core: only the new session's stitchers and token move
    best = finetune(pretrained, sessions[2], tiny_config(epochs=2, freeze_core=True), tmp_path / "frozen",
                    progress=False)
    frozen, _ = checkpoint.load_model(best)
    start = finetune_model(model, sessions[2])
    for (name, a), (_, b) in zip(start.state_dict().items(), frozen.state_dict().items()):
        if name.startswith(("blocks.", "embed_", "prompt_token", "final_ln", "position")):
            assert torch.equal(a, b), name
    assert not torch.equal(start.read_in[0].weight, frozen.read_in[0].weight)


def test_ndt2_trains_with_random_token_masking(session, tmp_path):
    cfg = tiny_config(masking="random-token", epochs=2, model=dict(TINY_MODEL, arch="ndt2"))
    model, _ = checkpoint.load_model(train([session], cfg, tmp_path / "ndt2", progress=False))
    assert model.cfg.arch == "ndt2" and not model.cfg.use_prompt


def test_checkpoints_hold_weights_and_config_only(session, tmp_path):
    best = train([session], tiny_config(epochs=1), tmp_path / "run", progress=False)
    with safe_open(str(best), framework="pt") as fh:
        description = json.loads(fh.metadata()["mtm"])
        assert all(isinstance(fh.get_tensor(k), torch.Tensor) for k in fh.keys())
    assert description["model"]["hidden"] == 32 and description["sessions"] == [[session.eid, 40]]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # plain data, no pickled code
    assert set(state) == {"model", "optimizer", "scheduler", "epoch", "best", "history", "config"}
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "run").iterdir())


def test_nan_loss_stops_before_overwriting_checkpoints(session, tmp_path, monkeypatch):
    def interrupt_after_first(trainer, epoch, row):
        if epoch == 0:
            import mtm.train as train_module
            monkeypatch.setattr(train_module, "poisson_nll",
                                lambda log_rates, spikes, target: (log_rates.sum() * float("nan"), target.sum()))

    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 1"):
        train([session], tiny_config(epochs=3), run, callbacks=[interrupt_after_first], progress=False)
    assert checkpoint.load_state(run / "last.pt")["epoch"] == 0
    model, extra = checkpoint.load_model(run / "best.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters()) and extra["epoch"] == 0


def test_top50_r2_is_one_for_perfect_rates():
    spikes = torch.poisson(torch.rand(5, 30, 60) * 3)
    assert math.isclose(top50_trial_r2(spikes, spikes), 1.0)
    assert top50_trial_r2(torch.full_like(spikes, spikes.mean()), spikes) < 0.01


def test_both_criteria_are_logged_and_each_selection_keeps_its_best_epoch(session, tmp_path):
    """One run's log holds both scores; a run with either selection keeps the epoch of its maximum,
    and the two runs train the same weights (validation never touches the training randomness)."""
    kept, logs = {}, {}
    for selection in SELECTIONS:
        run = tmp_path / selection
        train([session], tiny_config(epochs=4, selection=selection), run, progress=False)
        logs[selection] = read_log(run)
        kept[selection] = checkpoint.load_model(run / "best.safetensors")[1]["epoch"]
    for selection, log in logs.items():
        assert {"val_bps", "r2_top50"} <= set(log[0])
        scores = [float(row[selection]) for row in log]
        assert int(log[int(np.argmax(scores))]["epoch"]) == kept[selection]
    for column in ("train_loss", "val_bps", "r2_top50"):
        assert [r[column] for r in logs["val_bps"]] == [r[column] for r in logs["r2_top50"]]
    assert checkpoint.kept_epochs(logs["val_bps"]) == kept  # read from one log, as the chapters read it


def test_kept_epochs_and_the_log_summary_read_a_log_as_the_trainer_keeps_its_best():
    rows = [{"epoch": "0", "train_loss": "0.5", "val_bps": "0.1", "r2_top50": "-0.2"},
            {"epoch": "1", "train_loss": "0.4", "val_bps": "0.3", "r2_top50": "0.05"},
            {"epoch": "2", "train_loss": "0.35", "val_bps": "", "r2_top50": ""},  # an epoch without validation
            {"epoch": "3", "train_loss": "0.3", "val_bps": "0.3", "r2_top50": "0.07"}]  # a tie is no improvement
    assert checkpoint.kept_epochs(rows) == {"val_bps": 1, "r2_top50": 3}
    assert np.isnan(checkpoint.log_column(rows, "val_bps")[2])
    assert checkpoint.log_summary(rows) == ("training loss 0.500 -> 0.300 nats per target entry over 4 epochs; "
                                            "best validation 0.300 bits per spike at epoch 1")
    with pytest.raises(ValueError, match="key: no log row has a 'val_loss' column"):
        checkpoint.log_column(rows, "val_loss")


def test_config_differences_name_every_setting_that_differs_the_models_too():
    temporal, mtm = TrainConfig.preset("small", masking="temporal"), TrainConfig.preset("small", masking="mtm")
    assert temporal.differences(mtm) == {"masking": ("temporal", "mtm"), "model.use_prompt": (False, True)}
    assert mtm.differences(mtm) == {}
    wider = TrainConfig.preset("small", masking="mtm", model={"hidden": 128}, lr=1e-3)
    assert mtm.differences(wider) == {"lr": (2e-3, 1e-3), "model.hidden": (64, 128)}


def scripted_validation(monkeypatch, scores):
    """Validation scores ``scores[epoch]`` (validated every epoch) in place of the model's: the
    stopping rule is what is tested, on a run that trains for real."""
    from mtm.train import Trainer

    monkeypatch.setattr(Trainer, "validate", lambda trainer: {"val_bps": scores[len(trainer.history)]})


def weights_after(epochs, store):
    def keep(trainer, epoch, row):
        if epoch in epochs:
            store[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    return keep


# warm-up: epochs 0-2 of 20 (epoch + 1 <= 0.15 x 20); the best at epoch 3; three validations without a
# better score (epochs 4, 5, 6) end the run with patience 3, 13 epochs before its maximum
PLATEAU = [0.1, 0.05, 0.2, 0.3, 0.25, 0.28, 0.29] + [0.5] * 13


def test_patience_stops_on_a_plateau_and_keeps_the_best_weights(session, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, PLATEAU)
    cfg = tiny_config(epochs=20, patience=3)
    seen = {}
    best = train([session], cfg, tmp_path / "run", callbacks=[weights_after({3, 6}, seen)], progress=False)
    log = read_log(tmp_path / "run")
    assert [int(r["epoch"]) for r in log] == list(range(7)) and log[-1]["stopped"] == "plateau"
    assert [r["stopped"] for r in log[:-1]] == [""] * 6
    model, extra = checkpoint.load_model(best)
    assert extra["epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, seen[3][key]), key  # the best epoch's weights, not the last
    assert checkpoint.load_state(tmp_path / "run" / "last.pt")["epoch"] == 6
    identity = checkpoint.RunFolder.identity(cfg.to_dict(), [[session.eid, session.n_neurons]],
                                             checkpoint.data_record([session]))
    assert checkpoint.RunFolder(tmp_path / "run").finished(identity, cfg.epochs)  # a stopped run is complete
    train([session], cfg, tmp_path / "run", resume=True, progress=False)  # resuming it trains nothing more
    assert len(read_log(tmp_path / "run")) == 7
    # without patience the same run trains its 20 epochs
    train([session], tiny_config(epochs=20), tmp_path / "all", progress=False)
    assert len(read_log(tmp_path / "all")) == 20


def test_a_run_resumed_before_its_plateau_stops_at_the_same_epoch_with_the_same_weights(session, tmp_path,
                                                                                          monkeypatch):
    scripted_validation(monkeypatch, PLATEAU)
    cfg = tiny_config(epochs=20, patience=3, checkpoint_every=2, masking="mtm")
    train([session], cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train([session], cfg, tmp_path / "cut", callbacks=[stop_after(4)], progress=False)
    assert checkpoint.load_state(tmp_path / "cut" / "last.pt")["epoch"] == 3  # epoch 4 is repeated
    train([session], cfg, tmp_path / "cut", resume=True, progress=False)
    assert [r["epoch"] for r in read_log(tmp_path / "cut")] == [r["epoch"] for r in read_log(tmp_path / "full")]
    for name in ("last.safetensors", "best.safetensors"):
        full, _ = checkpoint.load_model(tmp_path / "full" / name)
        resumed, _ = checkpoint.load_model(tmp_path / "cut" / name)
        for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
            assert torch.equal(a, b), (name, key)


def test_the_plateau_rule():
    from mtm.train import plateau_reached

    def history(scores):
        return [{"epoch": e, **({"val_bps": v} if v is not None else {})} for e, v in enumerate(scores)]

    cfg = tiny_config(epochs=10, warmup=0.5, patience=2)  # epochs 0-4 end inside the warm-up
    assert not plateau_reached(history([0.3, 0.2, 0.1, 0.1, 0.1]), cfg)  # worse, but still warming up
    assert not plateau_reached(history([0.3, 0.2, 0.1, 0.1, 0.1, 0.1]), cfg)  # one validation past it
    assert plateau_reached(history([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2]), cfg)
    assert not plateau_reached(history([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.4]), cfg)  # a new best resets the count
    assert not plateau_reached(history([0.3] * 5 + [None, 0.2, None]), cfg)  # epochs without validation don't count
    assert plateau_reached(history([0.3] * 5 + [None, 0.2, None, 0.3]), cfg)  # equal is not better
    assert not plateau_reached(history([0.3] * 9), tiny_config(epochs=10))  # no patience: never


# Real validation histories ({epoch: val_bps}, 3 decimals) of the transfer experiment's small preset
# (pretraining on 1 session of 140 training trials x 64 neurons, 120 epochs at most, validated every 4,
# warm-up to epoch 18, patience 10): MtM seed 2 sat on the mean-rate plateau (bits per spike about 0)
# for all 120 epochs, and the older rule stopped it at epoch 91 at 0.024 while seeds 0 and 1 reached
# 0.25 and 0.18; temporal seed 0 left it by epoch 15 and levelled off after epoch 79.
MTM_SEED2_ON_PLATEAU = dict(zip(range(3, 120, 4), [
    -0.223, -0.112, -0.05, -0.052, -0.037, -0.058, -0.068, -0.047, -0.056, 0.003, 0.022, 0.0, 0.024, -0.001,
    -0.031, 0.007, 0.013, 0.022, 0.013, -0.007, 0.01, 0.005, 0.009, 0.003, 0.001, 0.007, 0.009, 0.009, 0.008,
    0.008]))
TEMPORAL_SEED0_PAST_IT = dict(zip(range(3, 120, 4), [
    -0.204, -0.092, -0.015, 0.061, 0.12, 0.19, 0.231, 0.245, 0.281, 0.355, 0.39, 0.418, 0.428, 0.437, 0.443,
    0.456, 0.458, 0.463, 0.466, 0.472, 0.463, 0.462, 0.459, 0.468, 0.464, 0.469, 0.469, 0.468, 0.467, 0.467]))


def stopping_epoch(scores: dict, cfg) -> int | None:
    """The epoch after which :func:`plateau_reached` ends a run validated at ``scores`` ({epoch: score};
    epochs between validations log no score), as the Trainer asks it after every epoch; None: never."""
    from mtm.train import plateau_reached

    history = []
    for epoch in range(cfg.epochs):
        history.append({"epoch": epoch, **({"val_bps": scores[epoch]} if epoch in scores else {})})
        if plateau_reached(history, cfg):
            return epoch
    return None


def test_patience_waits_for_a_run_to_leave_its_early_plateau():
    cfg = tiny_config(epochs=120, eval_every=4, patience=10)
    assert cfg.patience_floor == 0.05
    # still on the plateau: never stops, whatever the patience (the older rule, no floor, stopped it at epoch 91)
    assert stopping_epoch(MTM_SEED2_ON_PLATEAU, cfg) is None
    assert stopping_epoch(MTM_SEED2_ON_PLATEAU, replace(cfg, patience=1)) is None
    assert stopping_epoch(MTM_SEED2_ON_PLATEAU, replace(cfg, patience_floor=None)) == 91
    # past the floor (0.061 at epoch 15): the best at epoch 79, ten validations without better, stop at 119
    assert stopping_epoch(TEMPORAL_SEED0_PAST_IT, cfg) == 119
    assert stopping_epoch({e: v for e, v in TEMPORAL_SEED0_PAST_IT.items() if e < 119}, cfg) is None
    # patience counts from the first validation whose best is above the floor: a run that leaves the
    # plateau later still gets its whole patience there
    late = {**MTM_SEED2_ON_PLATEAU, 95: 0.08, 99: 0.079}
    assert stopping_epoch(late, replace(cfg, patience=3)) == 107
    assert stopping_epoch(late, replace(cfg, patience=3, patience_floor=0.1)) is None
    assert stopping_epoch(late, replace(cfg, patience=3, patience_floor=None)) == 31  # on the plateau, at -0.04


def test_runs_saved_before_the_patience_floor():
    """A run saved before ``patience_floor`` existed: the same run as today's when it had no patience
    (the floor changes nothing then), another one when it had patience (it counted from the warm-up)."""
    for patience in (None, 10):
        saved = tiny_config(patience=patience).to_dict()
        del saved["patience_floor"]
        differs = checkpoint.first_difference(saved, tiny_config(patience=patience).to_dict())
        if patience is None:
            assert differs is None
        else:
            assert differs == "patience_floor (None in the saved run, 0.05 now), set by --patience-floor"
    # two runs without patience are the same whatever their floor; with patience they are not
    assert checkpoint.first_difference(tiny_config(patience_floor=0.2).to_dict(), tiny_config().to_dict()) is None
    assert checkpoint.first_difference(tiny_config(patience=2, patience_floor=0.2).to_dict(),
                                       tiny_config(patience=2).to_dict()).startswith("patience_floor (0.2")


def test_staged_finetuning_trains_the_stitchers_first_then_everything(tmp_path):
    sessions = synthetic_sessions(2, seed=10, n_trials=48, n_neurons=30)
    pretrained = train(sessions[:1], tiny_config(epochs=1), tmp_path / "pre", progress=False)
    model, _ = checkpoint.load_model(pretrained)
    start = finetune_model(model, sessions[1])
    cfg = tiny_config(epochs=4, staged_epochs=2)
    seen = {}
    finetune(pretrained, sessions[1], cfg, tmp_path / "staged", callbacks=[weights_after({0, 1, 3}, seen)],
             progress=False)
    core = {name for name, _ in start.named_parameters()} - {
        name for name, p in start.named_parameters() if any(p is q for q in start.session_parameters())}
    assert core and "read_in.0.weight" not in core
    for name, before in start.state_dict().items():
        if name in core:  # the core waits two epochs, then trains
            assert torch.equal(before, seen[1][name]) and not torch.equal(before, seen[3][name]), name
    assert not torch.equal(start.read_in[0].weight, seen[0]["read_in.0.weight"])  # the stitchers train at once
    # resumed after the core started training: the same weights as a run never stopped
    with pytest.raises(KeyboardInterrupt):
        finetune(pretrained, sessions[1], cfg, tmp_path / "cut", callbacks=[stop_after(3)], progress=False)
    finetune(pretrained, sessions[1], cfg, tmp_path / "cut", resume=True, progress=False)
    full, _ = checkpoint.load_model(tmp_path / "staged" / "last.safetensors")
    resumed, _ = checkpoint.load_model(tmp_path / "cut" / "last.safetensors")
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("make, message", [
    (lambda: tiny_config(patience=0), "patience: expected a positive number"),
    (lambda: tiny_config(patience=-2), "patience: expected a positive number"),
    (lambda: tiny_config(patience=2.5), "patience: expected a positive number"),
    (lambda: tiny_config(patience=True), "patience: expected a positive number"),
    (lambda: tiny_config(patience=3, patience_floor=math.nan), "patience_floor: expected a finite score"),
    (lambda: tiny_config(patience=3, patience_floor="0.1"), "patience_floor: expected a finite score"),
    (lambda: tiny_config(patience=3, patience_floor=True), "patience_floor: expected a finite score"),
    (lambda: tiny_config(epochs=4, staged_epochs=4), "staged_epochs: expected an integer from 0 to epochs - 1 = 3"),
    (lambda: tiny_config(staged_epochs=-1), "staged_epochs: expected an integer"),
    (lambda: tiny_config(staged_epochs=1, freeze_core=True), "staged_epochs: expected 0 with freeze_core"),
    (lambda: tiny_config(masking="spatial"), "masking: unknown scheme"),
    (lambda: TrainConfig.preset("huge"), "preset"),
    (lambda: tiny_config(selection="loss"), "selection"),
    (lambda: tiny_config(epochs=0), "epochs"),
    (lambda: tiny_config(checkpoint_every=0), "checkpoint_every"),
    (lambda: tiny_config(checkpoint_minutes=0), "checkpoint_minutes"),
    (lambda: tiny_config(compile="fast"), "compile"),
    (lambda: tiny_config(precision="fp8"), "precision"),
])
def test_bad_training_config(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_training_inputs(session, tmp_path):
    one_region = Session("single", session.spikes, ["CA1"] * session.n_neurons)
    with pytest.raises(ValueError, match="needs at least two regions"):
        train([one_region], tiny_config(masking="inter-region"), tmp_path / "a", progress=False)
    best = train([session], tiny_config(epochs=1), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train([session], tiny_config(epochs=1), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train([session], tiny_config(epochs=2), tmp_path / "b", resume=True, progress=False)
    with pytest.raises(ValueError, match="no last.pt"):
        train([session], tiny_config(epochs=1), tmp_path / "c", resume=True, progress=False)
    with pytest.raises(ValueError, match="holds an ndt1 model, not ndt2"):
        finetune(best, session, tiny_config(model=dict(TINY_MODEL, arch="ndt2")), tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="trained with prompts"):
        finetune(best, session, tiny_config(masking="temporal"), tmp_path / "e", progress=False)
    model, _ = checkpoint.load_model(best)
    wrong_size = Session(session.eid, session.spikes[:, :, :30], session.regions[:30])
    with pytest.raises(ValueError, match="expects 40 neurons, the data has 30"):
        finetune_model(model, wrong_size)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a safetensors model checkpoint"):
        checkpoint.load_model(tmp_path / "junk.safetensors")
    assert (tmp_path / "b" / "best.safetensors").exists()  # nothing saved was lost


def test_cli_train_and_finetune(tmp_path):
    from mtm.cli import main

    data = tmp_path / "data"
    for s in synthetic_sessions(2, seed=3, n_trials=40, n_neurons=25):
        s.save(data / f"{s.eid}.npz")
    assert main(["train", "--data", str(data / "synthetic-0003.npz"), "--epochs", "1", "--out",
                 str(tmp_path / "run")]) == 0
    assert main(["finetune", str(tmp_path / "run" / "best.safetensors"), "--data", str(data), "--session",
                 "synthetic-0004", "--epochs", "1", "--out", str(tmp_path / "ft")]) == 0
    assert main(["finetune", str(tmp_path / "run" / "best.safetensors"), "--data", str(data), "--session",
                 "nope", "--epochs", "1", "--out", str(tmp_path / "ft2")]) == 2
    assert main(["finetune", str(tmp_path / "run" / "best.safetensors"), "--data", str(data), "--session",
                 "synthetic-0004", "--epochs", "2", "--staged-epochs", "1", "--patience", "3", "--patience-floor",
                 "0.1", "--out", str(tmp_path / "staged")]) == 0
    saved = checkpoint.read_description(tmp_path / "staged" / "best.safetensors")["extra"]["train"]
    assert (saved["staged_epochs"], saved["patience"], saved["patience_floor"]) == (1, 3, 0.1)


def test_two_process_gloo_run_keeps_replicas_identical(tmp_path):
    """torchrun, 2 CPU processes (gloo): the same entry point; each epoch checks the replicas agree."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "mtm", "train", "--preset", "small", "--epochs", "2", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "param_sum" in header and len(rows) == 3  # the replica check ran (it raises on a mismatch)
    assert "distributed replicas diverged" not in done.stderr


@pytest.mark.parametrize("value, shown", [("1", False), ("", True), ("0", True)])
def test_tqdm_disable_turns_the_progress_bar_off(session, tmp_path, monkeypatch, capsys, value, shown):
    monkeypatch.setenv("TQDM_DISABLE", value)
    train([session], tiny_config(epochs=1), tmp_path / "run", progress=True)
    assert ("1/1" in capsys.readouterr().err) is shown


def _fresh_trainer(session, cfg, folder):
    """A Trainer on a model initialised as :func:`train` initialises it."""
    from mtm.models import build_model, train_mean_counts
    from mtm.train import Trainer

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, [(session.eid, session.n_neurons)])
    model.init_rates(session.eid, train_mean_counts(session))
    return Trainer(model, [session], cfg, folder, progress=False)


def test_training_step_by_hand_reproduces_the_trainers_epoch(session, tmp_path):
    """Chapter 4 trains by hand with `training_step`: the same weights as the Trainer's own epoch."""
    from mtm.data.batches import epoch_batches, epoch_seed
    from mtm.masking import MTM_SCHEMES, MtMSampler
    from mtm.train import training_step

    cfg = tiny_config(masking="mtm", epochs=2, device="cpu")
    by_trainer = _fresh_trainer(session, cfg, tmp_path / "trainer")
    row = by_trainer.train_epoch(0)

    by_hand = _fresh_trainer(session, cfg, tmp_path / "hand")
    torch.manual_seed(epoch_seed(cfg.seed, 0, 1))
    generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, 0, 2))
    sampler = MtMSampler(MTM_SCHEMES, seed=epoch_seed(cfg.seed, 0, 3))
    by_hand.net.train()
    total, count = 0.0, 0.0
    for pos, trials in epoch_batches(by_hand.data, cfg.batch_size, cfg.seed, 0):
        st = by_hand.data[pos]
        scheme, prompt = sampler.sample(len(st.regions))
        loss, n = training_step(by_hand.net, st.spikes[trials], st.regions, st.index, scheme, prompt, cfg, generator,
                                by_hand.optimizer)
        by_hand.scheduler.step()
        total, count = total + float(loss), count + float(n)
    assert len(epoch_batches(by_hand.data, cfg.batch_size, cfg.seed, 0)) > 1
    assert total / count == pytest.approx(row["train_loss"], rel=1e-6)
    for (name, a), b in zip(by_trainer.model.state_dict().items(), by_hand.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_step_descends_the_gradient_of_the_summed_poisson_loss(session):
    """One SGD step moves every weight by -lr times the gradient of the loss summed over the targets."""
    from mtm.masking import PROMPT_IDS
    from mtm.models import build_model
    from mtm.train import forward_loss, training_step

    cfg = tiny_config(masking="mtm")
    torch.manual_seed(0)
    model = build_model(cfg.model, [(session.eid, session.n_neurons)]).eval()
    spikes = torch.as_tensor(np.array(session.spikes[session.splits["train"][:16]]))
    args = (spikes, session.regions, session.eid, "neuron", PROMPT_IDS["neuron"], cfg)
    loss, count, log_rates, target = forward_loss(model, *args, torch.Generator().manual_seed(3))
    expected = float(((log_rates.exp() - spikes * log_rates) * target).sum().detach())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    gradients = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    step_loss, step_count = training_step(model, *args, torch.Generator().manual_seed(3),
                                          torch.optim.SGD(model.parameters(), lr=1e-4))
    assert float(step_loss) == float(loss) and float(step_count) == float(count) > 100
    for name, p in model.named_parameters():
        assert p.grad is None, name  # cleared after the step
        expected = before[name] - 1e-4 * gradients.get(name, torch.zeros_like(before[name]))
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)


def test_mtm_validation_scores_every_scheme_on_the_same_masks_whatever_the_seed(session, tmp_path, monkeypatch):
    """An MtM run is validated on its four schemes, each on its share of the validation trials, with masks
    that do not depend on the training seed: two seeds' runs with the same weights score the same."""
    import mtm.train as train_module

    seen = []
    real = train_module.forward_loss

    def spy(net, spikes, regions, index, scheme, *args, **kwargs):
        seen.append((scheme, len(spikes)))
        return real(net, spikes, regions, index, scheme, *args, **kwargs)

    first = _fresh_trainer(session, tiny_config(seed=0), tmp_path / "a")
    other = _fresh_trainer(session, tiny_config(seed=3), tmp_path / "b")
    other.model.load_state_dict(first.model.state_dict())
    monkeypatch.setattr(train_module, "forward_loss", spy)
    score = first.validate()
    n_val = len(session.splits["val"])
    assert {s for s, _ in seen} == {"neuron", "causal", "intra-region", "inter-region"}
    assert sum(n for _, n in seen) == n_val  # one pass over the validation trials
    assert other.validate() == score
    assert train_module.validation_schemes(tiny_config(masking="temporal")) == ("temporal",)


def test_runs_saved_before_token_std_trained_with_the_reference_tokens():
    """A run saved before ``model.token_std`` existed drew its tokens from N(0, 1): the same run as one with
    token_std=None, another one than today's small preset (tokens from N(0, 0.02^2))."""
    saved = tiny_config(model=dict(TINY_MODEL, token_std=None)).to_dict()
    del saved["model"]["token_std"]
    assert checkpoint.first_difference(saved, tiny_config(model=dict(TINY_MODEL, token_std=None)).to_dict()) is None
    assert checkpoint.first_difference(saved, tiny_config().to_dict()).startswith(
        "model.token_std (None in the saved run, 0.02 now)")


def test_mtm_validation_of_a_split_smaller_than_its_schemes(session, tmp_path):
    """A validation split of fewer trials than MtM's four schemes is scored on as many schemes as it has trials."""
    small = session.select_trials(np.concatenate([session.splits["train"], session.splits["val"][:2],
                                                  session.splits["test"]]))
    assert len(small.splits["val"]) == 2
    score = _fresh_trainer(small, tiny_config(), tmp_path / "a").validate()
    assert math.isfinite(score["val_bps"])

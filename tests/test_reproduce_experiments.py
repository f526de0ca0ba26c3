"""Every experiment of ``mtm reproduce`` at smoke size (tiny models, one epoch, tiny sessions), and
the paper's numbers kept in ``mtm.reproduce.paper`` against the reference notes' tables.

The plans train for real; the scorers they call (``score_model``, ``reference_rows`` and the
decoders, each tested in its own module, and end to end by test_reproduce.py) are replaced by fast
stand-ins that record what they were given, so each plan is checked in seconds."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from mtm import checkpoint
from mtm.baselines import LINEAR_ROW, ORACLE_ROW
from mtm.cli import main
from mtm.data import synthetic_sessions
from mtm.reproduce import (EXPERIMENTS, PAPER_TABLE2, PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, PAPER_TABLE6,
                           PAPER_TABLE7, Plan, run_experiment)
from mtm.reproduce.plan import batches_per_epoch

TINY = dict(model=dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32, patch_size=16))
NOTES = Path(__file__).resolve().parents[1] / ".." / "shared" / "notes" / "mtm_reference.md"


@pytest.fixture
def fast_scores(monkeypatch):
    """Stand-ins for the scorers: {checkpoint or features' shape: calls}, every score 0.5."""
    import mtm.reproduce.prompts as prompts
    import mtm.reproduce.region_decoding as region_decoding
    import mtm.reproduce.scheduler as scheduler

    calls = {"score_model": [], "decode": []}

    def score_model(best, session, masking, device="auto", extra_scores=(), behavior=True):
        calls["score_model"].append((str(best), session.eid, masking, tuple(extra_scores)))
        return {**{c: 0.5 for c in ("co-smooth", "forward-pred", "intra-region", "inter-region", "choice",
                                    "whisker_me")}, **{name: 0.25 for name in extra_scores}}

    def reference_rows(session, behavior_keys=()):
        return {ORACLE_ROW: {"co-smooth": 1.0, "choice": 0.9}, LINEAR_ROW: {"co-smooth": 0.1, "choice": 0.6}}

    def decode(features, target, fit, test):
        calls["decode"].append(np.shape(features))
        return 0.75

    def decode_behavior(session, keys, model=None, training_masking=None, prompt=None, **_):
        calls["decode"].append(prompt)
        return {key: 0.75 for key in keys}

    monkeypatch.setattr(scheduler, "score_model", score_model)
    monkeypatch.setattr(scheduler, "reference_rows", reference_rows)
    monkeypatch.setattr(prompts, "decode_behavior", decode_behavior)
    monkeypatch.setattr(region_decoding, "decode_choice", decode)
    monkeypatch.setattr(region_decoding, "decode_continuous", decode)
    return calls


def smoke(experiment, tmp_path, n_pretrain=1, n_test=1, n_seeds=1, **overrides):
    plan = Plan.for_preset("small", experiment=experiment, n_pretrain=n_pretrain, n_test=n_test, epochs=1,
                           n_seeds=n_seeds, train_overrides=TINY, **overrides)
    sessions = synthetic_sessions(n_pretrain + n_test, seed=40, n_trials=40, n_neurons=20)
    table = run_experiment(sessions[:n_pretrain], sessions[n_pretrain:], plan, tmp_path, log=lambda _: None,
                           workers=1, progress=False)
    assert {"results.md", "results.csv", "per_session.json", "results.png"} <= {p.name for p in tmp_path.iterdir()}
    assert ORACLE_ROW in table and LINEAR_ROW in table
    return table, (tmp_path / "results.md").read_text(), sessions


# ---------------------------------------------------------------- the paper's numbers
def _notes_tables() -> dict[str, list[list[str]]]:
    """{section number "6.1": rows of cells} of the Markdown tables in section 6 of the notes."""
    if not NOTES.exists():
        pytest.skip(f"the reference notes are not at {NOTES} (../shared/notes/mtm_reference.md)")
    tables, section = {}, None
    for line in NOTES.read_text().splitlines():
        heading = re.match(r"### (6\.\d)", line)
        if heading:
            section = heading.group(1)
        elif line.startswith("## ") and not line.startswith("## 6."):
            section = None
        elif section and line.startswith("|") and not set(line) <= set("|-: "):
            tables.setdefault(section, []).append([c.strip() for c in line.strip("|").split("|")])
    return {k: rows[1:] for k, rows in tables.items()}  # without the header row


def _number(cell: str) -> float:
    return float(cell.replace("**", "").replace("−", "-"))


def test_the_paper_constants_match_the_reference_notes():
    notes = _notes_tables()
    for section, constant in (("6.1", PAPER_TABLE3), ("6.2", PAPER_TABLE4)):
        assert {row[0]: [_number(c) for c in row[1:]] for row in notes[section]} == \
            {name: list(values.values()) for name, values in constant.items()}
    for section, constant in (("6.3", PAPER_TABLE2), ("6.4", PAPER_TABLE5)):
        parsed = {f"{row[0].split(' (')[0]}, {row[1]}": [_number(c) for c in row[2:]] for row in notes[section]}
        assert parsed == {name: list(values.values()) for name, values in constant.items()}
    assert {row[0]: [_number(c) for c in row[1:]] for row in notes["6.5"]} == \
        {name: list(values.values()) for name, values in PAPER_TABLE6.items()}
    for row in notes["6.6"]:
        cells = [[_number(v) for v in c.split(" / ")] if c != "same" else None for c in row[1:]]
        cells = [c if c is not None else cells[0] for c in cells]
        assert [list(PAPER_TABLE7[row[0]][ratio].values()) for ratio in (0.1, 0.3, 0.6)] == cells


# ---------------------------------------------------------------- plans and presets
def test_every_experiment_has_small_and_paper_presets():
    for name in EXPERIMENTS:
        small, paper = Plan.for_preset("small", experiment=name), Plan.for_preset("paper", experiment=name)
        assert small.n_test >= (1 if name in ("budget", "transfer") else 2)
        assert paper.n_test == (2 if name == "budget" else 5)
        assert paper.experiment == name and small.n_seeds >= 3
    for preset in ("small", "paper"):  # the scaling curve ends at every pretraining session of the plan
        scaling = Plan.for_preset(preset, experiment="scaling")
        assert list(scaling.pretrain_counts) == sorted(set(scaling.pretrain_counts))
        assert scaling.pretrain_counts[-1] == scaling.n_pretrain
        # the mask ratios compared are those of the paper's Table 7
        assert set(Plan.for_preset(preset, experiment="mask-ratio").ratios) == set(next(iter(PAPER_TABLE7.values())))
    with pytest.raises(ValueError, match="experiment: expected one of"):
        Plan.for_preset("small", experiment="table9")


def test_an_unknown_experiment_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["reproduce", "--experiment", "table9", "--out", str(tmp_path)]) == 2
    assert "mtm: error: experiment: expected one of" in capsys.readouterr().err


# ---------------------------------------------------------------- each experiment at smoke size
def test_ablation(tmp_path, fast_scores):
    table, markdown, sessions = smoke("ablation", tmp_path, n_pretrain=0)
    for row in ("Temporal (baseline)", "Neuron", "Causal", "Intra-region", "Inter-region", "MtM (not prompted)",
                "MtM (prompted)"):
        assert table[row]["co-smooth"] == 0.5 and table[row]["whisker_me (own attention)"] == 0.25
    assert len(fast_scores["score_model"]) == 7
    assert "one selected IBL session" in markdown and "| Intra-region | -9.86 |" in markdown
    assert "| Causal | 0.50 | 0.50 | 0.50 | 0.50 | 0.50 | 0.50 | 0.25 |" in markdown
    for key, masking, prompted in (("causal", "causal", True), ("mtm-unprompted", "mtm", False), ("mtm", "mtm", True)):
        saved = checkpoint.read_description(tmp_path / "seed0" / "single" / key / sessions[0].eid / "best.safetensors")
        assert saved["extra"]["train"]["masking"] == masking and saved["model"]["use_prompt"] == (prompted and
                                                                                                   masking == "mtm")
    differences = (tmp_path / "differences.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in differences[1:]] == [
        f"MtM (prompted) - {row}" for row in ("Temporal (baseline)", "Neuron", "Causal", "Intra-region",
                                              "Inter-region", "MtM (not prompted)")]


def test_the_ablations_own_task_sentence_reads_each_schemes_task_and_counts_the_others():
    from mtm.reproduce import ablation
    from mtm.stats import Interval

    above, below, tie = Interval(0.1, 0.05, 0.15, 3), Interval(-0.1, -0.15, -0.05, 3), Interval(0.0, -0.1, 0.1, 3)
    differences = {label: {t: above for t in ("co-smooth", "forward-pred", "intra-region", "inter-region")}
                   for label, _, _ in ablation.comparisons()}
    differences["MtM (prompted) - Neuron"]["co-smooth"] = tie
    differences["MtM (prompted) - Causal"]["forward-pred"] = below
    differences["MtM (prompted) - Intra-region"]["co-smooth"] = below    # another task than its own
    differences["MtM (prompted) - Inter-region"]["intra-region"] = tie
    assert ablation.own_task_sentence(differences) == (
        "On the task each single scheme is named for, prompted MtM is above intra-region masking and "
        "inter-region masking; prompted MtM is below causal masking; prompted MtM cannot be told apart from "
        "neuron masking; on the other activity tasks of the 4 schemes (12 comparisons), MtM is above in 10, "
        "below in 1 and not told apart in 1")
    del differences["MtM (prompted) - Causal"]
    with pytest.raises(ValueError, match="MtM \\(prompted\\) - Causal"):
        ablation.own_task_sentence(differences)


def test_a_plan_describes_what_it_trains_in_one_line():
    ablation = Plan.for_preset("small", "ablation", n_test=1, n_trials=300, n_neurons=100, epochs=120)
    assert ablation.describe() == ("ablation: 0 pretraining + 1 held-out sessions of 300 trials x 100 neurons; "
                                   "120 epochs, model 2 x 64; seeds (0, 1, 2)")
    ndt2 = Plan.for_preset("small", "ndt2", n_seeds=2, train_overrides=dict(model=dict(patch_size=16)))
    assert ndt2.describe() == ("ndt2: 2 pretraining + 2 held-out sessions of 200 trials x 64 neurons; 15 pretraining "
                               "and 15 fine-tuning epochs, model 2 x 64, NDT2 patches of 16 neurons; seeds (0, 1)")
    assert "of the preset's trials x the preset's neurons" in Plan(n_pretrain=0).describe()


def test_ndt2_is_trained_through_the_same_loop_beside_ndt1(tmp_path, fast_scores):
    table, markdown, sessions = smoke("ndt2", tmp_path)
    eid = sessions[1].eid
    for arch in ("ndt1", "ndt2"):
        for stage in ("single", "finetune"):
            masking = {"ndt1": "temporal", "ndt2": "random-token"}[arch]
            run = tmp_path / "seed0" / stage / f"{arch}-{masking}" / eid
            saved = checkpoint.read_description(run / "best.safetensors")
            assert saved["model"]["arch"] == arch and saved["extra"]["train"]["masking"] == masking
            assert (run / "log.csv").exists()
    assert len(fast_scores["score_model"]) == 8
    rows = list(table)
    assert rows[:4] == ["NDT1 single-session, Temporal", "NDT2 single-session, Random token",
                        "NDT1 single-session, MtM (prompted)", "NDT2 single-session, MtM (prompted)"]
    assert "| Multi-session, Random token | 0.26 |" in markdown


def test_prompts_scores_every_task_under_every_prompt(tmp_path, fast_scores):
    table, markdown, sessions = smoke("prompts", tmp_path)
    for scheme in ("neuron", "causal", "intra-region", "inter-region"):
        row = table[f"MtM (prompted), every task under the {scheme} prompt"]
        assert all(math.isfinite(row[c]) for c in ("co-smooth", "forward-pred", "intra-region", "inter-region"))
        assert row["choice"] == 0.75
    assert fast_scores["decode"] == ["neuron", "causal", "inter-region", "intra-region"]
    assert "| MtM (prompted), every task under the causal prompt | 0.89 | 0.68 |" in markdown


def test_mask_ratio(tmp_path, fast_scores):
    table, markdown, sessions = smoke("mask-ratio", tmp_path, n_pretrain=0, n_test=2, ratios=(0.6,))
    assert {"Temporal (baseline), ratio 0.6", "Neuron, ratio 0.6", "Intra-region, ratio 0.6",
            "MtM (prompted), ratio 0.6"} <= set(table)
    assert len(json.loads((tmp_path / "per_session.json").read_text())["Neuron, ratio 0.6"]) == 2  # two sessions
    saved = checkpoint.read_description(tmp_path / "seed0" / "single" / "mtm-0.6" / sessions[0].eid /
                                        "best.safetensors")
    assert saved["extra"]["train"]["mask_ratio"] == 0.6
    assert "| MtM (prompted), ratio 0.6 | 0.93 | 0.83 | 0.71 | 0.88 |" in markdown


def test_scaling_compares_pretraining_at_equal_steps(tmp_path, fast_scores):
    table, markdown, sessions = smoke("scaling", tmp_path, n_pretrain=2, pretrain_counts=(1, 2), n_seeds=2)
    assert {"Temporal, 1 pretraining session", "MtM (prompted), 2 pretraining sessions",
            "Temporal, from scratch", "MtM (prompted), from scratch"} <= set(table)

    def saved(*parts):
        state = checkpoint.load_state(tmp_path.joinpath(*parts, "last.pt"))
        return json.loads(state["config"])

    two, one = saved("seed1", "pretrain", "mtm-2"), saved("seed1", "pretrain", "mtm-1")
    assert [eid for eid, _ in two["sessions"]] == [s.eid for s in sessions[:2]] and two["train"]["seed"] == 1
    # one pretraining session gets as many steps as two: twice the epochs (equal-sized sessions)
    batches = [batches_per_epoch([s], 16) for s in sessions]
    assert one["train"]["epochs"] * batches[0] == two["train"]["epochs"] * (batches[0] + batches[1])
    scratch = saved("seed0", "single", "mtm", sessions[2].eid)["train"]["epochs"]
    assert scratch * batches[2] == two["train"]["epochs"] * (batches[0] + batches[1]) + batches[2]
    assert "MtM (prompted): 2 pretraining sessions - from scratch" in markdown and "Equal total compute" in markdown
    with pytest.raises(ValueError, match="pretrain_counts"):
        smoke("scaling", tmp_path / "more", n_pretrain=1, pretrain_counts=(1, 3))


def test_region_decoding_and_the_per_neuron_view(tmp_path, fast_scores):
    table, markdown, sessions = smoke("region-decoding", tmp_path)
    regions = np.asarray(sessions[1].regions)
    for region in sessions[1].region_names:
        for source in ("MtM (prompted)", "Temporal", "Linear (the region's spikes)",
                       "True rates (log, the region's neurons)"):
            assert table[f"{source}: {region}"] == {"choice": 0.75, "whisker_me": 0.75}
    assert sorted(set(fast_scores["decode"])) == sorted({(40, 100, int((regions == r).sum()))
                                                        for r in sessions[1].region_names})
    assert (tmp_path / "per_neuron.png").exists() and "Per-neuron view (Fig. 7)" in markdown
    assert "| Temporal | 0.75 | 0.75 |" in markdown


def test_region_log_rates_see_only_their_region():
    import torch

    from mtm.reproduce.region_decoding import region_log_rates

    class Echo(torch.nn.Module):  # log-rate of a neuron: the count summed over every neuron it sees
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.cfg = type("Cfg", (), {"use_prompt": True})()
            self.calls = []

        def forward(self, x, session, prompt=None, causal=False):
            self.calls.append((prompt, causal))
            return x.sum(dim=-1, keepdim=True).expand_as(x)

    session = synthetic_sessions(1, seed=3, n_trials=20, n_neurons=30)[0]
    model = Echo()
    inside = np.asarray(session.regions) == "LP"
    rates = region_log_rates(model, session, "LP")
    assert rates.shape == (20, 100, inside.sum())
    np.testing.assert_allclose(rates[..., 0], session.spikes[..., inside].sum(axis=-1))
    assert model.calls == [(3, False)]  # the intra-region prompt, bidirectional


def test_ndt2_comparisons_name_their_stage_with_and_without_pretraining():
    from mtm.reproduce import ndt2

    single = [label for label, _, _ in ndt2.comparisons(0)]
    assert single and all("single-session" in label for label in single)
    assert "NDT2: MtM - Random token, single-session" in single
    both = [label for label, _, _ in ndt2.comparisons(2)]
    assert "NDT2: MtM - Random token, single-session" in both and "NDT2: MtM - Random token, multi-session" in both
    assert "NDT1 - NDT2, multi-session, MtM" in both and "NDT1 - NDT2, single-session, MtM" in both


# ---------------------------------------------------------------- transfer
def transfer_plan(**overrides):
    from mtm.reproduce.transfer import plan_fields

    fields = dict(n_pretrain=2, pretrain_counts=(1, 2), n_test=1, n_seeds=2, n_neurons=20, pretrain_epochs=2,
                  pretrain_patience=1, heldout_steps=2, protocols=("full", "frozen-core", "staged"),
                  train_overrides=TINY)
    return Plan.for_preset("small", experiment="transfer", **{**plan_fields((8, 16), 20, **fields), **overrides})


@pytest.fixture
def counted_runs(monkeypatch):
    """Every call of train and finetune the scheduler makes: [(kind, run folder, pretrained or None)]."""
    import mtm.reproduce.scheduler as scheduler

    calls = []

    def counting(kind, function):
        def run(*args, **kwargs):
            calls.append((kind, str(args[2] if kind == "train" else args[3]), str(args[0]) if kind == "finetune"
                          else None))
            return function(*args, **kwargs)
        return run

    monkeypatch.setattr(scheduler, "train", counting("train", scheduler.train))
    monkeypatch.setattr(scheduler, "finetune", counting("finetune", scheduler.finetune))
    return calls


def test_transfer_reuses_each_pretrained_model_and_compares_at_equal_steps(tmp_path, fast_scores, counted_runs,
                                                                          monkeypatch):
    import mtm.reproduce.transfer as transfer
    from mtm.train import TrainConfig

    monkeypatch.setattr(transfer, "reference_rows", lambda session, tasks=(): {
        **({ORACLE_ROW: {t: 1.0 for t in tasks}, transfer.BAYES_ROW: {t: 0.8 for t in tasks}}
           if session.truth is not None else {}), LINEAR_ROW: {t: 0.01 * len(session.splits["train"]) for t in tasks}})
    plan = transfer_plan()
    pretrain, heldout = plan.synthetic_sessions()
    assert [s.n_trials for s in pretrain + heldout] == [20, 20, 16 + 2 + 4]
    out = tmp_path / "transfer"
    table = run_experiment(pretrain, heldout, plan, out, log=lambda _: None, workers=1, progress=False)

    # every pretrained model trained once per masking, set and seed, and reused by every fine-tuning
    pretrained = [c for c in counted_runs if "/pretrain/" in c[1]]
    assert len(pretrained) == len({c[1] for c in pretrained}) == 2 * 2 * 2
    finetuned = [c for c in counted_runs if c[0] == "finetune"]
    # 2 maskings x 2 seeds x (2 sets x 2 sizes + 2 more protocols at the 16-trial point, from 2 sessions)
    assert len(finetuned) == 2 * 2 * (2 * 2 + 2)
    for masking in ("temporal", "mtm"):
        for seed in (0, 1):
            for count in (1, 2):
                source = str(out / f"seed{seed}" / "pretrain" / f"{masking}-{count}" / "best.safetensors")
                users = [c for c in finetuned if f"seed{seed}/finetune/{masking}-{count}/" in c[1]]
                assert {c[2] for c in users} == {source} and len(users) == (2 if count == 1 else 4)
    scratch = [c for c in counted_runs if "/single/" in c[1]]
    equal = [c for c in counted_runs if "/equal-compute/" in c[1]]
    assert len(scratch) == 2 * 2 * 2 and len(equal) == 2 * 2
    assert len(counted_runs) == len(pretrained) + len(finetuned) + len(scratch) + len(equal)

    def saved(run):
        return TrainConfig.from_dict(checkpoint.read_description(Path(run) / "best.safetensors")["extra"]["train"])

    def steps(run, trials):
        return saved(run).epochs * -(-trials // 16)

    # fine-tuned and from scratch: the same steps on the same held-out size (2 steps, whole epochs)
    for _, run, _ in finetuned:
        trials = int(re.search(r"/t(\d+)/", run).group(1))
        partner = re.sub(r"finetune/(\w+)-\d/[\w-]+/", r"single/\1/", run)
        assert steps(run, trials) == steps(partner, trials) and abs(steps(run, trials) - 2) <= -(-trials // 16) / 2
    protocols = {p: saved(c[1]) for c in finetuned for p in ("frozen-core", "staged") if f"/{p}/" in c[1]}
    assert protocols["frozen-core"].freeze_core and protocols["staged"].staged_epochs >= 1
    # pretraining: each set at most as many steps as 2 epochs over both sessions, stopped on a plateau
    for masking in ("temporal", "mtm"):
        for seed in (0, 1):
            run = out / f"seed{seed}" / "pretrain" / f"{masking}-2"
            assert saved(run).patience == 1 and saved(run).epochs == 2
            one = saved(out / f"seed{seed}" / "pretrain" / f"{masking}-1")
            assert (one.epochs, one.eval_every, saved(run).eval_every) == (4, 2, 1)  # validated every 2 steps alike
            # equal total compute: that seed's pretraining steps plus the fine-tuning steps
            ran = len(checkpoint.read_log(run)) * 2
            assert steps(out / f"seed{seed}" / "equal-compute" / f"{masking}-2" / "t16" / heldout[0].eid, 16) == ran + 2

    # the tables: every row, with intervals over the 2 seeds; the references of each size
    for trials in (8, 16):
        for label in ("Temporal", "MtM (prompted)"):
            for condition in ("from scratch", "1 pretraining session", "2 pretraining sessions"):
                assert table[f"{label}, {condition}, {trials} trials"]["co-smooth"] == 0.5
        assert table[f"{LINEAR_ROW}, {trials} trials"]["co-smooth"] == pytest.approx(0.01 * trials)
    assert "MtM (prompted), 2 pretraining sessions, staged fine-tuning, 16 trials" in table
    assert "Temporal, from scratch at equal total compute (2 sessions' pretraining), 16 trials" in table
    markdown = (out / "results.md").read_text()
    assert "| MtM (prompted), 1 pretraining session, 8 trials | 0.50 ± 0.00 |" in markdown
    assert "### Share of the Bayes reference" in markdown and "0.50 of 0.80 (62 %)" in markdown
    assert "| MtM (prompted), 2 pretraining sessions | +0.00 ± 0.00 | +0.00 ± 0.00 |" in markdown  # gain table
    assert "| MtM (prompted), from scratch, 8 trials | **+0.42 ± 0.00** |" in markdown  # against its own linear row
    differences = [row["model"] for row in csv.DictReader((out / "differences.csv").open())]
    assert "MtM (prompted), 8 trials: 2 pretraining sessions - from scratch" in differences
    assert "Temporal, 16 trials: staged - full fine-tuning (2 pretraining sessions)" in differences
    assert "MtM (prompted), 16 trials: 2 pretraining sessions - from scratch at equal total compute" in differences
    assert (out / "results.png").exists() and "Pretraining runs" in markdown

    # run again: every run is found finished (the pretraining ones stopped early too) and reused
    counted_runs.clear()
    run_experiment(pretrain, heldout, plan, out, log=lambda _: None, workers=1, progress=False)
    assert counted_runs == []


@pytest.mark.parametrize("overrides, message", [
    (dict(pretrain_counts=(1, 3)), "pretrain_counts: expected distinct numbers from 1 to the 2"),
    (dict(pretrain_counts=()), "pretrain_counts"),
    (dict(train_trials=(8, 8)), "train_trials: expected distinct positive"),
    (dict(train_trials=(8, 40)), "train_trials: up to 40 training trials asked for"),
    (dict(protocols=("full", "linear-probe")), "protocols: expected distinct names of"),
    (dict(heldout_steps=None), "heldout_steps: expected the optimiser steps"),
])
def test_transfer_plan_values_are_checked(tmp_path, overrides, message):
    from dataclasses import replace

    plan = replace(transfer_plan(), **overrides)  # (for_preset would keep the preset's value for a None)
    pretrain, heldout = transfer_plan().synthetic_sessions()
    with pytest.raises(ValueError, match=message):
        run_experiment(pretrain, heldout, plan, tmp_path, log=lambda _: None, workers=1, progress=False)


def test_transfer_plan_fields_are_checked_on_construction():
    for name, value in (("heldout_steps", 0), ("pretrain_patience", 0), ("pretrain_patience", 1.5)):
        with pytest.raises(ValueError, match=f"{name}: expected an integer >= 1"):
            transfer_plan(**{name: value})
    small = Plan.for_preset("small", experiment="transfer")
    assert small.pretrain_counts[-1] == small.n_pretrain and small.pretrain_patience and small.heldout_steps


def test_a_transfer_plan_the_sessions_cannot_serve_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["reproduce", "--experiment", "transfer", "--n-pretrain", "2", "--out", str(tmp_path)]) == 2
    assert "mtm: error: pretrain_counts: expected distinct numbers from 1 to the 2 pretraining sessions" in \
        capsys.readouterr().err

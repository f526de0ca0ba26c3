import csv
import json
import math

import numpy as np
import pytest

from mtm import checkpoint
from mtm.baselines import ORACLE_ROW
from mtm.bayes import BAYES_ROW
from mtm.data import synthetic_sessions
from mtm.reproduce import PAPER_TABLE2, Plan, _run_all, run_reproduction
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps
from mtm.reproduce.scheduler import equal_steps_note, scratch_epochs
from mtm.reproduce.tables import read_runs
from mtm.stats import paired_difference
from mtm.data.batches import epoch_batches
from mtm.train import SessionTensors

TINY = dict(model=dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32))


def test_reproduction_pipeline_writes_the_tables_and_reuses_finished_runs(tmp_path):
    sessions = synthetic_sessions(2, seed=20, n_trials=48, n_neurons=30)
    plan = Plan.for_preset("small", n_pretrain=1, n_test=1, epochs=1, n_seeds=2, train_overrides=TINY)
    lines = []
    table = run_reproduction(sessions[:1], sessions[1:], plan, tmp_path, log=lines.append)
    assert set(table) == {"Single-session, Temporal", "Single-session, MtM (prompted)",
                          "Multi-session (1 pretrain), Temporal", "Multi-session (1 pretrain), MtM (prompted)",
                          ORACLE_ROW, BAYES_ROW,
                          "True rates (not reachable: includes each neuron's private noise)",
                          "Linear regression (baseline)"}
    activity = {"co-smooth", "forward-pred", "intra-region", "inter-region"}
    for name, row in table.items():
        assert set(row) == (activity if name == BAYES_ROW else activity | {"choice", "whisker_me"})
        assert all(math.isfinite(v) for v in row.values())
    oracle = table[ORACLE_ROW]
    assert oracle["co-smooth"] > table["Single-session, Temporal"]["co-smooth"]
    assert table["True rates (not reachable: includes each neuron's private noise)"]["co-smooth"] > oracle["co-smooth"]
    markdown = (tmp_path / "results.md").read_text()
    # the reference rows were computed by a worker, as a job beside the training runs
    assert any(line.endswith(f"finished references/{sessions[1].eid}") for line in lines)
    assert not any("oracles and baselines" in line for line in lines)
    assert "| Multi-session, MtM (prompted) | 1.11 |" in markdown and "ceiling" not in markdown
    share = markdown.split("### Share of the Bayes reference")[1].split("##")[0]
    temporal, bayes = table["Single-session, Temporal"]["co-smooth"], table[BAYES_ROW]["co-smooth"]
    assert f"{temporal:.2f} of {bayes:.2f} ({100 * temporal / bayes:.0f} %)" in share
    assert (tmp_path / "results.csv").read_text().startswith("model,co-smooth,forward-pred")
    # every model trained once per seed, the seed in its config; a row is the mean of the seed-means
    records = read_runs(tmp_path)
    assert records == json.loads((tmp_path / "per_session.json").read_text())
    with pytest.raises(ValueError, match="out: expected an experiment's folder"):
        read_runs(tmp_path / "seed0")
    single, multi = records["Single-session, MtM (prompted)"], records["Multi-session (1 pretrain), MtM (prompted)"]
    assert sorted(r["seed"] for r in single) == [0, 1] and {r["session"] for r in single} == {sessions[1].eid}
    assert table["Single-session, MtM (prompted)"]["co-smooth"] == pytest.approx(
        np.mean([r["scores"]["co-smooth"] for r in single]))
    for seed in (0, 1):
        saved = checkpoint.read_description(tmp_path / f"seed{seed}" / "single" / "mtm" / sessions[1].eid /
                                            "best.safetensors")
        assert saved["extra"]["train"]["seed"] == seed
    assert "± " in markdown.split("### Share")[0]
    # each model against the linear baseline: the model's interval shifted by the baseline's score
    against = markdown.split("## Against the linear baseline")[1].split("\n## ")[0]
    line = next(ln for ln in against.splitlines() if ln.startswith("| Single-session, Temporal |"))
    gap = table["Single-session, Temporal"]["co-smooth"] - table["Linear regression (baseline)"]["co-smooth"]
    assert line.split("|")[2].strip().strip("*").startswith(f"{gap:+.2f} ± ")
    # the comparisons: paired differences (same seed, same session) in their own table and CSV
    with open(tmp_path / "differences.csv") as fh:
        differences = {row["model"]: row for row in csv.DictReader(fh)}
    assert set(differences) == {"MtM - Temporal, single-session", "MtM - Temporal, multi-session",
                                "Pretrained - from scratch, Temporal", "Pretrained - from scratch, MtM (prompted)"}
    cells = {name: {(r["seed"], r["session"]): r["scores"]["inter-region"] for r in rows}
             for name, rows in (("multi", multi), ("single", single))}
    expected = paired_difference(cells["multi"], cells["single"])
    row = differences["Pretrained - from scratch, MtM (prompted)"]
    assert float(row["inter-region"]) == pytest.approx(expected.mean, abs=1e-4)
    assert float(row["inter-region low"]) == pytest.approx(expected.low, abs=1e-4)
    assert "## Paired differences (same seed, same session)" in markdown
    # the paper's comparison: the from-scratch model has fine-tuning's steps on the held-out session
    saved = checkpoint.read_description(tmp_path / "seed0" / "single" / "temporal" / sessions[1].eid /
                                        "best.safetensors")
    assert saved["extra"]["train"]["epochs"] == plan.train_config("temporal", "finetune").epochs == 1
    assert "Equal steps on the held-out session, the paper's comparison" in markdown
    best = tmp_path / "seed0" / "single" / "mtm" / sessions[1].eid / "best.safetensors"
    stamp = best.stat().st_mtime_ns
    again = run_reproduction(sessions[:1], sessions[1:], plan, tmp_path, log=lines.append)
    assert best.stat().st_mtime_ns == stamp  # finished runs are reused, not retrained
    assert np.isclose(again["Single-session, Temporal"]["co-smooth"], table["Single-session, Temporal"]["co-smooth"])
    assert PAPER_TABLE2["Multi-session, MtM (prompted)"]["inter-region"] == 0.96


def test_from_scratch_steps_on_the_heldout_session_or_in_total():
    sessions = synthetic_sessions(3, seed=21, n_trials=60, n_neurons=20)
    pretrain, heldout = sessions[:2], sessions[2]
    plan = Plan.for_preset("small", pretrain_epochs=7, finetune_epochs=5)
    pretrain_cfg, finetune_cfg = plan.train_config("mtm", "pretrain"), plan.train_config("mtm", "finetune")
    batches = [batches_per_epoch([s], 16) for s in sessions]
    assert scratch_epochs("heldout", pretrain, pretrain_cfg, finetune_cfg)(heldout) == 5
    total = scratch_epochs("total", pretrain, pretrain_cfg, finetune_cfg)(heldout)
    assert total == epochs_for_steps([heldout], 16, 7 * (batches[0] + batches[1]) + 5 * batches[2]) > 5
    assert scratch_epochs("heldout", [], pretrain_cfg, finetune_cfg) is None
    note = equal_steps_note(pretrain, [heldout], pretrain_cfg, finetune_cfg, "total")
    assert note.startswith("Equal total compute") and f"{total * batches[2]} from scratch" in note
    with pytest.raises(ValueError, match="scratch_steps: expected one of"):
        scratch_epochs("equal", pretrain, pretrain_cfg, finetune_cfg)
    with pytest.raises(ValueError, match="scratch_steps: expected one of"):
        Plan.for_preset("small", scratch_steps="both")


def test_a_job_waiting_for_an_unknown_job_is_refused():
    with pytest.raises(ValueError, match="waits for 'pretrain/mtm'"):
        _run_all({"finetune/mtm/x": dict(after="pretrain/mtm")}, workers=1, log=print)


def test_presets():
    assert Plan.for_preset("paper").n_pretrain == 34 and Plan.for_preset("paper").n_test == 5
    cfg = Plan.for_preset("small", epochs=3).train_config("temporal")
    assert cfg.epochs == 3 and cfg.masking == "temporal" and cfg.model.hidden == 64


def test_a_folder_of_another_plan_is_refused_not_reused(tmp_path):
    sessions = synthetic_sessions(3, seed=30, n_trials=40, n_neurons=25)
    plan = Plan.for_preset("small", n_pretrain=1, n_test=1, epochs=1, n_seeds=1, train_overrides=TINY)
    run_reproduction(sessions[:1], sessions[2:], plan, tmp_path, log=lambda _: None, workers=1, progress=False)
    before = sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.safetensors"))
    more = Plan.for_preset("small", n_pretrain=2, n_test=1, epochs=1, n_seeds=1, train_overrides=TINY)
    with pytest.raises(ValueError, match="holds a run of other settings or sessions"):
        run_reproduction(sessions[:2], sessions[2:], more, tmp_path, log=lambda _: None, workers=1, progress=False)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.safetensors")) == before


def test_epochs_cap_every_stage():
    plan = Plan.for_preset("small", epochs=5)
    assert [plan.train_config("mtm", stage).epochs for stage in ("single", "pretrain", "finetune")] == [5, 5, 5]
    default = Plan.for_preset("small")
    assert [default.train_config("mtm", stage).epochs for stage in ("single", "pretrain", "finetune")] == \
        [150, 50, 25]


def test_batches_per_epoch_counts_the_trainers_batches():
    sessions = synthetic_sessions(2, seed=3, n_trials=45, n_neurons=15)  # 31 training trials each
    for batch_size in (4, 16, 31, 40):
        data = [SessionTensors(s, i, "cpu") for i, s in enumerate(sessions)]
        assert batches_per_epoch(sessions, batch_size) == len(epoch_batches(data, batch_size, 0, 0))
    assert epochs_for_steps(sessions[:1], 16, 2 * 10) == 10 and epochs_for_steps(sessions[:1], 16, 0) == 1


def test_seeds_are_validated():
    assert Plan.for_preset("small").seeds == (0, 1, 2) and Plan.for_preset("small", n_seeds=5).seeds == tuple(range(5))
    with pytest.raises(ValueError, match="n_seeds"):
        Plan.for_preset("small", n_seeds=0)
    with pytest.raises(ValueError, match="preset: expected one of"):
        Plan.for_preset("book")  # table2 has no book preset


def test_the_chapters_words_for_the_comparisons_and_the_tasks_each_is_above_zero_on():
    from mtm.book import verdict_sentence
    from mtm.reproduce.table2 import COMPARISON_KEYS, COMPARISON_WORDS, comparisons, tasks_above
    from mtm.stats import Interval

    labels = [label for label, _, _ in comparisons(2)]
    assert list(COMPARISON_WORDS) == labels == list(COMPARISON_KEYS)  # every comparison has its words, in order
    assert [label for label, _, _ in comparisons(0)] == labels[:1]

    def interval(low, high):
        return Interval((low + high) / 2, low, high, 3)

    differences = {labels[0]: {"co-smooth": interval(0.1, 0.3), "forward-pred": interval(-0.1, 0.2),
                               "intra-region": interval(0.01, 0.05), "choice": interval(0.2, 0.4)},
                   labels[2]: {"inter-region": interval(-0.3, -0.1)}}
    above = tasks_above(differences)
    # the activity tasks only, in TASKS' order; an interval that touches zero or lies below is not above
    assert above == {labels[0]: ["co-smooth", "intra-region"], labels[2]: []}
    assert tasks_above(differences, tasks=("choice",))[labels[0]] == ["choice"]
    assert verdict_sentence(*COMPARISON_WORDS[labels[2]], differences[labels[2]]) == (
        "Pretrained temporal masking is below temporal masking from scratch on inter-region")


def test_figure_labels_name_the_models_by_stage_and_masking_and_the_yardsticks_in_short():
    from mtm.reproduce.table2 import MASKINGS, figure_labels, multi_row, single_row
    from mtm.reproduce.tables import REFERENCE_ROWS

    rows = [single_row(m) for m in MASKINGS] + [multi_row(m, 3) for m in MASKINGS] + list(REFERENCE_ROWS)
    assert list(figure_labels(rows).values()) == [
        "scratch, temporal", "scratch, MtM", "pretrained, temporal", "pretrained, MtM",
        "latent oracle", "Bayes reference", "true rates", "linear baseline"]

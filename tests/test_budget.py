"""``mtm reproduce --experiment budget``: which runs it schedules (equal steps along every factor but
steps, nested trial levels with the same test trials), a tiny run end to end, and its tables."""

import csv
import math

import numpy as np
import pytest

from mtm import checkpoint
from mtm.bayes import BAYES_ROW
from mtm.data import synthetic_sessions
from mtm.reproduce import Plan, run_experiment
from mtm.reproduce.budget import (FACTORS, MASKINGS, budget_markdown, conditions, heldout_trials, level_session,
                                  plan_fields, point_name, schedule, split_pool)
from mtm.reproduce.plan import batches_per_epoch

TINY = dict(model=dict(hidden=16, n_layers=1, n_heads=2, mlp=32, n_channels=16))
FACTORS_TINY = {"trials": (20, 40), "sessions": (0, 1), "steps": (2, 4), "width": (8, 16),
                "centre": {"trials": 20, "steps": 4, "width": 16}}


def tiny_plan(**overrides):
    return Plan.for_preset("small", experiment="budget", train_overrides=TINY,
                           **plan_fields(FACTORS_TINY, n_neurons=20, **overrides))


def test_the_plan_schedules_one_run_per_point_at_equal_steps(tmp_path):
    plan = tiny_plan(n_seeds=2, n_test=2)
    assert (plan.n_pretrain, plan.n_trials, plan.n_test_trials) == (1, 20, heldout_trials(FACTORS_TINY)) == (1, 20, 34)
    pretrain, heldout = plan.synthetic_sessions()
    jobs, cells = schedule(pretrain, heldout, plan, tmp_path)
    # the centre and one more level per factor: 5 conditions, 2 maskings, 2 seeds, 2 held-out sessions;
    # one pretraining run per masking and seed, shared by both held-out sessions
    assert len([n for n in jobs if "/pretrain/" in n]) == 4 and len([n for n in jobs if "/pretrain/" not in n]) == 40
    centre = [n for n, points in cells.items() if len(points) == 4]
    assert len(centre) == 2 * 2 * 2 and all({p[0] for p in cells[n]} == set(FACTORS) for n in centre)
    steps = {}
    for name, job in jobs.items():
        cfg = job["cfg"]
        steps[name] = cfg["epochs"] * batches_per_epoch(job["sessions"], cfg["batch_size"])
        assert cfg["seed"] == int(name[4]) and cfg["model"]["hidden"] == cfg["model"]["n_channels"]
        assert job.get("behavior", True) is False or "/pretrain/" in name
    for name, points in cells.items():
        factor, level = points[0][:2]
        job = jobs[name]
        total = steps[name] + (steps[job["after"]] if "after" in job else 0)
        expected = level if factor == "steps" else FACTORS_TINY["centre"]["steps"]
        assert abs(total - expected) <= 1, (name, total, expected)  # up to rounding to whole epochs
        if factor == "width":
            assert job["cfg"]["model"]["hidden"] == level
        if factor == "sessions" and level:
            assert jobs[job["after"]]["sessions"][0].eid == pretrain[0].eid and "/finetune/" in name


def test_trial_levels_are_nested_and_share_their_test_trials():
    session = synthetic_sessions(1, seed=3, n_trials=heldout_trials(FACTORS_TINY), n_neurons=20)[0]
    pool = split_pool(session, FACTORS_TINY)
    small, large = level_session(pool, 20), level_session(pool, 40)
    assert [len(small.splits[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    assert [len(large.splits[s]) for s in ("train", "val", "test")] == [28, 2, 4]
    np.testing.assert_array_equal(small.spikes[small.splits["test"]], large.spikes[large.splits["test"]])
    small_train = {bytes(t) for t in small.spikes[small.splits["train"]]}
    assert small_train <= {bytes(t) for t in large.spikes[large.splits["train"]]}
    assert small.rates is None and small.truth is None
    with pytest.raises(ValueError, match="n_test_trials"):
        split_pool(session.select_trials(np.arange(30)), FACTORS_TINY)


def test_factors_are_validated():
    assert len(conditions(FACTORS_TINY)) == 8  # 4 factors x 2 levels, the centre under each
    with pytest.raises(ValueError, match=r"factors\['steps'\]"):
        conditions({**FACTORS_TINY, "steps": (2, 3)})
    with pytest.raises(ValueError, match="missing 'width'"):
        conditions({k: v for k, v in FACTORS_TINY.items() if k != "width"})


def test_a_tiny_budget_study_end_to_end(tmp_path):
    plan = tiny_plan(n_seeds=2, n_test=1)
    pretrain, heldout = plan.synthetic_sessions()
    table = run_experiment(pretrain, heldout, plan, tmp_path, log=lambda _: None, workers=1, progress=False)
    oracle, bayes = table["Latent oracle (true latents; an upper bound)"], table[BAYES_ROW]
    for factor in FACTORS:
        for level in FACTORS_TINY[factor]:
            for label in MASKINGS:
                assert all(math.isfinite(v) for v in table[point_name(factor, level, label)].values())
    assert all(oracle[t] > 0 for t in oracle)
    # the reachable yardstick: given only the visible spikes, never above the oracle given the true latents
    assert set(bayes) == set(oracle) and all(bayes[t] <= oracle[t] + 1e-6 for t in oracle)
    markdown = (tmp_path / "results.md").read_text()
    for heading in ("### Trials per session", "### Pretraining sessions", "### Optimiser steps",
                    "### Model width (hidden units)", "### Yardsticks", f"### Share of the {BAYES_ROW}",
                    "### MtM minus temporal", "### Effect of each factor"):
        assert heading in markdown
    share = table[point_name("steps", 4, "MtM (prompted)")]["co-smooth"] / bayes["co-smooth"]
    assert f"| MtM (prompted), optimiser steps 4 | {share:.2f} |" in markdown
    assert "| MtM (prompted): optimiser steps 2 -> 4 |" in markdown
    with open(tmp_path / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 * 2 + 2 and rows[-1]["model"] == BAYES_ROW and rows[0]["factor"] == "trials" and float(rows[0]["co-smooth high"]) > \
        float(rows[0]["co-smooth low"])
    assert (tmp_path / "results.png").stat().st_size > 10_000
    best = tmp_path / "seed1" / "finetune" / "mtm" / "t20-p1-s4-w16" / heldout[0].eid / "best.safetensors"
    assert checkpoint.read_description(best)["extra"]["train"]["seed"] == 1
    # a second call reuses every finished run
    stamp = best.stat().st_mtime_ns
    again = run_experiment(pretrain, heldout, plan, tmp_path, log=lambda _: None, workers=1, progress=False)
    assert best.stat().st_mtime_ns == stamp and again == table


def test_a_share_of_a_yardstick_is_one_argument():
    runs = {point_name(f, level, label): [{"seed": s, "session": "x", "scores": {t: 0.1 * (s + 1) for t in
                                                                                ("co-smooth", "forward-pred",
                                                                                 "intra-region", "inter-region")}}
                                          for s in range(3)]
            for f in FACTORS for level in FACTORS_TINY[f] for label in MASKINGS}
    yardsticks = {"Reference": dict.fromkeys(("co-smooth", "forward-pred", "intra-region", "inter-region"), 0.4)}
    plain = budget_markdown(runs, FACTORS_TINY, yardsticks)
    shared = budget_markdown(runs, FACTORS_TINY, yardsticks, share_of="Reference")
    assert "Share of the Reference" not in plain
    assert "### Share of the Reference" in shared and "| 0.50 | 0.50 | 0.50 | 0.50 |" in shared  # 0.2 of 0.4
    assert "| MtM (prompted), trials per session 20 | 0.20 ± 0.25 |" in plain  # t(0.975, 2) 0.1 / sqrt(3)

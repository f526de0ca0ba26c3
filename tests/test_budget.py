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
from mtm.reproduce.budget import (CENTRE, FACTORS, MASKINGS, MEAN, TICK_POINTS, budget_markdown, conditions,
                                  distinct_points, effect_name, effect_points, findings, headline, heldout_trials,
                                  level_session, mean_share, plan_fields, plan_markdown, plan_rows, plot_budget,
                                  point_name, ranking, schedule, split_pool)
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
    share = table[point_name("steps", 2, "MtM (prompted)")]["co-smooth"] / bayes["co-smooth"]
    assert f"| MtM (prompted), optimiser steps 2 | {100 * share:.0f} % |" in markdown
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
    assert "### Share of the Reference, in percent" in shared and "| 50 % | 50 % | 50 % | 50 % |" in shared  # 0.2 of 0.4
    # the centre's level is marked under every factor, and named once in the share and difference tables
    assert "| MtM (prompted), trials per session 20 (the centre) | 0.20 ± 0.25 |" in plain  # t(0.975, 2) 0.1/sqrt(3)
    assert "| MtM (prompted), pretraining sessions 0 (the centre) |" in plain
    share_table = shared.split("### Share of the Reference")[1].split("###")[0]
    assert share_table.count(CENTRE) == 2 and "trials per session 20" not in share_table  # once per masking
    differences = shared.split("### MtM minus temporal")[1].split("###")[0]
    rows = [line for line in differences.splitlines() if line.startswith("| ") and not line.startswith("| |")]
    assert differences.count(CENTRE) == 1 and len(rows) == 1 + 4  # the centre, then every factor's other level


def synthetic_runs(effect: dict[str, float], noise: float = 0.0) -> dict:
    """Runs of 3 seeds on the tiny factors: every task scores 0.2 at the centre, a factor's highest level
    ``effect[factor]`` above its lowest, MtM 0.04 above temporal, each seed shifted by ``noise`` times (seed - 1)."""
    tasks = ("co-smooth", "forward-pred", "intra-region", "inter-region")
    runs = {}
    for factor in FACTORS:
        centre = 0 if factor == "sessions" else FACTORS_TINY["centre"][factor]
        for level in FACTORS_TINY[factor]:
            for k, label in enumerate(MASKINGS):
                top = max(FACTORS_TINY[factor])
                value = 0.2 + 0.04 * k + effect[factor] * ((level == top) - (centre == top))
                runs[point_name(factor, level, label)] = [
                    {"seed": s, "session": "x", "scores": dict.fromkeys(tasks, value + noise * (s - 1))}
                    for s in range(3)]
    return runs


REFERENCE = dict.fromkeys(("co-smooth", "forward-pred", "intra-region", "inter-region"), 0.4)


def test_effects_in_points_of_the_reference_rank_the_factors():
    runs = synthetic_runs({"trials": 0.02, "sessions": -0.04, "steps": 0.1, "width": 0.06}, noise=0.01)
    effect = effect_points(runs, FACTORS_TINY, REFERENCE)
    steps = effect[effect_name("Temporal", "steps", FACTORS_TINY)]
    assert effect_name("Temporal", "steps", FACTORS_TINY) == "Temporal: optimiser steps 2 → 4"
    assert steps[MEAN].mean == pytest.approx(25.0) and steps["co-smooth"].mean == pytest.approx(25.0)  # 0.1 of 0.4
    # the seed shift is the same at both levels: the paired difference has no spread
    assert steps[MEAN].high - steps[MEAN].low == pytest.approx(0.0, abs=1e-9)
    # sessions: 0 -> 1 is the centre to the other level, so the effect is -0.04 / 0.4
    assert effect[effect_name("MtM (prompted)", "sessions", FACTORS_TINY)][MEAN].mean == pytest.approx(-10.0)
    assert ranking(effect, "MtM (prompted)") == ("optimiser steps 2 → 4 (+25 points), model width (hidden units) "
                                                 "8 → 16 (+15), trials per session 20 → 40 (+5), pretraining "
                                                 "sessions 0 → 1 (-10)")
    with pytest.raises(ValueError, match="label"):
        ranking(effect, "NDT2")
    centre = runs[point_name("trials", 20, "Temporal")]
    assert mean_share(centre, REFERENCE).mean == pytest.approx(50.0)


def test_the_headline_and_the_box_follow_the_runs(tmp_path):
    plan = tiny_plan(n_seeds=2, n_test=1)
    pretrain, heldout = plan.synthetic_sessions()
    jobs, cells = schedule(pretrain, heldout, plan, tmp_path)
    design = plan_rows(jobs, cells, FACTORS_TINY, seed=0)
    # the centre once, then every other level: 1 + 4 rows
    assert list(design) == [CENTRE] + [label for label in distinct_points(FACTORS_TINY) if label != CENTRE]
    assert len(design) == 5 and design[CENTRE]["training trials"] == 14 and design[CENTRE]["width"] == 16
    assert design["pretraining sessions 1"]["pretraining sessions"] == 1
    assert design["optimiser steps 2"]["steps"] == 2 and design["trials per session 40"]["training trials"] == 28
    assert "| the centre | 14 | from scratch |" in plan_markdown(design)
    with pytest.raises(ValueError, match="seed, masking"):
        plan_rows(jobs, cells, FACTORS_TINY, seed=7)
    # width moves the shares most: the headline names it, with the effects signed and the centre's share
    runs = synthetic_runs({"trials": 0.02, "sessions": -0.04, "steps": 0.1, "width": 0.2}, noise=0.01)
    numbers = headline(runs, FACTORS_TINY, REFERENCE, design)
    assert numbers["mtm_first"] == numbers["temporal_first"] == "model width"
    assert (numbers["mtm_width"], numbers["temporal_sessions"], numbers["mtm_centre_share"]) == ("+50", "-10", "60")
    assert numbers["centre_steps"] == str(design[CENTRE]["steps"]) and numbers["centre_design_steps"] == "4"
    assert numbers["trials_high"] == "40" and numbers["mtm_ranking"].startswith("model width (hidden units) 8 → 16")
    box = findings(runs, FACTORS_TINY, REFERENCE)
    assert box[0] == ("At the centre, MtM reaches 60 % of the Bayes reference on average over the four tasks and "
                      "temporal masking 50 %")
    # MtM is 0.04 above temporal in every run: above it on every task, at the centre and at the most steps
    assert box[-2].startswith("At the centre, MtM is above temporal masking on co-smoothing")
    assert box[-1].startswith("At 4 optimiser steps, MtM is above temporal masking")


def test_the_figure_is_readable_and_fits_its_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mtm.plots import COLUMN_WIDTH

    runs = synthetic_runs({"trials": 0.02, "sessions": -0.04, "steps": 0.1, "width": 0.06}, noise=0.01)
    oracle = dict.fromkeys(REFERENCE, 0.6)
    fig = plot_budget(runs, FACTORS_TINY, {"Latent oracle (true latents)": oracle, "Bayes reference": REFERENCE},
                      share_of="Bayes reference")
    try:
        assert fig.get_size_inches()[0] == COLUMN_WIDTH
        axes = fig.get_axes()
        assert len(axes) == 16
        assert all(label.get_fontsize() >= TICK_POINTS for ax in axes
                   for label in ax.get_xticklabels() + ax.get_yticklabels())
        # the points lie between 25 % and 65 % of the reference (steps 2 and trials 40): the y-range fits them
        # and their intervals, not the Bayes reference at 100 % nor the oracle at 150 %
        low, high = axes[0].get_ylim()
        assert 0 < low < 25 and 65 < high < 100
        assert not [line for line in axes[0].get_lines() if list(line.get_ydata()) == [150, 150]]
        titles = [sub._suptitle.get_text() for sub in fig.subfigs]
        assert titles[0] == "Co-smooth (above the axes: latent oracle 150 %, Bayes reference 100 %)"
    finally:
        plt.close(fig)

"""``mtm reproduce --experiment budget``: where the gap to the yardstick comes from.

Temporal masking and prompted MtM (NDT1) trained on sessions of one synthetic world, each of four
budget factors varied in turn around a centre point, the others held at the centre:

=============  ==========================================================================  ==========
factor         what varies                                                                 held fixed
=============  ==========================================================================  ==========
``trials``     trials per session T: the held-out session's training trials (70 % of T,    steps
               as a T-trial session's train split); its validation and test trials are
               the same at every T (those of a session of the centre's T)
``sessions``   pretraining sessions k (of the centre's T trials each): pretraining on k     total steps
               sessions for ``PRETRAIN_SHARE`` of the centre's steps, then fine-tuning on
               the held-out session for the rest; k = 0 is the centre (from scratch)
``steps``      optimiser steps of a from-scratch run (batches of 16 trials)                 data
``width``      the model's width: hidden units h (MLP 2h, input channels h)                 steps
=============  ==========================================================================  ==========

So every comparison along a factor is at equal optimiser steps except along ``steps`` itself. The
runs of every factor share the centre run, every level is trained once per seed of the plan and
scored on the same test trials of every held-out session (the four activity tasks, bits per spike),
and each point is the mean over seeds and held-out sessions with its 95 % interval (:mod:`mtm.stats`).
The tables give, per factor, each level's scores, MtM minus temporal at each level, and the effect
of the factor (its highest level minus its lowest, paired by seed and session), which answers which
factor moves the scores most.

*Yardsticks.* :data:`YARDSTICKS` names what each task's score is measured against, each a function
of a held-out session, drawn as grey lines (dashed, dotted): the latent oracle
(:func:`mtm.oracle.oracle_results`, given the true latents: an upper bound no model reaches) and the Bayes
reference (:func:`mtm.bayes.bayes_results`, given exactly the spikes a model sees and the generative parameters: a predictor a model can reach).
Every score is also given as a share of :data:`REACHABLE`, the Bayes reference (``share_of`` of
:func:`budget_markdown` and :func:`plot_budget`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mtm.atomic import atomic_write
from mtm.bayes import BAYES_ROW, bayes_results
from mtm.data import Session
from mtm.evaluate import TASKS, task_scores
from mtm.oracle import oracle_results
from mtm.paths import safe_name
from mtm.plots import TABLE_COLUMNS
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps, nested_pool, split_sizes, train_subset
from mtm.reproduce.scheduler import _run_all, default_workers, row_intervals, row_means, stamp_log
from mtm.reproduce.tables import interval_table, save_figure
from mtm.stats import paired_difference
from mtm.tables import write_csv

FACTORS = {"trials": "trials per session", "sessions": "pretraining sessions", "steps": "optimiser steps",
           "width": "model width (hidden units)"}
MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRETRAIN_SHARE = 0.5   # the sessions factor: the share of the centre's steps spent pretraining
EVALUATIONS = 20       # validations (and checkpoints) per run, whatever its epochs


def oracle_scores(session: Session) -> dict[str, float]:
    """{task: bits per spike} of the latent oracle on the session's test split."""
    return task_scores(oracle_results(session))


def bayes_scores(session: Session) -> dict[str, float]:
    """{task: bits per spike} of the Bayes reference (given the visible spikes) on the session's test split."""
    return task_scores(bayes_results(session))


#: {name: function(session) -> {task: bits per spike}}: what the scores are measured against.
YARDSTICKS = {"Latent oracle (true latents; an upper bound)": oracle_scores, BAYES_ROW: bayes_scores}
#: The yardstick a model can reach: every score's share is taken of it.
REACHABLE = BAYES_ROW


def heldout_trials(factors: dict) -> int:
    """Trials a held-out session needs: the training trials of the largest ``trials`` level, and the
    validation and test trials of a session of the centre's trials."""
    centre = factors["centre"]["trials"]
    return split_sizes(max(factors["trials"]))[0] + centre - split_sizes(centre)[0]


def plan_fields(factors: dict, **plan) -> dict:
    """The Plan fields of a study of ``factors``: the pretraining sessions, their trials (the centre's)
    and the held-out sessions' trials follow from the factors; ``plan``: any other Plan field."""
    return dict(plan, factors=factors, n_pretrain=max(factors["sessions"]), n_trials=factors["centre"]["trials"],
                n_test_trials=heldout_trials(factors))


# small: 15 minutes measured on a 2-core CPU shared with other jobs (430 s of CPU time). book: chapter 10's
# study. A larger one (centre 1,000 steps, 4,000 steps, 2 sessions more, 200 neurons; 84 runs) took 28.5 min
# on the idle 2-core CPU: a run cost about 25 s of training per 1,000 steps at width 64 (60 s at 128) and 17 s
# of scoring at 200 neurons. This design at 100 neurons took 11.5 min (656 s of training and scoring); at 200
# neurons the scoring of its 60 scored runs doubles: about 15-16 minutes.
# paper: a GPU
PRESETS = {
    "small": plan_fields({"trials": (100, 200, 800), "sessions": (0, 1, 2), "steps": (200, 400, 800),
                      "width": (32, 64), "centre": {"trials": 200, "steps": 400, "width": 64}},
                     n_test=1, n_neurons=80),
    "book": plan_fields({"trials": (100, 400, 1600, 3200), "sessions": (0, 1, 4), "steps": (125, 500, 2000),
                     "width": (32, 64, 128), "centre": {"trials": 400, "steps": 500, "width": 64}},
                    n_test=1, n_neurons=200),
    "paper": plan_fields({"trials": (100, 400, 1600, 3200), "sessions": (0, 1, 4, 16), "steps": (1000, 4000, 16000),
                      "width": (128, 256, 512), "centre": {"trials": 400, "steps": 4000, "width": 512}},
                     n_test=2, n_neurons=300),
}


@dataclass(frozen=True)
class Condition:
    """One point of the study: trials per session, pretraining sessions, optimiser steps, width."""

    trials: int
    sessions: int
    steps: int
    width: int

    @property
    def key(self) -> str:
        return f"t{self.trials}-p{self.sessions}-s{self.steps}-w{self.width}"


def conditions(factors: dict) -> dict[tuple[str, int], Condition]:
    """{(factor, level): its condition}: the centre with one factor set to the level (the centre
    from scratch). Every factor's levels include the centre's value, ``sessions`` includes 0."""
    for name in (*FACTORS, "centre"):
        if name not in factors:
            raise ValueError(f"factors: expected the levels of {list(FACTORS)} and a 'centre', missing {name!r}")
    centre = Condition(sessions=0, **factors["centre"])
    found = {}
    for factor in FACTORS:
        levels = tuple(factors[factor])
        if getattr(centre, factor) not in levels or len(levels) < 2 or min(levels) < 0:
            raise ValueError(f"factors[{factor!r}]: expected two or more levels including the centre's "
                             f"{getattr(centre, factor)}, got {levels}")
        for level in levels:
            found[(factor, int(level))] = replace(centre, **{factor: int(level)})
    return found


def split_pool(session: Session, factors: dict) -> Session:
    """The held-out session with fixed test and validation trials (those of a session of the centre's
    trials) and every other trial in ``train``, in a random order kept in ``meta["train_order"]``:
    a level of ``trials`` trains on the first trials of that order, so the levels are nested
    (:func:`mtm.reproduce.plan.nested_pool`)."""
    if session.n_trials < heldout_trials(factors):
        raise ValueError(f"n_test_trials: the budget's held-out sessions need {heldout_trials(factors)} trials, "
                         f"{session.eid} has {session.n_trials}")
    _, n_val, n_test = split_sizes(factors["centre"]["trials"])
    return nested_pool(session, n_val, n_test)


def level_session(pool: Session, trials: int) -> Session:
    """The training data of a ``trials`` level: the pool's first training trials (70 % of ``trials``),
    its validation and test trials; counts only (a worker process needs no ground truth)."""
    return train_subset(pool, split_sizes(trials)[0])


def schedule(pretrain: list[Session], heldout: list[Session], plan, out: Path) -> tuple[dict, dict]:
    """(jobs, cells): the runs of :func:`mtm.reproduce.scheduler._run_all` for every masking, seed,
    condition and held-out session (pretraining runs shared by the held-out sessions), and
    {job name: [(factor, level, masking label, seed, eid), ...]}, the points each scored run serves."""
    factors = plan.factors
    points = conditions(factors)
    pools = [split_pool(s, factors) for s in heldout]
    by_trials = {t: [level_session(p, t) for p in pools] for t in sorted({c.trials for c in points.values()})}
    pretrain = [s.replace(rates=None, truth=None) for s in pretrain]
    if max(c.sessions for c in points.values()) > len(pretrain):
        raise ValueError(f"factors['sessions']: up to {max(factors['sessions'])} pretraining sessions asked for, "
                         f"the plan has {len(pretrain)}")
    jobs, cells = {}, {}
    for label, masking in MASKINGS.items():
        for seed in plan.seeds:
            for (factor, level), c in points.items():
                base = plan.train_config(masking, seed=seed, model={**plan.train_overrides.get("model", {}),
                                                                     "hidden": c.width, "mlp": 2 * c.width,
                                                                     "n_channels": c.width})
                for session in by_trials[c.trials]:
                    if c.sessions:
                        after = f"seed{seed}/pretrain/{masking}-p{c.sessions}-s{c.steps}-w{c.width}"
                        jobs.setdefault(after, dict(sessions=pretrain[:c.sessions], run_dir=str(out / after),
                                                    cfg=_for_steps(base, pretrain[:c.sessions],
                                                                   PRETRAIN_SHARE * c.steps).to_dict()))
                        name = f"seed{seed}/finetune/{masking}/{c.key}/{safe_name(session.eid)}"
                        steps, extra = (1 - PRETRAIN_SHARE) * c.steps, dict(after=after)
                    else:
                        name = f"seed{seed}/single/{masking}/{c.key}/{safe_name(session.eid)}"
                        steps, extra = c.steps, {}
                    jobs.setdefault(name, dict(sessions=[session], run_dir=str(out / name), score=True,
                                               behavior=False, cfg=_for_steps(base, [session], steps).to_dict(),
                                               **extra))
                    cells.setdefault(name, []).append((factor, level, label, seed, session.eid))
    longest_first = sorted(jobs, key=lambda n: -jobs[n]["cfg"]["epochs"] * _batches(jobs[n]))
    return {n: jobs[n] for n in longest_first}, cells


def _batches(job: dict) -> int:
    return batches_per_epoch(job["sessions"], job["cfg"]["batch_size"])


def _for_steps(cfg, sessions: list[Session], steps: float):
    """``cfg`` with the epochs over ``sessions`` nearest to ``steps`` optimiser steps, validated and
    checkpointed :data:`EVALUATIONS` times."""
    epochs = epochs_for_steps(sessions, cfg.batch_size, steps)
    every = max(1, epochs // EVALUATIONS)
    return replace(cfg, epochs=epochs, eval_every=every, checkpoint_every=every)


def point_name(factor: str, level: int, label: str) -> str:
    return f"{label}, {FACTORS[factor]} {level}"


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Train and score every point of the study; write the tables and the figure into ``out``.
    Returns {row: {task: mean bits per spike}}, a row per (factor, level, masking), then the yardsticks."""
    if any(s.truth is None for s in heldout):
        raise ValueError("data: the budget experiment needs synthetic sessions (its yardsticks read the ground truth)")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    jobs, cells = schedule(pretrain, heldout, plan, out)
    stamp(f"training {len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds): "
          + ", ".join(f"{FACTORS[f]} {tuple(plan.factors[f])}" for f in FACTORS))
    done = _run_all(jobs, workers, stamp, progress)
    runs: dict[str, list[dict]] = {}
    for name, served in cells.items():
        for factor, level, label, seed, eid in served:
            runs.setdefault(point_name(factor, level, label), []).append(
                {"seed": seed, "session": eid, "scores": done[name]["scores"]})
    stamp("yardsticks")
    pools = [split_pool(s, plan.factors) for s in heldout]
    yardsticks = {}
    for name, score in YARDSTICKS.items():
        scores = [score(p) for p in pools]
        yardsticks[name] = {task: float(np.mean([s[task] for s in scores])) for task in TASKS}
    path = write_budget(runs, plan.factors, yardsticks, out, share_of=REACHABLE)
    stamp(f"done; tables in {path}")
    return {**{row: row_means(records) for row, records in runs.items()}, **yardsticks}


def effects(runs: dict, factors: dict) -> dict[str, dict]:
    """{"<masking>: <factor> <lowest> -> <highest>": {task: Interval}}: each factor's highest level
    minus its lowest, paired by seed and session."""
    found = {}
    for label in MASKINGS:
        for factor in FACTORS:
            low, high = min(factors[factor]), max(factors[factor])
            a, b = runs[point_name(factor, high, label)], runs[point_name(factor, low, label)]
            found[f"{label}: {FACTORS[factor]} {low} -> {high}"] = {
                task: paired_difference(_cells(a, task), _cells(b, task)) for task in TASKS}
    return found


def _cells(records: list[dict], task: str) -> dict:
    return {(r["seed"], r["session"]): r["scores"][task] for r in records}


def mtm_minus_temporal(runs: dict, factors: dict) -> dict[str, dict]:
    """{"<factor> <level>": {task: Interval}}: MtM minus temporal at every point, paired."""
    return {f"{FACTORS[factor]} {level}": {
        task: paired_difference(_cells(runs[point_name(factor, level, "MtM (prompted)")], task),
                                _cells(runs[point_name(factor, level, "Temporal")], task)) for task in TASKS}
        for factor in FACTORS for level in factors[factor]}


def budget_markdown(runs: dict, factors: dict, yardsticks: dict, share_of: str | None = None) -> str:
    """The study's tables: per factor, every level's scores (± 95 % interval); the yardsticks; MtM minus
    temporal; each factor's effect. ``share_of``: a yardstick's name, to add each score's share of it."""
    intervals = {row: row_intervals(records) for row, records in runs.items()}
    n_seeds = len({r["seed"] for records in runs.values() for r in records})
    columns = list(TASKS)
    parts = [f"Bits per spike on the held-out sessions' test trials, mean over {n_seeds} seeds and the held-out "
             "sessions, ± the half-width of the 95 % interval over seeds (mtm.stats)."]
    for factor in FACTORS:
        rows = {point_name(factor, level, label): {} for level in factors[factor] for label in MASKINGS}
        parts.append(f"### {FACTORS[factor].capitalize()}\n\n" + interval_table(rows, intervals, columns))
    parts.append("### Yardsticks\n\n" + interval_table(yardsticks, {}, columns))
    if share_of is not None:
        best = yardsticks[share_of]
        shares = {row: {t: row_means(records)[t] / best[t] for t in columns} for row, records in runs.items()}
        parts.append(f"### Share of the {share_of}\n\n" + interval_table(shares, {}, columns))
    differences = mtm_minus_temporal(runs, factors)
    parts.append("### MtM minus temporal (same seed, same session)\n\n"
                 + interval_table({k: {} for k in differences}, differences, columns, sign=True))
    effect = effects(runs, factors)
    parts.append("### Effect of each factor: its highest level minus its lowest (same seed, same session)\n\n"
                 + interval_table({k: {} for k in effect}, effect, columns, sign=True)
                 + "\n\n**Bold**: the interval excludes zero. Along every factor but optimiser steps the runs have "
                   "equal steps.")
    return "\n\n".join(parts) + "\n"


def write_budget(runs: dict, factors: dict, yardsticks: dict, out: Path, share_of: str | None = None) -> Path:
    """results.md, results.csv (factor, level, model, then each task's mean, low and high),
    per_session.json and results.png in ``out``."""
    out = Path(out)
    rows = [[factor, level, label] + [f"{v:.4f}" for t in TASKS for v in (row[t].mean, row[t].low, row[t].high)]
            for factor in FACTORS for level in factors[factor] for label in MASKINGS
            for row in [row_intervals(runs[point_name(factor, level, label)])]]
    rows += [["", "", name] + [v for t in TASKS for v in (f"{scores[t]:.4f}", "", "")]
             for name, scores in yardsticks.items()]
    write_csv(out / "results.csv", ["factor", "level", "model"]
              + [f"{t}{end}" for t in TASKS for end in ("", " low", " high")], rows)
    atomic_write(out / "per_session.json", lambda tmp: Path(tmp).write_text(json.dumps(runs, indent=1)))
    save_figure(plot_budget(runs, factors, yardsticks, share_of), out / "results.png")
    markdown = "## Where the gap comes from: score against each budget factor\n\n" + budget_markdown(
        runs, factors, yardsticks, share_of)
    return atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(markdown))


def plot_budget(runs: dict, factors: dict, yardsticks: dict, share_of: str | None = None):
    """A row of panels per task, a panel per factor: each masking's score against the factor's levels
    (log axis) with its 95 % interval, and the yardsticks as grey lines (dashed, dotted, in order); with
    ``share_of``, as its share."""
    import matplotlib.pyplot as plt

    # 7 inches wide, the width of a book page's column, so the labels keep their size on the page
    fig, axes = plt.subplots(len(TASKS), len(FACTORS), figsize=(7.0, 1.5 * len(TASKS) + 0.9),
                             sharey="row", squeeze=False, layout="constrained")
    for i, task in enumerate(TASKS):
        scale = yardsticks[share_of][task] if share_of else 1.0
        for j, factor in enumerate(FACTORS):
            ax, levels = axes[i][j], list(factors[factor])
            x = [max(level, 0.5) for level in levels]  # 0 pretraining sessions drawn at 0.5 on the log axis
            for k, label in enumerate(MASKINGS):
                rows = [row_intervals(runs[point_name(factor, level, label)])[task] for level in levels]
                ax.errorbar(x, [r.mean / scale for r in rows], yerr=np.nan_to_num([r.half_width / abs(scale) for r in rows]),
                            fmt="o-", ms=3, lw=1.2, capsize=2, color=f"C{k}", label=label)
            for k, (name, scores) in enumerate(yardsticks.items()):
                ax.axhline(scores[task] / scale, color="0.4", ls=("--", ":", "-.")[k % 3], lw=1, label=name)
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{level / 1000:g}k" if level >= 1000 else str(level) for level in levels])
            ax.minorticks_off()
            ax.tick_params(labelsize=7)
            if i == len(TASKS) - 1:
                ax.set_xlabel(FACTORS[factor].replace(" (", "\n("), fontsize=8)
        # the reference's full name is in the legend: a long label would run into the next row's
        axes[i][0].set_ylabel(f"{TABLE_COLUMNS.get(task, task)}\n"
                              + ("share of the reference" if share_of else "bits per spike"), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=7)
    return fig

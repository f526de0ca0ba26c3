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
from mtm.plots import COLUMN_WIDTH, TABLE_COLUMNS
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps, nested_pool, split_sizes, train_subset
from mtm.reproduce.scheduler import _run_all, default_workers, row_intervals, row_means, stamp_log
from mtm.reproduce.tables import interval_table, save_figure
from mtm.stats import Interval, paired_difference, seed_interval
from mtm.tables import markdown_table, write_csv

FACTORS = {"trials": "trials per session", "sessions": "pretraining sessions", "steps": "optimiser steps",
           "width": "model width (hidden units)"}
MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRETRAIN_SHARE = 0.5   # the sessions factor: the share of the centre's steps spent pretraining
#: The centre point's name in the tables: the runs every factor shares.
CENTRE = "the centre"
#: The column of the mean over the four activity tasks (:func:`effect_points`).
MEAN = "mean over tasks"
EVALUATIONS = 20       # validations (and checkpoints) per run, whatever its epochs
#: What the paper shows on the axis this study can compare (its Fig. 4), for a box beside this run's findings.
PAPER_FINDING = ("MtM keeps improving with more pretraining sessions where temporal masking saturates (Fig. 4), "
                 "with models far wider (512 hidden units) and trained far longer than this study's.")


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
# neurons the scoring of its 60 scored runs doubles: about 15-16 minutes (20.7 min measured on 2026-12-07, on a
# machine slower than on 2026-12-05: the same design at 100 neurons took 16.5 min there, as chapter 10).
# paper: a GPU
PRESETS = {
    "small": plan_fields({"trials": (100, 200, 800), "sessions": (0, 1, 2), "steps": (200, 400, 800),
                      "width": (32, 64), "centre": {"trials": 200, "steps": 400, "width": 64}},
                     n_test=1, n_neurons=80),
    "book": plan_fields({"trials": (100, 400, 1600, 3200), "sessions": (0, 1, 4), "steps": (125, 500, 2000),
                     "width": (32, 64, 128), "centre": {"trials": 400, "steps": 500, "width": 64}},
                    n_test=1, n_neurons=100),
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


def centre_level(factor: str, factors: dict) -> int:
    """The centre's level of ``factor``: the centre trains from scratch (0 pretraining sessions)."""
    return 0 if factor == "sessions" else factors["centre"][factor]


def level_label(factor: str, level: int, factors: dict) -> str:
    """``"optimiser steps 2000"``; the centre's level marked ``"optimiser steps 500 (the centre)"``, since
    every factor's centre level is the same run."""
    mark = f" ({CENTRE})" if level == centre_level(factor, factors) else ""
    return f"{FACTORS[factor]} {level}{mark}"


def distinct_points(factors: dict) -> dict[str, tuple[str, int]]:
    """{label: (factor, level)} of every distinct point of the study once: :data:`CENTRE` first (the
    runs every factor shares), then each factor's other levels (``"optimiser steps 2000"``)."""
    points = {CENTRE: ("trials", factors["centre"]["trials"])}
    points.update({f"{FACTORS[factor]} {level}": (factor, level) for factor in FACTORS for level in factors[factor]
                   if level != centre_level(factor, factors)})
    return points


def plan_rows(jobs: dict, cells: dict, factors: dict, seed: int, masking: str = "mtm") -> dict[str, dict]:
    """What the runs of one ``seed`` and ``masking`` train at each distinct point (:func:`distinct_points`,
    the centre once), from :func:`schedule`'s ``jobs`` and ``cells``: {point: {"training trials",
    "pretraining sessions", "pretraining steps" (0, 0 from scratch), "steps" (on the held-out session),
    "epochs", "width"}}. Steps are whole epochs of batches, so they differ from the design's levels by
    up to an epoch's batches."""
    served = {}
    for name, points in cells.items():
        if name.startswith(f"seed{seed}/") and f"/{masking}/" in name:
            served.update({(factor, level): name for factor, level, *_ in points})
    if not served:
        raise ValueError(f"seed, masking: no scheduled run of seed {seed} with masking {masking!r}")
    rows = {}
    for label, point in distinct_points(factors).items():
        job = jobs[served[point]]
        before = jobs[job["after"]] if "after" in job else None
        rows[label] = {"training trials": len(job["sessions"][0].splits["train"]),
                       "pretraining sessions": len(before["sessions"]) if before else 0,
                       "pretraining steps": _steps(before) if before else 0, "steps": _steps(job),
                       "epochs": job["cfg"]["epochs"], "width": job["cfg"]["model"]["hidden"]}
    return rows


def _steps(job: dict) -> int:
    return job["cfg"]["epochs"] * _batches(job)


def plan_markdown(rows: dict[str, dict]) -> str:
    """:func:`plan_rows` as a Markdown table, one row per distinct point."""
    def pretraining(row):
        if not row["pretraining sessions"]:
            return "from scratch"
        return f"{row['pretraining steps']:,} steps on {row['pretraining sessions']} session(s)"

    return markdown_table(["training trials", "pretraining", "steps on the session", "epochs", "width"],
                          {label: [f"{row['training trials']:,}", pretraining(row), f"{row['steps']:,}",
                                   str(row["epochs"]), str(row["width"])] for label, row in rows.items()})


def _shares(records: list[dict], reference: dict, tasks=TASKS) -> dict:
    """{(seed, session): {task: score as a percentage of ``reference``'s, MEAN: their mean over ``tasks``}}."""
    found = {}
    for r in records:
        share = {task: 100 * r["scores"][task] / reference[task] for task in tasks}
        found[(r["seed"], r["session"])] = {**share, MEAN: float(np.mean([share[t] for t in tasks]))}
    return found


def mean_share(records: list[dict], reference: dict) -> Interval:
    """One point's score as a percentage of ``reference`` ({task: bits per spike}), averaged over the four
    activity tasks run by run, with its 95 % interval over seeds."""
    return seed_interval({cell: share[MEAN] for cell, share in _shares(records, reference).items()})


def effect_name(label: str, factor: str, factors: dict) -> str:
    """The row of :func:`effect_points` of ``label``'s effect of ``factor``."""
    return f"{label}: {FACTORS[factor]} {min(factors[factor])} → {max(factors[factor])}"


def effect_points(runs: dict, factors: dict, reference: dict) -> dict[str, dict]:
    """Each factor's effect (highest level minus lowest, paired by seed and session) in percentage points of
    ``reference`` ({task: bits per spike}, e.g. the Bayes reference): {"<masking>: <factor> <lowest> →
    <highest>": {MEAN: Interval, task: Interval}}, :data:`MEAN` the mean over tasks taken run by run."""
    found = {}
    for label in MASKINGS:
        for factor in FACTORS:
            low, high = min(factors[factor]), max(factors[factor])
            a = _shares(runs[point_name(factor, high, label)], reference)
            b = _shares(runs[point_name(factor, low, label)], reference)
            found[effect_name(label, factor, factors)] = {
                column: paired_difference({c: v[column] for c, v in a.items()}, {c: v[column] for c, v in b.items()})
                for column in (MEAN, *TASKS)}
    return found


def ranking(effect: dict, label: str) -> str:
    """The factors' effects on ``label``'s mean share (:func:`effect_points`), largest first:
    ``"optimiser steps 125 → 2000 (+43 points), model width ... (+22), ..."``."""
    mine = {row.split(": ", 1)[1]: by_column[MEAN].mean for row, by_column in effect.items()
            if row.startswith(f"{label}: ")}
    if not mine:
        raise ValueError(f"label: expected one of {list(MASKINGS)}, got {label!r}")
    order = sorted(mine, key=lambda row: -mine[row])
    return ", ".join(f"{row} ({mine[row]:+.0f}{' points' if i == 0 else ''})" for i, row in enumerate(order))


def headline(runs: dict, factors: dict, reference: dict, design: dict[str, dict]) -> dict[str, str]:
    """The numbers and words a text states of the study, formatted: {name: text}. For each masking (its key
    in :data:`MASKINGS`, ``mtm_...``, ``temporal_...``): ``_centre_share``, the centre's mean share of
    ``reference`` in percent; ``_<factor>``, each factor's effect on it in percentage points (signed);
    ``_first``, the factor that raises it most; ``_ranking``, :func:`ranking`. For the design
    (:func:`plan_rows`): ``<factor>_low``, ``<factor>_high``, the levels; ``centre_trials``,
    ``centre_train_trials``, ``centre_steps`` (the steps the centre's runs take), ``centre_design_steps``
    (the design's), ``centre_width``."""
    effect = effect_points(runs, factors, reference)
    centre = design[CENTRE]
    found = {"centre_trials": f"{factors['centre']['trials']:,}", "centre_width": str(centre["width"]),
             "centre_train_trials": f"{centre['training trials']:,}", "centre_steps": f"{centre['steps']:,}",
             "centre_design_steps": f"{factors['centre']['steps']:,}"}
    for factor in FACTORS:
        found.update({f"{factor}_low": f"{min(factors[factor]):,}", f"{factor}_high": f"{max(factors[factor]):,}"})
    for label, key in MASKINGS.items():
        share = mean_share(runs[point_name("trials", factors["centre"]["trials"], label)], reference)
        moves = {factor: effect[effect_name(label, factor, factors)][MEAN].mean for factor in FACTORS}
        found.update({f"{key}_centre_share": f"{share.mean:.0f}", f"{key}_ranking": ranking(effect, label),
                      f"{key}_first": FACTORS[max(moves, key=moves.get)].split(" (")[0]})
        found.update({f"{key}_{factor}": f"{moves[factor]:+.0f}" for factor in FACTORS})
    return found


def findings(runs: dict, factors: dict, reference: dict) -> list[str]:
    """The sentences of a box on the study (:func:`mtm.book.what_this_run_shows`), each written from the
    runs: the centre's mean share of ``reference`` for each masking, each masking's factors ranked by
    their effect on it, and MtM against temporal masking at the centre and at the most steps, in words
    chosen by the paired intervals (:func:`mtm.book.verdict_sentence`)."""
    from mtm.book import verdict_sentence  # mtm.book imports the trainer and the book's settings

    effect = effect_points(runs, factors, reference)
    centre = {label: mean_share(runs[point_name("trials", factors["centre"]["trials"], label)], reference)
              for label in MASKINGS}
    versus = mtm_minus_temporal(runs, factors)
    most = max(factors["steps"])
    return ([f"At {CENTRE}, MtM reaches {centre['MtM (prompted)'].mean:.0f} % of the Bayes reference on "
             f"average over the four tasks and temporal masking {centre['Temporal'].mean:.0f} %"]
            + [f"{label}: the factors by how far they move that share, largest first: {ranking(effect, label)}"
               for label in MASKINGS]
            + [verdict_sentence(f"At {CENTRE}, MtM", "temporal masking",
                                versus[f"{FACTORS['trials']} {factors['centre']['trials']}"]),
               verdict_sentence(f"At {most:,} optimiser steps, MtM", "temporal masking",
                                versus[f"{FACTORS['steps']} {most}"])])


def budget_markdown(runs: dict, factors: dict, yardsticks: dict, share_of: str | None = None) -> str:
    """The study's tables: per factor, every level's scores (± 95 % interval; the centre's level marked, as
    the same run serves every factor); the yardsticks; MtM minus temporal at every distinct point (the
    centre once); each factor's effect. ``share_of``: a yardstick's name, to add every distinct point's
    share of it, in percent."""
    n_seeds = len({r["seed"] for records in runs.values() for r in records})
    columns = list(TASKS)
    parts = [f"Bits per spike on the held-out sessions' test trials, mean over {n_seeds} seeds and the held-out "
             "sessions, ± the half-width of the 95 % interval over seeds (mtm.stats). The centre is one run per "
             "seed, shown under every factor."]
    for factor in FACTORS:
        rows = {f"{label}, {level_label(factor, level, factors)}": row_intervals(runs[point_name(factor, level, label)])
                for level in factors[factor] for label in MASKINGS}
        parts.append(f"### {FACTORS[factor].capitalize()}\n\n" + interval_table({r: {} for r in rows}, rows, columns))
    parts.append("### Yardsticks\n\n" + interval_table(yardsticks, {}, columns))
    points = distinct_points(factors)
    if share_of is not None:
        best = yardsticks[share_of]
        shares = {f"{label}, {name}": row_means(runs[point_name(*point, label)])
                  for label in MASKINGS for name, point in points.items()}
        parts.append(f"### Share of the {share_of}, in percent\n\n" + markdown_table(
            [TABLE_COLUMNS.get(t, t) for t in columns],
            {row: [f"{100 * scores[t] / best[t]:.0f} %" for t in columns] for row, scores in shares.items()}))
    versus = mtm_minus_temporal(runs, factors)
    differences = {name: versus[f"{FACTORS[factor]} {level}"] for name, (factor, level) in points.items()}
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


#: Font sizes (points) of the budget figure: tick labels, axis labels and titles; the figure is drawn at the
#: book's column width (:data:`mtm.plots.COLUMN_WIDTH`), so they show at this size on the page.
TICK_POINTS, LABEL_POINTS = 8, 9


def _yardstick_note(values: dict[str, float], limits: tuple[float, float], unit: str) -> str:
    """Where the yardsticks outside a row's y-range lie: ``"above the axes: Bayes reference 100 %, latent
    oracle 119 %"``; empty when every one is inside it."""
    low, high = limits
    short = {name: name.split(" (")[0].replace("Bayes given the visible spikes", "Bayes reference")
             .replace("Latent", "latent") for name in values}
    above = [f"{short[n]} {v:.0f}{unit}" if unit else f"{short[n]} {v:.2f}" for n, v in values.items() if v > high]
    below = [f"{short[n]} {v:.0f}{unit}" if unit else f"{short[n]} {v:.2f}" for n, v in values.items() if v < low]
    return "; ".join(f"{where} the axes: " + ", ".join(names) for where, names in (("above", above), ("below", below))
                     if names)


def plot_budget(runs: dict, factors: dict, yardsticks: dict, share_of: str | None = None):
    """A row of panels per task, a panel per factor: each masking's score against the factor's levels
    (log axis; no pretraining drawn at 0.5) with its 95 % interval; with ``share_of``, as a percentage of
    that yardstick. Each row's y-range is fitted to its data and shared by its panels; a yardstick inside
    it is a grey line (dashed, dotted, in order), one outside it is named with its value in the row's
    title. Drawn :data:`mtm.plots.COLUMN_WIDTH` wide, ticks :data:`TICK_POINTS` pt."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    fig = plt.figure(figsize=(COLUMN_WIDTH, 2.3 * len(TASKS) + 0.6), layout="constrained")
    rows = fig.subfigures(len(TASKS), 1)
    unit = " %" if share_of else ""
    styles = dict(zip(yardsticks, ("--", ":", "-.")))
    for row, task in zip(np.atleast_1d(rows), TASKS):
        scale = yardsticks[share_of][task] / 100 if share_of else 1.0
        axes = row.subplots(1, len(FACTORS), sharey=True)
        for ax, factor in zip(axes, FACTORS):
            levels = list(factors[factor])
            x = [max(level, 0.5) for level in levels]
            for k, label in enumerate(MASKINGS):
                found = [row_intervals(runs[point_name(factor, level, label)])[task] for level in levels]
                ax.errorbar(x, [r.mean / scale for r in found], fmt="o-", ms=4, lw=1.4, capsize=2, color=f"C{k}",
                            yerr=np.nan_to_num([r.half_width / abs(scale) for r in found]), label=label)
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{level / 1000:g}k" if level >= 1000 else str(level) for level in levels])
            ax.minorticks_off()
            ax.tick_params(labelsize=TICK_POINTS)
            ax.set_xlabel(FACTORS[factor].replace(" (", "\n("), fontsize=LABEL_POINTS)
        limits = axes[0].get_ylim()  # fitted to the data (shared by the row)
        values = {name: scores[task] / scale for name, scores in yardsticks.items()}
        for ax in axes:
            for name, value in values.items():
                if limits[0] <= value <= limits[1]:
                    ax.axhline(value, color="0.4", ls=styles[name], lw=1, label=name)
            ax.set_ylim(limits)
        axes[0].set_ylabel(f"% of {share_of.split(' (')[0].replace('Bayes given the visible spikes', 'Bayes ref.')}"
                           if share_of else "bits per spike", fontsize=LABEL_POINTS)
        note = _yardstick_note(values, limits, unit)
        row.suptitle(TABLE_COLUMNS.get(task, task) + (f" ({note})" if note else ""), fontsize=LABEL_POINTS + 1)
    handles = [plt.Line2D([], [], color=f"C{k}", marker="o", lw=1.4, label=label) for k, label in enumerate(MASKINGS)]
    handles += [plt.Line2D([], [], color="0.4", ls=styles[name], lw=1, label=name) for name in yardsticks]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=LABEL_POINTS)
    return fig

"""``mtm reproduce --experiment transfer``: does a pretrained model pay on a new session? The paper's
claim (Fig. 4, Table 2) tested the way the paper makes it.

A pool of sessions of one world; temporal masking and prompted MtM (NDT1-stitch) pretrained on the
first k pool sessions for every k of ``plan.pretrain_counts``, once per seed, each to a validation
plateau (``plan.pretrain_patience`` validations without a better score,
:func:`mtm.train.plateau_reached`; at most as many optimiser steps as ``plan.pretrain_epochs`` epochs
over the largest set, every set validated at the same spacing in steps, :func:`pretrain_config`).
Each pretrained model is made once and reused for every held-out session and every held-out size.
Each held-out session is cut to the training-trial counts of ``plan.train_trials`` (nested training
sets around the same validation and test trials, :func:`mtm.reproduce.plan.nested_pool`), and at
each count:

* fine-tuned from every pretrained model (protocol ``plan.protocols[0]``) and trained from scratch,
  each for ``plan.heldout_steps`` optimiser steps and each kept at its best validation epoch, so
  neither side is punished for over-training a small session. The *gain* of pretraining is the
  paired difference fine-tuned minus from scratch (same seed, same session, same size);
* at the comparison point (the count nearest :data:`COMPARISON_TRIALS` training trials), from the
  largest pretraining set: the other fine-tuning protocols of ``plan.protocols`` (:data:`PROTOCOLS`),
  and the *equal-total-compute* view, a model from scratch trained for as many steps as that seed's
  pretraining took plus the fine-tuning steps. That view is a caution with its own name, not the
  comparison: a pretrained model is made once and reused, so its steps are not a new session's cost.

Scores: the four activity tasks on the held-out sessions' test trials (the same trials at every
count), the mean over seeds and held-out sessions with its 95 % interval (:mod:`mtm.stats`), each
model's share of the Bayes reference (:mod:`mtm.bayes`), and its difference from the linear baseline
fitted on the same training trials. The figure: the gain over from scratch against the held-out
session's training trials, one line per pretraining-set size, a column per masking, a row per task.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mtm.baselines import LINEAR_ROW, ORACLE_ROW, TRUE_RATES_ROW, reference_rows
from mtm.bayes import BAYES_ROW
from mtm.checkpoint import RunFolder
from mtm.data import Session
from mtm.evaluate import TASKS
from mtm.paths import safe_name
from mtm.plots import TABLE_COLUMNS
from mtm.reproduce.plan import (batches_per_epoch, epochs_for_steps, nested_pool, split_sizes, train_subset)
from mtm.reproduce.scheduler import (_run_all, default_workers, mean_rows, paired_differences, row_intervals,
                                     row_means, stamp_log)
from mtm.reproduce.tables import baseline_differences, interval_table, save_figure, write_tables
from mtm.tables import markdown_table

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
STAGED_SHARE = 0.25  # staged fine-tuning: the share of the epochs that train only the stitchers and token
#: Fine-tuning protocols: name -> what trains.
PROTOCOLS = {"full": "every weight from the start, as the reference",
             "frozen-core": "only the new session's stitchers and token",
             "staged": f"the new stitchers and token alone for the first {STAGED_SHARE:.0%} of the epochs, "
                       "then every weight"}
COMPARISON_TRIALS = 100     # the protocols and the equal-compute view are compared at the count nearest this
PRETRAIN_VALIDATIONS = 100  # validations over a pretraining run's maximum, at most (its patience counts these)
HELDOUT_VALIDATIONS = 50    # validations (and checkpoints) of a run on a held-out session: at least this many


def plan_fields(train_trials, n_trials: int, **plan) -> dict:
    """The Plan fields of a transfer study: pool sessions of ``n_trials`` trials, held-out sessions
    with the largest of ``train_trials`` to train on and the validation and test trials of an
    ``n_trials``-trial session; ``plan``: any other Plan field."""
    _, n_val, n_test = split_sizes(n_trials)
    return dict(plan, train_trials=tuple(train_trials), n_trials=n_trials,
                n_test_trials=max(train_trials) + n_val + n_test)


# Optimiser steps of the whole design (at most; pretraining stopped on a plateau takes fewer), per seed and masking:
#   P x len(pretrain_counts)                                      pretraining, P = pretrain_epochs x the largest set's
#                                                                 batches per epoch (every set gets as many steps)
# + S x n_test x (len(train_trials) x (1 + len(pretrain_counts))  held-out runs: from scratch and fine-tuned,
#                 + len(protocols) - 1)                           S = heldout_steps, the other protocols at one size
# + (P + S) x n_test                                              from scratch at equal total compute
# times 2 maskings x n_seeds. Pool sessions of 200 trials have 140 training trials: 9 batches of 16 each.
# Speed (small model, CPU): one run on one thread did 3,240 pretraining steps in 98 s (33 steps/s, MtM, 1 session
# of 64 neurons, validations included); runs on a held-out session are slower per step (an epoch of 2 or 7 batches,
# validation, then scoring): 1,000 steps in 28-33 s for temporal masking, 88-103 s for MtM. The experiment trains
# 2 runs at a time on one thread each (mtm.reproduce.scheduler.default_workers). Minutes below: at 30 steps/s
# (one stream, a busy machine) and at 60 (two quiet workers).
# Measurements behind the lengths (this world, MtM, 3 seeds, mtm.train.plateau_reached with patience 10):
# - pretraining on 4 sessions passes 0.05 validation bits per spike after about 1,000 steps and climbs until
#   about 2,900: at 1,080 steps (30 epochs) the best scores were 0.06 / 0.05 / 0.06, at most 3,240 steps
#   (90 epochs) 0.21 / 0.16 / 0.17; on 1 session seeds 0 and 1 peak at 1,700 and 1,500 steps (0.26, 0.21);
# - from scratch on a held-out session the best validation epoch comes after about 100-180 steps on 25
#   training trials and about 370 (temporal) to 950 (MtM) on 100; later epochs overfit, and more steps do not
#   lift co-smoothing (MtM on 100 trials: mean per-neuron bits per spike -0.03 / -0.09 / -0.14 after 200 /
#   1,000 / 3,000 steps).
# small: a CPU check of the whole design (3 pretraining sets, 2 held-out sizes, every protocol), not a result:
#   P = 5 x 36 = 180, S = 100: (540 + 1,000 + 280) x 6 = 10,920 steps (10,848 in whole epochs), about 6 min
#   at 30 steps/s, 3 at 60.
# book: pretraining sets of 1, 4 and 16 sessions of 400 trials (280 training: 18 batches each, 288 an epoch over
#   16), held-out sizes 25 / 50 / 100 of a 100-neuron session sharing 40 validation and 80 test trials (80 test
#   trials of 100 neurons, so that a per-neuron mean is not dominated by a few silent neurons as on 40 x 64), every
#   protocol: P = 32 x 288 = 9,216, S = 300: (27,648 + 4,200 + 9,516) x 6 = 248,184 steps at most; about 80 min on
#   the 2-core CPU with 2 workers (pretraining about 19 steps/s a worker). First run on 2026-12-07 with 8 epochs
#   (P = 2,304; benchmarks/results/transfer-book-2026-12-07): the 16-session pretraining was cut by that cap (best
#   validation still rising, 0.05 for MtM against 0.28 on 1 session; each session's stitchers see a sixteenth of
#   the steps) and its gain was below the 1-session set's. At 32 epochs (benchmarks/transfer_plateau.py, MtM,
#   RESULTS.md) the 1-session runs stop on a plateau (or reach the cap at it), the 4- and 16-session runs reach
#   0.30 and 0.20 at the cap, still rising, and every set's gain at 100 trials is +0.12 to +0.13 on co-smoothing.
# paper: a GPU.
PRESETS = {
    "small": plan_fields((25, 100), 200, n_pretrain=4, pretrain_counts=(1, 2, 4), n_test=1, n_neurons=64,
                         pretrain_epochs=5, pretrain_patience=10, heldout_steps=100,
                         protocols=("full", "frozen-core", "staged")),
    "book": plan_fields((25, 50, 100), 400, n_pretrain=16, pretrain_counts=(1, 4, 16), n_test=1,
                        n_neurons=100, pretrain_epochs=32, pretrain_patience=10, heldout_steps=300,
                        protocols=("full", "frozen-core", "staged")),
    "paper": plan_fields((100, 250, 500), 600, n_pretrain=34, pretrain_counts=(1, 10, 34), n_test=5,
                         n_neurons=300, pretrain_epochs=1000, pretrain_patience=10, heldout_steps=5000,
                         protocols=("full", "frozen-core", "staged")),
}


def check_plan(plan, pretrain: list[Session], heldout: list[Session]) -> tuple[list[int], list[int], tuple]:
    """(pretraining-set sizes, held-out training-trial counts, protocols) of ``plan``, sorted;
    ValueError naming the field for a value the sessions cannot serve."""
    counts, sizes = list(plan.pretrain_counts), list(plan.train_trials)
    if not counts or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= len(pretrain)
                         for c in counts) or len(set(counts)) < len(counts):
        raise ValueError(f"pretrain_counts: expected distinct numbers from 1 to the {len(pretrain)} pretraining "
                         f"sessions, got {tuple(plan.pretrain_counts)}")
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes) \
            or len(set(sizes)) < len(sizes):
        raise ValueError(f"train_trials: expected distinct positive numbers of training trials, got "
                         f"{tuple(plan.train_trials)}")
    if plan.heldout_steps is None:
        raise ValueError("heldout_steps: expected the optimiser steps of every run on a held-out session, got None")
    protocols = tuple(plan.protocols) or ("full",)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or len(set(protocols)) < len(protocols):
        raise ValueError(f"protocols: expected distinct names of {list(PROTOCOLS)}, got {tuple(plan.protocols)}")
    if not heldout:
        raise ValueError("n_test: expected at least one held-out session")
    for session in heldout:
        n_train = session.n_trials - sum(validation_and_test(plan, session))
        if n_train < max(sizes):
            raise ValueError(f"train_trials: up to {max(sizes)} training trials asked for; the held-out session "
                             f"{session.eid} keeps {n_train} after its validation and test trials "
                             "(more trials per held-out session: n_test_trials)")
    return sorted(counts), sorted(sizes), protocols


def validation_and_test(plan, session: Session) -> tuple[int, int]:
    """(validation, test) trials every size of a held-out session shares: those of a session of
    ``plan.n_trials`` trials (the pool's), or of the session's own trials when the plan sets none."""
    _, n_val, n_test = split_sizes(plan.n_trials or session.n_trials)
    return n_val, n_test


def comparison_point(sizes) -> int:
    """The training-trial count nearest :data:`COMPARISON_TRIALS` (the smaller on a tie)."""
    return min(sorted(sizes), key=lambda n: abs(n - COMPARISON_TRIALS))


def condition(count: int) -> str:
    return "from scratch" if count == 0 else f"{count} pretraining session{'s' if count > 1 else ''}"


def row_name(label: str, count: int, trials: int, protocol: str | None = None) -> str:
    """A model row: ``label`` pretrained on ``count`` sessions (0: from scratch) on ``trials`` training
    trials; ``protocol``: a fine-tuning protocol other than the plan's first."""
    return f"{label}, {condition(count)}{f', {protocol} fine-tuning' if protocol else ''}, {trials} trials"


def equal_compute_row(label: str, count: int, trials: int) -> str:
    return f"{label}, from scratch at equal total compute ({count} sessions' pretraining), {trials} trials"


def linear_row(trials: int) -> str:
    return f"{LINEAR_ROW}, {trials} trials"


def protocol_settings(protocol: str, epochs: int) -> dict:
    """The TrainConfig settings of a fine-tuning ``protocol`` (:data:`PROTOCOLS`) for a run of ``epochs``."""
    if protocol == "full":
        return {}
    if protocol == "frozen-core":
        return {"freeze_core": True}
    if epochs < 2:
        raise ValueError(f"heldout_steps: staged fine-tuning needs at least 2 epochs on every held-out session, "
                         f"a run has {epochs}; more steps, or fewer protocols")
    return {"staged_epochs": min(epochs - 1, max(1, round(STAGED_SHARE * epochs)))}


def pretrain_config(plan, masking: str, sessions: list[Session], largest: list[Session], seed: int):
    """Pretraining on ``sessions``: at most as many steps as ``plan.pretrain_epochs`` epochs over
    ``largest`` (to the nearest whole epoch), stopped on a plateau (``plan.pretrain_patience``
    validations). Every set is validated at the same spacing in steps (to whole epochs): one epoch
    over ``largest``, or 1 / :data:`PRETRAIN_VALIDATIONS` of the most steps if that is longer; so a
    patience is about the same number of steps for every set."""
    base = plan.train_config(masking, "pretrain")
    per_epoch = batches_per_epoch(largest, base.batch_size)
    steps = base.epochs * per_epoch
    epochs = epochs_for_steps(sessions, base.batch_size, steps)
    spacing = max(per_epoch, steps / PRETRAIN_VALIDATIONS)
    every = max(1, round(spacing / batches_per_epoch(sessions, base.batch_size)))
    return replace(base, epochs=epochs, patience=plan.pretrain_patience, eval_every=every, checkpoint_every=every,
                   seed=seed)


def heldout_config(plan, masking: str, session: Session, steps: float, seed: int, protocol: str | None = None):
    """A run on a held-out session for ``steps`` optimiser steps (to the nearest whole epoch),
    validated at least :data:`HELDOUT_VALIDATIONS` times (or every epoch) and kept at its best epoch;
    fine-tuned with ``protocol``, or from scratch (None)."""
    base = plan.train_config(masking, "single" if protocol is None else "finetune")
    epochs = epochs_for_steps([session], base.batch_size, steps)
    every = max(1, epochs // HELDOUT_VALIDATIONS)
    return replace(base, epochs=epochs, eval_every=every, checkpoint_every=every, seed=seed,
                   **(protocol_settings(protocol, epochs) if protocol else {}))


def pretraining_record(run_dir: Path, sessions: list[Session], batch_size: int) -> dict:
    """What a finished pretraining run did: epochs and optimiser steps run, whether it stopped on a
    plateau, its best epoch and validation score (from its log)."""
    log = RunFolder(run_dir).read_log()
    scored = [(float(r["val_bps"]), int(r["epoch"])) for r in log if r.get("val_bps")]
    best, best_epoch = max(scored) if scored else (float("nan"), -1)
    return {"epochs": len(log), "steps": len(log) * batches_per_epoch(sessions, batch_size),
            "stopped": bool(log and log[-1].get("stopped")), "best_epoch": best_epoch, "best_val_bps": best}


def schedule(pretrain: list[Session], levels: dict[int, list[Session]], plan, out: Path, counts, protocols):
    """(jobs, rows): the pretraining runs (longest first), then every run on a held-out session
    (``levels``: {training trials: the held-out sessions cut to them}), fine-tuning waiting for its
    pretrained model; rows = {job name: (row, seed, session id)} of the scored runs."""
    point, largest = comparison_point(levels), counts[-1]
    pretrain_jobs, heldout_jobs, rows = {}, {}, {}
    for label, masking in MASKINGS.items():
        for seed in plan.seeds:
            for count in reversed(counts):
                name = f"seed{seed}/pretrain/{masking}-{count}"
                cfg = pretrain_config(plan, masking, pretrain[:count], pretrain[:largest], seed)
                pretrain_jobs[name] = dict(sessions=pretrain[:count], cfg=cfg.to_dict(), run_dir=str(out / name))
            for trials, sessions in levels.items():
                for session in sessions:
                    where = f"t{trials}/{safe_name(session.eid)}"
                    name = f"seed{seed}/single/{masking}/{where}"
                    cfg = heldout_config(plan, masking, session, plan.heldout_steps, seed)
                    heldout_jobs[name] = dict(sessions=[session], cfg=cfg.to_dict(), run_dir=str(out / name),
                                              score=True, behavior=False)
                    rows[name] = (row_name(label, 0, trials), seed, session.eid)
                    for count in counts:
                        for protocol in protocols if (count, trials) == (largest, point) else protocols[:1]:
                            name = f"seed{seed}/finetune/{masking}-{count}/{protocol}/{where}"
                            cfg = heldout_config(plan, masking, session, plan.heldout_steps, seed, protocol)
                            heldout_jobs[name] = dict(sessions=[session], cfg=cfg.to_dict(), run_dir=str(out / name),
                                                      score=True, behavior=False,
                                                      after=f"seed{seed}/pretrain/{masking}-{count}")
                            rows[name] = (row_name(label, count, trials, None if protocol == protocols[0]
                                                   else protocol), seed, session.eid)
    return {**pretrain_jobs, **heldout_jobs}, rows


def references(pools: list[Session], sizes) -> dict[str, dict[str, float]]:
    """The reference rows, mean over the held-out sessions: the latent oracle, the Bayes reference and
    the true rates (on the test trials every size shares), and the linear baseline fitted on each
    size's training trials."""
    found: dict[str, list[dict]] = {}
    for pool in pools:
        for n in sizes:
            rows = reference_rows(train_subset(pool, n, ground_truth=n == max(sizes)), tasks=TASKS)
            for name, row in rows.items():
                found.setdefault(linear_row(n) if name == LINEAR_ROW else name, []).append(row)
    order = [ORACLE_ROW, BAYES_ROW, TRUE_RATES_ROW] + [linear_row(n) for n in sizes]
    return {name: mean_rows(found[name]) for name in order if name in found}


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Pretrain every masking on every pretraining set once per seed; fine-tune and train from scratch
    on every held-out session at every size; write the tables and the figure into ``out``. Returns
    {row: {task: mean}}, the model rows then the reference rows."""
    counts, sizes, protocols = check_plan(plan, pretrain, heldout)
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    pools = [nested_pool(s, *validation_and_test(plan, s)) for s in heldout]
    levels = {n: [train_subset(p, n) for p in pools] for n in sizes}
    pretrain = [s.replace(rates=None, truth=None) for s in pretrain]
    point, largest = comparison_point(sizes), counts[-1]
    jobs, rows = schedule(pretrain, levels, plan, out, counts, protocols)
    stamp(f"training {len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds): pretraining on "
          f"{counts} sessions, held-out sessions cut to {sizes} training trials")
    done = _run_all(jobs, workers, stamp, progress)

    batch = plan.train_config("mtm", "pretrain").batch_size
    pretraining = {(label, count, seed): pretraining_record(out / f"seed{seed}/pretrain/{masking}-{count}",
                                                            pretrain[:count], batch)
                   for label, masking in MASKINGS.items() for count in counts for seed in plan.seeds}
    equal = {}
    for label, masking in MASKINGS.items():
        for seed in plan.seeds:
            steps = pretraining[(label, largest, seed)]["steps"] + plan.heldout_steps
            for session in levels[point]:
                name = f"seed{seed}/equal-compute/{masking}-{largest}/t{point}/{safe_name(session.eid)}"
                equal[name] = dict(sessions=[session], run_dir=str(out / name), score=True, behavior=False,
                                   cfg=heldout_config(plan, masking, session, steps, seed).to_dict())
                rows[name] = (equal_compute_row(label, largest, point), seed, session.eid)
    stamp(f"training {len(equal)} runs from scratch at equal total compute")
    done.update(_run_all(equal, workers, stamp, progress))

    runs: dict[str, list[dict]] = {}
    for name, (row, seed, eid) in rows.items():
        runs.setdefault(row, []).append({"seed": seed, "session": eid, "scores": done[name]["scores"]})
    stamp("references: the oracle, the Bayes reference and the linear baseline of every size")
    models = [r for n in sizes for label in MASKINGS for r in model_rows(label, n, counts, protocols, point, largest)]
    table = {**{m: row_means(runs[m]) for m in models}, **references(pools, sizes)}
    largest_cfg = pretrain_config(plan, "mtm", pretrain[:largest], pretrain[:largest], 0)
    spacing = largest_cfg.eval_every * batches_per_epoch(pretrain[:largest], batch)
    path = write_results(table, runs, models, out, counts, sizes, protocols, pretraining, plan, pools, spacing)
    stamp(f"done; tables in {out.name}/{path.name}")
    return table


def model_rows(label: str, trials: int, counts, protocols, point: int, largest: int) -> list[str]:
    """The model rows of ``label`` at ``trials`` training trials, in the tables' order."""
    rows = [row_name(label, c, trials) for c in (0, *counts)]
    if trials == point:
        rows += [row_name(label, largest, trials, p) for p in protocols[1:]]
        rows.append(equal_compute_row(label, largest, trials))
    return rows


def comparisons(counts, sizes, protocols) -> list[tuple[str, str, str]]:
    """(label, row a, row b) of every paired difference the tables show: at each size every
    pretraining set against from scratch, the largest set against the smallest, MtM against temporal;
    at the comparison point every protocol against the first and the largest set against from
    scratch at equal total compute."""
    point, largest = comparison_point(sizes), counts[-1]
    pairs = []
    for n in sizes:
        for label in MASKINGS:
            pairs += [(f"{label}, {n} trials: {condition(c)} - from scratch", row_name(label, c, n),
                       row_name(label, 0, n)) for c in counts]
            if len(counts) > 1:
                pairs.append((f"{label}, {n} trials: {condition(largest)} - {condition(counts[0])}",
                              row_name(label, largest, n), row_name(label, counts[0], n)))
        pairs += [(f"MtM - Temporal, {n} trials, {condition(c)}", row_name("MtM (prompted)", c, n),
                   row_name("Temporal", c, n)) for c in (0, largest)]
    for label in MASKINGS:
        pairs += [(f"{label}, {point} trials: {p} - {protocols[0]} fine-tuning ({condition(largest)})",
                   row_name(label, largest, point, p), row_name(label, largest, point)) for p in protocols[1:]]
        pairs.append((f"{label}, {point} trials: {condition(largest)} - from scratch at equal total compute",
                       row_name(label, largest, point), equal_compute_row(label, largest, point)))
    return pairs


def gains(runs: dict, counts, sizes) -> dict[tuple[str, int], dict[int, dict]]:
    """{(masking label, pretraining sessions): {training trials: {task: Interval}}}: fine-tuned minus
    from scratch, paired by seed and session."""
    return {(label, c): {n: paired_differences(runs, [("gain", row_name(label, c, n), row_name(label, 0, n))])["gain"]
                         for n in sizes} for label in MASKINGS for c in counts}


def gain_tables(found: dict, sizes) -> str:
    """One Markdown table per task: a row per (masking, pretraining set), a column per size."""
    parts = []
    for task in TASKS:
        cells = {}
        for (label, count), by_size in found.items():
            cells[f"{label}, {condition(count)}"] = [
                (f"**{i.format(sign=True)}**" if i.excludes_zero else i.format(sign=True))
                for i in (by_size[n][task] for n in sizes)]
        parts.append(f"### {TABLE_COLUMNS.get(task, task)}\n\n"
                     + markdown_table([f"{n} trials" for n in sizes], cells))
    return "\n\n".join(parts)


def pretraining_table(pretraining: dict, plan) -> str:
    """A row per pretraining run (masking and set), a column per seed: epochs run of the most, the
    best epoch and its validation score, and whether it stopped on a plateau."""
    cells = {}
    for (label, count, seed), r in pretraining.items():
        cells.setdefault(f"{label}, {condition(count)}", []).append(
            f"{r['epochs']} ep., {r['steps']} steps{' (plateau)' if r['stopped'] else ''}; best ep. "
            f"{r['best_epoch']}, {r['best_val_bps']:.2f}")
    return markdown_table([f"seed {s}" for s in plan.seeds], cells)


def write_results(table, runs, models, out: Path, counts, sizes, protocols, pretraining: dict, plan,
                  pools: list[Session], spacing: int) -> Path:
    """results.md (with :func:`mtm.reproduce.tables.write_tables`), results.csv, differences.csv,
    per_session.json and the figure results.png; ``spacing``: optimiser steps between the
    pretraining runs' validations."""
    point, largest = comparison_point(sizes), counts[-1]
    intervals = {m: row_intervals(runs[m]) for m in models}
    n_val, n_test = validation_and_test(plan, pools[0])
    equal_steps = [pretraining[(label, largest, s)]["steps"] + plan.heldout_steps for label in MASKINGS
                   for s in plan.seeds]
    found = gains(runs, counts, sizes)
    equal_range = f"{min(equal_steps)}" + (f" to {max(equal_steps)}" if max(equal_steps) > min(equal_steps) else "")
    notes = " ".join([
        f"Every run on a held-out session takes {plan.heldout_steps} optimiser steps (batches of "
        f"{plan.train_config('mtm').batch_size} trials, to the nearest whole epoch) and keeps its best validation "
        f"epoch, fine-tuned ({protocols[0]}: {PROTOCOLS[protocols[0]]}) and from scratch alike.",
        f"Every size of a held-out session shares its {n_val} validation and {n_test} test trials.",
        "Pretraining: once per seed and set, reused for every held-out session and size; at most "
        f"{plan.train_config('mtm', 'pretrain').epochs} epochs over the largest set ({condition(largest)}; a "
        f"smaller set gets as many steps), stopped after {plan.pretrain_patience} validations without a better "
        f"score past the warm-up (every set validated every {spacing} optimiser steps or so).",
        f"From scratch at equal total compute: as many steps as the same seed's pretraining on {largest} sessions "
        f"plus the fine-tuning, here {equal_range}; a second view, not the comparison (a pretrained model is made "
        "once, for every new session).",
        "The paper (Fig. 4, 5 held-out IBL sessions) pretrains on 1, 10 and 34 sessions and finds MtM's "
        "fine-tuned scores rising with the pretraining set on every activity task."])
    against = {}
    for n in sizes:
        own = {m: intervals[m] for m in models if m.endswith(f", {n} trials")}
        against.update(baseline_differences(table, own, linear_row(n)))
    sections = [
        ("Gain over from scratch (same steps on the held-out session)",
         gain_tables(found, sizes) + "\n\nEach cell: the fine-tuned model's score minus the same masking's from "
         "scratch, per seed and session, mean over seeds with its 95 % interval; **bold**: the interval excludes "
         "zero."),
        ("Fine-tuning protocols", "\n".join(f"- {p}: {PROTOCOLS[p]}" for p in protocols)
         + f"\n\nThe first is used at every size; the others at {point} trials, from {condition(largest)}."),
        ("Against the linear baseline fitted on the same training trials",
         interval_table({row: {} for row in against}, against, TASKS, sign=True)
         + "\n\nEach row: the model's score minus the linear baseline's of its size (fitted once per held-out "
         "session), mean over seeds with its 95 % interval; **bold**: the interval excludes zero."),
        ("Pretraining runs", pretraining_table(pretraining, plan)
         + "\n\nEpochs run (of the most), optimiser steps, (plateau) when it stopped early; the best epoch and "
         "its validation bits per spike (mean over the pretraining sessions), whose weights are fine-tuned."),
    ]
    path = write_tables(table, runs, out, models=models, notes=notes, paper=(), columns=TASKS, sections=sections,
                        comparisons=comparisons(counts, sizes, protocols))
    equal = {label: paired_differences(runs, [("equal", row_name(label, largest, point),
                                                equal_compute_row(label, largest, point))])["equal"]
             for label in MASKINGS}
    save_figure(plot_transfer(found, equal, counts, sizes, point), out / "results.png")
    return path


def plot_transfer(found: dict, equal: dict, counts, sizes, point: int):
    """A row of panels per task, a column per masking: the gain over from scratch (bits per spike,
    95 % interval) against the held-out session's training trials (log axis), a line per
    pretraining-set size (drawn a little apart); an open diamond at the comparison point: the largest
    set against from scratch at equal total compute."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    fig, axes = plt.subplots(len(TASKS), len(MASKINGS), figsize=(7.0, 1.6 * len(TASKS) + 0.9), sharex=True,
                             sharey="row", squeeze=False, layout="constrained")
    for j, label in enumerate(MASKINGS):
        for i, task in enumerate(TASKS):
            ax = axes[i][j]
            ax.axhline(0, color="0.5", lw=0.8)
            for k, count in enumerate(counts):
                cells = [found[(label, count)][n][task] for n in sizes]
                shift = 1 + 0.04 * (k - (len(counts) - 1) / 2)  # side by side, so the intervals can be read
                ax.errorbar([n * shift for n in sizes], [c.mean for c in cells],
                            yerr=np.nan_to_num([c.half_width for c in cells]), fmt="o-", ms=3, lw=1.2, capsize=2,
                            color=f"C{k}", label=condition(count))
            cell = equal[label][task]
            ax.errorbar([point * (1 + 0.04 * (len(counts) + 1) / 2)], [cell.mean], fmt="D", ms=5, mfc="none",
                        yerr=np.nan_to_num([cell.half_width]), color="0.2", capsize=2,
                        label=f"{condition(counts[-1])} vs from scratch at equal total compute")
            ax.set_xscale("log")
            ax.set_xticks(list(sizes), [str(n) for n in sizes])
            ax.minorticks_off()
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{TABLE_COLUMNS.get(task, task)}\ngain (bits/spike)", fontsize=8)
            if i == len(TASKS) - 1:
                ax.set_xlabel("held-out session's training trials", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=7)
    return fig

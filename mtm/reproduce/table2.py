"""``mtm reproduce`` (the default experiment): the paper's Table 2 on synthetic sessions (or IBL
sessions through ONE).

The pipeline (reference notes 4.2-4.3 and 6):

1. Sessions: ``n_pretrain + n_test`` sessions; the last ``n_test`` are held out (the paper: 34
   pretraining and 5 held-out IBL sessions; the ``small`` preset: a few small synthetic ones).
2. Single-session models, trained from scratch on every held-out session: the temporal baseline and
   prompted MtM (Table 1's two key rows; Table 2's "single-session" rows), for as many optimiser
   steps on the held-out session as fine-tuning, as the paper trains them (the same script and
   epochs): a pretrained model is trained once and reused, and what it costs a new session is its
   fine-tuning. ``plan.scratch_steps="total"`` trains them for as many steps as pretraining and
   fine-tuning together instead (equal total compute, a second view).
3. Multi-session models: both maskings pretrained on the pretraining sessions, then fine-tuned on
   every held-out session (Table 2's "multi-session" rows).
4. Every model is evaluated on every held-out session's test split: co-smoothing, forward prediction,
   intra-region, inter-region (per-neuron bits per spike, NaN-mean over neurons) and behaviour
   decoding (choice accuracy, whisker motion energy R^2). Every model is trained once per seed
   (``plan.n_seeds``); a score is the mean over seeds of the mean over held-out sessions, with its
   95 % interval over seeds, and each comparison (MtM against temporal, pretrained against from
   scratch) a paired difference with its interval (:mod:`mtm.stats`).
5. Beside them: on synthetic sessions each task's oracle (:mod:`mtm.oracle`: the best score the
   task allows, with each model's share of it) and the true rates (not reachable: they include every
   neuron's private noise); the linear-regression baseline (with the decoders on the raw spikes);
   and the paper's own numbers for NDT1-stitch.

Every run folder is kept under ``out``; a finished run is reused and an interrupted one resumed, so
``mtm reproduce`` can be stopped and started again. The figure ``results.png`` draws the table.
"""

from __future__ import annotations

from pathlib import Path

from mtm.baselines import LINEAR_ROW, ORACLE_ROW, TRUE_RATES_ROW
from mtm.bayes import BAYES_ROW
from mtm.data import Session
from mtm.evaluate import TASKS
from mtm.reproduce.plan import Plan
from mtm.reproduce.scheduler import (_run_all, add_pretrain_finetune, add_single, collect, default_workers,
                                     equal_steps_note, scratch_epochs, stamp_log)
from mtm.reproduce.tables import COLUMNS, plot_runs, save_figure, write_tables

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
# 3 seeds x 10 runs within 10 minutes on a 2-core CPU (9 min 21 s measured): 2 pretraining sessions and 2
# held-out sessions of 400 trials x 80 neurons; pretraining 50 epochs (1,800 steps), fine-tuning and from scratch
# 25 epochs on the held-out session (450 steps). In one-seed trials at 60 + 30 epochs, fine-tuned MtM reached 34 %
# of the Bayes reference on co-smoothing with held-out sessions of 200 trials and 47 % with 400; those epochs with
# 3 seeds took 10 min 23 s (benchmarks/RESULTS.md)
PRESETS = {"small": dict(n_pretrain=2, n_trials=400, n_neurons=80, pretrain_epochs=50, finetune_epochs=25),
           "paper": dict(n_pretrain=34, n_test=5)}


def single_row(label: str) -> str:
    return f"Single-session, {label}"


def multi_row(label: str, n_pretrain: int) -> str:
    return f"Multi-session ({n_pretrain} pretrain), {label}"


def comparisons(n_pretrain: int) -> list[tuple[str, str, str]]:
    """(label, row a, row b) of every comparison Table 2 makes: MtM against temporal at each stage,
    pretrained against from scratch for each masking."""
    mtm, temporal = "MtM (prompted)", "Temporal"
    pairs = [("MtM - Temporal, single-session", single_row(mtm), single_row(temporal))]
    if n_pretrain:
        pairs += [("MtM - Temporal, multi-session", multi_row(mtm, n_pretrain), multi_row(temporal, n_pretrain))]
        pairs += [(f"Pretrained - from scratch, {label}", multi_row(label, n_pretrain), single_row(label))
                  for label in MASKINGS]
    return pairs


#: The words of each comparison of :func:`comparisons` in a sentence, (first model, second model), by its label.
COMPARISON_WORDS = {"MtM - Temporal, single-session": ("From scratch, MtM", "temporal masking"),
                    "MtM - Temporal, multi-session": ("After pretraining, MtM", "temporal masking"),
                    "Pretrained - from scratch, Temporal": ("Pretrained temporal masking",
                                                            "temporal masking from scratch"),
                    "Pretrained - from scratch, MtM (prompted)": ("Pretrained MtM", "MtM from scratch")}

#: A short name of each comparison of :func:`comparisons` (for names a chapter glues its numbers under).
COMPARISON_KEYS = {"MtM - Temporal, single-session": "mtm_scratch", "MtM - Temporal, multi-session": "mtm_pretrained",
                   "Pretrained - from scratch, Temporal": "pretrain_temporal",
                   "Pretrained - from scratch, MtM (prompted)": "pretrain_mtm"}


def tasks_above(differences: dict[str, dict], tasks=TASKS) -> dict[str, list[str]]:
    """{comparison: the ``tasks`` (default: the activity tasks) on which its paired difference's 95 %
    interval lies above zero}, for the paired differences of :func:`comparisons`
    (:func:`mtm.reproduce.scheduler.paired_differences`)."""
    return {label: [task for task in tasks if task in by_column and by_column[task].low > 0]
            for label, by_column in differences.items()}


def figure_labels(rows: list[str]) -> dict[str, str]:
    """Short names of the table's rows for the figure's axis: "scratch, MtM", "pretrained, temporal",
    "latent oracle", "Bayes reference", "true rates", "linear baseline"."""
    references = {ORACLE_ROW: "latent oracle", BAYES_ROW: "Bayes reference", TRUE_RATES_ROW: "true rates",
                  LINEAR_ROW: "linear baseline"}
    return {row: references.get(row) or ("pretrained, " if row.startswith("Multi") else "scratch, ")
            + ("MtM" if "MtM" in row else "temporal") for row in rows}


def run_reproduction(pretrain: list[Session], heldout: list[Session], plan: Plan, out, log=print,
                     workers: int | None = None, progress: bool = True) -> dict:
    """Train, fine-tune and evaluate everything, once per seed of the plan; returns {row name:
    {column: mean over seeds and held-out sessions}}.

    Runs go to ``workers`` processes (default :func:`default_workers`), the longest first; a
    fine-tuning run starts as soon as its pretraining is done, and each single-session or fine-tuned
    model is evaluated by the worker that trained it. With pretraining sessions, a single-session
    model is trained for as many optimiser steps as fine-tuning on its held-out session, or with
    ``plan.scratch_steps="total"`` as pretraining and fine-tuning together (:func:`scratch_epochs`).
    ``progress``: progress bars of runs trained in this process.
    """
    out = Path(out)
    stamp = stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    scratch = plan.scratch_steps or "heldout"
    pretrain_jobs, single_jobs, finetune_jobs, rows = {}, {}, {}, {}
    for label, masking in MASKINGS.items():
        pretrain_cfg, finetune_cfg = plan.train_config(masking, "pretrain"), plan.train_config(masking, "finetune")
        add_single(single_jobs, rows, heldout, plan.train_config(masking), out, masking, single_row(label), plan.seeds,
                   epochs=scratch_epochs(scratch, pretrain, pretrain_cfg, finetune_cfg))
        if pretrain:
            add_pretrain_finetune(pretrain_jobs, finetune_jobs, rows, pretrain, heldout, pretrain_cfg, finetune_cfg,
                                  out, masking, multi_row(label, len(pretrain)), plan.seeds)
    jobs = {**pretrain_jobs, **single_jobs, **finetune_jobs}  # the longest runs first
    stamp(f"training {len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds): single-session, pretraining "
          "and fine-tuning; each single-session and fine-tuned model is evaluated when it finishes")
    done = _run_all(jobs, workers, stamp, progress, references=heldout)
    table, runs = collect(done, rows, heldout, stamp)
    models = sorted(runs, key=lambda row: not row.startswith("Single"))  # single-session rows first
    table = {m: table[m] for m in models} | {r: v for r, v in table.items() if r not in models}
    notes = equal_steps_note(pretrain, heldout, plan.train_config("mtm", "pretrain"),
                             plan.train_config("mtm", "finetune"), scratch) if pretrain else ""
    table_path = write_tables(table, runs, out, models=models, notes=notes, comparisons=comparisons(len(pretrain)))
    save_figure(plot_runs(table, runs, COLUMNS, "Table 2 on synthetic sessions"), out / "results.png")
    stamp(f"done; tables in {table_path}")
    return table


run = run_reproduction

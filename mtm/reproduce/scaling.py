"""``mtm reproduce --experiment scaling``: the paper's Figs. 4 and 9, pretraining on more sessions.

Temporal and prompted MtM NDT1-stitch pretrained on the first k pretraining sessions for every k of
``plan.pretrain_counts`` (small: 1 / 3 / 8; paper: 1 / 10 / 34), each fine-tuned on every held-out
session and scored on every activity task and behaviour, beside the same model trained from scratch
on the held-out session alone. Every seed of the plan repeats all of it.

*Equal optimiser steps.* What is compared is the data, so every condition gets the same number of
optimiser steps: pretraining on k sessions runs as many steps as ``plan.pretrain_epochs`` epochs over
the largest set (fewer sessions: more epochs over them), fine-tuning ``plan.finetune_epochs`` epochs,
and the from-scratch model as many steps as pretraining and fine-tuning together (each to the
nearest whole epoch; with ``plan.scratch_steps="heldout"``, as many as fine-tuning). Paired
differences: each k against from scratch, and MtM against temporal at each k. The figure draws each
column against k, from scratch as a dashed line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtm.plots import TABLE_COLUMNS, tidy_layout
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps
from mtm.reproduce.scheduler import (_run_all, add_pretrain_finetune, add_single, collect, default_workers,
                                     equal_steps_note, row_intervals, scratch_epochs, stamp_log)
from mtm.reproduce.tables import COLUMNS, save_figure, write_tables

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRESETS = {"small": dict(n_pretrain=8, n_trials=200, n_neurons=64, pretrain_epochs=20, finetune_epochs=40,
                         pretrain_counts=(1, 3, 8)),
           "paper": dict(n_pretrain=34, n_test=5, pretrain_counts=(1, 10, 34))}


def condition(count: int) -> str:
    """"from scratch" (0) or "k pretraining sessions"."""
    return "from scratch" if count == 0 else f"{count} pretraining session{'s' if count > 1 else ''}"


def row_name(label: str, count: int) -> str:
    """The row of ``label`` pretrained on ``count`` sessions (0: from scratch)."""
    return f"{label}, {condition(count)}"


def comparisons(counts) -> list[tuple[str, str, str]]:
    """(label, row a, row b): every count against from scratch, and MtM against temporal at every count."""
    pairs = [(f"{label}: {condition(c)} - from scratch", row_name(label, c), row_name(label, 0))
             for label in MASKINGS for c in counts]
    return pairs + [(f"MtM - Temporal, {condition(c)}", row_name("MtM (prompted)", c), row_name("Temporal", c))
                    for c in (0, *counts)]


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Pretrain each masking on 1, ..., max(counts) sessions for equal steps, fine-tune and score on every
    held-out session, beside from-scratch models of as many steps."""
    counts = sorted(plan.pretrain_counts)
    if not counts or counts[0] < 1 or counts[-1] > len(pretrain):
        raise ValueError(f"pretrain_counts: expected numbers from 1 to the {len(pretrain)} pretraining sessions, "
                         f"got {tuple(plan.pretrain_counts)}")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    scratch = plan.scratch_steps or "total"
    pretrain_jobs, single_jobs, finetune_jobs, rows = {}, {}, {}, {}
    for label, masking in MASKINGS.items():
        largest = plan.train_config(masking, "pretrain")
        steps = largest.epochs * batches_per_epoch(pretrain[:counts[-1]], largest.batch_size)
        finetune_cfg = plan.train_config(masking, "finetune")
        add_single(single_jobs, rows, heldout, plan.train_config(masking), out, masking, row_name(label, 0),
                   plan.seeds, epochs=scratch_epochs(scratch, pretrain[:counts[-1]], largest, finetune_cfg))
        for count in reversed(counts):
            epochs = epochs_for_steps(pretrain[:count], largest.batch_size, steps)
            add_pretrain_finetune(pretrain_jobs, finetune_jobs, rows, pretrain[:count], heldout,
                                  plan.train_config(masking, "pretrain", epochs=epochs), finetune_cfg,
                                  out, f"{masking}-{count}", row_name(label, count), plan.seeds)
    jobs = {**single_jobs, **pretrain_jobs, **finetune_jobs}  # the longest first
    stamp(f"training {len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds)")
    table, runs = collect(_run_all(jobs, workers, stamp, progress, references=heldout), rows, heldout, stamp)
    models = [row_name(label, c) for label in MASKINGS for c in (0, *counts)]
    notes = ("The paper (Fig. 4, NDT1-stitch, 5 held-out IBL sessions) gives no table: MtM improves on every "
             "metric with more pretraining sessions except choice (saturating at 10 sessions); the temporal "
             "baseline saturates at 10 sessions. Its 34-session numbers are Table 2's multi-session rows. Here "
             "pretraining on fewer sessions runs more epochs over them, for the same optimiser steps. "
             + equal_steps_note(pretrain[:counts[-1]], heldout, plan.train_config("mtm", "pretrain"),
                                plan.train_config("mtm", "finetune"), scratch))
    table = {m: table[m] for m in models} | {r: v for r, v in table.items() if r not in models}
    path = write_tables(table, runs, out, models=models, notes=notes, paper=(), comparisons=comparisons(counts))
    save_figure(plot_scaling(table, counts, {m: row_intervals(runs[m]) for m in models}), out / "results.png")
    stamp(f"done; tables in {out.name}/{path.name}")
    return table


#: Each column's unit, for the figure's y-axes.
UNITS = {"choice": "accuracy", "whisker_me": "R$^2$"}


def plot_scaling(table: dict, counts, intervals: dict):
    """One panel per column, two panels a row (7 in wide): the score against the number of pretraining
    sessions, a line per masking with its 95 % interval; the from-scratch model of each masking as a
    dashed line."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    n_rows = -(-len(COLUMNS) // 2)
    fig, axes = plt.subplots(n_rows, 2, figsize=(7, 2.3 * n_rows), squeeze=False)
    for ax, column in zip(axes.flat, COLUMNS):
        for i, label in enumerate(MASKINGS):
            rows = [row_name(label, c) for c in counts]
            ax.errorbar(counts, [table[r][column] for r in rows], fmt="o-", capsize=2, color=f"C{i}", label=label,
                        yerr=np.nan_to_num([intervals[r][column].half_width for r in rows]))
            ax.axhline(table[row_name(label, 0)][column], color=f"C{i}", ls="--", lw=1)
        ax.set(title=TABLE_COLUMNS.get(column, column), xscale="log", xticks=list(counts),
               xticklabels=[str(c) for c in counts], ylabel=UNITS.get(column, "bits per spike"))
        ax.minorticks_off()
    for ax in axes[-1]:
        ax.set_xlabel("pretraining sessions")
    for ax in axes.flat[len(COLUMNS):]:
        ax.remove()
    axes[0][0].legend(fontsize=8, frameon=False, title="dashed: from scratch", title_fontsize=8)
    tidy_layout(fig)
    return fig

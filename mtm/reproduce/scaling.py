"""``mtm reproduce --experiment scaling``: the paper's Figs. 4 and 9, pretraining on more sessions.

Temporal and prompted MtM NDT1-stitch pretrained on the first k pretraining sessions for every k of
``plan.pretrain_counts`` (small: 1 / 3 / 8; paper: 1 / 10 / 34), each fine-tuned on every held-out
session and scored on every activity task and behaviour. The figure draws each column against k.
"""

from __future__ import annotations

from pathlib import Path

from mtm.plots import TABLE_COLUMNS, tidy_layout
from mtm.reproduce.scheduler import _run_all, add_pretrain_finetune, collect, default_workers, stamp_log
from mtm.reproduce.tables import COLUMNS, save_figure, write_tables

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRESETS = {"small": dict(n_pretrain=8, n_trials=200, n_neurons=64, pretrain_epochs=60, finetune_epochs=60,
                         pretrain_counts=(1, 3, 8)),
           "paper": dict(n_pretrain=34, n_test=5, pretrain_counts=(1, 10, 34))}


def row_name(label: str, count: int) -> str:
    return f"{label}, {count} pretraining session{'s' if count > 1 else ''}"


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Pretrain each masking on 1, ..., max(counts) sessions, fine-tune and score on every held-out one."""
    counts = sorted(plan.pretrain_counts)
    if not counts or counts[0] < 1 or counts[-1] > len(pretrain):
        raise ValueError(f"pretrain_counts: expected numbers from 1 to the {len(pretrain)} pretraining sessions, "
                         f"got {tuple(plan.pretrain_counts)}")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    pretrain_jobs, jobs, rows = {}, {}, {}
    for count in reversed(counts):  # the longest pretraining first
        for label, masking in MASKINGS.items():
            add_pretrain_finetune(pretrain_jobs, jobs, rows, pretrain[:count], heldout,
                                  plan.train_config(masking, "pretrain"), plan.train_config(masking, "finetune"),
                                  out, f"{masking}-{count}", row_name(label, count))
    stamp(f"training {len(pretrain_jobs) + len(jobs)} runs ({workers} at a time)")
    table, per_session = collect(_run_all({**pretrain_jobs, **jobs}, workers, stamp, progress), rows, heldout, stamp)
    models = [row_name(label, c) for label in MASKINGS for c in counts]
    notes = ("The paper (Fig. 4, NDT1-stitch, 5 held-out IBL sessions) gives no table: MtM improves on every "
             "metric with more pretraining sessions except choice (saturating at 10 sessions); the temporal "
             "baseline saturates at 10 sessions. Its 34-session numbers are Table 2's multi-session rows.")
    table = {m: table[m] for m in models} | {r: v for r, v in table.items() if r not in models}
    path = write_tables(table, per_session, out, models=models, notes=notes, paper=())
    save_figure(plot_scaling(table, counts), out / "results.png")
    stamp(f"done; tables in {path}")
    return table


def plot_scaling(table: dict, counts):
    """One panel per column: the score against the number of pretraining sessions, a line per masking."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(2.8 * len(COLUMNS), 3.0))
    for ax, column in zip(axes, COLUMNS):
        for label in MASKINGS:
            ax.plot(counts, [table[row_name(label, c)][column] for c in counts], "o-", label=label)
        ax.set(title=TABLE_COLUMNS.get(column, column), xlabel="pretraining sessions", xscale="log",
               xticks=list(counts), xticklabels=[str(c) for c in counts])
    axes[0].legend(fontsize=7, frameon=False)
    tidy_layout(fig)
    return fig

"""``mtm reproduce --experiment mask-ratio``: the paper's Table 7, the masking probability.

NDT1 trained from scratch on every held-out session with temporal, neuron and intra-region masking
and prompted MtM, each at every ratio of ``plan.ratios`` (0.1 / 0.3 / 0.6). Inside MtM the ratio
applies to the neuron and intra-region schemes; causal keeps 0.6 and inter-region masks a whole region
(:func:`mtm.masking.training_ratio`). Every model is trained for the same epochs on the same session.
At each ratio prompted MtM is compared with each scheme as a paired difference. The figure draws
each activity task against the ratio, with its interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtm.evaluate import TASKS
from mtm.plots import tidy_layout
from mtm.reproduce.paper import PAPER_TABLE7
from mtm.reproduce.scheduler import _run_all, add_single, collect, default_workers, row_intervals, stamp_log
from mtm.reproduce.tables import SELECTED_SESSION_NOTE, save_figure, write_tables

#: row label (the paper's) -> (masking, prompted)
MASKINGS = {"Temporal (baseline)": ("temporal", False), "Neuron": ("neuron", False),
            "Intra-region": ("intra-region", False), "MtM (prompted)": ("mtm", True)}
PRESETS = {"small": dict(n_pretrain=0, n_trials=200, n_neurons=64, epochs=40, ratios=(0.1, 0.3, 0.6)),
           "paper": dict(n_pretrain=0, n_test=5, ratios=(0.1, 0.3, 0.6))}


def row_name(label: str, ratio: float) -> str:
    return f"{label}, ratio {ratio:g}"


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Train and score every masking at every ratio on every held-out session (``pretrain`` unused)."""
    if not plan.ratios:
        raise ValueError("ratios: the mask-ratio experiment needs at least one ratio")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    jobs, rows = {}, {}
    for label, (masking, prompted) in MASKINGS.items():
        for ratio in plan.ratios:
            add_single(jobs, rows, heldout, plan.train_config(masking, prompted=prompted, mask_ratio=ratio), out,
                       f"{masking}-{ratio:g}", row_name(label, ratio), plan.seeds)
    stamp(f"training {len(jobs)} single-session runs ({workers} at a time)")
    table, runs = collect(_run_all(jobs, workers, stamp, progress, references=heldout), rows, heldout, stamp)
    paper = {row_name(label, ratio): PAPER_TABLE7[label][ratio]
             for label in MASKINGS for ratio in (0.1, 0.3, 0.6)}
    comparisons = [(f"MtM (prompted) - {label}, ratio {ratio:g}", row_name("MtM (prompted)", ratio),
                    row_name(label, ratio)) for ratio in plan.ratios for label in MASKINGS if label != "MtM (prompted)"]
    path = write_tables(table, runs, out, comparisons=comparisons,
                        notes=SELECTED_SESSION_NOTE + " MtM's causal scheme keeps its ratio 0.6 and inter-region "
                        "masks a whole region at every ratio.",
                        paper=(("The paper, Table 7: NDT1 single-session, one selected IBL session", paper),))
    save_figure(plot_ratios(table, plan.ratios, {m: row_intervals(records) for m, records in runs.items()}),
                out / "results.png")
    stamp(f"done; tables in {path}")
    return table


def plot_ratios(table: dict, ratios, intervals: dict):
    """One panel per activity task: bits per spike against the masking ratio, a line per masking,
    with its interval ({row: {column: Interval}}) as error bars."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    fig, axes = plt.subplots(1, len(TASKS), figsize=(3.2 * len(TASKS), 3.0))
    for ax, task in zip(axes, TASKS):
        for label in MASKINGS:
            ax.errorbar(ratios, [table[row_name(label, r)][task] for r in ratios],
                        yerr=np.nan_to_num([intervals[row_name(label, r)][task].half_width for r in ratios]),
                        fmt="o-", capsize=2,
                        label=label)
        ax.set(title=task, xlabel="mask ratio", xticks=list(ratios))
    axes[0].set_ylabel("bits per spike")
    axes[0].legend(fontsize=7, frameon=False)
    tidy_layout(fig)
    return fig

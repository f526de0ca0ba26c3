"""The one table writer every experiment shares: results.md (this run beside the paper's numbers,
the reference rows and each model's share of the oracle), results.csv, per_session.json and the
experiment's figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mtm.atomic import atomic_write
from mtm.baselines import LINEAR_ROW, ORACLE_ROW, REFERENCE_NOTE, TRUE_RATES_ROW
from mtm.bayes import BAYES_ROW
from mtm.evaluate import TASKS
from mtm.plots import TABLE_COLUMNS, oracle_share_table, results_table, tidy_layout
from mtm.reproduce.paper import PAPER_TABLE2
from mtm.reproduce.plan import BEHAVIOR_KEYS
from mtm.tables import write_scores_csv

REFERENCE_ROWS = (ORACLE_ROW, BAYES_ROW, TRUE_RATES_ROW, LINEAR_ROW)
COLUMNS = list(TASKS) + list(BEHAVIOR_KEYS)
SELECTED_SESSION_NOTE = ("The paper scored its ablations on one selected IBL session; here every score is the "
                         "mean over the held-out synthetic sessions.")


def results_markdown(table: dict, models: list[str], columns=None) -> str:
    """This run's table, its reference rows explained, and each model's share of the oracle."""
    columns = COLUMNS if columns is None else list(columns)
    markdown = (results_table(table, columns) + "\n\nActivity: bits per spike (per-neuron, NaN-mean). "
                "Choice: accuracy. Whisker ME: R^2. " + REFERENCE_NOTE + "\n")
    activity = [c for c in columns if c in TASKS]
    if ORACLE_ROW in table and activity:
        markdown += ("\n### Share of the oracle (activity tasks)\n\n"
                     + oracle_share_table({m: table[m] for m in models}, table[ORACLE_ROW], activity) + "\n")
    return markdown


def write_tables(table: dict, per_session: dict, out: Path, models: list[str] | None = None,
                 paper=(("The paper, NDT1-stitch, 5 held-out IBL sessions (Table 2)", PAPER_TABLE2),),
                 columns=None, notes: str = "", sections=()) -> Path:
    """results.md (ours beside the paper's), results.csv and per_session.json in ``out``.

    ``models``: the rows that are trained models (default: those of ``per_session``); ``paper``:
    (title, {row: {column: value}}) of the paper's tables to show; ``notes``: a paragraph under this
    run's table; ``sections``: further (title, markdown) sections."""
    out = Path(out)
    columns = COLUMNS if columns is None else list(columns)
    models = list(per_session) if models is None else models
    markdown = "## This run (mean over held-out sessions)\n\n" + results_markdown(table, models, columns)
    if notes:
        markdown += "\n" + notes.strip() + "\n"
    for title, body in sections:
        markdown += f"\n## {title}\n\n{body.strip()}\n"
    for title, rows in paper:
        shown = [c for c in columns if any(c in r for r in rows.values())]
        markdown += f"\n## {title}\n\n" + results_table(rows, shown) + "\n"

    write_scores_csv(out / "results.csv", table, columns)
    atomic_write(out / "per_session.json", lambda tmp: Path(tmp).write_text(json.dumps(per_session, indent=1)))
    return atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(markdown))


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure atomically (PNG, 120 dpi) and close it."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    written = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return written


def plot_table(table: dict, rows: list[str], columns, title: str = ""):
    """One panel per column: a bar per row (models, then reference rows), the paper's column order."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    columns = list(columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 0.35 * len(rows) + 1.6), sharey=True,
                             squeeze=False)
    for ax, column in zip(axes[0], columns):
        values = np.array([table[r].get(column, np.nan) for r in rows])
        ax.barh(np.arange(len(rows)), np.nan_to_num(values),
                color=["0.6" if r in REFERENCE_ROWS else "C0" for r in rows])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(TABLE_COLUMNS.get(column, column), fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(np.arange(len(rows)), rows, fontsize=7)
    axes[0][0].invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=10)
    tidy_layout(fig)
    return fig

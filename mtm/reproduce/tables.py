"""The one table writer every experiment shares: results.md (this run, each model row a mean over
seeds with its 95 % interval, beside the reference rows, each model's share of the Bayes reference, the
paired differences of the comparisons the experiment makes and the paper's numbers), results.csv,
differences.csv, per_session.json (every run's scores, by seed and session) and the figure."""

from __future__ import annotations

import json
from pathlib import Path


from mtm.atomic import atomic_write
from mtm.baselines import LINEAR_ROW, ORACLE_ROW, REFERENCE_NOTE, TRUE_RATES_ROW
from mtm.bayes import BAYES_ROW
from mtm.evaluate import TASKS
from mtm.plots import TABLE_COLUMNS, oracle_share_table, paper_row, plot_bar_panels, results_table
from mtm.reproduce.paper import PAPER_TABLE2
from mtm.reproduce.plan import BEHAVIOR_KEYS
from mtm.reproduce.scheduler import paired_differences, row_intervals
from mtm.stats import minus_fixed
from mtm.tables import markdown_table, score_cell, write_scores_csv

REFERENCE_ROWS = (ORACLE_ROW, BAYES_ROW, TRUE_RATES_ROW, LINEAR_ROW)
#: The reference rows' names on a figure's axis (the tables keep the full names, which say what each is).
REFERENCE_LABELS = {ORACLE_ROW: "Latent oracle (upper bound)", BAYES_ROW: "Bayes reference",
                    TRUE_RATES_ROW: "True rates (not reachable)", LINEAR_ROW: "Linear baseline"}
COLUMNS = list(TASKS) + list(BEHAVIOR_KEYS)
SELECTED_SESSION_NOTE = ("The paper scored its ablations on one selected IBL session; here every score is the "
                         "mean over the held-out synthetic sessions.")


def interval_table(table: dict, intervals: dict, columns, sign: bool = False, digits: int = 2) -> str:
    """A Markdown table of ``table``'s rows: a row of ``intervals`` {row: {column: Interval}} as
    "mean ± half-width" (with ``sign``: "+0.10 ± 0.04", bold when the interval excludes zero), any
    other row as its plain value; ``digits`` decimals."""
    def cell(name: str, column: str) -> str:
        interval = intervals.get(name, {}).get(column)
        if interval is None:
            return score_cell(table[name].get(column), digits)
        text = interval.format(digits, sign=sign)
        return f"**{text}**" if sign and interval.excludes_zero else text

    return markdown_table([TABLE_COLUMNS.get(c, c) for c in columns],
                          {name: [cell(name, c) for c in columns] for name in table})


def baseline_differences(table: dict, intervals: dict, baseline: str = LINEAR_ROW) -> dict:
    """{model row: {column: model - ``baseline`` with its 95 % interval}} for the rows of ``intervals``
    ({row: {column: Interval}}): the baseline is fitted once per held-out session, the same for every
    seed, so each difference is the model's interval shifted (:func:`mtm.stats.minus_fixed`)."""
    if baseline not in table:
        raise ValueError(f"baseline: expected a row of the table, got {baseline!r}")
    return {row: {column: minus_fixed(interval, table[baseline][column]) for column, interval in by_column.items()
                  if column in table[baseline]} for row, by_column in intervals.items()}


def results_markdown(table: dict, models: list[str], columns=None, intervals: dict | None = None) -> str:
    """This run's table (``intervals``: {model row: {column: Interval}}), its reference rows
    explained, and each model's share of the Bayes reference (synthetic sessions)."""
    columns = COLUMNS if columns is None else list(columns)
    body = results_table(table, columns) if not intervals else interval_table(table, intervals, columns)
    markdown = (body + "\n\nActivity: bits per spike (per-neuron, NaN-mean). "
                "Choice: accuracy. Whisker ME: R^2. " + REFERENCE_NOTE + "\n")
    activity = [c for c in columns if c in TASKS]
    if BAYES_ROW in table and activity:
        markdown += ("\n### Share of the Bayes reference (activity tasks)\n\n"
                     + oracle_share_table({m: table[m] for m in models}, table[BAYES_ROW], activity) + "\n")
    return markdown


def write_tables(table: dict, per_session: dict, out: Path, models: list[str] | None = None,
                 paper=(("The paper, NDT1-stitch, 5 held-out IBL sessions (Table 2)", PAPER_TABLE2),),
                 columns=None, notes: str = "", sections=(), comparisons=()) -> Path:
    """results.md (ours beside the paper's), results.csv, differences.csv and per_session.json in ``out``.

    ``per_session``: {model row: records of :func:`mtm.reproduce.scheduler.collect`}; ``models``: the
    rows that are trained models (default: those of ``per_session``); ``paper``: (title, {row:
    {column: value}}) of the paper's tables to show; ``notes``: a paragraph under this run's table;
    ``sections``: further (title, markdown) sections; ``comparisons``: (label, row a, row b), each
    shown as the paired difference a - b with its interval."""
    out = Path(out)
    columns = COLUMNS if columns is None else list(columns)
    models = list(per_session) if models is None else models
    intervals = {m: row_intervals(per_session[m]) for m in models}
    n_seeds = max((len({r["seed"] for r in per_session[m]}) for m in models), default=0)
    markdown = (f"## This run (mean over {n_seeds} training seed{'s' if n_seeds != 1 else ''} and the held-out "
                "sessions, ± 95 % interval)\n\n" + results_markdown(table, models, columns, intervals)
                + f"\n± : half-width of the 95 % t-interval over the {n_seeds} seeds' means over the held-out sessions "
                "(mtm.stats: a seed is one repetition of the experiment; the sessions are fixed).\n")
    if notes:
        markdown += "\n" + notes.strip() + "\n"
    differences = paired_differences(per_session, comparisons)
    if differences:
        markdown += ("\n## Paired differences (same seed, same session)\n\n"
                     + interval_table({label: {} for label in differences}, differences, columns, sign=True)
                     + "\n\nEach row: the first model's score minus the second's, per seed and session, mean over "
                     "seeds with its 95 % interval; **bold**: the interval excludes zero.\n")
    if LINEAR_ROW in table:
        against = baseline_differences(table, intervals)
        markdown += ("\n## Against the linear baseline\n\n"
                     + interval_table({row: {} for row in against}, against, columns, sign=True)
                     + "\n\nEach row: the model's score minus the linear baseline's (fitted once per held-out session, "
                     "the same for every seed), mean over seeds with its 95 % interval; **bold**: the interval "
                     "excludes zero.\n")
    for title, body in sections:
        markdown += f"\n## {title}\n\n{body.strip()}\n"
    for title, rows in paper:
        shown = [c for c in columns if any(c in r for r in rows.values())]
        markdown += f"\n## {title}\n\n" + results_table(rows, shown) + "\n"

    bounds = [f"{c} {end}" for c in columns for end in ("low", "high")]

    def with_bounds(means: dict, rows: dict) -> dict:
        """{row: {column: mean, "<column> low": ..., "<column> high": ...}} where ``rows`` has intervals."""
        return {name: {**row, **{f"{c} {end}": getattr(interval, end) for c, interval in rows.get(name, {}).items()
                                 for end in ("low", "high")}} for name, row in means.items()}

    write_scores_csv(out / "results.csv", with_bounds(table, intervals), columns + bounds)
    if differences:
        means = {label: {c: i.mean for c, i in row.items()} for label, row in differences.items()}
        write_scores_csv(out / "differences.csv", with_bounds(means, differences), columns + bounds)
    atomic_write(out / "per_session.json", lambda tmp: Path(tmp).write_text(json.dumps(per_session, indent=1)))
    return atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(markdown))


def read_runs(out) -> dict[str, list[dict]]:
    """The per_session.json an experiment wrote into ``out``: {model row: [{"seed", "session",
    "scores"}]}, every scored run (for :func:`mtm.reproduce.scheduler.row_intervals` and
    :func:`mtm.reproduce.scheduler.paired_differences`)."""
    path = Path(out) / "per_session.json"
    if not path.is_file():
        raise ValueError(f"out: expected an experiment's folder holding per_session.json, got {Path(out).name!r} "
                         "without it (run the experiment first)")
    return json.loads(path.read_text())


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure atomically (PNG, 120 dpi) and close it."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    written = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return written


def plot_table(table: dict, rows: list[str], columns, title: str = "", intervals: dict | None = None,
               labels: dict[str, str] | None = None, marks: dict | None = None, mark_label: str = ""):
    """An experiment's table as bars (:func:`mtm.plots.plot_bar_panels`: a grid of panels at the content
    column's width, units, value labels, zero on every axis): the models in blue, the reference rows
    in grey, ``intervals`` ({row: {column: Interval}}) drawn as error bars of their half-widths;
    ``labels``: {row: shorter name on the axis} (default: the row's name); ``marks``: {row: {column:
    value}} drawn as hollow circles named ``mark_label`` (e.g. :func:`paper_marks`)."""
    name = {row: (labels or {}).get(row, row) for row in rows}
    errors = {name[row]: {column: interval.half_width for column, interval in by_column.items()}
              for row, by_column in (intervals or {}).items() if row in name}
    colors = {name[row]: "0.6" if row in REFERENCE_ROWS else "C0" for row in rows}
    return plot_bar_panels({name[row]: table[row] for row in rows}, [name[row] for row in rows], columns, title,
                           errors=errors, colors=colors,
                           marks={name[row]: by_column for row, by_column in (marks or {}).items() if row in name},
                           mark_label=mark_label)


def paper_marks(rows: list[str], paper_table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{row: the paper's values for it} for the rows the paper has (:func:`mtm.plots.paper_row`: "Multi-session
    (2 pretrain), X" is the paper's "Multi-session, X"), to draw beside ours with :func:`plot_table`."""
    return {row: paper_row(row, paper_table) for row in rows if paper_row(row, paper_table)}


def plot_runs(table: dict, runs: dict, columns=None, title: str = "", labels: dict[str, str] | None = None):
    """An experiment's table drawn from its runs (:func:`plot_table`): the model rows (the rows of
    ``table`` that ``runs``, {row: [{"seed", "session", "scores"}]}, holds, in the table's order) with
    their 95 % intervals over seeds, then the reference rows the table has, under the short names of
    :data:`REFERENCE_LABELS`; ``labels``: further {row: name on the axis}."""
    models = [row for row in table if row in runs]
    if not models:
        raise ValueError(f"runs: expected runs of at least one row of the table, got rows {list(runs)}")
    rows = models + [row for row in REFERENCE_ROWS if row in table]
    return plot_table(table, rows, COLUMNS if columns is None else columns, title,
                      {m: row_intervals(runs[m]) for m in models}, {**REFERENCE_LABELS, **(labels or {})})

"""Figures and tables shared by the chapters and ``mtm evaluate``: rasters, PSTHs, per-neuron
comparisons and result tables. Every function takes arrays (or a Session) and an optional matplotlib
``Axes``, and returns the figure or table it made."""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from mtm.checkpoint import kept_epochs, log_column
from mtm.data import synthetic_session
from mtm.evaluate import TASKS, scored_bins, task_configurations
from mtm.masking import MTM_SCHEMES, mask_batch
from mtm.tables import markdown_table, score_cell

TABLE_COLUMNS = {"co-smooth": "Co-smooth", "forward-pred": "Forward pred", "intra-region": "Intra-region",
                 "inter-region": "Inter-region", "choice": "Choice", "whisker_me": "Whisker ME",
                 "wheel_speed": "Wheel speed"}

#: Each table column's name in a sentence ("MtM is above the baseline on co-smoothing").
COLUMN_WORDS = {"co-smooth": "co-smoothing", "forward-pred": "forward prediction", "intra-region": "intra-region",
                "inter-region": "inter-region", "choice": "choice", "whisker_me": "whisker motion energy",
                "wheel_speed": "wheel speed"}

#: The unit of each table column, for axis labels.
COLUMN_UNITS = {"co-smooth": "bits/spike", "forward-pred": "bits/spike", "intra-region": "bits/spike",
                "inter-region": "bits/spike", "choice": "accuracy", "whisker_me": "$R^2$", "wheel_speed": "$R^2$"}

#: Width (inches) of a figure that fills the book's content column (about 700 px) at the notebooks'
#: 100 dpi, so its fonts show at their own size; the multi-panel figures below are drawn this wide.
COLUMN_WIDTH = 7.0
#: At most this many panels in one row of a figure at :data:`COLUMN_WIDTH`.
PANELS_PER_ROW = 3


#: The house palette: seaborn's colour-blind-safe one, in every figure of the book.
PALETTE = "colorblind"


def use_style() -> None:
    """The book's one figure style (seaborn's ``ticks`` theme, colour-blind palette, frameless
    legends, constrained layout); every chapter calls it in its set-up cell."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", palette=PALETTE, font_scale=0.9,
                  rc={"axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
                      "figure.constrained_layout.use": True, "figure.dpi": 100, "savefig.dpi": 150,
                      "image.cmap": "viridis"})
    mpl.rcParams["axes.titlesize"] = "medium"


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def region_boundaries(regions) -> list[tuple[str, int, int]]:
    """(region, first neuron, last neuron + 1) of each contiguous run of one region label."""
    regions = np.asarray(regions)
    edges = np.flatnonzero(regions[1:] != regions[:-1]) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(regions)]
    return [(str(regions[a]), int(a), int(b)) for a, b in zip(starts, stops)]



def _label_regions(ax, regions, color: str) -> None:
    """Y axis of a neurons-by-time image: one labelled band per region, split by lines of ``color``."""
    ax.set_ylabel("neuron")
    if regions is not None:
        bands = region_boundaries(regions)
        for _, start, _ in bands[1:]:
            ax.axhline(start, color=color, lw=0.6)
        ax.set_yticks([(start + stop) / 2 for _, start, stop in bands], [name for name, _, _ in bands], fontsize=8)
        ax.set_ylabel("neurons by region")

def plot_raster(counts, regions=None, bin_size: float = 0.02, t0: float = -0.5, ax=None, title: str = "",
                vmax: float | None = None, cmap: str = "Greys", colorbar: str | None = "spikes per bin"):
    """One trial's counts (T, N) as an image: time on x, neurons on y, region bands labelled, and a
    colour bar labelled ``colorbar`` (None: no colour bar)."""
    counts = np.asarray(counts, dtype=float)
    fig, ax = _axes(ax, (7, 4))
    n_bins, n_neurons = counts.shape
    image = ax.imshow(counts.T, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest",
                      extent=(t0, t0 + n_bins * bin_size, 0, n_neurons), vmin=0,
                      vmax=vmax if vmax is not None else max(1.0, np.percentile(counts, 99)))
    _label_regions(ax, regions, "tab:orange")
    ax.axvline(0.0, color="tab:blue", lw=0.8, ls="--")
    ax.set_xlabel("time from stimulus onset (s)")
    ax.set_title(title)
    if colorbar:
        fig.colorbar(image, ax=ax, label=colorbar, fraction=0.04, pad=0.01)
    return fig, image


def plot_psth(counts, bin_size: float = 0.02, t0: float = -0.5, ax=None, label: str = "", color=None,
              smooth: float = 0.0):
    """Trial-averaged firing rate (Hz) of counts (K, T) or (K, T, N) summed over neurons' mean."""
    counts = np.asarray(counts, dtype=float)
    rate = counts.mean(axis=0) / bin_size
    if rate.ndim == 2:
        rate = rate.mean(axis=1)
    if smooth:
        from scipy.ndimage import gaussian_filter1d

        rate = gaussian_filter1d(rate, smooth)
    fig, ax = _axes(ax)
    times = t0 + (np.arange(len(rate)) + 0.5) * bin_size
    ax.plot(times, rate, label=label, color=color)
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("time from stimulus onset (s)")
    ax.set_ylabel("firing rate (Hz)")
    return fig


def plot_bps_scatter(bps_x, bps_y, label_x: str, label_y: str, task: str = "", ax=None, rates_hz=None):
    """The paper's per-neuron comparison: one point per neuron, bits per spike of two models."""
    bps_x, bps_y = np.asarray(bps_x, float), np.asarray(bps_y, float)
    keep = np.isfinite(bps_x) & np.isfinite(bps_y)
    fig, ax = _axes(ax, (4.2, 4))
    if rates_hz is None:
        ax.scatter(bps_x[keep], bps_y[keep], s=8, alpha=0.6, color="tab:blue")
    else:
        points = ax.scatter(bps_x[keep], bps_y[keep], s=8, alpha=0.7, c=np.log10(np.asarray(rates_hz)[keep] + 1e-2),
                            cmap="viridis")
        fig.colorbar(points, ax=ax, label="log10 firing rate (Hz)")
    low = np.percentile(np.r_[bps_x[keep], bps_y[keep]], 1) if keep.any() else -1
    high = max(np.r_[bps_x[keep], bps_y[keep]].max(initial=1.0), 0.5)
    low = min(low, 0.0)
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"{label_x} (bits/spike)")
    ax.set_ylabel(f"{label_y} (bits/spike)")
    above = np.mean(bps_y[keep] > bps_x[keep]) if keep.any() else math.nan
    ax.set_title(f"{task}\n{above:.0%} of neurons above the diagonal" if task else "", fontsize=10)
    return fig


def plot_predicted_vs_true(spikes, rates, regions, region: str, trial: int = 0, bin_size: float = 0.02,
                           t0: float = -0.5, title: str = ""):
    """One region's true counts and predicted rates in one trial, side by side on one colour scale (one
    colour bar below them), and under them the region's PSTH (mean over trials and the region's
    neurons, Hz, from zero), true and predicted, on one axis; a figure of the content column's width.

    ``spikes`` and each prediction: (K, T, N). ``rates``: one prediction, or {label: prediction} of
    up to ``PANELS_PER_ROW - 1`` models, which are then drawn on the same scales and compared on the
    one PSTH axis.
    """
    import matplotlib.pyplot as plt

    regions = np.asarray(regions)
    inside = regions == region
    if not inside.any():
        raise ValueError(f"region: {region!r} is not among {sorted(set(regions.tolist()))}")
    predictions = dict(rates) if isinstance(rates, dict) else {"predicted": rates}
    if not 1 <= len(predictions) <= PANELS_PER_ROW - 1:
        raise ValueError(f"rates: expected one prediction or a dict of 1 to {PANELS_PER_ROW - 1}, "
                         f"got {len(predictions)}")
    spikes = np.asarray(spikes, float)[..., inside]
    predictions = {label: np.asarray(r, float)[..., inside] for label, r in predictions.items()}
    for label, predicted in predictions.items():
        if predicted.shape != spikes.shape:
            raise ValueError(f"rates: {label!r} has shape {predicted.shape} in the region, the spikes {spikes.shape}")
    fig = plt.figure(figsize=(COLUMN_WIDTH, 5.8), layout="constrained")
    grid = fig.add_gridspec(2, 1 + len(predictions), height_ratios=[1.3, 1])
    rasters = [fig.add_subplot(grid[0, i]) for i in range(1 + len(predictions))]
    vmax = max(1.0, np.percentile(spikes[trial], 99))
    _, image = plot_raster(spikes[trial], ax=rasters[0], bin_size=bin_size, t0=t0,
                           title=f"true counts, trial {trial}", vmax=vmax, colorbar=None)
    for ax, (label, predicted) in zip(rasters[1:], predictions.items()):
        plot_raster(predicted[trial], ax=ax, bin_size=bin_size, t0=t0, title=f"{label}: rate", vmax=vmax,
                    colorbar=None)
        ax.sharey(rasters[0])
        ax.set_ylabel("")
        ax.tick_params(labelleft=False)
    rasters[0].set_ylabel(f"{region} neurons")
    fig.colorbar(image, ax=rasters, orientation="horizontal", location="bottom", shrink=0.6, aspect=40,
                 label="spikes per bin (one scale for all)")
    psth = fig.add_subplot(grid[1, :])
    plot_psth(spikes, bin_size, t0, ax=psth, label="true", color="black", smooth=1.0)
    colors = ["tab:orange"] if len(predictions) == 1 else [f"C{i}" for i in range(len(predictions))]
    for (label, predicted), color in zip(predictions.items(), colors):
        plot_psth(predicted, bin_size, t0, ax=psth, label=label, color=color)
    psth.set_ylim(bottom=0)
    psth.legend(frameon=False, fontsize=9, loc="lower center", ncol=1 + len(predictions))
    psth.set_title(f"{region} PSTH: mean over trials and the region's neurons")
    for ax in (*rasters, psth):
        ax.set_xlabel("time from stimulus onset (s)" if ax is psth or len(rasters) < 3 else "time (s)")
    if title:
        fig.suptitle(f"{title} ({region})" if region not in title else title)
    return fig


def results_table(rows: dict[str, dict[str, float]], columns=None, digits: int = 2) -> str:
    """A Markdown table: one row per model, one column per task (bits/spike, accuracy or R^2)."""
    columns = columns or [c for c in TABLE_COLUMNS if any(c in r for r in rows.values())]
    return markdown_table([TABLE_COLUMNS.get(c, c) for c in columns],
                          {name: [score_cell(row.get(c, math.nan), digits) for c in columns]
                           for name, row in rows.items()})


def oracle_share_table(rows: dict[str, dict[str, float]], oracle: dict[str, float], columns, digits: int = 2) -> str:
    """A Markdown table of each model's score as a share of the task's oracle: "0.25 of 0.73 (34 %)"."""
    def share(value, best):
        if not (math.isfinite(value) and math.isfinite(best)) or best <= 0:
            return "–"
        return f"{value:.{digits}f} of {best:.{digits}f} ({100 * value / best:.0f} %)"

    return markdown_table([TABLE_COLUMNS.get(c, c) for c in columns],
                          {name: [share(row.get(c, math.nan), oracle.get(c, math.nan)) for c in columns]
                           for name, row in rows.items()})


def tidy_layout(fig) -> None:
    """Lay a figure out: by its own layout engine where it has one (the book's style turns constrained
    layout on), with ``tight_layout`` otherwise; never both, which only warns."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()


#: The marker of :func:`plot_bar_panels`' marks (another source's value for a row, e.g. the paper's): a hollow
#: circle, its size in points.
MARK_STYLE = dict(marker="o", ls="none", mfc="white", mec="black", ms=5)


def plot_bar_panels(table: dict[str, dict[str, float]], rows: list[str], columns, title: str = "",
                    errors: dict[str, dict[str, float]] | None = None, colors: dict[str, str] | None = None,
                    digits: int = 2, marks: dict[str, dict[str, float]] | None = None, mark_label: str = ""):
    """Rows compared on several columns, at the content column's width: one panel per column, at most
    :data:`PANELS_PER_ROW` panels a row, a horizontal bar per row with its value written at the bar's
    end, zero always on the axis (a line at 0), the column's unit (:data:`COLUMN_UNITS`) on the x axis,
    and one x range shared by the panels of one unit, so equal differences look equal.

    ``table``: {row: {column: value}} (a missing value is no bar and "–"); ``errors``: {row: {column:
    half-width of an interval}}, drawn as error bars; ``colors``: {row: colour} (default ``C0``).
    Rows read top to bottom in the order given; the row names label the first panel of each line.

    A value label starts past the end of its error bar. ``marks``: {row: {column: value}} drawn as hollow
    circles on the row's line (another source's value for the same row, e.g. the paper's), inside the
    axis range, named ``mark_label`` in a legend under the panels; a label that would sit on its row's
    circle moves past it."""
    import matplotlib.pyplot as plt

    columns, rows = list(columns), list(rows)
    if not columns or not rows:
        raise ValueError(f"rows, columns: expected at least one of each, got {len(rows)} and {len(columns)}")
    per_row = min(PANELS_PER_ROW, len(columns))
    lines = math.ceil(len(columns) / per_row)
    fig, axes = plt.subplots(lines, per_row, figsize=(COLUMN_WIDTH, lines * (0.22 * len(rows) + 1.3)),
                             sharey=True, squeeze=False, layout="constrained")
    y = np.arange(len(rows))
    first_of_unit: dict[str, object] = {}
    placed = []  # (value label, its row's mark, side): labels to move off their circle once laid out
    for ax, column in zip(axes.flat, columns):
        values = np.array([table.get(r, {}).get(column, np.nan) for r in rows], dtype=float)
        spread = np.array([(errors or {}).get(r, {}).get(column, np.nan) for r in rows], dtype=float)
        shown = np.isfinite(values)
        ax.barh(y[shown], values[shown], xerr=np.nan_to_num(spread[shown]), error_kw=dict(lw=0.8),
                color=[(colors or {}).get(r, "C0") for r, keep in zip(rows, shown) if keep])
        ax.axvline(0, color="k", lw=0.8)
        unit = COLUMN_UNITS.get(column, "")
        if unit in first_of_unit:
            ax.sharex(first_of_unit[unit])
        else:
            first_of_unit[unit] = ax
        ax.set_title(TABLE_COLUMNS.get(column, column))
        ax.set_xlabel(unit)
        ax.tick_params(axis="x", labelsize=8)
        marked = np.array([(marks or {}).get(r, {}).get(column, np.nan) for r in rows], dtype=float)
        if np.isfinite(marked).any():
            ax.plot(marked, y, label=mark_label, **MARK_STYLE)
        for position, value, half, mark, keep in zip(y, values, np.nan_to_num(spread), marked, shown):
            sign = 1 if not keep or value >= 0 else -1
            end = value + sign * half if keep else 0.0  # past the error bar, on the bar's side of zero
            label = ax.annotate(f"{value:.{digits}f}" if keep else "\u2013", (end, position),
                                xytext=(3 * sign, 0), textcoords="offset points",
                                ha="left" if sign > 0 else "right", va="center", fontsize=7)
            label.set_in_layout(False)  # the layout does not move with the labels, so they can be placed on it
            if np.isfinite(mark):
                placed.append((label, mark, sign))
    for unit, ax in first_of_unit.items():  # zero on every axis, and room for the labels at the bars' ends
        low, high = ax.get_xlim()
        pad = 0.3 * (max(high, 0.0) - min(low, 0.0))
        ax.set_xlim(min(low, 0.0) - (pad if low < 0 else 0.0), max(high, 0.0) + pad)
    for ax in axes.flat[len(columns):]:
        ax.axis("off")
    for line in axes:
        line[0].set_yticks(y, rows, fontsize=8)
    axes[0][0].invert_yaxis()
    if title:
        fig.suptitle(title)
    if placed:
        legend = next(ax for ax in axes.flat if ax.get_legend_handles_labels()[0])
        fig.legend(*legend.get_legend_handles_labels(), loc="outside lower center", frameon=False, fontsize=8)
        _move_labels_off_marks(fig, placed)
    return fig


def _move_labels_off_marks(fig, placed) -> None:
    """Lay the figure out, then move every value label whose text box would cover its row's circle
    (or come within a point of it) past the circle, on the same side."""
    fig.canvas.draw()
    radius = (MARK_STYLE["ms"] / 2 + 1) * fig.dpi / 72  # pixels
    for label, mark, sign in placed:
        box = label.get_window_extent()
        centre = label.axes.transData.transform((mark, 0))[0]
        if box.x0 - radius <= centre <= box.x1 + radius:
            label.xy = (mark, label.xy[1])
            label.set_position((sign * (3 + MARK_STYLE["ms"] / 2), 0))


def plot_oracle_sweep(sweeps: dict[str, dict[float, dict]], defaults: dict[str, float] | None = None):
    """One panel per generator knob: each task's yardsticks (bits per spike) against the knob's value, one
    colour per task, one line style per reference (the first solid, the next dashed, ...), and the true
    rates (black, dash-dotted).

    ``sweeps``: {knob: :func:`mtm.oracle.knob_sweep` output, {value: {reference: {task: bps}, "true rates":
    bps}}}; ``defaults``: {knob: the generator's default value}, marked with a dotted grey line. Tasks whose
    curves are identical within a reference (same information) share one line, named for all of them."""
    import matplotlib.pyplot as plt

    styles = [dict(ls="-", marker="o"), dict(ls="--", marker="s", mfc="white"), dict(ls=":", marker="^")]
    colours = dict(zip(TASKS, ("tab:blue", "tab:orange", "tab:green", "tab:purple")))
    fig, axes = plt.subplots(1, len(sweeps), figsize=(min(COLUMN_WIDTH, 2.6 * len(sweeps)), 4.2),
                             layout="constrained", sharey=True, squeeze=False)
    for ax, (knob, sweep) in zip(axes[0], sweeps.items()):
        values = sorted(sweep)
        first = sweep[values[0]]
        references = [name for name in first if name != "true rates"]
        for reference, style in zip(references, styles):
            curves: dict[tuple, list[str]] = {}
            for task in first[reference]:
                curves.setdefault(tuple(round(sweep[v][reference][task], 12) for v in values), []).append(task)
            for curve, tasks in curves.items():
                label = f"{reference}: " + " = ".join(TABLE_COLUMNS.get(task, task) for task in tasks)
                ax.plot(values, curve, color=colours.get(tasks[0]), ms=4, label=label, **style)
        if "true rates" in first:
            ax.plot(values, [sweep[v]["true rates"] for v in values], color="black", ls="-.", lw=1,
                    label="true rates")
        if defaults and knob in defaults:
            ax.axvline(defaults[knob], color="grey", ls=":", lw=1)
        ax.set_xlabel(KNOB_LABELS.get(knob, knob.replace("_", " ")))
    axes[0][0].set_ylabel("bits per spike")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    return fig


#: Axis labels of the generator's knobs (:data:`mtm.oracle.KNOBS`).
KNOB_LABELS = {"private_gain": "private amplitude $s_n$", "coupling": "coupling between regions",
               "noise": "latent noise"}


def plot_loss_curves(histories: dict[str, list[dict]], key: str = "train_loss", ax=None, log_scale: bool = False):
    """Per-epoch curves of several runs (the rows of their log.csv, :func:`mtm.checkpoint.read_log`)."""
    fig, ax = _axes(ax)
    if log_scale:
        ax.set_yscale("log")
    for name, rows in histories.items():
        epochs = [int(r["epoch"]) for r in rows if key in r and r[key] not in ("", None)]
        values = [float(r[key]) for r in rows if key in r and r[key] not in ("", None)]
        ax.plot(epochs, values, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend(frameon=False)
    return fig


def psychometric(choice, contrast, block) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Fraction of counter-clockwise (-1, "rightward") choices per signed contrast, per block prior.

    Returns {block: (signed contrasts, fraction)}; ``contrast`` is signed (right positive) and
    ``block`` the prior probability of a left stimulus.
    """
    choice, contrast, block = (np.asarray(a, dtype=float) for a in (choice, contrast, block))
    curves = {}
    for prior in np.unique(block):
        in_block = block == prior
        levels = np.unique(contrast[in_block])
        curves[float(prior)] = (levels, np.array([np.mean(choice[in_block & (contrast == c)] == -1) for c in levels]))
    return curves


def plot_psychometric(choice, contrast, block, ax=None):
    """The IBL psychometric curves: P(rightward choice) against signed contrast, one line per block."""
    fig, ax = _axes(ax, (4.5, 3.5))
    colors = {0.2: "tab:orange", 0.5: "black", 0.8: "tab:blue"}
    for prior, (levels, fraction) in psychometric(choice, contrast, block).items():
        ax.plot(levels, fraction, "o-", color=colors.get(round(prior, 1)), label=f"P(left) = {prior:g}", ms=4)
    ax.set_xlabel("signed contrast (right > 0)")
    ax.set_ylabel("P(rightward choice)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False, fontsize=8)
    return fig


#: Colours of :func:`plot_mask`: visible input, hidden but not scored (context removed), scored target.
MASK_COLORS = {"visible": "white", "hidden, not scored": "0.7", "target (hidden, scored)": "tab:red"}


def plot_mask(hidden, target, regions=None, bin_size: float = 0.02, t0: float = -0.5, ax=None, title: str = "",
              legend: bool = False):
    """One trial's mask (T, N) as an image: visible entries, hidden ones, and the hidden ones scored.

    ``hidden`` and ``target`` are boolean (T, N) arrays (from :func:`mtm.masking.mask_batch`: the zeroed
    entries and the returned target mask); time on x, neurons on y, region bands labelled on the y axis
    as in :func:`plot_raster`. ``legend`` adds a frameless legend of the three colours below the axes.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    hidden, target = np.asarray(hidden, dtype=bool), np.asarray(target, dtype=bool)
    if hidden.ndim != 2 or hidden.shape != target.shape:
        raise ValueError(f"hidden, target: expected two (bins, neurons) masks of one shape, got "
                         f"{hidden.shape} and {target.shape}")
    fig, ax = _axes(ax, (5, 3.5))
    n_bins, n_neurons = hidden.shape
    state = np.where(target, 2, np.where(hidden, 1, 0))
    image = ax.imshow(state.T, aspect="auto", origin="lower", interpolation="nearest", vmin=0, vmax=2,
                      cmap=ListedColormap(list(MASK_COLORS.values())),
                      extent=(t0, t0 + n_bins * bin_size, 0, n_neurons))
    # a scored block a few neurons tall is thinner than a pixel at the column's width (300 neurons in about
    # 200 px) and may vanish in the image: drawn as a line too, so a single scored neuron shows
    scored_neurons = np.flatnonzero(target.any(axis=0))
    if 0 < len(scored_neurons) <= max(1, n_neurons // 50):
        for n in scored_neurons:
            bins = np.flatnonzero(target[:, n])
            for run in np.split(bins, np.flatnonzero(np.diff(bins) > 1) + 1):
                ax.hlines(n + 0.5, t0 + run[0] * bin_size, t0 + (run[-1] + 1) * bin_size, lw=2,
                          color=MASK_COLORS["target (hidden, scored)"])
    _label_regions(ax, regions, "black")
    ax.set_xlabel("time from stimulus onset (s)")
    ax.set_title(title)
    if legend:
        handles = [Patch(facecolor=c, edgecolor="0.4", label=label) for label, c in MASK_COLORS.items()]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False,
                  fontsize=8)
    return fig, image


def plot_causal_gaps(gaps, p: float, max_gap: int = 10, ax=None):
    """Bars: the share of causal targets whose most recent visible bin lies 1, 2, ... ``max_gap`` bins
    back (``gaps`` from :func:`mtm.masking.causal_gaps`); points: the geometric law
    ``(1 - p) p^(k - 1)`` of bins hidden independently with probability ``p``. Returns the axes."""
    _, ax = _axes(ax, figsize=(6, 3.2))
    gaps = np.asarray(gaps)
    k = np.arange(1, max_gap + 1)
    ax.bar(k, [np.mean(gaps == j) if len(gaps) else 0.0 for j in k], color="tab:red", alpha=0.7,
           label="causal targets of the batch")
    ax.plot(k, (1 - p) * p ** (k - 1), "ko-", ms=3, lw=1, label=f"geometric law, p = {p:g}")
    ax.set_xlabel("bins back to the most recent visible bin")
    ax.set_ylabel("fraction of targets")
    ax.set_xticks(k)
    ax.legend(frameon=False)
    return ax


def plot_lr_schedule(histories: dict[str, list[dict]], ax=None):
    """The learning rate of each run at the end of every epoch, read from its log (``lr`` column),
    on a log scale: the one-cycle schedule as the runs actually stepped it."""
    schedules = {name: [(r["epoch"], r["lr"]) for r in rows] for name, rows in histories.items()}
    if len(histories) > 1 and len(set(map(tuple, schedules.values()))) == 1:  # one schedule: one line
        histories = {" = ".join(histories): next(iter(histories.values()))}
    fig = plot_loss_curves(histories, "lr", ax=ax, log_scale=True)
    (ax or fig.axes[0]).set_ylabel("learning rate (end of epoch)")
    return fig


#: The colour of the top-50-neuron R^2 in :func:`plot_selection_criteria` (the captions name it).
R2_COLOUR = "tab:purple"


def plot_selection_criteria(history: list[dict]):
    """The two selection scores of one run at every epoch, read from its log rows (:func:`mtm.checkpoint.read_log`):
    validation bits per spike (black, left axis) and the top-50-neuron single-trial R^2 (:data:`R2_COLOUR`,
    right axis, with its zero line), each with a vertical line at the epoch it keeps (dashed black, dotted
    purple; :func:`mtm.checkpoint.kept_epochs`). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator


    epochs, kept = log_column(history, "epoch"), kept_epochs(history)
    r2 = log_column(history, "r2_top50")
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.8), layout="constrained")
    ax.plot(epochs, log_column(history, "val_bps"), color="black", label="validation bits per spike")
    ax.axvline(kept["val_bps"], color="black", ls="--", lw=1, label="kept by val_bps")
    ax.set(xlabel="epoch", ylabel="validation bits per spike")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = ax.twinx()
    right.plot(epochs, r2, color=R2_COLOUR, label="top-50-neuron $R^2$")
    right.axvline(kept["r2_top50"], color=R2_COLOUR, ls=":", lw=1.5, label="kept by r2_top50")
    right.axhline(0, color=R2_COLOUR, lw=0.5, alpha=0.6)
    right.set_ylim(top=max(0.05, float(np.nanmax(r2)) + 0.05))
    right.set_ylabel("top-50-neuron trial $R^2$")
    fig.legend(frameon=False, loc="outside lower center", ncol=2, fontsize=9)
    return fig


def task_entries(task: str, regions, n_bins: int, configuration: int) -> tuple[np.ndarray, np.ndarray]:
    """The hidden and the scored entries (two boolean (T, N) arrays) of one configuration of an
    evaluation task (:func:`mtm.evaluate.task_configurations`): the neurons the configuration hides,
    in every bin, plus for forward prediction the held-out bins of every neuron; scored, the
    configuration's scored neurons in the task's scored bins."""
    hidden, scored = task_configurations(task, np.asarray(regions))  # (configurations, neurons)
    if not 0 <= configuration < len(hidden):
        raise ValueError(f"configuration: {task} has {len(hidden)} configurations, got {configuration}")
    in_window = np.isin(np.arange(n_bins), scored_bins(task, n_bins))
    hidden_entries = np.tile(hidden[configuration], (n_bins, 1))
    if task == "forward-pred":
        hidden_entries |= in_window[:, None]
    return hidden_entries, in_window[:, None] & scored[configuration][None, :]


def plot_task_masks(regions, n_bins: int, region: str, bin_size: float = 0.02, t0: float = -0.5):
    """The evaluation masks of the four activity tasks, one panel each, for the neuron in the middle of
    ``region`` (co-smoothing and intra-region; away from the region's boundary lines, which would hide
    it), the whole region (inter-region) and forward prediction; the figure's title names the region
    and the neuron."""
    import matplotlib.pyplot as plt

    regions = np.asarray(regions).astype(str)
    names = list(dict.fromkeys(regions.tolist()))  # the order of the inter-region configurations
    if region not in names:
        raise ValueError(f"region: {region!r} is not among {names}")
    members = np.flatnonzero(regions == region)
    neuron = int(members[len(members) // 2])
    configuration = {"co-smooth": neuron, "forward-pred": 0, "intra-region": neuron,
                     "inter-region": names.index(region)}
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_WIDTH, 5.8), sharex=True, sharey=True, layout="constrained")
    for ax, task in zip(axes.flat, TASKS):
        hidden, scored = task_entries(task, regions, n_bins, configuration[task])
        n = len(task_configurations(task, regions)[0])
        plot_mask(hidden, scored, regions, bin_size=bin_size, t0=t0, ax=ax,
                  title=f"{task}: {n} configuration{'s' if n > 1 else ''}")
    for ax in axes[0]:
        ax.set_xlabel("")
    for ax in axes[:, 1]:
        ax.set_ylabel("")
    fig.legend(handles=[Patch(facecolor=c, edgecolor="0.4", label=label) for label, c in MASK_COLORS.items()],
               loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(f"region {region}: neuron {neuron} for co-smoothing and intra-region", fontsize=10)
    return fig


def paper_row(name: str, paper_table: dict[str, dict[str, float]]) -> dict[str, float]:
    """The paper's row for one of ours: "Multi-session (3 pretrain), X" -> "Multi-session, X";
    {} for rows the paper does not have."""
    return paper_table.get(re.sub(r" \(\d+ pretrain\)", "", name), {})


def paper_comparison_table(table: dict[str, dict[str, float]], paper_table: dict[str, dict[str, float]],
                           columns, digits: int = 2) -> str:
    """A Markdown table of our rows, each cell "ours (paper's)" where the paper has the row."""
    def cells(name, row):
        paper = paper_row(name, paper_table)
        ours = [score_cell(row.get(c, math.nan), digits) for c in columns]
        return [f"{cell} ({paper[c]:.{digits}f})" if c in paper else cell for cell, c in zip(ours, columns)]

    return markdown_table([TABLE_COLUMNS.get(c, c) for c in columns],
                          {name: cells(name, row) for name, row in table.items()})


def plot_mtm_schematic():
    """The MtM idea in one figure, drawn from a small synthetic batch: one trial's counts, the mask
    of each of MtM's four schemes with its prompt token, and the shared model that fills them in. Its
    text is 10-12 pt, so it stays legible at the book's column width (about 700 px for 7 in)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    session = synthetic_session(0, n_trials=20, n_neurons=60)
    batch = torch.as_tensor(np.array(session.spikes[:2]))
    fig = plt.figure(figsize=(COLUMN_WIDTH, 6.0), layout="constrained")
    grid = fig.add_gridspec(3, 3, width_ratios=[1.15, 1, 1], height_ratios=[1, 1, 0.42])
    plot_raster(session.spikes[0], session.regions, ax=fig.add_subplot(grid[:2, 0]), title="one trial of counts",
                colorbar=None)
    for i, scheme in enumerate(MTM_SCHEMES):
        ax = fig.add_subplot(grid[i // 2, 1 + i % 2])
        generator = torch.Generator().manual_seed(i)
        _, target = mask_batch(batch, scheme, session.regions, generator=generator)
        ones, _ = mask_batch(torch.ones_like(batch), scheme, session.regions,
                             generator=torch.Generator().manual_seed(i))
        plot_mask((ones == 0)[0].numpy(), target[0].numpy(), session.regions, ax=ax,
                  title=f"prompt [{scheme}]")
        ax.set_xlabel("time (s)" if i >= 2 else "")
        ax.set_ylabel("")
        ax.set_yticks([])
        ax.set_xticks([-0.5, 0.5, 1.5])
    for ax in fig.axes:
        ax.tick_params(labelsize=10)
        ax.title.set_fontsize(11)
        ax.xaxis.label.set_fontsize(10)
        ax.yaxis.label.set_fontsize(10)
    model = fig.add_subplot(grid[2, :])
    model.axis("off")
    model.set(xlim=(0, 1), ylim=(0, 1))
    model.add_patch(FancyBboxPatch((0.2, 0.12), 0.6, 0.62, boxstyle="round,pad=0.03", fc="0.92", ec="0.3"))
    model.text(0.5, 0.43, "one transformer for every scheme:\n"
               "prompt token + masked spikes \u2192 rates of the hidden entries", ha="center", va="center", fontsize=11)
    model.add_patch(FancyArrowPatch((0.5, 1.2), (0.5, 0.8), arrowstyle="-|>", mutation_scale=15, color="0.3",
                                    clip_on=False))
    fig.suptitle("MtM: each batch draws one scheme and its prompt\n"
                 "red: hidden and scored; grey: hidden only; white: visible", fontsize=12)
    return fig


PER_NEURON_METRICS = {"bps": "co-smoothing bits per spike", "psth_r2": "PSTH R^2", "trial_r2": "single-trial R^2"}


def plot_per_neuron(metrics: dict[str, dict[str, np.ndarray]], rates_hz):
    """The paper's Fig. 7 view: per-neuron co-smoothing bits per spike, PSTH R^2 and single-trial R^2
    against each neuron's firing rate (Hz, log axis), one colour per model.

    ``metrics``: {model: {"bps": (N,), "psth_r2": (N,), "trial_r2": (N,)}} (see
    :func:`mtm.evaluate.psth_r2` and :func:`mtm.evaluate.trial_r2`); ``rates_hz``: (N,)."""
    import matplotlib.pyplot as plt

    rates_hz = np.asarray(rates_hz, dtype=float)
    fig, axes = plt.subplots(1, len(PER_NEURON_METRICS), figsize=(4.2 * len(PER_NEURON_METRICS), 3.4))
    for ax, (key, label) in zip(axes, PER_NEURON_METRICS.items()):
        for name, values in metrics.items():
            values = np.asarray(values[key], dtype=float)
            shown = np.isfinite(values) & (rates_hz > 0)
            ax.scatter(rates_hz[shown], values[shown], s=8, alpha=0.6,
                       label=f"{name} (median {np.nanmedian(values):.2f})")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="firing rate (Hz)", ylabel=label, title=label)
        ax.legend(fontsize=7, frameon=False)
    tidy_layout(fig)
    return fig


#: Where :func:`plot_output_changes` draws a change of exactly zero on its log axis.
ZERO_CHANGE_FLOOR = 1e-10


def plot_output_changes(changes: dict[str, np.ndarray], perturbed_bin: int, title: str = "", ax=None):
    """The perturbation test of causal attention: for each model or mask (``changes``: {label: (T,)}),
    the largest absolute change of the log-rates in each output bin when the input changed at
    ``perturbed_bin`` (dashed line), on a log axis. A change of exactly zero is drawn on the floor
    line :data:`ZERO_CHANGE_FLOOR` (labelled "exactly 0"); the first curve is wide and pale and the
    others dashed and dotted, so curves that coincide stay visible. Returns the axes."""
    _, ax = _axes(ax, figsize=(COLUMN_WIDTH, 3.4))
    styles = [dict(lw=3.0, alpha=0.45), dict(lw=1.4, ls="--"), dict(lw=1.4, ls=":")]
    if len(changes) > len(styles):
        raise ValueError(f"changes: expected at most {len(styles)} curves, got {len(changes)}")
    for (label, change), style in zip(changes.items(), styles):
        ax.semilogy(np.maximum(np.asarray(change, dtype=float), ZERO_CHANGE_FLOOR), label=label, **style)
    ax.axvline(perturbed_bin, color="grey", ls="--", lw=0.8)
    ax.axhline(ZERO_CHANGE_FLOOR, color="black", lw=0.5)
    ax.text(1, ZERO_CHANGE_FLOOR * 2, "exactly 0", fontsize=9)
    ax.set(xlabel="bin of the output", ylabel="largest |change| of log-rate", title=title)
    ax.legend(frameon=False, fontsize=9)
    return ax

"""Figures a reader can read at the book's column width (about 700 px at the notebooks' 100 dpi):
at most three panels a row, units on the axes, zero on compared bars, value labels, shared scales."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mtm.data import synthetic_session  # noqa: E402
from mtm.plots import (COLUMN_UNITS, COLUMN_WIDTH, PANELS_PER_ROW, plot_bar_panels, plot_mtm_schematic,  # noqa: E402
                       plot_oracle_sweep, plot_predicted_vs_true, plot_selection_criteria, plot_task_masks,
                       use_style)

COLUMNS = ["co-smooth", "forward-pred", "intra-region", "inter-region", "choice", "whisker_me"]


@pytest.fixture(autouse=True)
def style():
    use_style()
    yield
    plt.close("all")
    plt.rcdefaults()


@pytest.fixture(scope="module")
def session():
    return synthetic_session(0, n_trials=12, n_neurons=40)


def panels(fig):
    """The figure's data panels (no colour bars, no switched-off axes)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]


def panels_per_row(fig) -> int:
    fig.canvas.draw()
    rows: dict[float, int] = {}
    for ax in panels(fig):
        top = round(ax.get_position().y1, 2)
        rows[top] = rows.get(top, 0) + 1
    return max(rows.values())


def smallest_font(fig) -> float:
    fig.canvas.draw()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return min(t.get_fontsize() for t in texts)


def figures(session):
    rng = np.random.default_rng(0)
    sweeps = {k: {v: {"latent oracle": {"co-smooth": v}, "Bayes": {"co-smooth": v / 2}, "true rates": 2 * v}
                  for v in (0.5, 1.0)} for k in ("private_gain", "coupling", "noise")}
    table = {r: {c: rng.uniform(-0.5, 0.8) for c in COLUMNS} for r in "ABCDEFG"}
    return {"predicted vs true": plot_predicted_vs_true(session.spikes, np.asarray(session.rates), session.regions,
                                                        "LP", bin_size=session.bin_size, title="t"),
            "task masks": plot_task_masks(session.regions, session.spikes.shape[1], "LP"),
            "oracle sweep": plot_oracle_sweep(sweeps),
            "schematic": plot_mtm_schematic(),
            "bar panels": plot_bar_panels(table, list(table), COLUMNS),
            "selection criteria": plot_selection_criteria(
                [{"epoch": str(e), "val_bps": str(0.1 + 0.01 * e), "r2_top50": str(-0.01 * e)} for e in range(5)])}


def test_the_chapters_multi_panel_figures_fit_the_column(session):
    for name, fig in figures(session).items():
        assert fig.get_figwidth() <= COLUMN_WIDTH + 1e-9, name
        assert panels_per_row(fig) <= PANELS_PER_ROW, name
        assert smallest_font(fig) >= 7, name


def test_compared_bars_start_at_zero_carry_their_values_and_units_and_share_a_scale():
    table = {"A": {"co-smooth": 0.10, "forward-pred": -0.30, "choice": 0.70},
             "B": {"co-smooth": 0.25, "forward-pred": 0.05},
             "C": {"co-smooth": 0.20, "forward-pred": 0.02, "choice": 0.65}}
    fig = plot_bar_panels(table, ["A", "B", "C"], ["co-smooth", "forward-pred", "choice"], "t")
    axes = panels(fig)
    for ax in axes:
        low, high = ax.get_xlim()
        assert low <= 0 <= high
    cosmooth, forward, choice = axes
    assert [t.get_text() for t in cosmooth.texts] == ["0.10", "0.25", "0.20"]
    assert [t.get_text() for t in choice.texts] == ["0.70", "\u2013", "0.65"]  # B has no choice: no bar, a dash
    assert len(choice.patches) == 2
    assert cosmooth.get_xlabel() == COLUMN_UNITS["co-smooth"] == "bits/spike" and choice.get_xlabel() == "accuracy"
    assert cosmooth.get_xlim() == forward.get_xlim() != choice.get_xlim()  # one scale per unit
    assert [t.get_text() for t in cosmooth.get_yticklabels()] == ["A", "B", "C"]


def test_six_columns_are_two_lines_of_three_and_errors_are_drawn():
    table = {r: {c: 0.1 * i for c in COLUMNS} for i, r in enumerate("AB")}
    errors = {"A": {"co-smooth": 0.05}}
    fig = plot_bar_panels(table, ["A", "B"], COLUMNS, errors=errors)
    assert np.shape(fig.axes) == (6,) and panels_per_row(fig) == 3
    segments = panels(fig)[0].containers[0].lines[2][0].get_segments()  # the error bars, one per bar, A first
    assert np.allclose(segments[0][:, 0], [-0.05, 0.05]) and np.allclose(segments[1][:, 0], [0.1, 0.1])
    with pytest.raises(ValueError, match="rows, columns"):
        plot_bar_panels(table, [], COLUMNS)


def test_predicted_and_true_share_one_colour_scale_one_colour_bar_and_rates_start_at_zero(session):
    fig = plot_predicted_vs_true(session.spikes, np.asarray(session.rates), session.regions, "LP",
                                 bin_size=session.bin_size)
    true_ax, predicted_ax, psth_ax = panels(fig)
    assert true_ax.images[0].get_clim() == predicted_ax.images[0].get_clim()
    assert true_ax.get_ylim() == predicted_ax.get_ylim()
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    assert psth_ax.get_ylim()[0] == 0 and psth_ax.get_ylabel() == "firing rate (Hz)"


def test_two_models_predictions_share_the_rasters_scale_and_one_psth_axis(session):
    rates = np.asarray(session.rates)
    fig = plot_predicted_vs_true(session.spikes, {"temporal": 0.5 * rates, "MtM": rates}, session.regions, "LP",
                                 bin_size=session.bin_size)
    true_ax, temporal_ax, mtm_ax, psth_ax = panels(fig)
    assert true_ax.images[0].get_clim() == temporal_ax.images[0].get_clim() == mtm_ax.images[0].get_clim()
    assert true_ax.get_ylim() == temporal_ax.get_ylim() == mtm_ax.get_ylim()
    assert [line.get_label() for line in psth_ax.get_lines() if not line.get_label().startswith("_")] == \
        ["true", "temporal", "MtM"]
    assert panels_per_row(fig) <= PANELS_PER_ROW and smallest_font(fig) >= 7
    with pytest.raises(ValueError, match="rates"):
        plot_predicted_vs_true(session.spikes, {k: rates for k in "abc"}, session.regions, "LP")


def test_value_labels_start_past_their_error_bars_and_move_off_the_marks_of_their_row():
    """A value label never sits on its bar's error bar, nor on a mark (e.g. the paper's value) of its row;
    marks widen the axis to show them and are named in one legend."""
    table = {"A": {"co-smooth": 0.30, "choice": 0.80}, "B": {"co-smooth": -0.20, "choice": 0.50},
             "C": {"co-smooth": 0.10, "choice": 0.60}}
    errors = {"A": {"co-smooth": 0.10}, "B": {"co-smooth": 0.05}}
    # A's mark just past its error bar (where its label would start), B's mark just left of its
    # negative bar's error bar, C's mark far away (its label stays at its bar) and beyond the bars' range
    marks = {"A": {"co-smooth": 0.43}, "B": {"co-smooth": -0.28}, "C": {"co-smooth": 1.5}}
    fig = plot_bar_panels(table, ["A", "B", "C"], ["co-smooth", "choice"], errors=errors, marks=marks,
                          mark_label="paper")
    fig.canvas.draw()
    ax = panels(fig)[0]
    radius = 2.5 * fig.dpi / 72
    pixels = ax.transData.transform
    labels = {t.get_text(): t.get_window_extent() for t in ax.texts}
    a, b, c = labels["0.30"], labels["-0.20"], labels["0.10"]
    assert a.x0 >= pixels((0.40, 0))[0] and b.x1 <= pixels((-0.25, 0))[0]  # past the error bars
    for box, (mark, _) in ((a, (0.43, 0)), (b, (-0.28, 0)), (c, (1.5, 0))):
        centre = pixels((mark, 0))[0]
        assert not box.x0 - radius < centre < box.x1 + radius  # the circle is clear of the text
    assert a.x0 > pixels((0.43, 0))[0] and b.x1 < pixels((-0.28, 0))[0]  # moved past their circles
    assert c.x1 < pixels((1.5, 0))[0] - radius  # left where it was: the circle is far away
    assert ax.get_xlim()[1] > 1.5  # the mark is inside the axis
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["paper"]
    circles, = [line for line in ax.lines if line.get_marker() == "o"]
    assert np.allclose(circles.get_xdata(), [0.43, -0.28, 1.5]) and circles.get_markerfacecolor() == "white"


def test_bar_panels_without_marks_have_no_legend_and_no_circles():
    fig = plot_bar_panels({"A": {"co-smooth": 0.3}}, ["A"], ["co-smooth"], errors={"A": {"co-smooth": 0.1}})
    ax = panels(fig)[0]
    assert not fig.legends and not [line for line in ax.lines if line.get_marker() == "o"]
    fig.canvas.draw()
    assert ax.texts[0].get_window_extent().x0 >= ax.transData.transform((0.4, 0))[0]

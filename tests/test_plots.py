import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mtm.data import synthetic_session  # noqa: E402
from mtm.plots import (oracle_share_table, plot_bps_scatter, plot_oracle_sweep, plot_predicted_vs_true,  # noqa: E402
                       plot_psth, plot_psychometric, plot_raster, psychometric, region_boundaries, results_table)


def test_region_boundaries_and_psychometric_values():
    assert region_boundaries(["A", "A", "B", "C", "C"]) == [("A", 0, 2), ("B", 2, 3), ("C", 3, 5)]
    curves = psychometric([-1, -1, 1, 1, -1, 1], [0.5, 0.5, -0.5, -0.5, 0.5, 0.5], [0.5] * 6)
    levels, fraction = curves[0.5]
    assert levels.tolist() == [-0.5, 0.5] and fraction.tolist() == [0.0, 0.75]


def test_figures_render():
    session = synthetic_session(1, n_trials=40, n_neurons=30)
    fig, _ = plot_raster(session.spikes[0], session.regions)
    assert fig.axes[0].get_xlabel() == "time from stimulus onset (s)"
    assert plot_psth(session.spikes).axes[0].get_ylabel() == "firing rate (Hz)"
    b = synthetic_session(1, n_trials=200, n_neurons=30).behavior  # past the 90 unbiased trials
    assert len(plot_psychometric(b["choice"], b["contrast"], b["block"]).axes[0].lines) == 3
    fig = plot_bps_scatter(np.linspace(0, 1, 30), np.linspace(0.1, 1.1, 30), "temporal", "MtM", "co-smooth")
    assert fig.axes[0].get_title() == "co-smooth\n100% of neurons above the diagonal"
    fig = plot_predicted_vs_true(session.spikes, session.rates, session.regions, "LP")
    assert len(fig.axes) >= 3


def test_results_table_markdown():
    table = results_table({"MtM": {"co-smooth": 1.234, "choice": 0.9}, "Temporal": {"co-smooth": float("nan")}})
    assert table.splitlines()[0] == "| | Co-smooth | Choice |"
    assert "| MtM | 1.23 | 0.90 |" in table and "| Temporal | – | – |" in table


def test_the_training_settings_table_has_one_column_per_configuration():
    from mtm.tables import TRAINING_SETTINGS, training_settings_table
    from mtm.train import TrainConfig

    table = training_settings_table({"paper": TrainConfig.preset("paper"), "small": TrainConfig.preset("small")})
    lines = table.splitlines()
    assert lines[0] == "| | `paper` | `small` |" and len(lines) == 2 + len(TRAINING_SETTINGS)
    assert "| peak learning rate | 0.0001 | 0.002 |" in lines and "| layers x width | 5 x 512 | 2 x 64 |" in lines
    with pytest.raises(ValueError, match="configs"):
        training_settings_table({})


def test_oracle_share_table_and_sweep_figure():
    table = oracle_share_table({"MtM": {"co-smooth": 0.25, "inter-region": -0.1}}, {"co-smooth": 0.73,
                               "inter-region": 0.55}, ["co-smooth", "inter-region", "intra-region"])
    assert "| MtM | 0.25 of 0.73 (34 %) | -0.10 of 0.55 (-18 %) | – |" in table
    sweep = {0.0: {"latent oracle": {"co-smooth": 0.7, "intra-region": 0.7},
                   "Bayes": {"co-smooth": 0.5, "intra-region": 0.4}, "true rates": 0.9},
             0.3: {"latent oracle": {"co-smooth": 0.8, "intra-region": 0.8},
                   "Bayes": {"co-smooth": 0.6, "intra-region": 0.5}, "true rates": 1.0}}
    fig = plot_oracle_sweep({"coupling": sweep}, {"coupling": 0.12})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "coupling between regions"
    # tasks with the same curve share one line, named for both; each reference its line style, one colour
    # per task; the true rates dash-dotted; the default dotted
    assert [line.get_label() for line in ax.lines[:4]] == [
        "latent oracle: Co-smooth = Intra-region", "Bayes: Co-smooth", "Bayes: Intra-region", "true rates"]
    assert [line.get_linestyle() for line in ax.lines[:4]] == ["-", "--", "--", "-."]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert len(ax.lines) == 5


def test_plot_mask_colours_visible_hidden_and_target():
    import pytest

    from mtm.plots import plot_mask

    hidden = np.zeros((100, 6), dtype=bool)
    hidden[:, 3:] = True
    target = hidden.copy()
    target[:, 5] = False
    fig, image = plot_mask(hidden, target, ["A"] * 3 + ["B"] * 3, legend=True)
    state = np.asarray(image.get_array())
    assert state.shape == (6, 100) and state[0].max() == 0 and (state[3] == 2).all() and (state[5] == 1).all()
    assert len(fig.axes[0].get_legend().get_texts()) == 3
    with pytest.raises(ValueError, match="hidden, target"):
        plot_mask(hidden, target[:, :2])


def test_every_task_mask_panel_shows_its_scored_entries_and_the_title_names_the_region():
    """A single scored neuron among 300 is thinner than a pixel at the column's width, and the first
    neuron of a region lies under the region's boundary line: each panel must still show rows of red."""
    from matplotlib.colors import to_rgb

    from mtm.plots import MASK_COLORS, plot_task_masks, use_style

    use_style()
    session = synthetic_session(0, 20, 300)
    fig = plot_task_masks(session.regions, session.n_bins, "LP")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255
    red = np.array(to_rgb(MASK_COLORS["target (hidden, scored)"]))
    height = pixels.shape[0]
    for ax in fig.axes[:4]:
        x0, y0, x1, y1 = ax.get_window_extent().extents
        panel = pixels[int(height - y1):int(height - y0), int(x0):int(x1)]
        is_red = np.abs(panel - red).sum(axis=-1) < 0.3
        if ax.get_title().startswith("forward-pred"):  # a block of the last bins: columns of red
            assert (is_red.mean(axis=0) > 0.5).sum() >= 2, ax.get_title()
        else:  # rows of red: one neuron (co-smoothing, intra-region) or the region (inter-region)
            assert (is_red.mean(axis=1) > 0.5).sum() >= 2, ax.get_title()
    assert "region LP" in fig.get_suptitle()
    plt.close(fig)


def test_the_selection_figure_marks_the_epoch_each_criterion_keeps():
    from mtm.plots import R2_COLOUR, plot_selection_criteria

    rows = [{"epoch": str(e), "val_bps": str(v), "r2_top50": str(r)}
            for e, (v, r) in enumerate([(0.1, -0.3), (0.3, 0.02), (0.25, 0.04), (0.3, 0.01)])]
    fig = plot_selection_criteria(rows)
    left, right = fig.axes
    assert [line.get_xdata()[0] for line in left.lines[1:]] == [1]  # val_bps keeps epoch 1 (a later tie is none)
    assert right.lines[1].get_xdata()[0] == 2 and right.lines[0].get_color() == R2_COLOUR
    plt.close(fig)


def test_the_introduction_schematic_is_drawn_by_the_package(tmp_path):
    from mtm.book.build import write_schematic
    from mtm.plots import COLUMN_WIDTH

    path = write_schematic(tmp_path / "schematic.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(path)
    assert image.shape[1] == round(COLUMN_WIDTH * 110) and image.shape[0] > 500  # the column's width, 110 dpi


def test_figures_of_the_package_lay_out_without_warnings():
    """The book's style turns constrained layout on: a figure is never tight-laid-out on top of it."""
    import warnings

    from mtm.plots import use_style
    from mtm.reproduce.tables import plot_table

    plt.close("all")
    use_style()
    table = {"A": {"co-smooth": 0.1, "choice": 0.7}, "B": {"co-smooth": 0.2, "choice": 0.6}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fig = plot_table(table, ["A", "B"], ["co-smooth", "choice"], "t")
        fig.canvas.draw()
    plt.rcdefaults()
    assert fig.get_layout_engine() is not None  # the style's constrained layout, kept
    assert [str(w.message) for w in caught if "layout" in str(w.message)] == []


def test_an_experiments_table_is_drawn_as_a_grid_with_intervals_and_grey_reference_rows():
    from mtm.baselines import LINEAR_ROW
    from mtm.reproduce.tables import COLUMNS, plot_table
    from mtm.stats import mean_interval

    plt.close("all")
    table = {"A": {c: 0.2 for c in COLUMNS}, LINEAR_ROW: {c: 0.1 for c in COLUMNS}}
    fig = plot_table(table, ["A", LINEAR_ROW], COLUMNS, "t", {"A": {"co-smooth": mean_interval([0.1, 0.2, 0.3])}},
                     labels={LINEAR_ROW: "linear"})
    first = fig.axes[0]
    assert [t.get_text() for t in first.get_yticklabels()] == ["A", "linear"]
    assert fig.get_figwidth() <= 7.0 and len(fig.axes) == 6  # two lines of three panels, not one long row
    assert [p.get_facecolor()[:3] for p in first.patches][1] == pytest.approx((0.6, 0.6, 0.6))
    segment = first.containers[0].lines[2][0].get_segments()[0][:, 0]
    assert segment == pytest.approx([0.2 - mean_interval([0.1, 0.2, 0.3]).half_width,
                                     0.2 + mean_interval([0.1, 0.2, 0.3]).half_width])
    plt.close(fig)


def test_an_experiments_runs_are_drawn_models_first_with_intervals_then_short_reference_labels():
    from mtm.baselines import LINEAR_ROW, ORACLE_ROW
    from mtm.reproduce.scheduler import row_intervals
    from mtm.reproduce.tables import REFERENCE_LABELS, plot_runs

    plt.close("all")
    runs = {m: [{"seed": seed, "session": "s", "scores": {"co-smooth": value + seed / 10}} for seed in range(3)]
            for m, value in (("B", 0.1), ("A", 0.3))}
    table = {"A": {"co-smooth": 0.4}, "B": {"co-smooth": 0.2}, LINEAR_ROW: {"co-smooth": 0.25},
             ORACLE_ROW: {"co-smooth": 0.9}}
    fig = plot_runs(table, runs, ["co-smooth"], labels={"A": "model A"})
    ax = fig.axes[0]
    # the table's order, the reference rows in REFERENCE_ROWS's order under their short names
    assert [t.get_text() for t in ax.get_yticklabels()] == ["model A", "B", REFERENCE_LABELS[ORACLE_ROW],
                                                            REFERENCE_LABELS[LINEAR_ROW]]
    half = row_intervals(runs["A"])["co-smooth"].half_width
    assert ax.containers[0].lines[2][0].get_segments()[0][:, 0] == pytest.approx([0.4 - half, 0.4 + half])
    assert [p.get_facecolor()[:3] for p in ax.patches][2] == pytest.approx((0.6, 0.6, 0.6))
    plt.close(fig)
    with pytest.raises(ValueError, match="runs"):
        plot_runs(table, {"C": runs["A"]}, ["co-smooth"])


def test_plot_causal_gaps_draws_the_shares_and_the_law():
    from mtm.plots import plot_causal_gaps

    ax = plot_causal_gaps(np.array([1, 1, 2, 3]), p=0.5, max_gap=4)
    assert [round(b.get_height(), 3) for b in ax.patches] == [0.5, 0.25, 0.25, 0.0]
    assert np.allclose(ax.lines[0].get_ydata(), [0.5, 0.25, 0.125, 0.0625])
    assert any("p = 0.5" in text.get_text() for text in ax.get_legend().get_texts())


def test_plot_output_changes_draws_zero_on_the_floor_and_marks_the_perturbed_bin():
    from mtm.plots import ZERO_CHANGE_FLOOR, plot_output_changes

    causal = np.r_[np.zeros(5), np.full(5, 0.2)]
    ax = plot_output_changes({"bidirectional": np.full(10, 0.3), "causal": causal}, perturbed_bin=5, title="t")
    curves = [line for line in ax.lines if line.get_label() in ("bidirectional", "causal")]
    assert np.allclose(curves[1].get_ydata(), np.r_[np.full(5, ZERO_CHANGE_FLOOR), np.full(5, 0.2)])
    assert ax.get_yscale() == "log" and ax.get_title() == "t"
    vertical = [line for line in ax.lines if np.allclose(line.get_xdata(), 5)]
    assert len(vertical) == 1 and any(text.get_text() == "exactly 0" for text in ax.texts)
    with pytest.raises(ValueError, match="changes: expected at most 3 curves"):
        plot_output_changes({str(i): causal for i in range(4)}, perturbed_bin=5)
    plt.close("all")

"""The chapters' tools for numbers and code on the page: glued numbers, direction checks, the
unglued-decimal report and the package's own source rendered in a chapter."""

import nbformat
import pytest

from mtm.book import (CODE_COLUMN, assert_direction, glue_number, glue_text, show_source, source_block,
                      source_span)
from mtm.book.build import NAMED_CONSTANTS, paper_constants, unglued_decimals
from mtm.masking import mask_batch
from mtm.reproduce.paper import PAPER_TABLE3


def markdown_notebook(*texts: str) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(t) for t in texts] + [nbformat.v4.new_code_cell("x = 0.44")]
    return nb


def test_a_typed_result_is_caught_and_a_glued_one_passes():
    nb = markdown_notebook("MtM scores 0.44 bits per spike on co-smoothing.",
                           "MtM scores {glue:text}`mtm_cosmooth` bits per spike ({glue:text}`gap_value:.3f` more).")
    found = unglued_decimals(nb, "05_evaluation")
    assert [(d.cell, d.number) for d in found] == [(0, "0.44")]
    assert "MtM scores 0.44" in found[0].context


def test_a_paper_constant_passes_only_where_the_text_cites_the_paper():
    assert PAPER_TABLE3["Causal"]["co-smooth"] == 0.44 and 0.44 in paper_constants() and 0.37 not in paper_constants()
    nb = markdown_notebook("The paper's causal masking scores 0.44 on co-smoothing (Table 3).",
                           "Our causal model scores 0.44 on co-smoothing.",
                           "Table 3 of the paper:\n\n| | Co-smooth |\n|---|---|\n| Causal | 0.44 |\n| Ours | 0.37 |")
    assert [(d.cell, d.number) for d in unglued_decimals(nb, "09_experiments")] == [(1, "0.44"), (2, "0.37")]


def test_settings_package_constants_code_versions_and_links_are_not_prose_results():
    nb = markdown_notebook(
        "Bins of 0.02 s over $[-0.5, 1.5)$ s; the causal ratio is 0.6.",  # synthetic.BIN_SIZE, WINDOW, DEFAULT_RATIO
        "Run `train(lr=0.123)`:\n\n```python\nscale = 7.25\n```\n",
        "Built with jupyter-book 1.0.4.post1 on Python 3.11, see arXiv 2407.14668 and [a](https://x.org/v1.5/).",
        "Weights fall from 1.186 to 0.129.")
    assert [d.number for d in unglued_decimals(nb, "01_data")] == ["1.186", "0.129"]


def test_a_chapters_named_constants_pass_in_that_chapter_only(monkeypatch):
    monkeypatch.setitem(NAMED_CONSTANTS, "03_model", {"dropout of the reference's NDT1": 0.4})
    nb = markdown_notebook("Dropout 0.4 on the attention.")
    assert unglued_decimals(nb, "03_model") == []
    assert [d.number for d in unglued_decimals(nb, "04_training")] == ["0.4"]


def test_a_number_matches_a_constant_only_to_the_digits_typed():
    nb = markdown_notebook("Bins of 0.020 s, or 0.021 s.")
    assert [d.number for d in unglued_decimals(nb, "01_data")] == ["0.021"]


def test_glue_number_glues_the_text_and_the_number(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    assert glue_number("gap", 0.4412, "{:.2f}") == "0.44"
    assert glued == {"gap": ("0.44", False), "gap_value": (0.4412, False)}
    with pytest.raises(ValueError, match="value: gap"):
        glue_number("gap", float("nan"))


def test_glue_text_glues_words_and_refuses_an_empty_text(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    assert glue_text("first", "optimiser steps") == "optimiser steps"
    assert glued == {"first": ("optimiser steps", False)}
    for bad in ("", "  ", 0.5):
        with pytest.raises(ValueError, match="text: first"):
            glue_text("first", bad)


def test_glue_text_glues_a_sentence_that_a_cell_ending_in_it_does_not_echo(monkeypatch):
    from mtm.book import glue_text

    glued = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.append((name, value, display)))
    text = glue_text("point", "MtM is above temporal masking on intra-region")
    assert text == "MtM is above temporal masking on intra-region" and text._ipython_display_() is None
    assert glued == [("point", "MtM is above temporal masking on intra-region", False)]
    for bad in ("", "  ", 0.4):
        with pytest.raises(ValueError, match="text: point"):
            glue_text("point", bad)


def test_assert_direction_passes_when_the_text_holds_and_names_the_claim_when_it_does_not():
    assert_direction("the linear baseline beats temporal masking", 0.41, ">", 0.34)
    assert_direction("MtM is far above random tokens", 0.9, ">", 0.2, margin=0.5)
    with pytest.raises(AssertionError, match="the linear baseline beats temporal masking.*0.34 is not above 0.41"):
        assert_direction("the linear baseline beats temporal masking", 0.34, ">", 0.41)
    with pytest.raises(AssertionError, match="by more than 0.5"):
        assert_direction("MtM is far above random tokens", 0.5, ">", 0.2, margin=0.5)
    with pytest.raises(ValueError, match="relation"):
        assert_direction("x", 1, "=>", 0)


def test_the_source_block_is_the_package_file_with_its_path_and_line_numbers():
    import inspect

    block = source_block(mask_batch)
    lines, start = inspect.getsourcelines(mask_batch)
    assert block.startswith(f"`mtm/masking.py`, lines {start}-{start + len(lines) - 1}")
    assert "```python\n" + "".join(lines).rstrip("\n") + "\n```" in block
    part = source_block(mask_batch, (start + 1, start + 3))
    assert part.split("```python\n")[1] == "".join(lines[1:4]).rstrip("\n") + "\n```"
    with pytest.raises(ValueError, match="lines"):
        source_block(mask_batch, (start - 1, start + 2))
    with pytest.raises(ValueError, match="outside the mtm package"):
        source_block(pytest.raises)


def test_source_span_finds_the_named_lines_of_an_object():
    import inspect

    from mtm.masking import mask_batch

    lines, start = inspect.getsourcelines(mask_batch)
    first, last = source_span(mask_batch, 'elif scheme == "neuron":', "hidden = bernoulli")
    assert lines[first - start].strip() == 'elif scheme == "neuron":'
    assert last == first + 1 and "bernoulli(n_trials, 1, n_neurons)" in lines[last - start]
    assert "```python\n    elif scheme == \"neuron\"" in source_block(mask_batch, (first, last))
    with pytest.raises(ValueError, match="first"):
        source_span(mask_batch, "no such text", "return")
    with pytest.raises(ValueError, match="last"):
        source_span(mask_batch, "def mask_batch", "no such text")


def test_the_source_block_says_how_many_lines_scroll(monkeypatch):
    import mtm.book

    lines = inspect_lines(mask_batch)
    wide = sum(len(line.rstrip("\n")) > CODE_COLUMN for line in lines)
    assert (f"({wide} wider than the column" in source_block(mask_batch)) == (wide > 0)
    monkeypatch.setattr(mtm.book, "CODE_COLUMN", 10_000)
    assert "wider than the column" not in source_block(mask_batch)


def inspect_lines(obj):
    import inspect

    return inspect.getsourcelines(obj)[0]


def test_show_source_displays_markdown_once(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    returned = show_source(mask_batch)
    # nothing returned: a cell ending in show_source(...) would otherwise show the block twice
    assert returned is None and [block.data for block in shown] == [source_block(mask_batch)]


def test_the_book_stays_on_jupyter_book_1_pinned_and_the_readme_says_why():
    from mtm.book import ROOT

    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("jupyter-book")]
    assert pins == ["jupyter-book>=1.0.4,<2"]
    readme = (ROOT / "README.md").read_text()
    assert "Jupyter Book 1.x, pinned (`jupyter-book>=1.0.4,<2`" in readme
    assert "downloads its site theme" in readme and "no package on PyPI or npm carries the built theme" in readme


def test_check_reports_each_chapters_unglued_decimals_without_failing_on_them(capsys):
    import json

    from mtm.book import build

    code = build.main(["check", "03"])
    printed = capsys.readouterr().out
    count = len(unglued_decimals(json.loads(build.chapter_paths(["03"])[0].read_text()), "03_model"))
    assert printed.startswith("03_model: ") and f"({count} unglued decimals in its Markdown)" in printed
    assert code == (0 if printed.startswith("03_model: ok") else 1)


def test_a_cell_ending_in_glue_number_echoes_nothing(monkeypatch):
    """A figure cell that ends with glue_number must hold the figure only: IPython displays an object
    with _ipython_display_ through that method, which shows nothing."""
    from mtm.book import glue_number

    glued = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.append((name, value, display)))
    text = glue_number("share", 0.4417)
    assert text == "0.44" and isinstance(text, str) and text._ipython_display_() is None
    assert glued == [("share", "0.44", False), ("share_value", 0.4417, False)]


# ------------------------------------------------------------------ the page's machinery, boxes and verdicts
def code_notebook(*cells: tuple[str, list]) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")]
    for code, tags in cells:
        cell = nbformat.v4.new_code_cell(code)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def test_machinery_share_counts_the_books_statements_among_the_visible_code_lines():
    from mtm.book.build import machinery_share

    nb = code_notebook(
        ("from mtm.book import chapter_settings, glue_number\nfrom mtm.book import train_once, glue_number\n"
         "from myst_nb import glue\nimport numpy as np", []),                      # 2 of 4: the mixed import is not
        ("# SETTINGS: which settings\nSETTINGS = \"auto\"\nOVERRIDES = {}\nSEED = 0", ["parameters"]),  # 3 of 4
        ("RUN = chapter_settings(\"04_training\", SETTINGS, **OVERRIDES)\nRUN_DIR = RUN.run_dir", []),  # 2 of 2
        ("scores = train(RUN_DIR / \"mtm\", RUN.EPOCHS)\n\nfor task in TASKS:\n"
         "    glue_number(f\"s_{task}\", scores[task])\n    assert_direction(\"x\", 1, \">\", 0)", []),  # 3 of 4
        ("for seed in SEEDS:\n    folder = single_run_folder(\"mtm\", seed)\n    train(folder)\n"
         "show_source(train)", []),                                                # 2 of 4
        ("print(RUN.done())", ["remove-input"]),                                   # not on the page
        ("%pip install x\nprint(RUN.line())\n# the end", ["hide-input"]))          # folded, on the page: 2 of 3
    share = machinery_share(nb)
    assert (share.machinery, share.visible) == (2 + 3 + 2 + 3 + 2 + 2, 4 + 4 + 2 + 4 + 4 + 3)
    assert share.share == pytest.approx(14 / 21)


def test_code_cell_lengths_are_the_lines_the_page_shows_longest_first():
    from mtm.book.build import code_cell_lengths

    nb = code_notebook(("a = 1\n\nb = 2\n", []), ("x = 1", ["remove-input"]), ("\n".join("c = 1" for _ in range(41)), []))
    assert code_cell_lengths(nb) == [(3, 41), (1, 3), (2, 1)]


def test_check_reports_the_machinery_share_and_the_longest_cell(capsys):
    import json

    from mtm.book import build

    build.main(["check", "04"])
    notebook = json.loads(build.chapter_paths(["04"])[0].read_text())
    share, longest = build.machinery_share(notebook), build.code_cell_lengths(notebook)[0][1]
    printed = capsys.readouterr().out
    assert f"machinery {share.machinery} of {share.visible} visible code lines ({share.share:.0%})" in printed
    assert f"longest code cell {longest} lines" in printed


def test_verdicts_follow_the_interval_and_one_sentence_groups_the_columns():
    from mtm.book import verdict, verdict_sentence
    from mtm.stats import mean_interval

    up, down, tie, one = (mean_interval(v) for v in ([0.05, 0.06, 0.04], [-0.05, -0.06, -0.04],
                                                     [0.05, -0.06, 0.04], [0.05]))
    assert [verdict(d) for d in (up, down, tie, one)] == ["above", "below", "apart", "one run"]
    with pytest.raises(ValueError, match="MtM - temporal"):
        verdict(mean_interval([]), "MtM - temporal")
    names = {"co": "co-smoothing", "fp": "forward prediction", "intra": "intra-region", "inter": "inter-region"}
    assert verdict_sentence("MtM", "the baseline", {"co": up, "fp": tie, "intra": down, "inter": up}, names) == (
        "MtM is above the baseline on co-smoothing and inter-region and below it on intra-region; "
        "the two cannot be told apart on forward prediction")
    assert verdict_sentence("MtM", "the baseline", {"co": down}) == "MtM is below the baseline on co"
    assert verdict_sentence("MtM", "raw spikes", {"whisker_me": up}) == (
        "MtM is above raw spikes on whisker motion energy")  # the columns' names in words by default
    assert verdict_sentence("MtM", "the baseline", {"co": tie, "fp": tie}, names) == (
        "MtM and the baseline cannot be told apart on co-smoothing and forward prediction")
    assert "one run only on co-smoothing (no interval)" in verdict_sentence("MtM", "b", {"co": one}, names)
    with pytest.raises(ValueError, match="differences"):
        verdict_sentence("MtM", "b", {})


def test_the_box_is_a_commonmark_block_quote_of_the_points_and_the_paper(monkeypatch):
    from mtm.book import run_box, what_this_run_shows

    box = run_box("MtM is above the baseline on co-smoothing.", "Shares 40 to 60 %",
                  paper="MtM is ahead on all four tasks (Table 1).")
    assert box == ("> **What this run shows**\n>\n> - MtM is above the baseline on co-smoothing.\n"
                   "> - Shares 40 to 60 %.\n>\n> *The paper:* MtM is ahead on all four tasks (Table 1).")
    assert all(line.startswith(">") for line in box.splitlines())
    with pytest.raises(ValueError, match="points"):
        run_box()
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert what_this_run_shows("One point") is None  # shown once, wherever the call stands in its cell
    assert [item.data for item in shown] == [run_box("One point")]


def test_glue_works_without_the_book_tooling(monkeypatch):
    """On Colab the package is installed alone, without myst-nb: glue records nothing, and the chapter
    still gets its text back (a reader's run shows its numbers in its outputs)."""
    import sys

    from mtm.book import glue_number, glue_text

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    assert glue_number("share", 0.4567, "{:.1f}") == "0.5"
    assert glue_text("words", "steps, then width") == "steps, then width"
    with pytest.raises(ValueError, match="share"):
        glue_number("share", float("nan"))

"""The chapters' reader copies (book/colab/, mtm.book.reader): the notebooks the Colab badges open, whose
Markdown renders right in plain CommonMark, kept current with the chapters."""

import json
import re
from pathlib import Path

import pytest

from mtm import book
from mtm.book import reader

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
IDS = [c.stem for c in CHAPTERS]


@pytest.fixture(scope="module")
def the_book():
    return reader.load_book()


def markdown_cells(notebook: dict) -> list[str]:
    return [reader._text(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]


# ---------------------------------------------------------------------------------- the committed copies
@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_the_reader_copy_is_current_with_its_chapter(chapter, the_book):
    """The committed copy is what the chapter generates today: a chapter edited or executed without
    `python -m mtm.book colab` fails here."""
    target = reader.copy_path(chapter)
    assert target.exists(), f"{target.relative_to(ROOT)} missing: python -m mtm.book colab"
    text, _ = reader.copy_text(chapter, the_book)
    assert target.read_text() == text, f"{target.relative_to(ROOT)} is stale: python -m mtm.book colab"


def test_every_copy_has_its_chapter():
    assert sorted(p.name for p in reader.COPIES.glob("*.ipynb")) == [c.name for c in CHAPTERS]


def roles_in(chapter) -> int:
    return sum(len(re.findall(r"\{[\w:]+\}`", text)) for text in markdown_cells(json.loads(chapter.read_text())))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_the_copy_renders_in_commonmark_without_raw_myst(chapter):
    """Every Markdown cell of the copy, rendered with markdown-it-py in CommonMark mode, leaves no role,
    directive, target, option or glue as text; where the chapter itself uses roles, the check finds every
    one of them in it (the check has teeth; a chapter written in plain CommonMark, like chapter 11, has none)."""
    copied = json.loads(reader.copy_path(chapter).read_text())
    raw = [(i, problem) for i, text in enumerate(markdown_cells(copied)) for problem in reader.myst_leftovers(text)]
    assert not raw, f"{chapter.stem}: raw MyST in its reader copy: {raw[:5]}"
    original = [p for text in markdown_cells(json.loads(chapter.read_text())) for p in reader.myst_leftovers(text)]
    roles = roles_in(chapter)
    assert len([p for p in original if p.startswith("a role")]) == roles
    assert sum(roles_in(c) for c in CHAPTERS) > 0


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_the_copy_opens_itself_says_whose_numbers_it_shows_and_keeps_the_outputs(chapter):
    nb, copied = json.loads(chapter.read_text()), json.loads(reader.copy_path(chapter).read_text())
    first = reader._text(copied["cells"][0]["source"])
    assert book.colab_badge(chapter.name) in first and "**Reader copy**" in first
    noted = f"the numbers the text marks {reader.STORED_MARK}" in first
    glued = sum(text.count(reader.STORED_MARK) for text in markdown_cells(copied)) - noted
    assert glued == sum(text.count("{glue:text}") for text in markdown_cells(nb))
    assert noted == (glued > 0)
    assert "jupytext" not in copied["metadata"] and copied["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    copied_code = [c for c in copied["cells"] if c["cell_type"] == "code"]
    assert len(code) == len(copied_code)
    for original, kept in zip(code, copied_code):
        shown = [] if "remove-output" in original["metadata"].get("tags", []) else [
            o for o in original["outputs"] if "scrapbook" not in o.get("metadata", {})]
        assert kept["outputs"] == shown
        assert reader._text(kept["source"]).endswith(reader._text(original["source"]))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_solutions_are_folded_and_hidden_cells_too(chapter):
    """Each Solution is a <details> block, followed by its code folded in Colab (#@title, cellView form)
    and JupyterLab (source_hidden); every cell the book hides is folded likewise."""
    nb, copied = json.loads(chapter.read_text()), json.loads(reader.copy_path(chapter).read_text())
    solutions = sum(len(re.findall(r"\{admonition\}[ \t]*Solution|<summary>Solution</summary>", t))
                    for t in markdown_cells(nb))
    cells = copied["cells"]
    folded_after = [cells[i + 1] for i, c in enumerate(cells[:-1])
                    if c["cell_type"] == "markdown" and "<summary>Solution</summary>" in reader._text(c["source"])]
    assert len(folded_after) == solutions > 0
    for cell in folded_after:
        assert reader._text(cell["source"]).startswith("#@title Solution\n")
        assert cell["metadata"]["cellView"] == "form" and cell["metadata"]["jupyter"]["source_hidden"] is True
    for cell in cells:
        if cell["cell_type"] == "code" and set(cell["metadata"].get("tags", [])) & set(reader.FOLD_SOURCE):
            assert cell["metadata"]["jupyter"]["source_hidden"] is True and cell["metadata"]["cellView"] == "form"


def test_every_figure_has_its_number_and_caption_and_every_link_lands(the_book):
    """Each numbered figure of a chapter is followed by its caption cell (Fig. 5.2, an anchor of its
    name); every link of a copy to a figure names an anchor of the copy it opens, and every link to a
    chapter opens a reader copy."""
    anchors = {}
    for chapter in CHAPTERS:
        copied = json.loads(reader.copy_path(chapter).read_text())
        anchors[chapter.name] = set(re.findall(r'<a id="([^"]+)"></a>', "\n".join(markdown_cells(copied))))
        number = the_book.documents[f"book/{chapter.stem}"].number
        numbered = reader.figure_numbers(json.loads(chapter.read_text()), number)
        ids = {c.get("id"): i for i, c in enumerate(copied["cells"])}
        originals = json.loads(chapter.read_text())["cells"]
        for index, label, number in numbered:
            caption = copied["cells"][ids[originals[index]["id"]] + 1]
            assert reader._text(caption["source"]).startswith(f'<a id="{label}"></a>**Fig. {number}.** ')
    assert sum(len(a) for a in anchors.values()) == len(the_book.figures) > 0
    for chapter in CHAPTERS:
        text = "\n".join(markdown_cells(json.loads(reader.copy_path(chapter).read_text())))
        for target, anchor in re.findall(r"\]\(((?:\d\d_\w+\.ipynb)?)#([\w-]+)\)", text):
            assert anchor in anchors[target or chapter.name], (chapter.stem, target, anchor)
        for target in re.findall(r"\]\((\d\d_\w+\.ipynb)\)", text):
            assert target in anchors, (chapter.stem, target)


# ---------------------------------------------------------------------------------- the conversion
def small_book() -> reader.Book:
    documents = {
        "book/01_a": reader.Document("book/01_a", "book/01_a.ipynb", 1, "Data: sessions"),
        "book/02_b": reader.Document("book/02_b", "book/02_b.ipynb", 2, "Masking"),
        "book/notation": reader.Document("book/notation", "book/notation.md", 3, "Notation"),
    }
    return reader.Book(documents=documents, figures={"fig-01-raster": ("book/01_a", "1.1"),
                                                     "fig-02-masks": ("book/02_b", "2.3")},
                       glue={"book/01_a": {"score": "'0.44'", "rate": "5.4321"}, "book/02_b": {"n": "'12'"}},
                       citations={"ye2021": ("Ye and Pandarinath, 2021", "https://example.org/ndt"),
                                  "pei2021": ("Pei et al., 2021", "https://example.org/nlb")},
                       repository="https://github.com/o/r")


def convert(text: str, docname: str = "book/01_a") -> tuple[str, dict]:
    conversion = reader.Conversion(small_book(), docname)
    return reader.convert_markdown(text, conversion), dict(conversion.counts)


def test_roles_become_stored_values_links_and_author_year_text():
    text, counts = convert("MtM scores {glue:text}`score` bits ({glue:text}`rate:.2f` Hz, {glue:text}`02_b::n:s` of "
                           "them); see {numref}`fig-01-raster`, {numref}`Panel %s <fig-02-masks>`, {doc}`02_b`, "
                           "{doc}`the symbols <notation>` and NDT {cite:p}`ye2021,pei2021` as {cite:t}`ye2021` say.")
    mark = reader.STORED_MARK
    assert text == (f"MtM scores 0.44{mark} bits (5.43{mark} Hz, 12{mark} of them); see [Fig. 1.1](#fig-01-raster), "
                    "[Panel 2.3](02_b.ipynb#fig-02-masks), [Masking](02_b.ipynb), "
                    f"[the symbols](https://github.com/o/r/blob/{book.RELEASE}/book/notation.md) and NDT "
                    "([Ye and Pandarinath, 2021](https://example.org/ndt); "
                    "[Pei et al., 2021](https://example.org/nlb)) "
                    "as [Ye and Pandarinath](https://example.org/ndt) (2021) say.")
    assert counts == {"glue": 3, "numref": 2, "doc": 2, "cite": 2}
    assert reader.myst_leftovers(text) == []


def test_admonitions_fold_as_details_or_quote_and_code_stays_as_written():
    text, counts = convert(
        "(sec-masks)=\n## Exercises\n\n:::{admonition} Solution\n:class: dropdown\nThe gap is {glue:text}`score`.\n"
        "\n- a list\n:::\n\n::::{note}\nOuter.\n\n:::{admonition} Hint\n:class: dropdown\nInner.\n:::\n::::\n\n"
        "```python\nx = \"{doc}`kept`\"\n```\n\nInline `{numref}` code stays.\n% a MyST comment")
    assert text == ('<a id="sec-masks"></a>\n## Exercises\n\n<details>\n<summary>Solution</summary>\n\n'
                    f"The gap is 0.44{reader.STORED_MARK}.\n\n- a list\n\n</details>\n\n> **Note**\n>\n> Outer.\n>\n"
                    "> <details>\n> <summary>Hint</summary>\n>\n> Inner.\n>\n> </details>\n\n"
                    "```python\nx = \"{doc}`kept`\"\n```\n\nInline `{numref}` code stays.")
    assert counts == {"target": 1, "glue": 1, "admonition (details)": 2, "admonition (block quote)": 1, "comment": 1}
    assert reader.myst_leftovers(text) == []


def test_what_has_no_commonmark_form_is_refused_by_name():
    for text, named in (("{eq}`loss`", "{eq}"), ("```{figure} x.png\n```", "{figure}"),
                        (":::{admonition} Open\nnever closed", "never closed"),
                        ("{glue:text}`missing`", "glue key 'missing'"), ("{numref}`fig-none`", "fig-none"),
                        ("{doc}`99_none`", "99_none"), ("{cite:p}`nobody`", "nobody")):
        with pytest.raises(ValueError, match=re.escape(named)):
            convert(text)


def test_raw_myst_is_found_in_the_rendering_and_code_is_not():
    raw = ("MtM scores {glue:text}`score` ({numref}`fig-x`).\n\n:::{admonition} Hint\n:class: dropdown\nx\n:::\n\n"
           "```{note}\ny\n```\n\n(sec-x)=\n\nA {{ substitution }}.")
    found = reader.myst_leftovers(raw)
    for what in ("a role", "a colon-fenced directive", "a directive option", "a directive ```{note}",
                 "a (label)= target", "a glue role", "a substitution"):
        assert any(p.startswith(what) for p in found), (what, found)
    assert reader.myst_leftovers("Code: `{doc}` and\n\n```python\n:::{x}\n(a)=\n```\n\n<details>\n<summary>S"
                                 "</summary>\n\nText.\n\n</details>") == []


def test_figures_are_numbered_as_the_book_numbers_them():
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    glue = {"output_type": "display_data", "data": {"application/papermill.record/text/plain": "'1'"},
            "metadata": {"scrapbook": {"name": "n", "mime_prefix": "application/papermill.record/"}}}

    def cell(meta, outputs, tags=()):
        return {"cell_type": "code", "source": "plot()", "outputs": outputs,
                "metadata": {"mystnb": {"figure": meta}, "tags": list(tags)}}

    named = {"caption": "A.", "name": "fig-a"}
    nb = {"cells": [cell(named, [figure, glue]), cell({"caption": "B."}, [figure]),  # no name: not numbered
                    cell({**named, "name": "fig-c"}, [figure], ["remove-output"]),  # not rendered
                    {"cell_type": "markdown", "source": "x", "metadata": {}},
                    cell({**named, "name": "fig-d"}, [figure]), cell({**named, "name": "fig-e"}, [])]}
    assert reader.figure_numbers(nb, 5) == [(0, "fig-a", "5.1"), (4, "fig-d", "5.2")]
    nb["cells"][0]["outputs"].append(figure)
    with pytest.raises(ValueError, match="2 displayed outputs"):
        reader.figure_numbers(nb, 5)


def test_the_launch_button_opens_the_reader_copy():
    base = f"https://colab.research.google.com/github/o/r/blob/{book.RELEASE}"
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [
        {"text": "Colab", "url": f"{base}/book/05_evaluation.ipynb"}, {"text": "Binder", "url": "b"}]}]}
    reader.point_launch_button_at_copy(None, "book/05_evaluation", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"] == [
        {"text": "Colab", "url": f"{base}/book/colab/05_evaluation.ipynb"}, {"text": "Binder", "url": "b"}]
    intro = {"header_buttons": [{"label": "launch-buttons",
                                 "buttons": [{"text": "Colab", "url": f"{base}/book/intro.md"}]}]}
    reader.point_launch_button_at_copy(None, "book/intro", "page.html", intro, None)
    assert intro["header_buttons"][0]["buttons"][0]["url"] == f"{base}/book/intro.md"


def test_the_colab_command_reports_stale_copies_and_writes_them(tmp_path, monkeypatch, capsys):
    from mtm.book import build

    assert build.main(["colab", "03", "--check"]) == 0
    assert "1 reader copies, 0 stale" in capsys.readouterr().out
    monkeypatch.setattr(reader, "COPIES", tmp_path)
    assert build.main(["colab", "03", "--check"]) == 1
    assert "03_model.ipynb: stale" in capsys.readouterr().out and not (tmp_path / "03_model.ipynb").exists()
    (tmp_path / "99_gone.ipynb").write_text("{}")
    assert build.main(["colab", "--check"]) == 1
    assert "99_gone.ipynb: no chapter" in capsys.readouterr().out

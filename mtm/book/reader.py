"""Reader copies of the chapters: the notebooks the Colab badges open, whose Markdown reads right in plain
CommonMark (Colab, JupyterLab, VS Code, GitHub's notebook view), not only in the Jupyter Book.

A chapter (``book/05_evaluation.ipynb``) is written in MyST Markdown for the book; its reader copy
(``book/colab/05_evaluation.ipynb``, :func:`copy_path`) is generated from it by :func:`reader_copy` and
keeps its cells, code and stored outputs, with:

- ``{glue:text}`key``` replaced by the value the stored run glued (myst-nb's own formatting), marked
  with :data:`STORED_MARK`, and a note under the title that those numbers are the stored book run's
  (a reader's own run prints its own in the outputs);
- ``{numref}`label``` as the number the book gives the figure (``Fig. 5.2``), linked to the caption
  the copy writes under the figure, in this copy or another; ``{doc}`05_evaluation``` as a link
  to the other reader copy, titled with its title as in the book (a page that is not a chapter: its
  file in the repository at the release); ``{cite:p}`key``` as ``(Author et al., 2024)`` linked to the
  work (its ``url`` or DOI in ``book/references.bib``);
- admonitions with the class ``dropdown`` (hints, solutions) as ``<details>`` (folded in Colab,
  Jupyter, VS Code and GitHub), the others as a block quote; ``(label)=`` targets as HTML anchors;
- each numbered figure's number and caption (cell metadata, which only the book reads) as a Markdown
  cell under the figure;
- code cells the book folds or hides (tags ``hide-input``, ``remove-input``, ``hide-cell``,
  ``remove-cell``) folded: ``#@title`` and ``cellView: form`` for Colab, ``jupyter.source_hidden``
  (``outputs_hidden`` for a removed cell) for JupyterLab and Notebook 7; VS Code and GitHub honour
  neither and show the code. ``remove-output`` cells lose their stored outputs, as the book shows none;
  glue records (outputs no front end renders) are dropped, their values being in the text.

Anything else MyST (another role or directive, a ``{{ substitution }}``) stops the conversion with a
ValueError naming it, and :func:`myst_leftovers` finds raw MyST in rendered CommonMark, so a new
construct is never published raw. ``python -m mtm.book colab`` writes every copy (``--check`` only
compares); ``python -m mtm.book execute`` rewrites a chapter's copy after executing it; a test checks
that every committed copy equals its regeneration.

The module is also a Sphinx extension (``_config.yml``): the book's Colab launch button opens the
reader copy of a chapter, as its badge does (:func:`point_launch_button_at_copy`).
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mtm.atomic import atomic_write
from mtm.book import BOOK, READER_FOLDER, RELEASE, ROOT, repository_url

#: Follows every number the text takes from the stored run's glued outputs.
STORED_MARK = "\u2020"
#: Where the reader copies live.
COPIES = BOOK / READER_FOLDER
#: Tags of code cells whose source the book folds or hides, and of those whose outputs it hides too.
FOLD_SOURCE = ("hide-input", "remove-input", "hide-cell", "remove-cell")
FOLD_OUTPUTS = ("hide-output", "hide-cell", "remove-cell")
#: Admonition-like directives and the title each takes without an argument.
ADMONITIONS = {"admonition": "", "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
               "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
               "error": "Error", "seealso": "See also", "dropdown": ""}
#: The Sphinx figure numbers' format (``numfig_format['figure']``'s default).
FIGURE_FORMAT = "Fig. %s"

#: A role (``{doc}`05_evaluation```) or a code span (kept as written), whichever comes first.
_ROLE_OR_CODE = re.compile(r"\{(?P<role>[A-Za-z][\w:+.-]*)\}`(?P<content>[^`]*)`"
                           r"|(?P<code>(?P<ticks>`+).+?(?<!`)(?P=ticks)(?!`))", re.S)
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>:{3,}|`{3,}|~{3,})\{(?P<name>[^}\s]+)\}[ \t]*(?P<argument>.*)$")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
_TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
_COMMENT = re.compile(r"^%")
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t]*$", re.M)


def copy_path(chapter: Path) -> Path:
    """The reader copy of a chapter: ``book/colab/05_evaluation.ipynb`` for ``book/05_evaluation.ipynb``."""
    return COPIES / Path(chapter).name


def _text(source) -> str:
    return source if isinstance(source, str) else "".join(source)


# ------------------------------------------------------------------------------------------ the book
@dataclass
class Document:
    """A page of the book's table of contents: its docname (``book/05_evaluation``), source file, chapter
    number (None for the unnumbered root) and title (its first ``#`` heading)."""

    docname: str
    source: str
    number: int | None
    title: str


@dataclass
class Book:
    """What converting a chapter needs to know of the whole book: every page, every numbered figure
    (label -> (docname, number)), every page's glued values (docname -> key -> text/plain) and the
    bibliography (key -> (author-year text, link))."""

    documents: dict[str, Document] = field(default_factory=dict)
    figures: dict[str, tuple[str, str]] = field(default_factory=dict)
    glue: dict[str, dict[str, str]] = field(default_factory=dict)
    citations: dict[str, tuple[str, str]] = field(default_factory=dict)
    repository: str = ""


def toc_documents(root: Path = ROOT) -> list[tuple[str, int | None]]:
    """(docname, chapter number or None) of every page of ``_toc.yml`` in order: the root is not
    numbered; the chapters are numbered from 1 when the toc's ``defaults`` number them (``numbered``)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if toc.get("format") != "jb-book" or "parts" in toc:
        raise ValueError("_toc.yml: expected a jb-book with a 'chapters' list (no parts)")
    numbered = bool(toc.get("defaults", {}).get("numbered"))
    pages = [(toc["root"], None)]
    for number, chapter in enumerate(toc.get("chapters", []), 1):
        if chapter.get("sections"):
            raise ValueError(f"_toc.yml: {chapter['file']} has sections, which reader copies do not number")
        pages.append((chapter["file"], number if numbered else None))
    return pages


def figure_numbers(notebook: dict, number: int | None) -> list[tuple[int, str, str]]:
    """(cell index, label, "5.2") of every figure the book numbers in a chapter, in order.

    myst-nb wraps each displayed output (``display_data``, ``execute_result``; not glue records) of a
    code cell with ``mystnb.figure`` metadata in a figure, unless the cell's outputs are removed
    (``remove-output``, ``remove-cell``), and Sphinx numbers the figures that have a caption and a name,
    per chapter with ``numfig_secnum_depth: 1`` (Fig. 5.2 is the second of chapter 5). A figure cell
    with more than one displayed output (two figures of one name, which fails the book's build) is a
    ValueError."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        tags = cell.get("metadata", {}).get("tags", [])
        if not figure or {"remove-output", "remove-cell"} & set(tags):
            continue
        if not (str(figure.get("caption", "")).strip() and str(figure.get("name", "")).strip()):
            continue
        shown = [o for o in cell.get("outputs", [])
                 if o.get("output_type") in ("display_data", "execute_result") and not _is_glue(o)]
        if len(shown) > 1:
            raise ValueError(f"cell {index}: {len(shown)} displayed outputs under the figure name {figure['name']!r}")
        if shown:
            count = len(found) + 1
            found.append((index, str(figure["name"]), f"{number}.{count}" if number else str(count)))
    return found


def _is_glue(output: dict) -> bool:
    return "scrapbook" in output.get("metadata", {})


def glue_values(notebook: dict) -> dict[str, str]:
    """Every key a notebook's stored outputs glue, with its ``text/plain`` data as stored."""
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if not _is_glue(output):
                continue
            record = output["metadata"]["scrapbook"]
            prefix = record.get("mime_prefix", "")
            data = {kind[len(prefix):]: value for kind, value in output.get("data", {}).items()}
            if "text/plain" in data:
                values[record["name"]] = _text(data["text/plain"])
    return values


def _work_link(fields) -> str:
    """The link to a work from its BibTeX fields: its ``url``, else its DOI, else its arXiv ``eprint``."""
    if "url" in fields:
        return fields["url"]
    if "doi" in fields:
        return f"https://doi.org/{fields['doi']}"
    if "eprint" in fields and fields.get("archivePrefix", fields.get("archiveprefix", "")).lower() == "arxiv":
        return f"https://arxiv.org/abs/{fields['eprint']}"
    return ""


def bibliography(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (``Zhang et al., 2024``, a link to the work: :func:`_work_link`, "" without one) of every
    entry of a BibTeX file; the text is the book's (:func:`mtm.book.bibliography.author_year`), with a and
    b where two entries share it."""
    from pybtex.database import parse_file

    from mtm.book.bibliography import AuthorYearLabelStyle, AuthorYearSortingStyle  # loads pybtex: citations only

    entries = parse_file(str(path), "bibtex").entries
    ordered = AuthorYearSortingStyle().sort(list(entries.values()))
    labels = dict(zip((entry.key for entry in ordered), AuthorYearLabelStyle().format_labels(ordered)))
    return {key: (labels[key], _work_link(entry.fields)) for key, entry in entries.items()}


def load_book(root: Path = ROOT) -> Book:
    """Everything :func:`convert_markdown` needs, read from the repository at ``root``."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    book = Book(repository=repository_url(root / "_config.yml"))
    for docname, number in toc_documents(root):
        notebook_path = root / f"{docname}.ipynb"
        path = notebook_path if notebook_path.exists() else root / f"{docname}.md"
        if path.suffix == ".ipynb":
            notebook = nbformat.read(path, as_version=4)
            first = "\n".join(_text(c.source) for c in notebook.cells if c.cell_type == "markdown")
            book.glue[docname] = glue_values(notebook)
            for _, label, shown in figure_numbers(notebook, number):
                book.figures[label] = (docname, shown)
        else:
            first = path.read_text()
        title = _TITLE.search(first)
        book.documents[docname] = Document(docname, path.relative_to(root).as_posix(), number,
                                           title.group(1) if title else docname)
    for bibfile in config.get("bibtex_bibfiles", []):
        book.citations.update(bibliography(root / bibfile))
    return book


# ------------------------------------------------------------------------------------------ Markdown
@dataclass
class Conversion:
    """The page being converted (its docname) and what was converted, counted by kind."""

    book: Book
    docname: str
    counts: Counter = field(default_factory=Counter)

    def link_to(self, docname: str, anchor: str = "") -> str:
        """The link from this reader copy to a page: another reader copy for a chapter, the page's file
        in the repository at the release otherwise; ``anchor`` a target within it."""
        fragment = f"#{anchor}" if anchor else ""
        if docname == self.docname:
            return fragment
        source = self.book.documents[docname].source
        if source.endswith(".ipynb"):
            return f"{posixpath.basename(source)}{fragment}"
        return f"{self.book.repository}/blob/{RELEASE}/{source}{fragment}"


def _resolve_doc(target: str, docname: str) -> str:
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(docname), target))


def _explicit(content: str) -> tuple[str | None, str]:
    """A role's ``title <target>`` form split; (None, content) without a title."""
    match = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", content.strip())
    return (match.group(1), match.group(2).strip()) if match and match.group(1) else (None, content.strip())


def _glue(content: str, conversion: Conversion) -> str:
    from myst_nb.core.variables import format_plain_text

    parts = content.rsplit(":", 1)  # as myst-nb reads ``key:format``, then ``page::key``
    key, spec = parts if len(parts) == 2 else (parts[0], "s")
    docname = conversion.docname
    if "::" in key:
        page, key = key.split("::", 1)
        docname = _resolve_doc(page, conversion.docname)
    values = conversion.book.glue.get(docname, {})
    if key not in values:
        raise ValueError(f"{conversion.docname}: glue key {key!r} is in no stored output of {docname} "
                         "(execute the chapter first)")
    conversion.counts["glue"] += 1
    return format_plain_text(values[key], spec) + STORED_MARK


def _numref(content: str, conversion: Conversion) -> str:
    title, label = _explicit(content)
    if label not in conversion.book.figures:
        raise ValueError(f"{conversion.docname}: {{numref}} target {label!r} is no numbered figure of the book")
    docname, number = conversion.book.figures[label]
    text = (title.replace("%s", number).replace("{number}", number) if title else FIGURE_FORMAT % number)
    conversion.counts["numref"] += 1
    return f"[{text}]({conversion.link_to(docname, label)})"


def _doc(content: str, conversion: Conversion) -> str:
    title, target = _explicit(content)
    docname = _resolve_doc(target, conversion.docname)
    if docname not in conversion.book.documents:
        raise ValueError(f"{conversion.docname}: {{doc}} target {target!r} is not a page of _toc.yml")
    conversion.counts["doc"] += 1
    return f"[{title or conversion.book.documents[docname].title}]({conversion.link_to(docname)})"


def _cite(role: str, content: str, conversion: Conversion) -> str:
    keys = [key.strip() for key in content.split(",") if key.strip()]
    missing = [key for key in keys if key not in conversion.book.citations]
    if missing or not keys:
        raise ValueError(f"{conversion.docname}: {{{role}}} keys {missing or content!r} are not in the bibliography")
    unlinked = [key for key in keys if not conversion.book.citations[key][1]]
    if unlinked:
        raise ValueError(f"{conversion.docname}: cited {unlinked} have no url, doi or arXiv eprint to link to")
    conversion.counts["cite"] += 1
    if role == "cite:p":
        return "(" + "; ".join(f"[{conversion.book.citations[k][0]}]({conversion.book.citations[k][1]})"
                               for k in keys) + ")"
    parts = []
    for key in keys:  # cite:t, "Ye and Pandarinath (2021)"
        text, link = conversion.book.citations[key]
        who, _, year = text.rpartition(", ")
        parts.append(f"[{who}]({link}) ({year})")
    return "; ".join(parts)


ROLES = {"glue:text": _glue, "numref": _numref, "doc": _doc,
         "cite:p": lambda content, conversion: _cite("cite:p", content, conversion),
         "cite:t": lambda content, conversion: _cite("cite:t", content, conversion)}


def _convert_inline(text: str, conversion: Conversion) -> str:
    """Replace every role of a paragraph (code spans kept as they are)."""
    def replace(match: re.Match) -> str:
        if match.group("code"):
            return match.group("code")
        role = match.group("role")
        if role not in ROLES:
            raise ValueError(f"{conversion.docname}: the role {{{role}}} has no CommonMark form here; "
                             f"expected one of {sorted(ROLES)}")
        return ROLES[role](match.group("content"), conversion)

    return _ROLE_OR_CODE.sub(replace, text)


def _admonition(name: str, argument: str, options: dict, body: str, conversion: Conversion) -> list[str]:
    title = _convert_inline(argument.strip(), conversion) or ADMONITIONS[name] or "Details"
    classes = options.get("class", "").split()
    if name == "dropdown" or "dropdown" in classes:
        conversion.counts["admonition (details)"] += 1
        return ["<details>", f"<summary>{title}</summary>", "", *body.splitlines(), "", "</details>"]
    conversion.counts["admonition (block quote)"] += 1
    return [f"> **{title}**", ">", *(f"> {line}".rstrip() for line in body.splitlines())]


def _convert_lines(lines: list[str], conversion: Conversion) -> list[str]:
    out, paragraph, i = [], [], 0

    def flush():
        if paragraph:
            out.extend(_convert_inline("\n".join(paragraph), conversion).split("\n"))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        directive, fence = _DIRECTIVE.match(line), _FENCE.match(line)
        if directive:
            flush()
            mark, name = directive.group("fence"), directive.group("name")
            if name not in ADMONITIONS:
                raise ValueError(f"{conversion.docname}: the directive {{{name}}} has no CommonMark form here; "
                                 f"expected one of {sorted(ADMONITIONS)}")
            closing = (j for j in range(i + 1, len(lines))  # a fence at least as long: an inner one is shorter
                       if set(lines[j].strip()) == {mark[0]} and len(lines[j].strip()) >= len(mark))
            end = next(closing, None)
            if end is None:
                raise ValueError(f"{conversion.docname}: the directive {{{name}}} is never closed ({mark})")
            body, options = lines[i + 1:end], {}
            while body and _OPTION.match(body[0]):
                option = _OPTION.match(body.pop(0))
                options[option.group("key")] = option.group("value")
            if body and body[0].strip() == "---":
                raise ValueError(f"{conversion.docname}: YAML options of {{{name}}} are not supported; use :key: lines")
            indent = directive.group("indent")
            inner = "\n".join(_convert_lines([b[len(indent):] if b.startswith(indent) else b for b in body],
                                             conversion)).strip("\n")
            out.extend(indent + b if b else b
                       for b in _admonition(name, directive.group("argument"), options, inner, conversion))
            i = end + 1
        elif fence:
            flush()
            mark = fence.group("fence")
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(mark) and set(lines[j].strip()) == {mark[0]}), len(lines) - 1)
            out.extend(lines[i:end + 1])
            i = end + 1
        elif _TARGET.match(line):
            flush()
            out.append(f'<a id="{_TARGET.match(line).group("label")}"></a>')
            conversion.counts["target"] += 1
            i += 1
        elif _COMMENT.match(line):
            flush()
            conversion.counts["comment"] += 1
            i += 1
        elif not line.strip():
            flush()
            out.append(line)
            i += 1
        else:
            paragraph.append(line)
            i += 1
    flush()
    return out


def convert_markdown(text: str, conversion: Conversion) -> str:
    """A MyST Markdown text of the page ``conversion.docname`` in plain CommonMark (see the module)."""
    return "\n".join(_convert_lines(text.split("\n"), conversion))


# ------------------------------------------------------------------------------------------ raw MyST
_LEFTOVER_TEXT = (
    (re.compile(r"\{[A-Za-z][\w:+.-]*\}$"), "a role"),  # text just before a code span: {doc}`x`
)
_LEFTOVER_LINE = (
    (re.compile(r"^[ \t]*:{3,}"), "a colon-fenced directive"),
    (re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$"), "a (label)= target"),
    (re.compile(r"^[ \t]*:[\w-]+:[ \t]"), "a directive option"),
    (re.compile(r"\{glue(?::\w*)?\}"), "a glue role"),
    (re.compile(r"\{\{.*?\}\}"), "a substitution"),
)


def myst_leftovers(markdown: str) -> list[str]:
    """The raw MyST a CommonMark renderer would print as text in ``markdown`` (empty when none): a
    role (``{doc}`` before a code span), a directive (a ``:::`` line, or a code fence whose info string
    starts with ``{``), a ``(label)=`` target, a directive's ``:option:`` line, a glue role or a
    ``{{ substitution }}``. It renders with markdown-it-py in CommonMark mode and looks at what the
    renderer leaves as text, so code blocks and code spans are not searched."""
    from markdown_it import MarkdownIt

    found = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type == "fence" and token.info.strip().startswith("{"):
            found.append(f"a directive ```{token.info.strip()}")
        if token.type != "inline":
            continue
        children = token.children or []
        for k, child in enumerate(children):
            if child.type != "text":
                continue
            following = children[k + 1] if k + 1 < len(children) else None
            for pattern, what in _LEFTOVER_TEXT:
                if following is not None and following.type == "code_inline" and pattern.search(child.content):
                    found.append(f"{what}: {child.content[-30:]}`{following.content}`")
        text = "".join(c.content if c.type == "text" else "\n" if c.type in ("softbreak", "hardbreak") else " "
                       for c in children)
        for line in text.split("\n"):
            for pattern, what in _LEFTOVER_LINE:
                if pattern.search(line):
                    found.append(f"{what}: {line.strip()[:60]}")
    return found


# ------------------------------------------------------------------------------------------ notebooks
def _fold(cell, title: str) -> None:
    """Fold a code cell's source in Colab (``#@title`` and ``cellView: form``: only the title shows)
    and in JupyterLab (``jupyter.source_hidden``). A cell magic must stay first, so it gets no title."""
    source = _text(cell.source)
    if not source.startswith("%%"):
        cell.source = f"#@title {title}\n{source}"
        cell.metadata["cellView"] = "form"
    cell.metadata.setdefault("jupyter", {})["source_hidden"] = True


def _stored_run_note(notebook, chapter: Path, glued: int) -> str:
    record = notebook.metadata.get("mtm", {})
    settings = record.get("settings", "?")
    text = (f"> **Reader copy** of `book/{chapter.name}`, for Colab, Jupyter and GitHub, generated by "
            "`python -m mtm.book colab` (edit the chapter, not this copy). The outputs are those of the "
            f"stored book run (settings '{settings}')")
    if glued:
        text += (f", and so are the numbers the text marks {STORED_MARK}; running the notebook prints your run's "
                 "own numbers in its outputs")
    return text + "."


def reader_copy(chapter: Path, book: Book | None = None) -> tuple[nbformat.NotebookNode, Counter]:
    """The reader copy of a chapter's notebook (see the module) and the count of what was converted:
    MyST constructs (glue, numref, doc, cite, admonitions, targets), figure captions written, code
    cells folded, outputs dropped."""
    chapter = Path(chapter)
    book = book or load_book()
    docname = Path(chapter).resolve().relative_to(ROOT).with_suffix("").as_posix()
    if docname not in book.documents:
        raise ValueError(f"chapter: {chapter.name} is not a page of _toc.yml")
    notebook = nbformat.read(chapter, as_version=4)
    reader = copy.deepcopy(notebook)
    conversion = Conversion(book, docname)
    number = book.documents[docname].number
    figures = {index: (label, shown) for index, label, shown in figure_numbers(notebook, number)}
    cells = []
    for index, cell in enumerate(reader.cells):
        cells.append(cell)
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(_text(cell.source), conversion)
            continue
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        kept = [o for o in cell.get("outputs", []) if not _is_glue(o)]
        conversion.counts["glue records dropped"] += len(cell.get("outputs", [])) - len(kept)
        if "remove-output" in tags and kept:
            conversion.counts["remove-output outputs dropped"] += len(kept)
            kept = []
        cell.outputs = kept
        if tags & set(FOLD_SOURCE):
            previous = _text(notebook.cells[index - 1].source) if index else ""
            solution = "hide-input" in tags and re.search(r"\{admonition\}[ \t]*Solution|<summary>Solution</summary>", previous)
            title = ("Solution" if solution else "Code of the output below (hidden in the book)"
                     if tags & {"hide-input", "remove-input"} else "Code and outputs hidden in the book")
            _fold(cell, title)
            conversion.counts["code cells folded"] += 1
        if tags & set(FOLD_OUTPUTS):
            cell.metadata.setdefault("jupyter", {})["outputs_hidden"] = True
        if index in figures and cell.outputs:
            label, shown = figures[index]
            caption = convert_markdown(str(cell.metadata["mystnb"]["figure"]["caption"]).strip(), conversion)
            caption_cell = nbformat.v4.new_markdown_cell(f'<a id="{label}"></a>**{FIGURE_FORMAT % shown}.** {caption}')
            caption_cell.id = f"{cell.get('id', index)}-caption"[:64]
            cells.append(caption_cell)
            conversion.counts["figure captions"] += 1
    reader.cells = cells
    glued = conversion.counts["glue"]
    first = reader.cells[0]
    lines = _text(first.source).split("\n")
    at = next((k + 1 for k, line in enumerate(lines) if "colab-badge.svg" in line),
              next((k + 1 for k, line in enumerate(lines) if line.startswith("# ")), 0))
    first.source = "\n".join([*lines[:at], "", _stored_run_note(notebook, chapter, glued), *lines[at:]])
    reader.metadata.pop("jupytext", None)  # a copy has no .py twin
    return reader, conversion.counts


def copy_text(chapter: Path, book: Book | None = None) -> tuple[str, Counter]:
    """The reader copy of a chapter as the file's text (``nbformat.writes``), and its counts."""
    reader, counts = reader_copy(chapter, book)
    return nbformat.writes(reader) + "\n", counts


def write_copies(chapters: list[Path], check: bool = False) -> tuple[list[Path], Counter]:
    """Write (or, with ``check``, only compare) the reader copies of ``chapters``; returns the copies
    that were stale (written, or differing under ``check``) and the counts summed over the chapters.
    A copy whose Markdown still holds raw MyST is refused with a ValueError."""

    book, stale, total = load_book(), [], Counter()
    for chapter in chapters:
        text, counts = copy_text(chapter, book)
        total.update(counts)
        reader = nbformat.reads(text, as_version=4)
        raw = [f"cell {i}: {problem}" for i, cell in enumerate(reader.cells) if cell.cell_type == "markdown"
               for problem in myst_leftovers(_text(cell.source))]
        if raw:
            raise ValueError(f"{chapter.stem}: raw MyST left in its reader copy: " + "; ".join(raw[:3]))
        target = copy_path(chapter)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp: Path(tmp).write_text(text))
    return stale, total


# ------------------------------------------------------------------------------------------ Sphinx
def point_launch_button_at_copy(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler run after sphinx-book-theme's launch buttons: the Colab button of a
    chapter that has a reader copy opens the copy (``.../book/colab/05_evaluation.ipynb``)."""
    source = ROOT / f"{pagename}.ipynb"
    if not copy_path(source).exists():
        return
    chapter_path = f"/{pagename}.ipynb"
    copy_url = f"/{Path(pagename).parent.as_posix()}/{READER_FOLDER}/{Path(pagename).name}.ipynb"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") == "Colab" and button.get("url", "").endswith(chapter_path):
                button["url"] = button["url"][: -len(chapter_path)] + copy_url


def setup(app) -> dict:
    """The Sphinx extension: the launch button rewrite, after the theme's own (priority 501)."""
    app.connect("html-page-context", point_launch_button_at_copy, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

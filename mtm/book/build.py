"""The build tool of the book: executes chapters in place and records how, and checks that the stored
outputs may be published. The chapters never import it; people and CI run it as
``python -m mtm.book execute [CHAPTER ...] [--settings book] [--stale]``, ``python -m mtm.book check`` and
``python -m mtm.book colab [CHAPTER ...] [--check]``.

``execute`` runs a chapter with papermill and records in the notebook's metadata (key ``mtm``) the hash
of its code cells, the settings, the package version and git commit, the machine and the wall time
(``wall_time_s``, which :func:`mtm.book.recorded_minutes` reads back for the chapters' announcements).
``check`` lists what is wrong with the stored outputs (:func:`notebook_problems`) and reports how many
decimals each chapter's Markdown types by hand instead of gluing them (:func:`unglued_decimals`), and
what keeps its pages from the house rules: solutions that do not run (:func:`exercise_problems`), code
wider than the content column (:func:`long_code_lines`), figures without a number (:func:`figure_problems`),
the share of its visible code that is the book's machinery (:func:`machinery_share`) and its longest code
cell (:func:`code_cell_lengths`).
``colab`` writes the chapters' reader copies (``book/colab/``, :mod:`mtm.book.reader`), the notebooks the
Colab badges open, whose Markdown is plain CommonMark; ``execute`` rewrites a chapter's copy after executing
it, and ``colab --check`` lists stale copies without writing them.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import nbformat

from mtm import __version__
from mtm.atomic import atomic_write
from mtm.book import BOOK, CHAPTER_SETTINGS, _is_injected, code_hash, CODE_COLUMN, METADATA_KEY, PUBLISHED_SETTINGS, ROOT, RUNS_ENV, SETTINGS, git_commit, machine
from mtm.book import reader
from mtm.plots import plot_mtm_schematic, use_style
from mtm.reproduce.paper import (PAPER_TABLE2, PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, PAPER_TABLE6,
                                 PAPER_TABLE7)
from mtm.stats import LEVEL


def chapter_paths(names=()) -> list[Path]:
    """The chapters' notebooks, all of them or those named (``04``, ``04_training`` or a path)."""
    every = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).stem
        match = [p for p in every if p.stem == stem or p.stem.split("_")[0] == stem]
        if not match:
            raise ValueError(f"chapter: {name!r} is not a chapter; expected one of {[p.stem for p in every]}")
        chosen += match
    return chosen


#: Phrases of output that belong to a smoke run or a failure, never to a published page.
FORBIDDEN_OUTPUT = (re.compile(r"Traceback \(most recent call last\)"), re.compile(r"\bsmoke\b", re.I),
                    re.compile(r"MTM_SMOKE"), re.compile(r"say(s)? nothing"), re.compile(r"nothing can be read"),
                    re.compile(r"\|\s*\d+/\d+ \["), re.compile(r"IProgress not found"),  # progress bars, their warning
                    re.compile(r"\w+Warning: "),  # a warning printed into a page is a defect to fix, not to publish
                    # a path of the machine that ran the chapter: absolute (not the path of a URL nor a relative
                    # path), a Windows drive, the runs folder of the build or the home cache
                    re.compile(r"(?<![\w.~/-])/(?:tmp|home|root|work|Users|private|var/folders)/"),
                    re.compile(r"file:///"), re.compile(r"(?<![\w])[A-Za-z]:\\{1,2}\w"),
                    re.compile(r"\bruns[/\\]book[/\\]"), re.compile(r"\.cache[/\\]mtm\b"))


def output_text(output: dict) -> str:
    """The text a notebook output shows (a stream's text, a result's plain/Markdown/HTML, an error's traceback)."""
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", [])) + output.get("ename", "")
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else "".join(text)
    data = output.get("data", {})
    parts = [data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def has_outputs(notebook: dict) -> bool:
    return any(cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")


def notebook_problems(notebook: dict) -> list[str]:
    """Why a notebook's stored outputs may not be published (empty when they may): no execution
    record, settings other than ``book``, code changed since execution, an error or a traceback, a
    smoke-only phrase in an output."""
    record = notebook.get("metadata", {}).get(METADATA_KEY)
    if record is None:
        return ["holds outputs but no execution record (execute it with python -m mtm.book execute)"]
    problems = []
    if record.get("settings") != PUBLISHED_SETTINGS:
        problems.append(f"executed with settings {record.get('settings')!r}, not {PUBLISHED_SETTINGS!r}")
    if record.get("code_hash") != code_hash(notebook):
        problems.append("its code changed after it was executed (stale: python -m mtm.book execute --stale)")
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: an error output ({output.get('ename')})")
                continue
            text = output_text(output)
            for pattern in FORBIDDEN_OUTPUT:
                if pattern.search(text):
                    problems.append(f"cell {index}: output matches {pattern.pattern!r}")
    return problems


#: The one "Skipped" a chapter may print: the released weights are downloaded only when the reader opts in.
OPT_IN_DOWNLOAD = "Skipped the download: set RELEASED_FROM_HUB = True"


def run_problems(notebook: dict, settings: str) -> list[str]:
    """Why a chapter's test execution with ``settings`` does not pass (empty when it does): an error
    output or a printed traceback, its settings line or closing line (``Settings 'smoke'``, ``Executed
    with settings 'smoke'``) missing or naming other settings, or a "Skipped" (a part that did not run)
    other than the opt-in download of released weights (:data:`OPT_IN_DOWNLOAD`)."""
    problems = [f"cell {i}: an error output ({o.get('ename')}: {o.get('evalue')})"
                for i, cell in enumerate(notebook["cells"]) for o in cell.get("outputs", [])
                if o.get("output_type") == "error"]
    printed = "".join(output_text(o) for cell in notebook["cells"] for o in cell.get("outputs", []))
    if "Traceback" in printed:
        problems.append("a traceback printed: " + printed[printed.index("Traceback"):][:300])
    for line in (f"Settings '{settings}'", f"Executed with settings '{settings}'"):
        if line not in printed:
            problems.append(f"it never printed {line!r}: it did not run with the {settings} settings to its end")
    unplanned = printed.replace(OPT_IN_DOWNLOAD, "")
    if "Skipped" in unplanned:
        at = unplanned.index("Skipped")
        problems.append("a part was skipped: " + unplanned[max(0, at - 200):at + 200])
    return problems


def coalesce_streams(notebook: dict) -> int:
    """Merge each code cell's consecutive outputs of one stream (stdout, stderr) into one output, as
    Jupyter shows them: a log printed line by line then renders as one block, not one box per line.
    Only adjacent outputs of the same stream merge (a figure between two prints keeps them apart).
    Returns the number of outputs merged away."""
    merged_away = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            previous = kept[-1] if kept else None
            if (previous is not None and output["output_type"] == "stream" == previous["output_type"]
                    and output["name"] == previous["name"]):
                previous["text"] = output_text(previous) + output_text(output)
                merged_away += 1
            else:
                kept.append(output)
        cell["outputs"] = kept
    return merged_away


def execute(notebook_path: Path, settings: str = PUBLISHED_SETTINGS, timeout: int = 1800) -> dict:
    """Execute one chapter in place with papermill (``SETTINGS`` set to ``settings``) and record
    how in its metadata; returns the record. The notebook is written only after a successful run."""
    import papermill

    notebook_path = Path(notebook_path)
    if settings not in SETTINGS:
        raise ValueError(f"settings: expected one of {SETTINGS}, got {settings!r}")
    # progress bars off: in a stored notebook they are thousands of partial lines, not a bar
    env = {RUNS_ENV: os.environ.get(RUNS_ENV) or str(ROOT / "runs" / "book"), "TQDM_DISABLE": "1"}
    previous = {k: os.environ.get(k) for k in (*env, "MTM_SMOKE")}
    os.environ.update(env)
    os.environ.pop("MTM_SMOKE", None)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / notebook_path.name
            papermill.execute_notebook(str(notebook_path), str(out), parameters={"SETTINGS": settings},
                                       kernel_name="python3", cwd=str(notebook_path.parent), progress_bar=False,
                                       execution_timeout=timeout)
            executed = nbformat.read(out, as_version=4)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    wall = time.perf_counter() - started
    executed.cells = [cell for cell in executed.cells if not _is_injected(cell)]
    for cell in executed.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    coalesce_streams(executed)
    executed.metadata.pop("papermill", None)
    record = {"settings": settings, "code_hash": code_hash(executed), "package_version": __version__,
              "commit": git_commit(), "machine": machine(), "wall_time_s": round(wall, 1),
              "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    executed.metadata[METADATA_KEY] = record
    atomic_write(notebook_path, lambda tmp: nbformat.write(executed, tmp))
    return record


# ------------------------------------------------------------------------- numbers in the prose
#: Constants of the package a chapter's prose may state as typed decimals (inputs, not results of a run),
#: as ``module:NAME``; a dict or tuple contributes every number it holds.
PACKAGE_CONSTANTS = ("mtm.data.synthetic:BIN_SIZE", "mtm.data.synthetic:WINDOW", "mtm.masking:DEFAULT_RATIO",
                     "mtm.masking:SINGLE_SCHEME_RATIO", "mtm.data.session:SPLIT_FRACTIONS")
#: Further named constants one chapter's prose may state, {chapter: {name: value}}; keep it short: a
#: number a run produces is glued instead.
NAMED_CONSTANTS: dict[str, dict[str, float]] = {
    # the IBL task's block priors P(left) and the reference's reaction-time filter (s); chapter 1's threshold
    # of a nearly silent neuron (Hz) and the generator's range of private amplitudes (mtm.data.synthetic)
    "01_data": {"BLOCK_PRIORS": (0.2, 0.5, 0.8), "REACTION_TIME_S": (0.08, 2.0), "LOW_RATE_HZ": 0.5,
                "PRIVATE_GAIN": (0.3, 0.9)},
    "04_training": {"AdamW weight decay (TrainConfig)": 0.01, "OneCycleLR beta1, high and low": (0.95, 0.85),
                    "one-cycle warm-up, fraction of the steps (TrainConfig)": 0.15,
                    "compute capability of native bf16": 8.0},
    "06_decoding": {"the reference's reaction-time filter (s)": (0.08, 2.0),
                    "synthetic reaction times clipped at (s)": 1.2,
                    "the reference's behaviour trial masks keep, fewest, most, mean": (0.38, 0.81, 0.63)},
}

#: A code block: a fence of backticks or tildes without a directive, or with a code directive
#: (a directive's fence, ```{note}, holds prose and is read).
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})(?![`~]|[ \t]*\{(?!code))[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.S | re.M)
_EXEMPT = re.compile("|".join((
    r"\{glue(?::\w*)?\}`[^`]*`",            # a glued number: {glue}`name`, {glue:text}`name:.2f`
    r"(?m:^[ \t]*#+[ \t]+\d+(?:\.\d+)*)",   # a heading's section number (## 2.1 Masks)
    r"(?m:^[ \t]*:[\w-]+:[^\n]*$)",           # a directive's option (:width: 80%)
    r"\\(?:tag|label)\{[^}]*\}",             # an equation's number or label in math
    r"(?:\b(?:Fig(?:ure)?s?|Eqs?|Equations?|Sections?|Chapters?|Tables?)|§)\.?[ \t~]*\(?\d+(?:\.\d+)+\)?",  # Fig. 5.2
    r"`[^`\n]*`",                           # inline code: a name or an expression, not a claim
    r"\]\([^)\s]*\)|https?://\S+|<!--.*?-->",  # link targets, URLs, HTML comments
    r"arXiv:?\s*\d{4}\.\d{4,5}(?:v\d+)?",  # an arXiv identifier
    r"\b\d+(?:\.\d+){2,}\b",                # a version with three parts or more (1.0.4)
    r"(?:\bv|\bversion\s|\bPython\s|\bJupyter Book\s|\bmyst-nb\s|\bmystmd\s|\btorch\s)\d+\.\d+",  # 3.11, v0.1
)), re.S | re.I)
#: A decimal (0.44, .44, -0.04, \u22120.05, +0.02) or a percentage (37 %, 37%, 12.5 %).
_DECIMAL = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d*\.\d+(?![\w.]*\d)|\d+(?=[ \t\u00a0\u202f]?%))"
                      r"(?:[ \t\u00a0\u202f]?%)?")
#: Fractions any chapter may state as percentages (0 %, 100 %), besides the intervals' level (95 %,
#: :data:`mtm.stats.LEVEL`); as decimals they are results like any other (an "exactly 0.00" is measured).
PERCENT_CONSTANTS = {"none": 0.0, "all": 1.0}
_CITES_PAPER = re.compile(r"\bpaper\b|\bTables?\s+\d|\bZhang\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(*])")


class UngluedDecimal(NamedTuple):
    """A decimal typed into a chapter's Markdown: the cell's index, the number as typed, its sentence."""
    cell: int
    number: str
    context: str


def paper_constants() -> set[float]:
    """Every number of the paper's tables (:mod:`mtm.reproduce.paper`), Table 7's mask ratios included."""
    values = {v for table in (PAPER_TABLE2, PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, PAPER_TABLE6)
              for row in table.values() for v in row.values()}
    for by_ratio in PAPER_TABLE7.values():
        for ratio, row in by_ratio.items():
            values |= {ratio, *row.values()}
    return values


def _numbers(value):
    """Every number in a value, nested dicts, lists and tuples included (booleans are not numbers)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)


def settings_constants(chapter: str | None = None) -> set[float]:
    """The numbers a chapter's prose may state anywhere: its settings (all three; every chapter's when
    ``chapter`` is None), :data:`PACKAGE_CONSTANTS` and its :data:`NAMED_CONSTANTS`."""
    import importlib

    chapters = [chapter] if chapter else list(CHAPTER_SETTINGS)
    values = set(_numbers([CHAPTER_SETTINGS.get(name, {}) for name in chapters]))
    values |= set(_numbers([NAMED_CONSTANTS.get(name, {}) for name in chapters]))
    for spec in PACKAGE_CONSTANTS:
        module, name = spec.split(":")
        values |= set(_numbers(getattr(importlib.import_module(module), name)))
    return values


def _matches(typed: str, allowed: set[float]) -> bool:
    """Whether a typed decimal is one of ``allowed`` (0.020 is 0.02; 0.9 is not 0.95); a percentage is
    its fraction (30 % is 0.3), and may also be none, all or the intervals' level (0 %, 100 %, 95 %)."""
    number = typed.rstrip("% \t\u00a0\u202f").replace("\u2212", "-")
    digits = len(number.split(".")[1]) if "." in number else 0
    value = float(number)
    if typed.endswith("%"):
        value, digits = value / 100, digits + 2
    if typed.endswith("%"):
        allowed = {*allowed, *PERCENT_CONSTANTS.values(), LEVEL}
    return any(abs(v - value) < 0.5 * 10.0 ** -(digits + 3) for v in allowed)


def _segments(text: str):
    """(segment, whether it cites the paper) for each sentence of a Markdown text and each row of its
    tables; a table cites the paper when it or the paragraph just before it (its caption) does."""
    previous_cites = False
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.strip().splitlines() if line.strip()]
        if lines and all(line.startswith("|") for line in lines):
            cites = previous_cites or bool(_CITES_PAPER.search(paragraph))
            yield from ((line, cites) for line in lines)
        else:
            sentences = _SENTENCE_END.split(" ".join(lines))
            yield from ((sentence, bool(_CITES_PAPER.search(sentence))) for sentence in sentences)
            cites = bool(_CITES_PAPER.search(paragraph))
        previous_cites = cites


def unglued_decimals(notebook: dict, chapter: str | None = None) -> list[UngluedDecimal]:
    """Every decimal number typed into a notebook's Markdown that nothing ties to an output.

    The rule. A decimal is digits, a point, digits, with or without its leading zero and sign
    (``0.44``, ``.44``, ``-1.3``, ``\u22120.05``, ``+0.02``); a percentage (``37 %``, ``12.5%``) counts
    as its fraction. In Markdown cells only, these are not prose numbers and are skipped: glued numbers
    (the ``{glue}``, ``{glue:}`` and ``{glue:text}`` roles), code (code blocks and inline code; a
    directive's fence such as an admonition is prose and is read), link targets and URLs, HTML
    comments, arXiv identifiers, version numbers (three parts, or after ``v``, "version", "Python",
    "torch", ...), a heading's section number, a directive's options, and the numbers of figures,
    equations, sections and tables ("Fig. 5.2", "Eq. (2.1)", ``\tag{2.1}``). Math is not skipped: a
    number inside ``$...$`` is a number on the page like any other (notation, ``$10^{-4}$`` or
    ``$x_{t,n}$``, holds no decimal). A decimal is allowed when it equals (0.020 is 0.02; 0.9 is not 0.95):

    - a number of the chapter's settings (:data:`mtm.book.CHAPTER_SETTINGS`, any of the three) or of
      its :data:`NAMED_CONSTANTS`, anywhere in the chapter (inputs, not results); a percentage also
      when it is 0 %, 100 % or the intervals' level (:data:`PERCENT_CONSTANTS`, 95 %);
    - a number of the paper's tables (:func:`paper_constants`), only in a sentence or table row that
      cites the paper ("paper", "Table 3", "Zhang"; a table row: its table or the paragraph just
      before it): the paper has many two-digit numbers, and a result of our run that happens to
      equal one of them is still a typed result.

    Everything else is returned, in order, with its sentence: a result typed by hand, which a
    re-execution could falsify. ``chapter`` (a notebook's stem, e.g. ``05_evaluation``) picks the
    settings and named constants; None allows every chapter's.
    """
    settings, paper = settings_constants(chapter), paper_constants()
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        text = _EXEMPT.sub(" ", _FENCE.sub(" ", text))
        for segment, cites_paper in _segments(text):
            for match in _DECIMAL.finditer(segment):
                typed = match.group()
                if _matches(typed, settings) or (cites_paper and _matches(typed, paper)):
                    continue
                found.append(UngluedDecimal(index, typed, " ".join(segment.split())[:160]))
    return found


def _markdown(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


# ------------------------------------------------------------------------- exercises, code, figures
_HEADING2 = re.compile(r"^##[ \t]+(.*)$", re.M)
_DIRECTIVE = re.compile(r"^[ \t]*(:{3,}|`{3,})\{(?:admonition|dropdown)\}[ \t]*(.*)$")
#: A folded HTML block, which every Markdown renderer shows (Jupyter, Colab, GitHub and the book): its
#: ``<summary>`` on the opening line or the next, its body up to the line ``</details>``.
_DETAILS = re.compile(r"^[ \t]*<details(?:\s[^>]*)?>[ \t]*(.*)$", re.I)
_SUMMARY = re.compile(r"^[ \t]*<summary(?:\s[^>]*)?>(.*?)</summary>", re.I)
_DETAILS_END = re.compile(r"^[ \t]*</details>[ \t]*$", re.I)
_CODE_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})")
_FOLDED = ("hide-input", "hide-cell")


def _solution_opening(lines: list[str], i: int):
    """The title of the folded block that ``lines[i]`` opens ('' when it opens none) and a test of the
    line that closes it: an admonition or dropdown directive (its fence), or ``<details>`` (its
    ``<summary>``, tags removed, on the same line or the next; closed by ``</details>``)."""
    directive = _DIRECTIVE.match(lines[i])
    if directive:
        fence = directive.group(1)
        return directive.group(2).strip(), lambda line: line.strip() == fence
    details = _DETAILS.match(lines[i])
    if details:
        rest = details.group(1) if details.group(1).strip() else (lines[i + 1] if i + 1 < len(lines) else "")
        summary = _SUMMARY.match(rest)
        title = re.sub(r"<[^>]*>", "", summary.group(1)).strip() if summary else ""
        return title, lambda line: bool(_DETAILS_END.match(line))
    return "", None


def exercise_problems(notebook: dict) -> list[str]:
    """Why a notebook's exercises do not have solutions that run (empty when they do).

    The exercises are the cells from the Markdown cell holding the heading ``## Exercises`` to the next
    level-2 heading. A solution is an ``admonition`` or ``dropdown`` directive (colon or backtick
    fence) whose title starts with "Solution", or a ``<details>`` block whose ``<summary>`` starts with
    "Solution" (plain HTML, which reads right outside the book too); it keeps the hint and the
    explanation in words. The rule: a solution holds no code block (a fenced block, or a line indented
    by four spaces or a tab after a blank line: Markdown's indented code); a Markdown cell holds at
    most one solution, and a cell holding one is followed at once by a code cell tagged ``hide-input``
    or ``hide-cell``: the solution's code, executed with the chapter and folded on the page."""
    cells = notebook["cells"]
    start = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and any(h.strip() == "Exercises" for h in _HEADING2.findall(_markdown(c)))), None)
    if start is None:
        return ["no '## Exercises' section"]
    problems = []
    for index in range(start, len(cells)):
        cell = cells[index]
        if cell["cell_type"] != "markdown":
            continue
        text = _markdown(cell)
        if index > start and _HEADING2.search(text):
            break
        solutions = 0
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            title, closes = _solution_opening(lines, i)
            if not title.lower().startswith("solution"):
                i += 1
                continue
            solutions += 1
            body, i = [], i + 1
            while i < len(lines) and not closes(lines[i]):
                body.append(lines[i])
                i += 1
            for j, line in enumerate(body):
                indented = re.match(r"^(?: {4}|\t)\S", line) and (j == 0 or not body[j - 1].strip())
                if _CODE_FENCE.match(line) or indented:
                    problems.append(f"cell {index}: a code block inside a Solution ({line.strip()[:60]!r}): "
                                    "make it a code cell tagged hide-input after the exercise")
                    break
        if solutions > 1:
            problems.append(f"cell {index}: {solutions} solutions in one Markdown cell: one exercise a cell, "
                            "each followed by its solution's code cell")
        if solutions:
            following = cells[index + 1] if index + 1 < len(cells) else None
            tags = following.get("metadata", {}).get("tags", []) if following else []
            if (following is None or following["cell_type"] != "code" or not _markdown(following).strip()
                    or not set(_FOLDED) & set(tags)):
                problems.append(f"cell {index}: its solution is not followed by a code cell tagged "
                                "hide-input or hide-cell")
    return problems


#: Tags that take a code cell's source off the page (``hide-input`` only folds it: a reader can open it).
_REMOVED = ("remove-input", "remove-cell")
#: The functions whose calls are the book's machinery, not the method: settings resolution and the machine
#: line, run folders, glued numbers, checks of the prose, sentences and boxes written from numbers, the
#: package's source on the page, and the execution record (``RUN.done()``, ``RUN.line()``).
MACHINERY_CALLS = frozenset({"chapter_settings", "gpu_check", "single_run_folder", "glue", "glue_number", "glue_text",
                             "assert_direction", "compare_words", "verdict_sentence", "own_task_sentence", "run_box",
                             "what_this_run_shows", "transfer_findings", "show_source", "source_span", "done", "line"})
#: The names that are the book's machinery wherever they are read or written: the resolved settings' run
#: folder (``RUN.run_dir``; a path built on it and passed to training is the method's, as a reader would
#: pass their own folder) and the parameters cell's ``SETTINGS`` and ``OVERRIDES``.
MACHINERY_NAMES = frozenset({"run_dir", "SETTINGS", "OVERRIDES"})
#: A chapter's most code lines in one cell (a d2l cell is 5-15 lines).
MAX_CELL_LINES = 40


class MachineryShare(NamedTuple):
    """A chapter's visible code lines and how many of them are the book's machinery."""

    machinery: int
    visible: int

    @property
    def share(self) -> float:
        return self.machinery / self.visible if self.visible else 0.0


def _called(node) -> str | None:
    """The name a call calls: ``f`` of ``f(...)`` and of ``obj.f(...)``."""
    function = node.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def _is_machinery(statement) -> bool:
    """Whether a statement is the book's machinery (:data:`MACHINERY_CALLS`, :data:`MACHINERY_NAMES`): a
    simple statement that calls or names one (an import: that imports only such names); a compound
    statement (``for``, ``if``, ``with``, ``def``, ...) whose whole body is machinery."""
    body = [child for name in ("body", "orelse", "finalbody") for child in getattr(statement, name, []) or []]
    if body:
        handlers = [child for handler in getattr(statement, "handlers", []) for child in handler.body]
        return all(_is_machinery(child) for child in body + handlers)
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return all((alias.asname or alias.name).split(".")[-1] in MACHINERY_CALLS | MACHINERY_NAMES
                   for alias in statement.names)
    for node in ast.walk(statement):
        if isinstance(node, ast.Call) and _called(node) in MACHINERY_CALLS:
            return True
        if isinstance(node, ast.Name) and node.id in MACHINERY_NAMES:
            return True
        if isinstance(node, ast.Attribute) and node.attr in MACHINERY_NAMES:
            return True
    return False


def _machinery_lines(code: str) -> tuple[int, int]:
    """(machinery lines, non-blank lines) of one code cell. Each non-blank line belongs to the innermost
    statement that holds it; a statement's lines are machinery when :func:`_is_machinery` says so, a
    compound statement's own header when its whole body is; a comment line goes with the next line of
    code below it (the last one of the cell: with the line above)."""
    python = re.sub(r"^(\s*)[%!].*$", r"\1pass", code, flags=re.M)  # IPython's ! and % lines
    lines = python.splitlines()
    kind = [None] * len(lines)  # True: machinery, False: the method, None: not yet known

    def mark(statements):
        for statement in statements:
            machinery = _is_machinery(statement)
            for number in range(statement.lineno - 1, statement.end_lineno):
                kind[number] = machinery
            if not machinery:  # a compound statement whose body is partly machinery: mark its parts
                for name in ("body", "orelse", "finalbody"):
                    mark(getattr(statement, name, []) or [])
                for handler in getattr(statement, "handlers", []):
                    mark(handler.body)

    mark(ast.parse(python).body)
    code_lines = [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("#")]
    for i, line in enumerate(lines):
        if line.strip().startswith("#"):
            below = [j for j in code_lines if j > i]
            above = [j for j in code_lines if j < i]
            kind[i] = kind[below[0]] if below else (kind[above[-1]] if above else False)
    counted = [i for i, line in enumerate(lines) if line.strip()]
    return sum(bool(kind[i]) for i in counted), len(counted)


def visible_code_cells(notebook: dict) -> list[tuple[int, str]]:
    """(index, source) of every code cell whose source the page shows: all but those tagged
    ``remove-input`` or ``remove-cell`` (a ``hide-input`` cell is folded, not removed) and papermill's
    injected parameters."""
    return [(index, _markdown(cell)) for index, cell in enumerate(notebook["cells"])
            if cell["cell_type"] == "code" and not _is_injected(cell)
            and not set(_REMOVED) & set(cell.get("metadata", {}).get("tags", []))]


def machinery_share(notebook: dict) -> MachineryShare:
    """How many of a chapter's visible code lines (:func:`visible_code_cells`, blank lines left out) are
    the book's machinery rather than the method it teaches: the lines of statements that resolve the
    settings or print the machine (``chapter_settings``, ``gpu_check``, ``SETTINGS``, ``OVERRIDES``), keep
    run folders (``RUN.run_dir``, ``single_run_folder``), glue numbers (``glue``,
    ``glue_number``), check the prose (``assert_direction``), write sentences from numbers
    (``compare_words``, ``verdict_sentence``, ``what_this_run_shows``), show the package's source
    (``show_source``) or record the execution (``RUN.done()``, ``RUN.line()``); their comments and the
    imports of those names with them (:func:`_machinery_lines` gives the rule line by line). The house
    rule: at most about 10 %."""
    counts = [_machinery_lines(code) for _, code in visible_code_cells(notebook)]
    return MachineryShare(sum(m for m, _ in counts), sum(n for _, n in counts))


def code_cell_lengths(notebook: dict) -> list[tuple[int, int]]:
    """(index, lines) of every code cell, blank lines included (the page shows them), longest first; the
    house rule: at most :data:`MAX_CELL_LINES`."""
    lengths = [(index, len(_markdown(cell).strip("\n").splitlines()))
               for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    return sorted(lengths, key=lambda item: (-item[1], item[0]))


def long_code_lines(notebook: dict, width: int | None = None) -> list[tuple[int, int, str]]:
    """(cell index, line number from 1, the line) of every code cell line longer than ``width``
    characters (default :data:`mtm.book.CODE_COLUMN`, the content column): such lines are cut off on
    the page."""
    width = CODE_COLUMN if width is None else width
    return [(index, number, line) for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
            for number, line in enumerate(_markdown(cell).splitlines(), 1) if len(line) > width]


def figure_problems(notebook: dict) -> list[str]:
    """Why a notebook's stored figures are not all numbered: each code cell with an ``image/png``
    output needs ``mystnb.figure`` metadata with a non-empty ``caption`` and a ``name`` (which
    ``{numref}`` refers to, and which numbers it "Fig. 5.2")."""
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            continue
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        missing = [key for key in ("caption", "name") if not str(figure.get(key, "")).strip()]
        if missing:
            problems.append(f"cell {index}: a figure without {' and '.join(missing)} in its mystnb metadata")
        # every displayed output of a figure cell becomes a figure of that name: two fail the build
        shown = [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
                 and not o.get("metadata", {}).get("scrapbook")]
        if figure and len(shown) > 1:
            problems.append(f"cell {index}: {len(shown)} displayed outputs under one figure name "
                            "(end the cell with the figure: a value the last line returns is displayed too)")
    return problems


#: The introduction's MtM schematic, drawn by :func:`mtm.plots.plot_mtm_schematic`.
SCHEMATIC = BOOK / "mtm_schematic.png"


def write_schematic(path: Path = SCHEMATIC) -> Path:
    """Draw the introduction's MtM schematic with the book's style and save it as a PNG."""
    import matplotlib

    matplotlib.use("Agg")

    use_style()
    figure = plot_mtm_schematic()
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def failure_reason(err: Exception) -> str:
    """One line saying why a chapter failed: the cell's exception for papermill's error (whose own
    message starts with an empty line), the exception's first line otherwise."""
    if hasattr(err, "ename"):
        evalue = str(getattr(err, "evalue", "")).strip().splitlines()
        return f"cell {getattr(err, 'exec_count', '?')} raised {err.ename}: {evalue[0] if evalue else ''}"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtm.book", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("execute", help="execute chapters in place with papermill and record how")
    run.add_argument("chapters", nargs="*", help="chapters (01, 04_training, book/04_training.ipynb); default all")
    run.add_argument("--settings", default=PUBLISHED_SETTINGS, choices=SETTINGS)
    run.add_argument("--stale", action="store_true", help="only chapters never executed, or whose code changed")
    run.add_argument("--timeout", type=int, default=1800, help="per-cell timeout (s)")
    check = commands.add_parser("check", help="list what keeps stored outputs from being published")
    check.add_argument("chapters", nargs="*")
    colab = commands.add_parser("colab", help="write the chapters' reader copies (book/colab/, plain CommonMark)")
    colab.add_argument("chapters", nargs="*", help="chapters; default all (then copies of no chapter are removed)")
    colab.add_argument("--check", action="store_true", help="only list stale copies; exit 1 if any")
    args = parser.parse_args(argv)
    try:
        paths = chapter_paths(args.chapters)
    except ValueError as err:
        parser.exit(2, f"mtm: error: {err}\n")
    if args.command == "check":
        failed = 0
        for path in paths:
            notebook = json.loads(path.read_text())
            problems = notebook_problems(notebook) if has_outputs(notebook) else ["not executed"]
            failed += bool(problems)
            typed = len(unglued_decimals(notebook, path.stem))  # a report for the pages: fails nothing
            share, longest = machinery_share(notebook), code_cell_lengths(notebook)
            pages = (f"{len(exercise_problems(notebook))} problems of its exercises' solutions, "
                     f"{len(long_code_lines(notebook))} code lines wider than the column, "
                     f"{len(figure_problems(notebook))} figures without caption or name, "
                     f"machinery {share.machinery} of {share.visible} visible code lines ({share.share:.0%}), "
                     f"longest code cell {longest[0][1] if longest else 0} lines")
            print(f"{path.stem}: " + ("; ".join(problems) if problems else "ok")
                  + f" ({typed} unglued decimals in its Markdown) ({pages})")
        return 1 if failed else 0
    if args.command == "colab":
        return write_reader_copies(paths, everything=not args.chapters, check=args.check)
    write_schematic()
    for path in paths:
        notebook = json.loads(path.read_text())
        record = notebook.get("metadata", {}).get(METADATA_KEY, {})
        if args.stale and record.get("code_hash") == code_hash(notebook) and record.get("settings") == args.settings:
            print(f"{path.stem}: up to date")
            continue
        print(f"{path.stem}: executing with settings {args.settings} ...", flush=True)
        try:
            record = execute(path, args.settings, args.timeout)
        except Exception as err:  # a failing chapter leaves its notebook as it was
            print(f"mtm: error: {path.stem} failed: {failure_reason(err)}", file=sys.stderr)
            return 1
        print(f"{path.stem}: done in {record['wall_time_s'] / 60:.1f} min")
        write_reader_copies([path])
    return 0


def write_reader_copies(paths: list[Path], everything: bool = False, check: bool = False) -> int:
    """Write the reader copies of ``paths`` (:func:`mtm.book.reader.write_copies`) and say which changed and
    what was converted; with ``everything``, also remove copies whose chapter is gone. With ``check``,
    write nothing and return 1 when a copy is stale."""

    try:
        stale, counts = reader.write_copies(paths, check=check)
    except ValueError as err:
        print(f"mtm: error: {err}", file=sys.stderr)
        return 1
    chapters = {path.name for path in paths}
    orphans = sorted(p for p in reader.COPIES.glob("*.ipynb") if p.name not in chapters) if everything else []
    for orphan in orphans if not check else []:
        orphan.unlink()
    verb = "stale" if check else "written"
    for path in [*stale, *orphans]:
        state = "no chapter" + ("" if check else ", removed") if path in orphans else verb
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {state}")
    converted = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if n)
    print(f"{len(paths)} reader copies, {len(stale)} {verb}, {len(orphans)} without a chapter ({converted})")
    return 1 if check and (stale or orphans) else 0

"""The book's chapters: structure checks, settings, Colab lines, stored outputs kept honest, and a
papermill run of every chapter with its smoke settings (nbmake runs them too, with MTM_SMOKE=1, when
pytest collects book/)."""

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from mtm import book

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
SHARED_RUN_KEYS = ("PRESET", "N_TRIALS", "N_NEURONS", "EPOCHS", "MODEL")


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [toc]):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files += [section["file"] for section in chapter.get("sections", [])]
    return files


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def test_every_toc_entry_exists_and_every_chapter_is_in_the_toc():
    entries = toc_files()
    for entry in entries:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), entry
    for notebook in CHAPTERS:
        assert f"book/{notebook.stem}" in entries, notebook.name
    assert len(CHAPTERS) >= 1


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_chapter_structure(notebook):
    nb = json.loads(notebook.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tags = [tag for cell in nb["cells"] for tag in cell.get("metadata", {}).get("tags", [])]
    assert tags.count("parameters") == 1
    text = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for heading in ("**What you will learn**", "## 1. ", "## Summary", "## Exercises"):
        assert heading in text, heading
    code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "IN_COLAB" in code and "use_style()" in code
    assert notebook.stem in book.CHAPTER_SETTINGS


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_parameters_cell_holds_literals_only_and_the_next_cell_resolves_them(notebook):
    """papermill can override every parameter: the cell is assignments of literals, SETTINGS among
    them, and the settings' own values are resolved by the next cell through mtm.book."""
    import ast

    chapter_cells = cells(notebook)
    index = next(i for i, c in enumerate(chapter_cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse(source(chapter_cells[index]))
    names = []
    for statement in tree.body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        ast.literal_eval(statement.value)  # raises on anything but a literal
        names.append(statement.targets[0].id)
    assert names[0] == "SETTINGS"
    following = source(chapter_cells[index + 1])
    assert f'chapter_settings("{notebook.stem}", SETTINGS' in following
    overridable = set(book.CHAPTER_SETTINGS[notebook.stem]["book"])
    assert overridable <= set(names), f"settings without a parameter: {overridable - set(names)}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_badge_and_install_line_name_the_repository_of_the_config_and_the_pinned_release(notebook):
    first = source(cells(notebook)[0])
    assert first.startswith("# ") and book.colab_badge(notebook.name) in first
    setup = next(source(c) for c in cells(notebook) if c["cell_type"] == "code")
    assert book.install_line() in setup
    assert "@main" not in setup and "git+" in book.install_line()


def test_the_repository_url_is_written_once():
    """The address of the repository appears in _config.yml and nowhere else by hand."""
    url = book.repository_url()
    assert url.startswith("https://github.com/")
    hand_written = [p for p in [*BOOK.glob("*.py"), *BOOK.glob("*.md"), ROOT / "mtm" / "book.py"]
                    if url in p.read_text()]
    generated = {p for p in BOOK.glob("[0-9][0-9]_*.py")}  # chapters carry the generated lines, checked above
    assert set(hand_written) <= generated


def test_every_settings_is_defined_for_every_chapter_and_chapters_4_to_6_share_their_runs():
    for chapter, by_settings in book.CHAPTER_SETTINGS.items():
        assert set(by_settings) == set(book.SETTINGS), chapter
        assert all(set(values) == set(by_settings["book"]) for values in by_settings.values()), chapter
    for name in book.SETTINGS:
        shared = [{k: book.CHAPTER_SETTINGS[c][name][k] for k in SHARED_RUN_KEYS}
                  for c in ("04_training", "05_evaluation", "06_decoding")]
        assert shared[0] == shared[1] == shared[2], name
        assert all(book.CHAPTER_SETTINGS[c][name].get("PRESET", "small") != "paper" for c in book.CHAPTER_SETTINGS)


def test_book_settings_fit_the_time_budget_by_the_run_time_model():
    minutes = {c: book.estimate_minutes(c, v["book"], gpu=False) for c, v in book.CHAPTER_SETTINGS.items()}
    assert all(m < 15 for m in minutes.values()), minutes
    assert sum(minutes.values()) < 90
    gpu = {c: book.estimate_minutes(c, v["gpu"], gpu=True) for c, v in book.CHAPTER_SETTINGS.items()}
    assert all(m < 25 for m in gpu.values()), gpu


def test_chapter_settings_resolve_auto_and_refuse_unknown_names(monkeypatch, capsys):
    monkeypatch.setenv("MTM_SMOKE", "1")
    resolved = book.chapter_settings("05_evaluation", "auto", EPOCHS=7, N_TRIALS=None)
    assert resolved.settings == "smoke" and resolved["EPOCHS"] == 7
    assert resolved["N_TRIALS"] == book.CHAPTER_SETTINGS["05_evaluation"]["smoke"]["N_TRIALS"]
    assert "Settings 'smoke'" in capsys.readouterr().out
    monkeypatch.setenv("MTM_SMOKE", "0")
    assert book.chapter_settings("01_data", "book").settings == "book"
    with pytest.raises(ValueError, match="SETTINGS: expected"):
        book.chapter_settings("01_data", "paper")
    with pytest.raises(ValueError, match="unknown parameters"):
        book.chapter_settings("01_data", "book", EPOCHS=3)
    resolved["MODEL"]["hidden"] = 1  # a copy: the table is not changed
    assert book.CHAPTER_SETTINGS["05_evaluation"]["smoke"]["MODEL"]["hidden"] != 1


# ---------------------------------------------------------------------------------- stored outputs
def executed_copy(notebook: Path, settings: str = "book") -> dict:
    """A chapter as the execute command would store it: outputs, and a record matching its code."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
    nb["metadata"][book.METADATA_KEY] = {"settings": settings, "code_hash": book.code_hash(nb)}
    return nb


def test_an_honest_executed_chapter_passes_and_every_kind_of_dishonesty_fails():
    nb = executed_copy(CHAPTERS[0])
    assert book.notebook_problems(nb) == []
    changed = copy.deepcopy(nb)
    code = next(c for c in changed["cells"] if c["cell_type"] == "code")
    code["source"] = source(code) + "\nprint('changed')"
    assert any("code changed" in p for p in book.notebook_problems(changed))
    assert any("settings 'smoke'" in p for p in book.notebook_problems(executed_copy(CHAPTERS[0], "smoke")))
    for bad in ({"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []},
                {"output_type": "stream", "name": "stderr", "text": "Traceback (most recent call last):\n"},
                {"output_type": "stream", "name": "stdout", "text": "with the smoke settings the dots say nothing"},
                {"output_type": "display_data", "data": {"text/markdown": "nothing can be read here"}},
                {"output_type": "stream", "name": "stderr", "text": "train mtm:   2%|▏  | 10/500 [00:00<?, ?epoch/s]"},
                {"output_type": "stream", "name": "stderr", "text": "x.py:9: UserWarning: The figure layout has changed"}):
        broken = copy.deepcopy(nb)
        next(c for c in broken["cells"] if c["cell_type"] == "code")["outputs"].append(bad)
        assert book.notebook_problems(broken), bad
    unrecorded = copy.deepcopy(nb)
    del unrecorded["metadata"][book.METADATA_KEY]
    assert any("no execution record" in p for p in book.notebook_problems(unrecorded))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_stored_outputs_are_from_the_book_settings_and_current(notebook):
    """Every chapter is committed executed with the book settings, from its present code, without
    errors, tracebacks, progress bars or smoke phrases (python -m mtm.book execute --stale)."""
    nb = json.loads(notebook.read_text())
    assert book.has_outputs(nb), f"{notebook.stem} is not executed"
    assert book.notebook_problems(nb) == []
    record = nb["metadata"][book.METADATA_KEY]
    # the target: 15 minutes a chapter on a 2-core CPU
    assert record["machine"]["cores"] >= 1 and record["wall_time_s"] < 15 * 60
    assert not record["commit"].endswith("-dirty"), "executed from uncommitted package code"
    assert book.coalesce_streams(copy.deepcopy(nb)) == 0, "a printed log is split into one output per line"


def test_consecutive_prints_of_one_stream_become_one_output_and_nothing_else_moves():
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    outputs = [{"output_type": "stream", "name": "stdout", "text": "[ 0 s] training\n"},
               {"output_type": "stream", "name": "stdout", "text": ["[ 9 s]   finished", " a\n"]},
               {"output_type": "stream", "name": "stderr", "text": "a warning line\n"},
               {"output_type": "stream", "name": "stdout", "text": "[12 s] done\n"},
               figure,
               {"output_type": "stream", "name": "stdout", "text": "after the figure\n"}]
    nb = {"cells": [{"cell_type": "markdown", "source": "text"},
                    {"cell_type": "code", "source": "run()", "outputs": outputs, "metadata": {}}]}
    assert book.coalesce_streams(nb) == 1
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in nb["cells"][1]["outputs"]] == [
        ("stream", "stdout", "[ 0 s] training\n[ 9 s]   finished a\n"), ("stream", "stderr", "a warning line\n"),
        ("stream", "stdout", "[12 s] done\n"), ("display_data", None, None), ("stream", "stdout", "after the figure\n")]
    assert book.coalesce_streams(nb) == 0


def test_no_text_waits_for_a_book_run():
    """Sentences about results are written from the stored outputs, not left as placeholders."""
    for chapter in BOOK.glob("*.py"):
        assert "TODO(book run)" not in chapter.read_text(), chapter.name


def test_the_published_build_renders_stored_outputs_without_executing():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "jupyter-book build" in workflow and "deploy-pages" in workflow


def test_execute_command_refuses_an_unknown_chapter(capsys):
    with pytest.raises(SystemExit) as exit_info:
        book._main(["execute", "99_nothing"])
    assert exit_info.value.code == 2
    assert "mtm: error: chapter: '99_nothing' is not a chapter" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- twins and execution
@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_chapter_matches_its_python_twin(notebook):
    """Each chapter has a py:percent twin for review; both must hold the same cells."""
    jupytext = pytest.importorskip("jupytext")
    twin = notebook.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: jupytext --to py:percent {notebook.name}"
    a, b = jupytext.read(notebook), jupytext.read(twin)
    assert [(c.cell_type, c.source.strip()) for c in a.cells] == [(c.cell_type, c.source.strip()) for c in b.cells]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_chapter_runs_under_papermill_with_smoke_settings(notebook, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("MTM_SMOKE", "0")  # the SETTINGS parameter alone selects the smoke settings
    out = tmp_path / notebook.name
    parameters = {"SETTINGS": "smoke", "SEED": 1}
    papermill.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(BOOK), progress_bar=False, execution_timeout=600)
    executed = json.loads(out.read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and all(re.search(rf"^{k} = ", source(injected[0]), re.M) for k in parameters)
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    printed = "".join(book._output_text(o) for c in executed["cells"] for o in c.get("outputs", []))
    assert "Settings 'smoke'" in printed and "Executed with settings 'smoke'" in printed
    assert os.environ["MTM_SMOKE"] == "0"


def test_the_recorded_commit_is_dirty_for_package_changes_only(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01_data.ipynb").write_text("{}")
    (tmp_path / "book" / "01_data.py").write_text("# %%\n")
    (tmp_path / "mtm").mkdir()
    (tmp_path / "mtm" / "code.py").write_text("x = 1\n")
    (tmp_path / "test_x.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = book.git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "book" / "01_data.ipynb").write_text('{"executed": 1}')  # another chapter just executed
    (tmp_path / "book" / "01_data.py").write_text("# text\n")
    assert book.git_commit(tmp_path) == clean
    (tmp_path / "test_x.py").write_text("x = 2\n")  # a test, not the package
    assert book.git_commit(tmp_path) == clean
    (tmp_path / "mtm" / "code.py").write_text("x = 2\n")
    assert book.git_commit(tmp_path) == clean + "-dirty"


def test_a_failing_chapter_is_reported_by_its_cell_exception():
    from papermill.exceptions import PapermillExecutionError

    err = PapermillExecutionError(cell_index=7, exec_count=12, source="train()", ename="ValueError",
                                  evalue="/runs/x holds a run lock\nmore", traceback=["..."])
    assert book.failure_reason(err) == "cell 12 raised ValueError: /runs/x holds a run lock"
    assert book.failure_reason(OSError("disk full\nsecond line")) == "OSError: disk full"

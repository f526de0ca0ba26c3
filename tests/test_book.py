"""The book's chapters: structure checks, settings and time budgets, Colab lines and stored outputs kept
honest. The chapters are executed once per test run by ``pytest --nbmake book/`` (README's test command,
``.ci/run``), each copied alone into an empty folder and run with its smoke settings against the installed
package (mtm.book.pytest_chapters, tests/test_book_chapters_under_pytest.py); here only chapter 1 runs
again, from a release installed into a fresh virtualenv as Colab installs it."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mtm import book
from mtm.book import build

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
def test_parameters_cell_holds_literals_only_and_each_setting_is_written_once(notebook):
    """papermill can override every setting: the parameters cell is assignments of literals, SETTINGS
    and OVERRIDES (a dict of the settings' values to replace) among them; the next cell resolves them
    through mtm.book, and no code cell writes a setting again (the chapter reads ``RUN.NAME``)."""
    import ast

    chapter_cells = cells(notebook)
    index = next(i for i, c in enumerate(chapter_cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse(source(chapter_cells[index]))
    names = []
    for statement in tree.body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        ast.literal_eval(statement.value)  # raises on anything but a literal
        names.append(statement.targets[0].id)
    assert names[0] == "SETTINGS" and "OVERRIDES" in names
    following = source(chapter_cells[index + 1])
    assert f'chapter_settings("{notebook.stem}", SETTINGS, **OVERRIDES)' in following
    settings = set(book.CHAPTER_SETTINGS[notebook.stem]["book"])
    assert not settings & set(names), f"settings written as parameters: {settings & set(names)}"
    written = set()
    for cell in chapter_cells:
        if cell["cell_type"] != "code":
            continue
        python = re.sub(r"^(\s*)[%!].*$", r"\1pass", source(cell), flags=re.M)  # IPython's ! and % lines
        for node in ast.walk(ast.parse(python)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                written.add(node.id)
    assert not settings & written, f"settings assigned again in the chapter: {settings & written}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_badge_and_install_line_name_the_repository_of_the_config_and_the_pinned_release(notebook):
    first = source(cells(notebook)[0])
    assert first.startswith("# ") and book.colab_badge(notebook.name) in first
    setup = next(source(c) for c in cells(notebook) if c["cell_type"] == "code")
    assert book.install_line() in setup
    assert "@main" not in setup and "git+" in book.install_line()


def test_the_launch_buttons_open_the_release_the_badges_open():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert str(config["repository"]["branch"]) == book.RELEASE
    assert f"/blob/{book.RELEASE}/book/{book.READER_FOLDER}/01_data.ipynb)" in book.colab_badge("01_data.ipynb")
    assert "mtm.book.reader" in config["sphinx"]["extra_extensions"]  # the launch button opens the same copy


def test_the_repository_url_is_written_once():
    """The address of the repository appears in _config.yml and nowhere else by hand."""
    url = book.repository_url()
    assert url.startswith("https://github.com/")
    hand_written = [p for p in [*BOOK.glob("*.py"), *BOOK.glob("*.md"), *(ROOT / "mtm" / "book").glob("*.py")]
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


def test_training_budgets_count_the_steps_the_chapters_train():
    """Chapter 10 places the chapters' runs on its axes: the counts chapter 8's settings state (1,400 steps from
    scratch, as many as fine-tuning; 1,400 fine-tuning after 2,240 of pretraining, batches of 16 of its 210
    training trials), and the smoke settings' tiny model."""
    rows = book.training_budgets(16)
    assert list(rows) == ["chapters 4-6, from scratch", "chapter 7, from scratch", "chapter 7, fine-tuned",
                          "chapter 8, from scratch", "chapter 8, fine-tuned", "chapter 9, ablation"]
    assert rows["chapter 8, from scratch"] == {"training trials": 210, "steps": 1400, "pretraining steps": 0,
                                               "width": 64, "neurons": 200}
    assert (rows["chapter 8, fine-tuned"]["steps"], rows["chapter 8, fine-tuned"]["pretraining steps"]) == (1400, 2240)
    # chapter 7 (the transfer design): from scratch and fine-tuned take the same steps on the held-out session
    # (300 on its 100 training trials); pretraining, 28 epochs over 4 sessions of 280 training trials (18 batches)
    c7 = book.CHAPTER_SETTINGS["07_multisession"]["book"]
    assert rows["chapter 7, from scratch"] == {"training trials": 100, "steps": 300, "pretraining steps": 0,
                                               "width": 64, "neurons": c7["N_NEURONS"]}
    assert (rows["chapter 7, fine-tuned"]["steps"], rows["chapter 7, fine-tuned"]["pretraining steps"]) == (300, 2016)
    smoke = book.training_budgets(8, settings="smoke")
    assert smoke["chapter 9, ablation"]["width"] == book.SMOKE_MODEL["hidden"]
    assert smoke["chapters 4-6, from scratch"]["steps"] == 3 * 6  # 3 epochs of 42 training trials in batches of 8


def test_every_chapter_that_trains_has_a_gpu_budget_and_the_others_none():
    trains = {c for c, v in book.CHAPTER_SETTINGS.items() if book._training_runs(c, v["gpu"])}
    assert trains == set(book.GPU_BUDGET_MINUTES)
    assert all(0 < m <= 15 for m in book.GPU_BUDGET_MINUTES.values())


def test_fit_epochs_scales_every_epoch_count_by_one_factor_and_never_raises_it():
    values = dict(book.CHAPTER_SETTINGS["07_multisession"]["gpu"], N_PRETRAIN=[1, 4], N_TEST=1, N_SEEDS=3,
                  N_TRIALS=400, TRAIN_TRIALS=[25, 100], PROTOCOLS=["full", "frozen-core", "staged"],
                  PRETRAIN_EPOCHS=150, HELDOUT_STEPS=360)
    # per pretraining epoch: 3 seeds x 2 maskings x (2 pretraining runs + 1 from scratch at equal compute) of 4
    # sessions' steps = 72 epochs of one session (10,800 at 150); fixed: 6 x (2 sizes x 3 + 2 protocols + 1) runs
    # of 360 steps, 20 epochs of 18 batches each = 1,080 epochs. 0.75 * 10 min = 450 s affords 4,500 epochs at
    # 0.1 s: (4,500 - 1,080) / 10,800 = 0.317 of 150 = 47; at 0.25 s, 1,800: 0.067 of 150 = 10
    assert book.fit_epochs("07_multisession", values, seconds_per_epoch=0.1, minutes=10) == {"PRETRAIN_EPOCHS": 47}
    assert book.fit_epochs("07_multisession", values, seconds_per_epoch=0.1, minutes=100) == {"PRETRAIN_EPOCHS": 150}
    assert book.fit_epochs("07_multisession", values, seconds_per_epoch=0.25, minutes=10) == {"PRETRAIN_EPOCHS": 10}
    # chapter 4's resume runs (RESUME_EPOCHS) are paid first, then the pair's three seeds share the rest
    # ((450 - 2 * 100) / 6 = 41.7); nothing drops below one epoch
    four = dict(book.CHAPTER_SETTINGS["04_training"]["gpu"], RESUME_EPOCHS=100)
    assert book.fit_epochs("04_training", four, seconds_per_epoch=1.0, minutes=10) == {"EPOCHS": 41}
    assert book.fit_epochs("04_training", four, seconds_per_epoch=10.0, minutes=1) == {"EPOCHS": 1}


def test_the_budget_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.delenv(book.BUDGET_ENV, raising=False)
    assert book.budget_minutes("05_evaluation") == book.GPU_BUDGET_MINUTES["05_evaluation"]
    assert book.budget_minutes("01_data") is None
    monkeypatch.setenv(book.BUDGET_ENV, "2.5")
    assert book.budget_minutes("05_evaluation") == 2.5
    for bad in ("0", "-1", "fast", "nan"):
        monkeypatch.setenv(book.BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=book.BUDGET_ENV):
            book.budget_minutes("05_evaluation")


def test_gpu_settings_train_to_the_time_budget_and_the_schedule_completes(monkeypatch, tmp_path, capsys):
    """On the CPU with a half-minute budget: the probe fixes the epochs so that the chapter's two runs (as
    chapter 5 trains them) fit the training share of the budget at the measured speed, each schedule reaches
    its last step, the decision is printed and kept in the run folder, and a later chapter sharing the runs
    takes it as is. (The wall-time bound is loose: on a shared CPU an epoch's time can change tenfold
    between the probe and the runs; without the budget the runs would take hours.)"""
    import torch

    from mtm.data import synthetic_session
    from mtm.train import TrainConfig

    monkeypatch.setenv(book.RUNS_ENV, str(tmp_path))
    monkeypatch.setenv(book.BUDGET_ENV, "0.5")
    sizes = dict(N_TRIALS=60, N_NEURONS=40, MODEL=book.SMOKE_MODEL, EPOCHS=100000)
    run = book.chapter_settings("05_evaluation", "gpu", **sizes)
    printed = capsys.readouterr().out
    epochs = run["EPOCHS"]
    assert 1 <= epochs < 100000
    assert re.search(rf"Time budget 0.5 min \(75% for training\): an epoch took [0-9.]+ s .*, so EPOCHS {epochs} "
                     r"\(settings: 100000\)\.", printed), printed
    decisions = json.loads((tmp_path / "gpu" / book.BUDGET_FILE).read_text())
    assert list(decisions) == [run.budget_key] and run.run_dir == tmp_path / "gpu" / run.budget_key
    decision = decisions[run.budget_key]
    assert decision["epochs"] == {"EPOCHS": epochs} and decision["seconds_per_epoch"] > 0
    training, per_epoch = book.TRAINING_SHARE * 0.5 * 60, decision["seconds_per_epoch"]
    runs = 2 * len(book.SINGLE_SEEDS)  # the pair, for every seed
    assert runs * epochs * per_epoch <= training or epochs == 1  # the runs fit at the measured speed
    assert training < runs * (epochs + 1) * per_epoch  # and one more epoch would not

    session = synthetic_session(0, 60, 40)
    started = time.perf_counter()
    for masking in ("temporal", "mtm"):
        cfg = TrainConfig.preset("small", masking=masking, model=book.SMOKE_MODEL, epochs=epochs)
        best = book.train_once([session], cfg, run.run_dir / masking, progress=False)
        state = torch.load(best.parent / "last.pt", weights_only=False)
        assert state["epoch"] == epochs - 1
        assert state["scheduler"]["last_epoch"] == state["scheduler"]["total_steps"]  # the schedule's end
    elapsed = time.perf_counter() - started
    assert elapsed < 10 * max(training, 2 * per_epoch), elapsed  # loose: see the docstring

    again = book.chapter_settings("06_decoding", "gpu", **sizes)
    assert again["EPOCHS"] == epochs and "decided by 05_evaluation" in capsys.readouterr().out
    assert again.run_dir == run.run_dir  # chapter 6 finds chapter 5's runs
    assert book.chapter_settings("05_evaluation", "book")["EPOCHS"] == book.CHAPTER_SETTINGS["05_evaluation"]["book"]["EPOCHS"]


def test_train_all_trains_runs_side_by_side_and_reuses_them(tmp_path):
    """Chapter 4 trains its pair for every seed with train_all: worker processes, each run in its own
    folder, and a second call (or another chapter) finds them finished instead of training again."""
    import dataclasses

    from mtm.checkpoint import read_log
    from mtm.data import synthetic_session
    from mtm.train import TrainConfig

    session = synthetic_session(0, 60, 30)
    runs = {tmp_path / book.single_run_folder(masking, seed): (
        [session], dataclasses.replace(TrainConfig.preset("small", masking=masking, model=book.SMOKE_MODEL,
                                                          epochs=2), seed=seed))
        for masking, seed in (("mtm", 0), ("temporal", 1))}
    best = book.train_all(runs, workers=2)
    assert list(best) == list(runs)
    for folder, path in best.items():
        assert path.parent == folder and path.exists()
        assert len(read_log(folder)) == 2  # both epochs ran
    written = {folder: path.stat().st_mtime_ns for folder, path in best.items()}
    assert book.train_all(runs, workers=1) == best
    assert {folder: path.stat().st_mtime_ns for folder, path in best.items()} == written  # reused, not retrained
    with pytest.raises(ValueError, match="runs: expected"):
        book.train_all({tmp_path / "x": session})


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
    nb["metadata"][book.METADATA_KEY] = {"settings": settings, "code_hash": build.code_hash(nb)}
    return nb


def test_an_honest_executed_chapter_passes_and_every_kind_of_dishonesty_fails():
    nb = executed_copy(CHAPTERS[0])
    assert build.notebook_problems(nb) == []
    changed = copy.deepcopy(nb)
    code = next(c for c in changed["cells"] if c["cell_type"] == "code")
    code["source"] = source(code) + "\nprint('changed')"
    assert any("code changed" in p for p in build.notebook_problems(changed))
    assert any("settings 'smoke'" in p for p in build.notebook_problems(executed_copy(CHAPTERS[0], "smoke")))
    for bad in ({"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []},
                {"output_type": "stream", "name": "stderr", "text": "Traceback (most recent call last):\n"},
                {"output_type": "stream", "name": "stdout", "text": "with the smoke settings the dots say nothing"},
                {"output_type": "display_data", "data": {"text/markdown": "nothing can be read here"}},
                {"output_type": "stream", "name": "stderr", "text": "train mtm:   2%|▏  | 10/500 [00:00<?, ?epoch/s]"},
                {"output_type": "stream", "name": "stderr", "text": "x.py:9: UserWarning: The figure layout has changed"}):
        broken = copy.deepcopy(nb)
        next(c for c in broken["cells"] if c["cell_type"] == "code")["outputs"].append(bad)
        assert build.notebook_problems(broken), bad
    unrecorded = copy.deepcopy(nb)
    del unrecorded["metadata"][book.METADATA_KEY]
    assert any("no execution record" in p for p in build.notebook_problems(unrecorded))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_stored_outputs_are_from_the_book_settings_and_current(notebook):
    """Every chapter is committed executed with the book settings, from its present code, without
    errors, tracebacks, progress bars or smoke phrases (python -m mtm.book execute --stale)."""
    nb = json.loads(notebook.read_text())
    assert build.has_outputs(nb), f"{notebook.stem} is not executed"
    assert build.notebook_problems(nb) == []
    record = nb["metadata"][book.METADATA_KEY]
    # the budget: 20 minutes a chapter on a 2-core CPU (and 100 for the book: the next test)
    assert record["machine"]["cores"] >= 1 and record["wall_time_s"] < 20 * 60
    assert not record["commit"].endswith("-dirty"), "executed from uncommitted package code"
    assert build.coalesce_streams(copy.deepcopy(nb)) == 0, "a printed log is split into one output per line"


def test_the_whole_book_executes_within_its_budget():
    """The book can be re-executed within one working session: 100 minutes on a 2-core CPU."""
    minutes = sum(json.loads(n.read_text())["metadata"][book.METADATA_KEY]["wall_time_s"] for n in CHAPTERS) / 60
    assert minutes < 100, f"the stored executions took {minutes:.0f} min in all"


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
    assert build.coalesce_streams(nb) == 1
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in nb["cells"][1]["outputs"]] == [
        ("stream", "stdout", "[ 0 s] training\n[ 9 s]   finished a\n"), ("stream", "stderr", "a warning line\n"),
        ("stream", "stdout", "[12 s] done\n"), ("display_data", None, None), ("stream", "stdout", "after the figure\n")]
    assert build.coalesce_streams(nb) == 0


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
        build.main(["execute", "99_nothing"])
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


def run_alone(notebook: Path, folder: Path, python: str | None = None, kernel: str = "python3",
              env: dict | None = None) -> dict:
    """Copy ``notebook`` alone into the empty ``folder`` and execute it there with papermill and the
    smoke settings (cwd = ``folder``); returns the executed notebook."""
    folder.mkdir(parents=True)
    alone = Path(shutil.copy(notebook, folder / notebook.name))
    out = folder.parent / f"{notebook.stem}.executed.ipynb"
    subprocess.run([python or sys.executable, "-m", "papermill", str(alone), str(out), "-p", "SETTINGS", "smoke",
                    "-p", "SEED", "1", "--cwd", str(folder), "-k", kernel, "--no-progress-bar",
                    "--execution-timeout", "600"], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.read_text())


def check_smoke_run(executed: dict) -> None:
    injected = [c for c in executed["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and re.search(r"^SETTINGS = .smoke.$", source(injected[0]), re.M)
    assert build.run_problems(executed, "smoke") == []


def test_a_test_run_must_reach_its_end_with_its_settings_and_skip_nothing():
    def run(*printed: str) -> dict:
        nb = synthetic_notebook(("code", "run()", []))
        nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text} for text in printed]
        return nb

    good = ("Settings 'smoke' on a CPU.\n", build.OPT_IN_DOWNLOAD + ".\n",
            "Executed with settings 'smoke' in 0.1 min.\n")

    def problems(*printed: str, settings: str = "smoke") -> str:
        return "\n".join(build.run_problems(run(*printed), settings))

    assert problems(*good) == ""
    assert "never printed \"Settings 'book'\"" in problems(*good, settings="book")
    assert "never printed \"Executed with" in problems(*good[:2])
    assert "skipped" in problems(*good, "Skipped the IBL part: no network\n")
    assert "traceback" in problems(*good, "Traceback (most recent call last):\n")
    failed = run(*good)
    error = {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}
    failed["cells"][0]["outputs"].append(error)
    assert any("an error output (ValueError: x)" in p for p in build.run_problems(failed, "smoke"))


def environment_of_the_installed_package() -> dict:
    """The test's environment without the settings that point the package at data outside it."""
    from mtm.book.pytest_chapters import kernel_environment

    return {**kernel_environment(dict(os.environ)), "MTM_SMOKE": "0"}  # the SETTINGS parameter alone picks smoke


def test_the_colab_install_line_installs_the_tagged_release_into_a_fresh_virtualenv(tmp_path):
    """A chapter's set-up cell, as Colab runs it: ``pip install -q PACKAGE`` with the install line's
    requirement, the repository's URL replaced by a local clone (file://localhost/..., the form pip 23 parses)
    tagged with the release, into a
    fresh virtualenv; the package and its data land in that virtualenv and chapter 1 then runs there
    with the smoke settings. The heavy dependencies come from this environment (a .pth file), as Colab's
    come preinstalled, so nothing but the package is installed and no network is needed."""
    import ast
    import site
    import sysconfig

    pytest.importorskip("papermill")
    clone = tmp_path / "repository"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "tag", "-f", book.RELEASE], check=True, capture_output=True)
    requirement = ast.literal_eval(book.install_line(f"file://localhost{clone}").split("=", 1)[1].strip())
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    here = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    Path(purelib, "preinstalled.pth").write_text("\n".join(dict.fromkeys(here)) + "\n")
    env = {k: v for k, v in environment_of_the_installed_package().items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    setup = next(source(c) for c in cells(CHAPTERS[0]) if c["cell_type"] == "code")
    assert '[sys.executable, "-m", "pip", "install", "-q", PACKAGE]' in setup  # the command below
    started = time.perf_counter()
    subprocess.run([python, "-m", "pip", "install", "-q", requirement], check=True, env=env, cwd=tmp_path)
    installed = subprocess.run([python, "-c", "import mtm, mtm.data as d; print(mtm.__file__); "
                                "print(d.real_data_dir(required=True)); print(d.reference_checkpoint_dir(required=True))"],
                               check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.split()
    assert all(path.startswith(purelib) for path in installed), installed
    print(f"pip install of the release: {time.perf_counter() - started:.0f} s")
    subprocess.run([python, "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "fresh"], check=True,
                   capture_output=True, env=env)
    check_smoke_run(run_alone(CHAPTERS[0], tmp_path / "alone", python=python, kernel="fresh", env=env))


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
    assert build.failure_reason(err) == "cell 12 raised ValueError: /runs/x holds a run lock"
    assert build.failure_reason(OSError("disk full\nsecond line")) == "OSError: disk full"


def test_compare_words_follow_the_interval_not_the_hand():
    from mtm.stats import mean_interval

    assert book.compare_words("MtM", "temporal", mean_interval([0.05, 0.06, 0.04])).startswith("MtM is above temporal (")
    assert book.compare_words("MtM", "temporal", mean_interval([-0.05, -0.06, -0.04])).startswith("MtM is below temporal (")
    tie = book.compare_words("MtM", "temporal", mean_interval([0.05, -0.06, 0.04]))
    assert "cannot be told apart" in tie and "contains zero" in tie
    assert "no interval" in book.compare_words("MtM", "temporal", mean_interval([0.05]))
    # a bound that rounds to zero keeps the digits that show its sign
    from mtm.stats import Interval

    near = book.compare_words("MtM", "temporal", Interval(0.08, 0.003, 0.157, 3))
    assert near.startswith("MtM is above temporal (") and "interval +0.003 to +0.16" in near, near
    assert "+0.00 " not in near and "+0.0000" not in book.compare_words("a", "b", Interval(0.1, 0.0, 0.2, 3))
    # a mean that rounds to zero inside an interval around zero is 0.00, not "-0.0000"
    tiny = book.compare_words("MtM", "linear", Interval(-0.00004, -0.03, 0.03, 3))
    assert "difference 0.00, 95 % interval -0.03 to +0.03" in tiny, tiny
    with pytest.raises(ValueError, match="difference"):
        book.compare_words("MtM", "temporal", mean_interval([]))


# ---------------------------------------------------------------------------------- the pages (issue 24)
def synthetic_notebook(*cells: tuple[str, str, list]) -> dict:
    """A notebook of (cell type, source, tags) cells, as the chapters store them."""
    return {"cells": [{"cell_type": kind, "source": text, "metadata": {"tags": tags} if tags else {},
                       **({"outputs": []} if kind == "code" else {})} for kind, text, tags in cells]}


def markdown_only(*texts: str) -> dict:
    return synthetic_notebook(*(("markdown", text, []) for text in texts))


def test_the_prose_number_rule_catches_results_typed_in_every_form():
    nb = markdown_only("MtM scores 0.44 and the baseline .37 bits per spike.",
                       "Forward prediction gets worse (-0.04 to \u22120.05) while MtM gains +0.07.",
                       "Dots above the diagonal for 82 % of the neurons (79% in LP, 12.5 % in PO).",
                       "$$R^2 = 0.61$$ and, in a table:\n\n| model | bps |\n|---|---|\n| MtM | 0.31 |",
                       ":::{admonition} Solution\n:class: dropdown\nThe gap is 0.07.\n:::",
                       "```{note}\nThe loss falls to 0.289.\n```",
                       "````{admonition} Solution\nThe gap is 0.08.\n```python\nx = 0.123\n```\nOr 0.09.\n````",
                       "As in \u00a7 2.1, the rate is 1.7 times the baseline's.")
    assert [d.number for d in build.unglued_decimals(nb, "05_evaluation")] == [
        "0.44", ".37", "-0.04", "\u22120.05", "+0.07", "82 %", "79%", "12.5 %", "0.61", "0.31", "0.07", "0.289",
        "0.08", "0.09", "1.7"]


def test_the_prose_number_rule_passes_glue_notation_references_and_the_named_constants():
    nb = markdown_only(
        "MtM scores {glue:text}`mtm_cosmooth` ({glue}`gap`, {glue:}`ratio`, {glue:md}`table`) bits per spike.",
        "## 2.1 Masks\n\nThe learning rate decays to $10^{-4}$ of its peak; $x_{t,n}$ is a count, "
        "$\\lambda_{n}(t)$ a rate.",
        "The loss (Eq. (2.1), $$L = -\\log p \\tag{2.1}$$) is drawn in Fig. 5.2 and {numref}`fig-05-scatter`, "
        "Section 4.3 and Table 3.1 explain it.",
        "```{figure} x.png\n:width: 80%\n:name: fig-x\n```",
        "A 95 % interval over seeds; 0 % to 100 % of the neurons; bins of 0.02 s, the causal ratio 30 %.",
        "The paper's Table 3 gives 0.44 for causal masking.")
    assert build.unglued_decimals(nb, "05_evaluation") == []


def test_a_percentage_matches_a_constant_as_its_fraction_and_never_by_rounding():
    nb = markdown_only("Intervals at 0.9 or 90 %, ratios of 0.3, 31 % or 60 %, and exactly 0.00.")
    assert [d.number for d in build.unglued_decimals(nb, "05_evaluation")] == ["0.9", "90 %", "31 %", "0.00"]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_prose_numbers_are_glued_or_named_constants(notebook):
    """Every decimal in a chapter's Markdown comes from the executed outputs (glued) or is one of the
    short, named list of inputs: the paper's tables where the sentence cites the paper, the settings,
    the package's constants (mtm.book.build.unglued_decimals)."""
    found = build.unglued_decimals(json.loads(notebook.read_text()), notebook.stem)
    shown = "\n".join(f"  cell {d.cell}: {d.number!r} in: {d.context}" for d in found[:5])
    assert not found, f"{notebook.stem}: {len(found)} decimals typed by hand in its Markdown; the first:\n{shown}"


def test_the_solution_rule_wants_folded_code_cells_and_no_code_in_markdown():
    exercise = ("## Exercises\n\n**Exercise 1.** Count.\n\n:::{admonition} Hint\n:class: dropdown\nUse `n`.\n:::\n\n"
                ":::{admonition} Solution\n:class: dropdown\nOnly the read-out changes.\n:::\n")
    good = synthetic_notebook(("markdown", "# Title", []), ("markdown", exercise, []),
                              ("code", "counts = n(net)\ncounts", ["hide-input"]),
                              ("markdown", "**Exercise 2.** Plot.\n\n````{admonition} Solution\n:class: dropdown\n"
                               "Expect a rise.\n````", []), ("code", "plot()", ["hide-cell"]),
                              ("markdown", "## Appendix\n\n:::{admonition} Solution\nnot an exercise\n:::", []))
    assert build.exercise_problems(good) == []
    fenced = copy.deepcopy(good)
    fenced["cells"][1]["source"] = exercise.replace("Only the", "```python\ncounts\n```\nOnly the")
    indented = copy.deepcopy(good)
    indented["cells"][1]["source"] = exercise.replace("Only the", "In code:\n\n    counts = n(net)\n\nOnly the")
    for broken in (fenced, indented):
        assert [p for p in build.exercise_problems(broken) if "a code block inside a Solution" in p], broken
    unfolded = copy.deepcopy(good)
    unfolded["cells"][2]["metadata"] = {}
    markdown_next = copy.deepcopy(good)
    del markdown_next["cells"][2]
    two = copy.deepcopy(good)
    two["cells"][1]["source"] = exercise + "\n**Exercise 3.**\n\n:::{admonition} Solution\nWords.\n:::\n"
    for broken, why in ((unfolded, "not followed by a code cell"), (markdown_next, "not followed by a code cell"),
                        (two, "2 solutions in one Markdown cell")):
        assert any(why in p for p in build.exercise_problems(broken)), why
    assert build.exercise_problems(markdown_only("# Title")) == ["no '## Exercises' section"]


def test_a_details_block_is_a_solution_under_the_same_rule():
    """``<details><summary>Solution</summary>`` (plain HTML, which Colab, Jupyter and GitHub fold too) is a
    solution like the admonition: no code inside, one a cell, its code in the folded cell after it."""
    exercise = ("## Exercises\n\n**Exercise 1.** Count.\n\n<details>\n<summary>Hint</summary>\n\nUse `n`.\n\n"
                "</details>\n\n<details>\n<summary><b>Solution</b></summary>\n\nOnly the read-out changes.\n\n"
                "</details>\n")
    good = synthetic_notebook(("markdown", "# Title", []), ("markdown", exercise, []),
                              ("code", "counts = n(net)", ["hide-input"]),
                              ("markdown", "**Exercise 2.**\n\n<details><summary>Solution 2</summary>\n\nWords.\n"
                               "</details>", []), ("code", "plot()", ["hide-cell"]))
    assert build.exercise_problems(good) == []
    fenced = copy.deepcopy(good)
    fenced["cells"][1]["source"] = exercise.replace("Only the", "```python\ncounts\n```\nOnly the")
    assert any("a code block inside a Solution" in p for p in build.exercise_problems(fenced))
    after_the_block = copy.deepcopy(good)  # a code block after </details> is not the solution's
    after_the_block["cells"][1]["source"] = exercise + "\n```python\ncounts\n```\n"
    assert build.exercise_problems(after_the_block) == []
    unfolded = copy.deepcopy(good)
    unfolded["cells"][4]["metadata"] = {}
    two = copy.deepcopy(good)
    two["cells"][1]["source"] = exercise + "\n<details>\n<summary>Solution</summary>\n\nMore.\n\n</details>\n"
    hint_only = copy.deepcopy(good)  # a hint needs no code cell after it
    hint_only["cells"][1]["source"] = exercise.split("<details>\n<summary><b>Solution")[0]
    del hint_only["cells"][2]
    assert any("not followed by a code cell" in p for p in build.exercise_problems(unfolded))
    assert any("2 solutions in one Markdown cell" in p for p in build.exercise_problems(two))
    assert build.exercise_problems(hint_only) == []


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_exercise_solutions_are_executed_folded_code_cells(notebook):
    """Each exercise's solution is a code cell tagged hide-input (or hide-cell) right after the
    exercise's Markdown, which keeps the hint and the explanation in words: CI runs it."""
    problems = build.exercise_problems(json.loads(notebook.read_text()))
    assert not problems, f"{notebook.stem}: " + "; ".join(problems[:4])


def test_a_machine_path_in_an_output_is_refused_and_urls_and_relative_paths_are_not():
    nb = executed_copy(CHAPTERS[0])
    for bad in ("training in /work/main/runs/book/book", "best checkpoint: /tmp/mtm_released_7j/best.safetensors",
                "saved to '/home/ana/x.pt'", "(/root/.cache/x)", "in /Users/ana/mtm", "C:\\Users\\ana\\runs",
                "{'dir': 'C:\\\\runs'}", "tables in runs/book/book/reproduction/results.md",
                "file:///srv/x.html", "weights in ~/.cache/mtm/book-runs"):
        broken = copy.deepcopy(nb)
        next(c for c in broken["cells"] if c["cell_type"] == "code")["outputs"].append(
            {"output_type": "stream", "name": "stdout", "text": bad})
        assert build.notebook_problems(broken), bad
    for fine in ("see https://github.com/int-brain-lab/home/tmp/x and http://x.org/Users/a",
                 "tables in reproduction/results.md", "run folder mtm-seed0/best.pt", "data/tmp/x.npy",
                 "ratio 1/2 of 3/4", "note: a:b", "log-rates/home"):
        honest = copy.deepcopy(nb)
        next(c for c in honest["cells"] if c["cell_type"] == "code")["outputs"].append(
            {"output_type": "stream", "name": "stdout", "text": fine})
        assert build.notebook_problems(honest) == [], fine


def test_code_lines_longer_than_the_column_are_found():
    nb = synthetic_notebook(("markdown", "x" * 200, []), ("code", "a = 1\n" + "b" * 80 + "\n" + "c" * 79, []))
    assert build.long_code_lines(nb) == [(1, 2, "b" * 80)]
    assert build.long_code_lines(nb, width=5) == [(1, 2, "b" * 80), (1, 3, "c" * 79)]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_code_cells_fit_the_content_column(notebook):
    """A code line wider than the content column (mtm.book.CODE_COLUMN characters) is cut off on the page."""
    long = build.long_code_lines(json.loads(notebook.read_text()))
    shown = "\n".join(f"  cell {cell} line {number} ({len(line)} chars): {line.strip()[:70]}"
                      for cell, number, line in long[:5])
    assert not long, f"{notebook.stem}: {len(long)} code lines over {book.CODE_COLUMN} characters; the first:\n{shown}"


#: The chapters that meet the page rules of issue 31 (the test below). Chapters join the list as they are
#: rewritten to meet them; it holds every chapter.
PAGE_RULE_CHAPTERS = ("01_data", "02_masking", "03_model", "04_training", "05_evaluation", "06_decoding",
                      "07_multisession", "08_reproduction", "09_experiments", "10_budget", "11_own_data")


@pytest.mark.parametrize("name", PAGE_RULE_CHAPTERS)
def test_the_page_shows_the_method_in_short_cells(name):
    """On every chapter (PAGE_RULE_CHAPTERS; a new chapter joins it once it meets the rules; the list
    holds every chapter): at most 10 % of the visible code lines are the book's machinery (settings,
    run folders, glue, checks, sentences and boxes written from numbers, shown source, execution records:
    mtm.book.build.machinery_share), and no code cell is longer than 40 lines (build.MAX_CELL_LINES; a
    d2l cell is 5-15 lines)."""
    notebook = BOOK / f"{name}.ipynb"
    assert notebook.exists(), f"{name} is in PAGE_RULE_CHAPTERS but not in book/"
    nb = json.loads(notebook.read_text())
    share = build.machinery_share(nb)
    assert share.share <= 0.10, (f"{name}: {share.machinery} of {share.visible} visible code lines "
                                 f"({share.share:.1%}) are the book's machinery; at most 10 %")
    long = [(cell, lines) for cell, lines in build.code_cell_lengths(nb) if lines > build.MAX_CELL_LINES]
    assert not long, f"{name}: code cells longer than {build.MAX_CELL_LINES} lines (cell, lines): {long}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_the_title_has_no_hand_typed_number(notebook):
    """The table of contents numbers the chapters (and their figures: Fig. 5.2); a title typed "5. ..."
    would show the number twice."""
    title = source(cells(notebook)[0]).splitlines()[0]
    assert title.startswith("# ") and not re.match(r"#\s+\d+(?:\.\d+)*[.:)]?\s", title), title


def test_a_stored_figure_without_caption_or_name_is_found():
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    nb = synthetic_notebook(("code", "plot()", []), ("code", "plot()", []), ("code", "plot()", []),
                            ("code", "print(1)", []))
    for cell in nb["cells"][:3]:
        cell["outputs"] = [figure]
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    nb["cells"][1]["metadata"] = {"mystnb": {"figure": {"caption": "Scores.", "name": "fig-05-scores"}}}
    nb["cells"][2]["metadata"] = {"mystnb": {"figure": {"caption": "Scores."}}}
    assert build.figure_problems(nb) == ["cell 0: a figure without caption and name in its mystnb metadata",
                                         "cell 2: a figure without name in its mystnb metadata"]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_every_stored_figure_is_captioned_and_named(notebook):
    """Each figure the chapter draws has a caption and a name (mystnb metadata), so the page numbers it
    (Fig. 5.2) and the text refers to it with {numref}."""
    problems = build.figure_problems(json.loads(notebook.read_text()))
    assert not problems, f"{notebook.stem}: " + "; ".join(problems)


def test_the_bibliography_is_author_year_like_the_citations_and_outputs_wrap():
    from pybtex.database import parse_string

    from mtm.book import bibliography

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["config"]["bibtex_reference_style"] == "author_year"
    assert "mtm.book.bibliography" in config["sphinx"]["extra_extensions"]
    assert f":style: {bibliography.STYLE}" in (BOOK / "bibliography.md").read_text()
    css = config["sphinx"]["config"]["html_css_files"]
    assert all((ROOT / config["sphinx"]["config"]["html_static_path"][0] / name).exists() for name in css)
    authors = {"a": "Zhang, Yizi and Wang, Y. and others", "b": "Ye, Joel and Pandarinath, C.",
               "c": "{International Brain Laboratory}", "d": "Ye, Joel and Pandarinath, C."}
    years = {"a": 2024, "b": 2021, "c": 2023, "d": 2021}
    data = parse_string("\n".join(f"@article{{{key}, author = {{{who}}}, year = {{{years[key]}}}, "
                                  f"title = {{{key.upper()}}}, journal = {{J}}}}" for key, who in authors.items()),
                        "bibtex")
    labels = list(bibliography.AuthorYearLabelStyle().format_labels(data.entries.values()))
    assert labels == ["Zhang et al., 2024", "Ye and Pandarinath, 2021a", "International Brain Laboratory, 2023",
                      "Ye and Pandarinath, 2021b"]
    bibliography.setup()
    style = bibliography.AuthorYearStyle()
    assert [(entry.key, entry.label) for entry in style.format_entries(data.entries.values())] == [
        ("c", "International Brain Laboratory, 2023"), ("b", "Ye and Pandarinath, 2021a"),
        ("d", "Ye and Pandarinath, 2021b"), ("a", "Zhang et al., 2024")]


def test_the_recorded_time_is_announced_only_for_the_code_it_timed(tmp_path, monkeypatch):
    """A chapter whose code changed since its stored execution (often with other settings) does not
    announce that execution's wall time as its own."""
    stored = json.loads((BOOK / "05_evaluation.ipynb").read_text())
    monkeypatch.setattr(book, "BOOK", tmp_path)
    (tmp_path / "05_evaluation.ipynb").write_text(json.dumps(stored))
    minutes, _ = book.recorded_minutes("05_evaluation", "book")
    assert minutes == stored["metadata"][book.METADATA_KEY]["wall_time_s"] / 60
    assert book.recorded_minutes("05_evaluation", "smoke") is None
    code = next(c for c in stored["cells"] if c["cell_type"] == "code")
    code["source"] = source(code) + "\nprint('changed')"
    (tmp_path / "05_evaluation.ipynb").write_text(json.dumps(stored))
    assert book.recorded_minutes("05_evaluation", "book") is None


def test_transfer_findings_state_what_the_paired_differences_show():
    """Chapter 7's boxes: fine-tuned MtM clearly above from scratch at every size (+0.2 and +0.1 with small
    seed noise), temporal not separable (seeds of both signs); the sentences say so, size by size."""
    from mtm.reproduce import transfer

    def records(base, spread=(0.0, 0.01, -0.01)):
        return [{"seed": s, "session": "s", "scores": {t: base + d for t in transfer.TASKS}}
                for s, d in enumerate(spread)]

    runs = {}
    for n, gain in ((10, 0.2), (20, 0.1)):
        for label in transfer.MASKINGS:
            runs[transfer.row_name(label, 0, n)] = records(0.0)
            for count in (1, 2):
                runs[transfer.row_name(label, count, n)] = (
                    records(gain) if label.startswith("MtM") else records(0.0, (0.3, -0.3, 0.01)))
    for label in transfer.MASKINGS:
        runs[transfer.row_name(label, 2, 20, "frozen-core")] = records(0.1)
        runs[transfer.equal_compute_row(label, 2, 20)] = records(0.0)
    found = book.transfer_findings(runs, [1, 2], [10, 20], ("full", "frozen-core"))
    assert len(found["gain"]) == 4 and len(found["growth"]) == 2 and len(found["protocols"]) == 2
    mtm_gain = [w for w in found["gain"] if w.startswith("MtM")]
    assert all("is above the same masking trained from scratch on co-smoothing" in w for w in mtm_gain)
    assert all("cannot be told apart" in w for w in found["gain"] if w.startswith("Temporal"))
    assert "fine-tuned on 10 trials" in mtm_gain[0] and "fine-tuned on 20 trials" in mtm_gain[1]
    assert any("above the same from scratch at equal total compute" in w for w in found["equal"])

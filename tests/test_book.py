"""The book's chapters: structure checks, and a papermill run of every chapter with small-session
parameters (nbmake runs them too, with MTM_SMOKE=1, when pytest collects book/)."""

import json
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
COLAB = "https://colab.research.google.com/github/mtm-book/mtm/blob/main/book/{}"

#: papermill parameters of every chapter: small sessions and short training, explicitly set.
SMALL_PARAMETERS = {
    "01_data": dict(N_TRIALS=40, N_NEURONS=30, SEED=1),
    "02_masking": dict(N_TRIALS=40, N_NEURONS=30, SEED=1, N_MASKS=20, N_DRAWS=400, REAL_IBL=False),
    "03_model": dict(N_TRIALS=40, N_NEURONS=30, SEED=1, MODEL_SIZE="small", NDT2_PATCH=16),
    "04_training": dict(N_TRIALS=48, N_NEURONS=30, EPOCHS=3, RESUME_EPOCHS=3, SEED=1),
    "05_evaluation": dict(N_TRIALS=48, N_NEURONS=30, EPOCHS=2, SEED=1, REGION="LP"),
    "06_decoding": dict(N_TRIALS=40, N_NEURONS=30, EPOCHS=2, SEED=1),
    "07_multisession": dict(N_TRIALS=40, N_NEURONS=30, EPOCHS=2, PRETRAIN_EPOCHS=2, SEED=1),
    "08_reproduction": dict(N_TRIALS=40, N_NEURONS=30, EPOCHS=2, N_PRETRAIN=1, N_TEST=1, SEED=1),
}


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for chapter in toc.get("chapters", []):
        files.append(chapter["file"])
        files += [section["file"] for section in chapter.get("sections", [])]
    return files


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
    cells = nb["cells"]
    tags = [tag for cell in cells for tag in cell.get("metadata", {}).get("tags", [])]
    assert tags.count("parameters") == 1
    first = "".join(cells[0]["source"])
    assert first.startswith("# ") and COLAB.format(notebook.name) in first
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for heading in ("**What you will learn**", "## 1. ", "## Summary", "## Exercises"):
        assert heading in text, heading
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "IN_COLAB" in code and "mtm.smoke()" in code
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), "commit notebooks without outputs"
    assert notebook.stem in SMALL_PARAMETERS


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_chapter_matches_its_python_twin(notebook):
    """Each chapter has a py:percent twin for review; both must hold the same cells."""
    jupytext = pytest.importorskip("jupytext")
    twin = notebook.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: jupytext --to py:percent {notebook.name}"
    a, b = jupytext.read(notebook), jupytext.read(twin)
    assert [(c.cell_type, c.source.strip()) for c in a.cells] == [(c.cell_type, c.source.strip()) for c in b.cells]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[n.stem for n in CHAPTERS])
def test_chapter_runs_under_papermill_with_small_parameters(notebook, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("MTM_SMOKE", "1")
    out = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(out), parameters=SMALL_PARAMETERS[notebook.stem],
                               kernel_name="python3", cwd=str(BOOK), progress_bar=False, execution_timeout=600)
    executed = json.loads(out.read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and all(re.search(rf"^{k} = ", "".join(injected[0]["source"]), re.M)
                            for k in SMALL_PARAMETERS[notebook.stem])
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert os.environ["MTM_SMOKE"] == "1"

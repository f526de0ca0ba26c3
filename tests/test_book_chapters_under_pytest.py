"""``pytest --nbmake book/`` (mtm.book.pytest_chapters): each chapter runs alone in an empty folder, with the
smoke settings without a flag, and must reach its end; other notebooks and the reader copies are left to
nbmake or not collected. Checked on small notebooks in a folder laid out as book/ is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What a chapter checks of the folder and environment it runs in, then the lines a chapter prints.
PROBE = """import os
assert sorted(os.listdir(".")) == ["01_probe.ipynb"], os.listdir(".")
assert os.environ.get("MTM_SMOKE") == "1", os.environ.get("MTM_SMOKE")
assert "MTM_REAL_DATA" not in os.environ and "MTM_BOOK_RUNS" not in os.environ"""
SETTINGS_LINES = """from mtm.book import resolve_settings
settings = resolve_settings("auto")
print(f"Settings '{settings}' on this machine.")
print(f"Executed with settings '{settings}' in 0.0 min.")"""


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def run_pytest(folder: Path, *args: str, **env) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if k != "MTM_SMOKE"}
    environ.update(env)
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "-p", "no:cacheprovider", "-rA",
                           "--rootdir", str(folder), str(folder / "book"), *args],
                          cwd=folder, capture_output=True, text=True, env=environ, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def book_folder(tmp_path):
    book = tmp_path / "book"
    (book / "colab").mkdir(parents=True)
    (book / "conftest.py").write_text((ROOT / "book" / "conftest.py").read_text())
    (book / "beside.txt").write_text("a file beside the chapters, which a chapter run alone must not see")
    write_notebook(book / "01_probe.ipynb", PROBE, SETTINGS_LINES)
    write_notebook(book / "02_skips.ipynb", SETTINGS_LINES, 'print("Skipped the IBL part: no network")')
    write_notebook(book / "notes.ipynb", 'import os\nassert "beside.txt" in os.listdir(".")')  # not a chapter
    write_notebook(book / "colab" / "01_probe.ipynb", "raise RuntimeError('a reader copy was collected')")
    return tmp_path


def test_plain_nbmake_runs_each_chapter_alone_with_smoke_settings_to_its_end(book_folder):
    code, printed = run_pytest(book_folder, MTM_REAL_DATA=str(ROOT), MTM_BOOK_RUNS=str(book_folder))
    assert "PASSED book/01_probe.ipynb" in printed, printed
    assert "PASSED book/notes.ipynb" in printed, printed  # nbmake's own run, in place
    assert "FAILED book/02_skips.ipynb" in printed and "a part was skipped" in printed, printed
    assert "colab" not in printed.replace(str(book_folder), "")
    assert code == 1 and "1 failed, 2 passed" in printed, printed


def test_overwrite_never_stores_a_test_run_in_a_chapter(book_folder):
    before = (book_folder / "book" / "01_probe.ipynb").read_text()
    code, printed = run_pytest(book_folder, "--overwrite", "-k", "01_probe")
    assert code == 1 and "python -m mtm.book execute" in printed, printed
    assert (book_folder / "book" / "01_probe.ipynb").read_text() == before
    assert json.loads(before)["cells"][0]["outputs"] == []

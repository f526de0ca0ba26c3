"""``pytest --nbmake book/``: every chapter executed once, alone, with the smoke settings.

nbmake collects each ``*.ipynb`` and runs it in place with its own kernel. ``book/conftest.py`` loads
this module, which changes three things for the chapters (``NN_name.ipynb``), and nothing for any other
notebook:

- **Alone.** Each chapter is copied alone into an empty temporary folder and executed there (the
  kernel's working folder), against the installed package and the data it installs: the settings that
  point the package at data or runs outside it (``MTM_REAL_DATA``, ``MTM_REFERENCE_CHECKPOINT``,
  ``MTM_BOOK_RUNS``) are removed from the kernel's environment. A chapter that reads a file beside it,
  or a folder of this machine, fails here as it would on Colab.
- **Smoke settings without a flag.** The kernel gets ``MTM_SMOKE=1`` unless ``MTM_SMOKE`` is set, so a
  chapter's ``SETTINGS = "auto"`` (:func:`mtm.book.resolve_settings`) resolves to ``smoke``, on a
  GPU too: plain ``pytest --nbmake book/`` never trains at book size. ``MTM_SMOKE=0 pytest --nbmake
  book/`` runs what ``auto`` picks otherwise (``gpu`` with a CUDA GPU, ``book`` without), for which
  nbmake's per-cell timeout (``--nbmake-timeout``, 300 s) is usually too short.
- **Checked to its end.** Besides nbmake's own test (no cell raises), the executed chapter must print
  its settings line and closing line with those settings, and nothing "Skipped"
  (:func:`mtm.book.build.run_problems`).

``--overwrite`` is refused for chapters: their stored outputs are the ``book`` settings', written by
``python -m mtm.book execute``. The reader copies in ``book/colab/`` are not collected
(``book/conftest.py``): they hold the chapters' code.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from nbmake.nb_run import NotebookRun
from nbmake.pytest_items import NbMakeFailureRepr, NotebookFailedException, NotebookFile, NotebookItem

from mtm.book import RUNS_ENV, resolve_settings
from mtm.book.build import run_problems

#: A chapter's file name.
CHAPTER = re.compile(r"\d\d_\w+\.ipynb")


def kernel_environment(environ: dict) -> dict:
    """The environment a chapter's kernel runs in: ``environ`` with ``MTM_SMOKE`` defaulting to 1, and
    without the settings that point the package at data or runs outside it."""
    from mtm.data.sources import REAL_DATA_ENV, REFERENCE_CHECKPOINT_ENV  # collecting must not load mtm.data

    env = {k: v for k, v in environ.items() if k not in (REAL_DATA_ENV, REFERENCE_CHECKPOINT_ENV, RUNS_ENV)}
    env.setdefault("MTM_SMOKE", "1")
    return env


@contextmanager
def _environment(env: dict):
    """``os.environ`` replaced by ``env`` for the block (the kernel inherits it), then restored."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ChapterCheckFailed(Exception):
    """A chapter ran without an error but not as a test run must (:func:`mtm.book.build.run_problems`)."""


class ChapterItem(NotebookItem):
    """nbmake's notebook test of one chapter, executed alone in an empty folder (see the module)."""

    def runtest(self):
        option = self.config.option
        if option.overwrite:
            pytest.fail(f"{Path(self.filename).name}: --overwrite would store smoke outputs in a chapter; "
                        "chapters are executed with python -m mtm.book execute")
        source = Path(self.config.rootdir) / self.filename
        env = kernel_environment(dict(os.environ))
        with tempfile.TemporaryDirectory(prefix="mtm_chapter_") as folder, _environment(env):
            alone = Path(shutil.copy(source, Path(folder) / source.name))
            settings = resolve_settings("auto")
            result = NotebookRun(alone, option.nbmake_timeout, verbose=bool(option.verbose),
                                 kernel=option.nbmake_kernel,
                                 find_import_errors=option.nbmake_find_import_errors).execute()
        if result.error is not None:
            raise NotebookFailedException(result)
        problems = run_problems(result.nb, settings)
        if problems:
            raise ChapterCheckFailed(f"{source.name} ran alone with the {settings} settings, but: "
                                     + "; ".join(problems))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ChapterCheckFailed):
            message = str(excinfo.value)
            return NbMakeFailureRepr(message, message.splitlines()[0][:200])
        return super().repr_failure(excinfo, style)


class ChapterFile(NotebookFile):
    def collect(self):
        yield ChapterItem.from_parent(self, filename=str(Path(self.fspath)))


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent):
    """nbmake's collection, with each chapter's notebook test replaced by a :class:`ChapterItem`."""
    collected = yield
    return [ChapterFile.from_parent(parent, path=file_path)
            if isinstance(node, NotebookFile) and CHAPTER.fullmatch(file_path.name) else node
            for node in collected]

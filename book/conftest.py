"""``pytest --nbmake book/`` executes each chapter once, alone in an empty folder, with the smoke
settings unless ``MTM_SMOKE`` says otherwise (:mod:`mtm.book.pytest_chapters`); the reader copies in
``colab/`` hold the same code and are not collected."""

from mtm.book.pytest_chapters import pytest_collect_file  # noqa: F401  (a hook: the chapters' notebook tests)

collect_ignore = ["colab"]

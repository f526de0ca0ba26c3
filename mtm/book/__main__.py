"""``python -m mtm.book execute|check ...``: the book's build tool (:mod:`mtm.book.build`)."""

import sys

from mtm.book.build import main

sys.exit(main())

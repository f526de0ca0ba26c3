"""File names made from data, and files the user already has.

Region labels, session ids and model names come from files a user did not write (an NWB
``location`` column, a checkpoint's metadata) and may hold ``/``, ``..`` or a NUL. Every file name
the package builds from such a label goes through :func:`safe_name`, so a file is always written in
the folder the user named and two labels never share a file. :func:`refuse_existing` is the one
check that a command does not replace a file the user made without ``--force``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: the characters a label keeps in a file name; anything else is replaced
_SAFE = re.compile(r"[A-Za-z0-9._-]")
_MAX_KEPT = 64


def safe_name(label) -> str:
    """A file-name component for ``label`` that stays inside its folder and is distinct per label.

    A label of 1 to 64 letters, digits, ``.``, ``_`` and ``-`` that does not start with ``.`` is its
    own name (IBL eids, region acronyms such as ``CA1``). Any other label (``..``, ``a/b``, a NUL, an
    empty or a very long one) keeps its first 64 characters, each unsafe one replaced by ``_`` and
    leading dots dropped, followed by ``~`` and 12 hex digits of its SHA-256: ``~`` never occurs in a
    name kept as it is, and the digest tells apart labels that differ only in replaced characters
    (``VISp2/3`` -> ``VISp2_3~<digest>``, never the file of ``VISp2_3``).
    """
    label = str(label)
    if 0 < len(label) <= _MAX_KEPT and not label.startswith(".") and all(_SAFE.match(c) for c in label):
        return label
    kept = "".join(c if _SAFE.match(c) else "_" for c in label[:_MAX_KEPT]).lstrip(".")
    return f"{kept}~{hashlib.sha256(label.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def refuse_existing(path, force: bool, what: str = "file") -> Path:
    """``path``, after checking it does not hold a file the user made (``ValueError`` naming
    ``--force`` if it does and ``force`` is false)."""
    path = Path(path)
    if path.exists() and not force:
        raise ValueError(f"{path}: the {what} already exists and is kept; pass --force to replace it")
    return path

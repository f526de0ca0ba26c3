"""Atomic file writes: every file the package saves (sessions, checkpoints, logs, tables) is written
under a temporary name in its folder and renamed into place, so an interrupted write never leaves a
partial file and never destroys the previous one."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _disk_errno(err: Exception) -> int | None:
    """The errno of a disk error that a writer reports as its own exception: torch.save's
    "unexpected pos" on a full disk, safetensors' "No space left on device (os error 28)"."""
    text = str(err)
    if "unexpected pos" in text or "No space left" in text or "os error 28" in text:
        return errno.ENOSPC
    if "Read-only file system" in text or "os error 30" in text:
        return errno.EROFS
    return None


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give it (0o666 minus the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        code = err.errno if isinstance(err, OSError) else _disk_errno(err)  # or a writer library's own error
        if code is not None:
            raise OSError(code, f"{os.strerror(code)} (the previous file, if any, is kept)", str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_orphans(folder) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_write` calls left in ``folder``
    (``.<name>.<random>.tmp``); call it only while no write into ``folder`` can be in progress (a
    run holding the folder's lock, :mod:`mtm.runlock`). Returns the removed paths."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

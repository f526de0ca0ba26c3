"""One run per folder: an exclusive lock file held for the life of a run.

A run (``train``, ``finetune``, each run of ``mtm reproduce``) creates ``<run folder>/mtm.lock``
with ``O_CREAT | O_EXCL``, so of two runs started into one folder exactly one gets it; the lock
holds the owner's pid, host and start time and is removed when the run ends, by an error or
Ctrl-C included. A second run into a locked folder gets a ``RunLockedError`` naming the owner. A
lock left by a run that was killed (its process is gone) is reported, never taken over silently:
the message says how to clear it. Holding the lock, the run removes the temporary files that
interrupted atomic writes left in its folder (:func:`mtm.atomic.remove_orphans`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from mtm.atomic import remove_orphans

LOCK_NAME = "mtm.lock"


class RunLockedError(ValueError):
    """The run folder is locked by another run, or by a run that was killed (stale lock)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _describe(owner: dict) -> str:
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, started {when}"


def _refuse(path: Path, run_dir: Path) -> None:
    try:
        owner = json.loads(path.read_text())
        if not isinstance(owner, dict):
            raise ValueError
    except (OSError, ValueError):
        owner = {}
    pid, host = owner.get("pid"), owner.get("host")
    if isinstance(pid, int) and host == socket.gethostname() and _alive(pid):
        raise RunLockedError(f"{run_dir}: another run ({_describe(owner)}) is using this folder; wait for it to "
                             "finish or choose another --out")
    if isinstance(pid, int) and host == socket.gethostname():
        reason = f"a run that is no longer running ({_describe(owner)}), killed before it could clear it"
    elif isinstance(pid, int):
        reason = f"a run on another machine ({_describe(owner)}), which cannot be checked from here"
    else:
        reason = "a run that was killed while taking it (the lock file is unreadable)"
    raise RunLockedError(f"{run_dir}: stale lock {path} left by {reason}. If no run is using this folder, delete "
                         f"{path} and start again (with --resume to continue the run)")


@contextmanager
def run_lock(run_dir):
    """Hold ``run_dir``'s lock for the ``with`` block (creating the folder); raises
    :class:`RunLockedError` if another run holds it or a killed run left it, ``ValueError`` if
    ``run_dir`` is a file. In a ``torchrun`` job only rank 0 takes the lock."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out: {run_dir} is a file, expected a folder for the run")
    if int(os.environ.get("RANK", "0")) != 0:
        yield run_dir
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        _refuse(path, run_dir)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(owner))
        remove_orphans(run_dir)
        yield run_dir
    finally:
        path.unlink(missing_ok=True)

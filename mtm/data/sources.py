"""Where real data lives: the reference's IBL session lists and the local folders of shared data.

The real IBL recordings used by the tests and chapters are never copied into the project: they are
found through one setting, the environment variable ``MTM_REAL_DATA`` (default: ``../shared/data/real``
beside the project's root). A user's clone without them still works; what needs them skips. The
checkpoint written by the reference code (a test fixture) is found the same way, through
``MTM_REFERENCE_CHECKPOINT`` (default ``../shared/data/reference_checkpoint``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REAL_DATA_ENV = "MTM_REAL_DATA"
REFERENCE_CHECKPOINT_ENV = "MTM_REFERENCE_CHECKPOINT"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _shared_dir(env: str, name: str, what: str, required: bool) -> Path | None:
    path = Path(os.environ.get(env, _PROJECT_ROOT.parent / "shared" / "data" / name))
    if path.is_dir():
        return path
    if required:
        raise FileNotFoundError(f"{what} folder {path} not found; set {env} to its location")
    return None


def real_data_dir(required: bool = False) -> Path | None:
    """The folder of real recordings (``$MTM_REAL_DATA``, default ``<project>/../shared/data/real``).

    Returns None when it does not exist, or raises ``FileNotFoundError`` if ``required``.
    """
    return _shared_dir(REAL_DATA_ENV, "real", "real data", required)


def reference_checkpoint_dir(required: bool = False) -> Path | None:
    """The folder of the reference code's own checkpoint and outputs (``$MTM_REFERENCE_CHECKPOINT``,
    default ``<project>/../shared/data/reference_checkpoint``): ``reference_ndt1_stitch_prompting_small.pt``,
    ``reference_ndt1_outputs.npz`` / ``.json`` and their ``PROVENANCE.md``.

    Returns None when it does not exist, or raises ``FileNotFoundError`` if ``required``.
    """
    return _shared_dir(REFERENCE_CHECKPOINT_ENV, "reference_checkpoint", "reference checkpoint", required)


def _read_eids(name: str) -> list[str]:
    text = resources.files("mtm.data").joinpath("eids", name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def target_eids() -> list[str]:
    """The 40 IBL repeated-site sessions of the MtM reference (``data/target_eids.txt``), in its order."""
    return _read_eids("target_eids.txt")


def heldout_eids() -> list[str]:
    """The 5 held-out test sessions of the MtM reference (``data/test_re_eids.txt``)."""
    return _read_eids("test_eids.txt")


def pretrain_eids() -> list[str]:
    """The 35 sessions of the pretraining pool: :func:`target_eids` minus :func:`heldout_eids`."""
    held_out = set(heldout_eids())
    return [eid for eid in target_eids() if eid not in held_out]

"""Where real data lives: the IBL session lists (the MtM reference's, BrainWideBench's) and the small
real fixtures.

Two small folders are installed with the package (``mtm/data/fixtures/``, 3 MB, each with its
``PROVENANCE.md``), so that a chapter runs from the installed package alone (on Colab too):

- ``real/ibl_brainbox_fixtures``: real IBL Neuropixels spikes, behaviour and wheel traces from
  ibllib's unit-test fixtures (MIT; the data CC BY 4.0, International Brain Laboratory);
- ``reference_checkpoint``: a checkpoint written by the MtM reference code and its outputs (MIT).

An environment variable replaces either folder (``MTM_REAL_DATA``, ``MTM_REFERENCE_CHECKPOINT``,
e.g. ``../shared/data/real`` beside a clone), for more data of the same layout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REAL_DATA_ENV = "MTM_REAL_DATA"
REFERENCE_CHECKPOINT_ENV = "MTM_REFERENCE_CHECKPOINT"
_FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _data_dir(env: str, name: str, what: str, required: bool) -> Path | None:
    path = Path(os.environ.get(env) or _FIXTURES / name)
    if path.is_dir():
        return path
    if required:
        raise FileNotFoundError(f"{what} folder {path} not found; set {env} to its location")
    return None


def real_data_dir(required: bool = False) -> Path | None:
    """The folder of real recordings: ``$MTM_REAL_DATA``, default the copy installed with the package
    (``mtm/data/fixtures/real``, holding ``ibl_brainbox_fixtures/``).

    Returns None when it does not exist (a wrong ``$MTM_REAL_DATA``), or raises ``FileNotFoundError`` if
    ``required``.
    """
    return _data_dir(REAL_DATA_ENV, "real", "real data", required)


def reference_checkpoint_dir(required: bool = False) -> Path | None:
    """The folder of the reference code's own checkpoint and outputs: ``$MTM_REFERENCE_CHECKPOINT``,
    default the copy installed with the package (``mtm/data/fixtures/reference_checkpoint``):
    ``reference_ndt1_stitch_prompting_small.pt``, ``reference_ndt1_outputs.npz`` / ``.json`` and their
    ``PROVENANCE.md``.

    Returns None when it does not exist (a wrong ``$MTM_REFERENCE_CHECKPOINT``), or raises
    ``FileNotFoundError`` if ``required``.
    """
    return _data_dir(REFERENCE_CHECKPOINT_ENV, "reference_checkpoint", "reference checkpoint", required)


def _read_eids(name: str) -> list[str]:
    text = resources.files("mtm.data").joinpath("eids", name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def target_eids() -> list[str]:
    """The 40 IBL repeated-site sessions of the MtM reference (``data/target_eids.txt``), in its order."""
    return _read_eids("target_eids.txt")


def heldout_eids() -> list[str]:
    """The 5 held-out test sessions of the MtM reference (``data/test_re_eids.txt``)."""
    return _read_eids("test_eids.txt")


def bwb_eval_eids() -> list[str]:
    """The 29 IBL eval recordings of BrainWideBench (``ibl_bwb_eval/data/eval_recording_ids.txt`` of
    ``ibl-bwb-eval`` 0.1.0, ``eids/PROVENANCE.md``), in its order."""
    return _read_eids("bwb_eval_eids.txt")


def pretrain_eids() -> list[str]:
    """The 35 sessions of the pretraining pool: :func:`target_eids` minus :func:`heldout_eids`."""
    held_out = set(heldout_eids())
    return [eid for eid in target_eids() if eid not in held_out]

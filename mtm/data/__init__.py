"""Data: the Session type, synthetic sessions with ground truth, and loaders for real recordings.

``load_ibl_session`` (ONE, IBL) and ``load_nwb_session`` (pynwb) are imported on first use, so
``import mtm.data`` stays fast.
"""

from mtm.data.session import Session, split_trials
from mtm.data.sources import (bwb_eval_eids, heldout_eids, pretrain_eids, real_data_dir, reference_checkpoint_dir,
                              target_eids)
from mtm.data.synthetic import synthetic_session, synthetic_sessions

_LAZY = {"load_ibl_session": "mtm.data.ibl", "save_ibl_sessions": "mtm.data.ibl",
         "load_nwb_session": "mtm.data.nwb"}

__all__ = ["Session", "split_trials", "synthetic_session", "synthetic_sessions", "real_data_dir",
           "reference_checkpoint_dir", "target_eids", "heldout_eids", "pretrain_eids", "bwb_eval_eids", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mtm.data' has no attribute {name!r}")

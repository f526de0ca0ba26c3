"""Data: the Session type, synthetic sessions with ground truth, and loaders for real recordings."""

from mtm.data.session import Session, split_trials
from mtm.data.sources import heldout_eids, pretrain_eids, real_data_dir, target_eids

__all__ = ["Session", "split_trials", "real_data_dir", "target_eids", "heldout_eids", "pretrain_eids"]

"""The two backbones of the paper, NDT1(-stitch) and NDT2, behind one interface.

``model(masked_spikes, session, prompt, causal)`` returns log firing rates (B, T, N) per bin;
:func:`poisson_nll` scores them on the target entries of a mask.
"""

from mtm.models.ndt1 import NDT1
from mtm.models.ndt2 import NDT2
from mtm.models.transformer import ARCHITECTURES, MaskedModel, ModelConfig, poisson_nll


def build_model(cfg: ModelConfig, sessions) -> MaskedModel:
    """A fresh model for ``sessions``: a list of ``(session id, number of neurons)``."""
    return {"ndt1": NDT1, "ndt2": NDT2}[cfg.arch](cfg, list(sessions))


__all__ = ["ARCHITECTURES", "MaskedModel", "ModelConfig", "NDT1", "NDT2", "build_model", "poisson_nll"]

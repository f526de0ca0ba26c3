"""The two backbones of the paper, NDT1(-stitch) and NDT2, behind one interface.

``model(masked_spikes, session, prompt, causal)`` returns log firing rates (B, T, N) per bin;
:func:`poisson_nll` scores them on the target entries of a mask.

:func:`finetune_model` starts a model for a new session from a pretrained one.
"""

import torch

from mtm.models.ndt1 import NDT1
from mtm.models.ndt2 import NDT2
from mtm.models.transformer import ARCHITECTURES, MaskedModel, ModelConfig, poisson_nll


def build_model(cfg: ModelConfig, sessions) -> MaskedModel:
    """A fresh model for ``sessions``: a list of ``(session id, number of neurons)``."""
    return {"ndt1": NDT1, "ndt2": NDT2}[cfg.arch](cfg, list(sessions))


def train_mean_counts(session) -> torch.Tensor:
    """Each neuron's mean count per bin over the train split (N,)."""
    train = session.splits.get("train")
    spikes = session.spikes if train is None or len(train) == 0 else session.spikes[train]
    return torch.as_tensor(spikes.mean(axis=(0, 1)))


def finetune_model(pretrained: MaskedModel, session, seed: int = 0) -> MaskedModel:
    """A model for a new session that starts from a pretrained one (reference notes 4.3).

    Everything shared (embedding, transformer, prompt tokens, NDT2's patch layers) is copied; the new
    session gets fresh stitchers (NDT1) and a session token initialised at the mean of the pretrained
    tokens (the reference used the session's untrained row of its table), or a fresh one when the
    pretrained model keeps no session (a reference checkpoint imported without naming its sessions).
    The pretrained sessions' own stitchers are not carried over.
    """
    if session.eid in pretrained.session_ids and \
            pretrained.n_neurons[pretrained.session_ids.index(session.eid)] != session.n_neurons:
        pretrained.session_index(session.eid, session.n_neurons)  # raises: neuron count differs
    torch.manual_seed(seed)
    model = build_model(pretrained.cfg, [])
    shared = {k: v for k, v in pretrained.state_dict().items()
              if not k.startswith(("read_in.", "read_out.", "session_token.", "space."))}
    missing, unexpected = model.load_state_dict(shared, strict=False)
    if unexpected:
        raise ValueError(f"pretrained weights do not fit a fresh {pretrained.cfg.arch} model: {unexpected[:3]}")
    if pretrained.cfg.arch == "ndt2":
        model.space = torch.nn.Embedding.from_pretrained(pretrained.space.weight.detach().clone(), freeze=False)
    model.add_session(session.eid, session.n_neurons)
    if pretrained.cfg.arch == "ndt1":
        model.init_rates(session.eid, train_mean_counts(session))
    if model.session_token is not None and pretrained.session_token is not None and pretrained.session_ids:
        with torch.no_grad():
            model.session_token.weight[0] = pretrained.session_token.weight.mean(dim=0)
    return model


__all__ = ["ARCHITECTURES", "MaskedModel", "ModelConfig", "NDT1", "NDT2", "build_model", "finetune_model", "poisson_nll",
           "train_mean_counts"]

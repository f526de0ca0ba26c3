"""NDT1 and NDT1-stitch: one token per time bin (reference notes 2.1-2.3).

For a batch of counts x (B, T, N_s) of session s:

    NDT1-stitch   h = W_out softsign(W_hid (S_s x))         S_s: Linear(N_s -> 668), per session
                                                             W_hid: Linear(668 -> 1336), W_out: Linear(1336 -> 512)
    NDT1          h = W_out softsign(S_s x)                  S_s: Linear(N_s -> 1336), per session
    tokens        [session_s, prompt, h_0 + p_0, ..., h_{T-1} + p_{T-1}]   p_t learned position embedding
    log-rates     R_s LN(Transformer(tokens))[bins]          R_s: Linear(512 -> N_s), per session

The stitchers S_s and read-outs R_s are keyed by the session's id; the reference keyed them by the
neuron count, so two sessions with the same N shared them (notes 7.3). Single-session NDT1 in the
reference pads neurons to 668 and embeds them with Linear(668 -> 1336); the session's own
Linear(N_s -> 1336) is the same map without the padding.
"""

from __future__ import annotations

import torch
from torch import nn

from mtm.models.transformer import MaskedModel, ModelConfig


class NDT1(MaskedModel):
    def __init__(self, cfg: ModelConfig, sessions):
        if cfg.arch != "ndt1":
            raise ValueError(f"arch: NDT1 needs a config with arch "
                             f"'ndt1', got {cfg.arch!r}")
        super().__init__(cfg)
        embed_in = cfg.n_channels * cfg.embed_mult
        # one stitcher S_s and one read-out R_s per session (add_session)
        self.read_in, self.read_out = nn.ModuleList(), nn.ModuleList()
        self.embed_hidden = nn.Identity()  # NDT1 without stitching
        if cfg.stitching:
            self.embed_hidden = nn.Linear(cfg.n_channels, embed_in)
        self.embed_out = nn.Linear(embed_in, cfg.hidden)
        self.position = None  # RoPE: positions enter inside attention
        if cfg.position == "learned":
            self.position = self.embedding(cfg.max_bins)
        for session_id, n_neurons in sessions:
            self.add_session(session_id, n_neurons, token="fresh")

    def _add_session_layers(self, n_neurons: int) -> None:
        cfg = self.cfg
        width = cfg.n_channels  # NDT1-stitch; NDT1 reads in to embed_in
        if not cfg.stitching:
            width = cfg.n_channels * cfg.embed_mult
        device = self.embed_out.weight.device
        self.read_in.append(nn.Linear(n_neurons, width).to(device))
        self.read_out.append(nn.Linear(cfg.hidden, n_neurons).to(device))

    def tokens(self, spikes: torch.Tensor,
               session: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tokens_from_read_in(self.read_in[session](spikes))

    def _tokens_from_read_in(
            self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed_out(nn.functional.softsign(self.embed_hidden(h)))
        bins = torch.arange(h.shape[1], device=h.device)
        if self.position is not None:
            h = h + self.position(bins)
        return h, bins

    def masked_tokens(self, spikes: torch.Tensor, session: int, trials: torch.Tensor,
                      hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The read-in is linear, so a row's read-in is its trial's minus the hidden neurons' terms, or
        the bias plus the visible neurons' terms, whichever set of neurons that spiked is smaller:
        exact, and for one hidden neuron (co-smoothing) nearly free."""
        layer = self.read_in[session]
        active = (spikes != 0).any(dim=1)[trials]  # (B, N): neurons whose term is not zero
        hide, show = hidden & active, ~hidden & active
        subtract = hide.sum(dim=1) <= show.sum(dim=1)
        terms = torch.where(subtract[:, None], hide, show)  # (B, N) the neurons to add or take away
        size = int(terms.sum(dim=1).max()) if len(trials) else 0
        if 3 * size > spikes.shape[-1]:  # no cheaper than reading in the masked batch
            return super().masked_tokens(spikes, session, trials, hidden)
        neurons = torch.argsort(terms.to(torch.uint8), dim=1, descending=True, stable=True)[:, :size]  # (B, S)
        picked = spikes[trials[:, None], :, neurons] * torch.gather(terms, 1, neurons)[..., None]  # (B, S, T)
        change = torch.bmm(picked.transpose(1, 2), layer.weight.t()[neurons])  # (B, T, C)
        used, rows = torch.unique(trials, return_inverse=True)
        start = torch.where(subtract[:, None, None], layer(spikes[used])[rows], layer.bias)
        return self._tokens_from_read_in(start + torch.where(subtract[:, None, None], -change, change))

    def log_rates_from_tokens(self, hidden: torch.Tensor, session: int,
                              shape: torch.Size) -> torch.Tensor:
        return self.read_out[session](hidden)

    def selected_log_rates(self, hidden: torch.Tensor, session: int, shape: torch.Size, rows: torch.Tensor,
                           neurons: torch.Tensor) -> torch.Tensor:
        layer = self.read_out[session]
        if len(rows) * hidden.shape[-1] > hidden.shape[0] * shape[-1]:  # most neurons of most rows
            return layer(hidden)[rows, :, neurons]
        # a few neurons per row (held-out neurons in evaluation): only their read-out rows
        return torch.einsum("ptd,pd->pt", hidden[rows], layer.weight[neurons]) + layer.bias[neurons, None]

    def session_parameters(self):
        params = list(self.read_in.parameters()) + list(self.read_out.parameters())
        return params + ([self.session_token.weight] if self.session_token is not None else [])

    def init_rates(self, session, mean_counts: torch.Tensor) -> None:
        """Set the read-out bias to log(mean count per bin): an untrained
        model's log-rates scatter around each neuron's mean rate (by the
        untrained read-out weights) instead of around exp(0) = 1 spike per
        bin."""
        index = self.session_index(session, mean_counts.numel())
        log_mean = torch.log(mean_counts.float().clamp(min=1e-3))
        with torch.no_grad():
            self.read_out[index].bias.copy_(log_mean)

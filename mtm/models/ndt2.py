"""NDT2: space-time patches (reference notes 2.4).

A batch of counts x (B, T, N) is cut into tokens of 1 bin x ``patch_size`` neurons (128 in the paper;
neurons zero-padded to P = ceil(N / 128) patches), ordered time-major: token (t, p) sits at t * P + p.

    token         h_tp = W_out softsign(W_in x_tp) + LN(E_space[p]) + LN(E_time[t])
    sequence      [session, prompt, h_00, h_01, ..., h_(T-1)(P-1)]
    log-rates     (Linear(512 -> 128) LN(Transformer(sequence))) reshaped to (B, T, P * 128)[..., :N]

Neuron read-in and read-out are shared by all sessions (no stitching, as the reference); sessions
differ by their session token and by how many patches they have.

Causal attention lets token (t, p) see every token of bins t' <= t (all patches of its own bin,
whose inputs are hidden together by the causal scheme) and the session and prompt tokens, which see
no bin. The reference tiled a T x T causal mask over the time-major tokens, which is wrong for more
than one patch per bin (notes 2.4, 7.4). The reference also filled the last partial patch with the
tail of the previous patch; here it is zero-padded.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mtm.models.transformer import MaskedModel, ModelConfig


class NDT2(MaskedModel):
    def __init__(self, cfg: ModelConfig, sessions):
        if cfg.arch != "ndt2":
            raise ValueError(f"arch: NDT2 needs a config with arch "
                             f"'ndt2', got {cfg.arch!r}")
        super().__init__(cfg)
        width = cfg.patch_size * cfg.embed_mult
        self.embed = nn.Sequential(nn.Linear(cfg.patch_size, width),
                                   nn.Softsign(),
                                   nn.Linear(width, cfg.hidden))
        self.space = self.embedding(1)  # grows with the patches
        self.space_ln = nn.LayerNorm(cfg.hidden)
        self.time = None  # RoPE: positions enter inside attention
        if cfg.position == "learned":
            self.time = self.embedding(cfg.max_bins)
        self.time_ln = nn.LayerNorm(cfg.hidden)
        self.read_out = nn.Linear(cfg.hidden, cfg.patch_size)
        for session_id, n_neurons in sessions:
            self.add_session(session_id, n_neurons, token="fresh")

    def n_patches(self, n_neurons: int) -> int:
        return math.ceil(n_neurons / self.cfg.patch_size)

    def _add_session_layers(self, n_neurons: int) -> None:
        needed = self.n_patches(n_neurons)
        old = self.space.weight.data
        if needed > len(old):
            grown = self.embedding(needed).to(old.device, old.dtype)
            with torch.no_grad():
                grown.weight[:len(old)] = old
            self.space = grown

    def tokens(self, spikes: torch.Tensor,
               session: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, n_bins, n_neurons = spikes.shape
        patches, size = self.n_patches(n_neurons), self.cfg.patch_size
        padded = nn.functional.pad(spikes, (0, patches * size - n_neurons))
        x = padded.view(batch, n_bins, patches, size)
        h = self.embed(x) + self.space_ln(self.space.weight[:patches])
        bins = torch.arange(n_bins, device=spikes.device)
        if self.time is not None:
            h = h + self.time_ln(self.time(bins))[:, None]
        tokens = h.reshape(batch, n_bins * patches, -1)  # time-major
        return tokens, bins.repeat_interleave(patches)

    def causal_mask(self, token_bins: torch.Tensor, n_prefix: int,
                    n_bins: int) -> torch.Tensor | None:
        if len(token_bins) == n_bins:
            return None  # one token per bin: is_causal, fused kernels
        prefix = token_bins.new_full((n_prefix,), -1)  # in no bin
        bins = torch.cat([prefix, token_bins])
        return bins[None, :] <= bins[:, None]

    def log_rates_from_tokens(self, hidden: torch.Tensor, session: int,
                              shape: torch.Size) -> torch.Tensor:
        batch, n_bins, n_neurons = shape
        rates = self.read_out(hidden).reshape(batch, n_bins, -1)
        return rates[..., :n_neurons]  # the padding dropped

    def session_parameters(self):
        return [self.session_token.weight] if self.session_token is not None else []

    def init_rates(self, session, mean_counts: torch.Tensor) -> None:
        """The read-out is shared by all neurons and sessions: start it at the log of the mean count."""
        self.session_index(session, mean_counts.numel())
        with torch.no_grad():
            self.read_out.bias.fill_(float(torch.log(mean_counts.float().mean().clamp(min=1e-3))))

"""The transformer both backbones share, and what they share around it (reference notes 2.1-2.4).

:class:`MaskedModel` holds the pieces common to NDT1 and NDT2: the session registry, the session and
prompt tokens, the pre-LN transformer encoder, the final LayerNorm and the Poisson loss. A backbone
only says how a (B, T, N) batch becomes tokens and how tokens become log-rates.

Attention goes through ``torch.nn.functional.scaled_dot_product_attention``. Bidirectional attention
passes no mask at all, and causal attention over one token per bin passes ``is_causal=True``, so the
fused (flash / memory-efficient) kernels can run on a GPU; only NDT2's block-causal attention over
several tokens per bin needs a dense mask.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("ndt1", "ndt2")
N_PROMPTS = 4


@dataclass
class ModelConfig:
    """Sizes and switches of a backbone. :meth:`paper` gives the published settings."""

    arch: str = "ndt1"            # "ndt1" (one token per bin) or "ndt2" (space-time patches)
    hidden: int = 512             # D, width of every token
    n_layers: int = 5
    n_heads: int = 8
    mlp: int = 1024               # hidden width of each MLP (GELU)
    dropout: float = 0.4          # attention weights, attention output and MLP output
    embed_dropout: float = 0.2    # on the token sequence before the first layer
    n_channels: int = 668         # NDT1: width of the per-session stitcher, N_s -> n_channels
    stitching: bool = True        # NDT1: per-session stitcher then a shared embedding (NDT1-stitch)
    embed_mult: int = 2           # the embedding's hidden layer is embed_mult x its input width
    patch_size: int = 128         # NDT2: neurons per token (1 bin x patch_size neurons)
    max_bins: int = 100           # T, for the learned position embedding
    position: str = "learned"     # "learned" absolute embedding (reference) or "rope"
    use_session: bool = True      # prepend a learned token per session
    use_prompt: bool = True       # prepend a learned token per masking scheme (MtM prompting)
    fixup: bool = True            # scale residual-branch weights at init (reference "fixup_init")
    token_std: float | None = None  # initial spread of the learned tokens and position embedding (None: N(0, 1))

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch: expected one of {ARCHITECTURES}, got {self.arch!r}")
        for name in ("hidden", "n_layers", "n_heads", "mlp", "n_channels", "embed_mult", "patch_size", "max_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("dropout", "embed_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
        if self.position not in ("learned", "rope"):
            raise ValueError(f"position: expected 'learned' or 'rope', got {self.position!r}")
        if self.token_std is not None and (isinstance(self.token_std, bool)
                                           or not isinstance(self.token_std, (int, float))
                                           or not 0 < self.token_std < math.inf):
            raise ValueError(f"token_std: expected a positive standard deviation or None (PyTorch's N(0, 1), as the "
                             f"reference), got {self.token_std!r}")
        if self.hidden % self.n_heads or (self.hidden // self.n_heads) % 2:
            raise ValueError(f"hidden: {self.hidden} must split into {self.n_heads} heads of even width")

    @classmethod
    def paper(cls, **overrides) -> ModelConfig:
        """The published NDT1-stitch / NDT2 sizes: 5 layers, 512 wide, 8 heads, MLP 1024."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> ModelConfig:
        """A CPU-sized model for teaching and CI: 2 layers, 64 wide, 4 heads, no dropout (random
        numbers cost more than the arithmetic at this size on a CPU; the masking regularises), and its
        learned tokens drawn from N(0, 0.02^2) rather than N(0, 1).

        Why the tokens: at N(0, 1) the position embedding added to every bin's token is about twenty
        times larger than the embedded spikes (standard deviation 1.0 against 0.06 on a synthetic session
        at initialisation), so after the first LayerNorm the transformer barely sees the spikes and a
        short run spends its first epochs learning to. Small tokens let the spikes through from the
        first step (benchmarks/RESULTS.md, "Learned tokens at initialisation")."""
        base = dict(hidden=64, n_layers=2, n_heads=4, mlp=128, n_channels=64, patch_size=32,
                    dropout=0.0, embed_dropout=0.0, token_std=0.02)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"model config: unknown fields {sorted(unknown)}")
        return cls(**values)


def rotary(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, H, L, d) queries or keys at integer ``positions`` (L,)."""
    half = x.shape[-1] // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    """One pre-LN encoder layer: x + Attn(LN(x)), then x + MLP(LN(x))
    (the reference's ``NeuralEncoderLayer``).

    As in the reference, dropout acts on the attention weights, on the
    attention output *before* the output projection, and after the MLP's
    down-projection.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.up_proj = nn.Linear(cfg.hidden, cfg.mlp)
        self.down_proj = nn.Linear(cfg.mlp, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, causal: bool,
                attn_mask: torch.Tensor | None,
                rope_positions: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(self.ln1(x)).view(batch, length, 3, self.n_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, heads, length, D/heads)
        if rope_positions is not None:
            q, k = rotary(q, rope_positions), rotary(k, rope_positions)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and attn_mask is None)
        heads = attn.transpose(1, 2).reshape(batch, length, width)
        x = x + self.out_proj(self.drop(heads))
        mlp = self.down_proj(F.gelu(self.up_proj(self.ln2(x))))
        return x + self.drop(mlp)


def poisson_nll(log_rates: torch.Tensor, spikes: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Poisson negative log-likelihood summed over the target entries, and their number.

    ``exp(log_rate) - spikes * log_rate`` per entry (``PoissonNLLLoss(log_input=True)`` without the
    Stirling term, as the reference), in float32, times the 0/1 target mask, summed over the batch.
    Both results stay on the device (no host synchronisation).
    """
    log_rates = log_rates.float()
    per_entry = torch.exp(log_rates) - spikes.float() * log_rates
    weight = target.float()
    return (per_entry * weight).sum(), weight.sum()


class MaskedModel(nn.Module):
    """Session registry, session and prompt tokens, transformer and loss shared by NDT1 and NDT2.

    A session is addressed by its id or its index in :attr:`session_ids`. Subclasses build their
    layers, then register their sessions with :meth:`add_session`, and implement :meth:`tokens`,
    :meth:`log_rates_from_tokens`, :meth:`_add_session_layers` and :meth:`session_parameters`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.session_ids: list[str] = []
        self.n_neurons: list[int] = []
        self.session_token = None  # one row per session, added by add_session
        if cfg.use_session:
            self.session_token = self.embedding(0)
        self.prompt_token = None  # one row per prompt (masking scheme)
        if cfg.use_prompt:
            self.prompt_token = self.embedding(N_PROMPTS)
        self.embed_drop = nn.Dropout(cfg.embed_dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_ln = nn.LayerNorm(cfg.hidden)
        if cfg.fixup:
            scale = 0.67 * cfg.n_layers ** -0.25
            with torch.no_grad():
                for block in self.blocks:
                    for layer in (block.out_proj, block.up_proj,
                                  block.down_proj):
                        layer.weight.mul_(scale)
                    values = block.qkv.weight[2 * cfg.hidden:]
                    values.mul_(scale * math.sqrt(2))

    def embedding(self, rows: int) -> nn.Embedding:
        """A table of ``rows`` learned tokens, drawn from N(0, 1) as ``nn.Embedding`` draws them, or from
        N(0, ``cfg.token_std``^2) when set."""
        table = nn.Embedding(rows, self.cfg.hidden)
        if self.cfg.token_std is not None:
            with torch.no_grad():
                table.weight.normal_(0.0, self.cfg.token_std)
        return table

    # ------------------------------------------------------------------ sessions
    def add_session(self, session_id: str, n_neurons: int, token: str = "mean") -> int:
        """Register a new session (its read-in, read-out and session token); returns its index.

        ``token``: the new session token starts at the mean of the existing ones (``"mean"``, a session
        added to a trained model), or is drawn afresh from N(0, 1) as ``nn.Embedding`` draws its rows
        (``"fresh"``: every session of a new model, so the tokens of a multi-session model start apart).
        """
        if token not in ("mean", "fresh"):
            raise ValueError(f"token: expected 'mean' or 'fresh', got {token!r}")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError(f"session_id: expected a non-empty string, got {session_id!r}")
        if session_id in self.session_ids:
            raise ValueError(f"session_id: {session_id!r} is already registered")
        if int(n_neurons) < 1:
            raise ValueError(f"n_neurons: session {session_id!r} needs at least one neuron, got {n_neurons}")
        self.session_ids.append(session_id)
        self.n_neurons.append(int(n_neurons))
        if self.session_token is not None:
            old = self.session_token.weight.data
            grown = self.embedding(len(self.session_ids)).to(old.device, old.dtype)
            with torch.no_grad():
                grown.weight[:len(old)] = old
                if len(old) and token == "mean":  # a session added to a trained model
                    grown.weight[len(old)] = old.mean(dim=0)
            self.session_token = grown
        self._add_session_layers(int(n_neurons))
        return len(self.session_ids) - 1

    def _add_session_layers(self, n_neurons: int) -> None:
        raise NotImplementedError

    def session_index(self, session, n_neurons: int | None = None) -> int:
        """Index of a session given by id or index; checks its neuron count when given."""
        if isinstance(session, str):
            if session not in self.session_ids:
                raise ValueError(f"session: unknown session id {session!r}; the model knows "
                                 f"{self.session_ids[:5]}{' ...' if len(self.session_ids) > 5 else ''}")
            index = self.session_ids.index(session)
        else:
            index = int(session)
            if not 0 <= index < len(self.session_ids):
                raise ValueError(f"session: index {index} out of range for {len(self.session_ids)} sessions")
        if n_neurons is not None and n_neurons != self.n_neurons[index]:
            raise ValueError(f"session {self.session_ids[index]!r}: the model's stitcher expects "
                             f"{self.n_neurons[index]} neurons, the data has {n_neurons}")
        return index

    # ------------------------------------------------------------------ forward
    def tokens(self, spikes: torch.Tensor, session: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) tokens of a batch and the time bin (L,) of each token."""
        raise NotImplementedError

    def log_rates_from_tokens(self, hidden: torch.Tensor, session: int, shape: torch.Size) -> torch.Tensor:
        raise NotImplementedError

    def masked_tokens(self, spikes: torch.Tensor, session: int, trials: torch.Tensor,
                      hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens of trials ``spikes[trials]`` with the neurons ``hidden`` (B, N) zeroed."""
        return self.tokens(spikes[trials] * ~hidden.unsqueeze(1), session)

    def causal_mask(self, token_bins: torch.Tensor, n_prefix: int, n_bins: int) -> torch.Tensor | None:
        """Boolean (L, L) attention mask for causal mode, or None when ``is_causal`` suffices."""
        return None

    def forward(self, spikes: torch.Tensor, session, prompt: int | None = None,
                causal: bool = False, select: tuple[torch.Tensor, torch.Tensor] | None = None,
                hide: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Log firing rates (B, T, N) per bin of a (masked) batch of counts (B, T, N) of one session.

        ``prompt`` is the masking scheme's prompt id (:data:`mtm.masking.PROMPT_IDS`), required by a
        prompted model. ``causal`` restricts every token to the bins up to its own: the session and
        prompt tokens come first and see no bin at all, so no output depends on a future bin.
        ``select = (rows, neurons)``, two (P,) index tensors, returns only the log-rates (P, T) of neuron
        ``neurons[p]`` in batch row ``rows[p]`` (evaluation reads one held-out neuron per row).
        ``hide = (trials, hidden)``, a (B,) index and a (B, N) bool mask, makes the batch's row b the
        trial ``spikes[trials[b]]`` with the neurons ``hidden[b]`` zeroed, without building that batch
        (evaluation runs hundreds of held-out configurations of the same few trials).
        """
        if spikes.ndim != 3:
            raise ValueError(f"spikes: expected (trials, bins, neurons), got shape {tuple(spikes.shape)}")
        index = self.session_index(session, spikes.shape[-1])
        if spikes.shape[1] > self.cfg.max_bins:
            raise ValueError(f"spikes: {spikes.shape[1]} bins exceed the model's max_bins {self.cfg.max_bins}")
        if hide is None:
            shape = spikes.shape
            x, token_bins = self.tokens(spikes.float(), index)
        else:
            shape = torch.Size((len(hide[0]), *spikes.shape[1:]))
            x, token_bins = self.masked_tokens(spikes.float(), index, *hide)
        prefix = []
        if self.session_token is not None:
            token = self.session_token.weight[index]
            prefix.append(token.expand(x.shape[0], 1, -1))
        if self.prompt_token is not None:
            if prompt is None:
                raise ValueError("prompt: this model was trained with "
                                 "prompts; pass the scheme's prompt id "
                                 "(mtm.masking.PROMPT_IDS)")
            token = self.prompt_token.weight[prompt]
            prefix.append(token.expand(x.shape[0], 1, -1))
        n_prefix = len(prefix)
        if prefix:
            x = torch.cat([*prefix, x], dim=1)
        x = self.embed_drop(x)
        attn_mask = None
        if causal:
            attn_mask = self.causal_mask(token_bins, n_prefix, shape[1])
        rope = None
        if self.cfg.position == "rope":
            first = torch.zeros(n_prefix, dtype=torch.long, device=x.device)
            rope = torch.cat([first, token_bins + 1])
        for block in self.blocks:
            x = block(x, causal, attn_mask, rope)
        hidden = self.final_ln(x[:, n_prefix:])
        if select is not None:
            return self.selected_log_rates(hidden, index, shape, *select)
        return self.log_rates_from_tokens(hidden, index, shape)

    def selected_log_rates(self, hidden: torch.Tensor, session: int, shape: torch.Size, rows: torch.Tensor,
                           neurons: torch.Tensor) -> torch.Tensor:
        """Log-rates (P, T) of neuron ``neurons[p]`` in row ``rows[p]``; subclasses read out only those."""
        return self.log_rates_from_tokens(hidden, session, shape)[rows, :, neurons]

    def core_parameters(self):
        """Parameters shared by every session (all but the per-session read-in and read-out)."""
        session_specific = {id(p) for p in self.session_parameters()}
        return [p for p in self.parameters() if id(p) not in session_specific]

    def session_parameters(self):
        """Per-session parameters: read-in / read-out layers and the session token."""
        raise NotImplementedError

    def init_rates(self, session, mean_counts: torch.Tensor) -> None:
        """Start a session's predicted rates at each neuron's mean count per bin (N,)."""
        raise NotImplementedError

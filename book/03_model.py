# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The model: NDT1 with stitching and tokens, NDT2 patches
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/03_model.ipynb)
#
# **What you will learn**
#
# - how NDT1-stitch turns a masked batch of one session into log firing rates: a per-session
#   stitcher, a shared embedding, position embeddings, session and prompt tokens, a pre-LN
#   transformer and a per-session read-out;
# - the shape of a batch at every stage, read from the real modules with forward hooks;
# - the whole model's code, rendered from the package and read line by line: the forward pass, one
#   transformer layer (attention and MLP), the stitchers and read-outs, NDT2's patch tokens and
#   its attention mask;
# - the masked Poisson loss, and why each read-out starts at its neurons' mean rates;
# - where the parameters are: about {glue:text}`params_shared` M shared and {glue:text}`params_session` M per
#   session in the paper's model;
# - bidirectional and causal attention, checked with a perturbation, and two attention bugs of the
#   reference code that `mtm` fixes;
# - NDT2's tokens (1 bin x 128 neurons) and its block-causal attention mask.
#
# *About 20 minutes.*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; elsewhere it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", PACKAGE], check=True
    )

from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mtm.book import assert_direction, chapter_settings, glue_number
from mtm.book import show_source, source_span
from mtm.data import synthetic_session
from mtm.masking import PROMPT_IDS, mask_batch
from mtm.models import ModelConfig, build_model, poisson_nll
from mtm.models.ndt1 import NDT1
from mtm.models.ndt2 import NDT2
from mtm.models.transformer import Block, MaskedModel
from mtm.plots import plot_output_changes, use_style
from mtm.reference_import import reference_attention, reference_causal_mask
from mtm.train import pick_device, train_mean_counts

use_style()

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1,
# else gpu or book
SETTINGS = "auto"
# OVERRIDES: the settings' values to replace, e.g. {"MODEL_SIZE": "small"};
# the values are in mtm.book.CHAPTER_SETTINGS (N_TRIALS, N_NEURONS,
# MODEL_SIZE: "small" (2 x 64) or "paper" (5 x 512), NDT2_PATCH: neurons per
# NDT2 token, 128 in the paper)
OVERRIDES = {}
SEED = 0  # which synthetic session; seed of the masks and weights
BATCH_SIZE = 16  # trials per batch, as in the paper
PERTURBED_BIN = 60  # the "future" bin changed in the causality test
PAPER_NEURONS = 676  # neurons of a typical paper session
N_PRETRAIN = 34  # sessions of the paper's largest pretraining run

# %%
RUN = chapter_settings("03_model", SETTINGS, **OVERRIDES)

# %% [markdown]
# ## 1. NDT1-stitch, from counts to log-rates
#
# The backbone of the paper's main results is NDT1 (the Neural Data Transformer {cite:p}`ye2021ndt`) with
# *stitching*: one token per time bin, and per-session layers at both ends so that sessions with
# different neurons share everything in between. For a batch of masked counts $x_t \in
# \mathbb{R}^{N_s}$ (bin $t$, session $s$ with $N_s$ neurons):
#
# $$\begin{aligned}
# \tilde x_t &= S_s\, x_t \in \mathbb{R}^{668}, \\
# h_t &= W_2\, \mathrm{softsign}(W_1 \tilde x_t) + p_t \in \mathbb{R}^{512},
# \qquad \mathrm{softsign}(u) = \frac{u}{1 + |u|},
# \end{aligned}$$
#
# with $S_s$ the session's **stitcher** (a linear map, per session), $W_1$ (668 to 1336) and $W_2$
# (1336 to 512) the shared embedding, and $p_t$ a learned **position embedding** of bin $t$. Two
# learned tokens are prepended: the **session token** $e_s$ and the **prompt token** $P_m$ of the
# masking scheme $m$ ({doc}`02_masking`; every symbol is listed in {doc}`notation`). The sequence
# $z = [e_s, P_m, h_1, \dots, h_T]$ (102 tokens) goes through $L = 5$ pre-LN transformer layers,
#
# $$z \leftarrow z + \mathrm{MHA}(\mathrm{LN}(z)), \qquad z \leftarrow z + W_{\text{down}}\,\mathrm{GELU}(W_{\text{up}}\,\mathrm{LN}(z)),$$
#
# then a final LayerNorm; the two prepended outputs are dropped, and the session's **read-out**
# $R_s$ (512 to $N_s$) gives one log-rate per neuron and bin:
# $\log \hat\lambda_t = R_s\, \mathrm{LN}(z_{t})$. The paper sizes are 5 layers, 512 wide, 8 heads,
# an MLP of 1024, dropout {glue:text}`paper_dropout` ({glue:text}`paper_embed_dropout` on the embedded
# sequence; `ModelConfig.paper()`) and the reference's "fixup"
# initialisation (the residual branches' output weights scaled down at initialisation).
#
# Here is the model of this chapter (`ModelConfig.paper()`, or `ModelConfig.small()` when
# `RUN.MODEL_SIZE` is `"small"`, e.g. through `OVERRIDES`), for one session:

# %%
DEVICE = pick_device()
session = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
train_trials = session.splits["train"][:BATCH_SIZE]
batch = torch.as_tensor(session.spikes[train_trials]).to(DEVICE)
cfg = ModelConfig.paper() if RUN.MODEL_SIZE == "paper" else ModelConfig.small()
torch.manual_seed(SEED)
model = build_model(cfg, [(session.eid, session.n_neurons)]).to(DEVICE).eval()
print(session)
sizes = ("arch", "hidden", "n_layers", "n_heads", "mlp", "n_channels")
print({k: v for k, v in cfg.to_dict().items() if k in sizes}, "on", DEVICE)

# %% tags=["remove-cell"]
glue_number("paper_dropout", ModelConfig.paper().dropout, "{:.1f}")
glue_number("paper_embed_dropout", ModelConfig.paper().embed_dropout, "{:.1f}")

# %% [markdown]
# ## 2. One batch through the model, stage by stage
#
# We mask the batch with the causal scheme and list the modules the model calls, in order:

# %%
generator = torch.Generator(DEVICE).manual_seed(SEED)
masked, target = mask_batch(
    batch, "causal", session.regions, generator=generator
)
stages = [
    ("read_in[0]", "stitcher S_s", model.read_in[0]),
    ("embed_hidden", "W_1", model.embed_hidden),
    ("embed_out", "W_2 (after softsign)", model.embed_out),
    ("position", "p_t", model.position),
    ("embed_drop", "[session, prompt, tokens]", model.embed_drop),
]
stages += [
    (f"blocks[{i}]", "pre-LN layer", b) for i, b in enumerate(model.blocks)
]
stages += [
    ("final_ln", "final LayerNorm, bins only", model.final_ln),
    ("read_out[0]", "read-out R_s", model.read_out[0]),
]

# %% [markdown]
# A forward hook on each of them records the shape of the module's input and output while one batch
# runs through the model; nothing is recomputed by hand. The small helper below does it, and section
# 7 uses it again for NDT2:


# %%
def trace_shapes(net, stages, *inputs, **options):
    """Run net(*inputs, **options) once, without gradients; a table of
    the input and output shapes of every module in stages, in call order."""
    trace = []

    def recorder(name, what):
        def hook(module, args, output):
            shapes = dict(input=args[0].shape, output=output.shape)
            shapes = {key: tuple(shape) for key, shape in shapes.items()}
            trace.append(dict(module=name, what=what, **shapes))

        return hook

    handles = [m.register_forward_hook(recorder(n, w)) for n, w, m in stages]
    with torch.no_grad():
        net(*inputs, **options)
    for handle in handles:
        handle.remove()
    return pd.DataFrame(trace)


prompt = PROMPT_IDS["causal"]
trace_shapes(model, stages, masked.float(), session.eid, prompt, causal=True)

# %% [markdown]
# Read the table top to bottom: the stitcher maps this session's $N_s$ neurons to the shared channel
# width, the embedding widens and projects each bin to one token of the model's width, and the
# position table gives one vector per bin (its input is the bin index). The softsign between
# `embed_hidden` and `embed_out` is a plain function, so it has no hook. The session and prompt
# tokens are rows of two embedding tables, read directly: they appear as the two extra tokens of the
# sequence that enters `embed_drop` and the transformer layers ($T + 2$). The final LayerNorm and the
# read-out see only the $T$ bin tokens, and the output is one log-rate per trial, bin and neuron,
# the shape of the input.
#
# ### The code of the forward pass
#
# The hooks showed shapes; here is the code that produced them, rendered from the package (not a
# copy). NDT1 turns the counts of a session into one token per bin in two small methods:

# %% tags=["remove-input"]
show_source(NDT1.tokens)
show_source(NDT1._tokens_from_read_in)

# %% [markdown]
# `tokens` applies the session's own stitcher, `self.read_in[session]` (the integer `session` is the
# session's index, found from its id), and hands the result to `_tokens_from_read_in`. There the
# shared embedding runs: `embed_hidden` ($W_1$), the `softsign`, and `embed_out` ($W_2$), to the
# model's width. `bins` numbers the bins from 0, and, unless the model uses rotary embeddings
# (`self.position` is then `None`), the learned position embedding of each bin is added. The method
# returns the tokens and the bin of each token (NDT2 has several tokens per bin and needs the second).
#
# Everything after the tokens is shared with NDT2, in `MaskedModel.forward` (its argument checks and
# docstring left out here):

# %% tags=["remove-input"]
show_source(
    MaskedModel.forward,
    lines=source_span(
        MaskedModel.forward,
        "if hide is None:",
        "return self.log_rates_from_tokens",
    ),
)

# %% [markdown]
# Walk through it with the equations of section 1:
#
# - `hide` is `None` in training: the tokens come from `self.tokens` on the masked counts. (Evaluation
#   passes `hide` to build many masked copies of the same trials cheaply, `masked_tokens`, with the
#   same result.)
# - `prefix` collects the prepended tokens. The **session token** is row `index` of the
#   `session_token` table, one vector repeated over the trials of the batch (`expand`); the **prompt
#   token** is row `prompt` of the `prompt_token` table, and a prompted model refuses to run without a
#   prompt. Either table is `None` in a model built without it. `torch.cat` puts them *before* the bin
#   tokens: $z = [e_s, P_m, h_1, \dots, h_T]$.
# - `embed_drop` is the dropout of the embedded sequence.
# - In causal mode `causal_mask` may build an explicit mask; for NDT1 it returns `None`, and every
#   block then uses PyTorch's `is_causal` lower triangle (section 6). With rotary embeddings the
#   prepended tokens get position 0 and bin $t$ position $t + 1$.
# - The blocks run in turn (each the two residual updates of section 1), then `final_ln` on the bin
#   tokens only (`x[:, n_prefix:]` drops the prepended ones), and the session's read-out gives the
#   log-rates (`log_rates_from_tokens`; `select` reads out only chosen neurons, for evaluation).
#
# ### The code of one transformer layer
#
# Each of the $L$ blocks is one pre-LN layer, `mtm.models.transformer.Block`: multi-head attention,
# then an MLP, each added back to its input. The whole class:

# %% tags=["remove-input"]
show_source(Block)

# %% [markdown]
# The sequence `x` enters as (trials $B$, tokens $\ell$, width $D$): `batch, length, width` in the
# code, with $\ell = T + 2$ for NDT1 and $D$ = `hidden`; write $H$ for `n_heads` and $d = D / H$ for
# the width of one head.
#
# - `__init__` makes the two LayerNorms of a pre-LN layer (`ln1` before attention, `ln2` before the
#   MLP), one `qkv` map ($D$ to $3D$) for the queries, keys and values of every head at once, the
#   output projection `out_proj` ($D$ to $D$), the MLP's `up_proj` ($D$ to `mlp`) and `down_proj`
#   (`mlp` to $D$), and one dropout module. Attention holds $4D^2$ weights and the MLP
#   $2 \cdot D \cdot$ `mlp`, plus biases: section 5 counts them.
# - `qkv` gives ($B$, $\ell$, $3D$); `view` splits the last axis into (3, $H$, $d$), and `permute`
#   brings the 3 to the front and the heads before the tokens, so `q`, `k` and `v` are each
#   ($B$, $H$, $\ell$, $d$).
# - With RoPE (`rope_positions` given), `rotary` turns each query and key by its position; the values
#   are not turned. With learned positions nothing happens here: the position was added to the tokens.
# - `scaled_dot_product_attention` computes, for every trial and head,
#   $\mathrm{softmax}(q k^\top / \sqrt{d})\, v$, ($B$, $H$, $\ell$, $d$). Bidirectional attention
#   passes no mask; causal attention over one token per bin passes `is_causal=True` (a lower
#   triangle), and NDT2's block-causal attention passes its boolean `attn_mask` (True: the query may
#   read the key). Dropout on the attention weights acts only in training (`self.training`).
# - `transpose` and `reshape` put the heads side by side again, ($B$, $\ell$, $D$); as in the
#   reference, the dropout comes *before* `out_proj`, and the result is added to `x`:
#   $z \leftarrow z + \mathrm{MHA}(\mathrm{LN}(z))$.
# - The MLP acts on every token alone: `ln2`, `up_proj`, GELU, `down_proj` back to $D$, dropout, and
#   the second residual addition. The output has the shape of the input, which is why the hook
#   table shows the same shape into and out of every block.
#
# The blocks, the token tables and the final LayerNorm are made once, in `MaskedModel.__init__`,
# which NDT1 and NDT2 share:

# %% tags=["remove-input"]
show_source(MaskedModel.__init__)

# %% [markdown]
# `session_ids` and `n_neurons` are the registry: a session's index is its place in these lists. The
# session-token table starts with no row and gains one per session (`add_session`); the prompt-token
# table has one row per prompt (`N_PROMPTS`, four: neuron, causal, intra-region, inter-region). Then
# come the embedding dropout, $L$ blocks and the final LayerNorm. With `fixup` (the reference's
# default), every block's output-side weights, `out_proj`, `up_proj` and `down_proj`, are multiplied
# by `scale = 0.67 * n_layers ** -0.25`, and the value rows of `qkv` (its last third,
# `qkv.weight[2 * hidden:]`) by $\sqrt{2}$ times that, as the reference's `fixup_init` does: the
# deeper the model, the smaller its residual branches start.
#
# The reference adds a learned absolute position embedding, and so does `mtm` by default. The
# camera-ready paper reports that rotary position embeddings (RoPE, which rotate queries and keys by
# the bin index inside every attention layer) do better; `ModelConfig(position="rope")` switches them
# on, and the position table disappears:

# %%
rope = build_model(
    replace(cfg, position="rope"), [(session.eid, session.n_neurons)]
)
rope = rope.to(DEVICE).eval()
with torch.no_grad():
    out = rope(masked.float(), session.eid, PROMPT_IDS["causal"], causal=True)
print(
    "RoPE model: position table", rope.position, "| output", tuple(out.shape)
)

# %% [markdown]
# ## 3. Stitchers belong to a session, not to a neuron count
#
# The stitcher $S_s$ and read-out $R_s$ are what make a multi-session model possible: each session
# gets its own pair, however many neurons it has. The reference code kept them in a dictionary keyed
# by the session's **neuron count**, so two sessions with the same number of neurons silently shared
# their stitchers (and a batch mixing them got the first trial's session token). `mtm` keys them by
# the session id:

# %%
twins = build_model(
    ModelConfig.small(), [("session-a", 50), ("session-b", 50)]
)
print(
    "stitchers:",
    [tuple(layer.weight.shape) for layer in twins.read_in],
    "| read-outs:",
    [tuple(layer.weight.shape) for layer in twins.read_out],
)
print("session-b has index", twins.session_index("session-b"))
try:
    twins(torch.zeros(2, 100, 49), "session-a", prompt=PROMPT_IDS["neuron"])
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# Two sessions of 50 neurons get two stitchers and two read-outs, and a batch with the wrong number of
# neurons for its session is refused with a message rather than silently routed elsewhere. Fine-tuning
# on a new session ({doc}`07_multisession`) calls `model.add_session(eid, n_neurons)`, which adds a
# fresh pair and a session token started at the mean of the trained ones.
#
# ### The code of the stitchers and the read-out
#
# NDT1's own layers are few. Its constructor, and the method `add_session` calls for every new
# session:

# %% tags=["remove-input"]
show_source(NDT1.__init__)
show_source(NDT1._add_session_layers)

# %% [markdown]
# - `read_in` and `read_out` are lists of layers, one entry per session, in the order the sessions
#   were added: entry `i` belongs to `session_ids[i]`, which is how `read_in[session]` in `tokens`
#   finds the session's stitcher.
# - `embed_hidden` ($W_1$, `n_channels` to `embed_mult` times as many) and `embed_out` ($W_2$, to the
#   model's width) are shared by every session. Plain NDT1 (`stitching=False`) has no $W_1$: its
#   per-session layer maps the neurons straight to the wider layer, and `embed_hidden` passes its
#   input through (`nn.Identity`).
# - `position` is the learned table of `max_bins` rows, or `None` with RoPE.
# - Every session given to the constructor is added with a freshly drawn session token
#   (`token="fresh"`), so the tokens of a new multi-session model start apart.
# - `_add_session_layers` appends the session's stitcher, $N_s$ to `n_channels`, and its read-out,
#   `hidden` to $N_s$, on the device of the existing layers (a session added to a model on a GPU
#   lands on the GPU).
#
# The read-out runs at the end of `forward`, on the bin tokens after the final LayerNorm:

# %% tags=["remove-input"]
show_source(NDT1.log_rates_from_tokens)

# %% [markdown]
# One linear map per session, (B, T, `hidden`) to (B, T, $N_s$): a log-rate for every neuron of the
# session in every bin. NDT1 does not need `shape` (NDT2 does, to drop its padding, section 7).
#
# ## 4. Log-rates and the masked Poisson loss
#
# The output $\hat\eta = \log \hat\lambda$ is the log of the expected count per bin. Counts are
# modelled as Poisson, and the loss is the negative log-likelihood summed over the masking's target
# entries $\mathcal{T}$ only, without the $\log y!$ term, which does not depend on the model:
#
# $$\mathcal{L} = \sum_{(k,t,n) \in \mathcal{T}} \big[e^{\hat\eta_{ktn}} - y_{ktn}\,\hat\eta_{ktn}\big].$$
#
# `mtm.models.poisson_nll` returns the sum and the number of targets (training divides by the latter
# only for the logs, as the reference does). A fresh read-out predicts $\hat\eta \approx 0$, one spike
# per bin, far above the rates of most neurons. `init_rates` sets each read-out bias to
# $\log \bar y_n$, the neuron's mean count per bin on the train split, so an untrained model starts
# at the mean rates (`mtm.train.train` does this for every session):

# %% tags=["remove-input"]
show_source(NDT1.init_rates)

# %% [markdown]
# (The clamp keeps a neuron that never fired on the train split at a small rate rather than at
# $\log 0$.) The loss of one masked batch, before and after:

# %%
generator = torch.Generator(DEVICE).manual_seed(SEED)
masked, target = mask_batch(
    batch, "neuron", session.regions, generator=generator
)
rows = []
for label in ("fresh read-out", "after init_rates"):
    if label == "after init_rates":
        model.init_rates(session.eid, train_mean_counts(session).to(DEVICE))
    with torch.no_grad():
        log_rates = model(masked.float(), session.eid, PROMPT_IDS["neuron"])
    loss, count = poisson_nll(log_rates, batch, target)
    rows.append(
        {
            "model": label,
            "loss": loss.item(),
            "targets": int(count.item()),
            "loss / target": (loss / count).item(),
            "predicted rate": log_rates.exp().mean().item(),
            "observed rate": batch.float().mean().item(),
        }
    )
start = pd.DataFrame(rows).set_index("model")
start.round(3)

# %% tags=["remove-cell"]
fresh, fitted = start.loc["fresh read-out"], start.loc["after init_rates"]
for key, value in (
    ("rate_fresh", fresh["predicted rate"]),
    ("rate_init", fitted["predicted rate"]),
    ("rate_observed", fitted["observed rate"]),
    ("loss_fresh", fresh["loss / target"]),
    ("loss_init", fitted["loss / target"]),
):
    glue_number(key, value, "{:.3f}")
assert_direction(
    "init_rates lowers the loss per target",
    fitted["loss / target"],
    "<",
    fresh["loss / target"],
)
assert_direction(
    "init_rates brings the predicted rate closer to the observed one",
    abs(fitted["predicted rate"] - fitted["observed rate"]),
    "<",
    abs(fresh["predicted rate"] - fitted["observed rate"]),
)

# %% [markdown]
# The loss is a *sum*, so the gradient of a batch grows with its number of targets ({doc}`02_masking`
# showed how much that varies between schemes). Rates are in spikes per bin. After `init_rates` the
# mean predicted rate falls from {glue:text}`rate_fresh` to {glue:text}`rate_init`, close to the
# observed {glue:text}`rate_observed`, and the loss per target falls from {glue:text}`loss_fresh` to
# {glue:text}`loss_init`: training starts near "every neuron fires at its mean rate" (about 0 bits
# per spike, {doc}`05_evaluation`) rather than at one spike per bin.
#
# ## 5. Where the parameters are
#
# We build the paper-size model for one session of `PAPER_NEURONS` neurons (building is cheap; it is
# never run here) and count the parameters of each component:


# %%
def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


paper = build_model(ModelConfig.paper(), [("paper-session", PAPER_NEURONS)])
components = [
    ("read_in", "stitcher S_s: N_s to 668"),
    ("embed_hidden", "W_1: 668 to 1336"),
    ("embed_out", "W_2: 1336 to 512"),
    ("position", "learned position table, 100 bins"),
    ("session_token", "session token"),
    ("prompt_token", "4 prompt tokens"),
    ("blocks", "5 pre-LN layers"),
    ("final_ln", "final LayerNorm"),
    ("read_out", "read-out R_s: 512 to N_s"),
]
per_session = {"read_in", "read_out", "session_token"}
table = pd.DataFrame(
    [
        dict(
            component=name,
            what=what,
            parameters=n_params(getattr(paper, name)),
            kind="per session" if name in per_session else "shared",
        )
        for name, what in components
    ]
)
shared = sum(p.numel() for p in paper.core_parameters())
session_specific = sum(p.numel() for p in paper.session_parameters())
print(
    f"shared {shared / 1e6:.2f} M, per session {session_specific / 1e6:.2f} M "
    f"(one layer: {n_params(paper.blocks[0]) / 1e6:.2f} M)"
)
table

# %% tags=["remove-cell"]
assert shared + session_specific == n_params(paper) == table.parameters.sum()
glue_number("params_shared", shared / 1e6, "{:.0f}")
glue_number("params_session", session_specific / 1e6, "{:.1f}")
glue_number("params_layer", n_params(paper.blocks[0]) / 1e6, "{:.1f}")

# %% [markdown]
# The five transformer layers hold most of the shared parameters (each is about
# {glue:text}`params_layer` M: $4 \cdot 512^2$ for attention and $2 \cdot 512 \cdot 1024$ for the MLP,
# plus biases and norms), and the stitcher and read-out of one session together hold about
# {glue:text}`params_session` M. Adding a session adds exactly its stitcher,
# its read-out and its token; with `N_PRETRAIN` sessions most parameters are per session, although
# every one of them sees only its own session's data:

# %%
before = n_params(paper)
paper.add_session("another-session", PAPER_NEURONS)
added = n_params(paper) - before
print(f"add_session: +{added / 1e6:.2f} M parameters")
total = shared + N_PRETRAIN * added
print(
    f"{N_PRETRAIN} sessions of {PAPER_NEURONS} neurons: "
    f"{shared / 1e6:.1f} M shared + {N_PRETRAIN * added / 1e6:.1f} M "
    f"per session = {total / 1e6:.1f} M"
)
ndt2_paper = build_model(
    ModelConfig.paper(arch="ndt2"), [("paper-session", PAPER_NEURONS)]
)
ndt2_session = sum(p.numel() for p in ndt2_paper.session_parameters())
print(
    "NDT2 (paper sizes, no stitchers): "
    f"{n_params(ndt2_paper) / 1e6:.2f} M, of which "
    f"{ndt2_session / 1e3:.1f} k per session"
)
del paper, ndt2_paper

# %% [markdown]
# ## 6. Bidirectional and causal attention
#
# Every scheme but one lets each token attend to every other token (bidirectional). The causal scheme
# (and forward prediction at evaluation) restricts the token of bin $t$ to bins $t' \le t$. The
# session and prompt tokens come **first** in the sequence, so with a causal mask over the whole
# sequence they see no bin at all (the session token sees only itself, the prompt token the session
# token and itself). `mtm` passes `is_causal=True` to PyTorch's
# `scaled_dot_product_attention` (which lets fused GPU kernels run), and that mask is the lower
# triangle below:

# %% mystnb={"figure": {"caption": "Attention masks over the first 12 tokens of the sequence (session token, prompt token, bins 0 to 9), query on the y axis and key on the x axis, dark where attention is allowed. Left: bidirectional; right: causal, the lower triangle of `is_causal=True`.", "name": "fig-03-attention-masks"}}
n_show = 2 + 10
fig, axes = plt.subplots(1, 2, figsize=(7, 3.8), layout="constrained")
labels = ["sess", "prompt"] + [f"bin {t}" for t in range(n_show - 2)]
masks = [
    ("bidirectional", torch.ones(n_show, n_show)),
    ("causal (is_causal=True)", torch.ones(n_show, n_show).tril()),
]
for ax, (title, mask) in zip(axes, masks):
    ax.imshow(mask, cmap="Greys", vmin=0, vmax=1.4)
    ax.set_xticks(range(n_show), labels, rotation=90, fontsize=9)
    ax.set_yticks(range(n_show), labels, fontsize=9)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
plt.show()

# %% [markdown]
# The claim "no output depends on a future bin" can be tested directly: change the input at one bin
# and see which outputs move. We add 3 spikes to every neuron at bin `PERTURBED_BIN` of four trials
# of the batch and record, for every bin, the largest change of the log-rates:


# %%
@torch.no_grad()
def output_change(net, counts, causal, at=PERTURBED_BIN):
    """Largest |change| of the log-rates in each bin, (T,), when 3 spikes
    are added to every neuron at bin `at` of the input counts."""
    changed = counts.clone()
    changed[:, at] += 3.0
    prompt = PROMPT_IDS["causal"]
    after = net(changed, session.eid, prompt, causal)
    delta = after - net(counts, session.eid, prompt, causal)
    return delta.abs().amax(dim=(0, 2)).cpu().numpy()


def before_bin(changes, at=PERTURBED_BIN):
    """Print and return the largest change of each curve before bin `at`."""
    largest = {label: c[:at].max(initial=0.0) for label, c in changes.items()}
    for label, value in largest.items():
        print(f"{label:>34}: largest change before bin {at}: {value:.2e}")
    return largest


x = batch[:4].float()  # four trials are enough: attention never mixes trials

# %% [markdown]
# In the reference code the session and prompt tokens kept full rows (they attended to every bin,
# future ones included); in the next layer every bin reads them, so future activity leaked into
# "causal" predictions during training. We show that too, by handing the same model the reference's
# mask (`mtm.reference_import.reference_attention`, which swaps in `reference_causal_mask` for the
# block):

# %% mystnb={"figure": {"caption": "Largest absolute change of the NDT1 log-rates in each output bin (log scale) when 3 spikes are added to every neuron at bin `PERTURBED_BIN` (dashed line) of four trials: bidirectional attention, `mtm`'s causal attention, and the same weights with the reference's causal mask. Changes of exactly zero are drawn on the thin floor line (label: exactly 0).", "name": "fig-03-causality-ndt1"}}
changes = {
    "bidirectional": output_change(model, x, causal=False),
    "causal (mtm)": output_change(model, x, causal=True),
}
with reference_attention(model):  # the same weights, the reference's mask
    changes["causal, the reference's mask"] = output_change(
        model, x, causal=True
    )
title = f"NDT1 ({RUN.MODEL_SIZE}): input changed at bin {PERTURBED_BIN}"
plot_output_changes(changes, PERTURBED_BIN, title)
plt.show()
before = before_bin(changes)

# %% tags=["remove-cell"]
assert_direction(
    "mtm's causal outputs before the perturbed bin do not change",
    before["causal (mtm)"],
    "<=",
    0.0,
)
assert_direction(
    "the reference's mask lets the earlier outputs move",
    before["causal, the reference's mask"],
    ">",
    0.0,
)
glue_number(
    "ndt1_reference_change", before["causal, the reference's mask"], "{:.2e}"
)
glue_number("ndt1_bidirectional_change", before["bidirectional"], "{:.2e}")

# %% [markdown]
# With bidirectional attention every output moves. With `mtm`'s causal attention the outputs before
# the perturbed bin do not change at all (the curve sits on the "exactly 0" floor, and the printed
# largest change is zero), and the perturbed bin and everything after it do (after bin
# `PERTURBED_BIN` the dashed `mtm` curve runs together with the other two;
# {numref}`fig-03-causality-ndt1`). With the reference's mask the earlier outputs move too (largest
# change {glue:text}`ndt1_reference_change`, against {glue:text}`ndt1_bidirectional_change` with
# bidirectional attention): through the prepended tokens, the past "sees" the future. (The effect
# needs at least two layers: one for the prepended tokens to read the future, one for the bins to
# read them.) At forward-prediction evaluation the future bins are zeroed, so the reference's test
# scores are not contaminated, but the model it trains with the causal scheme is not strictly causal.
#
# ## 7. NDT2: space-time patches and block-causal attention
#
# NDT2 {cite:p}`ye2023ndt2` cuts each bin into **patches of 128 neurons** (the neurons zero-padded to
# $P = \lceil N / 128 \rceil$ patches) and makes one token per (bin, patch), in time-major order:
#
# $$\begin{aligned}
# h_{tp} &= W_{\text{out}}\,\mathrm{softsign}(W_{\text{in}}\, x_{tp})
#   + \mathrm{LN}(E^{\text{space}}_p) + \mathrm{LN}(E^{\text{time}}_t), \\
# \log\hat\lambda_{tp} &= W_{\text{read}}\,\mathrm{LN}(z_{tp}) \in \mathbb{R}^{128}.
# \end{aligned}$$
#
# There is no stitcher: the same 128-neuron read-in and read-out serve every session, which differ
# only by their session token and their number of patches. A paper session of 676 neurons makes
# $100 \times 6 = 600$ tokens instead of NDT1's 100, and attention costs grow with the square of the
# sequence length. The same hooks on the NDT2 modules (here with `NDT2_PATCH` neurons per token):

# %%
torch.manual_seed(SEED)
ndt2_cfg = replace(cfg, arch="ndt2", patch_size=RUN.NDT2_PATCH)
ndt2 = build_model(ndt2_cfg, [(session.eid, session.n_neurons)])
ndt2 = ndt2.to(DEVICE).eval()
stages2 = [
    ("embed", "patch embedding", ndt2.embed),
    ("space_ln", "space embedding", ndt2.space_ln),
    ("time_ln", "time embedding", ndt2.time_ln),
    ("embed_drop", "[session, prompt, tokens]", ndt2.embed_drop),
    ("final_ln", "final LN, tokens only", ndt2.final_ln),
    ("read_out", "read-out per token", ndt2.read_out),
]
n_patches = ndt2.n_patches(session.n_neurons)
print(session.n_neurons, "neurons ->", n_patches, "patches of", RUN.NDT2_PATCH)
prompt = PROMPT_IDS["neuron"]
trace_shapes(ndt2, stages2, masked.float(), session.eid, prompt)

# %% [markdown]
# ### The code of NDT2's patch tokens
#
# NDT2's own layers, made by its constructor, are one patch embedding, two embedding tables with
# their LayerNorms and one read-out, all shared by every session:

# %% tags=["remove-input"]
show_source(NDT2.__init__)

# %% [markdown]
# `embed` is the read-in of one patch: Linear (`patch_size` to `embed_mult` times as many), softsign,
# Linear to the model's width. The `space` table starts with one row and grows, as sessions are
# added (`_add_session_layers`), to the largest number of patches of any session; `time` has one row
# per bin (`max_bins`), or is `None` with RoPE. The read-out maps a token back to `patch_size`
# log-rates. None of them depends on a session's neurons, so NDT2 has no stitchers. The table of
# shapes above is made by two short methods, one at each end of the transformer:

# %% tags=["remove-input"]
show_source(NDT2.tokens)
show_source(NDT2.log_rates_from_tokens)

# %% [markdown]
# With $B$ trials, $T$ bins, $N$ neurons, patches of $S$ = `patch_size` neurons and $P$ patches:
#
# - `n_patches` is $P = \lceil N / S \rceil$; `pad` appends $P S - N$ neurons of zeros, and `view`
#   cuts the neuron axis into patches: `x` is (B, T, P, S), and `x[:, t, p]` holds neurons
#   $pS$ to $pS + S - 1$ of bin $t$.
# - `embed` (Linear $S$ to $2S$, softsign, Linear to $D$) acts on the last axis: one token of width
#   $D$ per (trial, bin, patch), (B, T, P, D). The same weights serve every patch and every session.
# - The space embedding is the first $P$ rows of the table `space`, one row per patch position,
#   through a LayerNorm: (P, D), which broadcasts over trials and bins. The time embedding is one
#   row per bin, through its own LayerNorm; `[:, None]` makes it (T, 1, D), which broadcasts over
#   the patches. (With RoPE `time` is `None` and the bin enters in attention instead.)
# - `reshape` flattens bins and patches into one sequence of $T P$ tokens, time-major: token
#   $tP + p$ is patch $p$ of bin $t$. `repeat_interleave` gives each token its bin,
#   $0, \dots, 0, 1, \dots, 1, \dots$, each bin $P$ times: what the attention mask below is built from.
# - At the other end, `read_out` (Linear $D$ to $S$) gives $S$ log-rates per token, (B, T P, S);
#   `reshape` lays the patches of each bin side by side again, (B, T, P S), and `[..., :n_neurons]`
#   drops the padding: (B, T, N), the shape of the input.
#
# The padded neurons are never scored: their log-rates are cut off before the loss. (The reference
# filled the last, partial patch with the tail of the previous one; here it is zero-padded.)
#
# **Causal attention over patches.** With several tokens per bin, "see only the past" means: the
# token of (bin $t$, patch $p$) sees every token of bins $t' \le t$, all patches included (the causal
# scheme hides all patches of a bin together), and the prepended tokens see no bin. That is a
# *block*-causal mask, built from the bin of each token:

# %% tags=["remove-input"]
show_source(NDT2.causal_mask)

# %% [markdown]
# With one token per bin the mask is the ordinary lower triangle, and `causal_mask` returns `None`
# so that the blocks pass `is_causal=True`. Otherwise the prepended tokens get bin $-1$, and query $i$
# may read key $j$ when the bin of $j$ is not later than the bin of $i$ (`bins[None, :] <=
# bins[:, None]`, an $\ell \times \ell$ boolean matrix): every token reads the prepended ones, and the prepended
# ones read only each other. The reference instead tiled a $T \times T$ lower triangle over the
# $T \cdot P$ time-major tokens, as if token $i$ belonged to bin $i \bmod T$ rather than
# $\lfloor i / P \rfloor$:

# %%
_, token_bins = ndt2.tokens(x, ndt2.session_index(session.eid))
ours = ndt2.causal_mask(token_bins, 2, x.shape[1]).cpu().numpy()
reference = reference_causal_mask(len(token_bins), 2, x.shape[1]).cpu().numpy()
# the prepended tokens belong to no bin
bins = np.r_[-1, -1, token_bins.cpu().numpy()]
future = bins[None, :] > bins[:, None]  # key in a later bin than the query
sees_future = reference & future
misses_past = ~reference & ~future
print(
    f"{len(bins)} tokens; the reference lets {sees_future.mean():.1%} of the "
    f"(query, key) pairs see a future bin, and hides {misses_past.mean():.1%} "
    "in the past or the same bin"
)

# %% tags=["remove-cell"]
glue_number("sees_future_percent", 100 * sees_future.mean(), "{:.1f}")
glue_number("misses_past_percent", 100 * misses_past.mean(), "{:.1f}")

# %% mystnb={"figure": {"caption": "Causal attention masks of the NDT2 model over its token sequence, query token on the y axis and key token on the x axis. Columns: `mtm`'s block-causal mask and the reference's tiled mask (dark: allowed), and their difference (red: the reference lets a token see a future bin; blue: it hides a key of a past or the same bin). Top row: the whole sequence; bottom row: the two prepended tokens and the tokens of the first six bins.", "name": "fig-03-ndt2-masks"}}
diff = np.where(sees_future, 1, np.where(misses_past, -1, 0))
panels = [
    ("mtm: block-causal", ours, "Greys", 0, 1.4),
    ("reference: tiled", reference, "Greys", 0, 1.4),
    ("reference - correct", diff, "coolwarm", -1, 1),
]
zoom = 2 + 6 * n_patches
fig, axes = plt.subplots(2, 3, figsize=(7, 5.6), layout="constrained")
for row, size in zip(axes, (len(bins), zoom)):
    for ax, (title, image, cmap, low, high) in zip(row, panels):
        shown = image[:size, :size]
        ax.imshow(
            shown, cmap=cmap, vmin=low, vmax=high, interpolation="nearest"
        )
        zoomed = "\n(first 6 bins)" if size == zoom else ""
        ax.set_title(title + zoomed, fontsize=10)
        ax.set_xlabel("key token")
        ax.set_ylabel("query token")
fig.suptitle(
    "red: the reference sees a future bin; "
    "blue: it hides a key of the past or the same bin",
    fontsize=10,
)
plt.show()

# %% [markdown]
# Top row, the whole sequence: `mtm`'s mask is a lower triangle whose edge is a staircase of
# bin-sized blocks (the steps are too small to see at this scale; the bottom row shows them). The
# reference's is a grid of triangles that repeats every $T$ tokens, so tokens in the first two thirds
# of the sequence see future bins (red) and tokens in the last two thirds miss part of the past
# (blue): as printed above, {glue:text}`sees_future_percent` % of all (query, key) pairs see a future
# bin and {glue:text}`misses_past_percent` % hide a key of a past or the same bin. Bottom row, the two
# prepended tokens and the first six bins: the prepended tokens see every bin (red rows), and even
# where the triangle is right, a token does not see the later patches of its own bin (blue steps),
# which is why the difference is not zero there either. (With one patch per bin, as in NDT1, the
# tiled triangle is the ordinary causal mask, and only the rows of the prepended tokens differ.)
# The perturbation test confirms the two masks' behaviour in the NDT2 model: with the block-causal
# mask no output before the perturbed bin changes (largest change zero), while with the tiled
# mask earlier outputs do (largest change {glue:text}`ndt2_tiled_change`; both printed below):

# %% mystnb={"figure": {"caption": "The perturbation test of section 6 for the NDT2 model: largest absolute change of the log-rates in each output bin (log scale) when 3 spikes are added to every neuron at bin `PERTURBED_BIN` (dashed line), with `mtm`'s block-causal mask and with the reference's tiled mask. Changes of exactly zero are drawn on the floor line.", "name": "fig-03-causality-ndt2"}}
changes = {"causal (mtm, block-causal)": output_change(ndt2, x, causal=True)}
with reference_attention(ndt2):
    changes["causal, the reference's tiled mask"] = output_change(
        ndt2, x, causal=True
    )
title = f"NDT2 ({RUN.MODEL_SIZE}): input changed at bin {PERTURBED_BIN}"
plot_output_changes(changes, PERTURBED_BIN, title)
plt.show()
before = before_bin(changes)

# %% tags=["remove-cell"]
assert_direction(
    "no NDT2 output before the perturbed bin changes "
    "with the block-causal mask",
    before["causal (mtm, block-causal)"],
    "<=",
    0.0,
)
assert_direction(
    "the tiled mask lets earlier NDT2 outputs move",
    before["causal, the reference's tiled mask"],
    ">",
    0.0,
)
glue_number(
    "ndt2_tiled_change", before["causal, the reference's tiled mask"], "{:.2e}"
)

# %% [markdown]
# ## Summary
#
# - NDT1-stitch: per-session stitcher (keyed by session id), shared linear-softsign-linear
#   embedding, learned position embedding (RoPE as an option), session and prompt tokens prepended,
#   pre-LN transformer, final LayerNorm, per-session read-out to log-rates.
# - Each transformer layer is attention (one `qkv` map, `scaled_dot_product_attention`, `out_proj`)
#   and a GELU MLP, each behind a LayerNorm and added back to its input. The code of the forward
#   pass, the layer, the stitchers and read-outs and NDT2's patch tokens and mask is on this page,
#   rendered from the package.
# - The loss is the Poisson negative log-likelihood summed over the target entries; read-outs start at
#   each neuron's mean rate.
# - The learned tokens (session, prompt) and the position embedding start from $\mathcal{N}(0, 1)$ in the
#   reference and in the `paper` preset, and from $\mathcal{N}(0, 0.02^2)$ in the `small` preset
#   (`ModelConfig.token_std`). Drawn from $\mathcal{N}(0, 1)$, the position embedding added to every bin
#   is far larger than the embedded spikes of a fresh model, so after the first LayerNorm the
#   transformer barely sees the spikes and a short run spends its first epochs learning to; the
#   small tokens let them through from the first step (benchmarks/RESULTS.md measures both).
# - The paper-size model has about {glue:text}`params_shared` M shared parameters (mostly the five
#   transformer layers) and about {glue:text}`params_session` M per session (stitcher and read-out).
# - Causal attention in `mtm` puts the prepended tokens first, so no output depends on a future bin;
#   the reference's prepended tokens saw the future. NDT2 needs a block-causal mask over its
#   (bin, patch) tokens; the reference's tiled mask was wrong for more than one patch per bin.
# - NDT2 makes one token per bin and 128 neurons, with space and time embeddings and no stitchers.
#
# ## Exercises
#
# **Exercise 1.** Count the parameters of the paper-size model for a session of 300 neurons and one
# of 900. Which components change, and by how much?
#
# :::{admonition} Hint
# :class: dropdown
# Reuse `n_params` and the list `components` of section 5, building one model per session size.
# Which layers have the number of neurons among their sizes?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# Only the stitcher and the read-out change. The stitcher `read_in[0]` is `Linear(N, 668)`: $668\,N$
# weights and 668 biases. The read-out `read_out[0]` is `Linear(512, N)`: $512\,N$ weights and $N$
# biases. Each neuron thus adds $668 + 512 + 1$ parameters, and the 900-neuron session has
# $600 \times (668 + 512 + 1)$ more than the 300-neuron one, all of them per session. The shared
# embedding, the position table, the session and prompt tokens and the transformer layers do not
# depend on $N$, so their rows of the difference column are zero. (In NDT2 nothing depends on $N$
# except the space embedding, which grows to the largest number of 128-neuron patches of any
# session: `NDT2._add_session_layers`.)
# :::

# %% tags=["hide-input"]
columns = {}
for n in (300, 900):
    net = build_model(ModelConfig.paper(), [("session", n)])
    columns[f"{n} neurons"] = {
        name: n_params(getattr(net, name)) for name, _ in components
    }
    del net
counts = pd.DataFrame(columns)
counts["difference"] = counts["900 neurons"] - counts["300 neurons"]
counts

# %% [markdown]
# **Exercise 2.** Perturb bin 0 instead of bin `PERTURBED_BIN` in the test of section 6. Which
# outputs change under causal attention, and why?
#
# :::{admonition} Hint
# :class: dropdown
# `output_change(net, x, causal, at=0)` perturbs bin 0. Count the bins whose largest change is above
# zero. What does `before_bin` report when there is no bin before the perturbed one?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# Every output bin changes, in all three cases: the first three lines of the folded cell count the
# changed bins. Causal attention lets the token of bin $t$ attend to the bins $t' \le t$, and bin 0
# is among them for every $t$, so a change at bin 0 reaches every output, as it does with
# bidirectional attention. A perturbation of the first bin therefore cannot tell causal from
# bidirectional attention, nor `mtm`'s mask from the reference's: only the outputs *before* the
# perturbed bin can reveal a leak of the future, which is why the chapter perturbs a bin in the
# middle of the trial.
#
# The test of section 6 rerun at bin 0 does not stop with an error, but it tests nothing:
# `before_bin` takes the largest change before the perturbed bin as `c[:at].max(initial=0.0)`, the
# maximum of an empty slice started at zero, so it reports a largest change of exactly zero for
# every mask, the leaking reference's included, whose every bin changed: the last lines of the
# folded cell print it.
# :::

# %% tags=["hide-input"]
first = {}
for label, causal in (("bidirectional", False), ("causal (mtm)", True)):
    first[label] = output_change(model, x, causal=causal, at=0)
with reference_attention(model):
    first["reference mask"] = output_change(model, x, causal=True, at=0)
for label, change in first.items():
    changed = int((change > 0).sum())
    print(f"{label:>15}: changed outputs in {changed} of {len(change)} bins")
print("what before_bin reports before bin 0:")
largest = before_bin(first, at=0)

# %% [markdown]
# **Exercise 3.** Build the RoPE model with the paper sizes. How many parameters does it save, and
# why so few?
#
# :::{admonition} Hint
# :class: dropdown
# `ModelConfig.paper(position="rope")` builds it. Compare `n_params` of the two models with the size
# of the learned position table, `model.position`. What does `rotary` in `mtm.models.transformer`
# compute, and does it hold any weights?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The saving is exactly the learned position table, `nn.Embedding(max_bins, hidden)`: $100 \times 512$
# weights, and the RoPE model's `position` is `None`. RoPE holds no parameters: `rotary` rotates
# pairs of coordinates of the queries and keys by angles computed from the bin index and fixed
# frequencies ($10000^{-i/(d/2)}$ for a head of width $d$). Everything else is the same, so the
# saving is a small fraction of the shared parameters counted in section 5, which sit mostly in the
# transformer layers. What RoPE changes is how position enters attention (relative offsets between
# query and key, in every layer), not the size of the model.
# :::

# %% tags=["hide-input"]
learned = build_model(ModelConfig.paper(), [("session", PAPER_NEURONS)])
rotary_net = build_model(
    ModelConfig.paper(position="rope"), [("session", PAPER_NEURONS)]
)
print(
    "saved:",
    n_params(learned) - n_params(rotary_net),
    "| learned position table:",
    n_params(learned.position),
    "| RoPE model's table:",
    rotary_net.position,
)
del learned, rotary_net

# %% [markdown]
# **Exercise 4.** For NDT2, set `NDT2_PATCH` to the number of neurons (one patch per bin). Where do
# `mtm`'s causal attention and the reference's mask still differ?
#
# :::{admonition} Hint
# :class: dropdown
# Build an NDT2 model with `patch_size=session.n_neurons`, as section 7 builds `ndt2`. With one
# token per bin, `NDT2.causal_mask` returns `None`: the model then uses `is_causal=True`, a lower
# triangle over the whole sequence, so build that triangle yourself and compare it with
# `reference_causal_mask`. Which rows differ?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The first print shows `None`, and the rows that differ are 0 and 1: the session and the prompt
# token. With one patch per bin, token $i$ of the bins belongs to bin $i$, so the reference's tiled
# triangle is the ordinary causal mask over the bins (`reference_causal_mask` takes bin $i \bmod T$,
# which is $i$ here). What remains is the prepended tokens: the reference gives them full rows, so
# they attend to every bin, future ones included, while in `mtm` they come first and see no bin.
# In the next layer every bin reads those tokens, so the leak of section 6 remains. Expect the
# perturbation plot to show it: with `mtm`'s attention the outputs before `PERTURBED_BIN` do not
# move; with the reference's mask they do, provided the model has at least two layers. (The cell of
# section 7 cannot simply be rerun with one patch per bin: it calls `.cpu()` on the `None` that
# `NDT2.causal_mask` returns.)
# :::

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Solution of exercise 4: the perturbation test for an NDT2 model with one patch per bin, with `mtm`'s causal attention and with the reference's mask (dashed line: the perturbed bin).", "name": "fig-03-exercise-one-patch"}}
torch.manual_seed(SEED)
one_cfg = replace(cfg, arch="ndt2", patch_size=session.n_neurons)
one_patch = build_model(one_cfg, [(session.eid, session.n_neurons)])
one_patch = one_patch.to(DEVICE).eval()
_, token_bins = one_patch.tokens(x, one_patch.session_index(session.eid))
print("NDT2.causal_mask:", one_patch.causal_mask(token_bins, 2, x.shape[1]))
n_tokens = 2 + len(token_bins)
ours = torch.ones(n_tokens, n_tokens, dtype=torch.bool).tril().numpy()
reference = reference_causal_mask(len(token_bins), 2, x.shape[1]).cpu().numpy()
print("rows that differ:", np.unique(np.nonzero(ours != reference)[0]))
changes = {"causal (mtm)": output_change(one_patch, x, causal=True)}
with reference_attention(one_patch):
    changes["causal, the reference's mask"] = output_change(
        one_patch, x, causal=True
    )
plot_output_changes(changes, PERTURBED_BIN, "NDT2, one patch per bin")
plt.show()
largest = before_bin(changes)

# %% [markdown]
# **Exercise 5.** Record the input and output shapes of `model.blocks[0].qkv` and explain the shape
# of its output.
#
# :::{admonition} Hint
# :class: dropdown
# `trace_shapes` (section 2) takes any list of (name, description, module): give it the one module
# and run one batch through `model`. Then read `Block.forward` (section 2).
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The output is (trials, $T + 2$, $3 \times$ `hidden`). The first two sizes are those of the
# sequence: one row per trial of the batch, and the $T$ bin tokens plus the session and prompt
# tokens. The last is three times the model's width because `qkv` is a single
# `Linear(hidden, 3 * hidden)` that computes the queries, keys and values of every head at once; its
# input is the layer-normalised sequence, (trials, $T + 2$, `hidden`). `Block.forward` then views
# the output as (trials, $T + 2$, 3, `n_heads`, `hidden / n_heads`) and permutes it into three tensors
# of shape (trials, `n_heads`, $T + 2$, `hidden / n_heads`) for `scaled_dot_product_attention`. In
# NDT2 the sequence holds $T \cdot P + 2$ tokens instead.
# :::

# %% tags=["hide-input"]
qkv = [("blocks[0].qkv", "queries, keys, values", model.blocks[0].qkv)]
prompt = PROMPT_IDS["neuron"]
print("hidden", cfg.hidden, "heads", cfg.n_heads)
trace_shapes(model, qkv, masked.float(), session.eid, prompt)

# %% tags=["remove-input"]
print(RUN.done())

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
# # Masking: what the model is asked to predict
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/02_masking.ipynb)
#
# **What you will learn**
#
# - what a masking scheme does to a batch: which entries it hides (sets to zero) and which hidden
#   entries the loss is scored on (the *targets*);
# - the seven training schemes (temporal, causal, neuron, random, random-token, intra-region,
#   inter-region) and the two evaluation masks (co-smoothing, forward prediction), drawn on a
#   training batch of a synthetic session (and the region masks on real IBL spikes), and what each one asks the model to learn;
# - how causal masking is defined in the reference code (temporal masking with causal attention)
#   rather than
#   the paper's "next time step";
# - the four prompt tokens and the MtM mixture, with the masking ratios;
# - a bug of the reference code (a region list frozen at the first batch) and how `mtm` avoids it.
#
# *About 10 minutes.*

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

import tempfile
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Patch

from mtm.book import assert_direction, chapter_settings, glue_number
from mtm.book import show_source, source_span
from mtm.data import Session, synthetic_session
from mtm.evaluate import TASK_PROMPT
from mtm.masking import DEFAULT_RATIO, MTM_SCHEMES, PROMPT_IDS, SCHEMES
from mtm.masking import MtMSampler, causal_gaps, is_causal, mask_batch
from mtm.plots import MASK_COLORS, plot_causal_gaps, plot_mask, plot_raster
from mtm.plots import use_style

use_style()

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1,
# else gpu or book
SETTINGS = "auto"
# OVERRIDES: the settings' values to replace, e.g. {"N_MASKS": 50}; the values
# are in mtm.book.CHAPTER_SETTINGS (N_TRIALS, N_NEURONS, PATCH_SIZE: neurons
# per NDT2 token, N_MASKS: masks drawn per scheme, N_DRAWS: draws of the MtM
# sampler)
OVERRIDES = {}
SEED = 0  # which synthetic session, and the seed of the masks drawn
BATCH_SIZE = 16  # trials per batch, as in the paper

# %%
RUN = chapter_settings("02_masking", SETTINGS, **OVERRIDES)

# %% [markdown]
# ## 1. A mask hides entries and names the targets
#
# Training takes a batch of $B$ trials of one session, counts $Y \in \mathbb{N}^{B \times T \times N}$
# ($T = 100$ bins of 20 ms, $N$ neurons). A masking scheme draws a set of hidden entries
# $\mathcal{H}$ and a set of targets $\mathcal{T} \subseteq \mathcal{H}$. The hidden entries are set
# to zero (the reference replaces every masked entry by 0), the model sees the rest and predicts
# a log-rate for every entry, and the Poisson loss counts only the targets:
#
# $$\log \hat\lambda = f_\theta(M \odot Y), \qquad
# \mathcal{L} = \sum_{(k,t,n) \in \mathcal{T}} \big[\hat\lambda_{ktn} - y_{ktn} \log \hat\lambda_{ktn}\big],$$
#
# where $M$ is 0 on $\mathcal{H}$ and 1 elsewhere. `mtm.masking.mask_batch` returns exactly these
# two things: the masked counts and the boolean target mask. Here is one batch of a synthetic
# session:

# %%
session = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
batch = torch.as_tensor(session.spikes[session.splits["train"][:BATCH_SIZE]])
regions = session.regions
print(session)
print("batch:", tuple(batch.shape), batch.dtype)

generator = torch.Generator().manual_seed(SEED)
masked, target = mask_batch(batch, "temporal", regions, generator=generator)
print(
    "masked:",
    tuple(masked.shape),
    masked.dtype,
    "| target:",
    tuple(target.shape),
    target.dtype,
    f"| {target.float().mean():.0%} of the entries are targets",
)

# %% [markdown]
# A zero in the masked counts is either a hidden entry or a bin without a spike. To *see* which
# entries are hidden, we mask a tensor of ones with the same random draws (same generator seed):
# its zeros are exactly the hidden entries. The small helper below does both and is used for every
# figure of this chapter; all the masking itself is `mask_batch`.


# %%
def draw(scheme, counts=batch, labels=regions, seed=SEED, **kwargs):
    """(masked counts, hidden entries, targets) of a scheme, all (B, T, N)."""
    kwargs.setdefault("patch_size", RUN.PATCH_SIZE)

    def generator():
        return torch.Generator().manual_seed(seed)

    masked, target = mask_batch(
        counts, scheme, labels, generator=generator(), **kwargs
    )
    ones = torch.ones_like(counts)
    ones, _ = mask_batch(ones, scheme, labels, generator=generator(), **kwargs)
    return masked, ones == 0, target


# %% mystnb={"figure": {"caption": "Temporal masking of trial 0 of a training batch. Top: the counts; middle: what the model sees, hidden bins set to zero; bottom: the mask (white: visible; red: target, hidden and scored). Time from stimulus onset on the x axis, neurons grouped by region on the y axis.", "name": "fig-02-temporal-mask"}}
masked, hidden, target = draw("temporal")
fig, axes = plt.subplots(
    3, 1, figsize=(7, 7.5), layout="constrained", sharex=True
)
vmax = max(1.0, float(np.percentile(batch[0].numpy(), 99)))
plot_raster(
    batch[0].numpy(), regions, ax=axes[0], title="counts, trial 0", vmax=vmax
)
plot_raster(
    masked[0].numpy(),
    regions,
    ax=axes[1],
    vmax=vmax,
    title="what the model sees (temporal masking)",
)
plot_mask(
    hidden[0].numpy(),
    target[0].numpy(),
    regions,
    ax=axes[2],
    title="the mask",
    legend=True,
)
for ax in axes[:2]:
    ax.set_xlabel("")
plt.show()

# %% [markdown]
# Temporal masking hides whole time bins (vertical stripes, the same for every neuron), and every
# hidden entry is a target ({numref}`fig-02-temporal-mask`). The model must fill in the missing
# moments from the rest of the trial.
#
# ### The code: how `mask_batch` begins
#
# Every scheme lives in one function, `mtm.masking.mask_batch`. Below is its opening, rendered from the
# package itself (not a copy), after the docstring:

# %% tags=["remove-input"]
show_source(
    mask_batch,
    lines=source_span(mask_batch, "check_scheme(scheme)", "return torch.rand"),
)

# %% [markdown]
# Read it top to bottom. `check_scheme` refuses a name that is not a scheme, and the batch must be
# three-dimensional, (trials, bins, neurons). Counts stored as unsigned integers are widened to
# `int64`, because PyTorch cannot fill those types with zeros. `batch_shape` keeps the batch's
# (trials, bins, neurons): every mask is expanded to it. The `ratio` falls back on the scheme's
# entry of `DEFAULT_RATIO` and must be a probability. Then comes the one random ingredient of every
# scheme: the inner function `bernoulli(*shape)` draws an array of independent coin flips, each
# `True` with probability `ratio`, on the batch's own device and from the caller's `generator` (so a
# seed reproduces a mask, and nothing is copied to the host). The schemes differ only in the *shape*
# of the coin flips they draw and in how they spread them over the batch.
#
# ## 2. The seven training schemes
#
# | scheme | hidden (independent Bernoulli draws) | targets | ratio |
# |---|---|---|---|
# | `temporal` | whole bins, per (trial, bin) | the hidden entries | 0.3 |
# | `causal` | as temporal, and attention restricted to the past | the hidden entries | 0.3 alone, 0.6 in MtM |
# | `neuron` | whole neuron traces, per (trial, neuron) | the hidden entries | 0.3 |
# | `random` | single entries, per (trial, bin, neuron) | the hidden entries | 0.3 |
# | `random-token` | NDT2 tokens of 1 bin x 128 neurons, per (trial, bin, token) | the hidden entries | 0.3 |
# | `inter-region` | every neuron of one region (drawn uniformly among the batch's regions) | the hidden entries | – |
# | `intra-region` | every neuron of the other regions, and within the drawn region each neuron with the ratio | hidden entries of the drawn region | 0.3 |
#
# Each panel below is the mask of trial 0 of the same batch, neurons grouped by region (the probe
# goes from visual cortex through hippocampus to thalamus).

# %% mystnb={"figure": {"caption": "The mask of trial 0 of the same batch under each of the seven training schemes, each drawn with its own seed (white: visible; grey: hidden, not scored; red: target). Panel titles give each scheme's default ratio; inter-region has none.", "name": "fig-02-training-masks"}}
TRAINING = ("temporal", "causal", "neuron", "random", "random-token")
TRAINING += ("inter-region", "intra-region")
fig, axes = plt.subplots(
    3, 3, figsize=(7, 7.4), layout="constrained", sharex=True, sharey=True
)
for i, (ax, scheme) in enumerate(zip(axes.flat, TRAINING)):
    _, hidden, target = draw(scheme, seed=SEED + i)
    ratio = DEFAULT_RATIO.get(scheme)
    plot_mask(
        hidden[0].numpy(),
        target[0].numpy(),
        regions,
        ax=ax,
        title=scheme + (f" (ratio {ratio})" if ratio else ""),
    )
for ax in axes.flat:
    ax.set_xlabel("")
for ax in axes[:, 1:].flat:
    ax.set_ylabel("")
for ax in (axes[2, 0], axes[1, 1], axes[1, 2]):  # each column's lowest panel
    ax.xaxis.set_tick_params(labelbottom=True)
    ax.set_xlabel("time from stimulus onset (s)")
axes[-1, 1].axis("off")
axes[-1, 2].axis("off")
handles = [
    Patch(facecolor=color, edgecolor="0.4", label=label)
    for label, color in MASK_COLORS.items()
]
axes[-1, 1].legend(handles=handles, loc="center left", frameon=False)
plt.show()

# %% [markdown]
# Read the panels as questions:
#
# - **temporal**: vertical stripes. *Fill in missing moments from the population at the other
#   moments*, before and after: $p\big(y(t) \mid y(t'),\, t' \notin \mathcal{H}\big)$.
# - **causal**: more stripes (60 % of the bins) and the model may only look back: a hidden bin is
#   predicted from the visible bins before it (section 3).
# - **neuron**: horizontal stripes. *Predict a neuron's whole trace from the other neurons*:
#   $p\big(y_n(1..T) \mid y_{n'}(1..T),\, n' \notin \mathcal{H}\big)$. This is co-smoothing, the
#   benchmark of the Neural Latents Benchmark.
# - **random**: salt and pepper. Each hidden entry has visible neighbours in time and across neurons:
#   the easiest question, and the one that teaches the least about structure.
# - **random-token**: NDT2's baseline. Blocks of one bin by `PATCH_SIZE` neurons (one token each);
#   with a single patch per bin it is temporal masking.
# - **inter-region**: one whole region hidden. *Predict a region from the other regions*: what a
#   region shares with the rest of the brain.
# - **intra-region**: the other regions hidden (grey, not scored) and some neurons of the drawn region
#   hidden and scored (red). *Predict a region's neurons from its own other neurons*, with no help from
#   outside: what is private to the region.
#
# ### The code of the five schemes without regions
#
# Here are the branches of `mask_batch` that draw them:

# %% tags=["remove-input"]
show_source(
    mask_batch,
    lines=source_span(
        mask_batch, 'if scheme in ("temporal", "causal"):', "repeat_interleave"
    ),
)

# %% [markdown]
# Each branch draws coin flips of a smaller shape and stretches them over the batch with `expand`
# (a view: no copy). Temporal and causal masking draw one flip per (trial, bin), shape
# `(n_trials, n_bins, 1)`, and expand it over the neurons: a hidden bin is hidden for every neuron.
# The two schemes draw exactly alike; what makes `causal` causal is not the mask but the attention
# ({doc}`03_model`). Neuron masking flips one coin per (trial, neuron), `(n_trials, 1, n_neurons)`, and
# expands it over the bins: a hidden neuron is hidden for the whole trial. Random masking flips a coin
# for every entry. Random-token masking flips one coin per (trial, bin, patch), `n_patches` being the
# neurons divided by `patch_size` and rounded up, then repeats each flip `patch_size` times along the
# neuron axis (`repeat_interleave`) and cuts the last patch to the real number of neurons.
#
# ### The code of the two region schemes
#
# The region schemes need the region of every neuron, and end the function:

# %% tags=["remove-input"]
show_source(
    mask_batch,
    lines=source_span(
        mask_batch,
        "if regions is None:",
        "return spikes.masked_fill(hidden, 0), hidden",
    ),
)

# %% [markdown]
# The labels are turned into integer ids once (`RegionIndex.from_labels`, or a `RegionIndex` the
# training loop built for the session), checked to give one region per neuron, and refused when the
# session has fewer than two regions. Then `torch.randint` draws **one** region, `chosen`, uniformly
# among the session's regions, for the whole batch, and `inside` marks its neurons. Inter-region masking
# hides `inside` in every trial and bin. Intra-region masking hides everything *outside* (`~inside`),
# and inside the drawn region one coin per (trial, neuron); it is the one scheme that returns early,
# with targets `hidden & inside`: the hidden neurons of the drawn region only, never the hidden other
# regions. Every other scheme reaches the last line, which zeroes the hidden entries with
# `masked_fill` and returns `hidden` itself as the targets: for them every hidden entry is scored.
#
# The ratio is a probability, so the hidden fraction fluctuates from batch to batch. For the region
# schemes it also depends on which region is drawn: on average inter-region hides a fraction $1/R$ of
# the entries ($R$ regions, each drawn with probability $1/R$, and the region sizes add up to $N$),
# and intra-region scores a fraction $\rho / R$ and hides $1 - (1 - \rho)/R$ (ratio $\rho$). Measured
# over `N_MASKS` masks of the batch:

# %%
n_regions = len(session.region_names)
rho = DEFAULT_RATIO["intra-region"]
expected = {scheme: (DEFAULT_RATIO[scheme],) * 2 for scheme in TRAINING[:5]}
expected["inter-region"] = (1 / n_regions, 1 / n_regions)
expected["intra-region"] = (1 - (1 - rho) / n_regions, rho / n_regions)
rows = []
for scheme in TRAINING:
    masks = (draw(scheme, seed=i) for i in range(RUN.N_MASKS))
    fractions = np.array(
        [
            [h.float().mean().item(), t.float().mean().item()]
            for _, h, t in masks
        ]
    )
    rows.append(
        {
            "scheme": scheme,
            "hidden": fractions[:, 0].mean(),
            "hidden, expected": expected[scheme][0],
            "targets": fractions[:, 1].mean(),
            "targets, expected": expected[scheme][1],
            "targets, sd": fractions[:, 1].std(),
        }
    )
fractions_table = pd.DataFrame(rows).set_index("scheme")
fractions_table.round(3)

# %% tags=["remove-cell"]
spread = fractions_table["targets, sd"]
others = spread.drop("inter-region").max()
assert_direction(
    "inter-region masking spreads the most from batch to batch",
    spread["inter-region"],
    ">",
    others,
)
glue_number("sd_inter", spread["inter-region"], "{:.3f}")
glue_number("sd_intra", spread["intra-region"], "{:.3f}")
glue_number("sd_others", others, "{:.3f}")

# %% [markdown]
# The measured fractions sit near the expected ones. The last column, the standard deviation of the
# fraction of targets over masks, is worth a look: inter-region masking spreads the most from batch to
# batch ({glue:text}`sd_inter`, against at most {glue:text}`sd_others` for the other six schemes;
# intra-region {glue:text}`sd_intra`), because its number of targets is the size of the drawn region,
# and the regions differ in size. The loss is a *sum*
# over targets, as in the reference, so a batch that happens to hide a big region weighs more in the
# gradient than one that hides a small region.
#
# ## 3. Causal masking: the paper and the code
#
# The paper describes causal masking as "next time step prediction". The reference code does
# something a little different, and `mtm` follows the code: the causal scheme hides bins exactly like
# temporal masking (ratio 0.3 in a causal-only run, 0.6 inside MtM), **and** switches the transformer to causal attention, so the token
# of bin $t$ sees only bins $t' \le t$ (its own input is zero when it is hidden). A hidden bin is
# therefore predicted from the *visible bins before it*. `mtm.masking.is_causal` says which schemes
# switch attention:

# %%
print({scheme: is_causal(scheme) for scheme in SCHEMES})

# %% [markdown]
# How far back is the most recent visible bin for each causal target? The masks below are MtM's
# (`mask_batch`'s default for `causal`, $p = 0.6$). If bins are hidden independently with probability $p$, the gap $g$ (1 = the bin just before is visible, a true
# next-step prediction) follows a geometric law, $P(g = k) = (1 - p)\,p^{k - 1}$, and a target in the
# first bins of a trial may have no visible past at all.

# %% mystnb={"figure": {"caption": "Causal masking: for every target with a visible bin before it, the number of bins back to the most recent visible bin, over `N_MASKS` masks of the batch (red bars), and the geometric law for bins hidden independently with p = 0.6 (black). The title gives the share of targets with no visible bin before them.", "name": "fig-02-causal-gaps"}}
def gaps_over_masks(**ratio):
    """causal_gaps over N_MASKS causal masks of the batch: every target's
    gap, and the number of targets with no visible past."""
    gaps, no_past = [], 0
    for i in range(RUN.N_MASKS):
        hidden_bins = draw("causal", seed=i, **ratio)[1][:, :, 0]  # (B, T)
        found, none = causal_gaps(hidden_bins.numpy())
        gaps.append(found)
        no_past += none
    return np.concatenate(gaps), no_past


gaps, no_past = gaps_over_masks()
ax = plot_causal_gaps(gaps, DEFAULT_RATIO["causal"])
share = no_past / (no_past + len(gaps))
ax.set_title(f"{share:.1%} of the targets have no visible past")
plt.show()

# %% tags=["remove-cell"]
glue_number("no_past_percent", 100 * share, "{:.1f}")
glue_number("next_step_percent", 100 * np.mean(gaps == 1), "{:.0f}")
glue_number("law_next_percent", 100 * (1 - DEFAULT_RATIO["causal"]), "{:.0f}")

# %% [markdown]
# Only the first bar of {numref}`fig-02-causal-gaps` is "next step" prediction in the paper's sense.
# It holds {glue:text}`next_step_percent` % of the targets, near the {glue:text}`law_next_percent` % the
# geometric law predicts ($1 - p$), so most causal targets lie two or more bins (40 ms or
# more) beyond the last thing the model saw, and {glue:text}`no_past_percent` % of them (the title) have
# no visible bin before them at all. The scheme is thus a mixture of
# forecasting horizons, which is also what forward prediction asks for at evaluation (the last 10 bins
# at once, next section).
#
# The reference code also let the prepended session and prompt tokens see *every* bin in causal
# mode, future bins included; since every bin reads those tokens in the next layer, future activity
# leaked into the "causal" predictions during training. In `mtm` those tokens see no bin at all
# ({doc}`03_model` shows it with a perturbation).
#
# ## 4. The evaluation masks
#
# Evaluation uses fixed masks rather than random ones. **Co-smoothing** hides chosen neurons in
# every trial and bin and scores them (`heldout` = neuron indices, or a boolean mask per neuron or
# per trial and neuron). **Forward prediction** hides the last 10 bins (200 ms) of every neuron and
# scores them (`heldout` = bin indices; the default is the last 10 bins). In {doc}`05_evaluation` the evaluation
# holds out one neuron at a time for co-smoothing and one region at a time for the region tasks, with
# the matching prompt. (The paper writes "the last 10 %, 20 ms": a typo; the code holds out 200 ms.)

# %% mystnb={"figure": {"caption": "The two evaluation masks on trial 0. Left: co-smoothing, with a fixed set of neurons (about a fifth, chosen at random here) hidden in every bin; right: forward prediction, with the last 10 bins of every neuron hidden. Red: targets; white: visible.", "name": "fig-02-evaluation-masks"}}
rng = np.random.default_rng(SEED)
heldout = rng.choice(
    session.n_neurons, size=session.n_neurons // 5 + 1, replace=False
)
fig, axes = plt.subplots(
    1, 2, figsize=(7, 3.2), layout="constrained", sharey=True
)
evaluation = [("co-smooth", dict(heldout=heldout)), ("forward-pred", {})]
for ax, (scheme, kwargs) in zip(axes, evaluation):
    _, hidden, target = draw(scheme, **kwargs)
    plot_mask(
        hidden[0].numpy(), target[0].numpy(), regions, ax=ax, title=scheme
    )
axes[1].set_ylabel("")
plt.show()

# %% [markdown]
# In `mask_batch` the two evaluation masks are branches like the others, with no coin flips:

# %% tags=["remove-input"]
show_source(
    mask_batch,
    lines=source_span(
        mask_batch,
        'elif scheme == "co-smooth":',
        "hidden = held.view(1, n_bins, 1)",
    ),
)

# %% [markdown]
# `_heldout_mask` turns `heldout` (indices or booleans) into a boolean mask of the neurons (or of the
# bins). For co-smoothing, one row of neurons serves every trial, or one row per trial, and it is
# expanded over the bins; forward prediction needs more bins than it hides, defaults to the last
# `FORWARD_PRED_BINS` bins and expands them over the trials and neurons. Co-smoothing is thus the
# neuron scheme with the held-out neurons fixed ({numref}`fig-02-evaluation-masks`); forward prediction
# is the causal scheme with the hidden bins fixed at the end of the trial. Each evaluation task thus has a training
# scheme that asks the same question, and MtM trains on all of them.
#
# ## 5. Prompts and the MtM mixture
#
# MtM trains one model on four schemes at once. For every batch it draws one scheme uniformly and
# prepends to the sequence the learned **prompt token** of that scheme, so the model knows which
# question it is being asked (paper eq. 1):
#
# $$\begin{aligned}
# \mathcal{M} &\sim \mathcal{U}\{\text{neuron}, \text{causal}, \text{intra-region},
#   \text{inter-region}\}, \\
# \log\hat\lambda &= f_\theta\big([P_{\mathcal{M}},\ \mathrm{Tokens}(M \odot Y)]\big).
# \end{aligned}$$
#
# At evaluation each task gets the prompt of the scheme that asks its question. Temporal masking has
# no prompt: it is the baseline, trained alone.

# %%
print("prompt ids:", PROMPT_IDS)
print("evaluation task -> prompt:", TASK_PROMPT)
print("masking ratios:", DEFAULT_RATIO)

# %% [markdown]
# `mtm.masking.MtMSampler` draws the scheme and its prompt id of each batch (on the host, with its own
# seed, so it never touches the GPU). Its whole drawing method:

# %% tags=["remove-input"]
show_source(MtMSampler.sample)

# %% [markdown]
# It first refuses a session with fewer than two regions when the mixture holds a region scheme, then
# picks one of its `schemes` with `randrange` (each with the same probability) and returns it with its
# prompt id from `PROMPT_IDS`. Over many draws each scheme should come up a quarter of the time
# ({numref}`fig-02-mtm-sampler`):

# %% mystnb={"figure": {"caption": "Fraction of the `N_DRAWS` draws of `MtMSampler` that fell on each of the four schemes of the MtM mixture. Black line: 1/4; grey band: 1/4 plus or minus two binomial standard deviations.", "name": "fig-02-mtm-sampler"}}
sampler = MtMSampler(seed=SEED)
draws = [sampler.sample(n_regions) for _ in range(RUN.N_DRAWS)]
print("first draws:", [scheme for scheme, _ in draws[:8]])
counts = Counter(scheme for scheme, _ in draws)
frequency = np.array([counts[s] / RUN.N_DRAWS for s in MTM_SCHEMES])
band = 2 * np.sqrt(0.25 * 0.75 / RUN.N_DRAWS)
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.bar(MTM_SCHEMES, frequency, color="tab:blue", alpha=0.8)
ax.axhspan(
    0.25 - band,
    0.25 + band,
    color="grey",
    alpha=0.25,
    label="1/4 $\\pm$ 2 binomial s.d.",
)
ax.axhline(0.25, color="black", lw=0.8)
ax.set_ylabel("fraction of batches")
ax.set_title(f"{RUN.N_DRAWS} draws of MtMSampler")
ax.set_ylim(0, 0.4)
ax.legend(frameon=False, loc="upper right")
plt.show()

# %% tags=["remove-cell"]
in_band = np.abs(frequency - 0.25) <= band
glue_number("bars_in_band", in_band.sum(), "{:.0f}")

# %% [markdown]
# Each bar should fall within the grey band about 95 % of the time; here {glue:text}`bars_in_band`
# of the four bars do. The mixture is uniform, and with the tens of thousands of batches of a
# paper-size run every scheme gets its share. Two details follow the reference code: each scheme
# keeps its own ratio inside MtM (0.3, and 0.6 for causal; MtM cannot change them), while a
# single-scheme run masks at 0.3, causal included, or at `TrainConfig(mask_ratio=...)`
# (`mtm.masking.training_ratio`), and "MtM not prompted" is the same mixture without the prompt
# token (`TrainConfig(prompted=False)`). The region schemes need at least
# two regions, and the sampler refuses a session that has only one:

# %%
try:
    sampler.sample(n_regions=1)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 6. Regions come from each batch's own session
#
# In a multi-session run, consecutive batches come from different sessions, with different neurons
# and often different regions: a probe may miss a structure, or cross one the others do not. Until
# November 2024 (after the paper), the reference masker stored the region names of the **first
# batch** it saw and drew from that frozen list for the rest of training. Take session A, with the
# five regions, and a session B whose probe missed visual cortex and CA1:

# %%
other = synthetic_session(SEED + 1, RUN.N_TRIALS, RUN.N_NEURONS)
keep = np.isin(other.regions, ["DG", "LP", "PO"])
session_b = Session(
    eid="probe-without-cortex",
    spikes=other.spikes[..., keep],
    regions=other.regions[keep],
)
batch_b = torch.as_tensor(
    session_b.spikes[session_b.splits["train"][:BATCH_SIZE]]
)
frozen = list(session.region_names)  # the reference: the first batch's regions
print("frozen list (session A):", frozen)
print(
    "neurons of session B in each frozen region:",
    {r: int(np.sum(session_b.regions == r)) for r in frozen},
)

# %% [markdown]
# With the frozen list, two draws out of five name a region with no neuron in session B: the
# inter-region mask then hides nothing and scores nothing (the batch teaches nothing), and the
# intra-region mask hides the whole session and scores nothing. `mtm` never keeps a region list: the
# training loop passes each batch's own session regions to `mask_batch` (converted once per session
# to integer ids, `mtm.masking.RegionIndex`), so a draw always names a region of that session:

# %%
chosen = Counter()
empty = 0
for i in range(RUN.N_MASKS):
    _, hidden_b, target_b = draw(
        "inter-region", batch_b, session_b.regions, seed=i
    )
    names = {str(r) for r in session_b.regions[hidden_b[0, 0].numpy()]}
    chosen.update(names)
    empty += int(target_b.sum() == 0)
print(
    f"session B, {RUN.N_MASKS} inter-region masks: {empty} without any target"
)
print("regions drawn:", dict(chosen))

# %% [markdown]
# No mask is empty, and only B's own regions are drawn. (Single-session runs never hit the bug, which
# is why the paper's single-session results are unaffected; its multi-session runs predate the fix.)
#
# ## 7. A batch of real IBL spikes
#
# Nothing above is specific to synthetic data. The package installs a short real recording
# (`mtm.data.real_data_dir()`, IBL's own test fixture; on Colab too), so we load a real IBL
# Neuropixels recording through ONE, from a local ALF cache exactly as in {doc}`01_data`, and draw
# the region masks on its first trial. Its two probes are merged, so the region bands repeat (probe
# 00, then probe 01), and it includes `root`: channels outside the atlas's brain regions, which the
# reference treats as one more region ({doc}`01_data` explains both).

# %%
from mtm.data import real_data_dir

ibl = None
if real_data_dir() is not None:
    from one.api import One

    from mtm.data import load_ibl_session
    from mtm.data.alf import build_one_cache, real_fixture_alf

    cache = Path(tempfile.mkdtemp(prefix="alf_"))
    folder = real_fixture_alf(cache)
    eids = build_one_cache(cache)
    one = One(cache_dir=cache, mode="local")
    ibl = load_ibl_session(eids[folder.resolve()], one=one)
    ibl_batch = torch.as_tensor(ibl.spikes[ibl.splits["train"][:BATCH_SIZE]])
    print(ibl)

# %% mystnb={"figure": {"caption": "A batch of real IBL spikes (the offline ALF fixture of chapter 1). Left: the counts of trial 0 (darker: more spikes); middle and right: the inter-region and intra-region masks drawn on it (white: visible; grey: hidden, not scored; red: target). Neurons grouped by region label, probe 00 first, then probe 01; time from stimulus onset (dashed line: onset).", "name": "fig-02-ibl-masks"}}
if ibl is not None:
    fig, axes = plt.subplots(
        1, 3, figsize=(7, 3.6), layout="constrained", sharey=True
    )
    plot_raster(
        ibl_batch[0].numpy(),
        ibl.regions,
        ax=axes[0],
        title=f"IBL {ibl.eid[:8]}, trial 0",
        colorbar=None,  # darker: more spikes (the caption)
    )
    axes[0].set_xlabel("time (s)")
    drawn = {}
    for ax, scheme in zip(axes[1:], ("inter-region", "intra-region")):
        _, hidden, target = draw(scheme, ibl_batch, ibl.regions, seed=SEED + 1)
        scored = target.any(dim=0).any(dim=0).numpy()  # neurons with targets
        drawn[scheme] = sorted({str(r) for r in ibl.regions[scored]})
        plot_mask(
            hidden[0].numpy(),
            target[0].numpy(),
            ibl.regions,
            ax=ax,
            title=scheme,
        )
        ax.set_ylabel("")
        ax.set_xlabel("time (s)")
    plt.show()
    print("region drawn by each mask:", drawn)
else:
    print(
        "The real recordings are not on this machine (MTM_REAL_DATA); "
        "the synthetic batches above show the same masks."
    )

# %% [markdown]
# With merged probes, one region is spread over two bands of the neuron axis, and the region schemes
# treat it as one: masking follows the labels, not the positions. Above, each mask drew the region
# printed under the figure, and both of its bands, one per probe, are masked.
#
# ## Summary
#
# - A masking scheme hides entries of a batch (sets them to zero) and names the targets; the Poisson
#   loss is summed over the targets only. `mask_batch` returns both.
# - Temporal = fill in missing moments; neuron = predict a neuron from the others (co-smoothing);
#   causal = predict hidden bins from the past only (temporal masking with causal attention, as in
#   the code, rather than the paper's "next step"); intra-region = predict a region's neurons from its own
#   other neurons; inter-region = predict a whole region from the other regions.
# - Co-smoothing and forward prediction are the neuron and causal questions with fixed held-out sets.
# - MtM draws one of neuron, causal, intra-region and inter-region per batch, uniformly, and prepends
#   its prompt token; ratios are 0.3, and 0.6 for causal (a causal-only run masks at 0.3).
# - Regions are always those of the batch's own session, never a list frozen at the first batch.
#
# ## Exercises
#
# **Exercise 1.** Draw the intra-region mask for ten seeds and note which region is drawn each time.
# How many targets does a draw have when the drawn region is the smallest one?
#
# :::{admonition} Hint
# :class: dropdown
# Use the chapter's `draw("intra-region", seed=...)`. The neurons outside the drawn region are
# hidden in every trial and bin, so the drawn region is the one whose neurons are visible in some
# trial or are targets. `session.region_counts()` gives the region sizes. In `mask_batch`, what
# does one Bernoulli draw hide: one entry, or one neuron for a whole trial?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# In `mask_batch` the intra-region scheme draws one region uniformly (`torch.randint` over the
# session's regions), then hides each of its neurons for a whole trial with probability $\rho$
# (`bernoulli(n_trials, 1, n_neurons)`). A draw therefore has $T$ targets for every hidden
# (trial, neuron) pair of the drawn region: on average $\rho\, B\, T\, n_r$ for a region of $n_r$
# neurons. The smallest region gives the fewest targets, and since the loss is a sum over targets
# it also gives the smallest loss and gradient; its count also varies the most relative to its
# mean, because it comes from only $B\, n_r$ coin flips. Each seed picks a given region with
# probability $1/R$, so ten seeds can miss the smallest one; if so, try more seeds.
# :::

# %% tags=["hide-input"]
n_trials, n_bins = batch.shape[:2]
sizes = session.region_counts()
for seed in range(10):
    _, hidden, target = draw("intra-region", seed=seed)
    in_drawn = ~hidden.numpy().all(axis=(0, 1)) | target.numpy().any(
        axis=(0, 1)
    )
    region = str(regions[in_drawn][0])
    expected = (
        DEFAULT_RATIO["intra-region"] * n_trials * n_bins * sizes[region]
    )
    print(
        f"seed {seed}: {region:>4} ({sizes[region]} neurons), "
        f"{int(target.sum())} targets, {expected:.0f} expected"
    )
print("smallest region:", min(sizes, key=sizes.get))

# %% [markdown]
# **Exercise 2.** `mask_batch(batch, "temporal", ratio=0.1)`: how does the hidden fraction change,
# and what would you expect to happen to forward prediction if a model were trained this way (paper
# Table 7)?
#
# :::{admonition} Hint
# :class: dropdown
# The ratio is the probability that a bin of a trial is hidden. Besides the hidden fraction, look
# at how often a hidden bin has visible bins on both sides, and compare with what forward
# prediction hides (section 4).
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The hidden fraction follows the ratio: about a tenth of the entries instead of about three
# tenths. The gaps change too: a hidden bin has both neighbours visible with probability
# $(1 - p)^2$, so at `ratio=0.1` most hidden bins sit between two visible ones, and two hidden bins in
# a row are rare. A model trained this way learns mostly to interpolate between neighbouring bins.
# Forward prediction hides the last 10 bins (200 ms) at once, with nothing after them: it asks the
# model to carry activity forward over many bins, which this training rarely demands, so expect it
# to do worse on that task. The paper's Table 7 (preprint; temporal masking, NDT1, one session)
# agrees: forward prediction 0.73 bits per spike at ratio 0.1 against 0.88 at 0.3 and at 0.6. To
# test it here, train the temporal baseline with `TrainConfig(masking="temporal", mask_ratio=0.1)`
# ({doc}`04_training`) and evaluate it as in {doc}`05_evaluation`.
# :::

# %% tags=["hide-input"]
for ratio in (0.1, 0.3):
    bins = np.stack(
        [
            draw("temporal", seed=i, ratio=ratio)[1][:, :, 0].numpy()
            for i in range(RUN.N_MASKS)
        ]
    )  # (masks, trials, bins): hidden bins
    inner = bins[..., 1:-1]
    flanked = (
        inner & ~bins[..., :-2] & ~bins[..., 2:]
    )  # both neighbours visible
    print(
        f"ratio {ratio}: hidden fraction {bins.mean():.3f}, "
        "hidden bins with both neighbours visible "
        f"{flanked.sum() / inner.sum():.2f}"
    )

# %% [markdown]
# **Exercise 3.** With `PATCH_SIZE` equal to the number of neurons, compare random-token masking
# with temporal masking. Why are they the same question?
#
# :::{admonition} Hint
# :class: dropdown
# `draw` passes `patch_size` on to `mask_batch`. Draw both schemes with the same seed and compare the
# hidden entries with `torch.equal`. How many patches does a bin have then?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# Both lines print `True`. With `patch_size` equal to $N$, `mask_batch` makes
# `math.ceil(N / patch_size)` = 1 patch per bin, draws a (trials, bins, 1) Bernoulli array and
# repeats it over the neurons: exactly the draw of temporal masking, with the same default ratio
# (0.3) and, from the same seed, the same random numbers. One token then covers the whole population
# in one bin, so hiding a token hides a moment of the recording, and the question is the temporal
# one: fill in the missing moments from the others. Random-token masking differs from temporal
# masking only when a bin is cut into several patches, and part of the population stays visible.
# :::

# %% tags=["hide-input"]
_, hidden_token, target_token = draw(
    "random-token", patch_size=session.n_neurons
)
_, hidden_temporal, target_temporal = draw("temporal")
print(
    torch.equal(hidden_token, hidden_temporal),
    torch.equal(target_token, target_temporal),
)

# %% [markdown]
# **Exercise 4.** Repeat the causal-gap histogram with `ratio=0.3`. Which fraction of the targets
# is now a true next-step prediction?
#
# :::{admonition} Hint
# :class: dropdown
# Call section 3's `gaps_over_masks` with `ratio=0.3` and draw the result with
# `plot_causal_gaps` for $p = 0.3$. The first bar is the probability that the bin just before a hidden bin is visible.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# Bins are hidden independently, so the bin just before a target is visible with probability
# $1 - p$: the geometric law puts seven targets in ten at gap 1 for $p = 0.3$, against four in ten
# for $p = 0.6$. The measured first bar (printed by the folded cell) should come close to it
# (slightly above, because targets without any visible past are left out of the histogram), and
# fewer targets than at $p = 0.6$ should have no visible past at all. Even so, by the same law three
# targets in ten lie two or more bins ahead.
# This is the ratio of the single-scheme causal run: `training_ratio("causal", "causal")` in
# `mtm.masking` gives 0.3, and only the MtM mixture uses 0.6.
# :::

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Solution of exercise 4: as the causal-gap figure of section 3, with bins hidden at ratio 0.3 (red bars) and the geometric law for p = 0.3 (black).", "name": "fig-02-exercise-causal-gaps"}}
p = 0.3
gaps, no_past = gaps_over_masks(ratio=p)
print(
    f"next-step targets: {np.mean(gaps == 1):.1%}, geometric law {1 - p:.0%}; "
    f"no visible past: {no_past / (no_past + len(gaps)):.1%}"
)
plot_causal_gaps(gaps, p)
plt.show()

# %% [markdown]
# **Exercise 5.** Build a session whose neurons all belong to one region and try
# `mask_batch(..., "inter-region", ...)`. Why can MtM not train on such a session?
#
# :::{admonition} Hint
# :class: dropdown
# Keep the neurons of one region of `session` (for example `regions == "LP"`) in a new `Session`, as
# section 6 does for session B. What would the inter-region scheme hide if it were allowed to run,
# and what would the intra-region scheme hide outside the drawn region?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# Both region schemes refuse the batch: `mask_batch` builds the session's `RegionIndex`, finds a
# single region and raises `ValueError` before drawing anything. The questions make no sense with
# one region: inter-region would hide every neuron, so the model would have to predict the whole
# recording from zeros, and intra-region would have no other region to hide, so it would reduce to
# neuron masking. MtM draws a region scheme for half of its batches, so `MtMSampler.sample` refuses
# a session with fewer than two regions, and the training loop refuses such a session before the
# first epoch (`Trainer._check_sessions` in `mtm.train`, for MtM and for the two region schemes).
# Temporal, neuron and causal masking still work on it.
# :::

# %% tags=["hide-input"]
lp = regions == "LP"
lp_only = Session(
    eid="lp-only", spikes=session.spikes[..., lp], regions=regions[lp]
)
lp_batch = torch.as_tensor(
    lp_only.spikes[lp_only.splits["train"][:BATCH_SIZE]]
)
for scheme in ("inter-region", "intra-region"):
    try:
        mask_batch(lp_batch, scheme, lp_only.regions)
    except ValueError as err:
        print("ValueError:", err)
try:
    MtMSampler(seed=SEED).sample(n_regions=len(lp_only.region_names))
except ValueError as err:
    print("ValueError:", err)

# %% tags=["remove-input"]
print(RUN.done())

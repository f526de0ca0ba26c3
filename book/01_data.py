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
# # Data: sessions, synthetic recordings and IBL through ONE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/01_data.ipynb)
#
# **What you will learn**
#
# - what a `Session` is: the one data type every other chapter consumes;
# - how the synthetic sessions that this book uses by default are generated, and why they come
#   with the *ground truth*;
# - the two yardsticks of every evaluation task: the latent oracle and the Bayes reference;
# - what the IBL repeated-site recordings {cite:p}`ibl2022repro` look like: rasters and PSTHs by region, behaviour;
# - how a real IBL session is loaded through ONE, live on Colab or from a local cache.
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
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from mtm.bayes import bayes_results
from mtm.book import assert_direction, chapter_settings, glue_number
from mtm.data import Session, synthetic_session
from mtm.oracle import LATENT_ORACLE, TRUE_RATES, knob_sweep, oracle_results
from mtm.plots import (
    plot_oracle_sweep,
    plot_psth,
    plot_psychometric,
    plot_raster,
    use_style,
)

use_style()

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1,
# else gpu or book
SETTINGS = "auto"
# OVERRIDES: the settings' values to replace, e.g. {"SWEEP_POINTS": 2}; the
# values are in mtm.book.CHAPTER_SETTINGS (N_TRIALS, N_NEURONS, SWEEP_TRIALS,
# SWEEP_NEURONS, SWEEP_POINTS)
OVERRIDES = {}
SEED = 0  # which synthetic session
LOW_RATE_HZ = 0.5  # a neuron below this mean rate counts as nearly silent
LIVE_IBL = False  # True on Colab: download a real IBL session through ONE
# the paper's first held-out session
IBL_EID = "5dcee0eb-b34d-4652-acc3-d10afc6eae68"

# %%
RUN = chapter_settings("01_data", SETTINGS, **OVERRIDES)

# %% [markdown]
# ## 1. A session is a trial-aligned, binned recording
#
# MtM works on spike counts cut into trials. In the IBL recordings that the paper uses, every trial
# is aligned to the onset of the visual stimulus and covers $[-0.5, 1.5)$ s in 20 ms bins: 100 bins.
# One recording session becomes an array of counts of shape *(trials, bins, neurons)*, plus a brain
# region for every neuron. `mtm.data.Session` holds exactly that, validated:

# %%
rng = np.random.default_rng(0)
tiny = Session(
    eid="tiny",
    spikes=rng.poisson(0.1, (10, 100, 4)),
    regions=["CA1", "CA1", "LP", "LP"],
)
tiny

# %% [markdown]
# The trials are split at random into train / validation / test (70 / 10 / 20 %), as the
# reference code does. Anything malformed is refused with a message that names the problem:

# %%
try:
    Session(eid="broken", spikes=-np.ones((10, 100, 4)), regions=["CA1"] * 4)
except ValueError as err:
    print("ValueError:", err)
print({name: idx.tolist() for name, idx in tiny.splits.items()})

# %% [markdown]
# ## 2. Synthetic sessions with ground truth
#
# Real IBL data need a network connection and gigabytes of downloads. This book therefore uses, by
# default, synthetic sessions that look like the IBL repeated-site recordings: the same five regions
# (secondary visual cortex VISa, hippocampus CA1 and DG, thalamus LP and PO), in the order a probe
# crosses them, with heavy-tailed firing rates and the IBL task. Unlike real data they come with the
# **true firing rate** of every neuron in every bin and everything that generated it, so later
# chapters can say how close a model comes to the best prediction each task allows.

# %%
session = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
print(session)
rate_hz = session.spikes.mean(axis=(0, 1)) / session.bin_size
print(
    f"mean rate {rate_hz.mean():.1f} Hz, median {np.median(rate_hz):.1f} Hz, "
    f"{np.mean(rate_hz < LOW_RATE_HZ):.0%} of neurons below {LOW_RATE_HZ} Hz"
)

# %% tags=["remove-cell"]
glue_number("rate_mean", rate_hz.mean(), "{:.1f}")
glue_number("rate_median", np.median(rate_hz), "{:.1f}")
glue_number("low_rate_hz", LOW_RATE_HZ, "{:.1f}")
glue_number("low_rate_share", 100 * np.mean(rate_hz < LOW_RATE_HZ), "{:.0f}")
assert_direction(
    "most neurons fire a few spikes per second: "
    "the mean rate above the median (a heavy tail)",
    rate_hz.mean(),
    ">",
    np.median(rate_hz),
)

# %% [markdown]
# One trial as a raster: time runs left to right, neurons bottom to top, grouped by region. The
# dashed line is the stimulus onset.

# %% mystnb={"figure": {"caption": "Trial 0 of the synthetic session. Top: spike counts per 20 ms bin; bottom: the true rate, the expected count per bin. Time from stimulus onset on the x axis (dashed line: onset), neurons grouped by region on the y axis.", "name": "fig-01-raster"}}
fig, axes = plt.subplots(
    2, 1, figsize=(7, 6), layout="constrained", sharex=True
)
plot_raster(
    session.spikes[0],
    session.regions,
    ax=axes[0],
    title="spike counts, trial 0",
)
plot_raster(
    session.rates[0],
    session.regions,
    ax=axes[1],
    title="true rate (expected counts per bin), trial 0",
)
axes[0].set_xlabel("")
plt.show()

# %% [markdown]
# Averaging over trials gives each region's peri-stimulus time histogram (PSTH). In this session the
# regions differ more in their baseline rates than in their responses ({numref}`fig-01-psth-regions`).
# The regions' responses differ in shape: the peak times printed below the figure (of each region's
# mean true rate after onset) show VISa and PO peaking {glue:text}`peak_visa` s and
# {glue:text}`peak_po` s after onset, LP climbing later, and the hippocampal regions, CA1 and DG,
# staying nearly flat. Most of this modulation comes while the wheel turns (section 4), not right
# after the stimulus.

# %% mystnb={"figure": {"caption": "Peri-stimulus time histogram of each region: the firing rate averaged over trials and over the region's neurons, smoothed with a Gaussian of 1.5 bins. Dashed line: stimulus onset.", "name": "fig-01-psth-regions"}}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for region in session.region_names:
    in_region = session.regions == region
    plot_psth(session.spikes[..., in_region], ax=ax, label=region, smooth=1.5)
fig.legend(frameon=False, ncol=5, fontsize=8, loc="outside lower center")
ax.set_title("PSTH by region")
plt.show()
t = session.bin_times()
after_onset = t >= 0
peaks = {}
for region in session.region_names:
    psth = session.rates[..., session.regions == region].mean(
        axis=(0, 2)
    )  # the true rates: no noise
    peaks[region] = t[after_onset][np.argmax(psth[after_onset])]
print(
    "peak of each region's PSTH after onset (s):",
    {r: round(float(v), 2) for r, v in peaks.items()},
)
glue_number("peak_visa", peaks["VISa"])
glue_number("peak_po", peaks["PO"])

# %% [markdown]
# Firing rates are heavy-tailed across neurons, as in cortex, hippocampus and thalamus: most neurons
# fire a few spikes per second, a few fire tens, and some barely fire at all ({numref}`fig-01-rate-histogram`;
# printed above: mean {glue:text}`rate_mean` Hz, median {glue:text}`rate_median` Hz,
# {glue:text}`low_rate_share` % of the neurons below {glue:text}`low_rate_hz` Hz).

# %% mystnb={"figure": {"caption": "Distribution of the neurons' mean firing rates over all trials and bins of the session, in log-spaced bins on a log axis.", "name": "fig-01-rate-histogram"}}
fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.hist(rate_hz, bins=np.logspace(-2, 2, 30), color="grey")
ax.set_xscale("log")
ax.set_xlabel("mean firing rate (Hz)")
ax.set_ylabel("neurons")
plt.show()

# %% [markdown]
# ## 3. The generative model
#
# Underneath every session there are latent dynamics per region, coupled across regions:
#
# $$x_r(t) = A_r x_r(t-1) + \kappa \sum_{r' \ne r} G_{rr'} C_{rr'} x_{r'}(t-1) + B_r u(t) + \sigma \epsilon_r(t)$$
#
# with damped rotations $A_r$, an anatomical coupling graph $G$ (VISa-LP-PO, CA1-DG), task and
# movement inputs $u(t)$ and noise $\epsilon_r$ private to each region. A neuron's log-rate reads
# out its own region's latents, plus a slow fluctuation private to the neuron:
#
# $$\begin{aligned}
# \log \lambda_n(t) &= \log(\Delta \rho_n) + g_n w_n^\top x_{r(n)}(t)
#   + s_n \textstyle\sum_j c_{nj} b_j(t) - \text{(mean correction)}, \\
# y_n(t) &\sim \text{Poisson}(\lambda_n(t)).
# \end{aligned}$$
#
# So a region is **partly predictable from the other regions** (coupling, shared inputs): that is what
# the *inter-region* task measures. It is also **partly private** (its own noise), which only its own
# neurons reveal: the *intra-region* task. And each neuron keeps a part nobody else explains. The
# dynamics $A, C, G, B$ are shared by every session of one "world"; neurons, loadings and rates are
# new in every session, which is why pretraining on many sessions can help a new one
# ({doc}`07_multisession`).
# The full model, with every constant, is in the docstring of `mtm.data.synthetic`.

# %%
sessions = [
    synthetic_session(seed, RUN.N_TRIALS, RUN.N_NEURONS) for seed in range(3)
]
for s in sessions:
    print(s.eid, s.n_neurons, "neurons:", s.region_counts())

# %% [markdown]
# ### What the ground truth allows: two yardsticks for every task
#
# Because a synthetic session keeps everything that generated it (`session.truth`: the latents of
# every region, the task inputs and each neuron's parameters), we can score, for every evaluation
# task of {doc}`05_evaluation`, two predictors that know the generative model and serve as yardsticks
# for the models of later chapters:
#
# - the **latent oracle** (`mtm.oracle`, "upper bound: given the true latents") sees, as exact latent
#   states, what the task leaves visible, and predicts the expected count. No model sees latents, only
#   spikes, so no model can beat it (except by the sampling noise of a finite test split): it is an
#   upper bound, and a loose one where the spikes say little about the latents.
# - the **Bayes reference** (`mtm.bayes`, "Bayes given the visible spikes") sees exactly the spikes the
#   task leaves visible, as a model does, and predicts each hidden count by its expectation under the
#   posterior of the latents given those spikes (a Laplace approximation, with the generative
#   parameters known). It uses nothing a model lacks except those parameters, so a model could in
#   principle match it: later chapters give each model's share of it.
#
# Hiding a neuron hides its private fluctuation; hiding a region leaves only what the coupling and
# the shared task inputs say about it. So even the latent oracle of co-smoothing falls short of the
# true rates, which no predictor reaches.
#
# Each knob of the generator moves the tasks' yardsticks differently. Below, one session regenerated
# with one knob changed at a time: the private amplitude $s_n$ (every neuron the same), the coupling
# $\kappa$ between regions, and the latent noise $\sigma$ (the dotted line marks the default), with
# the true rates' score for comparison.

# %% mystnb={"figure": {"caption": "Yardsticks of each evaluation task (bits per spike on the test split) as one knob of the generator changes, one session per value: the latent oracle (solid, filled circles) and the Bayes reference given the visible spikes (dashed, open squares), one colour per task. Left: the private amplitude $s_n$, the same for every neuron; middle: the coupling between regions; right: the latent noise. Co-smoothing and intra-region share one latent oracle, drawn as one line. Black dash-dotted line: the true rates; dotted grey line: the generator's default value.", "name": "fig-01-oracle-sweep"}}
KNOB_VALUES = {
    "private_gain": (0.0, 0.3, 0.6, 0.9),
    "coupling": (0.0, 0.12, 0.3),
    "noise": (0.15, 0.35, 0.7),
}
BAYES = "Bayes"
references = {LATENT_ORACLE: oracle_results, BAYES: bayes_results}
sweeps = {
    knob: knob_sweep(
        knob,
        values[: RUN.SWEEP_POINTS],
        seed=SEED,
        n_trials=RUN.SWEEP_TRIALS,
        n_neurons=RUN.SWEEP_NEURONS,
        references=references,
    )
    for knob, values in KNOB_VALUES.items()
}
plot_oracle_sweep(
    sweeps, defaults={"private_gain": 0.6, "coupling": 0.12, "noise": 0.35}
)
plt.show()

# %% tags=["remove-cell"]
# The sentences below state structural facts of the two yardsticks:
# check them on these outputs.
points = [scores for sweep in sweeps.values() for scores in sweep.values()]
for scores in points:
    for task, oracle in scores[LATENT_ORACLE].items():
        assert_direction(
            f"the latent oracle is above the Bayes reference ({task})",
            oracle,
            ">=",
            scores[BAYES][task],
        )
    assert_direction(
        "the true rates are above the co-smoothing oracle",
        scores[TRUE_RATES],
        ">=",
        scores[LATENT_ORACLE]["co-smooth"] - 1e-3,
    )
without_private = sweeps["private_gain"][0.0]
assert_direction(
    "without private fluctuations the co-smoothing oracle equals "
    "the true rates",
    abs(
        without_private[LATENT_ORACLE]["co-smooth"]
        - without_private[TRUE_RATES]
    ),
    "<",
    1e-3,
)
gap = [s[LATENT_ORACLE]["co-smooth"] - s[BAYES]["co-smooth"] for s in points]
glue_number("gap_low", min(gap))
glue_number("gap_high", max(gap))

# %% [markdown]
# Co-smoothing and intra-region give the latent oracle the same information, the latents of the
# neuron's own region, so they share one oracle, drawn as one line ("Co-smooth = Intra-region").
# Without private fluctuations (amplitude 0) this oracle equals the true rates (dash-dotted, scored
# over every bin): the region's latents then say everything about a neuron. As the amplitude grows
# the true rates climb away from that oracle, and the gap is what no model can predict of a neuron
# from the others. The forward-prediction oracle knows each neuron's smooth fluctuation from the
# neuron's own past, so it moves with the amplitude differently. Inter-region prediction depends on
# how much of a region the *other* regions explain, so its oracle follows the coupling.
# (The default private amplitude is drawn per neuron between 0.3 and 0.9, `PRIVATE_GAIN` in
# `mtm.data.synthetic`; the sweep fixes it.)
#
# The Bayes reference (dashed) lies below the latent oracle at every point: it must infer the
# latents from sparse spikes rather than read them. On co-smoothing the gap between the two ranges from
# {glue:text}`gap_low` to {glue:text}`gap_high` bits per spike over the sweep. That gap is not a
# failure of any model: it is what the spikes of a session this size cannot tell about the latents.
# So the Bayes reference, not the latent oracle, says how close a model comes to what is reachable.

# %% [markdown]
# ## 4. Behaviour
#
# The mouse turns a wheel to bring a grating to the centre of the screen. The grating appears left or
# right with a contrast between 0 and 100 %. After an opening block in which both sides are equally
# likely ($P(\text{left}) = 0.5$), the blocks alternate between left stimuli more likely (0.8) and
# less likely (0.2). Choices follow a psychometric curve that the block prior shifts: below, the
# curve of the 0.2 blocks lies above that of the 0.8 blocks at every contrast except 100 % left or
# right, where the two meet or cross, and the curve of the opening block, from fewer trials, is
# noisier ({numref}`fig-01-behaviour`). The wheel turns mostly between {glue:text}`wheel_from` and
# {glue:text}`wheel_to` s after onset (where its mean speed is above half its peak). Every session holds per-trial variables (`choice`, `block`, `reward`, `contrast`,
# `stim_side`, `reaction_time`) and per-bin traces (`wheel_speed`, `whisker_me`, a whisker-pad motion
# energy like the one IBL measures with its cameras).

# %% mystnb={"figure": {"caption": "Behaviour of the synthetic session. Left: psychometric curves, the fraction of rightward choices against the signed contrast, one curve per block prior P(left). Right: wheel speed and whisker motion energy averaged over trials, against time from stimulus onset (dashed line); the title gives the median reaction time.", "name": "fig-01-behaviour"}}
b = session.behavior
fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), layout="constrained")
plot_psychometric(b["choice"], b["contrast"], b["block"], ax=axes[0])
t = session.bin_times()
axes[1].plot(t, b["wheel_speed"].mean(axis=0), label="wheel speed (rad/s)")
axes[1].plot(
    t, b["whisker_me"].mean(axis=0), label="whisker motion energy (a.u.)"
)
axes[1].axvline(0, color="grey", ls="--", lw=0.8)
axes[1].set_xlabel("time from stimulus onset (s)")
axes[1].set_ylabel("mean over trials (rad/s; a.u.)")
axes[1].legend(frameon=False)
axes[1].set_title(
    f"median reaction time {np.median(b['reaction_time']):.2f} s"
)
plt.show()

# %% tags=["remove-cell"]
wheel = b["wheel_speed"].mean(axis=0)
turning = t[wheel > wheel.max() / 2]
glue_number("wheel_from", turning.min())
glue_number("wheel_to", turning.max())

# %% [markdown]
# ## 5. Real IBL data through ONE
#
# The same `Session` comes out of `mtm.data.load_ibl_session(eid)`, which follows the reference code
# (every probe of the session merged, every sorted cluster kept, windows around stimulus onset, the
# reference's trial filter: reaction times between 0.08 and 2 s, no missing events, and the behaviour
# above) with one choice of its own: regions mapped to the IBL's Beryl atlas. The reference stores
# each channel's Allen acronym as it is, so its region lists keep fibre tracts such as `alv` and
# `scwm`; `region_mapping="Allen"` does the same here. On Colab, set `LIVE_IBL = True` to download one of
# the paper's sessions from the IBL public server (a few minutes). The server needs an account of your
# own, free at <https://openalyx.internationalbrainlab.org/signup>: the cell asks for its username and
# password (or reads `ALYX_LOGIN` and `ALYX_PASSWORD`), and ONE keeps its downloads and settings in one
# cache folder and writes nowhere else. The same, in your own cell (the password typed without echo):
#
# ```python
# import getpass
# from mtm.data import load_ibl_session
# from mtm.data.ibl import ibl_one
#
# one = ibl_one("/content/ibl_cache", username="your-username", password=getpass.getpass("IBL password: "))
# session = load_ibl_session("5dcee0eb-b34d-4652-acc3-d10afc6eae68", one)
# ```
#
# Without a network, ONE reads a local *ALF cache*. Here we build one around real IBL Neuropixels
# spikes (about two minutes of a recording shipped with IBL's own test suite, with trials and
# channels made for it; they are installed with the package, and a synthetic session stands in if
# `MTM_REAL_DATA` names a missing folder), and load it through exactly the code path the live
# download uses.

# %%
from mtm.data import load_ibl_session, real_data_dir
from mtm.data.alf import build_one_cache, real_fixture_alf, session_to_alf

if LIVE_IBL:
    import getpass
    import os

    from mtm.data.ibl import ibl_one

    username = os.environ.get("ALYX_LOGIN") or input("IBL username: ")
    password = os.environ.get("ALYX_PASSWORD") or getpass.getpass(
        f"IBL password for {username}: "
    )
    one = ibl_one(Path("ibl_cache"), username=username, password=password)
    ibl_session = load_ibl_session(IBL_EID, one=one)
else:
    from one.api import One

    cache = Path(tempfile.mkdtemp(prefix="alf_"))
    if real_data_dir() is not None:
        folder = real_fixture_alf(cache)
        source = (
            "real IBL spikes (ibllib test fixture), "
            "with trials and channels made for them"
        )
    else:
        folder = session_to_alf(synthetic_session(SEED, 40, 30), cache)
        source = "a synthetic session written as ALF"
    eids = build_one_cache(cache)
    one = One(cache_dir=cache, mode="local")
    ibl_session = load_ibl_session(eids[folder.resolve()], one=one)
    print("offline ONE cache built from", source)
print(ibl_session)

# %% mystnb={"figure": {"caption": "Trial 0 of the session loaded through ONE in the cell above: spike counts per 20 ms bin, neurons grouped by region label on the y axis (one band per run of a label, so a region crossed by both probes appears twice). Dashed line: stimulus onset.", "name": "fig-01-ibl-raster"}}
fig, _ = plot_raster(
    ibl_session.spikes[0],
    ibl_session.regions,
    title=f"{ibl_session.eid[:8]}: trial 0",
)
plt.show()
print("neurons per region:", ibl_session.region_counts())

# %% [markdown]
# How to read the region bands of a real recording. The session is loaded as the reference loads it:
# every probe of the session merged, probe 00's clusters first, then probe 01's. A region that both
# probes cross therefore appears as **two bands**, one per probe (in the offline fixture above,
# every label, `root` included, appears twice); the model and the masking schemes go by the labels, not by the positions, so the two bands are one
# region for them ({doc}`02_masking`). **`root`** is the atlas's label for a channel outside every
# brain region of the Beryl parcellation (fibre tracts, ventricles, or a contact just outside the
# brain). The reference keeps every cluster and treats each label, `root` included, as a region, and so does `mtm`;
# with the offline synthetic fallback there is no `root` band.

# %% [markdown]
# NWB files (for example from DANDI) load the same way with
# `mtm.data.load_nwb_session(path, align="stim_on_time")`, and any session can be saved and loaded
# without pickle: `session.save("s.npz")`, `Session.load("s.npz")`. From a shell:
# `mtm data synthetic --out runs/data`, `mtm data ibl --sessions test --out runs/ibl`.
#
# ## Summary
#
# - Everything in `mtm` consumes a `Session`: counts (trials, bins, neurons), a region per neuron,
#   behaviour, splits, and for synthetic data the true rates and the ground truth behind them.
# - Each task has two yardsticks: the latent oracle (`mtm.oracle`), an upper bound given the true
#   latents, and the Bayes reference (`mtm.bayes`), given exactly the spikes the task leaves visible,
#   which a model could in principle match. The true rates are not reachable, because every neuron
#   carries private noise.
# - Synthetic sessions mimic the IBL repeated-site recordings, with coupled regional dynamics that make
#   inter- and intra-region prediction meaningful, and private per-neuron fluctuations.
# - Real sessions come through ONE with the reference's choices; offline, from a local ALF cache.
#
# ## Exercises
#
# **Exercise 1.** Generate a session with `world_seed=1`. Do its PSTHs differ from those of
# `world_seed=0`? Why?
#
# :::{admonition} Hint
# :class: dropdown
# `synthetic_session` takes `world_seed` as a keyword argument. Draw the region PSTHs of both
# sessions side by side, as in section 2. Then read the docstring of `mtm.data.synthetic`: which
# parts of the generator come from `world_seed`, and which from `seed`?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# They differ. `World.__init__` in `mtm.data.synthetic` draws from `world_seed` everything that the
# sessions of a world share: the damped rotations $A_r$, the coupling matrices $C_{rr'}$ and the
# direction in which each task input pushes each region's latents ($B_r$). A new world therefore
# answers the same stimulus and the same movement with transients of another shape. The session
# changes as well: `synthetic_session` seeds its generator with `(world_seed, 1, seed)`, so the
# neurons, region sizes, baselines and trials are new too.
#
# Some things do not depend on any seed, so they stay: the timing of the task inputs
# (`simulate_task`: a stimulus transient just after onset, movement after each trial's reaction
# time), the input sensitivity of each region (`INPUT_GAIN`) and the centre of each region's rate
# distribution (`MEAN_RATE_HZ`). Expect PSTHs at similar levels, with events at similar times, but
# with modulations of another shape, size or sign.
#
# The folded cell below draws both and prints `False` on its first line: the transition matrix $A$
# (with the coupling) is not the same in the two worlds.
# :::

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Solution of exercise 1: the region PSTHs of the chapter's session (world_seed=0, left) and of a session of another world (world_seed=1, right), against time from stimulus onset.", "name": "fig-01-exercise-worlds"}}
other_world = synthetic_session(
    SEED, RUN.N_TRIALS, RUN.N_NEURONS, world_seed=1
)
print(
    "same dynamics:",
    np.array_equal(session.truth.transition, other_world.truth.transition),
)
fig, axes = plt.subplots(
    1, 2, figsize=(7, 3.2), layout="constrained", sharey=True
)
for ax, s in zip(axes, (session, other_world)):
    for region in s.region_names:
        plot_psth(
            s.spikes[..., s.regions == region], ax=ax, label=region, smooth=1.5
        )
    ax.set_title(f"world_seed={s.meta['world_seed']}")
axes[0].legend(frameon=False, ncol=5, fontsize=8)
plt.show()

# %% [markdown]
# **Exercise 2.** How many neurons fire below 0.5 Hz in `session`? Which region holds most of them?
#
# :::{admonition} Hint
# :class: dropdown
# `rate_hz` (section 2) holds each neuron's mean rate and `session.regions` its region. Count per
# region, and also divide by the region's size (`session.region_counts()`): regions differ in size.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The generator (`synthetic_session`) makes low-rate neurons in two ways. First, a fixed fraction of
# nearly silent units (`SILENT_FRACTION`) in every region alike, with baselines drawn between 0.02 and
# 0.3 Hz. Second, the low tail of the log-normal baseline of the other neurons, which is centred on
# the region's `MEAN_RATE_HZ`. That centre is lowest in the hippocampus (DG, then CA1) and highest
# in the thalamus (LP, PO). So expect the hippocampal regions to have the largest share of neurons
# below 0.5 Hz, and the thalamic ones the smallest. Which region holds the most in absolute numbers
# also depends on the region sizes that this session drew.
# :::

# %% tags=["hide-input"]
low = rate_hz < LOW_RATE_HZ
print(f"{low.sum()} of {session.n_neurons} neurons below {LOW_RATE_HZ} Hz")
for region, n in session.region_counts().items():
    n_low = int(np.sum(low & (session.regions == region)))
    print(f"{region:>5}: {n_low} of {n} neurons ({n_low / n:.0%})")

# %% [markdown]
# **Exercise 3.** Plot the PSTH of LP separately for left and right stimuli (`b["stim_side"]`). Which
# one is larger?
#
# :::{admonition} Hint
# :class: dropdown
# `b["stim_side"]` is -1 for a left stimulus and +1 for a right one. Trials of contrast 0 have a side
# but no stimulus input, so leave them out (`b["contrast"]` is the signed contrast). The true rates
# `session.rates` give the same PSTHs without the Poisson noise. Then look at how `World.__init__`
# builds the input weights of the two stimulus inputs.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# The generator has no preferred side. In `World.__init__` the left and the right stimulus are two
# separate inputs with the same gain (the region's stimulus sensitivity in `INPUT_GAIN`), each with
# its own random direction in the latent space. Any stimulus response should therefore start shortly
# after onset for both sides, with a similar size. It need not be a rise: each neuron reads the
# latents with its own random weights, and the LP average over all trials in section 2 shows no clear
# rise just after onset. How the two sides' responses differ comes from the random draws of this
# world and session, not from a rule of the generator; another `world_seed` can reverse it. (A real
# recording from one hemisphere would be expected to favour the contralateral side.) Two other
# inputs set the curves apart for reasons of the task. The block prior acts during the whole
# trial, before onset too, and left stimuli come mostly in the blocks where left is likely, so the
# trials of the two sides carry different priors: in the folded figure the curves are apart already
# before onset. After the movement starts, choices follow the stimulus side, and the lateralised
# movement input (`choice` times movement) has opposite signs for the two choices.
# :::

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Solution of exercise 3: the PSTH of LP for left and right stimuli (trials of contrast 0 left out), from the spike counts (left) and from the true rates (right), against time from stimulus onset.", "name": "fig-01-exercise-lp-sides"}}
in_lp = session.regions == "LP"
seen = np.abs(b["contrast"]) > 0  # contrast 0: no stimulus input
fig, axes = plt.subplots(
    1, 2, figsize=(7, 3.2), layout="constrained", sharey=True
)
for ax, (data, what) in zip(
    axes, ((session.spikes, "spike counts"), (session.rates, "true rates"))
):
    for side, name in ((-1, "left stimulus"), (1, "right stimulus")):
        trials = seen & (b["stim_side"] == side)
        plot_psth(data[trials][..., in_lp], ax=ax, label=name, smooth=1.5)
    ax.set_title(f"LP, {what}")
axes[0].legend(frameon=False)
plt.show()

# %% [markdown]
# **Exercise 4.** Load the offline IBL session again with `region_mapping="Allen"`: which labels
# change, and why does the fibre tract disappear under Beryl?
#
# :::{admonition} Hint
# :class: dropdown
# `load_ibl_session(ibl_session.eid, one=one, region_mapping="Allen")` reads the same cache. Pair
# every neuron's Allen label with its Beryl label (`ibl_session.regions`) and count the pairs. The
# channels of the offline fixture follow `mtm.data.alf.FIXTURE_PATH`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# (The code, executed, is in the folded cell after this box.)
# `load_ibl_session` reads the Allen CCF id of each cluster's channel and turns it into an acronym
# with `iblatlas`, `BrainRegions().id2acronym(ids, mapping=region_mapping)` (`_region_names` in
# `mtm.data.ibl`). `"Allen"` keeps the raw acronym; `"Beryl"`, the default, maps it to the Beryl
# parcellation.
# With the real-spike fixture the channels follow `FIXTURE_PATH`: the layers of VISa (`VISa1` to
# `VISa6b`), two fibre tracts (`scwm`, the supra-callosal cerebral white matter, and `alv`, the
# alveus), `CA1`, three layers of the dentate gyrus (`DG-mo`, `DG-sg`, `DG-po`), `LP` and `PO`. Under
# Allen the layers keep their own labels; under Beryl they merge into their area (`VISa`, `DG`), and
# `CA1`, `LP` and `PO` stay as they are. A fibre tract is white matter, not one of the brain regions
# of the Beryl parcellation, so Beryl has no label for it but `root`. Its neurons are not dropped,
# only relabelled: that is the `root` band of the raster. With the synthetic fallback nothing
# changes, because `VISa`, `CA1`, `DG`, `LP` and `PO` are Allen acronyms that map to themselves
# (`session_to_alf`). The Allen acronyms are also stored at the first load, in
# `ibl_session.meta["neurons"]["allen_acronym"]`, and the mapping used in
# `ibl_session.meta["region_mapping"]`.
# :::

# %% tags=["hide-input"]
from collections import Counter

allen_session = load_ibl_session(
    ibl_session.eid, one=one, region_mapping="Allen"
)
pairs = Counter(
    zip(allen_session.regions.tolist(), ibl_session.regions.tolist())
)
for (allen, beryl), n in pairs.items():
    print(f"{allen:>8} -> {beryl:<5} {n} neurons")

# %% tags=["remove-input"]
print(RUN.done())

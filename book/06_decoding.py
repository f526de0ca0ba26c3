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
# # Behaviour decoding: choice and whisker motion energy
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/06_decoding.ipynb)
#
# **What you will learn**
#
# - why the paper decodes behaviour from the *predicted rates* of a self-supervised model that never
#   saw any behaviour, and what a good score says about the model;
# - the two decoders of the reference code: a cross-validated logistic regression for the mouse's
#   choice (scored by accuracy) and a ridge regression for the whisker motion energy (scored by one
#   pooled $R^2$), both on the flattened log-rates;
# - which prompt each decoder uses, and why the prompt barely matters (the paper's Table 6);
# - how to read a decoding score between a floor (the raw spikes) and references from the ground
#   truth (the true rates and the true latents);
# - the behaviour trial filter of the reference, and why this chapter does without it.
#
# *About 10 minutes to read. The two models are those of {doc}`04_training`, reused from its run
# folder when that chapter ran first with the same settings, and trained here otherwise.*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; elsewhere it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE],
                   check=True)

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from mtm.book import (SINGLE_SEEDS, chapter_settings, glue_number,
                      single_run_folder, train_all, verdict_sentence,
                      what_this_run_shows)
from mtm.checkpoint import load_model
from mtm.data import synthetic_session
from mtm.data.synthetic import INPUT_GAIN
from mtm.decoding import (CHOICE_C, DECODING_PROMPT, RIDGE_ALPHAS,
                          decode_behavior,
                          model_log_rates)
from mtm.masking import PROMPT_IDS
from mtm.oracle import latent_features
from mtm.plots import plot_bar_panels, plot_raster, results_table, use_style
from mtm.reproduce.scheduler import paired_differences, row_intervals
from mtm.reproduce.tables import interval_table
from mtm.train import TrainConfig, pick_device

use_style()

# %% tags=["parameters"]
# SETTINGS: "auto" (smoke under MTM_SMOKE=1, else gpu or book) or one of
# them; OVERRIDES replaces values of mtm.book.CHAPTER_SETTINGS, {"EPOCHS": 50}
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0                   # which synthetic session
DECODE_TRIALS = 400        # decoders use the first trials (section 2)

# %%
RUN = chapter_settings("06_decoding", SETTINGS, **OVERRIDES)
RUN_DIR = RUN.run_dir   # the trained runs, shared with chapters 4 and 5

# %% [markdown]
# ## 1. Decoding as a probe of what a model has learned
#
# MtM is trained without labels: it only learns to predict hidden spikes from visible ones. Yet the
# paper asks how much *behaviour* its predicted rates carry. The logic: a model that has captured the
# population dynamics returns denoised rates, the spikes with the Poisson noise averaged out, and a
# linear read-out of the mouse's choice or of its whisking from denoised rates should be at least as
# good as one from the noisy spikes. A linear decoder is deliberately weak: it can only find what
# the representation already makes explicit.
#
# For every trial $k$ the features are the model's log-rates $\log \hat\lambda_k(t, n)$ on the
# **unmasked** spikes, for all $T = 100$ bins and $N$ neurons, flattened into one vector
# $x_k \in \mathbb{R}^{T N}$. Decoders are fitted on the train + validation trials and scored on the
# test trials.
#
# **Choice** ($c_k \in \{-1, +1\}$): an L2-penalised logistic regression
#
# $$P(c_k = +1 \mid x_k) = \sigma(w^\top x_k + b), \qquad
#   \min_{w, b}\ \tfrac{1}{2}\lVert w \rVert^2 + C \sum_{k \in \text{fit}} \log\big(1 + e^{-c_k (w^\top x_k + b)}\big),$$
#
# with $C$ chosen by 4-fold cross-validation on the fitting trials; the score is the test accuracy.
#
# **Whisker motion energy** ($y_k(t)$, one value per bin): a ridge regression with one output per
# bin, $\hat y_k(t) = w_t^\top x_k + b_t$, with the penalty $\alpha$ chosen by 4-fold
# cross-validation, scored by one **pooled** $R^2$ over every test trial and bin:
#
# $$R^2 = 1 - \frac{\sum_{k \in \text{test}} \sum_t \big(y_k(t) - \hat y_k(t)\big)^2}
#                 {\sum_{k \in \text{test}} \sum_t \big(y_k(t) - \bar y\big)^2},
#   \qquad \bar y = \text{mean over all test trials and bins}.$$
#
# Because $\bar y$ is one grand mean, the pooled $R^2$ also credits the decoder for the average time
# course of whisking (it rises with the movement after the stimulus), not only for trial-to-trial
# differences.
#
# The grids are the package's constants:

# %%
print("choice: C in", [f"{c:g}" for c in CHOICE_C])
print("whisker ME: alpha in", [f"{a:g}" for a in RIDGE_ALPHAS])
print("prompt per behaviour:", DECODING_PROMPT,
      "(per-bin behaviour: 'causal')")

# %% [markdown]
# **Paper and code.** The paper says "we train a linear classifier on the output rates of each model
# and then use the R-squared metric". The reference code does something more specific, and `mtm`
# follows the code:
#
# | | paper | reference code | `mtm.decoding` |
# |---|---|---|---|
# | choice | "linear classifier" | `LogisticRegression`, $C \in \{10^{-4}, \dots, 10^4\}$, 4-fold CV, **accuracy** | the same |
# | whisker ME | "R-squared" | `Ridge`, $\alpha \in \{0, 10, \dots, 10^4\}$, 4-fold CV, `r2_score` on the flattened (trials x bins) arrays | the same, with $\alpha$ from 1: $\alpha = 0$ interpolates the fitting trials exactly when there are more features than trials |
# | features | "output rates" | log-rates on the unmasked spikes, flattened | the same, each feature standardised on the fitting trials, fitted in the fitting trials' row space (same model, faster) |
# | prompt | – | choice: `neuron`; whisker ME: `causal` (causal attention) | the same |
# | trials | "exclude trials based on reaction time outliers" | a `trials_mask` file per session (section 5) | every trial of the splits |
#
# ## 2. A session and its behaviour
#
# One synthetic session ({doc}`01_data`): the choice is a per-trial label, the whisker motion energy a
# per-bin trace. The models of {doc}`04_training` are trained on all of its trials (`full`); the
# decoders use its first `DECODE_TRIALS` trials (`session`, with the same train / validation / test
# assignment). A decoder's cost grows with the square of its fitting trials or faster (an SVD of
# the trials x features matrix, then cross-validated fits on as many coordinates as trials), so
# four times the trials would cost the chapter over ten times as long.

# %%
full = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
session = full.select_trials(np.arange(min(DECODE_TRIALS, full.n_trials)))
print(full)
print(f"decoded: the first {session.n_trials} trials")
b = session.behavior
test = session.splits["test"]
plus = np.mean(b["choice"][test] == 1)
print(f"test trials: {len(test)}, of which {plus:.0%} with choice +1")

# %% [markdown]
# The whisker motion energy of a few test trials and its mean over all trials: a rise after the
# stimulus, when the mouse moves, on top of spontaneous whisking that differs from trial to trial.
# The pooled $R^2$ scores a decoder on both parts.

# %% mystnb={"figure": {"caption": "Whisker motion energy (arbitrary units) against time from stimulus onset: four test trials (thin coloured lines) and the mean over all trials (black). The dashed line marks stimulus onset.", "name": "fig-06-whisker-me"}}
t = session.bin_times()
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
for k in test[:4]:
    ax.plot(t, b["whisker_me"][k], lw=0.9, alpha=0.8, label=f"trial {k}")
ax.plot(t, b["whisker_me"].mean(axis=0), color="black", lw=2,
        label="mean over trials")
ax.axvline(0, color="grey", ls="--", lw=0.8)
ax.set_xlabel("time from stimulus onset (s)")
ax.set_ylabel("whisker motion energy (a.u.)")
ax.legend(frameon=False, fontsize=8, ncol=2)
plt.show()

# %% [markdown]
# ## 3. Two self-supervised models
#
# The temporal baseline (whole bins masked, no prompt) and prompted MtM (neuron, causal, intra- and
# inter-region masking, one per batch; {doc}`02_masking` and {doc}`04_training`), trained on this session only. Neither sees the behaviour.
# Each was trained once per training seed of `mtm.book.SINGLE_SEEDS` (chapter 4 trained them all),
# so every model score below is a mean over the seeds with its 95 % interval, and every comparison
# a difference paired by seed, as in {doc}`05_evaluation`.

# %%
device = pick_device()
MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
configs = {(name, seed): TrainConfig.preset(RUN.PRESET, masking=masking,
                                            model=RUN.MODEL, epochs=RUN.EPOCHS,
                                            seed=seed)
           for name, masking in MASKINGS.items() for seed in SINGLE_SEEDS}
# chapter 4's run folders: finished runs are reused (trained otherwise)
folders = {key: RUN_DIR / single_run_folder(cfg.masking, cfg.seed)
           for key, cfg in configs.items()}
trained = train_all({folders[key]: ([full], cfg)
                     for key, cfg in configs.items()})
by_seed = {}   # {(model, training seed): (trained model, its masking)}
for (name, seed), folder in folders.items():
    model = load_model(trained[folder], device=device)[0]
    by_seed[name, seed] = (model, configs[name, seed].masking)
for name in MASKINGS:
    print(f"{name}: {RUN.EPOCHS} epochs, training seeds {SINGLE_SEEDS}")
# figures and exercises use the models of the first seed
models = {name: by_seed[name, SINGLE_SEEDS[0]] for name in MASKINGS}

# %% [markdown]
# ## 4. What the decoder sees
#
# `mtm.decoding.model_log_rates` runs a model on the unmasked spikes of every trial with a prompt and
# returns its log-rates (trials, bins, neurons). For one test trial: the spikes, the rates MtM
# predicts with the `neuron` prompt, and the true rates. The decoders get the logarithm of the middle
# panel (for the raw-spike baseline: the top panel itself, not its log; for the true-rates
# reference: the log of the bottom one).

# %% mystnb={"figure": {"caption": "One test trial, time on x and neurons by region on y, on one colour scale. Top, the spike counts; middle, the rates that MtM predicts from the unmasked spikes with the neuron prompt; bottom, the true rates (expected counts per bin).", "name": "fig-06-decoder-input"}}
mtm_model, _ = models["MtM (prompted)"]
log_rates = model_log_rates(mtm_model, session, "neuron", "mtm")
k = test[0]
vmax = max(1.0, np.percentile(session.rates[k], 99))
panels = {f"spikes, test trial {k}": session.spikes[k],
          "MtM rate, neuron prompt (expected counts per bin)":
              np.exp(log_rates[k]),
          "true rate (expected counts per bin)": session.rates[k]}
fig, axes = plt.subplots(3, 1, figsize=(7, 8.5), layout="constrained",
                         sharex=True)
units = ("spikes per bin",) + ("expected counts per bin",) * 2
for ax, (title, counts), unit in zip(axes, panels.items(), units):
    plot_raster(counts, session.regions, ax=ax, title=title, vmax=vmax,
                colorbar=unit)
for ax in axes[:-1]:
    ax.set_xlabel("")
plt.show()

# %% [markdown]
# In {numref}`fig-06-decoder-input`, a trained model's middle panel is a smoothed copy of the top one that approaches the bottom one; an
# untrained one predicts each neuron's mean rate in every bin. Look for the neurons that stand out
# with high rates in the bottom panel, and the regions that stay pale: a model that has learned the
# session shows them in the middle panel too, with the spikes' Poisson noise averaged out. It is
# not a copy of the true rates: neuron by neuron, the darkness and the time course can differ.
#
# ## 5. Decoding choice and whisker motion energy
#
# `decode_behavior` does everything of section 1 for a session: with a `model` it computes the
# log-rates with the right prompt (choice: `neuron`; whisker ME: `causal`, with causal attention for
# every model, as the reference does: `attention="reference"`, the default), without one it decodes from the raw spikes, and with
# `features` from any (trials, bins, features) array, here the log of the ground-truth rates and the
# true latent states of every region (`mtm.oracle.latent_features`).

# %%
KEYS = ("choice", "whisker_me")
RAW = "Raw spikes (baseline)"
records = {}   # {model: [{"seed", "session", "scores"}, ...]}
for (name, seed), (model, masking) in by_seed.items():
    records.setdefault(name, []).append({
        "seed": seed, "session": session.eid,
        "scores": decode_behavior(session, KEYS, model=model,
                                  training_masking=masking)})
intervals = {name: row_intervals(cells) for name, cells in records.items()}
# the raw spikes and the references train nothing: one decoding each
scores = {RAW: decode_behavior(session, KEYS)}
scores.update({name: {k: intervals[name][k].mean for k in KEYS}
               for name in MASKINGS})
true_log = np.log(session.rates)
scores["True log-rates (reference)"] = decode_behavior(session, KEYS,
                                                       features=true_log)
latents_features = latent_features(session)
scores["True latents (reference)"] = decode_behavior(
    session, KEYS, features=latents_features)
display(Markdown(interval_table(scores, intervals, KEYS)))

# %% [markdown]
# Choice is scored by test accuracy, whisker motion energy by the pooled $R^2$; a model's row is
# the mean over its training seeds ± the half-width of the 95 % interval. The same scores as bars,
# with chance for choice (always guessing the most frequent choice of the fitting trials):

# %% mystnb={"figure": {"caption": "The decoding scores of the table above on the test trials, one bar per feature set with its value: left, choice accuracy, with chance (always the majority choice of the fitting trials) as a red dashed line; right, the pooled $R^2$ of whisker motion energy. Bars: raw spikes (light grey), the temporal baseline (blue) and MtM (orange), each the mean over its training seeds with its 95 % interval, the true log-rates (black) and the true latents (green).", "name": "fig-06-decoding-bars"}}
fit = np.concatenate([session.splits["train"], session.splits["val"]])
majority = 1 if np.mean(b["choice"][fit] == 1) >= 0.5 else -1
chance = np.mean(b["choice"][test] == majority)
colors = dict(zip(scores, ["0.75", "tab:blue", "tab:orange", "black",
                           "tab:green"]))
errors = {name: {key: i.half_width for key, i in row.items()}
          for name, row in intervals.items()}
fig = plot_bar_panels(scores, list(scores), KEYS, errors=errors,
                      colors=colors)
fig.axes[0].axvline(chance, color="tab:red", ls="--", lw=1,
                    label="chance (majority)")
fig.legend(frameon=False, fontsize=8, loc="outside lower center")
plt.show()
print(f"chance (majority choice of the fitting trials): {chance:.2f}")

# %% [markdown]
# How to read it. The raw spikes are the floor every model should reach: the decoder could in
# principle learn any smoothing itself, but with far fewer fitting trials than $T \times N$ features it
# cannot, and the Poisson noise costs accuracy. The true rates and the true latents are references,
# not bounds: they hold what the neurons and the regions' dynamics carry about the behaviour, without
# spiking noise, but a linear decoder fitted on a limited number of trials need not extract it all, and a
# model's smoothed log-rates can land above them by chance. In
# the synthetic world the choice enters the dynamics through the lateralised movement after the
# reaction time, and whisking drives every region, so both behaviours are decodable, but not
# perfectly: the choice shows mostly after the movement starts (before it, only through the block
# prior that biases it), and the neurons see whisking
# through noisy latent dynamics.
#
# The comparisons, each a difference of mean scores with its 95 % interval over the training seeds
# (the raw spikes are decoded once, so their score stands beside every seed; a bold cell's interval
# excludes zero). An accuracy on the test trials moves in steps of one test trial, which the line
# under the table sizes, so a difference of a trial or two needs its interval to be read:

# %%
with_raw = {**records, RAW: [{"seed": seed, "session": session.eid,
                              "scores": scores[RAW]} for seed in SINGLE_SEEDS]}
PAIRS = {"Temporal − raw spikes": ("Temporal", RAW),
         "MtM − raw spikes": ("MtM (prompted)", RAW),
         "MtM − temporal": ("MtM (prompted)", "Temporal")}
differences = paired_differences(
    with_raw, [(name, a, b) for name, (a, b) in PAIRS.items()])
display(Markdown(interval_table(differences, differences, KEYS, sign=True)))
print(f"{len(test)} test trials: one trial moves an accuracy by "
      f"{100 / len(test):.2g} percentage points")

# %% [markdown]
# ## 6. Does the prompt matter? (Table 6)
#
# A prompted MtM model accepts any of its four prompts at inference. The reference reports choice from
# the `neuron` prompt and whisker ME from the `causal` prompt; the paper's Table 6 decodes both
# behaviours from each prompt and finds scores within 0.01 of each other (choice 0.88-0.89, whisker
# ME 0.68). Here: the log-rates of each prompt, passed to the same decoders through `features`.
# (The `causal` prompt is also run with causal attention, as `decode_behavior` does for it.)

# %%
prompt_records = {}
for seed in SINGLE_SEEDS:
    model, _ = by_seed["MtM (prompted)", seed]
    for prompt in PROMPT_IDS:
        features = model_log_rates(model, session, prompt, "mtm")
        prompt_records.setdefault(f"MtM, {prompt} prompt", []).append({
            "seed": seed, "session": session.eid,
            "scores": decode_behavior(session, KEYS, features=features)})
prompt_intervals = {name: row_intervals(cells)
                    for name, cells in prompt_records.items()}
by_prompt = {name: {k: v.mean for k, v in row.items()}
             for name, row in prompt_intervals.items()}
display(Markdown(interval_table(by_prompt, prompt_intervals, KEYS)))
for key in KEYS:
    values = [row[key] for row in by_prompt.values()]
    print(f"{key}: the four prompts span {min(values):.2f} "
          f"to {max(values):.2f}")

# %% [markdown]
# The prompt tells the model which part of the input to expect hidden. With nothing hidden, every
# prompt sees the same spikes, and the rates differ only in how the model weighs them, which a
# linear decoder on all neurons and bins largely absorbs. In the paper the rows differ by at most
# 0.01. Here the lines under the table give the span of the four prompts' mean scores over the
# training seeds, for each behaviour. The `neuron` row's choice and the `causal` row's whisker ME repeat the MtM row of section 5, which
# uses these two prompts.
#
# ## 7. The reference's behaviour trial filter
#
# For decoding, the reference uses only some trials of each split: `data/trials_mask/<eid>.npy`
# holds a 0/1 flag for every train, validation and test trial of its 40 sessions, and only flagged
# trials enter the decoders (`use_trial_filter=True`). The masks keep 38-81 % of the trials (63 % on
# average). The paper says it excludes "trials based on reaction time outliers as defined by the IBL
# brain-wide map", but the script that made the masks is in no public branch, and the criterion
# cannot be recovered from them: the reference's datasets had already dropped reaction times outside
# 0.08-2 s (the filter `mtm.data.load_ibl_session` applies too). The activity metrics of the paper
# use every test trial.
#
# Synthetic sessions have no such masks (and need none: their reaction times are clipped to 1.2 s),
# so every trial of the splits is decoded here. For the IBL sessions, one could pass only the flagged
# trials by building a `Session` restricted to them; without the masks' criterion, `mtm` does not try
# to guess it.
#
# ## 8. What this run shows
#
# The box is written by the cell from the differences of section 5, so its words follow the numbers
# of the run in front of you:

# %%
for key in KEYS:   # the numbers of the text below
    for name, short in ((RAW, "raw"), ("Temporal", "temporal"),
                        ("MtM (prompted)", "mtm")):
        glue_number(f"{short}_{key}", scores[name][key])
what_this_run_shows(
    verdict_sentence("MtM", "the raw spikes", differences["MtM − raw spikes"]),
    verdict_sentence("The temporal model", "the raw spikes",
                     differences["Temporal − raw spikes"]),
    verdict_sentence("MtM", "the temporal model",
                     differences["MtM − temporal"]))

# %% [markdown]
# In numbers: decoded from MtM's log-rates, the choice is predicted with an accuracy of
# {glue:text}`mtm_choice` and the whisker motion energy with a pooled $R^2$ of
# {glue:text}`mtm_whisker_me`; from the temporal model's, {glue:text}`temporal_choice` and
# {glue:text}`temporal_whisker_me`; from the raw spikes, {glue:text}`raw_choice` and
# {glue:text}`raw_whisker_me` (the models' scores are means over the training seeds). The paper's
# Table 2 (five held-out IBL sessions, models trained on each from scratch) has 0.87 against 0.85 on
# choice and 0.65 against 0.67 on whisker motion energy for temporal masking against MtM: the two
# close, far closer than on the activity tasks. This run's scores depend on one synthetic session,
# the first `DECODE_TRIALS` of its trials and the models of {doc}`04_training`.
#
# ## Summary
#
# - Behaviour decoding probes a self-supervised model with linear decoders on its predicted
#   log-rates, flattened over bins and neurons, computed on unmasked spikes.
# - `mtm.decoding` follows the reference code: logistic regression with a cross-validated $C$ and
#   test accuracy for choice (`neuron` prompt); ridge with one output per bin and one pooled $R^2$
#   for whisker motion energy (`causal` prompt).
# - Decoding from the raw spikes and from the true log-rates and latents gives references, not bounds:
#   a model's predicted log-rates can be decoded better than either by chance. In the paper, MtM
#   and the temporal baseline decode behaviour about equally well, and the prompt changes the
#   scores by at most 0.01; sections 5, 6 and 8 say what this run shows.
# - The reference's per-session behaviour trial masks have no documented criterion and do not
#   exist for synthetic data; all trials are decoded here.
#
# ## Exercises
#
# **Exercise 1.** Decode `wheel_speed` as well (`decode_behavior(session, ("wheel_speed",), model=...)`).
# Is it easier or harder than whisking, and why, given how the synthetic behaviour is generated
# ({doc}`01_data`)?
#
# :::{admonition} Hint
# :class: dropdown
# The generator is in the docstring of `mtm.data.synthetic`. Wheel speed is the movement envelope
# $m_k(t)$ times a small multiplicative noise, a function of the movement alone; whisker motion
# energy is an exponential of spontaneous whisking $h_k(t)$ and of the movement, plus additive
# noise. Decode both keys in one call, with the true latents as a reference.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Both keys are per-bin behaviour, so `decode_behavior` uses the `causal` prompt for both, and
# computes each model's log-rates once (the cell below). Expect wheel speed to be the easier one. It
# is the movement envelope times a small noise: zero before the reaction time, then one stereotyped
# transient whose timing and size vary from trial to trial. The movement is an input to every
# region's latent dynamics (its gain in `INPUT_GAIN`), and the wheel speed is linear in it, which
# suits a linear decoder. Whisker motion energy is an exponential of the movement *and* of
# spontaneous whisking, plus additive noise that no neuron sees. Whisking does drive the latents
# too, but a linear read-out can match the exponential only approximately. The true-latents row
# shows how much of each behaviour a linear decoder can take from the dynamics themselves; compare
# each model's gap to that row rather than the raw scores of the two columns.
# :::

# %% tags=["hide-input"]
keys = ("wheel_speed", "whisker_me")
rows = {"Raw spikes (baseline)": decode_behavior(session, keys)}
for name, (model, masking) in models.items():
    rows[name] = decode_behavior(session, keys, model=model,
                                 training_masking=masking)
rows["True latents (reference)"] = decode_behavior(session, keys,
                                                   features=latents_features)
display(Markdown(results_table(rows)))

# %% [markdown]
# **Exercise 2.** Single-region decoding (the paper's Fig. 5). For each region, zero every *other*
# region's neurons in the input, run MtM with the `intra-region` prompt (bidirectional attention;
# the temporal baseline has no prompt), and decode from the log-rates of that region's neurons only:
# `model_log_rates` on a `Session` whose spikes are multiplied by the region's indicator, then
# `features=log_rates[..., session.regions == region]`. Compare with decoding that region's raw
# spikes. Which regions carry the choice best? Compare with the input sensitivities in
# `mtm.data.synthetic.INPUT_GAIN`.
#
# :::{admonition} Hint
# :class: dropdown
# `session.replace(spikes=session.spikes * inside)` with `inside = session.regions == region` keeps
# the session's id, so the model finds its stitcher. `model_log_rates` runs bidirectionally for
# every prompt but `causal`, and ignores the prompt of the unprompted baseline. Decode against the
# original `session` (its behaviour and splits) with `features=`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below decodes each region alone and prints the gains of `INPUT_GAIN` beside it. The
# input is exactly what MtM's intra-region scheme showed it in training (every region but one
# hidden), with the prompt that announces it; the temporal baseline never saw whole regions zeroed.
# In the paper's Fig. 5, MtM decodes better than the baseline across regions. In the synthetic
# world the choice reaches a region in three ways, each with its gain: the lateralised movement
# $\text{choice}_k\,m_k(t)$ after the reaction time; the block prior, which biases the choice; and
# the stimulus side, which predicts the choice on most trials because the mouse is mostly correct.
# Coupling between regions spreads each of these further. The number of neurons and their rates
# also matter: a small, low-rate region gives the decoder less to work with. Read the table with
# all three in mind; accuracies on the test trials move in steps of one test trial and are
# uncertain by several such steps (section 5), so small differences between regions are noise.
# :::

# %% tags=["hide-input"]
rows = {}
for region in session.region_names:
    inside = session.regions == region
    # every other region zeroed
    alone = session.replace(spikes=session.spikes * inside)
    stim, prior, _, choice_move, _ = INPUT_GAIN[region]
    raw_spikes = session.spikes[..., inside]
    row = {"stimulus gain": stim, "prior gain": prior,
           "choice-movement gain": choice_move,
           "Raw spikes": decode_behavior(session, ("choice",),
                                         features=raw_spikes)["choice"]}
    for label, name in (("Temporal", "Temporal"), ("MtM", "MtM (prompted)")):
        model, masking = models[name]
        region_log_rates = model_log_rates(model, alone, "intra-region",
                                           masking)[..., inside]
        row[label] = decode_behavior(session, ("choice",),
                                     features=region_log_rates)["choice"]
    rows[f"{region} ({inside.sum()} neurons)"] = row
columns = ["stimulus gain", "prior gain", "choice-movement gain",
           "Raw spikes", "Temporal", "MtM"]
display(Markdown(results_table(rows, columns=columns)))

# %% [markdown]
# **Exercise 3.** Decode from the log-rates of the temporal model computed with the `causal` prompt:
# does causal attention change anything for a model that was never trained with it
# (`model_log_rates(model, session, "causal", "temporal")`)?
#
# :::{admonition} Hint
# :class: dropdown
# The temporal model has no prompts, so the scheme passed to `model_log_rates` only decides the
# attention: with the default `attention="reference"`, `causal` means causal attention for every
# model. Compare with the log-rates under any other scheme, which are bidirectional.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Two cells of the table below repeat the section 5 table. `decode_behavior` with `model=` uses the
# same rule as `model_log_rates` (`attention="reference"`): the `Temporal` row there decodes choice
# from the bidirectional log-rates (`neuron` prompt) and whisker motion energy from the
# causal-attention log-rates (`causal` prompt), as the reference did for every model. So the new
# cells are choice from causal attention and whisker motion energy from bidirectional attention.
# (`decode_behavior(..., attention="trained")` gives the bidirectional row in one call.) Causal
# attention does change the log-rates: every bin now attends only to earlier bins, an input the model
# never met in training, and the first bins see almost nothing. But the decoders read all bins and
# neurons at once, and a later bin's log-rates still see an earlier bin's activity, so a linear
# decoder can recover much of what each bin lost. Expect a change in the scores that is smaller than
# the change in the rates; its size and sign are for the run to show.
# :::

# %% tags=["hide-input"]
temporal_model, _ = models["Temporal"]
rows = {}
for label, scheme in (("bidirectional", "neuron"),
                      ("causal attention", "causal")):
    temporal_log_rates = model_log_rates(temporal_model, session, scheme,
                                         "temporal")
    rows[f"Temporal, {label}"] = decode_behavior(
        session, KEYS, features=temporal_log_rates)
display(Markdown(results_table(rows)))

# %% [markdown]
# **Exercise 4.** The pooled $R^2$ rewards the mean time course. Subtract each bin's mean over trials
# from the whisker motion energy (a new `Session` with the modified behaviour) and decode again: how
# much of the score was the mean time course?
#
# :::{admonition} Hint
# :class: dropdown
# `session.replace(behavior=...)` returns a new session; subtract the per-bin mean of the fitting
# trials (`fit` from section 5). Then look at `mtm.decoding.decode_continuous`: a `Ridge` with one
# output per bin and an intercept for each output. What happens to its fit when a constant is
# subtracted from each output?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The answer can be worked out from `decode_continuous` before running anything. `Ridge` fits an
# intercept for each of its outputs, one per bin, so the mean time course never needed the
# features: the intercepts predict it. Subtracting a constant from each bin's target only shifts
# those intercepts. The weights stay the same, the cross-validation picks the same $\alpha$ (the
# $R^2$ of each output, which it averages, does not change when a constant is subtracted from both
# target and prediction), and every test prediction moves by exactly the constant subtracted. The
# test errors are therefore unchanged, up to rounding. Only the denominator of the pooled $R^2$
# changes: the test trials' variance around one grand mean becomes their variance around the mean
# time course. Every row's $1 - R^2$ is multiplied by the same factor, the ratio of the two
# variances, which the cell prints with each row's expected and obtained score, so the rows keep
# their order. The mean time course alone, predicted for every test trial, scores about
# $1 - 1/\text{factor}$ on the original $R^2$: that is the part of each score that the intercepts
# earn without any feature. A row that had learned only the mean time course now scores about 0.
# :::

# %% tags=["hide-input"]
me = b["whisker_me"]
behavior = dict(session.behavior)
# each bin's mean over the fitting trials removed
behavior["whisker_me"] = me - me[fit].mean(axis=0)
residual = session.replace(behavior=behavior)
whisker = ("whisker_me",)
detrended = {"Raw spikes (baseline)": decode_behavior(residual, whisker)}
for name, (model, masking) in models.items():
    detrended[name] = decode_behavior(residual, whisker, model=model,
                                      training_masking=masking)
detrended["True latents (reference)"] = decode_behavior(
    residual, whisker, features=latents_features)
display(Markdown(results_table(detrended)))

# the decoders' errors are unchanged; only the denominator of R^2 changes
y, r = me[test], behavior["whisker_me"][test]
factor = ((y - y.mean()) ** 2).sum() / ((r - r.mean()) ** 2).sum()
print(f"factor {factor:.3f}; the mean time course alone scores about "
      f"{1 - 1 / factor:.3f} on the original R^2")
for name, row in detrended.items():
    expected = 1 - (1 - scores[name]["whisker_me"]) * factor
    print(f"{name}: expected {expected:.3f}, got {row['whisker_me']:.3f}")

# %% tags=["remove-input"]
print(RUN.done())

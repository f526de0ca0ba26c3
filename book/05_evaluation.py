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
# # Evaluation: co-smoothing, forward prediction, intra- and inter-region
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/05_evaluation.ipynb)
#
# **What you will learn**
#
# - what *bits per spike* measures, and the two ways of averaging it: NLB's pooled co-bps and the
#   per-neuron mean that the MtM paper's tables use;
# - the four activity tasks exactly as `mtm.evaluate` runs them: what is held out, what is scored,
#   which prompt, and when the attention is causal;
# - how to compare two models neuron by neuron, and how their predictions look against the spikes;
# - how to read results over several training seeds: each model's mean with a 95 % interval, and
#   the difference between two models paired seed by seed;
# - where a model sits between simple baselines and two yardsticks: the *Bayes reference*, the best
#   prediction given exactly the spikes a model sees, and the *latent oracle*, given the true latent
#   states, an upper bound; and why the true rates are neither.
#
# *About 10 minutes to read. The two models, three training seeds each, are {doc}`04_training`'s,
# reused from its run folder when that chapter ran first with the same settings (trained here
# otherwise; with the `gpu` settings, the lines under the parameters say how many epochs fit the
# chapter's time budget).*

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

from mtm.baselines import (BASELINES, LINEAR_ROW, ORACLE_ROW, TRUE_RATES_ROW,
                           baseline_results)
from mtm.bayes import BAYES_ROW, bayes_results
from mtm.book import (SINGLE_SEEDS, assert_direction, chapter_settings,
                      compare_words, glue_number, single_run_folder,
                      train_once)
from mtm.checkpoint import load_model
from mtm.data import synthetic_session
from mtm.evaluate import (CAUSAL_MASKINGS, FORWARD_BINS, TASK_PROMPT, TASKS,
                          bits_per_spike, evaluate_model, evaluate_rates,
                          task_scores)
from mtm.masking import PROMPT_IDS
from mtm.oracle import TASK_INFORMATION, oracle_results
from mtm.plots import (TABLE_COLUMNS, oracle_share_table, plot_bps_scatter,
                       plot_predicted_vs_true, plot_task_masks, results_table,
                       use_style)
from mtm.reproduce.scheduler import paired_differences, row_intervals
from mtm.reproduce.tables import interval_table
from mtm.stats import paired_difference
from mtm.train import TrainConfig, pick_device

use_style()

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1,
# else gpu or book. OVERRIDES: the settings' values to replace, e.g.
# {"EPOCHS": 50}; the values are in mtm.book.CHAPTER_SETTINGS.
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0                    # which synthetic session
REGION = "LP"               # the region shown in the figures

# %%
RUN = chapter_settings("05_evaluation", SETTINGS, **OVERRIDES)
RUN_DIR = RUN.run_dir      # the trained runs, shared with chapters 4 and 6

# %% [markdown]
# ## 1. Bits per spike
#
# Every task ends in the same score. For a neuron with counts $y_{kt}$ (trial $k$, bin $t$) and
# predicted rates $\lambda_{kt}$ (expected counts per bin), the Poisson negative log-likelihood is
#
# $$\mathrm{NLL}(\lambda, y) = \sum_{k,t} \big[\lambda_{kt} - y_{kt} \ln \lambda_{kt} + \ln \Gamma(y_{kt} + 1)\big].$$
#
# A model is compared with a **null model** that predicts, in every bin, the neuron's mean count
# $\bar y$ over the very trials and bins being scored. Bits per spike is the log-likelihood gained
# over the null model, in bits, per observed spike:
#
# $$\mathrm{bps} = \frac{\mathrm{NLL}(\bar y, y) - \mathrm{NLL}(\lambda, y)}{\ln 2 \, \sum_{k,t} y_{kt}}.$$
#
# Zero means "no better than the neuron's mean rate"; a negative score means worse than that; there
# is no fixed maximum, but no model beats the true rates on average. The formula comes from the
# Neural Latents Benchmark (NLB) {cite:p}`pei2021nlb`; the two codebases apply it differently:
#
# - **NLB co-bps** (`bits_per_spike(rates, spikes)`): the sums run over all scored neurons at once,
#   so one number pools them, and neurons count in proportion to their spikes. A neuron that never
#   fires in the scored window adds nothing to the denominator and is penalised for any rate it
#   predicts.
# - **MtM per-neuron bps** (`bits_per_spike(rates, spikes, per_neuron=True)`): the formula applied
#   to each neuron alone, giving one score per neuron; neurons without a spike get NaN and drop out.
#   A session's score is the mean over neurons (`np.nanmean`). Every neuron counts the same, however
#   rarely it fires. The paper's tables use this convention, and so do the tables of this book.
#
# Both on the same predictions. Before training anything, we score two predictors that need no
# model: the **true rates** of the synthetic session (no model can do better on average) and each
# neuron's **PSTH** (its trial-averaged rate from the training trials, the same in every trial), on
# the test trials, all 100 bins:

# %% mystnb={"figure": {"caption": "Bits per spike of every neuron on the test trials (all 100 bins) against its firing rate on those trials (log scale), for the true rates (black) and each neuron's PSTH (green). Solid lines: NLB's pooled co-bps; dashed lines: the mean of the per-neuron scores.", "name": "fig-05-bps-per-neuron"}}
session = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
print(session)
# the true rates, on every task; the baselines linear, PSTH and mean rate
true_rates = evaluate_rates(session.rates, session)
baselines = baseline_results(session, which=BASELINES)

test_spikes = session.spikes[session.splits["test"]]
rate_hz = test_spikes.mean(axis=(0, 1)) / session.bin_size
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
for name, result, color in (("true rates", true_rates["co-smooth"], "black"),
                            ("PSTH", baselines["psth"]["co-smooth"],
                             "tab:green")):
    per_neuron = bits_per_spike(result.rates, result.spikes, per_neuron=True)
    pooled = bits_per_spike(result.rates, result.spikes)
    mean = np.nanmean(per_neuron)
    ax.scatter(rate_hz, per_neuron, s=12, color=color, alpha=0.7,
               label=f"{name}: per neuron")
    ax.axhline(pooled, color=color, lw=1.5, label=f"{name}: NLB pooled co-bps")
    ax.axhline(mean, color=color, lw=1.5, ls="--",
               label=f"{name}: per-neuron mean")
    print(f"{name:>10}: pooled {pooled:.3f} bits/spike, "
          f"per-neuron mean {mean:.3f}, "
          f"{np.isnan(per_neuron).sum()} neuron(s) without a test spike")
ax.set_xscale("log")
ax.set(xlabel="firing rate on the test trials (Hz)", ylabel="bits per spike")
fig.legend(frameon=False, fontsize=8, loc="outside right upper")
plt.show()

# %% [markdown]
# In {numref}`fig-05-bps-per-neuron`, each dot is one neuron. The scores of low-rate neurons scatter widely, to both sides: with a
# handful of spikes, the likelihood gain per spike is a noisy number. High-rate neurons score
# steadily. The pooled score (solid line) divides one total gain by the total spike count, so it is
# dominated by the high-rate neurons; the per-neuron mean (dashed) gives a neuron firing at 1 Hz as
# much weight as one firing at 50 Hz. The two summaries therefore differ even on identical
# predictions, and a table must say which one it reports: the MtM paper's numbers are per-neuron
# means, NLB's leaderboard numbers are pooled. `mtm.evaluate.TaskResult` keeps both, as `.mean_bps`
# and `.co_bps`. (Our `bits_per_spike` is checked against `nlb_tools` in the package's tests.)
#
# ## 2. Two models to evaluate, three training seeds each
#
# The temporal baseline and prompted MtM of {doc}`04_training`: the same session, the same settings,
# the same run folder. One training run is one draw: another seed starts from other initial weights,
# sees the batches in another order and draws other masks and dropout (`TrainConfig.seed`; every
# epoch re-seeds them from the seed and the epoch, `mtm.train`), and ends at a somewhat different
# score. So each model is trained with every seed of `mtm.book.SINGLE_SEEDS`, with everything else
# the same (chapter 4 trained them all; a finished run is reused). Every score below is then a
# mean over the seeds with a 95 % interval (`mtm.stats`), and every comparison of the two models is
# a difference *paired* by seed: seed 1 of MtM against seed 1 of the baseline, and so on.

# %%
MASKINGS = {"temporal": "temporal", "MtM": "mtm"}
device = pick_device()
models = {}                      # {(model, training seed): trained model}
for name, masking in MASKINGS.items():
    for seed in SINGLE_SEEDS:
        cfg = TrainConfig.preset(RUN.PRESET, masking=masking, model=RUN.MODEL,
                                 epochs=RUN.EPOCHS, seed=seed)
        # chapter 4's run folders; a finished run is reused
        folder = single_run_folder(masking, seed)
        best = train_once([session], cfg, RUN_DIR / folder, progress=False)
        models[name, seed], _ = load_model(best, device=device)
        print(f"{name}, training seed {seed}: {RUN.EPOCHS} epochs, "
              f"run folder {folder}/")
first = SINGLE_SEEDS[0]
print("parameters:",
      {name: sum(p.numel() for p in models[name, first].parameters())
       for name in MASKINGS})

# %% [markdown]
# ## 3. The four tasks
#
# Every task is run on the **test trials**, for **every neuron** of the session, with the model in
# evaluation mode (no dropout, no random masking). Each task hides part of the input (sets it to
# zero), asks for the rates, and scores only the hidden part. A task is a list of *configurations*
# (which neurons a forward pass hides), and every neuron is scored by exactly one of them, so each
# neuron gets exactly one score per task (`mtm.evaluate`, after the reference's `eval_utils`):
#
# | task | held out in one configuration | configurations | scored | MtM prompt |
# |---|---|---|---|---|
# | co-smoothing | neuron $i$, all 100 bins | one per neuron | neuron $i$, all bins | neuron |
# | forward prediction | the last 10 bins (200 ms), every neuron | one | every neuron, bins 90-99 | causal |
# | inter-region | every neuron of region $r$ | one per region | the neurons of $r$, all bins | inter-region |
# | intra-region | every neuron outside $i$'s region, and neuron $i$ | one per neuron | neuron $i$, all bins | intra-region |
#
# What each task asks:
#
# - **Co-smoothing**: predict a neuron from the simultaneous activity of all the others, the
#   question the *neuron* masking trains.
# - **Forward prediction**: predict the last 200 ms of the trial from what came before. A model
#   trained with the causal scheme (MtM, or causal masking alone) runs it with **causal attention**,
#   every bin seeing only the past, as it was trained. The temporal baseline keeps its bidirectional
#   attention; the hidden bins are zeros, so it too can only use the past. (The paper says "the last
#   10 %, 20 ms"; the code holds out 10 bins of 20 ms, 200 ms, and so do we.)
# - **Inter-region**: predict a whole region from the other regions, as when a region was not
#   recorded.
# - **Intra-region**: predict a neuron from the other neurons of its own region only; everything
#   outside the region is hidden too. A region with a single neuron is predicted from an all-zero
#   input.
#
# A prompted model gets the prompt of the matching training scheme; the baseline has no prompt, so
# nothing tells it which question it is being asked. The evaluation masks, one configuration each,
# for a neuron of `REGION` (red: hidden and scored; grey: hidden, not scored; white: visible):

# %% mystnb={"figure": {"caption": "One configuration of each activity task for the chosen region (REGION): its first neuron for co-smoothing and intra-region, the whole region for inter-region, and the last 10 bins for forward prediction. Time on x, neurons by region on y; red, hidden and scored; grey, hidden but not scored; white, visible. Each panel title gives the task's number of configurations.", "name": "fig-05-task-masks"}}
region = REGION if REGION in session.region_names else session.region_names[0]
plot_task_masks(session.regions, session.n_bins, region,
                bin_size=session.bin_size,
                t0=session.bin_times()[0] - session.bin_size / 2)
plt.show()
print("prompt per task:",
      {task: PROMPT_IDS[TASK_PROMPT[task]] for task in TASKS})
print("forward prediction is causal for models trained with:", CAUSAL_MASKINGS)
print("bins held out in forward prediction: the last", FORWARD_BINS)

# %% [markdown]
# Co-smoothing and intra-region need one configuration per neuron, inter-region one per region,
# forward prediction one. `mtm.evaluate.predict_heldout` stacks many configurations of the test
# trials into one large batch per forward pass, so a session of several hundred neurons needs a few
# hundred large passes rather than one small pass per neuron (`benchmarks/eval_speed.py` times it).
# It also skips, exactly, every configuration whose hidden neurons did not spike in a trial: hiding a
# silent neuron leaves the input unchanged, so that trial's prediction comes from a pass already made.
# The null model of each score is the neuron's mean over the *scored* window: for forward
# prediction, its mean over bins 90-99 of the test trials.
#
# ## 4. Every task, both models, neuron by neuron
#
# `evaluate_model(model, session, training_masking)` runs the four tasks and returns a `TaskResult`
# per task: the predicted rates and true counts of the scored window, the per-neuron scores `.bps`
# and their summaries `.mean_bps` and `.co_bps`. `training_masking` says how the model was trained,
# which decides the attention for forward prediction. Every model of every seed is evaluated; the
# table gives each run's per-neuron mean bits per spike, task by task:

# %%
# {(model, seed): {task: TaskResult}}, and seed 0's for the figures
all_results = {(name, seed): evaluate_model(model, session, MASKINGS[name])
               for (name, seed), model in models.items()}
results = {name: all_results[name, first] for name in MASKINGS}
scores = {key: task_scores(result) for key, result in all_results.items()}
# the cells of mtm.stats: one record per (seed, session) of each model
LABELS = {"temporal": "Temporal (baseline)", "MtM": "MtM (prompted)"}
records = {LABELS[name]: [{"seed": seed, "session": session.eid,
                           "scores": scores[name, seed]}
                          for seed in SINGLE_SEEDS]
           for name in MASKINGS}
display(Markdown(results_table({f"{name}, seed {seed}": scores[name, seed]
                                for name, seed in scores}, list(TASKS))))

# %% mystnb={"figure": {"caption": "Per-neuron bits per spike on the test trials, one panel per activity task, for training seed 0 of both models: the temporal baseline (x) against MtM (y), one dot per neuron, with the diagonal in grey. Each panel title gives the fraction of neurons above the diagonal.", "name": "fig-05-bps-scatter"}}
fig, axes = plt.subplots(2, 2, figsize=(7, 7), layout="constrained")
for ax, task in zip(axes.flat, TASKS):
    x, y = results["temporal"][task].bps, results["MtM"][task].bps
    plot_bps_scatter(x, y, "temporal", "MtM", ax=ax)
    both = np.isfinite(x) & np.isfinite(y)
    above = np.mean(y[both] > x[both])
    ax.set_title(f"{task}\n{above:.0%} of neurons above the diagonal",
                 fontsize=10)
    glue_number(f"above_{task}", 100 * above, "{:.0f}")
plt.show()

# %% [markdown]
# In {numref}`fig-05-bps-scatter`, one dot per neuron: its score under the temporal baseline (x) and
# under MtM (y), both trained with seed 0; above the diagonal, MtM predicts that neuron better. The
# paper shows this comparison for every session (its Figure 2). There, MtM improves on every activity
# task, and by far the most on the region tasks: in its single-session ablation (Table 1),
# co-smoothing goes from 0.84 to 0.98 bits per spike and forward prediction from 0.42 to 0.57, but
# intra-region from -0.20 to 0.43 and inter-region from 0.57 to 0.84. Temporal masking does teach a
# model to fill in a bin from the neurons' other bins; it never asks the model to predict a neuron,
# let alone a region, without seeing any of its activity.
#
# Here, the share of neurons above the diagonal is {glue:text}`above_co-smooth` % in co-smoothing,
# {glue:text}`above_forward-pred` % in forward prediction, {glue:text}`above_intra-region` % in
# intra-region and {glue:text}`above_inter-region` % in inter-region. One seed's dots do not say
# whether the models differ beyond the noise of training; the difference of the two models' mean
# scores, paired seed by seed over the training seeds, with its 95 % interval, does (the sentences
# below are written by the cell from the numbers; the means are in the table of section 6):

# %%
COMPARISON = "MtM minus temporal"
pair = (COMPARISON, LABELS["MtM"], LABELS["temporal"])
differences = paired_differences(records, [pair])[COMPARISON]
display(Markdown("\n".join(
    f"- {TABLE_COLUMNS[task]}: "
    f"{compare_words('MtM', 'the temporal baseline', differences[task])}."
    for task in TASKS)))
# {model: {task: mean with its interval}}
intervals = {label: row_intervals(cells) for label, cells in records.items()}
temporal_intra, mtm_intra = (intervals[LABELS[name]]["intra-region"].mean
                             for name in ("temporal", "MtM"))
glue_number("temporal_intra", temporal_intra)
glue_number("mtm_intra", mtm_intra)

# %% [markdown]
# On intra-region prediction the paper's temporal baseline fails: it scores -0.20 bits per spike in
# the paper's Table 1, where MtM reaches 0.43. Here the temporal baseline scores
# {glue:text}`temporal_intra` and MtM {glue:text}`mtm_intra` (means over the training seeds). In the
# synthetic sessions a neuron depends only on its own region's latents (the latent oracle of
# section 6 has the same information, and the same score, for co-smoothing and intra-region), so
# hiding the other regions takes away little from a model that has learned to predict a neuron from
# its neighbours at all, and a baseline that fills in time bins can still get far on this task.
#
# Which masking comes out ahead also depends on how the two models were trained: how many trials,
# how many optimiser steps, how wide. {doc}`10_budget` varies each of these alone and draws MtM and
# temporal masking against it ({numref}`fig-10-budget`), with a table of where this chapter's runs
# sit on those axes.
#
# ## 5. Predictions against the truth, for one region
#
# The inter-region task for `REGION`: every neuron of the region hidden, in every bin, and predicted
# from the other regions, by both models (training seed 0), in {numref}`fig-05-predicted-vs-true`.

# %% mystnb={"figure": {"caption": "Inter-region prediction of the chosen region (REGION) by both models, training seed 0. Top: one test trial's spike counts of the region's neurons (left) and each model's predicted rates for the same trial, on one colour scale (time from stimulus onset at 0, dashed). Bottom: the region's PSTH, mean over the test trials and the region's neurons, true (smoothed over one bin) and predicted by each model, on one axis.", "name": "fig-05-predicted-vs-true"}}
t0 = session.bin_times()[0] - session.bin_size / 2
inter = {name: results[name]["inter-region"] for name in MASKINGS}
plot_predicted_vs_true(inter["MtM"].spikes,
                       {name: inter[name].rates for name in MASKINGS},
                       session.regions, region, bin_size=session.bin_size,
                       t0=t0)
plt.show()


def region_psth(counts):
    """The region's PSTH (Hz, per bin): mean over trials and its neurons."""
    inside = session.regions == region
    return counts[..., inside].mean(axis=(0, 2)) / session.bin_size


true_psth = region_psth(inter["MtM"].spikes)
for name in MASKINGS:
    error = np.abs(region_psth(inter[name].rates) - true_psth).mean()
    glue_number(f"psth_error_{name}", error, "{:.1f}")
glue_number("psth_mean", true_psth.mean(), "{:.1f}")

# %% [markdown]
# A good inter-region prediction reproduces the region's response to the stimulus and to the
# movement that follows (bottom panel), and, trial by trial, the slow co-fluctuations of the
# region's neurons that the other regions share (the predicted rasters, compared with the spikes).
# The spikes themselves are Poisson noise around the rates: no model can predict individual spikes,
# and a good predicted raster looks like a smoothed version of the true one. A model that only
# learned each neuron's average would show the same rate in every trial. Over the trial, the
# region's predicted PSTH is off the true one by {glue:text}`psth_error_MtM` Hz on average (mean
# absolute difference per bin) for MtM and by {glue:text}`psth_error_temporal` Hz for the temporal
# baseline, for a true PSTH of {glue:text}`psth_mean` Hz on average.
#
# ## 6. Baselines, two yardsticks, and the true rates
#
# A score means little on its own: bits per spike depend on the neurons' rates, on the session and
# on the task. So every table in this book puts the models next to simple predictors and, on
# synthetic sessions, two yardsticks, all scored with exactly the same code:
#
# - **Mean rate**: each neuron's mean count on the training trials, in every bin: close to the null
#   model, so about 0 bits per spike, a little below because the null model uses the mean of the
#   scored window itself (for forward prediction the mean of the last 10 bins, which differs more
#   from the neuron's mean over the whole trial).
# - **PSTH**: each neuron's trial-averaged count per bin on the training trials: what the stimulus
#   and movement timing alone explain, the same in every trial.
# - **Linear regression** (`mtm.baselines.baseline_results`): ridge regression from the visible
#   neurons' smoothed spikes to each hidden neuron, fit on the training trials, for every
#   configuration of the task (for forward prediction: from every neuron's mean count in the 10 bins
#   before the held-out window). It is not a pushover: it sees the same visible neurons as the
#   models, and a small model trained on one session need not beat it.
# - **Bayes reference** (synthetic sessions only, `mtm.bayes.bayes_results`): for each task, the
#   expected counts given exactly the *spikes* the task leaves visible, computed with the generative
#   parameters of the session known (dynamics, couplings, loadings, baselines, the private noise's
#   size, the inputs' distribution): an approximate posterior over the latent states given those
#   spikes (a Laplace approximation, derived in the module's docstring), then each hidden count's
#   expectation under it. It uses nothing a model lacks except the parameters, so a model could in
#   principle reach it: it is the yardstick a model's *share* is measured against.
# - **Latent oracle** (synthetic sessions only, `mtm.oracle.oracle_results`): for each task, the
#   expected counts given exactly the information the task leaves visible, as the true latent
#   states rather than noisy spikes. No model can beat it on average (a model sees spikes, which carry
#   less): an upper bound, not a reachable score. Each task's information set is printed below.
# - **True rates** (synthetic sessions only): the rates that generated the spikes,
#   `evaluate_rates(session.rates, session)`. Not reachable by any model (see below).
#
# The table reports the per-neuron mean (the paper's convention); each model's row is the mean over
# the training seeds, ± the half-width of its 95 % interval (`mtm.stats`):

# %%
for task, information in TASK_INFORMATION.items():
    print(f"{task:>13}: {information}")
oracle = oracle_results(session)
bayes = bayes_results(session)
references = {LINEAR_ROW: baselines["linear"], "PSTH": baselines["psth"],
              "Mean rate": baselines["mean_rate"], BAYES_ROW: bayes,
              ORACLE_ROW: oracle, TRUE_RATES_ROW: true_rates}
table = {**{label: {task: i.mean for task, i in row.items()}
            for label, row in intervals.items()},
         **{name: task_scores(per_task)
            for name, per_task in references.items()}}
print(f"models: mean over training seeds {SINGLE_SEEDS} "
      "± half-width of the 95 % interval")
display(Markdown(interval_table(table, intervals, list(TASKS))))
# what a yardstick is: the Bayes reference between the linear baseline and
# the latent oracle, on every task
for task in TASKS:
    oracle_score, bayes_score = table[ORACLE_ROW][task], table[BAYES_ROW][task]
    assert_direction(f"the latent oracle is at least the Bayes reference "
                     f"on {task}", oracle_score, ">=", bayes_score)
    assert_direction(f"the Bayes reference is at least the linear baseline "
                     f"on {task}", bayes_score, ">=", table[LINEAR_ROW][task])

# %% [markdown]
# On every task the Bayes reference lies between the linear baseline and the latent oracle (the
# cell checks it). How close to the best reachable is each model, task by task? Its mean score as a
# share of the Bayes reference:

# %%
model_rows = {label: table[label] for label in intervals}
display(Markdown(oracle_share_table(model_rows, table[BAYES_ROW],
                                    list(TASKS))))
for name in MASKINGS:
    for task in TASKS:
        share = 100 * table[LABELS[name]][task] / table[BAYES_ROW][task]
        glue_number(f"share_{name}_{task}", share, "{:.0f}")
above_bayes = [f"{label} on {task}" for label in intervals for task in TASKS
               if intervals[label][task].low > table[BAYES_ROW][task]]
found = (", ".join(above_bayes)
         + " (a finding to explain: the reference is approximate).")
display(Markdown("A model whose whole interval lies above the Bayes "
                 "reference: " + (found if above_bayes else "none.")))

# %% [markdown]
# Against the Bayes reference, MtM reaches {glue:text}`share_MtM_co-smooth` % on co-smoothing,
# {glue:text}`share_MtM_forward-pred` % on forward prediction, {glue:text}`share_MtM_intra-region` %
# on intra-region and {glue:text}`share_MtM_inter-region` % on inter-region prediction; the temporal
# baseline {glue:text}`share_temporal_co-smooth` %, {glue:text}`share_temporal_forward-pred` %,
# {glue:text}`share_temporal_intra-region` % and {glue:text}`share_temporal_inter-region` %. Measured
# against the latent oracle instead, every share would be smaller: the oracle knows the latent states,
# which the spikes of a few hundred neurons firing a few times per second reveal only in part, so
# part of the gap to the oracle is closed to no predictor that sees spikes.
#
# The linear baseline is the floor a model has to clear. Each model against it, task by task, as the
# model's mean minus the baseline's score with the interval over the training seeds (the baseline is
# fit once; the sentences are written by the cell from the numbers):

# %%
# the baseline is fit once: the same score stands beside every seed
linear_cells = [{"seed": seed, "session": session.eid,
                 "scores": table[LINEAR_ROW]} for seed in SINGLE_SEEDS]
against = paired_differences(
    {**records, LINEAR_ROW: linear_cells},
    [(name, LABELS[name], LINEAR_ROW) for name in MASKINGS])
display(Markdown("\n".join(
    f"- {TABLE_COLUMNS[task]}: "
    f"{compare_words('MtM', 'the linear baseline', against['MtM'][task])}; "
    + compare_words("the temporal baseline", "the linear baseline",
                    against["temporal"][task]) + "."
    for task in TASKS)))

# %% [markdown]
# Intra-region prediction suits a linear map: in these sessions a neuron's rate follows its own
# region's latents, which the other neurons of the region also read out, so a weighted sum of their
# smoothed spikes already recovers much of what the hidden neuron does. The intra-region line above
# says how each model compares with it.
#
# And the same predictions in NLB's pooled convention (`.co_bps`), which weighs neurons by their
# spikes:

# %%
def pooled_scores(per_task):
    """{task: NLB's pooled co-bps} of one predictor's {task: TaskResult}."""
    return {task: result.co_bps for task, result in per_task.items()}


pooled_intervals = {
    LABELS[name]: row_intervals([
        {"seed": seed, "session": session.eid,
         "scores": pooled_scores(all_results[name, seed])}
        for seed in SINGLE_SEEDS])
    for name in MASKINGS}
pooled = {**{label: {task: i.mean for task, i in row.items()}
             for label, row in pooled_intervals.items()},
          **{name: pooled_scores(references[name])
             for name in (LINEAR_ROW, BAYES_ROW, ORACLE_ROW, TRUE_RATES_ROW)}}
display(Markdown(interval_table(pooled, pooled_intervals, list(TASKS))))

# %% [markdown]
# **The true rates are not reachable.** They are the same whatever is hidden, so they score the
# same on co-smoothing, intra- and inter-region (all three score every neuron over all 100 bins);
# forward prediction differs only because it scores bins 90-99. But a model that does not see a
# neuron cannot know everything in that neuron's true rate. In the
# synthetic sessions ({doc}`01_data`), every neuron's log-rate carries a slow fluctuation that is
# *private* to the neuron, drawn anew in every trial: no other neuron and no region shares it. When
# the neuron is hidden (co-smoothing, intra- and inter-region), nothing in the visible input says
# what its private fluctuation was in this trial. When the future is hidden (forward prediction),
# the noise that drives the latent dynamics after bin 90 cannot be known from the past either. The
# true rates contain all of that, so they score higher than any model could on these tasks, even a
# perfect one. The latent oracle removes exactly that part: for co-smoothing and intra-region it
# knows the neuron's own region's latents and averages the private fluctuation out (a log-normal
# moment in closed form); for inter-region it only knows the other regions and the task inputs, and
# infers the hidden region's latents from them with a Kalman smoother (one Gaussian conditioning),
# so its bound is lower; for forward prediction it knows everything before the window, including the
# neuron's own smooth private fluctuation, and rolls the latent dynamics forward. The derivations are
# in the docstring of `mtm.oracle`. The Bayes reference goes one step further down: it does not know
# the latents either, only the visible spikes, and infers the latents (and, for forward prediction,
# each neuron's private fluctuation) from them, as a model has to. Real recordings have no oracle, no
# Bayes reference and no true rates: there, only the baselines and the comparison between models
# remain.
#
# ## Summary
#
# - Bits per spike is the Poisson log-likelihood gained over each neuron's own mean rate, in bits
#   per spike. NLB pools all neurons into one number (co-bps); MtM averages per-neuron scores, which
#   is what the paper's tables report, and so do ours. Both come from `mtm.evaluate.bits_per_spike`.
# - Co-smoothing hides one neuron at a time; forward prediction the last 200 ms (with causal
#   attention for models trained with the causal scheme); inter-region a whole region; intra-region
#   everything outside a neuron's region and the neuron itself. Each neuron gets one score per task,
#   with the matching prompt for MtM.
# - `evaluate_model` runs all four tasks; `plot_bps_scatter` compares two models neuron by neuron,
#   `plot_predicted_vs_true` shows their predictions against the spikes.
# - One training run is one draw: each model is trained with several seeds, reported as a mean with
#   a 95 % interval, and two models are compared by their difference paired seed by seed; a
#   difference whose interval contains zero is not a difference this experiment can show.
# - Baselines (mean rate, PSTH, linear regression) and two yardsticks put the scores in context: the
#   Bayes reference, the best prediction given the visible spikes (reachable in principle, so a
#   model's share of it says how close to the best it is), and the latent oracle, given the true
#   latents (an upper bound). The true rates include each neuron's private fluctuation, which no
#   model can predict for a hidden neuron: they are not a reachable score.
#
# ## Exercises
#
# Each exercise's solution is the folded cell under it (click to show its code), executed with the
# chapter; the solution's explanation is in words above that cell.
#
# **Exercise 1.** Compute the per-neuron bps of the MtM model's co-smoothing predictions with
# `bits_per_spike` and check it equals `results["MtM"]["co-smooth"].bps`. Which five neurons score
# worst, and what are their firing rates?
#
# :::{admonition} Hint
# :class: dropdown
# A `TaskResult` keeps the predicted `rates` and the observed `spikes` of the scored window. Neurons
# without a test spike are NaN in both arrays of scores, so compare with `equal_nan=True`. The
# firing rates on the test trials are `rate_hz` from section 1.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The two arrays are identical, NaNs included: `TaskResult.__post_init__` computes `.bps` with the
# same function (`mtm.metrics.poisson_scores`) on the same `rates` and `spikes` that `bits_per_spike`
# receives in the cell below. `np.argsort` puts NaNs last, so its first five entries are the five
# worst scores. Compare their rates with the median the cell prints last: the worst are usually
# low-rate neurons, the ones that scatter widely in {numref}`fig-05-bps-per-neuron`. With a handful
# of test spikes, a predicted rate that is a little too high in bins where the neuron happens not to
# fire costs more log-likelihood than its few spikes can earn back, and the loss is divided by that
# small spike count. A high-rate neuron among the worst would point to a real failure of the model,
# not to noise.
# :::

# %% tags=["hide-input"]
co = results["MtM"]["co-smooth"]
per_neuron = bits_per_spike(co.rates, co.spikes, per_neuron=True)
print("identical:", np.array_equal(per_neuron, co.bps, equal_nan=True))
for n in np.argsort(per_neuron)[:5]:             # NaNs sort last
    print(f"neuron {n} ({session.regions[n]}): "
          f"{per_neuron[n]:.2f} bits/spike, {rate_hz[n]:.2f} Hz, "
          f"{int(co.spikes[..., n].sum())} test spikes")
print(f"median firing rate of all neurons: {np.median(rate_hz):.2f} Hz")

# %% [markdown]
# **Exercise 2.** Evaluate the MtM model on intra-region with the wrong prompt: call
# `mtm.evaluate.predict_heldout` with the intra-region configurations and
# `prompt=PROMPT_IDS["neuron"]`. How much does the score change?
#
# :::{admonition} Hint
# :class: dropdown
# `mtm.evaluate.task_configurations("intra-region", session.regions)` gives `hidden` and `scored`.
# `predict_heldout` wants the test spikes as a tensor on the model's device and returns rates
# (trials, bins, neurons); wrap them in a `TaskResult` to score them. `evaluate_model` also takes
# `prompts={"intra-region": "neuron"}`, which does the same in one call.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# `causal=False` is what `attention_is_causal` gives for every prompt but `causal`. The intra-region
# input hides every region but one, a pattern that the model met in training only together with the
# intra-region prompt. The neuron prompt announces a few scattered missing neurons, so the model may
# read the zeroed regions as silent neurons rather than as hidden ones. The change the cell prints
# says how much the model relies on the prompt rather than on the pattern of zeros: if the score
# barely moves, the model reads the task from its input alone. One seed's change is one draw;
# running the cell with another seed's model (`models["MtM", 1]`) shows how much it varies.
# :::

# %% tags=["hide-input"]
import torch

from mtm.evaluate import TaskResult, predict_heldout, task_configurations

mtm_model = models["MtM", first]
test_counts = np.array(test_spikes)
spikes = torch.as_tensor(test_counts).to(device)
hidden, scored = task_configurations("intra-region", session.regions)
with torch.no_grad():
    rates = predict_heldout(mtm_model, session.eid, spikes, hidden, scored,
                            prompt=PROMPT_IDS["neuron"], causal=False)
wrong = TaskResult("intra-region", rates.cpu().numpy(), test_counts,
                   np.arange(session.n_bins))
right = results["MtM"]["intra-region"]
print(f"MtM, seed {first}, intra-region: "
      f"intra-region prompt {right.mean_bps:.3f}, "
      f"neuron prompt {wrong.mean_bps:.3f} bits/spike "
      f"(change {wrong.mean_bps - right.mean_bps:+.3f})")
# the same in one call:
# evaluate_model(mtm_model, session, "mtm", tasks=("intra-region",),
#                prompts={"intra-region": "neuron"})["intra-region"]

# %% [markdown]
# **Exercise 3.** Run forward prediction for the MtM model with bidirectional attention
# (`training_masking="temporal"` tells `evaluate_model` to use it). Does causal attention help?
#
# :::{admonition} Hint
# :class: dropdown
# Read `mtm.evaluate.attention_is_causal`: with `training_masking="temporal"` it returns False for
# every task, while the prompt stays `causal`. Pass `tasks=("forward-pred",)` to run only that task.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Both runs see the same input: the last 10 bins are zeros, so bidirectional attention gains no
# information about the future. What changes is how the past bins are processed. In training, the
# causal prompt always came with causal attention (`mtm.masking.is_causal`), so under the causal
# prompt the model never had the past bins attend to a block of zeroed future bins: the
# bidirectional run feeds it an input outside what it learned for this prompt, and the scores the
# cell prints show, seed by seed, what that costs. The temporal baseline is the opposite case: it
# was trained bidirectionally, and `evaluate_model(models["temporal", 0], session, "causal",
# tasks=("forward-pred",))` would force causal attention on it, which it never saw in training.
# :::

# %% tags=["hide-input"]
for seed in SINGLE_SEEDS:
    bidirectional = evaluate_model(models["MtM", seed], session, "temporal",
                                   tasks=("forward-pred",))["forward-pred"]
    causal = all_results["MtM", seed]["forward-pred"]
    print(f"MtM, seed {seed}, forward prediction: causal attention "
          f"{causal.mean_bps:.3f}, bidirectional {bidirectional.mean_bps:.3f}"
          " bits/spike")

# %% [markdown]
# **Exercise 4.** Evaluate the MtM model (seed 0) on the validation split instead (`split="val"`).
# How different are the scores, and why are validation scores of a small session noisier?
#
# :::{admonition} Hint
# :class: dropdown
# Count the trials of each split (`session.splits`). Score the latent oracle on the validation split
# too (`oracle_results(session, split="val")`): the oracle is not trained, so whatever moves its score
# between the splits is the split itself.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The validation split holds half as many trials as the test split (the cell prints the trials of
# each split; `mtm.data.split_trials` makes them). Each neuron's score then rests on half as many
# spikes, so the per-neuron scores scatter more, as for the low-rate neurons of section 1. More
# neurons may have no spike at all and drop out as NaN, so the mean runs over a different set of
# neurons. The null model is each neuron's mean over these few trials. Compare the model's change
# between the splits with the oracle's: a model that moves about as much as the oracle moves with
# the split, not because it is better or worse on one of them. The validation split is also the
# split the checkpoint was selected on (with the run's own masking, not these tasks), so its scores
# can be slightly optimistic.
# :::

# %% tags=["hide-input"]
print("trials per split:",
      {name: len(idx) for name, idx in session.splits.items()})
validation = evaluate_model(models["MtM", first], session, "mtm", split="val")
rows = {"MtM, test": scores["MtM", first],
        "MtM, validation": task_scores(validation),
        "Latent oracle, test": task_scores(oracle)}
rows["Latent oracle, validation"] = task_scores(
    oracle_results(session, split="val"))
display(Markdown(results_table(rows, list(TASKS))))

# %% [markdown]
# **Exercise 5.** For which region is inter-region prediction easiest, and how does that relate to
# the coupling graph of {doc}`01_data` (VISa-LP-PO, CA1-DG)?
#
# :::{admonition} Hint
# :class: dropdown
# The inter-region result already holds every region: average its per-neuron `.bps` over the
# neurons of each region (`session.regions == r`). Do the same for the latent oracle and the Bayes
# reference, which give the best score each region allows with the true latents and with the
# visible spikes. `mtm.data.synthetic` holds the coupling strengths (`COUPLING`) and the regions'
# mean rates (`MEAN_RATE_HZ`).
# :::
#
# :::{admonition} Solution
# :class: dropdown
# In the synthetic world ({doc}`01_data`; the cell prints the couplings), VISa, LP and PO are coupled
# to each other with full strength, so each of them has two strong partners; CA1 and DG have one
# strong partner each (each other) and one weak link each. Every region also receives the task
# inputs (stimulus, movement, whisking), with the sensitivities of `mtm.data.synthetic.INPUT_GAIN`,
# and any input that reaches another region shows there too. So expect the yardsticks' rows to be
# highest for the thalamo-cortical triangle and lower for the hippocampal pair, which has to be
# predicted mostly from each other. The models follow the yardsticks only in part: CA1 and DG also
# have the lowest mean rates of the generator (printed too), so their per-neuron scores are the
# noisiest. Read a model's row as a share of the Bayes reference's for each region before calling
# one region easy for the model. To see a region's predictions, draw
# {numref}`fig-05-predicted-vs-true` again with another `region`.
# :::

# %% tags=["hide-input"]
from mtm.data.synthetic import COUPLING, MEAN_RATE_HZ

predictors = {"Temporal (baseline), seed 0": results["temporal"],
              "MtM (prompted), seed 0": results["MtM"],
              LINEAR_ROW: baselines["linear"], BAYES_ROW: bayes,
              ORACLE_ROW: oracle}
rows = {}
for label, per_task in predictors.items():
    bps = per_task["inter-region"].bps
    rows[label] = {r: float(np.nanmean(bps[session.regions == r]))
                   for r in session.region_names}
display(Markdown(results_table(rows, columns=session.region_names)))
print("coupling strengths:", COUPLING)
print("mean rates (Hz):", MEAN_RATE_HZ)

# %% tags=["remove-input"]
print(RUN.done())

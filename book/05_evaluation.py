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
#   states, an upper bound; and why the true rates are neither;
# - one model scored in two conventions: the paper's per-neuron bits per spike beside Poisson $D^2$,
#   and the BrainWideBench benchmark's own tasks and scores.
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
                      glue_number, single_run_folder, train_all,
                      verdict_sentence, what_this_run_shows)
from mtm.bwb import predict_ts2
from mtm.bwb import TASKS as TS2_TASKS
from mtm.checkpoint import load_model
from mtm.data import synthetic_session
from mtm.evaluate import (CAUSAL_MASKINGS, FORWARD_BINS, TASK_PROMPT, TASKS,
                          bits_per_spike, evaluate_model, evaluate_rates,
                          region_scores, task_scores)
from mtm.masking import PROMPT_IDS
from mtm.oracle import TASK_INFORMATION, oracle_results
from mtm.plots import (oracle_share_table, plot_bps_scatter,
                       plot_predicted_vs_true, plot_task_masks, results_table,
                       use_style)
from mtm.reproduce.scheduler import paired_differences, row_intervals
from mtm.reproduce.tables import interval_table
from mtm.train import TrainConfig, pick_device

use_style()

# %% tags=["parameters"]
# SETTINGS: "auto" (smoke under MTM_SMOKE=1, else gpu or book) or one of
# them; OVERRIDES replaces values of mtm.book.CHAPTER_SETTINGS, {"EPOCHS": 50}
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
configs = {(name, seed): TrainConfig.preset(RUN.PRESET, masking=masking,
                                            model=RUN.MODEL, epochs=RUN.EPOCHS,
                                            seed=seed)
           for name, masking in MASKINGS.items() for seed in SINGLE_SEEDS}
# chapter 4's run folders: finished runs are reused (trained here otherwise,
# as chapter 4 trains them)
folders = {k: single_run_folder(c.masking, c.seed) for k, c in configs.items()}
trained = train_all({RUN_DIR / folders[key]: ([session], cfg)
                     for key, cfg in configs.items()})
models = {}                      # {(model, training seed): trained model}
for (name, seed), folder in folders.items():
    models[name, seed], _ = load_model(trained[RUN_DIR / folder],
                                       device=device)
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

# %% mystnb={"figure": {"caption": "One configuration of each activity task for the region named in the figure's title (the parameter REGION): a neuron in the middle of the region for co-smoothing and intra-region (a red line), the whole region for inter-region, and the last 10 bins for forward prediction. Time on x, neurons by region on y; red, hidden and scored; grey, hidden but not scored; white, visible. Each panel title gives the task's number of configurations.", "name": "fig-05-task-masks"}}
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
# Each panel's title gives the share of neurons above the diagonal in this run. One seed's dots do
# not say whether the models differ beyond the noise of training; the difference of the two models'
# mean scores, paired seed by seed over the training seeds, with its 95 % interval, does: section 6
# gives it for every task, beside the baselines and the yardsticks.
#
# On intra-region prediction the paper's temporal baseline fails: it scores -0.20 bits per spike in
# the paper's Table 1, where MtM reaches 0.43. Here, the intra-region panel above and the tables of
# section 6 show how the two compare. In the synthetic sessions a neuron depends only on its own
# region's latents (the latent oracle of section 6 has the same information, and the same score,
# for co-smoothing and intra-region), so hiding the other regions takes away little from a model
# that has learned to predict a neuron from its neighbours at all, and a baseline that fills in
# time bins can still get far on this task.
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

# %% mystnb={"figure": {"caption": "Inter-region prediction of the region named on the figure (the parameter REGION) by both models, training seed 0. Top: one test trial's spike counts of the region's neurons (left) and each model's predicted rates for the same trial, on one colour scale (time from stimulus onset at 0, dashed). Bottom: the region's PSTH, mean over the test trials and the region's neurons, true (smoothed over one bin) and predicted by each model, on one axis.", "name": "fig-05-predicted-vs-true"}}
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
    print(f"{name}: the predicted PSTH is off by {error:.1f} Hz on average")
print(f"the true PSTH: {true_psth.mean():.1f} Hz on average")

# %% [markdown]
# A good inter-region prediction reproduces the region's response to the stimulus and to the
# movement that follows (bottom panel), and, trial by trial, the slow co-fluctuations of the
# region's neurons that the other regions share (the predicted rasters, compared with the spikes).
# The spikes themselves are Poisson noise around the rates: no model can predict individual spikes,
# and a good predicted raster looks like a smoothed version of the true one. A model that only
# learned each neuron's average would show the same rate in every trial. The lines under the figure
# give, for each model, how far the region's predicted PSTH is from the true one over the trial
# (the mean absolute difference per bin), beside the true PSTH's mean.
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
# {model: {task: mean over the seeds with its interval}}
intervals = {label: row_intervals(cells) for label, cells in records.items()}
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
for task in TASKS:   # the Bayes reference between the linear baseline, oracle
    gaps = (table[ORACLE_ROW][task] - table[BAYES_ROW][task],
            table[BAYES_ROW][task] - table[LINEAR_ROW][task])
    assert_direction(f"linear <= Bayes <= oracle on {task}", min(gaps),
                     ">=", 0)

# %% [markdown]
# On every task the Bayes reference lies between the linear baseline and the latent oracle (the
# cell checks it). How close to the best reachable is each model, task by task? Its mean score as a
# share of the Bayes reference:

# %%
model_rows = {label: table[label] for label in intervals}
display(Markdown(oracle_share_table(model_rows, table[BAYES_ROW],
                                    list(TASKS))))
above_bayes = [f"{label} on {task}" for label in intervals for task in TASKS
               if intervals[label][task].low > table[BAYES_ROW][task]]
print("a model whose whole interval lies above the Bayes reference (a finding "
      "to explain: the reference is approximate):", above_bayes or "none")

# %% [markdown]
# Measured against the latent oracle instead, every share would be smaller: the oracle knows the
# latent states, which the spikes of a few hundred neurons firing a few times per second reveal only
# in part, so part of the gap to the oracle is closed to no predictor that sees spikes.
#
# Now the comparisons, each a difference of mean scores with its 95 % interval over the training
# seeds: MtM against the temporal baseline (paired seed by seed), and each model against the linear
# baseline, the floor a model has to clear (fit once, so the same score stands beside every seed).
# A bold cell's interval excludes zero:

# %%
linear_cells = [{"seed": seed, "session": session.eid,
                 "scores": table[LINEAR_ROW]} for seed in SINGLE_SEEDS]
PAIRS = {"MtM − temporal": (LABELS["MtM"], LABELS["temporal"]),
         "MtM − linear": (LABELS["MtM"], LINEAR_ROW),
         "Temporal − linear": (LABELS["temporal"], LINEAR_ROW)}
differences = paired_differences(
    {**records, LINEAR_ROW: linear_cells},
    [(name, a, b) for name, (a, b) in PAIRS.items()])
display(Markdown(interval_table(differences, differences, list(TASKS),
                                sign=True)))

# %% [markdown]
# Intra-region prediction suits a linear map: in these sessions a neuron's rate follows its own
# region's latents, which the other neurons of the region also read out, so a weighted sum of their
# smoothed spikes already recovers much of what the hidden neuron does. The intra-region column
# above says how each model compares with it.
#
# And the same predictions in NLB's pooled convention (`.co_bps`), which weighs neurons by their
# spikes:

# %%
pooled_intervals = {
    LABELS[name]: row_intervals([
        {"seed": seed, "session": session.eid,
         "scores": task_scores(all_results[name, seed], "co_bps")}
        for seed in SINGLE_SEEDS])
    for name in MASKINGS}
pooled = {**{label: {task: i.mean for task, i in row.items()}
             for label, row in pooled_intervals.items()},
          **{name: task_scores(references[name], "co_bps")
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
# ## 7. The same model, the benchmark's way
#
# The IBL community's benchmark for this kind of model, BrainWideBench, publishes its evaluation
# contract as a package (`ibl-bwb-eval`), and `mtm` follows it in `mtm.bwb` (the README's
# "Evaluating the BrainWideBench way" gives the one command, `mtm evaluate ... --bwb DIR`, that also
# writes the benchmark's submission files). Its conventions differ from the paper's in two ways.
#
# - **The score.** Beside bits per spike, the benchmark reports **Poisson $D^2$**
#   (`mtm.metrics.poisson_d2`): per neuron, the share of the explainable Poisson deviance a
#   prediction explains, that is, its bits per spike divided by those of the *saturated* model, which
#   predicts every count exactly. 1 is a perfect prediction, 0 the neuron's mean rate. A neuron's
#   bits per spike grow with how much its counts vary; $D^2$ divides that out, so neurons of
#   different rates are on one scale. `TaskResult.d2` holds it per neuron, and
#   `task_scores(results, "d2")` averages it over neurons, as the benchmark does.
# - **The tasks.** The benchmark scores windows of 1 s (50 bins) at every bin offset, and the model
#   sees the window alone. Its `co_smoothing` hides a fixed tenth of the units *together* (those
#   first in a hash order of their ids) and scores only them; its `forecasting` hides and scores the
#   last 5 bins (100 ms) of each window. Its bits per spike are pooled over the units that spike.
#
# One model, MtM of training seed 0, in both conventions (`mtm.bwb.predict_ts2` runs the
# benchmark's tasks on the session's test trials; its table rows put `co_smoothing` under
# co-smoothing and `forecasting` under forward prediction):

# %%
mtm_tasks = results["MtM"]   # the four tasks of section 4, training seed 0
ts2 = predict_ts2(models["MtM", first], session, "mtm")
conventions = {
    "mtm: per-neuron bits per spike": task_scores(mtm_tasks),
    "mtm: Poisson D² (mean over neurons)": task_scores(mtm_tasks, "d2"),
    "mtm: pooled bits per spike (NLB)": task_scores(mtm_tasks, "co_bps"),
    "BrainWideBench TS2: Poisson D²": {
        TS2_TASKS[task]: r.poisson_d2 for task, r in ts2.items()},
    "BrainWideBench TS2: pooled bits per spike": {
        TS2_TASKS[task]: r.bps for task, r in ts2.items()}}
display(Markdown(results_table(conventions, ["co-smooth", "forward-pred"])))

# %% [markdown]
# The rows are not one number written five ways: the benchmark's co-smoothing hides many units at
# once and scores only them, in windows half a trial long, and its forecasting predicts 100 ms
# rather than 200 ms. Compare two models only within one convention (one row of each); a number
# reported "the benchmark's way" is one of the last two rows. The package's test
# `tests/test_bwb.py` runs the benchmark's own scorer on `mtm`'s exported files and requires the
# same bits per spike and $D^2$ as `mtm.bwb` to $10^{-6}$.
#
# ## 8. What this run shows
#
# The box is written by the cell from the differences of section 6, so its words follow the
# numbers of the run in front of you:

# %%
for name in MASKINGS:   # the numbers of the text below
    for task in TASKS:
        glue_number(f"mean_{name}_{task}", table[LABELS[name]][task])
shares = {label: [100 * table[label][t] / table[BAYES_ROW][t] for t in TASKS
                  if table[BAYES_ROW][t] > 0] for label in intervals}
what_this_run_shows(
    verdict_sentence("MtM", "the temporal baseline",
                     differences["MtM − temporal"]),
    verdict_sentence("MtM", "the linear baseline",
                     differences["MtM − linear"]),
    verdict_sentence("The temporal baseline", "the linear baseline",
                     differences["Temporal − linear"]),
    f"As a share of the Bayes reference, MtM reaches "
    f"{min(shares[LABELS['MtM']]):.0f} to {max(shares[LABELS['MtM']]):.0f} % "
    f"across the tasks, the temporal baseline "
    f"{min(shares[LABELS['temporal']]):.0f} to "
    f"{max(shares[LABELS['temporal']]):.0f} %")

# %% [markdown]
# In numbers: averaged over the training seeds, MtM scores {glue:text}`mean_MtM_co-smooth` bits per
# spike on co-smoothing, {glue:text}`mean_MtM_forward-pred` on forward prediction,
# {glue:text}`mean_MtM_intra-region` on intra-region and {glue:text}`mean_MtM_inter-region` on
# inter-region, and the temporal baseline {glue:text}`mean_temporal_co-smooth`,
# {glue:text}`mean_temporal_forward-pred`, {glue:text}`mean_temporal_intra-region` and
# {glue:text}`mean_temporal_inter-region`. The paper's Table 1 (one IBL session, a 5 x 512 model
# trained for 1000 epochs) has MtM at 0.98, 0.57, 0.43 and 0.84 and the temporal baseline at 0.84,
# 0.42, -0.20 and 0.57: MtM ahead on every task, by far the most on intra-region. This run's
# numbers depend on one synthetic session, the `small` model and its training (the settings line at
# the top gives the session's size and the epochs); {doc}`10_budget` varies each of these.
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
# - Poisson $D^2$ divides a neuron's bits per spike by the most its counts allow, so neurons of
#   different rates share one scale; BrainWideBench reports it on its own tasks (`mtm.bwb`), which
#   hide and score other entries than the paper's.
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
# The inter-region result already holds every region: `mtm.evaluate.region_scores` averages its
# per-neuron `.bps` over the neurons of each region. Do the same for the latent oracle and the Bayes
# reference, which give the best score each region allows with the true latents and with the
# visible spikes. `mtm.data.synthetic` holds the coupling strengths (`COUPLING`) and the regions'
# mean rates (`MEAN_RATE_HZ`).
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell's table gives each region's score, and its last lines name the region each row finds
# easiest. Two things set the order, and they need not agree. The first is how much of a region's
# latent state the other regions carry. In the synthetic world ({doc}`01_data`; the cell prints the
# couplings), VISa, LP and PO are coupled to each other with full strength, so each has two strong
# partners; CA1 and DG have one strong partner each (each other) and one weak link each (VISa-CA1,
# DG-LP). Every region also receives the task inputs (stimulus, movement, whisking), with the
# sensitivities of `mtm.data.synthetic.INPUT_GAIN`, and an input that reaches another region shows
# there too. Counting strong partners alone would make the thalamo-cortical triangle the easiest. The
# second is what a neuron's score measures: bits per spike is a gain *per spike* over the neuron's
# own mean rate, so it depends on how strongly the region's latents modulate its neurons against
# their private fluctuation, not on how many spikes they fire. CA1 and DG have the lowest mean rates
# of the generator (printed too): their per-neuron scores rest on few spikes and scatter most, in
# both directions (section 1). So read the yardsticks' rows first: they say which regions this
# session makes easy for any predictor. Then read a model's row as a share of the Bayes reference's
# for each region before calling one region easy or hard for the model. To see a region's
# predictions, draw {numref}`fig-05-predicted-vs-true` again with another `region`.
# :::

# %% tags=["hide-input"]
from mtm.data.synthetic import COUPLING, MEAN_RATE_HZ

predictors = {"Temporal (baseline), seed 0": results["temporal"],
              "MtM (prompted), seed 0": results["MtM"],
              LINEAR_ROW: baselines["linear"], BAYES_ROW: bayes,
              ORACLE_ROW: oracle}
rows = {label: region_scores(per_task["inter-region"], session.regions)
        for label, per_task in predictors.items()}
display(Markdown(results_table(rows, columns=session.region_names)))
print("coupling strengths:", COUPLING)
print("mean rates (Hz):", MEAN_RATE_HZ)
for label, row in rows.items():
    scored = [r for r in row if np.isfinite(row[r])]
    print(f"easiest for {label}: {max(scored, key=row.get, default='-')}")

# %% tags=["remove-input"]
print(RUN.done())

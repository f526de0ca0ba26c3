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
# # 5. Evaluation: co-smoothing, forward prediction, intra- and inter-region
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/05_evaluation.ipynb)
#
# **What you will learn**
#
# - what *bits per spike* measures, and the two ways of averaging it: NLB's pooled co-bps and the
#   per-neuron mean that the MtM paper's tables use;
# - the four activity tasks exactly as `mtm.evaluate` runs them: what is held out, what is scored,
#   which prompt, and when the attention is causal;
# - how to compare two models neuron by neuron, and how their predictions look against the spikes;
# - where a model sits between simple baselines and each task's *oracle*, the best score the task
#   allows, and why the true rates are not that bound.
#
# *About 10 minutes to read. The two models are those of {doc}`04_training`, reused from its run
# folder when that chapter ran first with the same settings, and trained here otherwise (with the
# `gpu` settings, the lines under the parameters say how many epochs fit the chapter's time budget).*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; everywhere else it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE], check=True)

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from mtm.baselines import BASELINES, ORACLE_ROW, TRUE_RATES_ROW, baseline_results
from mtm.book import chapter_settings, train_once
from mtm.checkpoint import load_model
from mtm.data import synthetic_session
from mtm.evaluate import (CAUSAL_MASKINGS, FORWARD_BINS, TASK_PROMPT, TASKS,
                          bits_per_spike, evaluate_model, evaluate_rates)
from mtm.masking import PROMPT_IDS
from mtm.oracle import TASK_INFORMATION, oracle_results
from mtm.plots import (oracle_share_table, plot_bps_scatter, plot_predicted_vs_true, plot_task_masks,
                       results_table, use_style)
from mtm.train import TrainConfig, pick_device

use_style()

# %% tags=["parameters"]
SETTINGS = "auto"          # "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else gpu or book
SEED = 0                   # which synthetic session
PRESET = None              # training preset, "small" or "paper" (None: the settings' value)
N_TRIALS = None            # trials of the session (None: the settings' value)
N_NEURONS = None           # neurons of the session (None: the settings' value)
EPOCHS = None              # training epochs (None: the settings' value)
MODEL = None               # model size overrides (None: the settings' value)
REGION = "LP"              # the region shown in the figures
RUN_DIR = None             # folder of the trained runs, shared with chapters 4 and 6 (None: default)

# %%
RUN = chapter_settings("05_evaluation", SETTINGS, PRESET=PRESET, N_TRIALS=N_TRIALS,
                       N_NEURONS=N_NEURONS, EPOCHS=EPOCHS, MODEL=MODEL)
PRESET, N_TRIALS, N_NEURONS, EPOCHS, MODEL = RUN.unpack(
    "PRESET", "N_TRIALS", "N_NEURONS", "EPOCHS", "MODEL")
RUN_DIR = Path(RUN_DIR) if RUN_DIR else RUN.run_dir

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
session = synthetic_session(SEED, N_TRIALS, N_NEURONS)
print(session)
true_rates = evaluate_rates(session.rates, session)     # the true rates, on every task
baselines = baseline_results(session, which=BASELINES)  # linear, PSTH, mean rate

rate_hz = session.spikes[session.splits["test"]].mean(axis=(0, 1)) / session.bin_size
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
for name, result, color in (("true rates", true_rates["co-smooth"], "black"),
                            ("PSTH", baselines["psth"]["co-smooth"], "tab:green")):
    per_neuron = bits_per_spike(result.rates, result.spikes, per_neuron=True)
    pooled = bits_per_spike(result.rates, result.spikes)
    mean = np.nanmean(per_neuron)
    ax.scatter(rate_hz, per_neuron, s=12, color=color, alpha=0.7,
               label=f"{name}: per neuron")
    ax.axhline(pooled, color=color, lw=1.5, label=f"{name}: NLB pooled co-bps")
    ax.axhline(mean, color=color, lw=1.5, ls="--", label=f"{name}: per-neuron mean")
    print(f"{name:>10}: pooled {pooled:.3f} bits/spike, per-neuron mean {mean:.3f}, "
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
# ## 2. Two models to evaluate
#
# The temporal baseline and prompted MtM of {doc}`04_training`: the same session, the same settings,
# the same run folder.

# %%
MASKINGS = {"temporal": "temporal", "MtM": "mtm"}
device = pick_device()
models = {}
for name, masking in MASKINGS.items():
    cfg = TrainConfig.preset(PRESET, masking=masking, model=MODEL, epochs=EPOCHS)
    best = train_once([session], cfg, RUN_DIR / masking)
    models[name], _ = load_model(best, device=device)
print("parameters:", {name: sum(p.numel() for p in m.parameters())
                      for name, m in models.items()})

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
plot_task_masks(session.regions, session.n_bins, region, bin_size=session.bin_size,
                t0=session.bin_times()[0] - session.bin_size / 2)
plt.show()
print("prompt per task:", {task: PROMPT_IDS[TASK_PROMPT[task]] for task in TASKS})
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
# which decides the attention for forward prediction.

# %% mystnb={"figure": {"caption": "Per-neuron bits per spike on the test trials, one panel per activity task: the temporal baseline (x) against MtM (y), one dot per neuron, with the diagonal in grey. Each panel title gives the fraction of neurons above the diagonal.", "name": "fig-05-bps-scatter"}}
results = {name: evaluate_model(model, session, MASKINGS[name])
           for name, model in models.items()}

fig, axes = plt.subplots(2, 2, figsize=(8, 7.5), layout="constrained")
for ax, task in zip(axes.flat, TASKS):
    x, y = results["temporal"][task].bps, results["MtM"][task].bps
    plot_bps_scatter(x, y, "temporal", "MtM", ax=ax)
    both = np.isfinite(x) & np.isfinite(y)
    above = np.mean(y[both] > x[both])
    ax.set_title(f"{task}\n{above:.0%} of neurons above the diagonal", fontsize=10)
plt.show()

# %% [markdown]
# In {numref}`fig-05-bps-scatter`, one dot per neuron: its score under the temporal baseline (x) and under MtM (y); above the
# diagonal, MtM predicts that neuron better (the panel titles give the fraction of neurons above
# it). The paper shows this comparison for every session (its Figure 2). There, MtM improves on
# every activity task, and by far the most on the region tasks: in its single-session ablation
# (Table 1), co-smoothing goes from 0.84 to 0.98 bits per spike and forward prediction from 0.42 to
# 0.57, but intra-region from -0.20 to 0.43 and inter-region from 0.57 to 0.84. Temporal masking
# does teach a model to fill in a bin from the neurons' other bins; it never asks the model to
# predict a neuron, let alone a region, without seeing any of its activity.
#
# In this run, MtM's dots lie above the diagonal on all four tasks, for most neurons: 82 % of them
# in co-smoothing, 71 % in forward prediction, 79 % in intra-region and 89 % in inter-region. The
# mean scores of the table in section 6, temporal against MtM, are: co-smoothing 0.35 and 0.44,
# forward prediction 0.05 and 0.22, intra-region 0.34 and 0.43, inter-region 0.07 and 0.29 bits
# per spike. As in the paper, MtM gains on every task, and much on inter-region. Unlike in the
# paper, it gains little on intra-region: the temporal baseline already scores 0.34 there, against
# the paper's -0.20 (MtM reaches 0.43 in both). A likely reason: in the synthetic sessions a neuron
# depends only on its own region's latents (the oracle of section 6 has the same information, and
# the same score, for co-smoothing and intra-region), so hiding the other regions takes away
# little.
#
# ## 5. Predictions against the truth, for one region
#
# The inter-region task for `REGION`: every neuron of the region hidden, in every bin, and predicted
# from the other regions. Left, one test trial's spike counts; middle, the predicted rates for the
# same trial (same colour scale); right, the region's PSTH (mean over trials and neurons), true and
# predicted.

# %%
t0 = session.bin_times()[0] - session.bin_size / 2
for name in MASKINGS:
    result = results[name]["inter-region"]
    plot_predicted_vs_true(result.spikes, result.rates, session.regions, region,
                           bin_size=session.bin_size, t0=t0,
                           title=f"{name}: inter-region prediction of {region}")
    plt.show()

# %% [markdown]
# A good inter-region prediction reproduces the region's response to the stimulus and to the
# movement that follows (right panel), and, trial by trial, the slow co-fluctuations of the region's
# neurons that the other regions share (middle panel, compared with the spikes on the left). The
# spikes themselves are Poisson noise around the rates: no model can predict individual spikes, and
# a good predicted raster looks like a smoothed version of the true one. A model that only learned
# each neuron's average would show the same rate in every trial. In the two figures above (LP),
# MtM's predicted PSTH (right panel) follows the true one, including its rise late in the trial,
# slightly below it; the temporal baseline's predicted PSTH lies well below the true one over the
# whole trial and rises much less.
#
# ## 6. Baselines, the oracle of each task, and the true rates
#
# A score means little on its own: bits per spike depend on the neurons' rates, on the session and
# on the task. So every table in this book puts the models next to simple predictors, scored with
# exactly the same code (`mtm.baselines.baseline_results`):
#
# - **Mean rate**: each neuron's mean count on the training trials, in every bin: close to the null
#   model, so about 0 bits per spike, a little below because the null model uses the mean of the
#   scored window itself (for forward prediction the mean of the last 10 bins, which differs more
#   from the neuron's mean over the whole trial).
# - **PSTH**: each neuron's trial-averaged count per bin on the training trials: what the stimulus
#   and movement timing alone explain, the same in every trial.
# - **Linear regression**: ridge regression from the visible neurons' smoothed spikes to each hidden
#   neuron, fit on the training trials, for every configuration of the task (for forward prediction:
#   from every neuron's mean count in the 10 bins before the held-out window). It is not a pushover:
#   it sees the same visible neurons as the models, and a small model trained on a few hundred
#   trials need not beat it.
# - **Oracle** (synthetic sessions only, `mtm.oracle.oracle_results`): for each task, the expected
#   counts given exactly the information the task leaves visible, as the true latent states rather
#   than noisy spikes. No model can beat it on average (a model sees spikes, which carry less); it
#   is the bound each model should be measured against. Each task's information set is printed
#   below.
# - **True rates** (synthetic sessions only): the rates that generated the spikes,
#   `evaluate_rates(session.rates, session)`. Not reachable by any model (see below).
#
# The table reports the per-neuron mean (the paper's convention):

# %%
def summary(per_task, score="mean_bps"):
    """{task: score} of one predictor's {task: TaskResult}."""
    return {task: getattr(result, score) for task, result in per_task.items()}


for task, information in TASK_INFORMATION.items():
    print(f"{task:>13}: {information}")
oracle = oracle_results(session)
labels = {"temporal": "Temporal (baseline)", "MtM": "MtM (prompted)",
          "linear": "Linear regression", "psth": "PSTH", "mean_rate": "Mean rate",
          "oracle": ORACLE_ROW, "truth": TRUE_RATES_ROW}
predictors = {**results, **baselines, "oracle": oracle, "truth": true_rates}
table = {labels[name]: summary(per_task) for name, per_task in predictors.items()}
display(Markdown(results_table(table)))

# %% [markdown]
# On intra-region prediction the linear baseline (0.41) beats temporal masking (0.34) and comes
# within 0.02 of MtM (0.43); on the other three tasks both models are above it. How close to optimal
# is each model, task by task? Its score as a share of the task's oracle:

# %%
oracle_scores = summary(oracle)
model_scores = {labels[name]: summary(results[name]) for name in results}
display(Markdown(oracle_share_table(model_scores, oracle_scores, list(TASKS))))

# %% [markdown]
# And the same predictions of the two models, the oracle and the true rates in NLB's pooled
# convention (`.co_bps`), which weighs neurons by their spikes:

# %%
pooled = {labels[name]: summary(predictors[name], "co_bps")
          for name in ("temporal", "MtM", "oracle", "truth")}
display(Markdown(results_table(pooled)))

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
# perfect one. The oracle removes exactly that part: for co-smoothing and intra-region it knows the
# neuron's own region's latents and averages the private fluctuation out (a log-normal moment in
# closed form); for inter-region it only knows the other regions and the task inputs, and infers the
# hidden region's latents from them with a Kalman smoother (one Gaussian conditioning), so its bound
# is lower; for forward prediction it knows everything before the window, including the neuron's own
# smooth private fluctuation, and rolls the latent dynamics forward. The derivations are in the
# docstring of `mtm.oracle`. Real recordings have neither an oracle nor true rates: there, only the
# baselines and the comparison between models remain.
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
# - Baselines (mean rate, PSTH, linear regression) and each task's oracle put the scores in
#   context: the oracle is the best any model can reach on that task, so a model's share of it says
#   how close to optimal it is. The true rates include each neuron's private fluctuation, which no
#   model can predict for a hidden neuron: they are not a reachable score.
#
# ## Exercises
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
# receives here. `np.argsort` puts NaNs last, so its first five entries are the five worst scores.
# ```python
# co = results["MtM"]["co-smooth"]
# per_neuron = bits_per_spike(co.rates, co.spikes, per_neuron=True)
# print("identical:", np.array_equal(per_neuron, co.bps, equal_nan=True))
# worst = np.argsort(per_neuron)[:5]
# for n in worst:
#     print(f"neuron {n} ({session.regions[n]}): {per_neuron[n]:.2f} bits/spike, "
#           f"{rate_hz[n]:.2f} Hz, {int(co.spikes[..., n].sum())} test spikes")
# ```
# Expect mostly low-rate neurons, the ones that scatter widely in {numref}`fig-05-bps-per-neuron`.
# With a handful of test spikes, a predicted rate that is a little too high in bins where the
# neuron happens not to fire costs more log-likelihood than its few spikes can earn back, and the
# loss is divided by that small spike count. A high-rate neuron among the worst would point to a
# real failure of the model, not to noise.
# :::
#
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
# ```python
# import torch
# from mtm.evaluate import TaskResult, predict_heldout, task_configurations
#
# mtm_model = models["MtM"]
# test_counts = np.array(session.spikes[session.splits["test"]])
# spikes = torch.as_tensor(test_counts).to(device)
# hidden, scored = task_configurations("intra-region", session.regions)
# rates = predict_heldout(mtm_model, session.eid, spikes, hidden, scored,
#                         prompt=PROMPT_IDS["neuron"], causal=False)
# wrong = TaskResult("intra-region", rates.cpu().numpy(), test_counts, np.arange(session.n_bins))
# right = results["MtM"]["intra-region"]
# print(f"intra-region prompt: {right.mean_bps:.3f}, neuron prompt: {wrong.mean_bps:.3f}")
# # the same in one call:
# # evaluate_model(mtm_model, session, "mtm", tasks=("intra-region",),
# #                prompts={"intra-region": "neuron"})["intra-region"]
# plot_bps_scatter(right.bps, wrong.bps, "intra-region prompt", "neuron prompt", task="intra-region")
# plt.show()
# ```
# `causal=False` is what `attention_is_causal` gives for every prompt but `causal`. Expect the
# score to drop. The intra-region input hides every region but one, a pattern that the model met in
# training only together with the intra-region prompt. The neuron prompt announces a few scattered
# missing neurons, so the model may read the zeroed regions as silent neurons rather than as hidden
# ones. How large the drop is says how much the model relies on the prompt rather than on the
# pattern of zeros; if the score barely moves, the model reads the task from its input alone.
# :::
#
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
# ```python
# mtm_model = models["MtM"]
# bidirectional = evaluate_model(mtm_model, session, "temporal", tasks=("forward-pred",))
# print(f"causal attention: {results['MtM']['forward-pred'].mean_bps:.3f}, "
#       f"bidirectional: {bidirectional['forward-pred'].mean_bps:.3f}")
# ```
# Both runs see the same input: the last 10 bins are zeros, so bidirectional attention gains no
# information about the future. What changes is how the past bins are processed. In training, the
# causal prompt always came with causal attention (`mtm.masking.is_causal`), so under the causal
# prompt the model never had the past bins attend to a block of zeroed future bins. Expect the
# bidirectional run to score lower: the input is outside what the model learned for this prompt.
# The temporal baseline is the opposite case: it was trained bidirectionally, and
# `evaluate_model(temporal_model, session, "causal", tasks=("forward-pred",))` (with `temporal_model`
# loaded from `RUN_DIR / "temporal" / "best.safetensors"`) would force causal
# attention on it, which it never saw in training.
# :::
#
# **Exercise 4.** Evaluate on the validation split instead (`split="val"`). How different are the
# scores, and why are validation scores of a small session so noisy?
#
# :::{admonition} Hint
# :class: dropdown
# Count the trials of each split (`session.splits`). Score the oracle on the validation split too
# (`oracle_results(session, split="val")`): the oracle is not trained, so whatever moves its score
# between the splits is the split itself.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# ```python
# temporal_model = models["temporal"]
# mtm_model = models["MtM"]
# print("trials per split:", {name: len(idx) for name, idx in session.splits.items()})
# rows = {"Temporal, test": summary(results["temporal"]),
#         "Temporal, validation": summary(evaluate_model(temporal_model, session, "temporal", split="val")),
#         "MtM, test": summary(results["MtM"]),
#         "MtM, validation": summary(evaluate_model(mtm_model, session, "mtm", split="val")),
#         "Oracle, test": summary(oracle),
#         "Oracle, validation": summary(oracle_results(session, split="val"))}
# display(Markdown(results_table(rows)))
# ```
# The validation split holds half as many trials as the test split (10 % against 20 %,
# `mtm.data.split_trials`). Each neuron's score then rests on half as many spikes, so the
# per-neuron scores scatter more, as for the low-rate neurons of section 1. More neurons have no
# spike at all and drop out as NaN, so the mean runs over a different set of neurons. The null
# model is each neuron's mean over these few trials. Compare each model's change between the
# splits with the oracle's: a model that moves about as much as the oracle moves with the split,
# not because it is better or worse on one of them. The validation split is also the split the
# checkpoint was selected on (with the run's own masking, not these tasks), so its scores can be
# slightly optimistic.
# :::
#
# **Exercise 5.** Set `REGION` to each region in turn. For which region is inter-region prediction
# easiest, and how does that relate to the coupling graph of {doc}`01_data` (VISa-LP-PO, CA1-DG)?
#
# :::{admonition} Hint
# :class: dropdown
# The inter-region result already holds every region: average its per-neuron `.bps` over the
# neurons of each region (`session.regions == r`). Do the same for the oracle, which gives the best
# score each region allows.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# ```python
# names = session.region_names
# rows = {}
# for label, per_task in {"Temporal (baseline)": results["temporal"], "MtM (prompted)": results["MtM"],
#                         "Linear regression": baselines["linear"], ORACLE_ROW: oracle}.items():
#     bps = per_task["inter-region"].bps
#     rows[label] = {r: float(np.nanmean(bps[session.regions == r])) for r in names}
# display(Markdown(results_table(rows, columns=names)))
# for region in names:                        # the figures of section 5, region by region
#     result = results["MtM"]["inter-region"]
#     plot_predicted_vs_true(result.spikes, result.rates, session.regions, region,
#                            bin_size=session.bin_size, t0=t0, title=f"MtM: {region}")
#     plt.show()
# ```
# In the synthetic world ({doc}`01_data`, `mtm.data.synthetic.COUPLING`), VISa, LP and PO are
# coupled to each other with strength 1, so each of them has two strong partners; CA1 and DG have
# one strong partner each (each other) and one weak link (VISa-CA1, DG-LP, 0.4). Every region also
# receives the task inputs (stimulus, movement, whisking), with the sensitivities of
# `mtm.data.synthetic.INPUT_GAIN`, and any input that reaches another region shows there too. So
# expect the oracle row to be highest for the thalamo-cortical triangle and lower for the
# hippocampal pair, which has to be predicted mostly from each other. The models follow the oracle
# only in part: CA1 and DG also have the lowest baseline rates of the generator (`MEAN_RATE_HZ`:
# 1.5 and 1.2 Hz), so their
# per-neuron scores are the noisiest. Read a model's row as a share of the oracle's for each region
# before calling one region easy for the model.
# :::

# %% tags=["remove-input"]
print(RUN.done())

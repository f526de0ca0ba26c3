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
# # 9. Experiments: the masking ablation and NDT2
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/09_experiments.ipynb)
#
# **What you will learn**
#
# - how the paper's masking ablation (Tables 1 and 3) is run: one model per masking scheme, each
#   scored on every task, and what our runs show of the paper's claim that each scheme teaches
#   its own task and MtM combines them;
# - how NDT2, the space-time patch transformer, trains with the same loop and the same masking as
#   NDT1 (Tables 4 and 5), and how it compares on small runs;
# - where the book runs the third experiment, more pretraining sessions (the paper's Fig. 4);
# - how `mtm reproduce --experiment NAME` runs each of these, and what it writes.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. Every experiment here trains with the `small` preset of `mtm reproduce` (the
# 2 x 64 model) on sessions of `N_TRIALS` trials and `N_NEURONS` neurons; the paper's preset of each
# takes hours to days on a GPU.*

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
from IPython.display import Markdown, display

from mtm.baselines import ORACLE_ROW
from mtm.book import chapter_settings, gpu_check
from mtm.evaluate import TASKS
from mtm.plots import oracle_share_table, paper_comparison_table, results_table, use_style
from mtm.reproduce import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, Plan, run_experiment
from mtm.reproduce.tables import COLUMNS, REFERENCE_ROWS, plot_table

use_style()
print(gpu_check())

# %% [markdown]
# ## Parameters
#
# `SETTINGS` picks one of the chapter's three sets of values (`mtm.book.CHAPTER_SETTINGS`); any
# parameter set here replaces the settings' value.

# %% tags=["parameters"]
SETTINGS = "auto"          # "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else gpu or book
SEED = 0                   # first synthetic session
N_TEST = None              # held-out sessions every model is scored on (None: the settings' value)
N_TRIALS = None            # trials per session (None: the settings' value)
N_NEURONS = None           # neurons per session (None: the settings' value)
ABLATION_EPOCHS = None     # epochs of each ablation model (None: the settings' value)
NDT2_EPOCHS = None         # epochs of every NDT2/NDT1 run, pretraining and fine-tuning (None: the settings')
NDT2_PRETRAIN = None       # NDT2 experiment's pretraining sessions; 0: single-session only (None: the settings')
NDT2_PATCH = None          # neurons per NDT2 token (None: the settings' value; 128 in the paper)
MODEL = None               # model size overrides (None: the settings' value)
WORKERS = None             # parallel training runs (None: the settings' value)
OUT_DIR = None             # run folder (None: the settings' shared folder)

# %%
RUN = chapter_settings("09_experiments", SETTINGS, N_TEST=N_TEST, N_TRIALS=N_TRIALS, N_NEURONS=N_NEURONS,
                       ABLATION_EPOCHS=ABLATION_EPOCHS, NDT2_EPOCHS=NDT2_EPOCHS, NDT2_PRETRAIN=NDT2_PRETRAIN,
                       NDT2_PATCH=NDT2_PATCH, MODEL=MODEL, WORKERS=WORKERS)
(N_TEST, N_TRIALS, N_NEURONS, ABLATION_EPOCHS, NDT2_EPOCHS, NDT2_PRETRAIN, NDT2_PATCH, MODEL, WORKERS) = RUN.unpack(
    "N_TEST", "N_TRIALS", "N_NEURONS", "ABLATION_EPOCHS", "NDT2_EPOCHS", "NDT2_PRETRAIN", "NDT2_PATCH", "MODEL",
    "WORKERS")
OUT_DIR = Path(OUT_DIR) if OUT_DIR else RUN.run_dir / "experiments"

# %% [markdown]
# ## 1. One scheduler, one plan per experiment
#
# Every experiment of the paper is a set of training runs, each scored on the same held-out
# sessions. `mtm.reproduce` describes one with a `Plan` (sessions, epochs, model, and the numbers an
# experiment varies) and runs it with `run_experiment`: the runs go to worker processes, longest
# first; a finished run in `OUT_DIR` is reused when its settings and sessions match and refused,
# naming the first difference, when they do not; each model is scored on the four activity tasks
# of {doc}`05_evaluation` and the two behaviour tasks of {doc}`06_decoding` as soon as it finishes,
# and every score is the mean over the held-out sessions. Beside the models each table has the
# reference rows of {doc}`05_evaluation`: the oracle of each task (the best prediction its
# information allows on synthetic data), the true rates (not reachable: they hold each neuron's
# private noise) and the linear baseline. Each experiment writes `results.md`, `results.csv`,
# `per_session.json` and `results.png` into its folder.
#
# From a shell the same runs are `mtm reproduce --experiment ablation` (or `ndt2`, `scaling`,
# `prompts`, `mask-ratio`, `region-decoding`, `table2`), with `--preset paper` for the paper's
# settings. This chapter's plans:

# %%
def plan(experiment: str, model: dict | None = None, **values) -> Plan:
    """The experiment's small preset (its training settings) on this chapter's sessions; ``model``:
    model settings on top of ``MODEL``."""
    model = {**MODEL, **(model or {})}
    return Plan.for_preset("small", experiment, n_test=N_TEST, session_seed=SEED, n_trials=N_TRIALS,
                           n_neurons=N_NEURONS, train_overrides=dict(model=model) if model else {}, **values)


plans = {"ablation": plan("ablation", epochs=ABLATION_EPOCHS),
         "ndt2": plan("ndt2", model=dict(patch_size=NDT2_PATCH), n_pretrain=NDT2_PRETRAIN, epochs=NDT2_EPOCHS,
                      pretrain_epochs=NDT2_EPOCHS, finetune_epochs=NDT2_EPOCHS)}
for name, p in plans.items():
    cfg = p.train_config("mtm", "pretrain" if p.n_pretrain else "single")
    patches = f", NDT2 patches of {cfg.model.patch_size} neurons" if name == "ndt2" else ""
    print(f"{name:9s} {p.n_pretrain} pretraining + {p.n_test} held-out sessions of "
          f"{p.n_trials} trials x {p.n_neurons} neurons; {cfg.epochs} epochs, "
          f"model {cfg.model.n_layers} x {cfg.model.hidden}{patches}")


def run(name: str) -> dict:
    """Run one experiment on its plan's synthetic sessions; its table {row: {column: score}}."""
    pretrain, heldout = plans[name].synthetic_sessions()
    return run_experiment(pretrain, heldout, plans[name], OUT_DIR / name, workers=WORKERS, progress=False)


def model_rows(table: dict) -> dict:
    return {row: scores for row, scores in table.items() if row not in REFERENCE_ROWS}


# %% [markdown]
# ## 2. The masking ablation (Tables 1 and 3)
#
# The paper trains NDT1 from scratch on one session, once per masking scheme: temporal (the
# baseline), neuron, causal (temporal masking with causal attention), intra-region and inter-region,
# each at ratio 0.3 as in the reference code, and MtM with and without prompts. Every model is then
# scored on every task. Its claim: each scheme is best, or near best, on the task that resembles it
# (neuron masking on co-smoothing, causal on forward prediction, intra-region on intra-region,
# inter-region on inter-region), each is poor on the others (intra-region masking alone collapses
# co-smoothing to -9.86 bits per spike), and MtM is good on all four. The paper's numbers, from one
# selected IBL session:

# %%
display(Markdown(results_table(PAPER_TABLE3, COLUMNS)))

# %% [markdown]
# Ours (the mean over the `N_TEST` held-out synthetic sessions, one under the book's settings), with
# the paper's number in brackets:

# %%
ablation = run("ablation")
display(Markdown(paper_comparison_table(model_rows(ablation), PAPER_TABLE3, COLUMNS)))
display(Markdown(results_table({row: ablation[row] for row in REFERENCE_ROWS if row in ablation}, COLUMNS)))

# %% mystnb={"figure": {"caption": "The masking ablation (single-session NDT1, mean over the held-out sessions): one panel per column, a horizontal bar per model (blue: temporal, neuron, causal, intra-region and inter-region masking, MtM without and with prompts) and per reference row (grey: oracle, true rates, linear baseline). Activity tasks in bits per spike, choice as accuracy, whisker motion energy as $R^2$.", "name": "fig-09-ablation"}}
plot_table(ablation, list(model_rows(ablation)) + [r for r in REFERENCE_ROWS if r in ablation], COLUMNS)
plt.show()

# %% [markdown]
# Each model's share of the oracle, task by task:

# %%
display(Markdown(oracle_share_table(model_rows(ablation), ablation[ORACLE_ROW], list(TASKS))))

# %% [markdown]
# What the stored ablation shows, scheme by scheme, against the paper's pattern (one held-out
# session and one seed here, so differences of a few hundredths may be chance):
#
# - **Each scheme wins, or nearly wins, the task that resembles it.** Neuron masking has the best
#   co-smoothing of every model (0.32; the paper's best is also neuron masking, 1.04); intra-region
#   masking the best intra-region score (0.30, against 0.18 for temporal masking); inter-region
#   masking reaches 0.15 on inter-region from 0.00 for temporal masking. Causal masking is the one
#   single scheme above zero on forward prediction (0.01, temporal -0.03), though far below the
#   paper's 0.48.
# - **Each is poor on the others.** Intra-region masking collapses co-smoothing (-0.65) and
#   inter-region prediction (-0.74), the paper's -9.86 and -9.06 in miniature; causal masking scores
#   -0.41 on co-smoothing and -0.42 on inter-region; inter-region masking -0.17 on forward
#   prediction.
# - **MtM is good on all four** (prompted: 0.28 / 0.06 / 0.25 / 0.17): the best of every model on
#   forward prediction and inter-region prediction, 0.04 below neuron masking on co-smoothing and
#   0.05 below intra-region masking on intra-region prediction, and never negative. The paper's MtM
#   is best or close to best on every task too (0.98 / 0.57 / 0.43 / 0.84). The prompt changes
#   little here (not prompted: 0.25 / 0.04 / 0.26 / 0.15), as in the paper.
# - **Where ours differs.** Every model is at most 43 % of the oracle, on every task; the linear
#   baseline beats every model on intra-region prediction (0.32, against at most 0.30), and its
#   choice accuracy (0.82) is above every model's (0.72 to 0.78). Behaviour hardly separates the
#   schemes except that intra-region masking decodes whisker motion energy worst (0.29, against 0.41
#   to 0.44), as in the paper (0.38 against 0.56 to 0.61).
#
# ## 3. NDT2 beside NDT1 (Tables 4 and 5)
#
# NDT2 ({doc}`03_model`, section 7) cuts each bin into patches of neurons and attends over space and
# time; the paper trains it with the same masking schemes and reports it in Tables 4 (single-session,
# one selected session) and 5 (single-session and pretrained on 34 sessions, 5 held-out sessions).
# Its baseline is *random-token* masking, NDT2's own: whole patch tokens hidden at random. `mtm`
# trains both backbones with the same loop, sessions and epochs, so the rows of one training stage
# and masking stand side by side. Under the book's settings every model is trained on the held-out
# session alone (`NDT2_PRETRAIN = 0`; exercise 4 adds pretraining). The paper's Table 5:

# %%
display(Markdown(results_table(PAPER_TABLE5, COLUMNS)))

# %%
ndt2 = run("ndt2")
display(Markdown(results_table(ndt2, COLUMNS)))

# %% mystnb={"figure": {"caption": "NDT2 beside NDT1, one panel per column: a horizontal bar per model (blue), each backbone with its baseline masking (random-token for NDT2, temporal for NDT1) and with prompted MtM, trained on the held-out session alone or pretrained and fine-tuned, then the reference rows (grey); mean over the held-out sessions.", "name": "fig-09-ndt2"}}
plot_table(ndt2, list(model_rows(ndt2)) + [r for r in REFERENCE_ROWS if r in ndt2], COLUMNS)
plt.show()

# %% [markdown]
# What the stored rows show (100 epochs each; NDT2 with the paper's 128-neuron patches, 2 tokens per
# bin here):
#
# - **MtM lifts NDT2 far above its random-token baseline**, as in the paper's Table 5: co-smoothing
#   from -0.25 to 0.11, intra-region from 0.05 to 0.18, inter-region from -0.24 to -0.01. The paper's
#   gap is larger (co-smoothing -0.87 to 0.97), and its NDT2 with MtM is well above zero on every
#   task (0.97 / 0.36 / 0.64 / 0.84).
# - **NDT1 is better than NDT2 on every activity task**, as the paper finds: temporal 0.22 / -0.01 /
#   0.18 / 0.04 and MtM 0.25 / -0.00 / 0.22 / 0.14 against NDT2's rows. MtM helps NDT1 less than it
#   helps NDT2 (+0.03 on co-smoothing, +0.10 on inter-region).
# - **No model here predicts the last 200 ms better than each neuron's mean rate** (forward
#   prediction -0.05 to -0.00), where the paper's NDT2 rows reach 0.34 to 0.38.
# - **Behaviour decodes a little better from NDT2** (choice 0.80 and 0.82, whisker motion energy 0.43
#   and 0.46) than from NDT1 (0.75; 0.42); with 60 test trials, 0.07 of choice accuracy is 4 trials.
#
# Every row is short of the ablation's 150-epoch NDT1 with MtM (0.28 / 0.06 / 0.25 / 0.17): 100
# epochs is what fits beside the ablation in this chapter's time on a CPU, and NDT2 with MtM kept its
# best validation score at epoch 97 of 100, so it was still learning. The patch size matters as much
# as the epochs: with the small preset's 32-neuron patches (7 tokens per bin) an NDT2 epoch took 5.7
# times as long as with 128-neuron ones on this CPU, and earlier runs of this chapter with them, of
# 30 and 40 epochs, left NDT2 below zero on every activity task with either masking.
#
# ## 4. More pretraining sessions (Fig. 4)
#
# The paper pretrains NDT1-stitch on 1, 10 and 34 sessions, fine-tunes on each held-out session and
# finds that MtM improves on every activity task with more sessions while the temporal baseline
# saturates at 10. {doc}`07_multisession` runs this experiment with the book's settings (1, 2 and 4
# pretraining sessions of 200 neurons, {numref}`fig-07-scores-vs-sessions`), so this chapter does not
# train it a second time. `mtm reproduce --experiment scaling` runs it as one plan, `--preset paper`
# with the paper's 1, 10 and 34 sessions; in this chapter, `run("scaling")` after
# `plans["scaling"] = plan("scaling", n_pretrain=4, pretrain_counts=(1, 2, 4))`, and
# `mtm.reproduce.scaling.plot_scaling` draws its table.
#
# ## 5. The other experiments
#
# Three more experiments run the same way; their small presets take 4 to 9 minutes each on a 2-core
# CPU, so the book does not execute them:
#
# - `--experiment prompts` (Table 6): the pretrained, fine-tuned MtM model scored with each prompt
#   token at inference;
# - `--experiment mask-ratio` (Table 7): temporal, neuron, intra-region masking and MtM at masking
#   ratios 0.1, 0.3 and 0.6;
# - `--experiment region-decoding` (Figs. 5 and 7): choice and whisker motion energy decoded from one
#   region at a time, and each neuron's co-smoothing, PSTH and single-trial scores.
#
# In this chapter, `run("prompts")` after adding `plans["prompts"] = plan("prompts")` runs the first,
# on this chapter's sessions of `N_TRIALS` trials and `N_NEURONS` neurons (longer than the preset's
# 200 x 64).
#
# ## Summary
#
# - `mtm reproduce --experiment NAME` (`mtm.reproduce.run_experiment`) runs each of the paper's
#   experiments from a `Plan`: the runs in parallel, finished runs reused, every model scored on the
#   same held-out sessions beside the oracle, the true rates and a linear baseline.
# - The ablation trains one model per masking scheme; the paper's pattern is that each scheme wins
#   the task that resembles it and MtM is good on all of them.
# - NDT2 trains with the same loop and masking as NDT1; the paper finds MtM helps both backbones.
# - The scaling experiment (run in {doc}`07_multisession`) pretrains on more and more sessions; in the
#   paper MtM keeps improving where temporal masking saturates.
#
# ## Exercises
#
# **Exercise 1.** Set `ABLATION_EPOCHS = 300` and rerun section 2 in a new `OUT_DIR`. Which rows move
# most, and does the ranking of the schemes on each task change?
#
# :::{admonition} Hint
# :class: dropdown
# `plan("ablation", epochs=300)` is section 2's plan with more epochs; `run_experiment` on its sessions
# in a new folder trains it (`OUT_DIR / "ablation"` holds the shorter runs and would be refused, naming
# `epochs` as the first difference). Subtract the two tables row by row, and sort the model rows by
# each task's score.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The same as changing the parameters cell, without leaving the chapter:
#
# ```python
# long_plan = plan("ablation", epochs=300)
# pretrain, heldout = long_plan.synthetic_sessions()
# ablation_300 = run_experiment(pretrain, heldout, long_plan, OUT_DIR / "ablation-300", workers=WORKERS,
#                               progress=False)
# change = {row: {c: ablation_300[row][c] - ablation[row][c] for c in COLUMNS} for row in model_rows(ablation)}
# display(Markdown(results_table(change, COLUMNS)))
# for task in TASKS:
#     before = sorted(model_rows(ablation), key=lambda r: -ablation[r][task])
#     after = sorted(model_rows(ablation_300), key=lambda r: -ablation_300[r][task])
#     print(f"{task}\n  {ABLATION_EPOCHS} epochs: {before}\n  300 epochs: {after}")
# ```
#
# It trains the same seven models per held-out session for 300 epochs instead of `ABLATION_EPOCHS`,
# so it takes 300 / `ABLATION_EPOCHS` times as long as section 2. The first table gives each model's
# change per column, the printout each task's ranking before and after. Two things to look for. MtM spends only
# about a quarter of its batches on each of its four schemes, so at equal epochs it has had fewer
# updates per scheme than a single-scheme model; if it was held back by that, it gains more than the
# single schemes from longer training. And a single scheme trained longer fits its own masks better;
# whether that helps or hurts it on the tasks it never practised shows how far its skill transfers.
# If the rankings do not change, the pattern of section 2 does not depend on the training length.
# :::
#
# **Exercise 2.** Run the prompts experiment (section 5). Do the prompts change the behaviour scores?
#
# :::{admonition} Hint
# :class: dropdown
# Add `plans["prompts"] = plan("prompts")` and call `run("prompts")`. Its rows are the fine-tuned MtM
# model scored with each task's own prompt, then with every task under one prompt; the paper's
# numbers are `mtm.reproduce.PAPER_TABLE6`. Look at how behaviour is decoded under a prompt:
# `mtm.decoding.model_log_rates`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# ```python
# from mtm.reproduce import PAPER_TABLE6
#
# plans["prompts"] = plan("prompts")
# prompts = run("prompts")
# display(Markdown(results_table(prompts, COLUMNS)))
# display(Markdown(results_table(PAPER_TABLE6, ["choice", "whisker_me"])))
# ```
#
# The behaviour decoders read the model's log-rates on the whole, unmasked trial
# (`mtm.decoding.model_log_rates`), and a new decoder is fitted for each prompt. A prompt only changes
# one token at the start of the sequence, and under the causal prompt the attention (each bin then sees
# only the past). The spikes the model reads are the same under every prompt, so apart from the causal
# prompt's restriction to the past there is little room for the prompt to add or remove information
# about choice or whisker motion: expect the behaviour columns to move little, as in the paper's
# Table 6 (choice 0.88 to 0.89, whisker motion energy 0.68
# under every prompt). Judge a difference in choice against its step size: `plan` gives the sessions
# this chapter's `N_TRIALS` trials (300 under the book's settings), so a session's test split holds
# 60 trials (`mtm.data.session.split_trials`, 70 / 10 / 20 %) and one trial changes its accuracy by
# about 0.017. The activity columns are where the prompt matters: each
# task under another task's prompt shows what telling the model which part of the input is missing
# is worth.
# :::
#
# **Exercise 3.** The NDT2 models use patches of `NDT2_PATCH` neurons (the paper's 128 under the
# book's settings). With this chapter's `N_NEURONS`-neuron sessions, how many patch tokens does each
# bin have? What does that leave for NDT2's space-time attention to do?
#
# :::{admonition} Hint
# :class: dropdown
# Ask the plan what its models use: `plans["ndt2"].train_config("mtm", arch="ndt2").model.patch_size`.
# The number of patches comes from `NDT2.n_patches` in `mtm/models/ndt2.py`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# `NDT2.n_patches` cuts a session into $\lceil N / P \rceil$ patches of $P$ neurons, zero-padding the
# last. With 200 neurons and 128-neuron patches that is **2 patch tokens per bin** (the second holds
# 72 neurons and 56 zeros), 200 tokens for the 100 bins, plus the session token and, for MtM, the
# prompt token. To check, and to see how the regions fall into the patches:
#
# ```python
# import math
#
# patch = plans["ndt2"].train_config("mtm", arch="ndt2").model.patch_size
# _, ndt2_heldout = plans["ndt2"].synthetic_sessions()
# for s in ndt2_heldout:
#     per_bin = math.ceil(s.n_neurons / patch)
#     print(f"{s.eid}: {s.n_neurons} neurons, patches of {patch}: {per_bin} tokens per bin, "
#           f"{per_bin * s.n_bins} per trial; regions {s.region_counts()}")
# ```
#
# With two tokens per bin, attention across space is attention between two parts of the probe. The
# synthetic neurons are ordered by region, so the patches are cut without regard to region
# boundaries; a region can straddle them. Almost all of the work is attention over time, as in NDT1,
# and within a patch the neurons are mixed by one linear embedding shared by every patch and every
# session. NDT2 has no stitcher: the 5th neuron of every patch, in every session, gets the same input
# and output weights, and only the patch's space embedding tells the patches apart. Random-token
# masking hides whole patches, so what it hides never follows the regions. In the paper the sessions
# hold several hundred neurons, so each bin has more tokens (a 676-neuron session has 6 patches per
# bin and 600 tokens per trial). To give space more to do here, make the patches smaller
# (`NDT2_PATCH = 32`, in a new `OUT_DIR`): more tokens per bin, and slower, since attention grows with
# the square of their number (with the `gpu` settings, the time budget then affords fewer epochs).
# :::
#
# **Exercise 4.** Run the NDT2 experiment with pretraining (`NDT2_PRETRAIN = 2`, in a new `OUT_DIR`).
# Does pretraining help NDT2 as it helps NDT1 in {doc}`07_multisession`?
#
# :::{admonition} Hint
# :class: dropdown
# With `n_pretrain` above 0 the `ndt2` experiment adds, for each backbone and masking, a pretraining
# run on the first `NDT2_PRETRAIN` sessions and a fine-tuning run on every held-out session: rows
# named "multi-session (2 pretrain)".
# :::
#
# :::{admonition} Solution
# :class: dropdown
# ```python
# plans["ndt2"] = plan("ndt2", model=dict(patch_size=NDT2_PATCH), n_pretrain=2, epochs=NDT2_EPOCHS,
#                      pretrain_epochs=NDT2_EPOCHS, finetune_epochs=NDT2_EPOCHS)
# OUT_DIR = OUT_DIR.parent / "experiments-ndt2-pretrained"
# pretrained = run("ndt2")
# display(Markdown(results_table(pretrained, COLUMNS)))
# ```
#
# Compare each "multi-session" row with the "single-session" row of the same backbone and masking,
# within the new table: both are scored on its held-out sessions. The paper's Table 5
# finds that pretraining helps NDT2's random-token baseline much (co-smoothing -0.87 to 0.26) and MtM
# little (0.97 to 1.01). Fine-tuning NDT2 from few, short pretraining runs can also score below the
# model trained from scratch: a pretrained model starts from weights fitted to other neurons, and a
# few dozen epochs may not be enough to adapt its patch embeddings.
# :::

# %% tags=["remove-input"]
print(RUN.done())

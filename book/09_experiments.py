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
# # Experiments: the masking ablation and NDT2
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/09_experiments.ipynb)
#
# **What you will learn**
#
# - how the paper's masking ablation (Tables 1 and 3) is run: one model per masking scheme, each
#   scored on every task, and what our runs show of the paper's claim that each scheme teaches
#   its own task and MtM combines them;
# - how NDT2, the space-time patch transformer, trains with the same loop and the same masking as
#   NDT1 (Tables 4 and 5), and how it compares on small runs;
# - how to read such comparisons: every model trained with several seeds, every difference paired by
#   seed with its 95 % interval, every score also a share of a predictor a model can reach;
# - where the book runs the third experiment, more pretraining sessions (the paper's Fig. 4);
# - how `mtm reproduce --experiment NAME` runs each of these, and what it writes.
#
# **The result in short** (the stored run's numbers; section 6 writes them from the run in front of
# you; every difference is a mean over the `SEEDS` training seeds ± the half-width of its 95 %
# interval, in bits per spike on co-smoothing, forward prediction, intra- and inter-region):
#
# - **The masking ablation** (one NDT1 model per masking scheme on each of `N_TEST` synthetic
#   sessions). {glue:text}`point_own_task`. {glue:text}`point_mtm_temporal` (prompted MtM minus
#   temporal masking: {glue:text}`d_mtm_temporal`). The paper's single schemes fail hard away from
#   their own task (in its Table 3, intra-region masking alone scores -9.86 bits per spike on
#   co-smoothing); here intra-region masking scores {glue:text}`intra_masking_cosmooth` there.
# - **NDT2 beside NDT1.** {glue:text}`point_ndt1_ndt2` (NDT1 minus NDT2: {glue:text}`d_ndt1_ndt2`).
#   {glue:text}`point_ndt2_mtm` ({glue:text}`d_ndt2_mtm`), where the paper's Table 5 has MtM lifting
#   single-session NDT2 far above random-token masking (-0.87 to 0.97 on co-smoothing).
# - **How close to the best.** {glue:text}`point_shares` (the Bayes reference: the best prediction
#   from the spikes a model sees, with the session's generative parameters known).
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. Every experiment here trains with the `small` preset of `mtm reproduce` (the
# 2 x 64 model) on sessions of `N_TRIALS` trials and `N_NEURONS` neurons, once per training seed;
# the paper's preset of each takes hours to days on a GPU.*

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

import math

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mtm.baselines import LINEAR_ROW, ORACLE_ROW
from mtm.bayes import BAYES_ROW
from mtm.book import (chapter_settings, glue_text, gpu_check,
                      verdict_sentence, what_this_run_shows)
from mtm.evaluate import TASKS
from mtm.plots import (COLUMN_WORDS, oracle_share_table, results_table,
                       use_style)
from mtm.reproduce import PAPER_TABLE3, PAPER_TABLE5, Plan, run_experiment
from mtm.reproduce import ablation as ablation_experiment
from mtm.reproduce import ndt2 as ndt2_experiment
from mtm.reproduce.scheduler import cells, paired_differences, row_intervals
from mtm.reproduce.tables import (COLUMNS, interval_table, plot_runs,
                                  read_runs)
from mtm.stats import paired_difference

use_style()
print(gpu_check())

# %% [markdown]
# ## Parameters
#
# `SETTINGS` picks one of the chapter's three sets of values (`mtm.book.CHAPTER_SETTINGS`):
# `N_TEST` held-out sessions of `N_TRIALS` trials and `N_NEURONS` neurons, `ABLATION_EPOCHS` for each
# ablation model, `NDT2_EPOCHS` for every run of the NDT2 experiment, `NDT2_PRETRAIN` pretraining
# sessions (0: single-session only), NDT2 patches of `NDT2_PATCH` neurons, `SEEDS` training seeds,
# `MODEL` size overrides and `WORKERS` parallel runs. `OVERRIDES` replaces any of them.

# %% tags=["parameters"]
# "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else gpu or book
SETTINGS = "auto"
# the settings' values to replace, e.g. {"ABLATION_EPOCHS": 50}
OVERRIDES = {}
SEED = 0  # first synthetic session

# %%
RUN = chapter_settings("09_experiments", SETTINGS, **OVERRIDES)
OUT_DIR = RUN.run_dir / "experiments"  # read once: smoke makes a new one

# %% [markdown]
# ## 1. One scheduler, one plan per experiment
#
# Every experiment of the paper is a set of training runs, each scored on the same held-out
# sessions. `mtm.reproduce` describes one with a `Plan` (sessions, epochs, model, seeds, and the
# numbers an experiment varies) and runs it with `run_experiment`: the runs go to worker processes,
# longest first; a finished run in `OUT_DIR` is reused when its settings and sessions match and
# refused, naming the first difference, when they do not; each model is scored on the four activity
# tasks of {doc}`05_evaluation` and the two behaviour tasks of {doc}`06_decoding` as soon as it
# finishes. Each experiment writes `results.md`, `results.csv`, `differences.csv`,
# `per_session.json` and `results.png` into its folder.
#
# From a shell the same runs are `mtm reproduce --experiment ablation` (or `ndt2`, `scaling`,
# `prompts`, `mask-ratio`, `region-decoding`, `table2`, `budget`), with `--preset paper` for the
# paper's settings. This chapter's plans:


# %%
def plan(experiment: str, model: dict | None = None, **values) -> Plan:
    """The experiment's small preset (its training settings) on this
    chapter's sessions; ``model``: model settings on top of ``RUN.MODEL``."""
    model = {**RUN.MODEL, **(model or {})}
    return Plan.for_preset(
        "small",
        experiment,
        n_test=RUN.N_TEST,
        session_seed=SEED,
        n_trials=RUN.N_TRIALS,
        n_neurons=RUN.N_NEURONS,
        n_seeds=RUN.SEEDS,
        train_overrides=dict(model=model) if model else {},
        **values,
    )


plans = {
    "ablation": plan("ablation", epochs=RUN.ABLATION_EPOCHS),
    "ndt2": plan(
        "ndt2",
        model=dict(patch_size=RUN.NDT2_PATCH),
        n_pretrain=RUN.NDT2_PRETRAIN,
        epochs=RUN.NDT2_EPOCHS,
        pretrain_epochs=RUN.NDT2_EPOCHS,
        finetune_epochs=RUN.NDT2_EPOCHS,
    ),
}
for p in plans.values():
    print(p.describe())

# %% [markdown]
# `run` trains and scores one plan on its synthetic sessions and reads back every scored run, seed
# by seed (`per_session.json`). Every model is trained once per training seed: a row of a table is
# the mean over seeds (and the held-out sessions) with its 95 % interval over seeds (`mtm.stats`).
# Beside the models, each table has the reference rows of {doc}`05_evaluation`: the latent oracle
# (an upper bound: it is given the true latents), the Bayes reference (the best prediction from
# exactly the spikes a model sees, with the generative parameters known: a yardstick a model can
# reach), the true rates (not reachable: they hold each neuron's private noise) and the linear
# baseline. `show_results` prints the table, each model's share of the Bayes reference, and any
# model that lands above the latent oracle (there should be none).

# %%
heldout_sessions = {}


def run(name: str) -> tuple[dict, dict]:
    """Run one experiment on its plan's synthetic sessions: its table
    {row: {column: mean}} and its runs {model row: [{"seed", "session",
    "scores"}]}. The log names folders relative to OUT_DIR.
    """
    pretrain, heldout_sessions[name] = plans[name].synthetic_sessions()
    table = run_experiment(
        pretrain,
        heldout_sessions[name],
        plans[name],
        OUT_DIR / name,
        workers=RUN.WORKERS,
        progress=False,
        log=lambda line: print(line.replace(str(OUT_DIR), "OUT_DIR")),
    )
    return table, read_runs(OUT_DIR / name)


def show_results(table: dict, runs: dict) -> None:
    """The table (model rows: mean ± 95 % interval over seeds), then each
    model's share of the Bayes reference."""
    intervals = {m: row_intervals(runs[m]) for m in table if m in runs}
    display(Markdown(interval_table(table, intervals, COLUMNS)))
    shares = {row: table[row] for row in [*intervals, LINEAR_ROW]}
    display(
        Markdown(
            "**Share of the Bayes reference** (activity tasks):\n\n"
            + oracle_share_table(shares, table[BAYES_ROW], list(TASKS))
        )
    )
    oracle = table[ORACLE_ROW]
    above = [(m, t) for m in runs for t in TASKS if table[m][t] > oracle[t]]
    print("models above the latent oracle:", above or "none")


# %% [markdown]
# ## 2. The masking ablation (Tables 1 and 3)
#
# The paper trains NDT1 from scratch on one session, once per masking scheme: temporal (the
# baseline), neuron, causal (temporal masking with causal attention), intra-region and inter-region,
# each at ratio 0.3 as in the reference code, and MtM with and without prompts. Every model is then
# scored on every task. Its claim: each scheme is best, or near best, on the task that resembles it
# (neuron masking on co-smoothing, causal on forward prediction, intra-region on intra-region,
# inter-region on inter-region), each is poor on the others (intra-region masking alone collapses
# co-smoothing to -9.86 bits per spike in the paper), and MtM is good on all four. The paper's
# numbers, from one selected IBL session:

# %%
display(Markdown(results_table(PAPER_TABLE3, COLUMNS)))

# %% [markdown]
# Ours: each model row the mean over the `SEEDS` training seeds and the `N_TEST` held-out synthetic
# sessions, ± the half-width of its 95 % interval over seeds; the reference rows below the models
# ({numref}`fig-09-ablation` draws the table):

# %%
ablation, ablation_runs = run("ablation")
show_results(ablation, ablation_runs)

# %% mystnb={"figure": {"caption": "The masking ablation (single-session NDT1): one panel per column, a bar per model (blue: temporal, neuron, causal, intra-region and inter-region masking, MtM without and with prompts; the mean over seeds, its 95 % interval as a whisker) and per reference row (grey: latent oracle, Bayes reference, true rates, linear baseline; the Bayes reference has no behaviour columns). Activity tasks in bits per spike, choice as accuracy, whisker motion energy as $R^2$; panels of one unit share their axis.", "name": "fig-09-ablation"}}
plot_runs(ablation, ablation_runs)
plt.show()

# %% [markdown]
# A comparison of two models is their *paired* difference: the same seed and the same held-out
# session give one difference per cell, and the interval is over the seeds' mean differences
# (`mtm.stats.paired_difference`), narrower than the two rows' own intervals when a seed moves both
# models the same way. One cell of the table below, worked out: prompted MtM against temporal
# masking on intra-region.

# %%
mtm_cells = cells(ablation_runs["MtM (prompted)"], "intra-region")
temporal_cells = cells(ablation_runs["Temporal (baseline)"], "intra-region")
for (seed, session), score in mtm_cells.items():
    other = temporal_cells[seed, session]
    print(
        f"seed {seed}, {session}: {score:.3f} - {other:.3f} "
        f"= {score - other:+.3f}"
    )
d = paired_difference(mtm_cells, temporal_cells)
print(
    f"paired difference: {d.mean:+.3f}, 95 % interval over seeds "
    f"{d.low:+.3f} to {d.high:+.3f}; in the table: {d.format(sign=True)}"
)

# %% [markdown]
# Each single scheme against prompted MtM, as a paired difference (the interval over seeds; **bold**
# where it excludes zero, so that the two models can be told apart):

# %%
ablation_differences = paired_differences(
    ablation_runs, ablation_experiment.comparisons()
)
display(
    Markdown(
        interval_table(
            ablation_differences, ablation_differences, COLUMNS, sign=True
        )
    )
)

# %% [markdown]
# How to read this table against the paper's pattern:
#
# - **Each scheme wins the task that resembles it** if, in the column of its own task, the scheme's
#   row is not bold (MtM cannot be told apart from it) or negative (the scheme is ahead), and the
#   paper's MtM stays close there (in the paper, neuron masking's 1.04 on co-smoothing against
#   MtM's 0.98; causal masking's 0.48 on forward prediction against 0.57).
# - **Each is poor on the others**: the paper's intra-region masking collapses co-smoothing (-9.86)
#   and inter-region prediction (-9.06); look for large positive bold cells away from each scheme's
#   own task.
# - **MtM is good on all four** if no cell of the activity columns is bold and negative, and MtM's
#   share of the Bayes reference (the table above) is similar on every task.
# - **Our sessions are small**: `N_TRIALS` trials a session, `ABLATION_EPOCHS` epochs;
#   the shares of the Bayes reference say how far every model is from what the spikes allow, and the
#   linear baseline's row how far a predictor without training gets.
#
# Section 6 reads the pattern out of this table in words.
#
# ## 3. NDT2 beside NDT1 (Tables 4 and 5)
#
# NDT2 ({doc}`03_model`, section 7) cuts each bin into patches of neurons and attends over space and
# time; the paper trains it with the same masking schemes and reports it in Tables 4 (single-session,
# one selected session) and 5 (single-session and pretrained on 34 sessions, 5 held-out sessions).
# Its baseline is *random-token* masking, NDT2's own: whole patch tokens hidden at random. `mtm`
# trains both backbones with the same loop, sessions, seeds and epochs, so the rows of one training
# stage and masking stand side by side. Under the book's settings every model is trained on the
# held-out session alone (`NDT2_PRETRAIN` is 0; `mtm reproduce --experiment ndt2` pretrains too).
#
# The paper's single-session rows do not make one backbone better everywhere. NDT1 (Table 2) is ahead
# on co-smoothing (0.55 against NDT2's -0.87 with the baselines, 1.00 against 0.97 with MtM) and on
# intra-region (-0.49 against -0.99; 0.70 against 0.64), and on inter-region with the baselines (0.18
# against -0.75); NDT2 (Table 5) is ahead on forward prediction (0.35 against 0.17 with the
# baselines, 0.36 against 0.28 with MtM) and, with MtM, on inter-region (0.84 against 0.83). The
# paper's Table 5:

# %%
display(Markdown(results_table(PAPER_TABLE5, COLUMNS)))

# %% [markdown]
# Ours ({numref}`fig-09-ndt2` draws it):

# %%
ndt2, ndt2_runs = run("ndt2")
show_results(ndt2, ndt2_runs)

# %% mystnb={"figure": {"caption": "NDT2 beside NDT1, one panel per column: a bar per model (blue; mean over seeds, its 95 % interval as a whisker), each backbone with its baseline masking (random-token for NDT2, temporal for NDT1) and with prompted MtM, then the reference rows (grey). Activity tasks in bits per spike, choice as accuracy, whisker motion energy as $R^2$; panels of one unit share their axis.", "name": "fig-09-ndt2"}}
plot_runs(ndt2, ndt2_runs)
plt.show()

# %% [markdown]
# The comparisons, as paired differences with their intervals: MtM against each backbone's own
# baseline masking, and NDT1 against NDT2 with the baselines and with MtM (**bold** where the
# interval excludes zero):

# %%
ndt2_pairs = ndt2_experiment.comparisons(RUN.NDT2_PRETRAIN)
ndt2_differences = paired_differences(ndt2_runs, ndt2_pairs)
display(
    Markdown(
        interval_table(ndt2_differences, ndt2_differences, COLUMNS, sign=True)
    )
)

# %% [markdown]
# The paper's pattern, for comparison: MtM lifts NDT2 far above random-token masking on
# co-smoothing (-0.87 to 0.97), intra-region (-0.99 to 0.64) and inter-region (-0.75 to 0.84),
# while forward prediction barely moves (0.35 to 0.36); our first row says how far these short runs
# get there. Two more things to read in the tables. Forward prediction of the last 200 ms asks more
# than each neuron's mean rate, and is the task where the paper's NDT2 rows (0.34 to 0.38) stand
# out. Behaviour is decoded from a fifth of the `N_TRIALS` trials (the test split), so one trial
# moves choice accuracy by a step of 1 / (the number of test trials): judge choice differences by
# their intervals, not by their size. Every row here trains for `NDT2_EPOCHS` epochs against the
# ablation's `ABLATION_EPOCHS`, so compare NDT1 in this table with NDT2, not with section 2; and
# the linear baseline, the same in both tables, is the floor every trained model has to clear.
#
# ## 4. More pretraining sessions (Fig. 4)
#
# The paper pretrains NDT1-stitch on 1, 10 and 34 sessions, fine-tunes on each held-out session and
# finds that MtM improves on every activity task with more sessions while the temporal baseline
# saturates at 10. {doc}`07_multisession` runs the paper's comparison, a pretrained model reused and
# fine-tuned on a new session against training on that session alone, with the book's settings
# ({numref}`fig-07-transfer`), so this chapter does not train it a second time. The scaling
# experiment compares at equal total steps instead: `mtm reproduce --experiment scaling` runs it as one plan, `--preset paper` with the paper's 1, 10
# and 34 sessions; in this chapter, `run("scaling")` after
# `plans["scaling"] = plan("scaling", n_pretrain=4, pretrain_counts=(1, 2, 4))`, and
# `mtm.reproduce.scaling.plot_scaling` draws its table.
#
# ## 5. The other experiments
#
# Four more experiments run the same way. {doc}`10_budget` runs the budget study with the book's
# settings; the other three take several minutes each on a 2-core CPU at their small presets, so the
# book does not execute them:
#
# - `--experiment prompts` (Table 6): the pretrained, fine-tuned MtM model scored with each prompt
#   token at inference;
# - `--experiment mask-ratio` (Table 7): temporal, neuron, intra-region masking and MtM at masking
#   ratios 0.1, 0.3 and 0.6;
# - `--experiment region-decoding` (Figs. 5 and 7): choice and whisker motion energy decoded from one
#   region at a time, and each neuron's co-smoothing, PSTH and single-trial scores;
# - `--experiment budget` (not in the paper, {doc}`10_budget`): temporal masking and MtM trained at
#   several trials per session, pretraining sessions, optimiser steps and model widths, each score
#   drawn as a share of the Bayes reference, to show which of these limits the models on small
#   sessions.
#
# In this chapter, `run("prompts")` after adding `plans["prompts"] = plan("prompts")` runs the first,
# on this chapter's sessions of `N_TRIALS` trials and `N_NEURONS` neurons.
#
# ## 6. What this run shows
#
# The box is written by the cell from the paired differences of sections 2 and 3, so its words
# follow the numbers of the run in front of you (the take-away at the top of the page glues the
# same sentences from the stored run):

# %%
differences = {**ablation_differences, **ndt2_differences}
PAIRS = {  # the differences the box reads, activity tasks only
    "mtm_temporal": "MtM (prompted) - Temporal (baseline)",
    "ndt1_ndt2": "NDT1 - NDT2, single-session, MtM",
    "ndt2_mtm": "NDT2: MtM - Random token, single-session",
}
WORDS = {  # each difference a - b: a and b in words
    "mtm_temporal": ("Prompted MtM", "temporal masking"),
    "ndt1_ndt2": ("NDT1", "NDT2 (both with MtM)"),
    "ndt2_mtm": ("On NDT2, MtM", "random-token masking"),
}
activity = {
    key: {task: differences[label][task] for task in TASKS}
    for key, label in PAIRS.items()
}
bayes = ablation[BAYES_ROW]
share = [100 * ablation["MtM (prompted)"][t] / bayes[t] for t in TASKS
         if bayes[t] > 0]
points = {
    "own_task": ablation_experiment.own_task_sentence(ablation_differences)
}
points |= {k: verdict_sentence(*WORDS[k], activity[k]) for k in WORDS}
points["shares"] = (
    f"In the ablation, prompted MtM reaches {min(share):.0f} to "
    f"{max(share):.0f} % of the Bayes reference on the activity tasks"
)
what_this_run_shows(*points.values())

# %%
# the sentences and differences the text at the top and the summary state
glued = {f"point_{key}": text for key, text in points.items()}
glued |= {
    f"d_{key}": ", ".join(d.format(sign=True) for d in row.values())
    for key, row in activity.items()
}
intra_masking = row_intervals(ablation_runs["Intra-region"])["co-smooth"]
glued["intra_masking_cosmooth"] = intra_masking.format()
for key, text in glued.items():
    glue_text(key, text)

# %% [markdown]
# Beside the paper: its Table 3 has MtM at 0.98, 0.57, 0.43 and 0.84 bits per spike on
# co-smoothing, forward prediction, intra- and inter-region against the temporal baseline's 0.84,
# 0.42, -0.20 and 0.57, and single schemes that collapse away from their own task (intra-region
# masking -9.86 on co-smoothing; here {glue:text}`intra_masking_cosmooth`); its Table 5 has MtM
# lifting single-session NDT2 from -0.87 to 0.97 on co-smoothing and from -0.99 to 0.64 on
# intra-region. This run's differences are in the tables of sections 2 and 3 and, for the four
# activity tasks, at the top of the page. They depend on `N_TEST` synthetic sessions of `N_TRIALS`
# trials, the `small` model and `ABLATION_EPOCHS` / `NDT2_EPOCHS` epochs (the settings line at the
# top); {doc}`10_budget` varies each of these.
#
# ## Summary
#
# - `mtm reproduce --experiment NAME` (`mtm.reproduce.run_experiment`) runs each of the paper's
#   experiments from a `Plan`: the runs in parallel, once per training seed, finished runs reused,
#   every model scored on the same held-out sessions beside the latent oracle, the Bayes reference,
#   the true rates and a linear baseline.
# - A row is a mean over seeds with its 95 % interval; a comparison is a paired difference, seed by
#   seed on the same session, with its own interval, and a difference whose interval contains zero
#   is not one these runs can show.
# - The masking ablation trains one model per masking scheme; the paper's pattern is that each
#   scheme wins the task that resembles it and fails hard on the others, and MtM is good on all of
#   them. In the stored run: {glue:text}`point_own_task`. {glue:text}`point_mtm_temporal`
#   ({glue:text}`d_mtm_temporal` bits per spike).
# - NDT2 trains with the same loop and masking as NDT1; in the paper's single-session rows neither
#   backbone is ahead on every task, and MtM lifts NDT2 far above random-token masking. In the
#   stored run, {glue:text}`point_ndt1_ndt2` ({glue:text}`d_ndt1_ndt2`).
#   {glue:text}`point_ndt2_mtm` ({glue:text}`d_ndt2_mtm`).
# - {glue:text}`point_shares`, the best prediction from the spikes a model sees.
# - The scaling experiment (run in {doc}`07_multisession`) pretrains on more and more sessions; in the
#   paper MtM keeps improving where temporal masking saturates.
#
# ## Exercises
#
# **Exercise 1.** Rank the ablation's seven models on each activity task by their mean. Which
# neighbours in each ranking can the seeds tell apart?
#
# :::{admonition} Hint
# :class: dropdown
# `paired_differences(ablation_runs, [(label, a, b), ...])` gives any pair's paired difference with
# its interval; a neighbour pair is told apart when that interval excludes zero.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below (folded) sorts the models by their mean on each task and writes `>` between two
# neighbours whose paired difference excludes zero, `~` where the interval contains zero. With
# `SEEDS` seeds a difference must be large against the spread between seeds to be told apart, so
# expect many `~`: a ranking by means alone says more than the runs support. To narrow the intervals,
# train more seeds (`OVERRIDES = {"SEEDS": 5}`) or more held-out sessions, in a new run folder.
# :::

# %% tags=["hide-input"]
for task in TASKS:
    order = sorted(ablation_runs, key=lambda m: -ablation[m][task])
    steps = paired_differences(
        ablation_runs, [(f"{a} - {b}", a, b) for a, b in zip(order, order[1:])]
    )
    text = order[0]
    for a, b in zip(order, order[1:]):
        text += (
            " > " if steps[f"{a} - {b}"][task].excludes_zero else " ~ "
        ) + b
    print(f"{COLUMN_WORDS[task]}: {text}")

# %% [markdown]
# **Exercise 2.** Does the prompt token matter in the ablation? Compare MtM with and without prompts
# on every column.
#
# :::{admonition} Hint
# :class: dropdown
# The ablation's comparisons already hold `"MtM (prompted) - MtM (not prompted)"`
# (`ablation_differences`); an `Interval` has `excludes_zero`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below prints each column's paired difference and whether its interval excludes zero (the
# last row of the table in section 2). In the paper the prompt changes little in the ablation
# (Table 3: MtM 0.99 / 0.54 / 0.42 / 0.83 without prompts, 0.98 / 0.57 / 0.43 / 0.84 with them). A
# prompt only changes one token at the start of the sequence (and, for the causal prompt, the
# attention); the behaviour decoders read the log-rates of the whole, unmasked trial, so there is
# little room for it to change choice or whisker motion energy. `mtm reproduce --experiment
# prompts` scores every task under every prompt.
# :::

# %% tags=["hide-input"]
prompt = ablation_differences["MtM (prompted) - MtM (not prompted)"]
for column, difference in prompt.items():
    told = "excludes" if difference.excludes_zero else "contains"
    print(
        f"{COLUMN_WORDS.get(column, column)}: {difference.format(sign=True)}"
        f" (the interval {told} zero)"
    )

# %% [markdown]
# **Exercise 3.** The NDT2 models use patches of `NDT2_PATCH` neurons. With this chapter's
# `N_NEURONS`-neuron sessions, how many patch tokens does each bin have? What does that leave for
# NDT2's space-time attention to do?
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
# last; the cell below prints the count for this chapter's sessions (under the book's settings,
# 2 tokens per bin), plus the session token and, for MtM, the prompt token.
# With two tokens per bin, attention across space is attention between two parts of the probe. The
# synthetic neurons are ordered by region, so the patches are cut without regard to region
# boundaries; a region can straddle them. Almost all of the work is attention over time, as in NDT1,
# and within a patch the neurons are mixed by one linear embedding shared by every patch and every
# session. NDT2 has no stitcher: the 5th neuron of every patch, in every session, gets the same input
# and output weights, and only the patch's space embedding tells the patches apart. Random-token
# masking hides whole patches, so what it hides never follows the regions. In the paper the sessions
# hold several hundred neurons, so each bin has more tokens (a 676-neuron session has 6 patches per
# bin and 600 tokens per trial). To give space more to do here, make the patches smaller
# (`OVERRIDES = {"NDT2_PATCH": 32}`, in a new run folder): more tokens per bin, and slower, since
# attention grows with the square of their number.
# :::

# %% tags=["hide-input"]
patch = plans["ndt2"].train_config("mtm", arch="ndt2").model.patch_size
for s in heldout_sessions["ndt2"]:
    per_bin = math.ceil(s.n_neurons / patch)
    print(
        f"{s.eid}: {s.n_neurons} neurons, patches of {patch}: "
        f"{per_bin} tokens per bin (the last holds "
        f"{s.n_neurons - (per_bin - 1) * patch} neurons), "
        f"{per_bin * s.n_bins} per trial; "
        f"regions {s.region_counts()}"
    )

# %% [markdown]
# **Exercise 4.** Does MtM help NDT2 more than it helps NDT1? Compare the two gains, MtM minus each
# backbone's baseline, seed by seed.
#
# :::{admonition} Hint
# :class: dropdown
# A gain is a paired difference per (seed, session) cell; the difference of two gains is again
# paired by seed and session: `mtm.stats.paired_difference` of the two gains' cells.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below prints, task by task, MtM's gain over random-token masking on NDT2 minus its gain
# over temporal masking on NDT1, with the interval over seeds. In the paper's single-session rows the
# gain on co-smoothing is about four times as large on NDT2 as on NDT1, because random-token masking
# collapses co-smoothing (-0.87 against temporal masking's 0.55): it hides whole patches, so it never
# asks NDT2 to predict held-out neurons from the others in the same bin, which is what co-smoothing
# tests. On forward prediction the paper's gains are small on both backbones (0.35 to 0.36 on NDT2,
# 0.17 to 0.28 on NDT1).
# :::


# %% tags=["hide-input"]
def gain(backbone: str, baseline: str, task: str) -> dict:
    """{(seed, session): MtM minus the backbone's baseline} of one task."""
    mtm_cells = cells(
        ndt2_runs[ndt2_experiment.row_name(backbone, "MtM (prompted)")], task
    )
    base_cells = cells(
        ndt2_runs[ndt2_experiment.row_name(backbone, baseline)], task
    )
    return {key: mtm_cells[key] - base_cells[key] for key in mtm_cells}


for task in TASKS:
    difference = paired_difference(
        gain("NDT2", "Random token", task), gain("NDT1", "Temporal", task)
    )
    told = "excludes" if difference.excludes_zero else "contains"
    print(
        f"{COLUMN_WORDS[task]}: gain on NDT2 - gain on NDT1 = "
        f"{difference.format(sign=True)} (the interval {told} zero)"
    )

# %% tags=["remove-input"]
print(RUN.done())

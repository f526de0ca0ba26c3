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
# # 9. Experiments: the masking ablation, NDT2 and scaling
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
# - how the score moves with the number of pretraining sessions (the paper's Fig. 4);
# - how `mtm reproduce --experiment NAME` runs each of these, and what it writes.
#
# *About 10 minutes to read; the line under the parameters gives an estimate of the training time
# on the machine at hand. Every experiment here runs the `small` preset of `mtm reproduce` (small
# sessions, a small model, a few dozen to a hundred epochs); the paper's preset of each takes hours
# to days on a GPU.*

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
from mtm.reproduce.scaling import plot_scaling
from mtm.reproduce.tables import COLUMNS, REFERENCE_ROWS, plot_table

use_style()
print(gpu_check())

# %% [markdown]
# ## Parameters
#
# `SETTINGS` picks one of the chapter's three sets of values (`mtm.book.CHAPTER_SETTINGS`); any
# parameter set here replaces the settings' value. `None` keeps each experiment's `small` preset.

# %% tags=["parameters"]
SETTINGS = "auto"          # "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else gpu or book
SEED = 0                   # first synthetic session
N_TEST = None              # held-out sessions every model is scored on (None: the settings' value)
N_TRIALS = None            # trials per session (None: each experiment's small preset)
N_NEURONS = None           # neurons per session (None: each experiment's small preset)
ABLATION_EPOCHS = None     # epochs of each ablation model (None: the settings' value)
NDT2_EPOCHS = None         # epochs of every NDT2/NDT1 run, pretraining and fine-tuning (None: the settings')
SCALING_COUNTS = None      # numbers of pretraining sessions compared (None: the settings' value)
SCALING_EPOCHS = None      # pretraining and fine-tuning epochs of the scaling runs (None: the settings')
MODEL = None               # model size overrides (None: the settings' value)
WORKERS = None             # parallel training runs (None: the settings' value)
OUT_DIR = None             # run folder (None: the settings' shared folder)

# %%
RUN = chapter_settings("09_experiments", SETTINGS, N_TEST=N_TEST, N_TRIALS=N_TRIALS, N_NEURONS=N_NEURONS,
                       ABLATION_EPOCHS=ABLATION_EPOCHS, NDT2_EPOCHS=NDT2_EPOCHS,
                       SCALING_COUNTS=SCALING_COUNTS, SCALING_EPOCHS=SCALING_EPOCHS, MODEL=MODEL,
                       WORKERS=WORKERS)
(N_TEST, N_TRIALS, N_NEURONS, ABLATION_EPOCHS, NDT2_EPOCHS, SCALING_COUNTS, SCALING_EPOCHS, MODEL,
 WORKERS) = RUN.unpack("N_TEST", "N_TRIALS", "N_NEURONS", "ABLATION_EPOCHS", "NDT2_EPOCHS",
                       "SCALING_COUNTS", "SCALING_EPOCHS", "MODEL", "WORKERS")
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
def plan(experiment: str, **values) -> Plan:
    """The experiment's small preset with this chapter's values (None keeps the preset's)."""
    return Plan.for_preset("small", experiment, n_test=N_TEST, session_seed=SEED, n_trials=N_TRIALS,
                           n_neurons=N_NEURONS, train_overrides=dict(model=MODEL) if MODEL else {}, **values)


plans = {"ablation": plan("ablation", epochs=ABLATION_EPOCHS),
         "ndt2": plan("ndt2", epochs=NDT2_EPOCHS, pretrain_epochs=NDT2_EPOCHS, finetune_epochs=NDT2_EPOCHS),
         "scaling": plan("scaling", n_pretrain=max(SCALING_COUNTS), pretrain_counts=tuple(SCALING_COUNTS),
                         pretrain_epochs=SCALING_EPOCHS, finetune_epochs=SCALING_EPOCHS)}
for name, p in plans.items():
    cfg = p.train_config("mtm", "pretrain" if p.n_pretrain else "single")
    print(f"{name:9s} {p.n_pretrain} pretraining + {p.n_test} held-out sessions of "
          f"{p.n_trials} trials x {p.n_neurons} neurons; {cfg.epochs} epochs, "
          f"model {cfg.model.n_layers} x {cfg.model.hidden}")


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
# Ours, the mean of the held-out synthetic sessions, with the paper's number in brackets:

# %%
ablation = run("ablation")
display(Markdown(paper_comparison_table(model_rows(ablation), PAPER_TABLE3, COLUMNS)))
display(Markdown(results_table({row: ablation[row] for row in REFERENCE_ROWS if row in ablation}, COLUMNS)))

# %% mystnb={"figure": {"caption": "The masking ablation: each single-scheme model, MtM with and without prompts, and the reference rows (grey), on the four activity tasks (bits per spike), choice (accuracy) and whisker motion energy ($R^2$).", "name": "fig-ablation"}}
plot_table(ablation, list(model_rows(ablation)) + [r for r in REFERENCE_ROWS if r in ablation], COLUMNS)
plt.show()

# %% [markdown]
# Each model's share of the oracle, task by task:

# %%
display(Markdown(oracle_share_table(model_rows(ablation), ablation[ORACLE_ROW], list(TASKS))))

# %% [markdown]
# <!-- TODO(book run): what the stored ablation shows, row by row, against the paper's pattern. -->
#
# ## 3. NDT2 beside NDT1 (Tables 4 and 5)
#
# NDT2 ({doc}`03_model`, section 7) cuts each bin into patches of neurons and attends over space and
# time; the paper trains it with the same masking schemes and reports it in Tables 4 (single-session,
# one selected session) and 5 (single-session and pretrained on 34 sessions, 5 held-out sessions).
# Its baseline is *random-token* masking, NDT2's own: whole patch tokens hidden at random. `mtm`
# trains both backbones with the same loop, sessions and epochs, so the rows of one training stage
# and masking stand side by side. The paper's Table 5:

# %%
display(Markdown(results_table(PAPER_TABLE5, COLUMNS)))

# %%
ndt2 = run("ndt2")
display(Markdown(results_table(ndt2, COLUMNS)))

# %% mystnb={"figure": {"caption": "NDT2 beside NDT1, single-session and pretrained then fine-tuned, each with its baseline masking and with prompted MtM, and the reference rows (grey).", "name": "fig-ndt2"}}
plot_table(ndt2, list(model_rows(ndt2)) + [r for r in REFERENCE_ROWS if r in ndt2], COLUMNS)
plt.show()

# %% [markdown]
# <!-- TODO(book run): what the stored NDT2 rows show beside NDT1's and the paper's Table 5. -->
#
# ## 4. More pretraining sessions (Fig. 4)
#
# The paper pretrains NDT1-stitch on 1, 10 and 34 sessions, fine-tunes on each held-out session and
# finds that MtM improves on every activity task with more sessions while the temporal baseline
# saturates at 10. The `scaling` experiment does the same with the counts of `SCALING_COUNTS`: one
# pretraining run per count and masking, each on the first sessions of the same list, then
# fine-tuning and scoring on every held-out session.

# %%
scaling = run("scaling")
display(Markdown(results_table(scaling, COLUMNS)))

# %% mystnb={"figure": {"caption": "Scores after pretraining on more sessions and fine-tuning, temporal masking and prompted MtM, mean over the held-out sessions.", "name": "fig-scaling"}}
plot_scaling(scaling, sorted(SCALING_COUNTS))
plt.show()

# %% [markdown]
# <!-- TODO(book run): what the stored scaling lines show, against the paper's Fig. 4. -->
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
# In this chapter, `run("prompts")` after adding `plans["prompts"] = plan("prompts")` runs the first.
#
# ## Summary
#
# - `mtm reproduce --experiment NAME` (`mtm.reproduce.run_experiment`) runs each of the paper's
#   experiments from a `Plan`: the runs in parallel, finished runs reused, every model scored on the
#   same held-out sessions beside the oracle, the true rates and a linear baseline.
# - The ablation trains one model per masking scheme; the paper's pattern is that each scheme wins
#   the task that resembles it and MtM is good on all of them.
# - NDT2 trains with the same loop and masking as NDT1; the paper finds MtM helps both backbones.
# - The scaling experiment pretrains on more and more sessions; in the paper MtM keeps improving
#   where temporal masking saturates.
#
# ## Exercises
#
# 1. Set `ABLATION_EPOCHS = 300` and rerun section 2 in a new `OUT_DIR`. Which rows move most, and
#    does the ranking of the schemes on each task change?
# 2. Run the prompts experiment (section 5). Do the prompts change the behaviour scores?
# 3. The NDT2 models use patches of `Plan.train_config("mtm", arch="ndt2").model.patch_size` neurons.
#    With 64-neuron sessions, how many patch tokens does each bin have? What does that leave for
#    NDT2's space-time attention to do?
# 4. Compare the scaling figure with {doc}`07_multisession`'s: they pretrain on different sessions
#    with different epochs. Do they agree on the direction of the effect?

# %% tags=["remove-input"]
print(RUN.done())

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
# # Where the gap comes from: data, training and model size
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/10_budget.ipynb)
#
# **What you will learn**
#
# - how far the models of the previous chapters are from a predictor they could reach, and which of
#   four budgets closes most of that distance: trials per session, pretraining sessions, optimiser
#   steps or model width;
# - how to design such a study so that every comparison changes one thing: one factor at a time
#   around a centre point, at equal optimiser steps, nested training sets, every point trained with
#   several seeds and read with its interval;
# - where the book's own chapters sit on these axes, and what that means for their results.
#
# **This run's answer, in short.** At the study's centre ({glue:text}`centre_trials` trials per
# session, {glue:text}`centre_steps` optimiser steps, width {glue:text}`centre_width`, from scratch)
# MtM reaches {glue:text}`mtm_centre_share` % of the Bayes reference, a predictor a model could reach
# (the mean over the four activity tasks), and temporal masking {glue:text}`temporal_centre_share` %.
# Each budget, over the study's range, moves the share by (percentage points of the reference,
# mean effects, largest mean first):
#
# - MtM: {glue:text}`mtm_ranking`;
# - temporal masking: {glue:text}`temporal_ranking`.
#
# That order is of the means only: section 5's table gives each effect's 95 % interval, and where two
# effects' intervals overlap this study does not rank them.
#
# The paper finds that pretraining on more sessions helps; here a short pretraining on
# {glue:text}`sessions_high` other sessions, at equal total steps, changes MtM's share by
# {glue:text}`mtm_sessions` points. Section 5 gives every number with its interval. Equal total
# steps is a view of its own, not the paper's comparison: a pretrained model is made once and reused,
# and {doc}`07_multisession` and {doc}`08_reproduction` compare fine-tuning with training from scratch
# for the same steps on the new session.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. The study is the package's own, `mtm reproduce --experiment budget`, run with this
# chapter's settings; its `paper` preset, with the paper's model width and up to 16 pretraining
# sessions, is for a GPU.*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; elsewhere it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE],
                   check=True)

import json

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mtm.book import (chapter_settings, glue_text, gpu_check,
                      training_budgets, what_this_run_shows)
from mtm.evaluate import TASKS
from mtm.plots import COLUMN_WORDS, use_style
from mtm.reproduce import Plan, run_experiment
from mtm.reproduce.budget import (CENTRE, FACTORS, MASKINGS, MEAN,
                                  PAPER_FINDING, PRETRAIN_SHARE, REACHABLE,
                                  YARDSTICKS,
                                  budget_markdown, effect_name,
                                  effect_points, findings, headline,
                                  plan_fields, plan_markdown, plan_rows,
                                  plot_budget, point_name, schedule)
from mtm.reproduce.tables import interval_table
from mtm.stats import paired_difference
from mtm.tables import markdown_table

use_style()
print(gpu_check())

# %% tags=["parameters"]
SETTINGS = "auto"  # "smoke", "book" or "gpu" ("auto": book, gpu or smoke)
OVERRIDES = {}  # values of mtm.book.CHAPTER_SETTINGS to replace
SEED = 0  # the world's first session (the pool first, then the held-out)

# %%
RUN = chapter_settings("10_budget", SETTINGS, **OVERRIDES)
OUT_DIR = RUN.run_dir / "budget"   # read once: smoke makes a new one each time

# %% [markdown]
# ## 1. The question
#
# {doc}`05_evaluation` placed every model between two yardsticks. The *latent oracle* predicts each
# hidden count from the true latents, which no model sees: an upper bound. The *Bayes reference*
# predicts it from exactly the spikes the task leaves visible, with the generative parameters known
# (`mtm.bayes`): a predictor a model could reach, since it uses nothing a model lacks but the
# parameters, and a model can learn those from enough data. No model of chapters 5, 7, 8 and 9
# reached the Bayes reference; their share tables say how far each stayed. That distance is what
# the same spikes still allow a model to gain.
#
# What would close it? A modeller can spend four things:
#
# - **trials per session**: more examples of the same neurons, from which to learn their loadings
#   and the dynamics;
# - **pretraining sessions**: more trials of the same dynamics through other neurons
#   ({doc}`07_multisession`);
# - **optimiser steps**: more training on the same data;
# - **model width**: more capacity (hidden units of the transformer, its MLP and its input).
#
# This chapter trains the temporal baseline and prompted MtM along each of these, on sessions of
# one synthetic world, and measures every score as a share of the Bayes reference. It answers, with
# numbers, which of the four limits the models at the sizes this book trains.
#
# ## 2. The design: one factor at a time, at equal optimiser steps
#
# The study (`mtm.reproduce.budget`) has a *centre point* (trials per session, optimiser steps and
# width, trained from scratch) and varies one factor at a time around it, holding the other three at
# the centre:
#
# - along **trials**, the held-out session's training trials change and the optimiser steps do not
#   (a larger session is passed over fewer times); the trial sets are nested (a level trains on the
#   first trials of one fixed random order), and every level is scored on the same test trials;
# - along **pretraining sessions**, a share `PRETRAIN_SHARE` of the centre's steps is spent
#   pretraining on $k$ other sessions of the world and the rest fine-tuning on the held-out
#   session: the same total steps as the centre, which is the point $k = 0$;
# - along **steps**, the data stay those of the centre;
# - along **width**, the hidden units $h$ change (MLP $2h$, input channels $h$) at the centre's
#   steps.
#
# So every comparison along a factor except steps is at equal optimiser steps (to the nearest whole
# epoch, so they differ by up to one epoch's batches), and what it measures is the factor, not the
# amount of training. Every point is trained once per training seed and is
# the mean over seeds with its 95 % interval; the effect of a factor is its highest level minus its
# lowest, paired by seed. The plan, and what one seed of MtM trains at each point:

# %%
plan = Plan.for_preset(
    "book", "budget",
    **plan_fields(RUN.FACTORS, n_test=RUN.N_TEST, n_neurons=RUN.N_NEURONS),
    session_seed=SEED, n_seeds=RUN.SEEDS,
    train_overrides={"model": RUN.MODEL} if RUN.MODEL else {})
pretrain, heldout = plan.synthetic_sessions()
jobs, cells = schedule(pretrain, heldout, plan, OUT_DIR)
print(f"{len(pretrain)} pretraining sessions and {len(heldout)} held-out "
      f"session(s), {plan.n_neurons} neurons each; {len(jobs)} runs in all "
      f"({len(MASKINGS)} maskings x {plan.n_seeds} seeds); pretraining "
      f"takes {PRETRAIN_SHARE:.0%} of the centre's steps")

# %%
design = plan_rows(jobs, cells, plan.factors, seed=plan.seeds[0])
display(Markdown(plan_markdown(design)))

# %% [markdown]
# The centre is one run per seed and masking, and it serves every factor: {glue:text}`centre_trials`
# trials per session, no pretraining, {glue:text}`centre_design_steps` steps in the design and width
# {glue:text}`centre_width`. Its {glue:text}`centre_train_trials` training trials take
# {glue:text}`centre_steps` steps, the whole number of epochs nearest the design's steps; every other
# row's steps are rounded the same way.
# Along trials the epochs fall as the session grows: at the largest level each training trial is
# seen a few times, at the smallest many times over, for the same steps.
#
# ## 3. Training every point
#
# `run_experiment` trains the runs in worker processes (`WORKERS` at a time, longest first), reuses
# finished runs in the folder, scores each model on the held-out session's test trials as soon as it
# finishes (the four activity tasks of {doc}`05_evaluation`), and computes the two yardsticks on the
# same test trials. It writes the tables (`results.md`, `results.csv`), every run's scores
# (`per_session.json`) and the figure into `OUT_DIR`.

# %%
finished = []


def log(line: str) -> None:
    """Print the study's log, one line per finished run counted."""
    if line.strip().split("]")[-1].strip().startswith("finished"):
        finished.append(line)
        return
    print(line.replace(str(OUT_DIR), "OUT_DIR"))


table = run_experiment(pretrain, heldout, plan, OUT_DIR, workers=RUN.WORKERS,
                       progress=False, log=log)
print(f"{len(finished)} runs finished")
runs = json.loads((OUT_DIR / "per_session.json").read_text())
yardsticks = {name: table[name] for name in YARDSTICKS}
reach = yardsticks[REACHABLE]

# %% [markdown]
# ## 4. Each task's share of the Bayes reference, factor by factor
#
# {numref}`fig-10-budget` draws every point as a percentage of the Bayes reference (100 % is the
# reference; the latent oracle lies above it, since it sees the latents), one row per task and one
# column per factor, on a logarithmic axis (no pretraining is drawn left of one session). Each row's
# y-range is fitted to its points; a yardstick outside it is named, with its value, in the row's
# title.

# %% mystnb={"figure": {"caption": "Each activity task's score on the held-out session's test trials as a percentage of the Bayes reference, against trials per session, pretraining sessions (none drawn left of one), optimiser steps and model width, each varied alone around the centre point. Blue: temporal masking; orange: prompted MtM; each point the mean over training seeds with its 95 % interval. The y-range of each row fits its points: the Bayes reference (100 %) and the latent oracle are drawn as grey lines where they fall inside it (dashed: oracle; dotted: Bayes reference) and named with their values in the row's title where they do not. Every comparison along a factor but steps is at equal optimiser steps.", "name": "fig-10-budget"}}
fig = plot_budget(runs, plan.factors, yardsticks, share_of=REACHABLE)
plt.show()

# %% [markdown]
# The study's tables: every point's scores in bits per spike with their intervals (the centre, the
# same runs under every factor, marked), the yardsticks, every distinct point's share of the Bayes
# reference in percent, MtM minus temporal at every distinct point, and each factor's effect
# (highest level minus lowest), both paired by seed; bold where the interval excludes zero.

# %%
display(Markdown(budget_markdown(runs, plan.factors, yardsticks,
                                 share_of=REACHABLE)))

# %% [markdown]
# ## 5. What limits the models
#
# Each factor's effect on the share of the Bayes reference: its highest level minus its lowest, in
# percentage points of the reference, for each task and averaged over the four (run by run), with
# its 95 % interval over seeds, bold where the interval excludes zero. A factor that moves every
# task by many points is one the models are short of at the centre; one whose intervals all contain
# zero is not what limits them there.

# %%
effect = effect_points(runs, plan.factors, reach)
display(Markdown(interval_table({row: {} for row in effect}, effect,
                                [MEAN, *TASKS], sign=True, digits=0)))

# %% [markdown]
# The box below is written by the cell from these effects and the paired differences of section 4,
# so its words follow the numbers of the run in front of you. MtM against temporal masking changes
# along the factors too: where one masking gains more from a budget, the comparison of chapters 5
# and 8 depends on where on the axes it is made.

# %%
for name, text in headline(runs, plan.factors, reach, design).items():
    glue_text(name, text)
what_this_run_shows(*findings(runs, plan.factors, reach), paper=PAPER_FINDING)

# %% [markdown]
# ## 6. Where the book's chapters sit on these axes
#
# The other chapters train with their own `book` settings (`mtm.book.CHAPTER_SETTINGS`). On the
# study's axes, each of their runs sees this many training trials of its session and takes this many
# optimiser steps (batches of 16 trials). Chapters 7 and 8 compare as the paper does: a run from
# scratch takes as many steps on the held-out session as fine-tuning does there, and a fine-tuned run
# starts after the pretraining steps given (the equal-total-compute view is this chapter's
# pretraining factor, sections 4 and 5):

# %%
BATCH = plan.train_config("mtm").batch_size
where = training_budgets(BATCH)
columns = ["training trials", "steps", "pretraining steps", "width", "neurons"]
display(Markdown(markdown_table(
    columns, {run: [f"{row[c]:,}" for c in columns]
              for run, row in where.items()})))

# %% [markdown]
# Read this table against {numref}`fig-10-budget`. A chapter whose run lies below the centre on an
# axis the models gain from can be expected to stay further from the Bayes reference than the
# centre does (the figure shows how far along that axis, on this session), and a comparison of two
# maskings made there inherits the spread the study shows at that level. Where a
# chapter's results fall short of the paper's pattern (MtM above temporal masking on every task),
# this is the first place to look: whether its models had the data and the steps the study says
# they need. The study's model is the `small` preset (two layers), held at the centre's width except
# along the width factor; the held-out session has `N_NEURONS` neurons.
#
# ## Summary
#
# - **This run's result.** At the centre MtM reaches {glue:text}`mtm_centre_share` % of the Bayes
#   reference (the mean over the four activity tasks) and temporal masking
#   {glue:text}`temporal_centre_share` %. Over the study's range the four budgets move MtM's share
#   by {glue:text}`mtm_ranking`, and temporal masking's by {glue:text}`temporal_ranking` (percentage
#   points of the reference, largest mean first). Which budgets raise a share beyond seed noise,
#   and whether one raises it more than another, is read from the intervals of section 5's table,
#   not from that order.
# - The paper finds that pretraining on more sessions helps MtM; here a short pretraining on
#   {glue:text}`sessions_high` sessions, half of the centre's steps, changes MtM's share by
#   {glue:text}`mtm_sessions` points and temporal masking's by {glue:text}`temporal_sessions`: at
#   equal total steps, the steps spent on other sessions are steps the held-out session does not get.
# - The Bayes reference (`mtm.bayes`) is a yardstick a model can reach; a model's share of it is how
#   much of what the spikes allow the model has learned.
# - The budget study varies trials per session, pretraining sessions, optimiser steps and model width
#   one at a time around a centre, at equal optimiser steps along every factor but steps, every
#   point over several seeds; `mtm reproduce --experiment budget` runs it from a shell.
# - A factor's effect (its highest level minus its lowest, paired by seed) says whether the models
#   are short of it at the centre; the tables and the box above are chosen by those intervals.
# - MtM minus temporal masking changes along the factors, so a comparison of the two is a statement
#   about one point of the budget, not about the maskings alone.
#
# ## Exercises
#
# **Exercise 1.** For each task, which factor moves MtM's score most, and is that move larger than
# the differences between seeds?
#
# :::{admonition} Hint
# :class: dropdown
# `effect` (section 5) holds every factor's highest-minus-lowest difference in percentage points of
# the Bayes reference, with its interval, for each task; `effect_name(label, factor, plan.factors)`
# names its rows.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below (folded) picks, task by task, the factor with the largest mean effect on MtM and
# says whether its interval excludes zero. A factor can lead on one task and not on another: the
# tasks ask different things of a model (forward prediction needs each neuron's own history, the
# region tasks the couplings between regions).
# :::

# %% tags=["hide-input"]
for t in TASKS:
    keyed = {f: effect[effect_name("MtM (prompted)", f, plan.factors)][t]
             for f in FACTORS}
    top = max(keyed, key=lambda f: keyed[f].mean)
    told = "excludes" if keyed[top].excludes_zero else "contains"
    print(f"{COLUMN_WORDS[t]}: {FACTORS[top]}, {keyed[top].mean:+.0f} points "
          f"of the reference (its interval {told} zero)")

# %% [markdown]
# **Exercise 2.** Along the trials factor the optimiser steps are fixed. How many times is each
# training trial seen (epochs) at each level, and what does that suggest about the smallest level?
#
# :::{admonition} Hint
# :class: dropdown
# `design` (section 2) holds, for seed 0's MtM runs, each point's training trials and epochs; the
# trials levels are the centre and the rows named after `FACTORS["trials"]`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below prints each level's training trials and epochs for seed 0's MtM runs. At the
# smallest level the same few trials are passed over many times for the same steps, at the largest
# each is seen a few times: the trials table of section 4 shows what that repetition costs on the
# test trials. A model can fit a few dozen trials closely and still predict new trials badly; the
# validation score picks the best checkpoint along the way, which limits that, but cannot add data.
# :::

# %% tags=["hide-input"]
levels = {label: row for label, row in design.items()
          if label == CENTRE or label.startswith(FACTORS["trials"])}
for label, row in sorted(levels.items(),
                         key=lambda item: item[1]["training trials"]):
    print(f"{label}: {row['training trials']:,} training trials, "
          f"{row['epochs']} epochs")

# %% [markdown]
# **Exercise 3.** Does pretraining on more sessions help MtM more than it helps the temporal
# baseline? Compare the two maskings' changes from no pretraining to the largest number of sessions
# (a change below zero is a loss).
#
# :::{admonition} Hint
# :class: dropdown
# `paired_difference(a, b)` takes two {(seed, session): score} dictionaries; build one per masking
# from the changes in `runs`, seed by seed.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below computes, seed by seed, each masking's change (largest number of sessions minus
# none) and shows MtM's change minus temporal's, task by task, with its interval (bold where it
# excludes zero). In the paper MtM keeps improving with more sessions where temporal masking
# saturates; here the pretraining is short (a share `PRETRAIN_SHARE` of the centre's steps) and
# costs steps on the held-out session, so the changes are those of a short pretraining at equal
# total steps (section 5's table gives each masking's change in points of the reference).
# :::

# %% tags=["hide-input"]
k_max = max(plan.factors["sessions"])


def change(label, task):
    """Seed by seed: the score after k_max pretraining sessions minus none."""
    after, before = (
        {(r["seed"], r["session"]): r["scores"][task]
         for r in runs[point_name("sessions", k, label)]} for k in (k_max, 0))
    return {cell: after[cell] - before[cell] for cell in after}


versus = {"MtM's change − temporal's": {
    t: paired_difference(change("MtM (prompted)", t), change("Temporal", t))
    for t in TASKS}}
display(Markdown(interval_table({row: {} for row in versus}, versus, TASKS,
                                sign=True)))

# %% tags=["remove-input"]
print(RUN.done())

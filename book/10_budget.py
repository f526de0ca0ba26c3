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
import math

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from mtm.book import (CHAPTER_SETTINGS, chapter_settings, compare_words,
                      glue_number, gpu_check)
from mtm.evaluate import TASKS
from mtm.data.session import SPLIT_FRACTIONS
from mtm.plots import TABLE_COLUMNS, use_style
from mtm.reproduce import Plan, run_experiment
from mtm.reproduce.budget import (FACTORS, MASKINGS, PRETRAIN_SHARE,
                                  REACHABLE, YARDSTICKS, budget_markdown,
                                  conditions, effects, mtm_minus_temporal,
                                  plan_fields, plot_budget, point_name,
                                  schedule)
from mtm.reproduce.plan import batches_per_epoch
from mtm.reproduce.scheduler import row_intervals
from mtm.stats import paired_difference
from mtm.tables import markdown_table
from mtm.train import TrainConfig

use_style()
print(gpu_check())

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else
# gpu or book. OVERRIDES: the settings' values to replace, e.g.
# {"SEEDS": 5}; the values are in mtm.book.CHAPTER_SETTINGS.
# SEED: the world's first session (the pretraining pool, then the held-out).
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0

# %%
RUN = chapter_settings("10_budget", SETTINGS, **OVERRIDES)
# read once: under smoke every access makes a new folder
OUT_DIR = RUN.run_dir / "budget"

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

rows = {}
for name, served in cells.items():
    if not name.startswith(f"seed{plan.seeds[0]}/") or "/mtm/" not in name:
        continue
    job = jobs[name]
    train_trials = len(job["sessions"][0].splits["train"])
    steps = job["cfg"]["epochs"] * batches_per_epoch(job["sessions"],
                                                     job["cfg"]["batch_size"])
    width = job["cfg"]["model"]["hidden"]
    before = "from scratch"
    if "after" in job:
        first = jobs[job["after"]]
        k = len(first["sessions"])
        pre_steps = first["cfg"]["epochs"] * batches_per_epoch(
            first["sessions"], first["cfg"]["batch_size"])
        before = f"{pre_steps} steps on {k} session(s)"
    for factor, level, *_ in served:
        rows[f"{FACTORS[factor]} {level}"] = [
            str(train_trials), before, str(steps),
            str(job["cfg"]["epochs"]), str(width)]
display(Markdown(markdown_table(
    ["training trials", "pretraining", "steps on the session", "epochs",
     "width"], rows)))

# %% [markdown]
# Every row that shares the centre's values is the same run: the centre is trained once per seed
# and serves every factor. Along trials the epochs fall as the session grows: at the largest level
# each training trial is seen a few times, at the smallest many times over, for the same steps.
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
# {numref}`fig-10-budget` draws every point as a share of the Bayes reference (1 is the reference;
# the latent oracle lies above it, since it sees the latents), one row per task and one column per
# factor, on a logarithmic axis (no pretraining is drawn left of one session).

# %% mystnb={"figure": {"caption": "Each activity task's score on the held-out session's test trials as a share of the Bayes reference (dotted, at 1: the reference itself; dashed: the latent oracle), against trials per session, pretraining sessions (none drawn left of one), optimiser steps and model width, each varied alone around the centre point. Blue: temporal masking; orange: prompted MtM; each point the mean over training seeds with its 95 % interval. Every comparison along a factor but steps is at equal optimiser steps.", "name": "fig-10-budget"}}
fig = plot_budget(runs, plan.factors, yardsticks, share_of=REACHABLE)
plt.show()

# %% [markdown]
# The study's tables: every point's scores in bits per spike with their intervals, the yardsticks,
# every score's share of the Bayes reference, MtM minus temporal at every point, and each factor's
# effect (highest level minus lowest), both paired by seed; bold where the interval excludes zero.

# %%
display(Markdown(budget_markdown(runs, plan.factors, yardsticks,
                                 share_of=REACHABLE)))

# %% [markdown]
# ## 5. What limits the models
#
# Each factor's effect as a share of the Bayes reference: its highest level minus its lowest, in
# percentage points of the reference, averaged over the four tasks, with the number of tasks whose
# paired interval excludes zero above (+) and below (−) zero. A factor that moves every task by many
# points is one the models are short of at the centre; one whose intervals all contain zero is not
# what limits them there.

# %%
effect = effects(runs, plan.factors)


def points(interval, task):
    """An effect in bits per spike as percentage points of the reference."""
    return 100 * interval.mean / reach[task]


summary, moves = {}, {}
for label in MASKINGS:
    for factor in FACTORS:
        low, high = min(plan.factors[factor]), max(plan.factors[factor])
        e = effect[f"{label}: {FACTORS[factor]} {low} -> {high}"]
        mean = sum(points(e[t], t) for t in TASKS) / len(TASKS)
        up = sum(e[t].low > 0 for t in TASKS)
        down = sum(e[t].high < 0 for t in TASKS)
        moves[(label, factor)] = mean
        summary[f"{label}: {FACTORS[factor]} {low} → {high}"] = [
            f"{mean:+.0f}", f"{up} / {down}"] + [
            f"{points(e[t], t):+.0f}" for t in TASKS]
display(Markdown(markdown_table(
    ["mean over tasks (points)", "tasks + / −"]
    + [TABLE_COLUMNS.get(t, t) for t in TASKS], summary)))

# %%
lines = []
for label in MASKINGS:
    order = sorted(FACTORS, key=lambda f: -moves[(label, f)])
    lines.append(
        f"- {label}: the factors by their mean effect, largest first: "
        + ", ".join(f"{FACTORS[f]} ({moves[(label, f)]:+.0f} points)"
                    for f in order))
display(Markdown("\n".join(lines)))
best = {label: max(FACTORS, key=lambda f: moves[(label, f)])
        for label in MASKINGS}
centre = plan.factors["centre"]
glue_number("centre_trials", centre["trials"], "{:,.0f}")
glue_number("centre_steps", centre["steps"], "{:,.0f}")
glue_number("centre_width", centre["width"], "{:.0f}")
for label, key in (("MtM (prompted)", "mtm"), ("Temporal", "temporal")):
    share = row_intervals(runs[point_name("trials", centre["trials"],
                                          label)])
    glue_number(f"{key}_centre_share",
                100 * sum(share[t].mean / reach[t] for t in TASKS)
                / len(TASKS), "{:.0f}")

# %% [markdown]
# At the centre ({glue:text}`centre_trials` trials, {glue:text}`centre_steps` steps, width
# {glue:text}`centre_width`, from scratch) MtM reaches {glue:text}`mtm_centre_share` % of the Bayes
# reference on average over the four tasks and temporal masking {glue:text}`temporal_centre_share` %.
# The lines above rank the factors by how far they move each masking; the table says on how many
# tasks the move is larger than the differences between seeds.
#
# MtM against temporal masking changes along the factors too: where one masking gains more from a
# budget, the comparison of chapters 5 and 8 depends on where on the axes it is made. At each
# factor's highest level, in words chosen by the paired interval:

# %%
TASK_WORDS = {"co-smooth": "co-smoothing",
              "forward-pred": "forward prediction",
              "intra-region": "intra-region", "inter-region": "inter-region"}
versus = mtm_minus_temporal(runs, plan.factors)
lines = []
for factor in FACTORS:
    top = max(plan.factors[factor])
    where = f"{FACTORS[factor]} {top}"
    lines += [f"- {where}, {TASK_WORDS[t]}: "
              + compare_words("MtM", "temporal masking", versus[where][t])
              for t in TASKS]
where = f"{FACTORS['trials']} {centre['trials']}"
lines += [f"- the centre, {TASK_WORDS[t]}: "
          + compare_words("MtM", "temporal masking", versus[where][t])
          for t in TASKS]
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 6. Where the book's chapters sit on these axes
#
# The other chapters train with their own `book` settings (`mtm.book.CHAPTER_SETTINGS`). On the
# study's axes, each of their runs sees this many training trials of its session and takes this many
# optimiser steps (batches of 16 trials); a from-scratch run of chapters 7 and 8 takes as many steps
# as pretraining and fine-tuning together, and a fine-tuned run starts after the pretraining steps
# given:

# %%
BATCH = plan.train_config("mtm").batch_size
BOOK = {chapter: CHAPTER_SETTINGS[chapter]["book"] for chapter in
        ("05_evaluation", "07_multisession", "08_reproduction",
         "09_experiments")}


def batches(chapter):
    """(training trials, batches per epoch) of a chapter's sessions."""
    trials = int(SPLIT_FRACTIONS[0] * BOOK[chapter]["N_TRIALS"])
    return trials, math.ceil(trials / BATCH)


where_rows = {}
for what, chapter, epochs, pre_epochs in (
        ("chapters 4-6, from scratch", "05_evaluation",
         BOOK["05_evaluation"]["EPOCHS"], 0),
        ("chapter 7, from scratch", "07_multisession",
         BOOK["07_multisession"]["FINETUNE_EPOCHS"]
         + BOOK["07_multisession"]["PRETRAIN_EPOCHS"]
         * max(BOOK["07_multisession"]["N_PRETRAIN"]), 0),
        ("chapter 7, fine-tuned", "07_multisession",
         BOOK["07_multisession"]["FINETUNE_EPOCHS"],
         BOOK["07_multisession"]["PRETRAIN_EPOCHS"]
         * max(BOOK["07_multisession"]["N_PRETRAIN"])),
        ("chapter 8, from scratch", "08_reproduction",
         BOOK["08_reproduction"]["FINETUNE_EPOCHS"]
         + BOOK["08_reproduction"]["PRETRAIN_EPOCHS"]
         * BOOK["08_reproduction"]["N_PRETRAIN"], 0),
        ("chapter 8, fine-tuned", "08_reproduction",
         BOOK["08_reproduction"]["FINETUNE_EPOCHS"],
         BOOK["08_reproduction"]["PRETRAIN_EPOCHS"]
         * BOOK["08_reproduction"]["N_PRETRAIN"]),
        ("chapter 9, ablation", "09_experiments",
         BOOK["09_experiments"]["ABLATION_EPOCHS"], 0)):
    trials, per_epoch = batches(chapter)
    model = TrainConfig.preset("small", model=BOOK[chapter]["MODEL"]).model
    where_rows[what] = [f"{trials:,}", f"{epochs * per_epoch:,}",
                        f"{pre_epochs * per_epoch:,}", str(model.hidden),
                        str(BOOK[chapter]["N_NEURONS"])]
display(Markdown(markdown_table(
    ["training trials", "steps on the session", "pretraining steps",
     "width", "neurons"], where_rows)))

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
# - The Bayes reference (`mtm.bayes`) is a yardstick a model can reach; a model's share of it is how
#   much of what the spikes allow the model has learned.
# - The budget study varies trials per session, pretraining sessions, optimiser steps and model width
#   one at a time around a centre, at equal optimiser steps along every factor but steps, every
#   point over several seeds; `mtm reproduce --experiment budget` runs it from a shell.
# - A factor's effect (its highest level minus its lowest, paired by seed) says whether the models
#   are short of it at the centre; the tables and the sentences above are chosen by those intervals.
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
# `effect` holds every factor's highest-minus-lowest difference with its interval, keyed like
# `"MtM (prompted): trials per session 100 -> 3200"`.
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
    keyed = {f: effect[f"MtM (prompted): {FACTORS[f]} "
                       f"{min(plan.factors[f])} -> {max(plan.factors[f])}"][t]
             for f in FACTORS}
    top = max(keyed, key=lambda f: keyed[f].mean)
    told = "excludes" if keyed[top].excludes_zero else "contains"
    print(f"{TASK_WORDS[t]}: {FACTORS[top]}, {keyed[top].mean:+.3f} bits "
          f"per spike (its interval {told} zero)")

# %% [markdown]
# **Exercise 2.** Along the trials factor the optimiser steps are fixed. How many times is each
# training trial seen (epochs) at each level, and what does that suggest about the smallest level?
#
# :::{admonition} Hint
# :class: dropdown
# The plan's runs are in `jobs`; a run's epochs are `jobs[name]["cfg"]["epochs"]`, its session
# `jobs[name]["sessions"][0]`.
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
for level in plan.factors["trials"]:
    name = next(n for n, served in cells.items()
                if n.startswith(f"seed{plan.seeds[0]}/") and "/mtm/" in n
                and ("trials", level) in [(f, v) for f, v, *_ in served])
    job = jobs[name]
    print(f"{level:5d} trials: {len(job['sessions'][0].splits['train']):5d} "
          f"training trials, {job['cfg']['epochs']:4d} epochs")

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
# none; its variable is still called `gains`) and MtM's change minus temporal's, with its interval.
# In the paper MtM keeps improving with more sessions where temporal masking saturates; here the
# pretraining is short (a share `PRETRAIN_SHARE` of the centre's steps) and costs steps on the
# held-out session, so the changes are those of a short pretraining at equal total steps (section 5
# counts the tasks on which it lowers each masking).
# :::

# %% tags=["hide-input"]
k_max = max(plan.factors["sessions"])


def by_cell(label, factor, level, task):
    return {(r["seed"], r["session"]): r["scores"][task]
            for r in runs[point_name(factor, level, label)]}


for t in TASKS:
    gains = {}
    for label in MASKINGS:
        after = by_cell(label, "sessions", k_max, t)
        before = by_cell(label, "sessions", 0, t)
        gains[label] = {c: after[c] - before[c] for c in after}
    print(f"{TASK_WORDS[t]}: " + compare_words(
        "MtM's gain", "temporal masking's gain",
        paired_difference(gains["MtM (prompted)"], gains["Temporal"])))

# %% tags=["remove-input"]
print(RUN.done())

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
# # Multi-session pretraining and fine-tuning
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/07_multisession.ipynb)
#
# **What you will learn**
#
# - how one model is trained on several sessions whose neurons have nothing in common: per-session
#   *stitchers* around a shared transformer (NDT1-stitch);
# - how a pretrained model is fine-tuned on a new session: new stitchers and session token, every
#   other weight copied, all of them trained (or, as an alternative, only the new ones);
# - the paper's comparison: a model pretrained once and reused on a new session, fine-tuned there,
#   against the same model trained on that session alone for as many optimiser steps, for new
#   sessions of several sizes and pretraining sets of several sizes, over several training seeds,
#   with intervals;
# - which weights to fine-tune (all of them, a frozen core, or in two stages), chosen by measurement;
# - why this works on the synthetic sessions of this book, and where the reference code does things
#   differently;
# - how to read the authors' released pretrained model safely and fine-tune and score it.
#
# **What this chapter's run shows** (section 5): on a new session of
# {glue:text}`transfer_point` training trials, {glue:text}`transfer_words_mtm`, and
# {glue:text}`transfer_words_temporal`. Against the smallest pretraining set,
# {glue:text}`transfer_growth_mtm`. Section 8 gives the caution: the same comparison at equal
# *total* compute, where the model from scratch gets pretraining's steps too.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. The experiment is the package's own, `mtm reproduce --experiment transfer`, run
# with this chapter's settings. The paper's settings (1000 epochs, paper-sized sessions) take many
# hours on a GPU; the `gpu` settings run to a time budget of 15 minutes
# (`mtm.book.GPU_BUDGET_MINUTES`): a short probe measures an epoch, and the line under the parameters
# says how many pretraining epochs fit.*

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
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from mtm.bayes import BAYES_ROW
from mtm.book import (chapter_settings, finetune_once, glue_number,
                      gpu_check, transfer_findings, what_this_run_shows)
from mtm.checkpoint import (RunFolder, import_reference, load_model, read_log,
                            save_model)
from mtm.evaluate import TASKS, evaluate_model, task_scores
from mtm.models import finetune_model
from mtm.plots import (TABLE_COLUMNS, oracle_share_table, plot_loss_curves,
                       results_table, use_style)
from mtm.paths import safe_name
from mtm.reproduce import Plan, run_experiment
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps
from mtm.reproduce.scheduler import paired_differences, row_intervals
from mtm.reproduce.tables import interval_table
from mtm.reproduce.transfer import (MASKINGS, comparison_point, condition,
                                    equal_compute_row, gain_tables, gains,
                                    heldout_config,
                                    model_rows, plan_fields, plot_transfer,
                                    row_name)

use_style()
print(gpu_check())

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else
# gpu or book. OVERRIDES: the settings' values to replace, e.g.
# {"HELDOUT_STEPS": 500}; the values are in mtm.book.CHAPTER_SETTINGS.
# SEED: the world's first session (the pool first, then the held-out ones).
# RELEASED_FROM_HUB: with network (Colab), the authors' released 34-session
# model (section 10).
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0
RELEASED_FROM_HUB = False

# %%
RUN = chapter_settings("07_multisession", SETTINGS, **OVERRIDES)
RUN_DIR = RUN.run_dir

# %% [markdown]
# ## 1. One model, many sessions
#
# Every recording session has its own neurons: a different number of them, in different places,
# never the same cells twice. A model of session $s$ reads counts $y^{(s)}(t) \in \mathbb{R}^{N_s}$
# and predicts $N_s$ rates. NDT1-stitch puts one small linear layer per session at each end of a
# shared network:
#
# $$h_t = E\big(S_s\, y^{(s)}(t)\big), \qquad
#   \log \hat\lambda^{(s)}(t) = R_s\, \mathrm{Transformer}\big([e_s, P_m, h_1, \dots, h_T]\big)_t,$$
#
# with the *stitchers* $S_s: \mathbb{R}^{N_s} \to \mathbb{R}^{668}$ (read-in) and
# $R_s: \mathbb{R}^{512} \to \mathbb{R}^{N_s}$ (read-out), a learned session token $e_s$, the
# prompt token $P_m$ of the masking scheme $m$, and a shared embedding $E$ (Linear, softsign, Linear) and transformer.
# (668 and 512 are the paper's widths; the `small` preset of this chapter is much narrower, hence the
# parameter counts printed in section 3.) Every
# batch comes from one session, and its stitchers route it in and out. So the transformer sees the
# trials of every session, while each session only pays for its own $S_s$ and $R_s$.
#
# (The symbols are those of {doc}`notation`.)
#
# **Pretraining then fine-tuning.** Train this model on many sessions with the same
# self-supervised objective as before (temporal masking, or MtM; {doc}`04_training`). For a new session, build new
# stitchers and a new session token, copy everything else, and keep training on the new session
# alone. If the shared part has learned something true of all sessions, the new session starts from
# it instead of from nothing.
#
# ## 2. Why it should work here: one world, many sessions
#
# The synthetic sessions of this book ({doc}`01_data`) share their latent dynamics. Every session of one
# *world* has the same coupled regional dynamics
#
# $$x_r(t) = A_r x_r(t-1) + \kappa \textstyle\sum_{r' \ne r} G_{rr'} C_{rr'} x_{r'}(t-1) + B_r u(t) + \sigma\epsilon_r(t),$$
#
# while its neurons are new: their number, baseline rates, gains and loadings $w_n$ in
# $\log\lambda_n(t) = \log(\Delta\rho_n) + g_n w_n^\top x_{r(n)}(t) + \dots$ are drawn afresh for
# every session. That is exactly the split NDT1-stitch makes: a session-specific linear map between
# neurons and a shared space ($S_s$, $R_s$), and shared dynamics in between (the transformer). With
# more pretraining sessions the transformer sees more trials of the same dynamics; the held-out
# session only needs to learn its stitchers, from its own few hundred trials. The IBL repeated-site
# recordings make the same bet: the same task and the same five brain regions in every mouse.

# %%
N_MAX = max(RUN.N_PRETRAIN)
plan = Plan.for_preset(
    "small", "transfer", session_seed=SEED, n_seeds=RUN.N_SEEDS,
    train_overrides={"model": RUN.MODEL},
    **plan_fields(RUN.TRAIN_TRIALS, RUN.N_TRIALS, n_pretrain=N_MAX,
                  pretrain_counts=tuple(RUN.N_PRETRAIN), n_test=RUN.N_TEST,
                  n_neurons=RUN.N_NEURONS,
                  pretrain_epochs=RUN.PRETRAIN_EPOCHS, pretrain_patience=10,
                  heldout_steps=RUN.HELDOUT_STEPS,
                  protocols=tuple(RUN.PROTOCOLS)))
pool, heldout = plan.synthetic_sessions()
for s in [*pool, *heldout]:
    role = "held out" if s in heldout else "pretraining pool"
    print(f"{s.eid}: {s.n_trials} trials, {s.n_neurons} neurons  ({role})")

# %% [markdown]
# The pretraining sets are nested: the first $k$ sessions of the pool, for every $k$ of `N_PRETRAIN`.
# The held-out sessions are never seen in pretraining; all scores below are on their test trials.
#
# ## 3. The experiment: a pretrained model reused on a new session
#
# `mtm.train.train` takes a list of sessions: with several, it builds one stitcher pair and one
# session token per session and draws single-session batches from all of them, shuffled together.
# The experiment of this chapter is the package's `mtm reproduce --experiment transfer`
# (`mtm.reproduce.transfer`), run with the chapter's settings through a `Plan`. It makes the
# paper's comparison. A pretrained model is trained once and then reused for every new session, so
# what a new session costs is the steps spent on it. For each masking (the temporal baseline and
# prompted MtM) and each training seed the experiment
#
# 1. pretrains a model on the first $k$ pool sessions, for every $k$ of `N_PRETRAIN`, once. Each run
#    is allowed as many optimiser steps as `PRETRAIN_EPOCHS` epochs over the largest set, stops
#    early once its validation score has not improved for 10 validations, and keeps its best epoch;
# 2. cuts every held-out session to each training-trial count of `TRAIN_TRIALS`. A new recording
#    is often short, and the paper's claim is that pretraining matters most there. The validation
#    and test trials are the same at every count;
# 3. on each cut session, fine-tunes every pretrained model and trains the same model from scratch,
#    each for `HELDOUT_STEPS` optimiser steps, and keeps each run at its best validation epoch, so
#    that neither side is punished for over-training a small session;
# 4. at the count nearest 100 trials, also fine-tunes the largest set's model with the other
#    protocols of `PROTOCOLS` (section 7), and trains a model from scratch for as many steps as
#    pretraining and fine-tuning together (the *equal-compute* view of section 8);
# 5. scores every model on the held-out session's test trials, and computes the reference rows
#    there: the linear baseline fitted on the same training trials, the Bayes reference and the
#    latent oracle of {doc}`05_evaluation`.
#
# The *gain* of pretraining is fine-tuned minus from scratch: the same seed, session, size and steps
# on both sides. The plan's arithmetic, before anything is trained:

# %%
pretrain_cfg = plan.train_config("mtm", "pretrain")
batch = pretrain_cfg.batch_size
pretrain_steps = pretrain_cfg.epochs * batches_per_epoch(pool, batch)
for k in sorted(plan.pretrain_counts):
    epochs = epochs_for_steps(pool[:k], batch, pretrain_steps)
    print(f"pretraining on {condition(k)}: at most {epochs} epochs, "
          f"about {pretrain_steps} optimiser steps")
print(f"every run on a held-out session: {plan.heldout_steps} steps, "
      f"with {', '.join(map(str, plan.train_trials))} training trials")
print(f"from scratch at equal total compute: about "
      f"{pretrain_steps + plan.heldout_steps} steps")

# %% [markdown]
# Every model is trained once per seed (`N_SEEDS`): the seed changes the initial weights, the masks
# and the order of the batches, so repeating the whole experiment with other seeds shows how much a
# score moves by chance. The runs go to worker processes (`WORKERS` at a time); finished runs in the
# folder are reused, interrupted ones resumed.

# %%
OUT = RUN_DIR / "transfer"
table = run_experiment(pool, heldout, plan, OUT, workers=RUN.WORKERS,
                       progress=False)
# {row: every run's scores, by seed and session}
runs = json.loads((OUT / "per_session.json").read_text())
counts, sizes = sorted(plan.pretrain_counts), sorted(plan.train_trials)
POINT = comparison_point(sizes)

# %% [markdown]
# The largest pretrained MtM model (seed 0) knows every pretraining session by its id, with one
# read-in and one read-out each; everything else is shared:

# %%
largest_run = RunFolder(OUT / "seed0" / "pretrain" / f"mtm-{N_MAX}")
big, _ = load_model(largest_run.best)
print("sessions:", big.session_ids, "neurons:", big.n_neurons)
per_session = sum(p.numel() for p in big.session_parameters())
shared = sum(p.numel() for p in big.core_parameters())
print(f"shared parameters: {shared:,}")
print(f"per-session parameters (stitchers and tokens, all sessions): "
      f"{per_session:,}")

# %% [markdown]
# ## 4. Fine-tuning on a held-out session
#
# `mtm.train.finetune(checkpoint, session, cfg, run_dir)` starts a model for the new session from the
# checkpoint (`mtm.models.finetune_model`) and trains it with the same objective. Which weights are
# copied? Build the starting model and compare it with the pretrained one:

# %%
start = finetune_model(big, heldout[0])
pre_state = big.state_dict()
status = {}
for key, value in start.state_dict().items():
    old = pre_state.get(key)
    same = (old is not None and old.shape == value.shape
            and torch.equal(old, value))
    status.setdefault(key.split(".")[0], set()).add(
        "copied" if same else "new")
for module, how in status.items():
    print(f"{module:14s} {' + '.join(sorted(how))}")
print("the new model knows the sessions:", start.session_ids)

# %% [markdown]
# The embedding, position embedding, transformer blocks, final LayerNorm and prompt tokens are
# copied. The stitchers (`read_in`, `read_out`) are new, and the session token starts at the mean of
# the pretrained sessions' tokens. By default **all** weights are then trained on the new session, as
# in the reference (the *full* protocol). Two alternatives are options of `finetune` and of
# `mtm finetune`: a *frozen core* trains only the new stitchers and session token, and a *staged*
# protocol trains those alone for the first quarter of the epochs and then everything. Section 7
# compares the three.
#
# ## 5. The gain of pretraining, against the new session's size
#
# Every model is scored on the held-out sessions' test trials with `mtm.evaluate.evaluate_model`:
# co-smoothing, forward prediction, intra-region and inter-region, in bits per spike (per neuron,
# NaN-mean over neurons). {numref}`fig-07-transfer` shows the experiment's main result: for each
# task and masking, the gain of fine-tuning a pretrained model over training the same model from
# scratch, against the number of training trials of the new session, one line per pretraining set.

# %% mystnb={"figure": {"caption": "The gain of pretraining: fine-tuned minus from scratch (bits per spike, same seed, session, size and optimiser steps on the held-out session), mean over training seeds with its 95 % interval, against the held-out session's training trials. A row per activity task, a column per masking, a line per pretraining-set size. Above zero: the pretrained model predicts the new session better. Open diamond: the largest set against a model from scratch trained for pretraining's and fine-tuning's steps together (section 8).", "name": "fig-07-transfer"}}
found = gains(runs, counts, sizes)
equal = {label: paired_differences(runs, [(
    "equal", row_name(label, N_MAX, POINT),
    equal_compute_row(label, N_MAX, POINT))])["equal"]
    for label in MASKINGS}
fig = plot_transfer(found, equal, counts, sizes, POINT)
plt.show()

# %% [markdown]
# The same gains as numbers (bold: the 95 % interval over seeds excludes zero):

# %%
display(Markdown(gain_tables(found, sizes)))

# %% [markdown]
# The box is written by the cell from these paired differences, so a re-execution that moves the
# numbers changes the words with them:

# %%
findings = transfer_findings(runs, counts, sizes, plan.protocols)
what_this_run_shows(*findings["gain"], *findings["growth"])

# %% [markdown]
# How to read {numref}`fig-07-transfer`: a line above zero means that reusing a pretrained model
# helped that masking on a new session of that size; lines that sit higher for larger sets mean that
# more pretraining sessions helped more; a line that falls from left to right means that pretraining
# matters most for short sessions, as the paper argues. The intervals say which of these are larger
# than the differences between seeds. In the paper's Fig. 4 (NDT1-stitch, 5 held-out IBL sessions of
# a few hundred trials, pretraining on 1, 10 and 34 sessions) MtM improves with more sessions on
# every activity metric, while the temporal baseline gains from 1 to 10 sessions and then saturates.
# Here the sets are small (at most the largest of `N_PRETRAIN`) and so is the pretraining (section 3
# prints its optimiser steps), so that the chapter runs in its time on a CPU. How much
# that costs shows in the repository's larger run of the same experiment (benchmarks/RESULTS.md,
# benchmarks/results/transfer-plateau-2026-12-07: the same kind of world, pretraining sets of 1, 4
# and 16 sessions, each allowed 9,216 pretraining steps, held-out sizes 25, 50 and 100, 3 seeds).
# There MtM fine-tuned from 16 sessions is above MtM from scratch on all four activity tasks at 50
# and at 100 training trials, every interval above zero. The gain grows from 1 to 16 pretraining
# sessions only on the smallest new session: on co-smoothing with 25 training trials (interval above
# zero, by a few hundredths of a bit per spike), not with 50 or 100, where no task's difference
# between the two sets is clear of zero except intra-region at 50 trials. In that world every session
# has the same latent dynamics, and one session's 280 training trials already give a core that
# transfers as well at 100 trials; the 16-session runs were still improving when their steps ran out.
#
# ## 6. The scores, against the references
#
# Each model row is the mean over the training seeds and held-out sessions, with the half-width of
# its 95 % interval over seeds (`mtm.stats`). Below the models are the reference rows: the linear
# baseline fitted on each size's training trials, the Bayes reference (the best prediction from
# exactly the spikes a model sees, given the generative parameters) and the latent oracle (an upper
# bound: given the true latents, which no model sees).

# %%
models = [r for n in sizes for label in MASKINGS
          for r in model_rows(label, n, counts, plan.protocols, POINT, N_MAX)]
intervals = {m: row_intervals(runs[m]) for m in models}
display(Markdown(interval_table(table, intervals, TASKS)))

# %% [markdown]
# Each model's score as a share of the Bayes reference, task by task (the reference is what a model
# could reach from these spikes; a share near 100 % leaves little to gain):

# %%
display(Markdown(oracle_share_table({m: table[m] for m in models},
                                    table[BAYES_ROW], TASKS)))
best_row = row_name("MtM (prompted)", N_MAX, max(sizes))
glue_number("mtm_cosmooth_share", 100 * table[best_row]["co-smooth"]
            / table[BAYES_ROW]["co-smooth"], "{:.0f}")

# %% [markdown]
# MtM pretrained on the largest set and fine-tuned on the largest size reaches
# {glue:text}`mtm_cosmooth_share` % of the Bayes reference on co-smoothing; the distance to the
# reference is what more data, a larger model and longer training could still gain.
#
# ## 7. Which weights to fine-tune
#
# Full fine-tuning is the default of `mtm.train.finetune` and `mtm finetune` because no other
# protocol was measured above it. The repository's larger run of this experiment (`mtm reproduce
# --experiment transfer --preset book` with 8 pretraining epochs: 16 pretraining sessions, a held-out
# session of 100 training trials, 3 seeds; benchmarks/results/transfer-book-2026-12-07) compared the
# three, each minus full fine-tuning, paired by seed. For MtM a frozen core was below full
# fine-tuning on intra-region prediction (interval below zero) and not distinguishable from it on the
# other three tasks; the staged protocol was not distinguishable from it on any task; for temporal
# masking neither alternative differed from full fine-tuning by more than two hundredths of a bit per
# spike, every interval across zero. A frozen core is still the cheaper choice when compute is
# scarce: it trains a small
# share of the weights (exercise 3 counts them), and a new session's stitchers are all that differ
# between the sessions of one synthetic world (section 2).
#
# The chapter's `book` settings fine-tune with the full protocol only, to stay within the chapter's
# time on a 2-core CPU; the `smoke` and `gpu` settings, or `OVERRIDES = {"PROTOCOLS": ["full",
# "frozen-core", "staged"]}`, compare the three here too, each minus full fine-tuning, paired by
# seed:

# %%
if len(plan.protocols) > 1:
    pairs = [(f"{label}: {p} - {plan.protocols[0]}",
              row_name(label, N_MAX, POINT, p), row_name(label, N_MAX, POINT))
             for label in MASKINGS for p in plan.protocols[1:]]
    protocols = paired_differences(runs, pairs)
    display(Markdown(interval_table({label: {} for label in protocols},
                                    protocols, TASKS, sign=True)))
    what_this_run_shows(*findings["protocols"])
else:
    print(f"this run fine-tuned with the {plan.protocols[0]} protocol only")

# %% [markdown]
# ## 8. The caution: equal total compute
#
# A pretrained model has had many more optimiser steps than the model from scratch it is compared
# with. That is the point of reusing it, since its pretraining is paid once for every new session, but
# it is worth knowing what the same steps would buy a model that sees only the new session. The
# largest set's fine-tuned model minus a model from scratch trained for pretraining's and
# fine-tuning's steps together, at the count nearest 100 trials:

# %%
versus = {f"{label}: pretrained - equal compute": d
          for label, d in equal.items()}
display(Markdown(interval_table({row: {} for row in versus}, versus,
                                TASKS, sign=True)))
what_this_run_shows(*findings["equal"])

# %% [markdown]
# This view answers another question: not "is a pretrained model worth reusing?" but "was
# pretraining a better use of these steps than training on the new session alone?". A model trained
# from scratch for many steps on a short session also over-fits it, which its best validation epoch
# only partly avoids.
#
# Pretraining also changes how fine-tuning proceeds. The validation score (masked bits per spike on
# the validation trials, the selection score of every run) over the epochs of MtM on the first
# held-out session at the count nearest 100 trials, seed 0 ({numref}`fig-07-finetuning-curves`):

# %% mystnb={"figure": {"caption": "Validation bits per spike (masked entries of the validation trials, the selection score) over the epochs of prompted MtM on the first held-out session cut to the training-trial count nearest 100, seed 0: trained from scratch (black) and fine-tuned after each pretraining set (light to dark: more pretraining sessions), all for the same optimiser steps.", "name": "fig-07-finetuning-curves"}}
where = f"t{POINT}/{safe_name(heldout[0].eid)}"
folders = {condition(0): OUT / "seed0" / "single" / "mtm" / where}
folders.update({f"fine-tuned after {condition(c)}":
                OUT / "seed0" / "finetune" / f"mtm-{c}" / plan.protocols[0]
                / where for c in counts})
histories = {name: read_log(folder) for name, folder in folders.items()}
fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
plot_loss_curves(histories, key="val_bps", ax=ax)
shades = plt.cm.viridis(np.linspace(0.8, 0.1, len(counts)))
for line, color in zip(ax.lines, ["black", *shades]):
    line.set_color(color)
ax.legend(frameon=False, fontsize=9)
ax.set(xlabel="epoch (one pass over the held-out session's train trials)",
       ylabel="validation bits per spike",
       title="MtM on the first held-out session")
plt.show()

# %% [markdown]
# A pretrained model starts from a better place where pretraining helps: after its stitchers settle,
# its first epochs already score what the model from scratch needs many epochs to reach. The curves
# are one seed and one session, and the validation score is not one of the test tasks; the paired
# differences above are what the chapter's claims rest on.
#
# ## 9. How the reference does it, and where `mtm` differs
#
# - **Stitchers keyed by neuron count.** The reference stores the stitchers in a dictionary keyed by
#   `str(N_s)`, the session's number of neurons, not by the session. Two sessions with the same
#   neuron count share one read-in and one read-out (and a batch mixing them gets the first trial's
#   session token). `mtm` keys everything by the session id. Equal counts do happen, and in this
#   chapter every session has `N_NEURONS` neurons, so the reference would give all of them one
#   stitcher:

# %%
by_count = {}
for s in [*pool, *heldout]:
    by_count.setdefault(s.n_neurons, []).append(s.eid)
shared_counts = {n: eids for n, eids in by_count.items() if len(eids) > 1}
for n, eids in shared_counts.items():
    print(f"{n} neurons: {', '.join(eids)} would share one stitcher pair "
          "in the reference")
if not shared_counts:
    print("no two sessions have the same number of neurons")

# %% [markdown]
# - **Fine-tuning loads everything but the stitchers.** The reference builds a fresh model for the
#   held-out session and loads the pretrained weights with `load_state_dict(..., strict=False)`:
#   embedding, transformer, prompt and session-token tables. Stitchers whose key (neuron count) is
#   new stay randomly initialised; if the held-out session happened to have the neuron count of a
#   pretraining session, it would inherit that session's stitchers. **Nothing is frozen**: all
#   weights are fine-tuned for 1000 epochs, with the same objective as in pretraining. `mtm` does
#   the same by default, always with new stitchers; `freeze_core=True` (or `mtm finetune
#   --freeze-core`) is the cheaper alternative shown above.
# - **The held-out session's token.** The reference's session-token table has one row for each of
#   its 40 sessions, including the 5 held-out ones; their rows are never trained during pretraining,
#   so fine-tuning starts from a random row. `mtm` starts the new token at the mean of the pretrained
#   tokens.
# - **Which sessions.** The paper pretrains on 10 or 34 of the 35 sessions of its pool, taken in the
#   order the Hugging Face hub listed its datasets (not a fixed list); here the sets are nested, the
#   first $n$ sessions of one world. The paper's from-scratch model is the reference's fine-tuning
#   script run without loading weights, also for 1000 epochs.
# - **Region lists.** Before a fix in November 2024 (after the paper) the reference's masker froze
#   the region names of the first batch for the whole run, so in multi-session pretraining later
#   sessions were often masked with regions they did not have. `mtm` uses every batch's own
#   session's regions.
#
# ## 10. The authors' own pretrained model
#
# The paper's authors released their pretrained models on the Hugging Face hub (organisation
# `ibl-foundation-model`): `multi-NDT1-MtM-34-sessions` is prompted MtM NDT1-stitch pretrained on 34
# sessions, beside the temporal baseline, the 10-session versions and NDT2. Each is a `model_best.pt`
# that pickles the whole reference module, and loading it with `torch.load` runs whatever the pickle
# names. `mtm.checkpoint.import_reference` reads it without importing or running anything (a
# restricted unpickler: tensors and plain containers only; any other call is refused by name) and maps
# the weights onto an `mtm` model. The reference keys its stitchers by neuron count, so they can only
# be kept for sessions whose counts you name (`sessions={eid: n_neurons}`); without that the model
# keeps the shared weights, and a held-out session gets new stitchers by fine-tuning, as in the paper.
#
# With network (Colab, ideally a GPU), set `RELEASED_FROM_HUB = True`: the cell downloads the model,
# imports it, loads the first held-out IBL session through ONE, fits its stitchers and session token
# with the released core frozen (`freeze_core=True`; the paper fine-tunes every weight), and scores it.
# The download needs `huggingface_hub` (Colab has it; elsewhere `pip install "mtm[hub]"`), and the IBL
# server an account of your own (free at <https://openalyx.internationalbrainlab.org/signup>). The cell
# calls `ibl_one()`, which reads the account from the environment and keeps ONE's downloads and settings
# in `~/.cache/mtm/one`; on Colab, run these lines first (the password is typed without echo):
#
# ```python
# import getpass, os
# os.environ["ALYX_LOGIN"] = "your-username"
# os.environ["ALYX_PASSWORD"] = getpass.getpass("IBL password: ")
# ```
#
# (`ibl_one("/content/ibl_cache")` names another cache folder.)

# %%
from mtm.data import reference_checkpoint_dir
from mtm.masking import PROMPT_IDS

REFERENCE_DIR = RUN_DIR / "multisession-reference"  # checkpoints of section 10
if RELEASED_FROM_HUB:
    from huggingface_hub import snapshot_download

    from mtm.data import heldout_eids, load_ibl_session
    from mtm.data.ibl import ibl_one

    hub_folder = Path(snapshot_download(
        "ibl-foundation-model/multi-NDT1-MtM-34-sessions"))
    released, released_report = import_reference(
        next(hub_folder.rglob("model_best.pt")))
    print(released.cfg, "dropped:", *released_report.dropped, sep="\n  ")
    released_path = save_model(REFERENCE_DIR / "released.safetensors",
                               released, released_report.extra())
    test_session = load_ibl_session(heldout_eids()[0], ibl_one())
    released_tuned = finetune_once(
        released_path, test_session,
        heldout_config(plan, "mtm", test_session, plan.heldout_steps, 0,
                       "frozen-core"),
        REFERENCE_DIR / "released-finetuned", progress=False)
    released_scores = task_scores(evaluate_model(
        load_model(released_tuned)[0], test_session, "mtm"))
    display(Markdown(results_table({f"released MtM, {test_session.eid[:8]}":
                                    released_scores})))
else:
    print("Skipped the download: set RELEASED_FROM_HUB = True with network "
          "(and huggingface_hub installed).")

# %% [markdown]
# Offline, the same steps run on a checkpoint written by the reference code itself, exactly as its
# trainer writes `model_best.pt`, at small sizes with two sessions of 37 and 52 neurons
# (installed with the package, found by `mtm.data.reference_checkpoint_dir()`; its `PROVENANCE.md`
# says how it was made). Next to it are the log-rates the reference computed from it
# for fixed inputs under each prompt. The table gives the largest absolute difference between those
# and the imported model's log-rates:

# %%
FIXTURE = reference_checkpoint_dir()
if FIXTURE is None:
    print("Skipped: the reference checkpoint folder is not here "
          "(set MTM_REFERENCE_CHECKPOINT).")
else:
    fixture_meta = json.loads(
        (FIXTURE / "reference_ndt1_outputs.json").read_text())
    fixture_outputs = np.load(FIXTURE / "reference_ndt1_outputs.npz")
    fixture_counts = {s["eid"]: s["n_neurons"]
                      for s in fixture_meta["sessions"]}
    FIXTURE_MODEL = FIXTURE / "reference_ndt1_stitch_prompting_small.pt"
    imported, import_report = import_reference(FIXTURE_MODEL,
                                               sessions=fixture_counts)
    print("dropped:", *import_report.dropped, sep="\n  ")
    largest_gaps = {}
    for k, s in enumerate(fixture_meta["sessions"]):
        spikes = torch.as_tensor(fixture_outputs[f"s{k}_spikes"]).float()
        gaps = {}
        for mode in fixture_meta["modes"]:
            with torch.no_grad():
                ours = imported(spikes, s["eid"], prompt=PROMPT_IDS[mode],
                                causal=mode == "causal").numpy()
            theirs = fixture_outputs[f"s{k}_{mode}_log_rates"]
            gaps[mode] = float(np.abs(ours - theirs).max())
        largest_gaps[f"{s['eid'][:8]} ({s['n_neurons']} neurons)"] = gaps
    display(Markdown(results_table(largest_gaps,
                                   columns=fixture_meta["modes"], digits=6)))

# %% [markdown]
# Under the neuron, intra- and inter-region prompts the imported model computes what the reference
# computed. Under `causal` the two differ, and by design: in the reference the session and prompt
# tokens attend to every bin, future ones included, and every bin reads them in the next layer; in
# `mtm` they see no bin. With the reference's attention restored (a test does it,
# `tests/test_reference_import.py`), the causal outputs agree too.
#
# The imported model is an ordinary `mtm` model: saved, it can be fine-tuned on this chapter's held-out
# session and scored like the models above (one fine-tuning of `HELDOUT_STEPS` steps). (This small checkpoint was trained on Poisson noise, so
# its scores show that the steps run, not what pretraining buys.)

# %%
if FIXTURE is not None:
    shared_only, shared_report = import_reference(FIXTURE_MODEL)
    imported_path = save_model(REFERENCE_DIR / "reference-small.safetensors",
                               shared_only, shared_report.extra())
    imported_tuned = finetune_once(
        imported_path, heldout[0],
        heldout_config(plan, "mtm", heldout[0], plan.heldout_steps, 0, "full"),
        REFERENCE_DIR / "reference-small-finetuned", progress=False)
    imported_scores = task_scores(evaluate_model(
        load_model(imported_tuned)[0], heldout[0], "mtm"))
    display(Markdown(results_table({"reference checkpoint, fine-tuned":
                                    imported_scores})))

# %% [markdown]
# ## Summary
#
# - NDT1-stitch trains one model on sessions with different neurons: a read-in and a read-out per
#   session around a shared embedding and transformer, and a session token.
# - Fine-tuning on a new session copies the shared weights, adds new stitchers and a session token
#   (started at the mean of the pretrained ones), and trains everything by default. A frozen core and
#   a staged protocol are options; section 7 measured neither above full fine-tuning.
# - The paper's claim is tested the way the paper makes it: a model pretrained once, reused and
#   fine-tuned on a new session, against the same model trained on that session alone for as many
#   steps, at several sizes of the new session (`mtm reproduce --experiment transfer`). In this
#   chapter's run, on {glue:text}`transfer_point` training trials, {glue:text}`transfer_words_mtm`;
#   {glue:text}`transfer_words_temporal`. Section 5's box gives every size.
# - Equal total compute, where the model from scratch also gets pretraining's steps, is a second view
#   and a caution (section 8): it asks whether pretraining was the better use of the steps, not
#   whether a pretrained model is worth reusing.
# - Every comparison is a paired difference over training seeds with its 95 % interval, and the
#   chapter's boxes state only the differences whose intervals exclude zero.
# - The authors' released models are read safely with `mtm.checkpoint.import_reference` (or `mtm
#   import-reference`) and become ordinary `mtm` checkpoints, fine-tuned and scored the same way.
#
# ## Exercises
#
# Each solution is a folded cell under its exercise: it reuses the experiment's runs and trains
# nothing.
#
# **Exercise 1.** The chapter's first version compared pretrained models with models from scratch at
# equal *total* steps. Count the optimiser steps of every run on the first held-out session at the
# count nearest 100 trials, and of each pretraining run (its log says how many epochs it ran). How
# many times more steps does a fine-tuned model carry than the model from scratch beside it?
#
# :::{admonition} Hint
# :class: dropdown
# `mtm.reproduce.plan.batches_per_epoch(sessions, batch_size)` gives the steps of one epoch;
# `RunFolder(folder).read_log()` has one row per epoch run.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below counts them. Each pretraining run is paid once and reused for every new session and
# size, so the fine-tuned model and the model from scratch each spend the same steps on the new
# session; counted in total, the fine-tuned one carries pretraining's steps as well. Section 8's view
# gives the model from scratch those steps too.
# :::

# %% tags=["hide-input"]
step_rows = {}
for k in counts:
    log = RunFolder(OUT / "seed0" / "pretrain" / f"mtm-{k}").read_log()
    step_rows[f"pretraining on {condition(k)} (seed 0)"] = (
        len(log) * batches_per_epoch(pool[:k], batch))
step_rows[f"from scratch or fine-tuned, {POINT} trials"] = plan.heldout_steps
for name, n_steps in step_rows.items():
    print(f"{name:44s} {n_steps:7d} optimiser steps")
for k in counts:
    pre = step_rows[f"pretraining on {condition(k)} (seed 0)"]
    times = (pre + plan.heldout_steps) / plan.heldout_steps
    print(f"fine-tuned after {condition(k)}: {times:.1f} times the steps "
          "of the model from scratch, counted in total")

# %% [markdown]
# **Exercise 2.** How much does one row move from one training seed to the next? Compare the seeds'
# scores of MtM from scratch and of MtM pretrained on the largest set (at the count nearest 100 training
# trials) with the paired difference between them.
#
# :::{admonition} Hint
# :class: dropdown
# `runs[row]` holds one record per seed and held-out session: `{"seed", "session", "scores"}`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell prints each seed's score of both rows (mean over the held-out sessions) and their
# difference. The spread of a row over seeds is the noise a single run carries; the paired
# difference removes the part the two rows share (the same seed's masks and batch order on the same
# session), which is why its interval can be narrower than either row's spread. A difference between
# two single runs smaller than that spread says nothing.
# :::

# %% tags=["hide-input"]
def seed_means(row, task):
    """{seed: the row's mean score of ``task`` over the held-out sessions}."""
    by_seed = {}
    for record in runs[row]:
        by_seed.setdefault(record["seed"], []).append(record["scores"][task])
    return {seed: float(np.mean(values))
            for seed, values in sorted(by_seed.items())}


scratch_row = row_name("MtM (prompted)", 0, POINT)
pretrained_row = row_name("MtM (prompted)", N_MAX, POINT)
seed_rows = {}
for task in TASKS:
    a, b = seed_means(pretrained_row, task), seed_means(scratch_row, task)
    for seed in a:
        seed_rows[f"{TABLE_COLUMNS[task]}, seed {seed}"] = {
            "pretrained": a[seed], "from scratch": b[seed],
            "difference": a[seed] - b[seed]}
display(Markdown(results_table(
    seed_rows, columns=["pretrained", "from scratch", "difference"])))

# %% [markdown]
# **Exercise 3.** Fine-tuning with `freeze_core=True` trains only the new session's stitchers and
# token. What share of the model's parameters is that, for the first held-out session?
#
# :::{admonition} Hint
# :class: dropdown
# Section 4 built `start`, the model fine-tuning begins from; `session_parameters()` and
# `core_parameters()` split its weights.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell counts both parts. The new session's part grows with its number of neurons (a read-in and
# a read-out of `N_NEURONS` by the model's width), the core does not. With a frozen core, fine-tuning
# fits only the mapping between the new neurons and the pretrained latent space; the synthetic
# sessions were made exactly that way (section 2: new loadings, shared dynamics), so a core that has
# learned the world's dynamics needs nothing more, while full fine-tuning can also adapt the core at
# the price of many more parameters fitted from one session's trials.
# :::

# %% tags=["hide-input"]
new_part = sum(p.numel() for p in start.session_parameters())
core_part = sum(p.numel() for p in start.core_parameters())
share = 100 * new_part / (new_part + core_part)
print(f"trained with freeze_core=True: {new_part:,} parameters "
      "(the new session's stitchers and token)")
print(f"trained by full fine-tuning:   {new_part + core_part:,} parameters")
print(f"share trained with the core frozen: {share:.1f} %")

# %% [markdown]
# **Exercise 4.** On which task is pretraining's change largest as a share of the Bayes reference, and
# on which is the pretrained MtM model still furthest from it?
#
# :::{admonition} Hint
# :class: dropdown
# Divide the rows of section 6's table (at the count nearest 100 training trials) by the Bayes
# reference row, task by task.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell gives, for each masking and task, the share of the Bayes reference from scratch, after the
# largest pretraining set, and the change. A gain is worth more where the share is low: there the
# spikes allow much better predictions than the model makes. The paired differences of section 5 say
# which of these changes exceed seed noise.
# :::

# %% tags=["hide-input"]
share_rows = {}
for label in MASKINGS:
    for task in TASKS:
        bayes = table[BAYES_ROW][task]
        before = table[row_name(label, 0, POINT)][task] / bayes
        after = table[row_name(label, N_MAX, POINT)][task] / bayes
        share_rows[f"{label}, {TABLE_COLUMNS[task]}"] = {
            "from scratch": before, condition(N_MAX): after,
            "change": after - before}
display(Markdown(results_table(
    share_rows, columns=["from scratch", condition(N_MAX), "change"])))
best = max(share_rows, key=lambda name: share_rows[name]["change"])
furthest = min((name for name in share_rows if name.startswith("MtM")),
               key=lambda name: share_rows[name][condition(N_MAX)])
change = share_rows[best]["change"]
print(f"largest change in share: {best} ({change:+.0%}; "
      + ("a gain)" if change > 0 else "every change is a loss)"))
print("the pretrained MtM model furthest from the Bayes reference:", furthest)

# %% tags=["remove-input"]
print(RUN.done())

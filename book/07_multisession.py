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
# - how the held-out scores change with the number of pretraining sessions (the paper's Fig. 4),
#   against a model trained from scratch on the new session alone for as many optimiser steps, over
#   several training seeds, with intervals;
# - why this works on the synthetic sessions of this book, and where the reference code does things
#   differently;
# - how to read the authors' released pretrained model safely and fine-tune and score it.
#
# **What this chapter's run shows** (compared at equal *total* optimiser steps, section 6):
# {glue:text}`pretraining_words_mtm`. That is not the paper's comparison (a pretrained model
# reused on a new session against a model trained on that session alone); the summary says where
# to run that one.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. The experiment is the package's own, `mtm reproduce --experiment scaling`, run with
# this chapter's settings. The paper's settings (1000 epochs, paper-sized sessions) take many hours on
# a GPU; the `gpu` settings run to a time budget of 15 minutes (`mtm.book.GPU_BUDGET_MINUTES`): a short
# probe measures an epoch, and the line under the parameters says how many epochs fit.*

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
                      glue_text, gpu_check, verdict_sentence,
                      what_this_run_shows)
from mtm.checkpoint import (RunFolder, import_reference, load_model, read_log,
                            save_model)
from mtm.evaluate import TASKS, evaluate_model, task_scores
from mtm.models import finetune_model
from mtm.plots import (TABLE_COLUMNS, oracle_share_table, plot_loss_curves,
                       results_table, use_style)
from mtm.reproduce import Plan, run_experiment
from mtm.reproduce.plan import batches_per_epoch, epochs_for_steps
from mtm.reproduce.scaling import (MASKINGS, comparisons, condition,
                                   plot_scaling, row_name)
from mtm.reproduce.scheduler import (equal_steps_note, from_scratch_epochs,
                                     paired_differences, row_intervals)
from mtm.reproduce.tables import COLUMNS, interval_table

use_style()
print(gpu_check())

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else
# gpu or book. OVERRIDES: the settings' values to replace, e.g.
# {"FINETUNE_EPOCHS": 50}; the values are in mtm.book.CHAPTER_SETTINGS.
# SEED: the world's first session (the pool first, then the held-out ones).
# RELEASED_FROM_HUB: with network (Colab), the authors' released 34-session
# model (section 8).
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
    "small", "scaling", n_pretrain=N_MAX, n_test=RUN.N_TEST,
    session_seed=SEED, n_trials=RUN.N_TRIALS, n_neurons=RUN.N_NEURONS,
    pretrain_epochs=RUN.PRETRAIN_EPOCHS, finetune_epochs=RUN.FINETUNE_EPOCHS,
    n_seeds=RUN.N_SEEDS, train_overrides={"model": RUN.MODEL},
    pretrain_counts=tuple(RUN.N_PRETRAIN))
pool, heldout = plan.synthetic_sessions()
for s in [*pool, *heldout]:
    role = "held out" if s in heldout else "pretraining pool"
    print(f"{s.eid}: {s.n_trials} trials, {s.n_neurons} neurons  ({role})")

# %% [markdown]
# The pretraining sets are nested: the first $k$ sessions of the pool, for every $k$ of `N_PRETRAIN`.
# The held-out sessions are never seen in pretraining; all scores below are on their test trials.
#
# ## 3. The experiment: pretraining, fine-tuning and training from scratch
#
# `mtm.train.train` takes a list of sessions: with several, it builds one stitcher pair and one
# session token per session and draws single-session batches from all of them, shuffled together.
# The experiment of this chapter is the package's `mtm reproduce --experiment scaling`
# (`mtm.reproduce.scaling`), and the chapter runs it with its own settings through a `Plan`. For
# each masking (the temporal baseline and prompted MtM) and each training seed it
#
# 1. pretrains a model on the first $k$ sessions of the pool, for every $k$ of `N_PRETRAIN`;
# 2. fine-tunes each pretrained model on every held-out session (section 4);
# 3. trains the same model from scratch on every held-out session alone (section 5);
# 4. scores every fine-tuned and from-scratch model on the held-out session's test trials, and
#    computes the reference rows there (the linear baseline, the Bayes reference and the latent
#    oracle of {doc}`05_evaluation`).
#
# **Equal optimiser steps.** What is compared is the data, not the amount of training. So every
# pretraining run takes as many optimiser steps as `PRETRAIN_EPOCHS` epochs over the largest set (a
# smaller set is passed over more often), and every from-scratch model takes as many steps as
# pretraining and fine-tuning together. Compared at equal epochs instead, a pretrained model would
# also have been trained longer, and the comparison could not tell more data from more training. The
# plan's arithmetic, before anything is trained:

# %%
largest = plan.train_config("mtm", "pretrain")
steps = largest.epochs * batches_per_epoch(pool, largest.batch_size)
for k in sorted(plan.pretrain_counts):
    epochs = epochs_for_steps(pool[:k], largest.batch_size, steps)
    print(f"pretraining on {condition(k)}: {epochs} epochs, "
          f"about {steps} optimiser steps")
print(equal_steps_note(pool, heldout, largest,
                       plan.train_config("mtm", "finetune")))

# %% [markdown]
# Every model is trained once per seed (`N_SEEDS`): the seed changes the initial weights, the masks
# and the order of the batches, so repeating the whole experiment with other seeds shows how much a
# score moves by chance. The runs go to worker processes (`WORKERS` at a time); finished runs in the
# folder are reused, interrupted ones resumed.

# %%
OUT = RUN_DIR / "multisession"
table = run_experiment(pool, heldout, plan, OUT, workers=RUN.WORKERS,
                       progress=False)
# {row: every run's scores, by seed and session}
runs = json.loads((OUT / "per_session.json").read_text())

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
# in the reference and in this chapter's experiment. The alternative, `freeze_core=True`, trains only
# the new stitchers and session token and keeps the pretrained core fixed: fewer parameters to fit
# from one session, at the price of no adaptation of the dynamics model (exercise 3 counts them).
#
# ## 5. The control: training from scratch
#
# The same models trained on the held-out session alone (the paper's "single-session" rows, and the
# first point of its Fig. 4), for as many optimiser steps as pretraining and fine-tuning together
# (section 3). They were trained by the same plan, beside the pretrained ones.
#
# ## 6. Held-out scores against the number of pretraining sessions
#
# Every model is scored on the held-out sessions' test trials with `mtm.evaluate.evaluate_model`:
# co-smoothing, forward prediction, intra-region and inter-region, in bits per spike (per neuron,
# NaN-mean over neurons), and behaviour decoding (choice accuracy, whisker motion energy $R^2$). Each
# model row is the mean over the training seeds and held-out sessions, with the half-width of its
# 95 % interval over seeds (`mtm.stats`). Below the models are the reference rows of
# {doc}`05_evaluation`: the linear baseline, the Bayes reference (the best prediction from exactly
# the spikes a model sees, given the generative parameters) and the latent oracle (an upper bound:
# given the true latents, which no model sees).

# %%
counts = sorted(plan.pretrain_counts)
models = [row_name(label, c) for label in MASKINGS for c in (0, *counts)]
intervals = {m: row_intervals(runs[m]) for m in models}
display(Markdown(interval_table(table, intervals, COLUMNS)))

# %% [markdown]
# Each model's score as a share of the Bayes reference, task by task (the reference is what a model
# could reach from these spikes; a share near 100 % leaves little to gain):

# %%
display(Markdown(oracle_share_table({m: table[m] for m in models},
                                    table[BAYES_ROW], TASKS)))

# %% [markdown]
# Rows of one table differ by chance as well as by method. What the experiment compares is given as
# *paired* differences: a pretrained model minus the same masking from scratch, and MtM minus the
# temporal baseline, each computed seed by seed and session by session (the same seed and session on
# both sides), then averaged with its 95 % interval; bold where the interval excludes zero:

# %%
differences = paired_differences(runs, comparisons(counts))
display(Markdown(interval_table({label: {} for label in differences},
                                differences, COLUMNS, sign=True)))

# %% mystnb={"figure": {"caption": "Held-out scores against the number of pretraining sessions (log scale), one panel per task: bits per spike for the four activity tasks, accuracy for choice and R² for whisker motion energy. Blue: temporal masking; orange: prompted MtM; each point the mean over training seeds and held-out sessions with its 95 % interval. Dashed lines: the same masking trained from scratch for as many optimiser steps.", "name": "fig-07-scores-vs-sessions"}}
fig = plot_scaling(table, counts, intervals)
plt.show()

# %% [markdown]
# How to read {numref}`fig-07-scores-vs-sessions`: a line above its dashed line means that pretraining on that many sessions helped
# that masking over training from scratch; a line that rises from left to right means that more
# pretraining sessions helped more; the gap between the blue and the orange line is what MtM's
# masking changes over the temporal baseline. The intervals say which of these gaps are larger than
# the differences between seeds. The box is written by the cell from the paired differences, so a
# re-execution that moves the numbers changes the words with them:

# %%
mtm_largest = table[row_name("MtM (prompted)", N_MAX)]
glue_number("temporal_intra_scratch",
            table[row_name("Temporal", 0)]["intra-region"])
glue_number("mtm_cosmooth_share", 100 * mtm_largest["co-smooth"]
            / table[BAYES_ROW]["co-smooth"], "{:.0f}")
largest = condition(N_MAX)
gain = {label: {t: differences[f"{label}: {largest} - from scratch"][t]
                for t in TASKS} for label in MASKINGS}
versus = {condition(c): {t: differences[f"MtM - Temporal, {condition(c)}"][t]
                         for t in TASKS} for c in (0, N_MAX)}
scratch = "the same masking from scratch at equal total steps"
words = {label: verdict_sentence(f"{label} pretrained on {largest}",
                                 scratch, d) for label, d in gain.items()}
glue_text("pretraining_words_mtm", words["MtM (prompted)"])
what_this_run_shows(*words.values(), *[
    verdict_sentence(f"MtM ({c})", "temporal masking", d)
    for c, d in versus.items()])

# %% [markdown]
# In the paper's Fig. 4 (NDT1-stitch, 5 held-out IBL sessions, 1, 10 and 34 sessions, where "1" is
# the from-scratch model) MtM improves with more sessions on every activity metric, while the temporal
# baseline gains from 1 to 10 sessions and then saturates; and MtM stays far above the baseline on
# intra- and inter-region prediction, which temporal masking never practises. Here the pool is small
# (the largest set of `N_PRETRAIN`, sessions of one synthetic world) and the box above says which of these shapes the
# runs show beyond seed noise (the box above). For scale against the paper's numbers: temporal masking from
# scratch scores {glue:text}`temporal_intra_scratch` bits per spike on intra-region prediction
# here, where the paper's Table 2 gives −0.49 from scratch and −0.08 after 34 sessions. MtM pretrained
# on the largest set reaches {glue:text}`mtm_cosmooth_share` % of the Bayes reference on
# co-smoothing; the share table gives every task, and the distance to the Bayes reference is what
# more data, a larger model and longer training could still gain.
#
# Pretraining also changes how fine-tuning proceeds. The validation score (masked bits per spike on
# the validation trials, the selection score of every run) over the epochs of MtM on the first
# held-out session, seed 0 ({numref}`fig-07-finetuning-curves`):

# %% mystnb={"figure": {"caption": "Validation bits per spike (masked entries of the validation trials, the selection score) over the epochs of prompted MtM on the first held-out session, seed 0: trained from scratch (black, for as many optimiser steps as pretraining and fine-tuning together) and fine-tuned after each pretraining set (light to dark: more pretraining sessions).", "name": "fig-07-finetuning-curves"}}
eid = heldout[0].eid
folders = {condition(0): OUT / "seed0" / "single" / "mtm" / eid}
folders.update({f"fine-tuned after {condition(c)}":
                OUT / "seed0" / "finetune" / f"mtm-{c}" / eid for c in counts})
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

# %%
scratch_log = histories[condition(0)]
scratch_best = max(float(r["val_bps"]) for r in scratch_log)
lines = []
for name in list(histories)[1:]:
    epochs = [int(r["epoch"]) + 1 for r in histories[name]
              if float(r["val_bps"]) >= scratch_best]
    reached = (f"reaches it at epoch {epochs[0]} of {len(histories[name])}"
               if epochs
               else f"stays below it over its {len(histories[name])} epochs")
    lines.append(f"- {name}: {reached}")
display(Markdown(f"The run from scratch trains for {len(scratch_log)} epochs; "
                 "each fine-tuned run, measured against its best validation "
                 "score:\n\n" + "\n".join(lines)))

# %% [markdown]
# Where pretraining helps, a pretrained model starts from a better place: after its stitchers settle,
# its first epochs already score what the model trained from scratch needs many epochs to reach. The
# lines above say whether that happened here: a fine-tuned run that stays below the from-scratch
# model's best score is one for which, at this budget, pretraining did not pay. The validation score
# is not one of the test tasks and this is one seed and one session; the table and the paired
# differences above are what the chapter's claims rest on.
#
# ## 7. How the reference does it, and where `mtm` differs
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
# ## 8. The authors' own pretrained model
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

REFERENCE_DIR = RUN_DIR / "multisession-reference"  # checkpoints of section 8
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
        plan.train_config("mtm", "finetune", freeze_core=True),
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
# session and scored like the models above (one fine-tuning, `FINETUNE_EPOCHS` epochs). (This small checkpoint was trained on Poisson noise, so
# its scores show that the steps run, not what pretraining buys.)

# %%
if FIXTURE is not None:
    shared_only, shared_report = import_reference(FIXTURE_MODEL)
    imported_path = save_model(REFERENCE_DIR / "reference-small.safetensors",
                               shared_only, shared_report.extra())
    imported_tuned = finetune_once(
        imported_path, heldout[0], plan.train_config("mtm", "finetune"),
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
#   (started at the mean of the pretrained ones), and trains everything (or, with `freeze_core=True`,
#   only the new parts).
# - The paper's Fig. 4 shows MtM improving with 1, 10 and 34 pretraining sessions on every activity
#   metric (the temporal baseline saturates at 10). This chapter's run compares at equal *total*
#   optimiser steps, where pretraining spends steps on other sessions; there
#   {glue:text}`pretraining_words_mtm` (section 6's box gives every comparison). The paper's comparison is another one: a pretrained model
#   reused and fine-tuned on the new session, against a model trained on that session alone, across
#   new-session sizes; `mtm reproduce --experiment transfer` runs it. Its `book` run (results in the
#   repository's benchmarks/RESULTS.md, not stored in this chapter) finds MtM fine-tuned from a
#   pretrained model above MtM trained on a new session of 100 training trials alone, on all four
#   activity tasks; this chapter is to be rebuilt on that comparison.
# - A fair test compares a pretrained model with one trained from scratch for as many optimiser steps,
#   over several training seeds, as paired differences with intervals: `mtm reproduce --experiment
#   scaling` does all of it, and section 6 states, difference by difference, what this chapter's run
#   shows beyond seed noise.
# - The authors' released models are read safely with `mtm.checkpoint.import_reference` (or `mtm
#   import-reference`) and become ordinary `mtm` checkpoints, fine-tuned and scored the same way.
#
# ## Exercises
#
# Each solution is a folded cell under its exercise: it reuses the experiment's runs and trains
# nothing.
#
# **Exercise 1.** The chapter's first version compared a model trained from scratch for as many
# epochs as fine-tuning with a model pretrained and then fine-tuned. Count the optimiser steps of every
# run of this chapter's plan on the first held-out session. How many steps would the from-scratch
# model have lacked under that older comparison?
#
# :::{admonition} Hint
# :class: dropdown
# `mtm.reproduce.plan.batches_per_epoch(sessions, batch_size)` gives the steps of one epoch;
# `plan.train_config(masking, stage)` gives each stage's epochs and batch size, and
# `mtm.reproduce.scheduler.from_scratch_epochs` the from-scratch epochs the experiment chose.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell below counts them. Every pretraining run takes about the same number of steps, whatever
# its number of sessions, and the from-scratch model takes pretraining's and fine-tuning's steps
# together. At equal epochs it would have had only the fine-tuning's steps: the pretrained models
# would have been trained several times longer, and a gain could not be told from more training.
# :::

# %% tags=["hide-input"]
pretrain_cfg = plan.train_config("mtm", "pretrain")
finetune_cfg = plan.train_config("mtm", "finetune")
batch = finetune_cfg.batch_size
step_rows = {}  # {run: (epochs, optimiser steps)}
for k in counts:
    epochs = epochs_for_steps(pool[:k], batch, steps)
    step_rows[f"pretraining on {condition(k)}"] = (
        epochs, epochs * batches_per_epoch(pool[:k], batch))
step_rows["fine-tuning"] = (
    finetune_cfg.epochs,
    finetune_cfg.epochs * batches_per_epoch(heldout[:1], batch))
scratch_epochs = from_scratch_epochs(pool, pretrain_cfg,
                                     finetune_cfg)(heldout[0])
step_rows["from scratch (equal steps)"] = (
    scratch_epochs, scratch_epochs * batches_per_epoch(heldout[:1], batch))
for name, (epochs, n_steps) in step_rows.items():
    print(f"{name:36s} {epochs:5d} epochs {n_steps:7d} optimiser steps")
missing = (step_rows["from scratch (equal steps)"][1]
           - step_rows["fine-tuning"][1])
print(f"at equal epochs the model from scratch would have lacked {missing} "
      "steps")

# %% [markdown]
# **Exercise 2.** How much does one row move from one training seed to the next? Compare the seeds'
# scores of MtM from scratch and of MtM pretrained on the largest set with the paired difference
# between them.
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


scratch_row = row_name("MtM (prompted)", 0)
pretrained_row = row_name("MtM (prompted)", N_MAX)
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
# Divide the rows of section 6's table by the Bayes reference row, task by task.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The cell gives, for each masking and task, the share of the Bayes reference from scratch, after the
# largest pretraining set, and the change. A gain is worth more where the share is low: there the
# spikes allow much better predictions than the model makes. The paired differences of section 6 say
# which of these changes exceed seed noise.
# :::

# %% tags=["hide-input"]
share_rows = {}
for label in MASKINGS:
    for task in TASKS:
        bayes = table[BAYES_ROW][task]
        before = table[row_name(label, 0)][task] / bayes
        after = table[row_name(label, N_MAX)][task] / bayes
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

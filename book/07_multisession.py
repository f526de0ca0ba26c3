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
# # 7. Multi-session pretraining and fine-tuning
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/07_multisession.ipynb)
#
# **What you will learn**
#
# - how one model is trained on several sessions whose neurons have nothing in common: per-session
#   *stitchers* around a shared transformer (NDT1-stitch);
# - how a pretrained model is fine-tuned on a new session: new stitchers and session token, every
#   other weight copied, all of them trained (or, as an alternative, only the new ones);
# - how the held-out scores change with the number of pretraining sessions (the paper's Fig. 4),
#   against a model trained from scratch on the new session alone;
# - why this works on the synthetic sessions of this book, and where the reference code does things
#   differently;
# - how to read the authors' released pretrained model safely and fine-tune and score it.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took. The paper's settings (1000 epochs, paper-sized sessions) take many hours on a GPU;
# the `gpu` settings run to a time budget of 15 minutes (`mtm.book.GPU_BUDGET_MINUTES`): a short probe
# measures an epoch, and the line under the parameters says how many epochs fit.*

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
import torch
from IPython.display import Markdown, display

from mtm.baselines import ORACLE_ROW
from mtm.book import chapter_settings, finetune_once, gpu_check, train_once
from mtm.checkpoint import load_model, read_log
from mtm.data import synthetic_sessions
from mtm.evaluate import evaluate_model
from mtm.oracle import oracle_results
from mtm.plots import plot_loss_curves, results_table, use_style
from mtm.train import TrainConfig, finetune_model, pick_device

use_style()
print(gpu_check())

# %% tags=["parameters"]
SETTINGS = "auto"          # "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1, else gpu or book
SEED = 0                   # first session of the world; the last session is held out
PRESET = None              # training preset, "small" or "paper" (None: the settings' value)
N_PRETRAIN = None          # pretraining set sizes, e.g. [1, 2, 4] (None: the settings'; paper: 1, 10, 34)
N_TRIALS = None            # trials per session (None: the settings' value)
N_NEURONS = None           # neurons per session (None: the settings' value)
EPOCHS = None              # fine-tuning and from-scratch epochs (None: the settings' value)
PRETRAIN_EPOCHS = None     # pretraining epochs (None: the settings' value)
MODEL = None               # model size overrides (None: the settings' value)
RUN_DIR = None             # folder of the trained runs (None: the settings' shared folder)
RELEASED_FROM_HUB = False  # with network (Colab): the authors' released 34-session model (section 8)

# %%
RUN = chapter_settings("07_multisession", SETTINGS, PRESET=PRESET, N_PRETRAIN=N_PRETRAIN,
                       N_TRIALS=N_TRIALS, N_NEURONS=N_NEURONS, EPOCHS=EPOCHS,
                       PRETRAIN_EPOCHS=PRETRAIN_EPOCHS, MODEL=MODEL)
PRESET, N_PRETRAIN, N_TRIALS, N_NEURONS, EPOCHS, PRETRAIN_EPOCHS, MODEL = RUN.unpack(
    "PRESET", "N_PRETRAIN", "N_TRIALS", "N_NEURONS", "EPOCHS", "PRETRAIN_EPOCHS", "MODEL")
RUN_DIR = Path(RUN_DIR) if RUN_DIR else RUN.run_dir / "multisession"

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
sessions = synthetic_sessions(max(N_PRETRAIN) + 1, seed=SEED, n_trials=N_TRIALS,
                              n_neurons=N_NEURONS)
heldout, pool = sessions[-1], sessions[:-1]
for s in sessions:
    role = "held out" if s is heldout else "pretraining pool"
    print(f"{s.eid}: {s.n_trials} trials, {s.n_neurons} neurons  ({role})")

# %% [markdown]
# The pretraining sets are nested: the first `N_PRETRAIN` sessions of the pool. The last session is never
# seen in pretraining; all scores below are on its test trials.
#
# ## 3. Pretraining
#
# `mtm.train.train` takes a list of sessions: with several, it builds one stitcher pair and one
# session token per session and draws single-session batches from all of them, shuffled together.
# The temporal baseline and prompted MtM are pretrained on each set.

# %%
device = pick_device()
MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}


def config(masking, epochs, **extra):
    """The chapter's training settings: the preset, a masking, the epochs."""
    return TrainConfig.preset(PRESET, masking=masking, model=MODEL, epochs=epochs, **extra)


pretrained = {}
for masking in MASKINGS.values():
    for n in N_PRETRAIN:
        run_dir = RUN_DIR / f"pretrain-{masking}-{n}"
        cfg = config(masking, PRETRAIN_EPOCHS)
        pretrained[masking, n] = train_once(pool[:n], cfg, run_dir)
        print(f"pretrained {masking} on {n} session(s) in {run_dir.name}")

# %% [markdown]
# The largest pretrained MtM model knows every pretraining session by its id, with one read-in and
# one read-out each; everything else is shared:

# %%
N_MAX = max(N_PRETRAIN)
big, _ = load_model(pretrained["mtm", N_MAX])
print("sessions:", big.session_ids, "neurons:", big.n_neurons)
per_session = sum(p.numel() for p in big.session_parameters())
shared = sum(p.numel() for p in big.core_parameters())
print(f"shared parameters: {shared:,}")
print(f"per-session parameters (stitchers and tokens, all sessions): {per_session:,}")

# %% [markdown]
# ## 4. Fine-tuning on the held-out session
#
# `mtm.train.finetune(checkpoint, session, cfg, run_dir)` starts a model for the new session from the
# checkpoint (`mtm.train.finetune_model`) and trains it with the same objective. Which weights are
# copied? Build the starting model and compare it with the pretrained one:

# %%
start = finetune_model(big, heldout)
pre_state = big.state_dict()
status = {}
for key, value in start.state_dict().items():
    old = pre_state.get(key)
    same = old is not None and old.shape == value.shape and torch.equal(old, value)
    status.setdefault(key.split(".")[0], set()).add("copied" if same else "new")
for module, how in status.items():
    print(f"{module:14s} {' + '.join(sorted(how))}")
print("the new model knows the sessions:", start.session_ids)

# %% [markdown]
# The embedding, position embedding, transformer blocks, final LayerNorm and prompt tokens are
# copied. The stitchers (`read_in`, `read_out`) are new, and the session token starts at the mean of
# the pretrained sessions' tokens. By default **all** weights are then trained on the new session, as
# in the reference. The alternative, `freeze_core=True`, trains only the new stitchers and session
# token and keeps the pretrained core fixed: fewer parameters to fit from one session, at the price of
# no adaptation of the dynamics model.

# %%
finetuned = {}
for masking in MASKINGS.values():
    for n in N_PRETRAIN:
        run_dir = RUN_DIR / f"finetune-{masking}-{n}"
        cfg = config(masking, EPOCHS)
        finetuned[masking, n] = finetune_once(pretrained[masking, n], heldout, cfg, run_dir)
frozen = finetune_once(pretrained["mtm", N_MAX], heldout,
                       config("mtm", EPOCHS, freeze_core=True),
                       RUN_DIR / f"finetune-mtm-{N_MAX}-frozen")
print("fine-tuned:", ", ".join(p.parent.name for p in [*finetuned.values(), frozen]))

# %% [markdown]
# ## 5. The control: training from scratch
#
# The same models trained on the held-out session alone, for the same number of epochs as the
# fine-tuning runs (the paper's "single-session" rows, and the first point of its Fig. 4).

# %%
scratch = {}
for masking in MASKINGS.values():
    run_dir = RUN_DIR / f"scratch-{masking}"
    cfg = config(masking, EPOCHS)
    scratch[masking] = train_once([heldout], cfg, run_dir)

# %% [markdown]
# ## 6. Held-out scores against the number of pretraining sessions
#
# Every model is scored on the held-out session's test trials with `mtm.evaluate.evaluate_model`:
# co-smoothing, forward prediction, intra-region and inter-region, in bits per spike (per neuron,
# NaN-mean over neurons). Each task's oracle ({doc}`05_evaluation`, `mtm.oracle`) gives the best score the task
# allows on the held-out session.

# %%
def scores(best, masking):
    """Mean bits per spike of every activity task, held-out session, test trials."""
    model, _ = load_model(best, device=device)
    results = evaluate_model(model, heldout, masking)
    return {task: result.mean_bps for task, result in results.items()}


def sessions_label(n):
    return "from scratch" if n == 0 else f"{n} pretraining session" + "s" * (n > 1)


curves = {m: {0: scores(scratch[m], m)} for m in MASKINGS.values()}
for (masking, n), best in finetuned.items():
    curves[masking][n] = scores(best, masking)
frozen_scores = scores(frozen, "mtm")
oracle = {task: result.mean_bps for task, result in oracle_results(heldout).items()}

rows = {}
for label, masking in MASKINGS.items():
    for n, row in curves[masking].items():
        rows[f"{label}, {sessions_label(n)}"] = row
rows[f"MtM (prompted), {sessions_label(N_MAX)}, core frozen"] = frozen_scores
rows[ORACLE_ROW] = oracle
display(Markdown(results_table(rows)))

# %% mystnb={"figure": {"caption": "Scores on the held-out session's test trials (bits per spike) against the number of pretraining sessions, one panel each for co-smoothing, intra-region and inter-region prediction. The first point, labelled scratch, is the model trained on the held-out session alone; the others were pretrained and fine-tuned. Blue: temporal masking; orange: prompted MtM; hollow star: MtM fine-tuned with the core frozen, on the largest pretraining set. Each panel's title gives the task's oracle.", "name": "fig-07-scores-vs-sessions"}}
TASKS = ("co-smooth", "intra-region", "inter-region")
x = np.arange(len(N_PRETRAIN) + 1)
fig, axes = plt.subplots(1, len(TASKS), figsize=(10, 3.4), layout="constrained")
for ax, task in zip(axes, TASKS):
    for (label, masking), color in zip(MASKINGS.items(), ("tab:blue", "tab:orange")):
        values = [curves[masking][n][task] for n in [0, *N_PRETRAIN]]
        ax.plot(x, values, "o-", color=color, label=label)
    ax.plot(x[-1], frozen_scores[task], "*", ms=12, color="tab:orange", mfc="white",
            label="MtM, core frozen")
    ax.set_xticks(x, ["scratch", *map(str, N_PRETRAIN)])
    ax.set_xlabel("pretraining sessions")
    ax.set_ylabel("bits per spike")
    ax.set_title(f"{task} (oracle {oracle[task]:.2f})", fontsize=10)
axes[0].legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# How to read it: the first point of each line is the model trained on the held-out session alone;
# the others were pretrained on `N_PRETRAIN` other sessions and fine-tuned. A line rises from left to
# right where pretraining helps, and the gap between the lines is the gain of MtM's masking over the
# temporal baseline.
#
# In this run the two lines behave differently. The temporal line jumps from scratch to one
# pretraining session (co-smoothing 0.21 to 0.38, intra-region 0.18 to 0.29, inter-region 0.16 to
# 0.20) and then stays nearly flat up to four sessions (0.39, 0.30, 0.19). The MtM line hardly moves
# from scratch to two sessions (co-smoothing 0.29, 0.28, 0.30; intra-region 0.25, 0.26, 0.26;
# inter-region 0.18, 0.19, 0.19) and then rises at four: 0.41, 0.40 and 0.32, the best scores in the
# table. MtM is above the temporal baseline on all three tasks from scratch and with four sessions,
# but not with one or two: there the temporal model is higher on co-smoothing, slightly higher on
# intra-region, and about level on inter-region. Forward prediction, not drawn, is negative for every
# model except MtM with four sessions (0.04). The frozen-core model (star) scores 0.37, 0.36 and 0.28:
# below full fine-tuning on every task, above MtM from scratch and after one or two sessions.
#
# In the paper's Fig. 4 (NDT1-stitch, 5 held-out
# IBL sessions, 1, 10 and 34 sessions, where "1" is the from-scratch model) MtM improves with more
# sessions on every activity metric, while the temporal baseline gains from 1 to 10 sessions and then
# saturates; and MtM stays far above the baseline on intra- and inter-region prediction, which
# temporal masking never practises. The temporal line here has the paper's shape, a gain at the
# first step and then a plateau. The MtM line does not: it gains at most 0.01 from one or two pretraining
# sessions, and it is far above the baseline on intra- and inter-region prediction only at four
# sessions (0.40 against 0.30, 0.32 against 0.19). Temporal masking also scores positive bits per
# spike on intra-region prediction here (0.18 to 0.30), where the paper's Table 2 gives −0.49 from
# scratch and −0.08 after 34 sessions. Each point is one held-out session and one training seed, so
# differences of 0.01 or 0.02 between points may be chance.
#
# The task's oracle is in each panel's title: no model can beat it
# on average, and the distance to it is what more data, a larger model and longer training could
# still gain.
#
# Pretraining also changes how fine-tuning proceeds. The validation score (masked bits per spike on
# the validation trials, the selection score of every run) over the fine-tuning epochs of MtM:

# %% mystnb={"figure": {"caption": "Validation bits per spike (masked entries of the validation trials, the selection score) over the epochs of prompted MtM on the held-out session: trained from scratch (black), fine-tuned after each pretraining set (light green to dark violet: one to the most pretraining sessions), and fine-tuned with the core frozen after the largest (dashed).", "name": "fig-07-finetuning-curves"}}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
runs = {sessions_label(0): scratch["mtm"]}
runs.update({sessions_label(n): finetuned["mtm", n] for n in N_PRETRAIN})
runs[f"{sessions_label(N_MAX)}, core frozen"] = frozen
histories = {name: read_log(best.parent) for name, best in runs.items()}
plot_loss_curves(histories, key="val_bps", ax=ax)
# from scratch black; fine-tuned runs darker with more pretraining sessions; the frozen core dashed
shades = plt.cm.viridis(np.linspace(0.8, 0.1, len(N_PRETRAIN)))
for line, color in zip(ax.lines, ["black", *shades, shades[-1]]):
    line.set_color(color)
ax.lines[-1].set_linestyle("--")
ax.legend(frameon=False, fontsize=8)
ax.set_ylabel("validation bits per spike (masked)")
ax.set_title("MtM on the held-out session")
plt.show()

# %% [markdown]
# Where pretraining helps, a pretrained model starts from a better place: after its stitchers
# settle, its first epochs already score what the model trained from scratch needs many epochs to
# reach. The stored curves show it most clearly for four pretraining sessions. Every fine-tuned run
# is above the run from scratch after the first epoch, except at one dip of the one-session run. Both
# four-session runs, full and with the core frozen, pass the final score of the run from scratch in under ten epochs and level off well
# above it, the frozen one a little lower. The one- and two-session runs climb more slowly, with
# dips (the one-session run falls below zero once, near epoch 17), and pass that final score only
# after 20 to 35 epochs. The run from scratch flattens over its last epochs. The validation score is
# not one of the test tasks: the one- and two-session runs end above the run from scratch here, while
# their co-smoothing, intra- and inter-region scores in the table are within 0.01 of it.
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
for s in sessions:
    by_count.setdefault(s.n_neurons, []).append(s.eid)
shared_counts = {n: eids for n, eids in by_count.items() if len(eids) > 1}
for n, eids in shared_counts.items():
    print(f"{n} neurons: {', '.join(eids)} would share one stitcher pair in the reference")
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
import json

from mtm.checkpoint import import_reference, save_model
from mtm.data import reference_checkpoint_dir
from mtm.masking import PROMPT_IDS

if RELEASED_FROM_HUB:
    from huggingface_hub import snapshot_download

    from mtm.data import heldout_eids, load_ibl_session
    from mtm.data.ibl import ibl_one

    hub_folder = Path(snapshot_download("ibl-foundation-model/multi-NDT1-MtM-34-sessions"))
    released, released_report = import_reference(next(hub_folder.rglob("model_best.pt")))
    print(released.cfg, "dropped:", *released_report.dropped, sep="\n  ")
    released_path = save_model(RUN_DIR / "released.safetensors", released, released_report.extra())
    test_session = load_ibl_session(heldout_eids()[0], ibl_one())
    released_tuned = finetune_once(released_path, test_session, config("mtm", EPOCHS, freeze_core=True),
                                   RUN_DIR / "released-finetuned")
    released_scores = evaluate_model(load_model(released_tuned)[0], test_session, "mtm")
    display(Markdown(results_table({f"released MtM, {test_session.eid[:8]}":
                                    {task: r.mean_bps for task, r in released_scores.items()}})))
else:
    print("Skipped the download: set RELEASED_FROM_HUB = True with network (and huggingface_hub installed).")

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
    print("Skipped: the reference checkpoint folder is not here (set MTM_REFERENCE_CHECKPOINT).")
else:
    fixture_meta = json.loads((FIXTURE / "reference_ndt1_outputs.json").read_text())
    fixture_outputs = np.load(FIXTURE / "reference_ndt1_outputs.npz")
    counts = {s["eid"]: s["n_neurons"] for s in fixture_meta["sessions"]}
    imported, import_report = import_reference(FIXTURE / "reference_ndt1_stitch_prompting_small.pt",
                                               sessions=counts)
    print("dropped:", *import_report.dropped, sep="\n  ")
    differences = {}
    for k, s in enumerate(fixture_meta["sessions"]):
        spikes = torch.as_tensor(fixture_outputs[f"s{k}_spikes"]).float()
        with torch.no_grad():
            differences[f"{s['eid'][:8]} ({s['n_neurons']} neurons)"] = {
                mode: float(np.abs(imported(spikes, s["eid"], prompt=PROMPT_IDS[mode], causal=mode == "causal")
                                   .numpy() - fixture_outputs[f"s{k}_{mode}_log_rates"]).max())
                for mode in fixture_meta["modes"]}
    display(Markdown(results_table(differences, columns=fixture_meta["modes"], digits=6)))

# %% [markdown]
# Under the neuron, intra- and inter-region prompts the imported model computes what the reference
# computed. Under `causal` the two differ, and by design: in the reference the session and prompt
# tokens attend to every bin, future ones included, and every bin reads them in the next layer; in
# `mtm` they see no bin. With the reference's attention restored (a test does it,
# `tests/test_reference_import.py`), the causal outputs agree too.
#
# The imported model is an ordinary `mtm` model: saved, it can be fine-tuned on this chapter's held-out
# session and scored like the models above. (This small checkpoint was trained on Poisson noise, so
# its scores show that the steps run, not what pretraining buys.)

# %%
if FIXTURE is not None:
    shared_only, shared_report = import_reference(FIXTURE / "reference_ndt1_stitch_prompting_small.pt")
    imported_path = save_model(RUN_DIR / "reference-small.safetensors", shared_only, shared_report.extra())
    imported_tuned = finetune_once(imported_path, heldout, config("mtm", EPOCHS),
                                   RUN_DIR / "reference-small-finetuned")
    imported_scores = evaluate_model(load_model(imported_tuned)[0], heldout, "mtm")
    display(Markdown(results_table({"reference checkpoint, fine-tuned":
                                    {task: r.mean_bps for task, r in imported_scores.items()}})))

# %% [markdown]
# ## Summary
#
# - NDT1-stitch trains one model on sessions with different neurons: a read-in and a read-out per
#   session around a shared embedding and transformer, and a session token.
# - Fine-tuning on a new session copies the shared weights, adds new stitchers and a session token
#   (started at the mean of the pretrained ones), and trains everything (or, with `freeze_core=True`,
#   only the new parts).
# - On synthetic sessions of one world, pretraining helps for the same reason it can help on IBL
#   data: shared dynamics, new neurons. The paper's Fig. 4 shows MtM improving with 1, 10 and 34
#   sessions on every activity metric; the temporal baseline saturates at 10. In this chapter's run,
#   four pretraining sessions raised every score of both maskings above training from scratch; the
#   temporal baseline gained at the first session and then stayed level, MtM gained only at four.
# - The authors' released models are read safely with `mtm.checkpoint.import_reference` (or `mtm
#   import-reference`) and become ordinary `mtm` checkpoints, fine-tuned and scored the same way.
#
# ## Exercises
#
# **Exercise 1.** Pretrain on sessions of *another* world (`synthetic_sessions(..., world_seed=1)`) and
# fine-tune on the held-out session of world 0. Does pretraining still help? What does that say about
# what the shared transformer has learned?
#
# :::{admonition} Hint
# :class: dropdown
# Draw `N_MAX` sessions with `synthetic_sessions(N_MAX, seed=SEED, world_seed=1, n_trials=N_TRIALS,
# n_neurons=N_NEURONS)`, pretrain on them with `train_once`, fine-tune on `heldout` with
# `finetune_once` and score with the chapter's `scores`. Put the runs in a new folder: a session's id
# depends on its seed only, so the sessions of world 1 carry the same ids as this chapter's pool.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# World 1 has other dynamics (its own $A_r$, couplings and input directions, `mtm.data.synthetic.World`)
# but comes from the same generator: the same five regions, four latent dimensions per region,
# oscillation time constants and frequencies drawn from the same ranges, the same task and trial
# timing. The new folder matters. `train_once` recognises a run by its settings and by its sessions'
# ids and neuron counts, not by their spikes. The world-1 sessions are called `synthetic-0000`, ...,
# like the pool, so in the chapter's folders `train_once` would return the world-0 runs without
# training anything.
#
# ```python
# other_pool = synthetic_sessions(N_MAX, seed=SEED, world_seed=1, n_trials=N_TRIALS, n_neurons=N_NEURONS)
# OTHER_DIR = RUN_DIR / "other-world"
# world_rows = {}
# for label, masking in MASKINGS.items():
#     pre = train_once(other_pool, config(masking, PRETRAIN_EPOCHS), OTHER_DIR / f"pretrain-{masking}-{N_MAX}")
#     tuned = finetune_once(pre, heldout, config(masking, EPOCHS), OTHER_DIR / f"finetune-{masking}-{N_MAX}")
#     world_rows[f"{label}, from scratch"] = curves[masking][0]
#     world_rows[f"{label}, {N_MAX} sessions of world 0"] = curves[masking][N_MAX]
#     world_rows[f"{label}, {N_MAX} sessions of world 1"] = scores(tuned, masking)
# world_rows[ORACLE_ROW] = oracle
# display(Markdown(results_table(world_rows)))
# ```
#
# Compare, for each masking, the world-1 row with the row from scratch and the world-0 row. If
# pretraining on world 1 helps as much as pretraining on world 0, what the transformer carried over is
# generic: how smooth rates are in time, how counts scatter around them, how to fill a hidden entry
# from its neighbours. If it helps less, or not at all, the transformer learned the dynamics of its own
# world, which is the premise of section 2. There is one held-out session: before reading much into a
# small difference, retrain one row with another seed (`config(masking, EPOCHS, seed=1)`, in its own
# folder) to see how much a row moves by chance.
# :::
#
# **Exercise 2.** Compare fine-tuning and training from scratch at equal cost: train the scratch model
# for as many epochs as pretraining and fine-tuning together. Which wins now?
#
# :::{admonition} Hint
# :class: dropdown
# `config(masking, epochs)` gives any number of epochs; train with `train_once([heldout], ...)` in a new
# folder. Count the cost in epochs (`PRETRAIN_EPOCHS + EPOCHS`), or in optimiser steps: here every session
# has `N_TRIALS` trials, so an epoch over $n$ sessions has about $n$ times the batches of an epoch over one.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Two ways to count. In epochs, as the exercise says, the scratch model gets `PRETRAIN_EPOCHS + EPOCHS`.
# In optimiser steps, which is what the machine pays for, an epoch of pretraining on `N_MAX` sessions costs about
# `N_MAX` times the steps of an epoch on one session, so the scratch model gets
# `N_MAX * PRETRAIN_EPOCHS + EPOCHS` epochs. The one-cycle learning-rate schedule stretches over the
# longer run, and the checkpoint kept is the best validation epoch, so a longer run is not penalised
# for overfitting late. The new folders are needed: a folder holding a run with another number of
# epochs is refused, naming the difference.
#
# ```python
# long_rows = {}
# for label, masking in MASKINGS.items():
#     long_rows[f"{label}, from scratch, {EPOCHS} epochs"] = curves[masking][0]
#     for cost, epochs in (("epochs", PRETRAIN_EPOCHS + EPOCHS), ("steps", N_MAX * PRETRAIN_EPOCHS + EPOCHS)):
#         best = train_once([heldout], config(masking, epochs), RUN_DIR / f"scratch-{masking}-{epochs}")
#         long_rows[f"{label}, from scratch, {epochs} epochs (equal {cost})"] = scores(best, masking)
#     long_rows[f"{label}, {sessions_label(N_MAX)}"] = curves[masking][N_MAX]
# display(Markdown(results_table(long_rows)))
# ```
#
# If the long scratch models reach the fine-tuned ones, the gain of section 6 came from more
# optimisation, which the held-out session's own trials could also provide. If the fine-tuned models
# stay ahead at equal steps, the other sessions gave something that more passes over the same training
# trials cannot give: more trials of the same dynamics.
# :::
#
# **Exercise 3.** Vary the number of held-out trials (`N_TRIALS`, or a `Session` restricted to fewer
# train trials). When does pretraining matter most: with few or with many trials of the new session?
#
# :::{admonition} Hint
# :class: dropdown
# Changing `N_TRIALS` changes every session, the pretraining pool too, and retrains everything. Instead,
# keep the pretrained checkpoints and cut only the held-out session's train split:
# `heldout.select_trials(indices)` keeps the trials named and re-indexes the splits. Keep all validation
# and test trials, so every model is scored on the same test trials. Use new folders: the cut session
# keeps its id and neuron count.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Take nested subsets of the train trials (a half, a quarter, an eighth), train from scratch and
# fine-tune from the largest pretrained model on each. With fewer trials an epoch has fewer batches, so
# the epochs are scaled up to keep about the chapter's number of optimiser steps; otherwise the small
# runs would also be short. The chapter's `scores` scores on `heldout`, whose test trials are exactly
# the test trials of the cut session, so it can be used as it is.
#
# ```python
# train_order = np.random.default_rng(0).permutation(heldout.splits["train"])
# scored = np.concatenate([heldout.splits["val"], heldout.splits["test"]])
# trial_rows = {}
# for label, masking in MASKINGS.items():
#     trial_rows[f"{label}, all train trials, from scratch"] = curves[masking][0]
#     trial_rows[f"{label}, all train trials, {sessions_label(N_MAX)}"] = curves[masking][N_MAX]
# for fraction in (2, 4, 8):
#     n_train = len(train_order) // fraction
#     fewer = heldout.select_trials(np.sort(np.concatenate([train_order[:n_train], scored])))
#     folder = RUN_DIR / f"heldout-{n_train}-train-trials"
#     for label, masking in MASKINGS.items():
#         cfg = config(masking, EPOCHS * fraction)
#         alone = train_once([fewer], cfg, folder / f"scratch-{masking}")
#         tuned = finetune_once(pretrained[masking, N_MAX], fewer, cfg, folder / f"finetune-{masking}-{N_MAX}")
#         trial_rows[f"{label}, {n_train} train trials, from scratch"] = scores(alone, masking)
#         trial_rows[f"{label}, {n_train} train trials, {sessions_label(N_MAX)}"] = scores(tuned, masking)
# display(Markdown(results_table(trial_rows)))
# ```
#
# Read the gap between the fine-tuned row and the scratch row of the same size and masking, from all
# trials down to an eighth. A model trained from scratch must learn the dynamics from the session's own
# trials; a fine-tuned one mostly has to fit the new stitchers. So the expectation, and the reason the
# paper pretrains at all, is that the gap widens as the trials shrink. The oracle is the same for every
# row, since the test trials are.
# :::
#
# **Exercise 4.** Run `freeze_core=True` for every pretraining set size. Does the frozen model catch up
# with full fine-tuning as the number of pretraining sessions grows?
#
# :::{admonition} Hint
# :class: dropdown
# Section 4 fine-tuned the largest pretrained MtM model with `config("mtm", EPOCHS, freeze_core=True)`;
# do the same for `pretrained["mtm", n]` for every `n` of `N_PRETRAIN`, and plot its scores beside
# `curves["mtm"]`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# One frozen fine-tuning per pretrained MtM model, in the folder naming scheme of section 4 (the largest
# set's run is the chapter's own and is reused), scored and drawn beside the fully fine-tuned curve:
#
# ```python
# frozen_runs = {n: finetune_once(pretrained["mtm", n], heldout, config("mtm", EPOCHS, freeze_core=True),
#                                 RUN_DIR / f"finetune-mtm-{n}-frozen") for n in N_PRETRAIN}
# frozen_curve = {n: scores(best, "mtm") for n, best in frozen_runs.items()}
# fig, axes = plt.subplots(1, len(TASKS), figsize=(10, 3.4), layout="constrained")
# for ax, task in zip(axes, TASKS):
#     ax.plot(N_PRETRAIN, [curves["mtm"][n][task] for n in N_PRETRAIN], "o-", label="all weights fine-tuned")
#     ax.plot(N_PRETRAIN, [frozen_curve[n][task] for n in N_PRETRAIN], "s--", label="core frozen")
#     ax.axhline(curves["mtm"][0][task], color="grey", ls=":", label="from scratch")
#     ax.set_xticks(N_PRETRAIN)
#     ax.set_xlabel("pretraining sessions")
#     ax.set_title(task, fontsize=10)
# axes[0].set_ylabel("bits per spike")
# axes[0].legend(frameon=False, fontsize=8)
# plt.show()
# ```
#
# With the core frozen, fine-tuning trains only `session_parameters()`: the new read-in, read-out and
# session token. The model can then only map the new neurons onto the pretrained latent space and back;
# the dynamics are the core's. The synthetic sessions were made exactly that way (section 2: new linear
# loadings, shared dynamics), so a core that has learned the world's dynamics needs nothing more, while
# a core fitted to one or two sessions may lack part of them. Look at the distance between the two
# lines from left to right: if it shrinks, more pretraining sessions made the core general enough to be
# reused unchanged. Full fine-tuning can also adapt the core to the held-out session, at the price of
# many more parameters fitted from that session's trials alone.
# :::

# %% tags=["remove-input"]
print(RUN.done())

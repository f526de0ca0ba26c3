# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Multi-task training: the temporal baseline against MtM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/main/book/04_training.ipynb)
#
# **What you will learn**
#
# - how one training run is set up: the optimiser, the one-cycle schedule, batches of 16 trials of
#   one session, the paper's settings and the `small` settings for a CPU;
# - what one training step computes: a masked batch, log-rates, and the Poisson loss *summed* over
#   the targets, with the prompt token of the batch's scheme;
# - how to train the temporal-masking baseline and prompted MtM on the same session with
#   `mtm.train.train`, and how to read their loss and validation curves;
# - how the best checkpoint is selected (validation bits per spike, or the reference's top-50-neuron
#   $R^2$), what a checkpoint holds, and how an interrupted run is resumed to the same weights;
# - the command line (`mtm train`) and the GPU options: bf16, `torch.compile`, several GPUs.
#
# *About 10 minutes to read; training takes seconds with the smoke settings, a few minutes on a CPU
# with the `small` settings, and longer at the paper's scale on a GPU (three runs of 1000 epochs).*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; everywhere else it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@main"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE], check=True)

import csv
import dataclasses
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

import mtm
from mtm import checkpoint
from mtm.data import synthetic_session
from mtm.masking import MTM_SCHEMES, PROMPT_IDS, is_causal, mask_batch
from mtm.models import build_model, poisson_nll
from mtm.plots import plot_loss_curves
from mtm.train import TrainConfig, pick_device, train, train_mean_counts

# %% tags=["parameters"]
SMOKE = mtm.smoke()        # MTM_SMOKE=1: the small settings CI uses
GPU = torch.cuda.is_available()
PRESET = "paper" if GPU and not SMOKE else "small"   # the paper's settings need a GPU
SEED = 0                   # which synthetic session
N_TRIALS = 60 if SMOKE else None   # None: preset's range (small 250-350, paper 350-900)
N_NEURONS = 40 if SMOKE else None  # None: preset's range (small 80-99, paper 300-900)
EPOCHS = 3 if SMOKE else None      # None: the preset's (small 250, paper 1000)
RESUME_EPOCHS = 3          # short runs that show resuming (>= 3: stopped after epoch 1)

# %% [markdown]
# ## 1. One session, two runs that differ only in the masking
#
# We train two models on the same synthetic session (chapter 1), with the same architecture, data,
# optimiser, schedule and seed. The only difference is what each batch hides:
#
# - the **temporal baseline** hides random time bins (30 % of them) and predicts them; it has no
#   prompt;
# - **MtM** draws one of neuron, causal, intra-region and inter-region masking for every batch
#   (chapter 2) and prepends that scheme's learned prompt token.
#
# `TrainConfig.preset` gives two sets of settings. `paper` is the published one: NDT1-stitch with 5
# layers of width 512, AdamW at learning rate $10^{-4}$, 1000 epochs. `small` is a 2-layer model of
# width 64 trained for 150 epochs at a larger learning rate ($2 \times 10^{-3}$, which a small model
# tolerates), so that a run fits in a minute or two on a laptop CPU. This notebook uses `paper` on a
# GPU and `small` on a CPU; with the smoke settings (CI) a tiny model trains for a few epochs, which
# only shows the mechanics: the curves and scores below mean something with the `small` and `paper`
# settings only.

# %%
MODEL = dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32) if SMOKE else {}
size = "paper" if PRESET == "paper" else "small"
session = synthetic_session(SEED, N_TRIALS, N_NEURONS, preset=size)
print(session)

overrides = dict(model=MODEL) if EPOCHS is None else dict(model=MODEL, epochs=EPOCHS)
configs = {"temporal": TrainConfig.preset(PRESET, masking="temporal", **overrides),
           "MtM": TrainConfig.preset(PRESET, masking="mtm", **overrides)}


def flat(cfg: TrainConfig) -> dict:
    """A configuration as one flat dict, the model's fields prefixed with 'model.'."""
    values = cfg.to_dict()
    model = values.pop("model")
    return {**values, **{f"model.{k}": v for k, v in model.items()}}


baseline, multitask = flat(configs["temporal"]), flat(configs["MtM"])
print("settings that differ:",
      {k: (baseline[k], multitask[k]) for k in baseline if baseline[k] != multitask[k]})

# %% [markdown]
# The two configurations differ in the masking, and in whether the model has prompt tokens; nothing
# else. The table lists the settings that matter, for both presets (the smoke settings shrink the
# model and the number of epochs further):

# %%
paper, small = TrainConfig.preset("paper"), TrainConfig.preset("small")
rows = {"epochs": lambda c: c.epochs,
        "batch size (trials of one session)": lambda c: c.batch_size,
        "peak learning rate": lambda c: c.lr,
        "weight decay (AdamW)": lambda c: c.weight_decay,
        "warm-up (fraction of steps)": lambda c: c.warmup,
        "warm-up starts at peak lr divided by": lambda c: c.div_factor,
        "schedule ends at start lr divided by": lambda c: c.final_div_factor,
        "model selection": lambda c: c.selection,
        "layers x width": lambda c: f"{c.model.n_layers} x {c.model.hidden}",
        "heads": lambda c: c.model.n_heads,
        "MLP width": lambda c: c.model.mlp,
        "stitcher width": lambda c: c.model.n_channels,
        "dropout": lambda c: c.model.dropout}
lines = ["| setting | `paper` | `small` |", "|---|---|---|"]
lines += [f"| {label} | {get(paper)} | {get(small)} |" for label, get in rows.items()]
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 2. The optimiser and the schedule
#
# Both presets follow the reference's optimisation (`src/train_sessions.py`): **AdamW** with weight
# decay 0.01, and PyTorch's **one-cycle** schedule stepped after every batch. The learning rate
# warms up for the first 15 % of the steps from a tenth of its peak to the peak, then decays along a
# cosine to $10^{-4}$ of its starting value (a hundred-thousandth of the peak); AdamW's $\beta_1$
# moves the other way, from 0.95 down to 0.85 and back. There is no gradient clipping. An epoch
# visits every training trial once, in batches of 16 trials that all come from one session (each
# session has its own stitcher layers, so a batch cannot mix sessions); the trials and the batch
# order are reshuffled every epoch. A session's last batch may be smaller than 16 (the reference
# instead dropped the trials beyond a multiple of 16).
#
# Below, the schedule that `mtm.train` builds for each preset (PyTorch's `OneCycleLR` with the
# configuration's values), against the fraction of training done.

# %%
def one_cycle(cfg: TrainConfig, steps: int = 300):
    """Learning rate and beta1 at every step of the schedule that the trainer builds."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup,
        div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)
    lr, beta1 = [], []
    for _ in range(steps):
        lr.append(schedule.get_last_lr()[0])
        beta1.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        schedule.step()
    return np.arange(1, steps + 1) / steps, np.array(lr), np.array(beta1)


curves = {name: one_cycle(cfg) for name, cfg in (("paper", paper), ("small", small))}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
for name, (fraction, lr, beta1) in curves.items():
    axes[0].plot(fraction, lr, label=f"{name} preset")
    axes[1].plot(fraction, beta1, label=f"{name} preset")
for ax in axes:
    ax.axvline(paper.warmup, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("fraction of training steps")
axes[0].set(yscale="log", ylabel="learning rate")
axes[1].set(ylabel="AdamW $\\beta_1$")
axes[0].legend(frameon=False)
plt.show()

# %% [markdown]
# The learning rate (left, log scale) climbs during the warm-up (to the dashed line), peaks, and
# decays by five orders of magnitude by the end; $\beta_1$ (right) dips while the learning rate is
# high, so the optimiser averages gradients over fewer steps then. The two presets have the same
# shape at different heights. With 1000 epochs of about 30 batches each (a paper-sized session), the
# paper's schedule has some 30 000 steps; the figure shows the shape, which does not depend on the
# number of steps.

# %% [markdown]
# ## 3. What one training step computes
#
# A step takes a batch of $B = 16$ trials of one session, $Y \in \mathbb{N}^{B \times T \times N}$,
# and a masking scheme $\mathcal{M}$ (always `temporal` for the baseline; drawn uniformly per batch
# for MtM). The scheme zeroes the hidden entries and names the targets $\mathcal{T}$; the model sees
# the masked counts, with the prompt token $P_\mathcal{M}$ of the scheme in front for MtM, and
# returns a log-rate for every entry. The loss is the Poisson negative log-likelihood of the
# targets, **summed** over the batch (the reference's
# `PoissonNLLLoss(log_input=True, reduction="none")` times the target mask, then `.sum()`; the
# constant $\ln y!$ is left out):
#
# $$\mathcal{L} = \sum_{(k,t,n) \in \mathcal{T}} \left[ e^{\eta_{ktn}} - y_{ktn}\, \eta_{ktn} \right], \qquad
# \eta = f_\theta\big([P_\mathcal{M},\ \mathrm{Tokens}(M \odot Y)]\big).$$
#
# The gradient is taken on this sum, not on a mean, so a batch counts in proportion to how many
# targets it has. The log reports the loss per target entry instead, which is comparable across
# epochs. Here is one batch under each MtM scheme (and the baseline's temporal scheme) through an
# untrained model whose output starts at each neuron's mean rate, as `train` initialises it:

# %%
nets = {}
for name, cfg in configs.items():
    nets[name] = build_model(cfg.model, [(session.eid, session.n_neurons)])
    nets[name].init_rates(session.eid, train_mean_counts(session))
    nets[name].eval()   # no dropout: the same loss every time the cell runs
batch = torch.as_tensor(session.spikes[session.splits["train"][:16]])
generator = torch.Generator().manual_seed(SEED)
lines = ["| run | scheme | prompt | causal | targets | summed loss | loss per target |",
         "|---|---|---|---|---|---|---|"]
with torch.no_grad():
    for name, scheme in [("MtM", s) for s in MTM_SCHEMES] + [("temporal", "temporal")]:
        masked, target = mask_batch(batch, scheme, session.regions, generator=generator)
        prompt = PROMPT_IDS[scheme] if name == "MtM" else None
        log_rates = nets[name](masked, session.eid, prompt, is_causal(scheme))
        loss, count = poisson_nll(log_rates, batch, target)
        lines.append(f"| {name} | {scheme} | {'–' if prompt is None else prompt} "
                     f"| {is_causal(scheme)} | {int(count)} | {loss.item():.0f} "
                     f"| {(loss / count).item():.3f} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# The number of targets differs a lot between schemes: causal masking hides 60 % of the bins,
# inter-region masking a whole region, intra-region masking only about 30 % of one region's neurons.
# Because the loss is a sum, MtM's gradient is dominated by the schemes with many targets in a
# batch; the reference does the same, and we keep it.
#
# The prompt is a learned vector per scheme, a row of the model's `prompt_token` table, prepended to
# the sequence next to the session token; the baseline's model has no prompt table at all:

# %%
def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


print("MtM prompts x width:", tuple(nets["MtM"].prompt_token.weight.shape))
print("baseline prompt table:", nets["temporal"].prompt_token)
print("parameters:", {name: n_parameters(m) for name, m in nets.items()})

# %% [markdown]
# ## 4. Training both models
#
# `mtm.train.train(sessions, cfg, run_dir)` builds the model, starts every neuron's output at its
# mean rate, trains, validates after every epoch and returns the path of the best checkpoint.
# Everything a run writes goes into `run_dir`.

# %%
RUN_DIR = Path(tempfile.mkdtemp(prefix="mtm_"))
print(f"training on {pick_device()}, {PRESET} preset{' (smoke)' if SMOKE else ''}")
best = {name: train([session], cfg, RUN_DIR / name, progress=not SMOKE)
        for name, cfg in configs.items()}
print({name: str(path.relative_to(RUN_DIR)) for name, path in best.items()})

# %% [markdown]
# ## 5. Reading the logs
#
# Each run's `log.csv` has one row per epoch: the training loss per target entry, the learning rate
# at the end of the epoch, the time, the throughput, the validation score `val_bps` and the best
# score so far. `mtm.plots.plot_loss_curves` draws any column of several runs:

# %%
def read_log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


histories = {name: read_log(RUN_DIR / name) for name in configs}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), layout="constrained")
plot_loss_curves(histories, "train_loss", ax=axes[0])
axes[0].set_ylabel("training loss (nats per target entry)")
plot_loss_curves(histories, "val_bps", ax=axes[1])
axes[1].set_ylabel("validation bits per spike")
plt.show()

# %% [markdown]
# Left: with the `small` or `paper` settings, the training loss falls for both runs, fast at first,
# and flattens as the learning rate decays. MtM's curve jumps from epoch to epoch: every batch draws
# its own scheme, the schemes differ in difficulty, and with a few batches per epoch the mixture of
# an epoch varies. The two runs are *not* comparable on this panel: the baseline is scored on hidden
# time bins, MtM on a mixture of hidden neurons, bins and regions, some of them much harder. The
# same holds for the right panel, the validation bits per spike, which each run computes with its
# own masking (on the validation trials, with masks drawn from a fixed seed so that every epoch is
# scored on the same masks). Each curve says how well a run learns *its own* task; which model is
# better at a given task is the question of chapter 5, which scores both on the same held-out masks.
# A validation curve may also peak and then decline as a small model starts to overfit a small
# training split: this is why the best epoch is kept, not the last. With the smoke settings a run
# lasts a few epochs and the curves are a few points: only the mechanics show.
#
# ## 6. Which checkpoint to keep
#
# Every epoch ends with a validation pass, and the weights with the best score are written to
# `best.safetensors`: the run's result. There is no early stopping; all epochs run, as in the
# reference. `mtm` offers two criteria:
#
# - `selection="val_bps"` (the default): the pooled bits per spike of the masked validation entries,
#   $\big(\mathrm{NLL}_\text{null} - \mathrm{NLL}_\text{model}\big) / (\ln 2 \sum y)$, where the
#   null model predicts each neuron's mean rate on the validation trials (chapter 5 defines bits per
#   spike). The masks come from a fixed seed. This selects on the quantity the paper's tables
#   report.
# - `selection="r2_top50"`: the reference's criterion. For the 50 most active validation neurons,
#   the $R^2$ between each trial's counts and predicted rates over the 100 bins, averaged over
#   trials and neurons, with the masking active. It scores squared errors rather than the Poisson
#   likelihood that the model is trained on and the tables report, looks at 50 neurons only, and in
#   the reference re-draws the masks at every validation, which makes it noisy. `mtm` keeps the
#   masks fixed for this criterion too, so only the score differs.
#
# A third run of MtM with `selection="r2_top50"` trains exactly the same weights as the MtM run
# above (same seed, same batches, same masks: validation never touches the training random numbers);
# only the checkpoint it keeps may differ. Its log has both scores:

# %%
r2_cfg = dataclasses.replace(configs["MtM"], selection="r2_top50")
train([session], r2_cfg, RUN_DIR / "MtM-r2", progress=not SMOKE)
r2_log = read_log(RUN_DIR / "MtM-r2")
last = [checkpoint.load_model(RUN_DIR / run / "last.safetensors")[0]
        for run in ("MtM", "MtM-r2")]
pairs = zip(last[0].state_dict().values(), last[1].state_dict().values())
print("same final weights as the MtM run:", all(torch.equal(x, y) for x, y in pairs))
epochs = np.array([int(r["epoch"]) for r in r2_log])
val_bps = np.array([float(r["val_bps"]) for r in r2_log])
r2_top50 = np.array([float(r["r2_top50"]) for r in r2_log])

fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
ax.plot(epochs, val_bps, color="tab:blue", label="validation bits per spike")
kept = {"val_bps": epochs[np.argmax(val_bps)], "r2_top50": epochs[np.argmax(r2_top50)]}
ax.axvline(kept["val_bps"], color="tab:blue", ls="--", lw=1, label="kept by val_bps")
ax.set(xlabel="epoch", ylabel="validation bits per spike")
right = ax.twinx()
right.plot(epochs, r2_top50, color="tab:orange", label="top-50-neuron $R^2$")
right.axvline(kept["r2_top50"], color="tab:orange", ls=":", lw=1.5,
              label="kept by r2_top50")
right.set_ylabel("top-50-neuron trial $R^2$")
fig.legend(frameon=False, loc="outside lower center", ncol=4, fontsize=8)
plt.show()
print("epoch kept:", {criterion: int(epoch) for criterion, epoch in kept.items()})

# %% [markdown]
# With the `small` or `paper` settings, both scores rise early in training; later they can peak at
# different epochs. The $R^2$ of single trials is small, even negative, for a good model, because a
# trial's counts in 20 ms bins are mostly Poisson noise around the rate. The dashed and dotted lines
# mark the epoch each criterion keeps. On the command line the choice is `--selection r2_top50`.
#
# ## 7. Checkpoints: weights and configuration, never a pickled module
#
# A run folder holds:
#
# - `best.safetensors` and `last.safetensors`: the selected and the latest weights, with the model's
#   configuration and its sessions (id and neuron count) as JSON in the file's metadata. A
#   safetensors file holds only tensors and strings, so loading one never runs code, and the model
#   is rebuilt from the configuration. The reference pickled whole `nn.Module` objects, which run
#   code when loaded and break whenever the class changes.
# - `last.pt`: the state needed to continue the run (model, optimiser and schedule states, epoch,
#   best score, history), plain tensors and numbers read back with
#   `torch.load(..., weights_only=True)`.
# - `log.csv` and `config.json`; and a `tensorboard/` folder when TensorBoard is installed.
#
# Checkpoints and the log are written to a temporary name and then moved into place, so an
# interrupted write never leaves a broken checkpoint.

# %%
run = RUN_DIR / "MtM"
print(sorted(p.name for p in run.iterdir()))
description = checkpoint.read_description(best["MtM"])
print("sessions:", description["sessions"])
print("model:", {k: description["model"][k] for k in ("arch", "hidden", "use_prompt")})
extra = description["extra"]
print("kept epoch:", extra["epoch"], "| masking:", extra["train"]["masking"])
print("last.pt holds:", sorted(checkpoint.load_state(run / "last.pt")))
model, _ = checkpoint.load_model(best["MtM"])  # rebuilt from its description, eval mode
print(type(model).__name__, "with", n_parameters(model), "parameters")

# %% [markdown]
# ### Resuming an interrupted run
#
# Long runs get interrupted (a Colab session ends, a job hits its time limit).
# `train(..., resume=True)` (or `mtm train ... --resume`) continues from `last.pt`, and reaches
# **the same weights** as a run that was never stopped: every epoch re-seeds its batch order, its
# masks and its dropout from `(seed, epoch)`, so epoch 2 does the same thing whether it follows
# epoch 1 in the same process or after a restart. A resumed run refuses a different configuration or
# different sessions.
#
# To see it, a short run of `RESUME_EPOCHS` epochs, once uninterrupted and once stopped after epoch
# 1 by a callback (`callbacks` are called after every epoch with the epoch's log row; the exception
# stands in for pressing *stop*), then resumed. (With the smoke settings the MtM run of section 4
# has exactly these settings, so it serves as the uninterrupted run.)

# %%
short = dataclasses.replace(configs["MtM"], epochs=RESUME_EPOCHS)
if short == configs["MtM"]:   # the MtM run of section 4 is this run, uninterrupted
    uninterrupted = RUN_DIR / "MtM"
else:
    uninterrupted = RUN_DIR / "uninterrupted"
    train([session], short, uninterrupted, progress=False)


def stop_after_epoch_1(trainer, epoch, row):
    if epoch == 1:
        raise KeyboardInterrupt


interrupted = RUN_DIR / "interrupted"
try:
    train([session], short, interrupted, callbacks=[stop_after_epoch_1], progress=False)
except KeyboardInterrupt:
    state = checkpoint.load_state(interrupted / "last.pt")
    print("stopped; last.pt holds epoch", state["epoch"])
train([session], short, interrupted, resume=True, progress=False)

full, _ = checkpoint.load_model(uninterrupted / "last.safetensors")
resumed, _ = checkpoint.load_model(interrupted / "last.safetensors")
pairs = zip(full.state_dict().values(), resumed.state_dict().values())
print("identical to the uninterrupted run:", all(torch.equal(x, y) for x, y in pairs))
print("epochs in its log:", [int(r["epoch"]) for r in read_log(interrupted)])

# %% [markdown]
# The weights agree exactly, not just approximately, and the log holds every epoch once. The
# package's test `tests/test_train.py::test_resume_reaches_the_same_weights` checks the same thing
# on every change. (On a GPU, some kernels are not bit-for-bit deterministic, so there the weights
# agree only up to floating-point noise.)
#
# ## 8. From a shell
#
# The same runs from the command line (sessions saved as `.npz`, chapter 1):
#
# ```bash
# mtm data synthetic --preset small --out runs/data     # writes runs/data/synthetic-0000.npz
# mtm train --data runs/data/synthetic-0000.npz --masking temporal --out runs/temporal
# mtm train --data runs/data/synthetic-0000.npz --masking mtm --out runs/mtm
# mtm train --data runs/data/synthetic-0000.npz --masking mtm --selection r2_top50 --out runs/r2
# mtm train --data runs/data/synthetic-0000.npz --masking mtm --out runs/mtm --resume
# mtm train --preset paper --data runs/ibl --masking mtm --out runs/pretrain  # several sessions
# ```
#
# The fifth line continues the MtM run after an interruption; the last one pretrains on every
# session in a folder (chapter 7). `--preset small|paper` picks the settings, and `--epochs`,
# `--lr`, `--batch-size`, `--seed`, `--no-prompt` (MtM without prompt tokens), `--arch ndt2`
# override them; `mtm train --help` lists everything. A folder that already holds a run is refused
# unless `--resume` is given, so a typo never overwrites a finished run.
#
# ## 9. On a GPU
#
# - **Device.** `device="auto"` (the default) trains on the GPU when there is one. The sessions are
#   copied to the GPU once, as 8-bit counts, and nothing in a training step reads a value back to
#   the host: the loss is accumulated on the GPU and read once per epoch.
# - **Precision.** `precision="auto"` runs the model under bf16 autocast on a GPU that supports
#   bfloat16; the loss is always computed in float32. `precision="fp32"` (`--precision fp32`) trains
#   in full precision, as the reference did.
# - **Compilation.** `compile=True` (`--compile`) wraps the model in `torch.compile`: a slower first
#   epoch, then faster steps.
# - **Several GPUs or nodes.** Launch the same entry point with `torchrun`, e.g.
#   `torchrun --nproc_per_node 4 -m mtm train --preset paper --data runs/ibl --out runs/pretrain`.
#   Every process takes every fourth batch of the same shuffled order, and the gradients are
#   averaged across processes, so a step sees four batches (an effective batch of 64 trials, with a
#   quarter of the steps per epoch): not step-for-step the single-GPU run. After every epoch the
#   processes check that their copies of the weights still agree.
#
# ## Summary
#
# - The baseline and MtM are trained by one loop, `mtm.train.train`, with the same settings except
#   the masking (and MtM's prompt tokens): AdamW (lr $10^{-4}$, weight decay 0.01), one-cycle
#   schedule with 15 % warm-up stepped per batch, batches of 16 trials of one session, 1000 epochs
#   in the paper; the `small` preset (2 x 64, lr $2 \times 10^{-3}$, 150 epochs) for a CPU.
# - The loss is the Poisson negative log-likelihood summed over the masked targets, so schemes with
#   many targets weigh more; the log reports it per target.
# - Training curves measure each run on its own masking; comparing models needs the fixed tasks of
#   chapter 5.
# - The kept checkpoint is the one with the best validation bits per spike (default) or the
#   reference's top-50-neuron $R^2$ (`selection="r2_top50"`).
# - Checkpoints are safetensors (weights + configuration); `last.pt` with `resume=True` continues an
#   interrupted run to the same weights.
#
# ## Exercises
#
# 1. Train MtM without prompts (`dataclasses.replace(configs["MtM"], prompted=False)`). How many
#    parameters does the model lose? Compare its validation curve with the prompted run.
# 2. Train the baseline with `mask_ratio=0.6`. Does its training loss per target go up or down, and
#    why?
# 3. Halve the peak learning rate of the `small` preset (`TrainConfig.preset("small", lr=1e-3)`).
#    How do the loss curves change, and which epoch does `val_bps` keep?
# 4. In section 3, the inter-region scheme's number of targets depends on the region drawn. Draw it
#    for ten seeds: how much does one batch's weight in the gradient vary?
# 5. Resume the short run with `epochs=RESUME_EPOCHS + 1`. What does `train` say, and why is
#    refusing the right behaviour?

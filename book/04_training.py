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
# # Multi-task training: the temporal baseline against MtM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/04_training.ipynb)
#
# **What you will learn**
#
# - how one training run is set up: the optimiser, the one-cycle schedule, batches of 16 trials of
#   one session, the paper's settings and the `small` settings for a CPU;
# - what one training step computes: a masked batch, log-rates, and the Poisson loss *summed* over
#   the targets, with the prompt token of the batch's scheme;
# - how the trainer's epoch loop strings the steps together, and what it does after every epoch;
# - how to train the temporal-masking baseline and prompted MtM on the same session with
#   `mtm.train.train`, and how to read their loss and validation curves;
# - how the best checkpoint is selected (validation bits per spike, or the reference's top-50-neuron
#   $R^2$), what a checkpoint holds, and how an interrupted run is resumed to the same weights;
# - the command line (`mtm train`) and the GPU options: bf16, `torch.compile`, several GPUs.
#
# *About 10 minutes to read; the line under the parameters says how long the chapter's stored
# execution took; with the `gpu` settings the next line says how many epochs fit the chapter's time
# budget on the machine at hand (measured by a short probe).*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; elsewhere it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE],
                   check=True)

import copy
import dataclasses
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch
from IPython.display import Markdown, display

from mtm import checkpoint
from mtm.book import (SINGLE_SEEDS, assert_direction, chapter_settings,
                      gpu_check, show_source, single_run_folder, source_span,
                      train_all, train_once)
from mtm.checkpoint import log_summary, read_log
from mtm.data import synthetic_session
from mtm.masking import MTM_SCHEMES, PROMPT_IDS, is_causal, mask_batch
from mtm.models import build_model, poisson_nll
from mtm.plots import (plot_loss_curves, plot_lr_schedule,
                       plot_selection_criteria, use_style)
from mtm.tables import training_settings_table
from mtm.train import (TrainConfig, Trainer, forward_loss, pick_device, train,
                       train_mean_counts, training_step)

use_style()
print(gpu_check())

# %% tags=["parameters"]
# SETTINGS: "auto" (smoke under MTM_SMOKE=1, else gpu or book) or one of
# them; OVERRIDES replaces values of mtm.book.CHAPTER_SETTINGS, {"EPOCHS": 50}
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0                   # which synthetic session

# %%
RUN = chapter_settings("04_training", SETTINGS, **OVERRIDES)
RUN_DIR = RUN.run_dir   # the trained runs, shared with chapters 5 and 6

# %% [markdown]
# ## 1. One session, two runs that differ only in the masking
#
# We train two models on the same synthetic session ({doc}`01_data`), with the same architecture, data,
# optimiser, schedule and seed. The only difference is what each batch hides:
#
# - the **temporal baseline** hides random time bins (30 % of them) and predicts them; it has no
#   prompt;
# - **MtM** draws one of neuron, causal, intra-region and inter-region masking for every batch
#   ({doc}`02_masking`) and prepends that scheme's learned prompt token.
#
# `TrainConfig.preset` gives two sets of settings. `paper` is the published one: NDT1-stitch with 5
# layers of width 512, AdamW at learning rate $10^{-4}$, 1000 epochs. `small` is a 2-layer model of
# width 64 trained for 150 epochs at a larger learning rate ($2 \times 10^{-3}$, which a small model
# tolerates), so that a run fits in minutes on a laptop CPU. This chapter uses `small`, on a larger
# session (`RUN.N_NEURONS`, `RUN.N_TRIALS`) than the preset's defaults, for `RUN.EPOCHS` epochs: on
# this model, more neurons and more training trials help more than a bigger model (the comments on
# the book settings in `mtm.book.CHAPTER_SETTINGS` give the measurements).

# %%
session = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
print(session)

overrides = dict(model=RUN.MODEL, epochs=RUN.EPOCHS)
configs = {
    "temporal": TrainConfig.preset(RUN.PRESET, masking="temporal",
                                   **overrides),
    "MtM": TrainConfig.preset(RUN.PRESET, masking="mtm", **overrides)}
print("settings that differ:",
      configs["temporal"].differences(configs["MtM"]))

# %% [markdown]
# The two configurations differ in the masking, and in whether the model has prompt tokens; nothing
# else. The table lists the settings that matter, for both presets (this chapter's `RUN.EPOCHS` and
# `RUN.MODEL` replace the preset's values):

# %%
presets = {name: TrainConfig.preset(name) for name in ("paper", "small")}
display(Markdown(training_settings_table(presets)))

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
# Section 5 shows the schedule as the runs of this chapter stepped it, read from their logs.

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
# epochs. This is the package's loss, `mtm.models.poisson_nll`, as it runs:

# %%
show_source(poisson_nll);

# %% [markdown]
# `log_rates` are the model's $\eta$, `spikes` the counts $y$ and `target` the 0/1 mask of the
# targets $\mathcal{T}$. The first line casts the log-rates to float32 (under bf16 or fp16 autocast
# the model returns them in half precision, and $e^\eta$ would lose digits); `per_entry` is
# $e^{\eta} - y\,\eta$ for every entry of the batch; multiplying by `weight` keeps the targets only,
# and `.sum()` adds them up. The second result, `weight.sum()`, is the number of targets, which the
# log divides by. Neither result is read back to the host, so a GPU never waits for it.
#
# The trainer computes a batch's loss with `mtm.train.forward_loss`, and takes a step with
# `mtm.train.training_step`; `Trainer.train_epoch` calls `training_step` for every batch, and
# `Trainer.validate` calls `forward_loss`. Both are shown here from the package:

# %%
show_source(forward_loss);

# %% [markdown]
# `forward_loss` reads top to bottom as the equation above. `training_ratio` gives the fraction to
# hide: the run's `mask_ratio` (30 %), except the causal scheme inside MtM, which hides 60 % of the
# bins as the reference does. `mask_batch` zeroes the hidden entries of `spikes` and returns the
# masked counts and the `target` mask (its `generator` makes the draw reproducible; `patch_size` only
# matters for NDT2). The model `net` then sees the masked counts, the session (its stitcher), the
# `prompt` (None for the baseline) and whether attention is causal (`is_causal(scheme)`: only for
# the causal scheme), inside `torch.autocast`, which is off on the CPU (`amp_dtype` None). Last,
# `poisson_nll` scores the log-rates against the *unmasked* `spikes` on the targets.

# %%
show_source(training_step);

# %% [markdown]
# `training_step` adds the optimisation: `loss.backward()` takes the gradient of the summed loss,
# `optimizer.step()` moves the weights (AdamW in every run). Under fp16 the `scaler` multiplies the
# loss before the backward pass, so small gradients do not underflow, and skips a step whose
# gradients overflowed. `optimizer.zero_grad` clears the gradients for the next batch. The learning
# rate schedule is not part of the step: the trainer calls `scheduler.step()` after it.
#
# Here is one batch under each MtM scheme (and the baseline's temporal scheme) through an untrained
# model whose output starts at each neuron's mean rate, as `train` initialises it, scored by the same
# `forward_loss`:

# %%
nets = {}
for name, cfg in configs.items():
    torch.manual_seed(cfg.seed)   # the weights `train` starts from
    nets[name] = build_model(cfg.model, [(session.eid, session.n_neurons)])
    nets[name].init_rates(session.eid, train_mean_counts(session))
    nets[name].eval()   # no dropout: the same loss every time the cell runs
batch = torch.as_tensor(session.spikes[session.splits["train"][:16]])
generator = torch.Generator().manual_seed(SEED)
lines = ["| run | scheme | prompt | causal | targets | summed loss "
         "| loss per target |", "|---|---|---|---|---|---|---|"]
runs = [("MtM", s) for s in MTM_SCHEMES] + [("temporal", "temporal")]
with torch.no_grad():
    for name, scheme in runs:
        prompt = PROMPT_IDS[scheme] if name == "MtM" else None
        loss, count, _, _ = forward_loss(
            nets[name], batch, session.regions, session.eid, scheme, prompt,
            configs[name], generator)
        shown = "–" if prompt is None else prompt
        lines.append(f"| {name} | {scheme} | {shown} | {is_causal(scheme)} "
                     f"| {int(count)} | {loss.item():.0f} "
                     f"| {(loss / count).item():.3f} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# And one training step by hand, with the trainer's own `training_step`: a copy of the untrained MtM
# model, an AdamW optimiser at the run's peak learning rate, one batch under the `neuron` scheme. The
# loss of the same batch with the same masks, before and after the step:

# %%
net = copy.deepcopy(nets["MtM"])
cfg = configs["MtM"]
optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr,
                              weight_decay=cfg.weight_decay)
step_args = (batch, session.regions, session.eid, "neuron",
             PROMPT_IDS["neuron"], cfg)


def masks():
    """The same masks every time: a generator from one seed."""
    return torch.Generator().manual_seed(1)


with torch.no_grad():
    before, count, _, _ = forward_loss(net, *step_args, masks())
loss, _ = training_step(net, *step_args, masks(), optimizer)
with torch.no_grad():
    after, _, _, _ = forward_loss(net, *step_args, masks())
print(f"{int(count)} targets; loss per target before the step "
      f"{before / count:.4f}, after it {after / count:.4f}")
# the step's loss is the loss before it moved the weights
assert abs(float(loss) - float(before)) <= 1e-6 * float(before)
assert_direction("one step lowers the loss of the batch it was taken on",
                 float(after), "<", float(before))

# %% [markdown]
# The step lowered this batch's loss per target (the line above gives both values, and the cell
# checks the direction): the gradient points downhill for the batch it was computed on. A run
# repeats this for every batch of every epoch, each batch with its own scheme and masks, with the
# learning rate of the one-cycle schedule.

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
# ### The epoch loop
#
# `Trainer.train_epoch` is the loop that repeats the step of this section for every batch of one
# epoch. This is the package's code, as it runs:

# %%
show_source(Trainer.train_epoch)

# %% [markdown]
# Read it in four parts.
#
# - **Seeds.** Dropout, the masks (`generator`) and, for MtM, the draw of the scheme (`sampler`,
#   `mtm.masking.MtMSampler`) each get a seed made from the run's seed and the epoch
#   (`epoch_seed`). An epoch therefore does the same thing whether it follows the previous one or a
#   restart, which is what makes resuming exact (section 7). `self.dist.rank` is 0 on one device;
#   with several GPUs each process gets its own streams.
# - **Batches.** `epoch_batches` shuffles the training trials of every session (again from the seed
#   and the epoch) and cuts them into batches of `batch_size` trials of one session each; with
#   several processes, each takes every `world`-th batch. The trial indices of the whole epoch go to
#   the device in one copy.
# - **The loop.** For each batch: the counts of its trials, the scheme and prompt (`_scheme`: the
#   run's fixed masking and no prompt for the baseline, a fresh draw for MtM), the step above
#   (`training_step`), then `scheduler.step()`, so the one-cycle schedule moves once per batch. The
#   summed loss and the number of targets are added up on the device; `lr` is the rate the last
#   step used.
# - **The log row.** After the loop, the totals are summed over processes (nothing to do on one
#   device) and divided once: the loss per target entry of the epoch, the only value read back from
#   the device. The row also holds the time and the throughput.
#
# `Trainer.run` calls `train_epoch` once per epoch and decides what to keep:

# %%
show_source(Trainer.run, source_span(Trainer.run, "for epoch in bar:",
                                     "callback(self, epoch, row)"))

# %% [markdown]
# After each epoch's row: `validate` scores the validation trials (every `eval_every` epochs and
# after the last one; section 5), `_check_finite` ends the run before a non-finite loss, score or
# weight is saved, and with several processes `check_replicas` checks that their copies of the
# weights still agree. The run's `selection` score (section 6) decides whether the epoch improved on
# the best so far; `_save` then writes `best.safetensors` when it did and `last.pt` when a
# checkpoint is due (section 7), and `write_log` rewrites `log.csv`. The callbacks then see the
# row: section 7 uses one to interrupt a run. Last, `plateau_reached` stops a run early when
# `TrainConfig.patience` is set and that many validations after the warm-up have not beaten the
# best score (the row says `stopped: plateau`; the best epoch's weights are kept). Patience starts
# counting only once the best score has passed `TrainConfig.patience_floor` (a small positive score
# in bits per spike): a run still on the early plateau where it predicts each neuron's mean rate (a score of
# about 0, which some seeds leave later than others) is never stopped there. The book's
# single-session runs leave `patience` unset and train every epoch; multi-session pretraining in
# the transfer experiment (`mtm reproduce --experiment transfer`) stops on its plateau.
#
# ## 4. Training both models
#
# `mtm.train.train(sessions, cfg, run_dir)` builds the model, starts every neuron's output at its
# mean rate, trains, validates after every epoch and returns the path of the best checkpoint.
# Everything a run writes goes into `run_dir`.
#
# One training run is one draw: another seed starts from other initial weights, sees the batches in
# another order and draws other masks and dropout (`TrainConfig.seed`). {doc}`05_evaluation`
# reports every score as a mean over the training seeds `mtm.book.SINGLE_SEEDS`, so every seed of
# both models is trained here, with everything else the same, each in its own folder
# (`mtm.book.single_run_folder`); the rest of this chapter reads seed 0. The runs are independent, so
# `mtm.book.train_all` calls `train` for several at once, in worker processes (on a 2-core CPU two
# runs on one core each finish sooner than one run on both cores; on a GPU one at a time). A run
# already in the folder with the same settings is reused, as {doc}`05_evaluation` and
# {doc}`06_decoding` reuse these.

# %%
print(f"training on {pick_device()}, {RUN.PRESET} preset, {RUN.EPOCHS} epochs")
runs = {RUN_DIR / single_run_folder(cfg.masking, seed):
        ([session], dataclasses.replace(cfg, seed=seed))
        for seed in SINGLE_SEEDS for cfg in configs.values()}
trained = train_all(runs)
best = {name: trained[RUN_DIR / cfg.masking] for name, cfg in configs.items()}
for folder in trained:
    print(f"run folder {folder.name}/: {trained[folder].name}")

# %% [markdown]
# ## 5. Reading the logs
#
# Each run's `log.csv` has one row per epoch: the training loss per target entry, the learning rate
# at the end of the epoch, the time, the throughput, the validation score `val_bps` and the best
# score so far. `mtm.checkpoint.read_log` reads it, and `mtm.plots.plot_loss_curves` draws any
# column of several runs:

# %% mystnb={"figure": {"caption": "The logs of the two runs, one curve per run and one point per epoch, on a shared epoch axis. Top, the training loss per target entry (nats); middle, the validation bits per spike, each run scored on its own masking; bottom, the learning rate at the end of every epoch (log scale).", "name": "fig-04-training-curves"}}
histories = {name: read_log(RUN_DIR / cfg.masking)
             for name, cfg in configs.items()}
fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), layout="constrained",
                         sharex=True)
plot_loss_curves(histories, "train_loss", ax=axes[0])
# MtM's jumpy curve thinner, the baseline visible under it
axes[0].lines[1].set(alpha=0.6, lw=0.8)
axes[0].set_ylabel("training loss\n(nats per target entry)")
plot_loss_curves(histories, "val_bps", ax=axes[1])
axes[1].set_ylabel("validation\nbits per spike")
plot_lr_schedule(histories, ax=axes[2])
axes[2].set_ylabel("learning rate\n(end of epoch)")
for ax in axes[:-1]:
    ax.set_xlabel("")
axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs
plt.show()
for name, rows in histories.items():
    print(f"{name}: {log_summary(rows)}")

# %% [markdown]
# In {numref}`fig-04-training-curves`: top, the training loss per target entry of each run; middle,
# its validation bits per spike; bottom, the learning rate at the end of every epoch: the one-cycle
# schedule climbs during the warm-up, peaks, and decays by orders of magnitude by the end; both runs
# step the same schedule, drawn as one line.
#
# The lines under the figure give each run's training loss per target in its first and last
# epochs and its best validation score, with the epoch that scored it (epochs are counted from 0).
# MtM's training loss jumps up and down from one epoch to the next: every batch draws its own
# scheme, the schemes differ in difficulty, and the mixture of an epoch varies.
#
# The two runs are *not* comparable on the top and middle panels: the baseline is scored on hidden
# time bins, MtM on a mixture of hidden neurons, bins and regions, some of them much harder. The
# validation bits per spike are computed by each run with its own masking (on the validation trials,
# with masks drawn from a fixed seed so that every epoch, and every training seed, is scored on the
# same masks; an MtM run is scored on each of its four schemes, a quarter of the validation trials
# each, and its score is their mean). Each curve
# says how well a run learns *its own* task, so a higher validation curve does not mean the better
# model. Which model is better at a given task is the question of {doc}`05_evaluation`, which scores
# both on the same held-out masks. A model trained long enough on one session's training trials
# can start to overfit them, and its validation curve then declines: this is why the best epoch is
# kept, not the last.
#
# ## 6. Which checkpoint to keep
#
# Every epoch ends with a validation pass, and the weights with the best score are written to
# `best.safetensors`: the run's result. There is no early stopping; all epochs run, as in the
# reference. `mtm` offers two criteria:
#
# - `selection="val_bps"` (the default): the pooled bits per spike of the masked validation entries,
#   $\big(\mathrm{NLL}_\text{null} - \mathrm{NLL}_\text{model}\big) / (\ln 2 \sum y)$, where the
#   null model predicts each neuron's mean rate on the validation trials ({doc}`05_evaluation` defines bits per
#   spike). The masks come from a fixed seed; an MtM run's score is the mean over its four schemes,
#   each scored on a quarter of the validation trials (drawing one scheme per batch, as training does,
#   would score a small validation split on one or two schemes, a different pair for every seed).
#   It is a likelihood in bits per spike, as in the
#   paper's tables, but not their quantity: it pools the masked entries of the run's *own* masking,
#   while the tables average per-neuron scores of the fixed evaluation tasks of {doc}`05_evaluation`.
# - `selection="r2_top50"`: the reference's criterion. For the 50 most active validation neurons,
#   the $R^2$ between each trial's counts and predicted rates over the 100 bins, averaged over
#   trials and neurons, with the masking active. It scores squared errors rather than the Poisson
#   likelihood that the model is trained on and the tables report, looks at 50 neurons only, and in
#   the reference re-draws the masks at every validation, which makes it noisy. `mtm` keeps the
#   masks fixed for this criterion too, so only the score differs.
#
# Every validation computes both scores on the same predictions, and `log.csv` records both,
# whatever the run selects with. So the MtM run's log says which epoch either criterion would keep
# (a run with `selection="r2_top50"` trains exactly the same weights, since validation never touches
# the training random numbers, and keeps the epoch where the top-50-neuron $R^2$ curve peaks):

# %% mystnb={"figure": {"caption": "The two selection scores of the MtM run at every epoch: validation bits per spike (black, left axis) and the top-50-neuron single-trial $R^2$ (purple, right axis, with its zero line). The dashed black and dotted purple lines mark the epoch that each criterion keeps.", "name": "fig-04-selection-criteria"}}
mtm_log = histories["MtM"]
plot_selection_criteria(mtm_log)
plt.show()
print("epoch kept:", checkpoint.kept_epochs(mtm_log))
r2_top50 = checkpoint.log_column(mtm_log, "r2_top50")
print(f"top-50-neuron R^2: {r2_top50[0]:.3f} in the first epoch, "
      f"at best {np.nanmax(r2_top50):.3f}")

# %% [markdown]
# In {numref}`fig-04-selection-criteria`, the validation bits per spike are drawn in black and the
# top-50-neuron $R^2$ in purple. The $R^2$ jumps more from one epoch to the next: it looks at 50
# neurons and at squared errors of single trials. The first line under the figure gives the epoch
# each criterion keeps (`val_bps`, dashed line; `r2_top50`, dotted line). The $R^2$ of single
# trials is small, even negative, for a good model, because a trial's counts in 20 ms bins are
# mostly Poisson noise around the rate; the second line gives its first and its best value. On the
# command line the choice is `--selection r2_top50`.
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
#   best score, history and configuration), plain tensors and numbers read back with
#   `torch.load(..., weights_only=True)`.
# - `log.csv` and `config.json`; and a `tensorboard/` folder when TensorBoard is installed.
#
# Checkpoints and the log are written to a temporary name and then moved into place, so an
# interrupted write never leaves a broken checkpoint.

# %%
run = RUN_DIR / "mtm"
print(sorted(p.name for p in run.iterdir()))
description = checkpoint.read_description(best["MtM"])
print("sessions:", description["sessions"])
print("model:", {k: description["model"][k]
                 for k in ("arch", "hidden", "use_prompt")})
extra = description["extra"]
print("kept epoch:", extra["epoch"], "| masking:", extra["train"]["masking"])
print("last.pt holds:", sorted(checkpoint.load_state(run / "last.pt")))
# rebuilt from its description, in eval mode
model, _ = checkpoint.load_model(best["MtM"])
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
# To see it, a short run of `RUN.RESUME_EPOCHS` epochs, once uninterrupted and once stopped after epoch
# 1 by a callback (`callbacks` are called after every epoch with the epoch's log row; the exception
# stands in for pressing *stop*), then resumed. (When `RUN.RESUME_EPOCHS` equals `RUN.EPOCHS`, the MtM run of
# section 4 is that uninterrupted run.)

# %%
short = dataclasses.replace(configs["MtM"], epochs=RUN.RESUME_EPOCHS)
if short == configs["MtM"]:   # section 4's MtM run is this run, uninterrupted
    uninterrupted = RUN_DIR / "mtm"
else:
    uninterrupted = RUN_DIR / f"mtm-{RUN.RESUME_EPOCHS}-epochs"
    train_once([session], short, uninterrupted, progress=False)


def stop_after_epoch_1(trainer, epoch, row):
    if epoch == 1:
        raise KeyboardInterrupt


# a fresh folder every time
interrupted = Path(tempfile.mkdtemp(prefix="mtm_")) / "interrupted"
try:
    train([session], short, interrupted, callbacks=[stop_after_epoch_1],
          progress=False)
except KeyboardInterrupt:
    state = checkpoint.load_state(interrupted / "last.pt")
    print("stopped; last.pt holds epoch", state["epoch"])
train([session], short, interrupted, resume=True, progress=False)

full, _ = checkpoint.load_model(uninterrupted / "last.safetensors")
resumed, _ = checkpoint.load_model(interrupted / "last.safetensors")
pairs = zip(full.state_dict().values(), resumed.state_dict().values())
print("identical to the uninterrupted run:",
      all(torch.equal(x, y) for x, y in pairs))
print("epochs in its log:", [int(r["epoch"]) for r in read_log(interrupted)])

# %% [markdown]
# The weights agree exactly, not just approximately, and the log holds every epoch once. The
# package's test `tests/test_train.py::test_resume_reaches_the_same_weights` checks the same thing
# on every change. (On a GPU, some kernels are not bit-for-bit deterministic, so there the weights
# agree only up to floating-point noise.)
#
# ## 8. From a shell
#
# The same runs from the command line (sessions saved as `.npz`, {doc}`01_data`):
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
# session in a folder ({doc}`07_multisession`). `--preset small|paper` picks the settings, and `--epochs`,
# `--lr`, `--batch-size`, `--seed`, `--no-prompt` (MtM without prompt tokens), `--arch ndt2`
# override them; `mtm train --help` lists everything. A folder that already holds a run is refused
# unless `--resume` is given, so a typo never overwrites a finished run.
#
# ## 9. On a GPU
#
# - **Device.** `device="auto"` (the default) trains on the GPU when there is one. The sessions are
#   copied to the GPU once, as 8-bit counts, and nothing in a training step reads a value back to
#   the host: the loss is accumulated on the GPU and read once per epoch.
# - **Precision.** `precision="auto"` runs the model under bf16 autocast on a GPU with native
#   bfloat16 (compute capability 8.0 or newer) and under fp16 with a gradient scaler on older GPUs
#   such as Colab's T4 (`mtm.device.resolve_precision`); the loss is always computed in float32. `precision="fp32"` (`--precision fp32`) trains
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
# - `Trainer.train_epoch` runs one epoch: seeds from the run's seed and the epoch, shuffled batches
#   of one session each, one optimiser step and one schedule step per batch, one value read from
#   the device; `Trainer.run` then validates, keeps the best weights and checkpoints.
# - Training curves measure each run on its own masking; comparing models needs the fixed tasks of
#   {doc}`05_evaluation`.
# - The kept checkpoint is the one with the best validation bits per spike (default) or the
#   reference's top-50-neuron $R^2$ (`selection="r2_top50"`).
# - Checkpoints are safetensors (weights + configuration); `last.pt` with `resume=True` continues an
#   interrupted run to the same weights.
#
# ## Exercises
#
# **Exercise 1.** MtM without prompts (`dataclasses.replace(configs["MtM"], prompted=False)`): how
# many parameters does the model lose? If you trained it, would its validation curve be comparable
# with the prompted run's, unlike the baseline's?
#
# :::{admonition} Hint
# :class: dropdown
# `TrainConfig.__post_init__` sets `model.use_prompt` from `uses_prompts`, and `MaskedModel` builds
# `prompt_token` only when `use_prompt` is true. Look at the shape of `nets["MtM"].prompt_token.weight`
# in section 3. For the curves, ask whether the two runs are validated on the same masks.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The only parameters that depend on the prompts are the prompt table, `nn.Embedding(4, hidden)` in
# `mtm.models.transformer.MaskedModel`: one learned vector per MtM scheme, so the model without
# prompts loses $4 \times$ `hidden` parameters; the cell below counts them for this chapter's model
# (no training needed: the models are only built). Nothing else in NDT1 changes.
#
# The two validation curves *would* be comparable: both runs have `masking="mtm"`, and
# `Trainer.validate` draws the schemes and the masks from the same fixed seeds, so both models are
# scored on the same hidden entries; only the prompt differs. Training it costs as long as the MtM
# run of section 4 (`train_once([session], unprompted, RUN_DIR / "mtm-no-prompt")`), then
# `plot_loss_curves` draws both `val_bps` columns. In the paper's Table 1 the two are close
# (prompted MtM 0.98, 0.57, 0.43 and 0.84 bits per spike on co-smoothing, forward prediction, intra-
# and inter-region; without prompts 0.99, 0.54, 0.42 and 0.83). The model can often tell the scheme
# from the pattern of zeros in its input (whole bins, whole neurons, whole regions), and the causal
# scheme switches to causal attention with or without a prompt. The prompt helps most where zeros
# are ambiguous: a silent neuron looks the same as a hidden one. An MtM model without prompts runs
# forward prediction with bidirectional attention (`mtm.evaluate.attention_is_causal`), as the
# reference evaluated it.
# :::

# %% tags=["hide-input"]
unprompted = dataclasses.replace(configs["MtM"], prompted=False)
print("uses prompts:", unprompted.uses_prompts,
      "| model.use_prompt:", unprompted.model.use_prompt)
net = build_model(unprompted.model, [(session.eid, session.n_neurons)])
lost = n_parameters(nets["MtM"]) - n_parameters(net)
width = configs["MtM"].model.hidden
print(f"parameters lost: {lost} = {len(PROMPT_IDS)} prompts x width {width}")
assert lost == len(PROMPT_IDS) * configs["MtM"].model.hidden

# %% [markdown]
# **Exercise 2.** The baseline trained with `mask_ratio=0.6` hides 60 % of the bins instead of 30 %.
# Would its training loss per target go up or down, and why? Measure it without training a new
# model: score the trained baseline with `forward_loss` on the validation trials at both ratios.
#
# :::{admonition} Hint
# :class: dropdown
# The targets are still random time bins, so the two losses per target are averages over the same
# kind of entry. What changes is how much of the trial the model sees when it predicts one.
# `dataclasses.replace(configs["temporal"], mask_ratio=0.6)` gives `forward_loss` the other ratio.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# `mtm.masking.training_ratio("temporal", "temporal", 0.6)` is 0.6, so every batch hides 60 % of
# the bins. Each hidden bin is then predicted from fewer visible bins, and its neighbours are more
# often hidden too, so the model knows less about the trial's current state (the shared latent
# dynamics, each neuron's slow private fluctuation) and its predictions fall back towards the
# neurons' average time course. The batch has twice as many targets, which gives the gradient more
# terms, but each of them is harder. The cell scores the trained baseline (trained at 0.3) both ways
# on the same validation trials; a model trained at 0.6 would adapt to the sparser input, but it
# cannot see more. The cell prints both losses per target. (A model that has learned little, as
# under the smoke settings, barely uses its context, and the two can then come out either way.)
#
# Its `val_bps` would be lower for the same reason: `Trainer.validate` masks with the run's own
# ratio. Neither curve says which baseline is better on the tasks; for that, score both with
# `evaluate_model` ({doc}`05_evaluation`). The paper's Table 7 did this on one session: its baseline
# trained at 0.6 scored lower on co-smoothing than at 0.3 (0.92 against 1.21 bits per spike), the
# same on forward prediction and a little higher on the region tasks.
# :::

# %% tags=["hide-input"]
baseline_model, _ = checkpoint.load_model(best["temporal"])
val_spikes = torch.as_tensor(session.spikes[session.splits["val"]])
per_target = {}
with torch.no_grad():
    for ratio in (0.3, 0.6):
        cfg = dataclasses.replace(configs["temporal"], mask_ratio=ratio)
        loss, count, _, _ = forward_loss(
            baseline_model, val_spikes, session.regions, session.eid,
            "temporal", None, cfg, torch.Generator().manual_seed(0))
        per_target[ratio] = float(loss / count)
        print(f"ratio {ratio}: {int(count)} targets, "
              f"loss per target {per_target[ratio]:.4f} nats")
change = "higher" if per_target[0.6] > per_target[0.3] else "lower"
print(f"at 0.6 the loss per target is {change} than at 0.3")

# %% [markdown]
# **Exercise 3.** Halve the peak learning rate of the MtM run
# (`dataclasses.replace(configs["MtM"], lr=configs["MtM"].lr / 2)`). How does the learning-rate
# schedule change? Compute it without training, and say what you expect of the loss curves.
#
# :::{admonition} Hint
# :class: dropdown
# The schedule is PyTorch's `OneCycleLR` with the run's `warmup`, `div_factor` and
# `final_div_factor`, over `epochs x batches per epoch` steps; step it on an optimiser of a single
# dummy parameter and read `optimizer.param_groups[0]["lr"]`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The one-cycle schedule is proportional to its peak: it starts at `lr / div_factor` and ends at that
# divided by `final_div_factor`, over the same number of steps. So the two schedules are parallel
# curves, the new one a factor of 2 below at every step (on the log scale, a constant shift), as
# the cell computes. Every step is half as large. Expect the training loss to fall more slowly
# during the warm-up and the first epochs after it. Whether it ends lower or higher depends on
# whether the preset's peak was too large for this model or about right; only training it
# (`train_once`, as long as the run of section 4) tells. The kept epoch is the one with the highest
# `val_bps`; slower learning may move it later, because overfitting, if it comes, comes later.
# :::

# %% tags=["hide-input"]
def one_cycle(cfg: TrainConfig, steps: int) -> np.ndarray:
    """The learning rate of each of ``steps`` steps of ``cfg``'s schedule."""
    dummy = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.AdamW([dummy], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup,
        div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return np.array(rates)


half = dataclasses.replace(configs["MtM"], lr=configs["MtM"].lr / 2)
steps = 1000
ratio = one_cycle(configs["MtM"], steps) / one_cycle(half, steps)
print(f"peak lr {configs['MtM'].lr:g} against {half.lr:g}; "
      f"schedule ratio over {steps} steps: "
      f"min {ratio.min():.6f}, max {ratio.max():.6f}")

# %% [markdown]
# **Exercise 4.** In section 3, the inter-region scheme's number of targets depends on the region
# drawn. Draw it for ten seeds: how much does one batch's weight in the gradient vary?
#
# :::{admonition} Hint
# :class: dropdown
# `mask_batch(batch, "inter-region", session.regions, generator=torch.Generator().manual_seed(s))`
# hides every neuron of one region, in every trial and bin of the batch. Compare the counts with
# `session.region_counts()`.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The answer follows from `mask_batch`: the inter-region scheme draws one region uniformly
# (`torch.randint` over the regions, whatever their sizes) and its targets are all of that region's
# entries, $B \times T \times N_r = 16 \times 100 \times N_r$. Since the loss is a sum, a batch's
# weight in the gradient is proportional to the size of the region drawn. It varies by the ratio of
# the largest to the smallest region of the session, which the cell prints. Ten seeds need not draw
# all five regions; the region sizes give every possible value at once. For comparison, the expected
# targets of the other schemes are $0.3\,BTN$ (neuron), $0.6\,BTN$ (causal in MtM) and $0.3\,BTN_r$
# (intra-region, inside the drawn region).
# :::

# %% tags=["hide-input"]
for seed in range(10):
    draw = torch.Generator().manual_seed(seed)
    _, target = mask_batch(batch, "inter-region", session.regions,
                           generator=draw)
    region = session.regions[target[0, 0].numpy()][0]   # the region hidden
    print(seed, region, int(target.sum()))
possible = {r: batch.shape[0] * batch.shape[1] * n
            for r, n in session.region_counts().items()}
print("every possible count:", possible)
spread = max(possible.values()) / min(possible.values())
print(f"largest / smallest: {spread:.2f}")

# %% [markdown]
# **Exercise 5.** Resume the short run with `epochs=RUN.RESUME_EPOCHS + 1`. What does `train` say,
# and why is refusing the right behaviour?
#
# :::{admonition} Hint
# :class: dropdown
# Read `Trainer._resume` in `mtm/train.py` and `first_difference` in `mtm/checkpoint.py`. Then think
# about what `OneCycleLR` does with the total number of steps.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# `Trainer._resume` has the run folder compare the configuration saved in `last.pt` with the new one
# (`first_difference`, which ignores only `device`, `precision`, `compile`, `checkpoint_every` and
# `checkpoint_minutes`) and raises a `ValueError` before training anything; the cell prints its
# message. `mtm.book.train_once` says the same, since it passes `resume=True` whenever the folder
# holds a `last.pt`; without `resume=True`, `train` refuses the folder because it already holds a
# run.
#
# Refusing is right because the number of epochs is part of every step, not only of the end. The
# one-cycle schedule has `epochs x batches per epoch` steps, its warm-up is 15 % of them and its
# cosine decay spans the rest, so a run one epoch longer uses a different learning rate at every
# step from the first. The epochs already done are not the first epochs of the longer run.
# Continuing them would give weights that no uninterrupted run reaches, and the promise of section 7
# (a resumed run reaches the same weights) would silently break. To train longer, start a new run
# with more epochs in a new folder.
# :::

# %% tags=["hide-input"]
longer = dataclasses.replace(short, epochs=RUN.RESUME_EPOCHS + 1)
try:
    train([session], longer, interrupted, resume=True, progress=False)
except ValueError as err:
    # the temporary folder shown as ..., not as the machine's path
    print(str(err).replace(str(interrupted.parent), "..."))

# %% tags=["remove-input"]
print(RUN.done())

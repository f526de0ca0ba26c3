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
# # Your own data: from an array or an NWB file to a trained model
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mtm-book/mtm/blob/v0.1.0/book/colab/11_own_data.ipynb)
#
# **What you will learn**
#
# - how spike counts in a plain numpy array (trials x bins x neurons), a region label per neuron and
#   behaviour become a `Session`, and what the validating constructor refuses;
# - how a recording stored as NWB (a units table with spike times and electrode locations, a trials
#   table with an alignment event, behaviour as a time series) is read into the same `Session`, in
#   Python or with `mtm data nwb`;
# - how to train MtM on it, score every activity task against the linear baseline, and decode a
#   behaviour from the model's predicted rates;
# - the formats and limits: what `behavior` must hold for decoding, why MtM needs two regions, the
#   model's `max_bins`, the bin size and the train / validation / test split.
#
# This chapter is the path the other chapters take with synthetic sessions, walked once with the
# steps a recording of your own needs. A synthetic session stands in for your recording (the cell
# marked "replace" is where yours goes), so the chapter runs anywhere.
#
# *About 10 minutes to read; the closing line gives the wall time of this run.*

# %% tags=["remove-output"]
# Set-up: on Colab, install the package; elsewhere it is already installed.
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    PACKAGE = "mtm @ git+https://github.com/mtm-book/mtm@v0.1.0"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE],
                   check=True)

import datetime
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from mtm.baselines import LINEAR_ROW, reference_rows
from mtm.book import chapter_settings, train_once
from mtm.checkpoint import load_model, read_log
from mtm.data import Session, load_nwb_session, synthetic_session
from mtm.data.alf import spread_spikes
from mtm.decoding import decode_behavior
from mtm.evaluate import TASKS, evaluate_model, task_scores
from mtm.plots import plot_loss_curves, plot_raster, results_table, use_style
from mtm.train import TrainConfig, train

use_style()

# %% tags=["parameters"]
# SETTINGS: "smoke", "book" or "gpu"; "auto": smoke under MTM_SMOKE=1,
# else gpu or book. OVERRIDES: the settings' values to replace, e.g.
# {"EPOCHS": 50}; the values (N_TRIALS, N_NEURONS, EPOCHS, MODEL) are in
# mtm.book.CHAPTER_SETTINGS.
SETTINGS = "auto"
OVERRIDES = {}
SEED = 0  # which synthetic session stands in for your recording

# %%
RUN = chapter_settings("11_own_data", SETTINGS, **OVERRIDES)
WORK = Path(tempfile.mkdtemp(prefix="own_data_"))  # this chapter's files

# %% [markdown]
# ## 1. Spike counts in a numpy array
#
# A model of `mtm` needs three things of a recording: spike counts cut into trials aligned to one
# event and binned in time, an array of shape *(trials, bins, neurons)*; a brain region for every
# neuron; and, to decode behaviour, the behaviour of every trial. Where your arrays come from (a
# `.npy` file, a MATLAB file, your own binning of a spike sorter's output) does not matter. Here a
# synthetic session ([chapter 1](01_data.ipynb)) stands in for them: the cell takes its arrays out
# as plain numpy arrays, and your own loading code replaces it.

# %%
# Replace these lines with your recording's arrays.
recording = synthetic_session(SEED, RUN.N_TRIALS, RUN.N_NEURONS)
counts = np.array(recording.spikes)        # (trials, bins, neurons), counts
regions = recording.regions.tolist()       # one region label per neuron
choice = np.array(recording.behavior["choice"])       # (trials,), -1 or +1
whisker = np.array(recording.behavior["whisker_me"])  # (trials, bins)
print("counts", counts.shape, counts.dtype, "| regions", sorted(set(regions)))

# %% [markdown]
# `Session` takes them as they are. Only `eid` (any name), `spikes` and `regions` are required. The
# bin size (in seconds) and the alignment (the event, and the window around it in seconds) say how
# the counts were cut; `behavior` is a dict of arrays, one value per trial or one per trial and bin.

# %%
session = Session(
    eid="my-recording",
    spikes=counts,
    regions=regions,
    behavior={"choice": choice, "whisker_me": whisker},
    bin_size=0.02,
    align={"event": "stim_on", "window": (-0.5, 1.5)},
)
session

# %% [markdown]
# The constructor checks every field and refuses a malformed one with a `ValueError` that names the
# field and what it expected. The two a reader meets first: a region list that does not match the
# neurons (one label short, or labels of the channels rather than the units), and a choice coded
# 0 / 1, as many labs store it, where `mtm` wants -1 (left) and +1 (right):

# %%
try:
    Session(eid="my-recording", spikes=counts, regions=regions[:-1])
except ValueError as err:
    print("ValueError:", err)
try:
    Session(eid="my-recording", spikes=counts, regions=regions,
            behavior={"choice": (choice + 1) // 2})  # coded 0 / 1
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# Before training on a recording, look at it. One trial, with the behaviour trace under it:

# %% mystnb={"figure": {"caption": "Trial 0 of the session built from the arrays. Top: spike counts per 20 ms bin, darker for more spikes, neurons grouped by region label on the y axis; bottom: the whisker motion energy of the same trial. Time from the alignment event (dashed line) on the x axis.", "name": "fig-11-raster"}}
fig, axes = plt.subplots(2, 1, figsize=(7, 5), layout="constrained",
                         sharex=True, height_ratios=(3, 1))
plot_raster(session.spikes[0], session.regions, ax=axes[0],
            title=f"{session.eid}, trial 0", colorbar=None)
axes[0].set_xlabel("")
axes[1].plot(session.bin_times(), session.behavior["whisker_me"][0])
axes[1].axvline(0.0, color="grey", lw=0.8, ls="--")
axes[1].set_xlabel("time from the alignment event (s)")
axes[1].set_ylabel("whisker ME (a.u.)")
plt.show()

# %% [markdown]
# If you have spike times and event times rather than counts, `mtm.data.binning` cuts them as the
# package's loaders do (`trial_windows` for each trial's window, `bin_spikes` for the counts), or
# you write them into an NWB file and let the loader of the next section do it.
#
# ## 2. The same recording as an NWB file
#
# [NWB](https://www.nwb.org) (Neurodata Without Borders) is the format of most shared
# electrophysiology, on [DANDI](https://dandiarchive.org) for instance. A session needs three of
# its parts:
#
# - the **units** table: one row per sorted unit, its spike times in seconds, and its brain region,
#   in a `location` (or `brain_area`, `region`) column or as the `location` of its electrodes in the
#   **electrodes** table;
# - the **trials** table: one row per trial, with `start_time`, `stop_time` and a column holding the
#   time of the event each trial is aligned to (here `stim_on_time`), and per-trial variables such
#   as `choice`;
# - **time series** for continuous behaviour (wheel speed, a camera's motion energy), with their own
#   timestamps.
#
# We write such a file with [pynwb](https://pynwb.readthedocs.io) from the session above, so the
# chapter needs no download. The trials are laid end to end, one stimulus onset every 3 s, and every
# count becomes that many spike times spread evenly inside its bin (`spread_spikes`), so the file
# holds the same spikes in continuous time, as a spike sorter would give them:

# %%
stim_on = 2.0 + 3.0 * np.arange(session.n_trials)  # event times (s)
starts = stim_on + session.align["window"][0]       # window starts (s)
spike_times, spike_units = spread_spikes(counts, starts, session.bin_size)
print(f"{spike_times.size:,} spikes of {session.n_neurons} units "
      f"in {spike_times.max() / 60:.0f} min of recording")

# %% [markdown]
# The units and their regions: one electrode per unit, whose `location` is the unit's region (a real
# probe has many electrodes, and each unit points to the ones it was sorted from):

# %%
nwbfile = NWBFile(
    session_description="a synthetic session standing in for a recording",
    identifier="my-recording",
    session_start_time=datetime.datetime(2024, 1, 1,
                                         tzinfo=datetime.timezone.utc),
)
probe = nwbfile.create_device("probe00")
shank = nwbfile.create_electrode_group(
    "shank0", description="one shank", location="brain", device=probe)
for region in regions:
    nwbfile.add_electrode(location=region, group=shank)
for unit in range(session.n_neurons):
    nwbfile.add_unit(spike_times=spike_times[spike_units == unit],
                     electrodes=[unit])

# %% [markdown]
# The trials, with the alignment event and the choice, and the whisker motion energy as a time
# series (here one sample at the end of each bin; a camera's own timestamps work the same way):

# %%
nwbfile.add_trial_column("stim_on_time", "stimulus onset (s)")
nwbfile.add_trial_column("choice", "-1 left, +1 right")
for k in range(session.n_trials):
    nwbfile.add_trial(start_time=starts[k], stop_time=starts[k] + 2.5,
                      stim_on_time=stim_on[k], choice=int(choice[k]))
bin_ends = stim_on[:, None] + session.bin_times() + session.bin_size / 2
behaviour = nwbfile.create_processing_module("behavior", "behaviour")
behaviour.add(TimeSeries(name="whisker_me", data=whisker.ravel(),
                         unit="a.u.", timestamps=bin_ends.ravel()))
nwb_path = WORK / "my-recording.nwb"
with NWBHDF5IO(str(nwb_path), "w") as io:
    io.write(nwbfile)

# %% [markdown]
# `load_nwb_session` reads it back: `align` names the trials column of the alignment event, `window`
# and `bin_size` (the defaults: [-0.5, 1.5) s in 0.02 s bins) cut the spike trains, the regions come
# from the units table or its electrodes, `choice` is read when the trials table has it (coded -1 /
# +1), and `timeseries` maps a behaviour key to a time series' path in the file, sampled at the end
# of every bin. Its docstring lists the rest (`region_column`, `trial_columns`, `trial_filter`).

# %%
nwb_session = load_nwb_session(
    nwb_path, align="stim_on_time",
    timeseries={"whisker_me": "processing/behavior/whisker_me"})
print(nwb_session)
print("same counts as the array:",
      np.array_equal(nwb_session.spikes, session.spikes))
print("same regions, choices and whisker trace:",
      np.array_equal(nwb_session.regions, session.regions),
      np.array_equal(nwb_session.behavior["choice"], choice),
      np.allclose(nwb_session.behavior["whisker_me"], whisker))

# %% [markdown]
# From a shell, `mtm data nwb` does the same and saves the session as an `.npz` file that `mtm train`
# and `Session.load` read. It takes the alignment, window, bin size and region column, and reads
# `choice`; continuous behaviour needs the Python call above (`timeseries`).

# %%
command = [sys.executable, "-m", "mtm", "data", "nwb", nwb_path.name,
           "--align", "stim_on_time", "--out", "sessions"]
done = subprocess.run(command, cwd=WORK, check=True, capture_output=True,
                      text=True)
print("$ mtm data nwb my-recording.nwb --align stim_on_time --out sessions")
print(done.stdout)
from_cli = Session.load(WORK / "sessions" / "my-recording.npz")
print("same counts:", np.array_equal(from_cli.spikes, nwb_session.spikes),
      "| behaviour:", list(from_cli.behavior))

# %% [markdown]
# ## 3. Train MtM, evaluate every task, decode behaviour
#
# From here on the session from the NWB file is used as any other. We train prompted MtM
# ([chapter 4](04_training.ipynb)) with the `small` preset for `RUN.EPOCHS` epochs. The run folder
# keeps the best weights (by validation bits per spike) and a log of every epoch; `train_once` is
# `mtm.train.train` that reuses a finished run when the chapter runs again.

# %%
cfg = TrainConfig.preset("small", masking="mtm", epochs=RUN.EPOCHS,
                         model=RUN.MODEL)
run_dir = RUN.run_dir / "own-data-mtm"
best = train_once([nwb_session], cfg, run_dir)
model, _ = load_model(best)
log = read_log(run_dir)
print(f"{len(log)} epochs of {len(nwb_session.splits['train'])} training "
      f"trials; best validation bits per spike "
      f"{max(float(row['val_bps']) for row in log):.3f}")

# %% [markdown]
# On your own data, look at the curves first: a validation score still rising at the last epoch
# says the run stopped early, and more epochs (or more trials) will change every number below
# ([chapter 10](10_budget.ipynb) measures how much). The training loss is noisy because every batch
# hides its entries with another of MtM's schemes, some harder to predict than others.

# %% mystnb={"figure": {"caption": "Training of MtM on the session read from the NWB file: the training loss (the Poisson negative log-likelihood per hidden entry over the epoch's batches, each masked with one of MtM's schemes; left) and the validation bits per spike (right) after every epoch.", "name": "fig-11-training"}}
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), layout="constrained")
plot_loss_curves({"MtM": log}, key="train_loss", ax=axes[0])
plot_loss_curves({"MtM": log}, key="val_bps", ax=axes[1])
plt.show()

# %% [markdown]
# `evaluate_model` runs the four activity tasks on the test trials ([chapter 5](05_evaluation.ipynb)):
# co-smoothing, forward prediction, intra-region and inter-region, each in bits per spike, where 0 is
# the score of predicting each neuron's mean rate. `decode_behavior` decodes the choice (logistic
# regression, accuracy) from the model's predicted log-rates with the neuron prompt, and per-bin
# behaviour (ridge regression, $R^2$) with the causal prompt ([chapter 6](06_decoding.ipynb)). A
# recording has no ground truth, so the yardstick is the linear baseline: `reference_rows` scores a
# ridge regression from the spikes each task leaves visible to the hidden ones, and the same decoders
# on the raw spike counts.

# %%
BEHAVIOUR = ("choice", "whisker_me")
scores = {"MtM": task_scores(evaluate_model(model, nwb_session, "mtm"))}
scores["MtM"].update(decode_behavior(nwb_session, BEHAVIOUR, model=model,
                                     training_masking="mtm"))
scores.update(reference_rows(nwb_session, BEHAVIOUR))
display(Markdown(results_table(scores, [*TASKS, *BEHAVIOUR])))

# %% [markdown]
# ## 4. Formats and limits
#
# What a recording must look like, and where the package stops:
#
# - **Counts.** `spikes` is *(trials, bins, neurons)* of non-negative whole numbers; every trial has
#   the same bins, aligned to one event. Neurons can be any number: each session gets its own
#   input and output layer (the stitchers, [chapter 3](03_model.ipynb)), which is also why sessions
#   of different sizes can be trained together ([chapter 7](07_multisession.ipynb)).
# - **Regions.** One label per neuron, any strings (the acronyms of any atlas; `root` or `unknown`
#   for units outside every region, never an empty label). The region tasks and MtM's region masks
#   go by the labels: intra-region and inter-region masking hide one region, so **MtM needs at least
#   two regions** and training refuses one (below). A one-region recording trains with a single
#   scheme that does not need regions (`masking="temporal"`, `"neuron"` or `"causal"`) and is scored
#   on co-smoothing and forward prediction (`evaluate_model(..., tasks=("co-smooth",
#   "forward-pred"))`).
# - **Behaviour for decoding.** `behavior` is a dict of arrays. `choice` is one value per trial,
#   -1 or +1 (drop the trials without a response; the constructor refuses anything else), decoded by
#   a logistic regression. A continuous variable (`whisker_me`, `wheel_speed`, or any key of your
#   own, such as pupil size) is one value per trial and bin, *(trials, bins)*, with NaN where it is
#   missing (a trial with any NaN bin is left out of its decoding), decoded by a ridge regression.
#   Other per-trial variables (`block`, `reward` in {0, 1}, `contrast`) are stored and validated
#   but not decoded by `decode_behavior`.
# - **Bins and `max_bins`.** The model has one learned position embedding per bin, `max_bins` of
#   them: 100 by default, the paper's [-0.5, 1.5) s window in 0.02 s bins. A session with more bins
#   is refused (below); give the model more positions with `model={"max_bins": ...}` in
#   `TrainConfig.preset` (`--max-bins` on the command line). Each bin is a token, so attention's cost
#   grows with the square of the bins. A model predicts counts per bin of the size it was trained
#   on: its checkpoint records the bin size, and `mtm evaluate` refuses a session of another.
# - **Splits.** Without `splits`, the trials are split at random 70 / 10 / 20 % into train,
#   validation and test (seed 42, `mtm.data.split_trials`). Training learns from the train split,
#   keeps the best epoch by the validation split, and every score comes from the test split; the
#   decoders fit on train and validation together. Pass `splits=` (a dict of trial indices) to hold
#   out, say, the last trials of a recording that drifts (exercise 1).
#
# Both refusals, as a reader meets them: the session with all its neurons labelled with one region,
# and the NWB file read again with bins of 10 ms, 200 of them:

# %%
one_region = nwb_session.replace(regions=["CA1"] * nwb_session.n_neurons)
fine_bins = load_nwb_session(nwb_path, align="stim_on_time", bin_size=0.01)
for name, refused in (("one region", one_region), ("10 ms bins", fine_bins)):
    try:
        train([refused], cfg, WORK / name.replace(" ", "-"), progress=False)
    except ValueError as err:
        print(f"{name}: ValueError: {err}")

# %% [markdown]
# ## What this run shows
#
# The cell writes the chapter's result from the outputs above:

# %%
mtm_row, linear = scores["MtM"], scores[LINEAR_ROW]
above = [task for task in TASKS if mtm_row[task] > linear[task]]
same = np.array_equal(nwb_session.spikes, session.spikes)
display(Markdown("\n".join([
    f"- The NWB file read back into the array's exact counts: {same}.",
    f"- MtM, trained {RUN.EPOCHS} epochs on "
    f"{len(nwb_session.splits['train'])} trials of {nwb_session.n_neurons} "
    f"neurons (one seed), scores "
    + " / ".join(f"{mtm_row[t]:.2f}" for t in TASKS)
    + " bits per spike on co-smoothing / forward prediction / intra-region"
    " / inter-region; the linear baseline "
    + " / ".join(f"{linear[t]:.2f}" for t in TASKS)
    + f". MtM is above it on {len(above)} of the {len(TASKS)} tasks"
    + (f" ({', '.join(above)})." if above else "."),
    f"- Choice is decoded with accuracy {mtm_row['choice']:.2f} from MtM's "
    f"rates and {linear['choice']:.2f} from the raw spikes; the whisker "
    f"motion energy with R² {mtm_row['whisker_me']:.2f} and "
    f"{linear['whisker_me']:.2f}.",
    "- Every number depends on the session's size, the epochs and the "
    "training seed: one run cannot tell a difference from seed noise "
    "(chapter 5 repeats each model over three seeds).",
])))

# %% [markdown]
# ## Summary
#
# - A recording enters `mtm` as a `Session`: counts *(trials, bins, neurons)*, a region label per
#   neuron, optional behaviour, a bin size and an alignment. Build it from numpy arrays with the
#   constructor, which names every field it refuses, or read it from an NWB file with
#   `load_nwb_session` (`mtm data nwb` from a shell).
# - A session from a file is trained, evaluated and decoded with the same calls as the synthetic
#   sessions of the other chapters: `train`, `evaluate_model`, `decode_behavior`, and
#   `reference_rows` for the linear baseline, the yardstick a recording without ground truth has.
# - The limits: `choice` in {-1, +1} per trial and continuous behaviour per trial and bin; at least
#   two regions for MtM; at most `max_bins` bins (100 unless the model is given more); scores on the
#   test split of a random 70 / 10 / 20 % split unless you pass your own.
#
# ## Exercises
#
# **Exercise 1.** A recording drifts over a session, so a random split tests a model on trials
# interleaved with those it learnt from. Hold out the last fifth of the trials as the test split and
# compare the linear baseline's scores under the random and the blocked split.
#
# <details>
# <summary>Hint</summary>
#
# `nwb_session.replace(splits=...)` takes a dict with `train`, `val` and `test` arrays of trial
# indices; `reference_rows(session)` scores the linear baseline on the activity tasks.
#
# </details>
#
# <details>
# <summary>Solution</summary>
#
# The folded cell below makes the blocked split (the first 70 % of the trials to train, the next
# 10 % to validate, the last 20 % to test) and prints both rows. The synthetic session does not
# drift, so here the two rows differ by which trials are tested: consecutive trials share their block
# of the task (the prior of a left stimulus, which changes every few dozen trials), so the blocked
# test split holds one or a few blocks where the random one holds trials of every block. On a
# recording that drifts, the blocked split also scores what a model does on trials later than all it
# learnt from, which is what a model used later in the same recording, or on the next one, must do.
#
# </details>

# %% tags=["hide-input"]
n = nwb_session.n_trials
order = np.arange(n)
blocked = nwb_session.replace(splits={
    "train": order[: int(0.7 * n)],
    "val": order[int(0.7 * n): int(0.8 * n)],
    "test": order[int(0.8 * n):]})
rows = {"linear baseline, random split": scores[LINEAR_ROW],  # section 3
        "linear baseline, blocked split": reference_rows(blocked)[LINEAR_ROW]}
display(Markdown(results_table(rows, list(TASKS))))

# %% [markdown]
# **Exercise 2.** Your trials table codes the choice 0 (left) and 1 (right), with NaN for the trials
# without a response. Build a `Session` from `counts`, `regions` and such a column.
#
# <details>
# <summary>Hint</summary>
#
# The constructor wants -1 and +1 and no missing value; leave out the trials without a response from
# the counts and from every behaviour array alike.
#
# </details>
#
# <details>
# <summary>Solution</summary>
#
# Keep the answered trials (a boolean mask), index the counts and every behaviour array with it, and
# map 0 / 1 to -1 / +1 with `2 * choice - 1`. The folded cell makes such a column from `choice` (every
# tenth trial without a response) and builds the session. (`Session.select_trials` does the same on
# a session that already exists, splits included.)
#
# </details>

# %% tags=["hide-input"]
coded = np.where(choice > 0, 1.0, 0.0)  # 0 left, 1 right
coded[::10] = np.nan                    # no response
answered = ~np.isnan(coded)
answered_only = Session(
    eid="my-recording",
    spikes=counts[answered],
    regions=regions,
    behavior={"choice": 2 * coded[answered] - 1,
              "whisker_me": whisker[answered]},
)
print(answered_only)

# %% [markdown]
# **Exercise 3.** Read the NWB file with bins of 10 ms and of 50 ms. How many bins and spikes does
# each session hold, and what must change before MtM trains on the finer one?
#
# <details>
# <summary>Hint</summary>
#
# `load_nwb_session(nwb_path, align="stim_on_time", bin_size=...)`; the window stays 2 s long. Then
# compare the bins with the model's `max_bins`.
#
# </details>
#
# <details>
# <summary>Solution</summary>
#
# The window is 2 s long, so 10 ms bins give 200 bins and 50 ms bins give 40. The spikes are the
# same in every binning: each spike of the file lies inside one trial's window, and binning only
# decides which bin counts it. 200 bins are more than the 100 positions of the default model, so it
# needs `max_bins` of 200 (the folded cell builds such a configuration); 40 bins fit as they are.
# A model predicts counts per bin of the size it was trained on, so each binning trains its own.
#
# </details>

# %% tags=["hide-input"]
for bin_size in (0.01, 0.05):
    binned = load_nwb_session(nwb_path, align="stim_on_time",
                              bin_size=bin_size)
    print(f"{bin_size * 1000:.0f} ms bins: {binned.n_bins} bins, "
          f"{int(binned.spikes.sum()):,} spikes, "
          f"at most {int(binned.spikes.max())} in a bin")
print(f"20 ms bins: {nwb_session.n_bins} bins, "
      f"{int(nwb_session.spikes.sum()):,} spikes")
fine_cfg = TrainConfig.preset("small", masking="mtm",
                              model={**RUN.MODEL, "max_bins": 200})
print("a model for the 10 ms bins takes", fine_cfg.model.max_bins, "bins")

# %% tags=["remove-input"]
print(RUN.done())

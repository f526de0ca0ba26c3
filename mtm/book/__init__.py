"""What the book's chapters import: every chapter's three settings, its time budget on a GPU, training
that reuses finished runs, and the Colab set-up lines. (The tool that executes the chapters and checks
their stored outputs is :mod:`mtm.book.build`, run as ``python -m mtm.book``.)

**Settings.** Each chapter has three literal parameter sets (:data:`CHAPTER_SETTINGS`):

- ``smoke``: tiny sessions and a few epochs, seconds per chapter; what CI runs (``MTM_SMOKE=1``, which
  ``pytest --nbmake book/`` sets for the chapters unless ``MTM_SMOKE`` is set);
- ``book``: what the published book is executed with, on a 2-core CPU within 15 minutes per
  chapter, sized so that every result a chapter discusses can be read. Neurons are cheap for the
  small model and help it most, and longer training beats a bigger model: measured on one
  synthetic session, the small model trained for 500 epochs on 300 neurons and 400 trials is above
  the linear baseline on every activity task (278 s), while 150 epochs (about 100 s) or a 4 x 128
  model for 150 epochs (294 s) are not (co-smooth / forward / intra / inter bits per spike: 500
  epochs 0.43 / 0.08 / 0.44 / 0.29; 150 epochs 0.35 / 0.07 / 0.33 / 0.22; 4 x 128, 150 epochs
  0.36 / 0.12 / 0.34 / 0.22; the linear baseline 0.24 / -0.22 / 0.42 / 0.04). So ``book`` uses
  300-neuron sessions and long training of the ``small`` model;
- ``gpu``: for Colab and larger GPUs, a bigger session and model than ``book`` (never the paper's
  preset, which takes hours to days, see chapter 8), run to a time budget
  (:data:`GPU_BUDGET_MINUTES`, about 15 minutes per chapter on a T4): the settings' epochs are upper
  bounds, lowered to what a measured epoch allows (:func:`apply_budget`). No GPU has been measured
  yet, so how many epochs a T4 affords is not written anywhere; each run prints and records it.
  ``book`` and ``smoke`` keep their fixed epochs, so stored outputs stay deterministic.

A chapter's ``parameters`` cell holds literals only (``SETTINGS = "auto"`` and overrides that
default to None); the next cell calls :func:`chapter_settings`, which resolves ``auto`` (``smoke``
under ``MTM_SMOKE=1``, ``gpu`` with a CUDA GPU, ``book`` otherwise), applies the overrides (and, for
``gpu``, the time budget), and prints one line with the settings, the machine and, for a long
chapter, the wall time its stored execution with these settings took.

**Colab.** The repository URL is the book's ``repository.url`` (``_config.yml``) and the release
the chapters install is ``v<package version>``; :func:`colab_badge` and :func:`install_line` give
the lines every chapter carries, and a test checks that they agree. The badge (and the book's Colab
launch button) opens the chapter's reader copy in ``book/colab/`` (:mod:`mtm.book.reader`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mtm import __version__, smoke
from mtm.atomic import atomic_write
from mtm.data import synthetic_session
from mtm.data.session import SPLIT_FRACTIONS
from mtm.device import device_precision, pick_device
from mtm.plots import COLUMN_WORDS
from mtm.train import TrainConfig, finetune, train

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
SETTINGS = ("smoke", "book", "gpu")
#: The settings every stored output must have been executed with.
PUBLISHED_SETTINGS = "book"
#: The release the Colab set-up cells install and the badges open: a tag of the repository.
RELEASE = f"v{__version__}"
#: The folder of ``book/`` holding the chapters' reader copies (:mod:`mtm.book.reader`), which the badges open.
READER_FOLDER = "colab"
#: Notebook metadata key of the execution record.
METADATA_KEY = "mtm"
#: Environment variable naming the folder where chapters share trained runs (one sub-folder per settings).
RUNS_ENV = "MTM_BOOK_RUNS"
#: A chapter whose stored execution took longer than this many minutes says so before it runs.
ANNOUNCE_MINUTES = 3.0

#: The tiny model of smoke runs (the ``small`` preset otherwise).
SMOKE_MODEL = dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32)
#: A Colab GPU affords a wider and deeper model than the CPU's ``small`` one.
GPU_MODEL = dict(hidden=128, n_layers=4, n_heads=4, mlp=256, n_channels=128)

# One single-session pair of runs (temporal, MtM) shared by chapters 4, 5 and 6: the same session,
# model and training, so the book trains each model once.
_SINGLE = {
    "smoke": dict(PRESET="small", N_TRIALS=60, N_NEURONS=40, EPOCHS=3, MODEL=SMOKE_MODEL),
    # 1,600 trials for 100 epochs rather than 400 for 500 (a fifth fewer optimiser steps): at equal
    # steps, 125 epochs on 1,600 trials scored above 500 epochs on 400 on all four activity tasks
    # (0.50/0.27/0.48/0.39 against 0.43/0.21/0.42/0.29), so a session this size is short of data
    "book": dict(PRESET="small", N_TRIALS=1600, N_NEURONS=300, EPOCHS=100, MODEL={}),
    "gpu": dict(PRESET="small", N_TRIALS=600, N_NEURONS=500, EPOCHS=1000, MODEL=GPU_MODEL),
}

#: The training seeds of the shared single-session pair: chapter 4 trains them all, chapter 5 reports
#: every model over them (a mean with its 95 % interval), chapter 6 decodes seed 0's models.
SINGLE_SEEDS = (0, 1, 2)



def single_run_folder(masking: str, seed: int) -> str:
    """The run folder's name, inside the chapters' run folder, of the shared single-session run of
    ``masking`` trained with ``seed``: ``"mtm"`` for seed 0, ``"mtm-seed1"`` for seed 1."""
    return masking if seed == 0 else f"{masking}-seed{seed}"


#: Every chapter's parameters under each settings, literal values only.
CHAPTER_SETTINGS: dict[str, dict[str, dict]] = {
    "01_data": {
        "smoke": dict(N_TRIALS=120, N_NEURONS=60, SWEEP_TRIALS=120, SWEEP_NEURONS=60, SWEEP_POINTS=2),
        # the sweep scores the Bayes reference of 10 sessions (mtm.bayes, one BLAS thread): about 37 s a session
        # of 300 trials x 200 neurons measured here, so 200 x 150 (a 40-trial test split), about 20 s each:
        # ~3.5 min for the sweep and ~4 min for the chapter (0.5 min before the Bayes reference) on 2 cores
        "book": dict(N_TRIALS=400, N_NEURONS=300, SWEEP_TRIALS=200, SWEEP_NEURONS=150, SWEEP_POINTS=None),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, SWEEP_TRIALS=200, SWEEP_NEURONS=150, SWEEP_POINTS=None),
    },
    "02_masking": {
        "smoke": dict(N_TRIALS=60, N_NEURONS=50, PATCH_SIZE=16, N_MASKS=30, N_DRAWS=4000),
        "book": dict(N_TRIALS=400, N_NEURONS=300, PATCH_SIZE=128, N_MASKS=200, N_DRAWS=4000),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, PATCH_SIZE=128, N_MASKS=200, N_DRAWS=4000),
    },
    "03_model": {
        "smoke": dict(N_TRIALS=60, N_NEURONS=50, MODEL_SIZE="small", NDT2_PATCH=24),
        "book": dict(N_TRIALS=400, N_NEURONS=300, MODEL_SIZE="paper", NDT2_PATCH=128),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, MODEL_SIZE="paper", NDT2_PATCH=128),
    },
    # 04 book: the pair for every seed of SINGLE_SEEDS, 6 runs of 100 epochs on 1,120 training trials (7,000
    # steps each). One after the other on two threads the chapter took 19.3 min (2026-12-07); now two at a time
    # in worker processes of one thread each (train_all: 1.27 times as fast for two 700-step runs on this CPU)
    "04_training": {name: {**values, "RESUME_EPOCHS": 3} for name, values in _SINGLE.items()},
    # chapter 5 reuses chapter 4's six runs (it trains them, one after the other, when executed alone) and
    # evaluates them on the 320-trial test split, with the Bayes reference, baselines and oracle: 10.4 min
    # (2026-12-07) after chapter 4
    "05_evaluation": {name: dict(values) for name, values in _SINGLE.items()},
    # 06 book, about 2 min: it decodes the session's first 400 trials (its DECODE_TRIALS, as the stored run
    # of 48 s, whose 18 decoder fits are now about 50 with the executed solutions); the runs are chapter 4's
    "06_decoding": {name: dict(values) for name, values in _SINGLE.items()},
    "07_multisession": {
        # mtm.reproduce.transfer's plan: pretraining sets of N_PRETRAIN sessions of N_TRIALS trials (the largest is
        # the pool), each pretrained once per seed for at most PRETRAIN_EPOCHS epochs over the largest set, stopped on
        # a plateau; N_TEST held-out sessions cut to TRAIN_TRIALS training trials, each fine-tuned (every protocol of
        # PROTOCOLS at the size nearest 100, the first elsewhere) and trained from scratch for HELDOUT_STEPS steps,
        # and from scratch at equal total compute; every model once per seed (N_SEEDS)
        "smoke": dict(N_PRETRAIN=[1, 2], N_TEST=1, N_TRIALS=60, N_NEURONS=30, TRAIN_TRIALS=[10, 20],
                      PRETRAIN_EPOCHS=2, HELDOUT_STEPS=6, PROTOCOLS=["full", "frozen-core", "staged"], N_SEEDS=2,
                      MODEL=SMOKE_MODEL, WORKERS=1),
        # per seed and masking: pretraining on 1 and on 4 sessions, 28 epochs over the 4 (4 x 18 batches of 16:
        # 2,016 steps each); on the held-out session 2 sizes x (from scratch + 2 fine-tunings) of 300 steps, and
        # 2,016 + 300 steps from scratch at equal compute. With 12 epochs (864 steps) the chapter took 12.3 min and
        # its 4-session models had barely left their early plateau (pretraining on 4 sessions passes 0.05
        # validation bits per spike after about 1,000 steps, mtm.reproduce.transfer's notes), and MtM gained from
        # pretraining on forward prediction only. With 32 epochs (2,304 steps) it took 20.4 min, over the budget
        # (pretraining 586 s, the 36 runs on the held-out session 333 s, equal compute 255 s, references 36 s), and
        # fine-tuned MtM was above MtM from scratch at 100 trials on all four activity tasks from 1 session and on
        # three from 4 (benchmarks/RESULTS.md). 28 epochs: about 18.5 min. The chapter cites the other protocols
        # from the transfer study of benchmarks/RESULTS.md
        "book": dict(N_PRETRAIN=[1, 4], N_TEST=1, N_TRIALS=400, N_NEURONS=100, TRAIN_TRIALS=[25, 100],
                     PRETRAIN_EPOCHS=28, HELDOUT_STEPS=300, PROTOCOLS=["full"], N_SEEDS=3, MODEL={}, WORKERS=2),
        "gpu": dict(N_PRETRAIN=[1, 4, 16], N_TEST=1, N_TRIALS=400, N_NEURONS=300, TRAIN_TRIALS=[25, 50, 100, 250],
                    PRETRAIN_EPOCHS=40, HELDOUT_STEPS=500, PROTOCOLS=["full", "frozen-core", "staged"], N_SEEDS=3,
                    MODEL=GPU_MODEL, WORKERS=1),
    },
    "08_reproduction": {
        "smoke": dict(PRESET="small", N_PRETRAIN=1, N_TEST=1, N_TRIALS=40, N_NEURONS=30, EPOCHS=2,
                      PRETRAIN_EPOCHS=2, FINETUNE_EPOCHS=2, MODEL=SMOKE_MODEL, WORKERS=1),
        # 3 seeds within 12 minutes on a 2-core CPU. Estimated from the stored one-seed run (3 + 2 sessions of
        # 300 trials x 200 neurons, 2 workers: 491 s of training, about 0.55 s per session-epoch a worker)
        # and from the reference rows of a held-out session of this size (Bayes reference included: 240 s
        # timed on the shared, loaded machine, so about 100 s alone; chapter 1 measured 37 s for its Bayes
        # reference at this size). Per seed and masking: pretraining 2 x 40 session-epochs, a
        # from-scratch run of as many steps plus fine-tuning (80 + 50), fine-tuning 50: 260 session-epochs,
        # 1,560 for 3 seeds and 2 maskings, about 430 s with 2 workers; with the Bayes reference, evaluation
        # and section 7's 50-epoch fine-tuning of the reference checkpoint, about 11 minutes.
        # Doubled (from 40 pretraining and 50 fine-tuning epochs, 7.0 min) after the budget study (chapter 10;
        # and a larger run of it, centre 1,000 steps on 400 trials x 200 neurons, 3 seeds, 28 min): at equal data
        # MtM and temporal masking could not be told apart at 1,000 steps, and MtM was above temporal on all four
        # activity tasks at 4,000 steps (+0.11 / +0.13 / +0.09 / +0.29 bits per spike, every interval above zero),
        # while more trials beyond 400 and short pretraining did not help. So the from-scratch runs took 3,640
        # steps here (1,820 before), the fine-tuned ones 1,400 after 2,240 of pretraining: about 14 minutes.
        # Since the from-scratch runs are trained as the paper trains them (as many steps on the held-out session
        # as fine-tuning, 1,400; Plan.scratch_steps), 13,440 fewer steps: executed in 12.8 minutes (15.5 before).
        "book": dict(PRESET="small", N_PRETRAIN=2, N_TEST=1, N_TRIALS=300, N_NEURONS=200, EPOCHS=100,
                     PRETRAIN_EPOCHS=80, FINETUNE_EPOCHS=100, MODEL={}, WORKERS=2),
        "gpu": dict(PRESET="small", N_PRETRAIN=4, N_TEST=2, N_TRIALS=400, N_NEURONS=300, EPOCHS=200,
                    PRETRAIN_EPOCHS=200, FINETUNE_EPOCHS=150, MODEL=GPU_MODEL, WORKERS=1),
    },
    "09_experiments": {
        "smoke": dict(N_TEST=1, N_TRIALS=40, N_NEURONS=30, ABLATION_EPOCHS=2, NDT2_EPOCHS=2, NDT2_PRETRAIN=1,
                      NDT2_PATCH=16, MODEL=SMOKE_MODEL, WORKERS=1, SEEDS=2),
        # 3 training seeds of every model on one held-out session of 300 trials x 100 neurons, NDT2 with
        # 64-neuron patches (2 tokens per bin), single-session only (pretraining: chapter 7). Estimate for the
        # 2-core CPU from the stored one-seed execution at 200 neurons (7 ablation runs of 150 epochs in 391 s,
        # 4 runs of 100 epochs in 258 s, two at a time): a pair of runs costs about 45 s of scoring (co-smoothing
        # and intra-region: one pass per neuron, so proportional to neurons x test trials; measured 110-180 s
        # for one run on the loaded machine) plus 0.38 s an NDT1 epoch, 1.23 s an NDT2 epoch. At 100 neurons:
        # 21 ablation runs in 10.5 pairs x (22 + 0.38 x 40) s = 390 s; 3 NDT2 pairs x (22 + 1.23 x 25) s and
        # 3 NDT1 pairs x (20 + 0.38 x 25) s = 245 s; the Bayes reference twice and start-up, 50 s: about
        # 11.5 min of the 12-minute target. 200 neurons would spend the whole target on scoring alone.
        # ABLATION_EPOCHS 120 (1,680 steps; 40 before, 8.0 min for the chapter) after the budget study (chapter 10;
        # see chapter 8's settings): at 500-1,000 steps MtM and temporal masking were not told apart, and MtM's
        # lead grew with steps. 80 more epochs of 21 runs, about 0.38 s each two at a time: about 13 minutes.
        "book": dict(N_TEST=1, N_TRIALS=300, N_NEURONS=100, ABLATION_EPOCHS=120, NDT2_EPOCHS=25, NDT2_PRETRAIN=0,
                     NDT2_PATCH=64, MODEL={}, WORKERS=2, SEEDS=3),
        "gpu": dict(N_TEST=2, N_TRIALS=400, N_NEURONS=300, ABLATION_EPOCHS=200, NDT2_EPOCHS=100, NDT2_PRETRAIN=2,
                    NDT2_PATCH=128, MODEL={}, WORKERS=1, SEEDS=3),
    },
    "10_budget": {
        # mtm.reproduce.budget's study: FACTORS its levels and centre (literal values), N_TEST held-out sessions
        # of N_NEURONS neurons (their trials follow from the factors), every point trained once per seed
        "smoke": dict(FACTORS={"trials": (30, 60), "sessions": (0, 1), "steps": (6, 12), "width": (16, 32),
                               "centre": {"trials": 60, "steps": 12, "width": 32}},
                      N_TEST=1, N_NEURONS=30, SEEDS=2, MODEL=SMOKE_MODEL, WORKERS=1),
        # mtm reproduce --experiment budget --preset book's factors: 72 runs (60 scored) on held-out sessions of
        # 100 neurons, as chapter 9's, 11.5 min on the 2-core CPU (mtm.reproduce.budget.PRESETS); at 200 neurons
        # the chapter took 20.7 min on 2026-12-07, over its 20-minute budget (scoring doubles with the neurons).
        # The centre's 500 steps on 280 training trials sit near where chapters 7-9 train
        "book": dict(FACTORS={"trials": (100, 400, 1600, 3200), "sessions": (0, 1, 4), "steps": (125, 500, 2000),
                              "width": (32, 64, 128), "centre": {"trials": 400, "steps": 500, "width": 64}},
                     N_TEST=1, N_NEURONS=100, SEEDS=3, MODEL={}, WORKERS=2),
        # the book's study on one GPU, one run at a time (not measured on a GPU: chapter 10 has no time budget)
        "gpu": dict(FACTORS={"trials": (100, 400, 1600, 3200), "sessions": (0, 1, 4), "steps": (125, 500, 2000),
                             "width": (32, 64, 128), "centre": {"trials": 400, "steps": 500, "width": 64}},
                    N_TEST=1, N_NEURONS=200, SEEDS=3, MODEL={}, WORKERS=1),
    },
    # one recording (a synthetic session standing in for it) as an array and as an NWB file, one MtM run on it,
    # every activity task and two behaviours decoded. Measured at 400 trials x 150 neurons on the 2-core CPU
    # while other jobs loaded it (load average 5-6): 100 epochs took 1,078 s (10.8 s an epoch; 1.2-1.5 s with
    # torch on one thread at a similar load), the four tasks 51 s, decoding from the model 23 s, the linear
    # baseline's rows 34 s; the validation score rose little after epoch 80 (0.256 to 0.258). So 60 epochs, and
    # the chapter's time depends on the machine's load more than on anything it runs
    "11_own_data": {
        "smoke": dict(N_TRIALS=60, N_NEURONS=30, EPOCHS=2, MODEL=SMOKE_MODEL),
        "book": dict(N_TRIALS=400, N_NEURONS=150, EPOCHS=60, MODEL={}),
        "gpu": dict(N_TRIALS=800, N_NEURONS=300, EPOCHS=1000, MODEL=GPU_MODEL),
    },
}

# ---------------------------------------------------------------------------------- time budgets
#: Minutes a chapter may take with the ``gpu`` settings, evaluation and figures included (chapters that
#: train nothing have none): about 15 minutes on a free Colab GPU (a T4) is the target. The ``gpu``
#: settings' epochs are upper bounds: :func:`chapter_settings` measures an epoch with a short probe and
#: lowers every epoch count of the chapter to what fits (:func:`fit_epochs`), so a chapter finishes in
#: its budget on any GPU, and sooner on a fast one.
GPU_BUDGET_MINUTES = {"04_training": 15.0, "05_evaluation": 15.0, "06_decoding": 15.0,
                      "07_multisession": 15.0, "08_reproduction": 15.0, "09_experiments": 15.0,
                      "11_own_data": 10.0}
#: Environment variable that replaces every chapter's budget (minutes), e.g. for a short Colab session or a test.
BUDGET_ENV = "MTM_TIME_BUDGET_MINUTES"
#: The share of a budget given to training; the rest is left for evaluation, decoding and figures.
TRAINING_SHARE = 0.75
#: The probe trains for this share of the budget: the seconds per epoch are the mean between the ends
#: of its epochs (the first epoch's start-up costs, building the model and CUDA kernels, left out; a
#: longer probe averages over a busy machine's noise), or, when its first epoch alone takes the whole
#: probe's time, that epoch's time from the start (an overestimate, so the chapter stays in its budget).
PROBE_SHARE = 0.04
#: The parameters that are epoch counts a budget may lower.
BUDGETED_EPOCHS = ("EPOCHS", "PRETRAIN_EPOCHS", "FINETUNE_EPOCHS", "ABLATION_EPOCHS", "NDT2_EPOCHS")
#: The file in the settings' run folder where each budget decision is kept, so that a chapter run again,
#: or a later chapter that shares the runs (4, 5 and 6), trains with the same epochs and reuses the runs.
BUDGET_FILE = "budget.json"


def _training_runs(chapter: str, values: dict) -> list[tuple[str, float]]:
    """Every training run a chapter makes: (the parameter holding its epochs, the cost of one of its
    epochs in epochs of one of the chapter's sessions with the chapter's model)."""
    if chapter in ("04_training", "05_evaluation", "06_decoding"):
        # the shared pair (temporal, MtM) for each of the SINGLE_SEEDS, which chapter 4 trains and chapter 5
        # reuses (or trains, when it runs first; one budget decision serves the three chapters); chapter 4
        # also makes two short runs that show resuming
        runs = [("EPOCHS", 1.0)] * (2 * len(SINGLE_SEEDS))
        return runs + ([("RESUME_EPOCHS", 1.0)] * 2 if chapter == "04_training" else [])
    if chapter == "07_multisession":
        # mtm.reproduce.transfer: every pretraining run at most PRETRAIN_EPOCHS epochs over the largest set; per seed,
        # masking and held-out session, runs of HELDOUT_STEPS steps (from scratch and fine-tuned at every size, the
        # other protocols at one) and one from scratch at equal total compute, whose steps are counted here in
        # epochs of a pool session (the held-out steps, a fixed cost, in that session's batches)
        largest, sets = max(values["N_PRETRAIN"]), len(values["N_PRETRAIN"])
        per_epoch = math.ceil(SPLIT_FRACTIONS[0] * values["N_TRIALS"] / TrainConfig.preset("small").batch_size)
        models, heldout = 2 * values["N_SEEDS"], 2 * values["N_SEEDS"] * values["N_TEST"]
        # from scratch and every set at every size, plus the other protocols and the equal-compute run at one
        runs_per_session = len(values["TRAIN_TRIALS"]) * (1 + sets) + len(values["PROTOCOLS"])
        return ([("PRETRAIN_EPOCHS", float(largest))] * (models * sets + heldout)
                + [("HELDOUT_STEPS", 1.0 / per_epoch)] * (heldout * runs_per_session))
    if chapter == "08_reproduction":
        # with pretraining sessions the from-scratch runs take fine-tuning's epochs (Plan.scratch_steps "heldout")
        n_pretrain, n_test = values["N_PRETRAIN"], values["N_TEST"]
        if not n_pretrain:
            return [("EPOCHS", 1.0)] * (2 * n_test)
        return [("PRETRAIN_EPOCHS", float(n_pretrain))] * 2 + [("FINETUNE_EPOCHS", 1.0)] * (4 * n_test)
    if chapter == "09_experiments":
        # an NDT2 epoch costs about p (1 + p / 10) NDT1 epochs for p patch tokens per bin (measured on 200
        # neurons, two runs side by side: 2 to 2.4, 4.7 and 13 times for 2, 4 and 7 patches)
        n_test, n_pretrain = values["N_TEST"], values["NDT2_PRETRAIN"]
        patches = -(-values["N_NEURONS"] // values["NDT2_PATCH"])
        costs = [patches * (1 + patches / 10)] * 2 + [1.0] * 2  # NDT2's two maskings, then NDT1's
        runs = [("ABLATION_EPOCHS", 1.0)] * (7 * n_test) + [("NDT2_EPOCHS", c) for c in costs] * n_test
        if n_pretrain:
            runs += [("NDT2_EPOCHS", c * n_pretrain) for c in costs] + [("NDT2_EPOCHS", c) for c in costs] * n_test
        return runs * values["SEEDS"]  # every model once per training seed
    if chapter == "11_own_data":
        return [("EPOCHS", 1.0)]  # one MtM run on the reader's session
    return []


def training_budgets(batch_size: int, settings: str = PUBLISHED_SETTINGS) -> dict[str, dict[str, int]]:
    """Where the book's chapters train on the budget study's axes (chapter 10): for each kind of run of
    chapters 4-9 under ``settings``, {"training trials" (of one session: 70 % of ``N_TRIALS``), "steps" (on
    that session: epochs x batches of ``batch_size`` trials per epoch), "pretraining steps" (before them,
    counted in the same session's batches), "width" (the model's hidden units), "neurons"}. A
    from-scratch run of chapter 8 takes as many steps as fine-tuning on its held-out session; chapter 7's
    runs on its held-out session (its largest training-trial count, ``TRAIN_TRIALS``) take ``HELDOUT_STEPS``
    steps from scratch and fine-tuned alike, after pretraining counted in the pool sessions' batches."""
    values = {chapter: CHAPTER_SETTINGS[chapter][settings] for chapter in
              ("05_evaluation", "07_multisession", "08_reproduction", "09_experiments")}
    c7, c8 = values["07_multisession"], values["08_reproduction"]
    pre8 = c8["PRETRAIN_EPOCHS"] * c8["N_PRETRAIN"]
    # (chapter, training trials, steps, pretraining steps), steps counted in batches of that chapter's session
    def session_run(chapter: str, epochs: int, pre_epochs: int) -> tuple:
        trials = int(SPLIT_FRACTIONS[0] * values[chapter]["N_TRIALS"])
        per_epoch = math.ceil(trials / batch_size)
        return chapter, trials, epochs * per_epoch, pre_epochs * per_epoch

    # chapter 7 (the transfer design): HELDOUT_STEPS on its held-out session's largest training set, after
    # pretraining counted in the pool sessions' batches
    pool_epoch = math.ceil(SPLIT_FRACTIONS[0] * c7["N_TRIALS"] / batch_size)
    pre7 = c7["PRETRAIN_EPOCHS"] * max(c7["N_PRETRAIN"]) * pool_epoch
    heldout7 = ("07_multisession", max(c7["TRAIN_TRIALS"]), c7["HELDOUT_STEPS"])
    runs = {"chapters 4-6, from scratch": session_run("05_evaluation", values["05_evaluation"]["EPOCHS"], 0),
            "chapter 7, from scratch": (*heldout7, 0),
            "chapter 7, fine-tuned": (*heldout7, pre7),
            "chapter 8, from scratch": session_run("08_reproduction", c8["FINETUNE_EPOCHS"], 0),
            "chapter 8, fine-tuned": session_run("08_reproduction", c8["FINETUNE_EPOCHS"], pre8),
            "chapter 9, ablation": session_run("09_experiments", values["09_experiments"]["ABLATION_EPOCHS"], 0)}
    rows = {}
    for what, (chapter, trials, steps, pre_steps) in runs.items():
        model = TrainConfig.preset("small", model=values[chapter]["MODEL"]).model
        rows[what] = {"training trials": trials, "steps": steps, "pretraining steps": pre_steps,
                      "width": model.hidden, "neurons": values[chapter]["N_NEURONS"]}
    return rows


def budget_minutes(chapter: str) -> float | None:
    """A chapter's ``gpu`` time budget in minutes: ``$MTM_TIME_BUDGET_MINUTES`` when set, else
    :data:`GPU_BUDGET_MINUTES` (None for a chapter that trains nothing)."""
    if chapter not in GPU_BUDGET_MINUTES:
        return None
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return GPU_BUDGET_MINUTES[chapter]
    try:
        minutes = float(text)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0:
        raise ValueError(f"{BUDGET_ENV}: expected a positive number of minutes, got {text!r}")
    return minutes


def fit_epochs(chapter: str, values: dict, seconds_per_epoch: float, minutes: float) -> dict:
    """The epoch counts (:data:`BUDGETED_EPOCHS`) that fit a chapter's training into
    ``TRAINING_SHARE * minutes`` given the measured ``seconds_per_epoch`` (s, one epoch of one of the
    chapter's sessions): every count is scaled by one factor (at most 1, so never more than the
    settings give), at least 1 epoch each. Runs of other epoch counts (chapter 4's short resume runs)
    are fixed costs taken from the budget first.

    >>> fit_epochs("05_evaluation", {"EPOCHS": 1000}, seconds_per_epoch=0.9, minutes=10)
    {'EPOCHS': 83}
    """
    scaled = fixed = 0.0
    for key, cost in _training_runs(chapter, values):
        epochs = values.get(key) or 0
        if key in BUDGETED_EPOCHS:
            scaled += epochs * cost
        else:
            fixed += epochs * cost
    available = TRAINING_SHARE * minutes * 60 / seconds_per_epoch - fixed
    factor = min(1.0, max(available, 0.0) / scaled) if scaled else 1.0
    return {key: max(1, int(values[key] * factor)) for key in BUDGETED_EPOCHS if values.get(key)}


class _ProbeDone(Exception):
    """Raised by the probe's callback to end its run once it has measured enough."""


def probe_seconds_per_epoch(values: dict, seconds: float) -> float:
    """Seconds per epoch of the chapter's model (``PRESET``, ``MODEL``) on one synthetic session of the
    chapter's size (``N_TRIALS``, ``N_NEURONS``), measured by an MtM run in a temporary folder on the
    device the chapter trains on (validation and checkpoints included, as in the chapter's runs) and
    stopped after about ``seconds`` (s); see :data:`PROBE_SHARE`."""
    session = synthetic_session(0, values["N_TRIALS"], values["N_NEURONS"])
    cfg = TrainConfig.preset(values.get("PRESET") or "small", masking="mtm", model=values.get("MODEL") or {},
                             epochs=10**6)
    started, ends = time.perf_counter(), []

    def measure(trainer, epoch, row):
        ends.append(time.perf_counter())
        if ends[-1] - (ends[0] if len(ends) > 1 else started) >= seconds:
            raise _ProbeDone

    with tempfile.TemporaryDirectory(prefix="mtm_probe_") as folder:
        try:
            train([session], cfg, Path(folder) / "probe", progress=False, callbacks=[measure])
        except _ProbeDone:
            pass
    return (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else ends[0] - started


def _budget_key(chapter: str, values: dict, minutes: float) -> str:
    """What a budget decision depends on: the settings' values that size the training, the budget and
    the GPU. Chapters 4, 5 and 6 share one (their values are the same but for chapter 4's resume runs)."""
    sizing = {k: v for k, v in sorted(values.items()) if k not in ("RESUME_EPOCHS", "WORKERS")}
    group = "single-session pair" if chapter in ("04_training", "05_evaluation", "06_decoding") else chapter
    identity = [group, sizing, minutes, machine()["gpu"]]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def apply_budget(chapter: str, values: dict, run_dir: Path) -> tuple[str, str]:
    """Lower ``values``' epoch counts (in place) to fit the chapter's ``gpu`` budget; returns the line
    that says so and the decision's key. The decision is kept in ``run_dir/budget.json`` under its key;
    a chapter whose decision is there (the same sizes, budget and GPU) takes it without probing again,
    and trains in the same sub-folder (:attr:`ChapterSettings.run_dir`), so its runs are reused."""
    minutes = budget_minutes(chapter)
    path = Path(run_dir) / BUDGET_FILE
    decisions = json.loads(path.read_text()) if path.exists() else {}
    key = _budget_key(chapter, values, minutes)
    decision = decisions.get(key)
    if decision is None:
        probe_started = time.perf_counter()
        seconds = round(probe_seconds_per_epoch(values, PROBE_SHARE * minutes * 60), 4)  # as recorded
        probe = time.perf_counter() - probe_started
        decision = {"chapter": chapter, "budget_minutes": minutes, "training_share": TRAINING_SHARE,
                    "seconds_per_epoch": seconds, "machine": describe_machine(machine()),
                    "settings_epochs": {k: values[k] for k in BUDGETED_EPOCHS if values.get(k)},
                    "epochs": fit_epochs(chapter, values, seconds, minutes),
                    "decided_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        decisions[key] = decision
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(decisions, indent=1)))
        how = f"an epoch took {decision['seconds_per_epoch']:.2f} s (measured by a {probe:.0f} s probe)"
    else:
        how = (f"an epoch took {decision['seconds_per_epoch']:.2f} s on {decision['machine']} "
               f"(decided by {decision['chapter']}, kept in {path})")
    values.update(decision["epochs"])
    chosen = ", ".join(f"{k} {n}" + ("" if n == decision["settings_epochs"][k] else
                                     f" (settings: {decision['settings_epochs'][k]})")
                       for k, n in decision["epochs"].items())
    fits = all(n == decision["settings_epochs"][k] for k, n in decision["epochs"].items())
    return (f"Time budget {minutes:g} min ({TRAINING_SHARE:.0%} for training): {how}, so {chosen}"
            + (" (the settings' epochs fit)" if fits else "") + "."), key


def _is_injected(cell: dict) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def code_hash(notebook: dict) -> str:
    """SHA-256 of a notebook's code cells (their sources, in order; papermill's injected cell excluded)."""
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and not _is_injected(cell):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            digest.update(source.strip().encode() + b"\0")
    return digest.hexdigest()


def recorded_minutes(chapter: str, settings: str) -> tuple[float, str] | None:
    """The wall time (minutes) and machine of the chapter's stored execution with ``settings``, from the
    notebook's execution record beside the package (a clone of the repository); None without one, and
    None when the chapter's code changed since (the record then times other code, often other settings)."""
    notebook = BOOK / f"{chapter}.ipynb"
    try:
        stored = json.loads(notebook.read_text())
        record = stored["metadata"][METADATA_KEY]
    except (OSError, ValueError, KeyError):
        return None
    if record.get("settings") != settings or "wall_time_s" not in record:
        return None
    if record.get("code_hash") != code_hash(stored):
        return None
    return record["wall_time_s"] / 60, describe_machine(record.get("machine", {"cpu": "?", "cores": "?"}))


def machine() -> dict:
    """The machine a chapter runs on: CPU model, cores, and the GPU's name (None without one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "gpu": gpu}


def describe_machine(record: dict) -> str:
    """One phrase for a :func:`machine` record: "Intel Xeon ..., 2 cores, no GPU"."""
    gpu = f"GPU {record['gpu']}" if record.get("gpu") else "no GPU"
    return f"{record['cpu']}, {record['cores']} cores, {gpu}"


def resolve_settings(name: str) -> str:
    """``auto``: ``smoke`` under ``MTM_SMOKE=1``, ``gpu`` with a CUDA GPU, ``book`` otherwise;
    any other name is checked and returned. ``pytest --nbmake book/`` runs every chapter's kernel with
    ``MTM_SMOKE=1`` unless ``MTM_SMOKE`` is set (:mod:`mtm.book.pytest_chapters`), so a test run is
    ``smoke`` without a flag, on a GPU too."""
    if name == "auto":
        if smoke():
            return "smoke"
        return "gpu" if machine()["gpu"] else "book"
    if name not in SETTINGS:
        raise ValueError(f"SETTINGS: expected 'auto' or one of {SETTINGS}, got {name!r}")
    return name


@dataclass
class ChapterSettings:
    """One chapter's resolved parameters: ``settings`` (smoke, book or gpu) and ``values``."""

    chapter: str
    settings: str
    values: dict
    started: float = field(default_factory=time.perf_counter)
    #: The time budget's decision (``gpu``): its runs go to a sub-folder of that name.
    budget_key: str | None = None

    def __getitem__(self, key: str):
        return self.values[key]

    def __getattr__(self, key: str):
        """A parameter by name (``RUN.EPOCHS``): the chapters write each parameter once, in
        :data:`CHAPTER_SETTINGS`, and read it from the resolved settings where it is used."""
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{self.__dict__.get('chapter', 'chapter')} has no parameter {key!r}; "
                             f"it has {sorted(values)}")

    @property
    def run_dir(self) -> Path:
        """Where the chapters share trained runs: a new temporary folder for smoke runs;
        ``$MTM_BOOK_RUNS/<settings>`` (default ``~/.cache/mtm/book-runs/<settings>``) otherwise, and
        within it, for ``gpu``, the sub-folder of the time budget's decision (other epochs, other runs)."""
        if self.settings == "smoke":
            return Path(tempfile.mkdtemp(prefix="mtm_"))
        base = os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "mtm" / "book-runs"
        folder = Path(base) / self.settings / (self.budget_key or "")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def line(self) -> str:
        """The line printed under the parameters: settings, machine and, for a long chapter, the wall
        time of its stored execution with these settings (``book``: the published run)."""
        text = f"Settings '{self.settings}' on {describe_machine(machine())}"
        recorded = recorded_minutes(self.chapter, self.settings)
        if recorded is not None and recorded[0] > ANNOUNCE_MINUTES:
            text += (f"; the stored execution with these settings took {recorded[0]:.0f} min on {recorded[1]} "
                     "(runs already in the run folder are reused)")
        return text + "."

    def done(self) -> str:
        """The closing line of a chapter: settings, machine and wall time since the settings were resolved."""
        minutes = (time.perf_counter() - self.started) / 60
        commit = git_commit()
        version = f"mtm {__version__}" + (f", commit {commit[:10]}" if commit else "")
        return (f"Executed with settings '{self.settings}' on {describe_machine(machine())} in "
                f"{minutes:.1f} min ({version}).")


def chapter_settings(chapter: str, settings: str = "auto", **overrides) -> ChapterSettings:
    """The parameters of ``chapter`` under ``settings``; ``overrides`` that are not None replace
    the settings' values (a chapter's parameters cell passes its literal overrides here).

    >>> chapter_settings("04_training", "smoke", EPOCHS=5)["EPOCHS"]
    5
    """
    if chapter not in CHAPTER_SETTINGS:
        raise ValueError(f"chapter: expected one of {sorted(CHAPTER_SETTINGS)}, got {chapter!r}")
    name = resolve_settings(settings)
    values = copy.deepcopy(CHAPTER_SETTINGS[chapter][name])
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"{chapter}: unknown parameters {sorted(unknown)}; expected some of {sorted(values)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    resolved = ChapterSettings(chapter, name, values)
    print(resolved.line())
    if name == "gpu" and chapter in GPU_BUDGET_MINUTES:
        line, resolved.budget_key = apply_budget(chapter, values, resolved.run_dir)
        print(line)
    return resolved


def train_once(sessions, cfg, run_dir, progress: bool = True) -> Path:
    """:func:`mtm.train.train` that reuses a finished run in ``run_dir`` and resumes an interrupted
    one; a run there of other settings or sessions is refused, naming the first difference."""
    run_dir = Path(run_dir)
    return train(sessions, cfg, run_dir, resume=(run_dir / "last.pt").exists(), progress=progress)


def train_all(runs: dict, workers: int | None = None) -> dict[Path, Path]:
    """:func:`train_once` for every run of ``runs``, {run folder: (sessions, TrainConfig)}, ``workers`` at a
    time in worker processes of one torch thread each (:func:`mtm.reproduce.scheduler._run_all`; default:
    :func:`mtm.reproduce.scheduler.default_workers`, one per CPU core up to 2 on the CPU, one at a time on
    a GPU). On this book's 2-core CPU, two runs of 700 steps side by side on one thread each finished 1.27
    times sooner than the same two one after the other on two threads, processes' start-up included
    (benchmarks/parallel_runs.py). Finished runs are reused and interrupted ones resumed, as by
    :func:`train_once`. Returns {run folder: best checkpoint}."""
    from mtm.reproduce.scheduler import _run_all, default_workers  # mtm.reproduce imports mtm.book

    jobs = {}
    for folder, value in runs.items():
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], TrainConfig)):
            raise ValueError(f"runs: expected {{run folder: (sessions, TrainConfig)}}, got {value!r} for {folder}")
        sessions, cfg = value
        jobs[str(Path(folder))] = dict(sessions=list(sessions), cfg=cfg.to_dict(), run_dir=str(Path(folder)))
    if workers is None:
        workers = min([default_workers(cfg.device) for _, cfg in runs.values()], default=1)
    done = _run_all(jobs, workers, log=lambda message: None, progress=False)
    return {Path(folder): Path(done[folder]["best"]) for folder in jobs}


def finetune_once(checkpoint_path, session, cfg, run_dir, progress: bool = True) -> Path:
    """:func:`mtm.train.finetune`, reusing or resuming a run in ``run_dir`` as :func:`train_once` does."""
    run_dir = Path(run_dir)
    return finetune(checkpoint_path, session, cfg, run_dir, resume=(run_dir / "last.pt").exists(),
                    progress=progress)


def git_commit(root: Path = ROOT) -> str | None:
    """The working tree's commit, with ``-dirty`` when the package (``mtm/``, ``pyproject.toml``,
    ``requirements.txt``) differs from it: what computes a chapter's outputs besides the chapter's own
    code, which its code hash records (executing chapters in turn rewrites the notebooks, and edits
    to tests or text change no output); None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "mtm",
                                "pyproject.toml", "requirements.txt"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


# ---------------------------------------------------------------------------------- Colab
def repository_url(config_path: Path = ROOT / "_config.yml") -> str:
    """The book's ``repository.url`` (the one place the repository's address is written)."""
    import yaml

    url = yaml.safe_load(Path(config_path).read_text())["repository"]["url"]
    return url.rstrip("/")


def colab_badge(notebook: str, url: str | None = None) -> str:
    """The Colab badge of a chapter (``01_data.ipynb``), opening its reader copy (``book/colab/01_data.ipynb``,
    :mod:`mtm.book.reader`: the chapter with its Markdown in plain CommonMark) in the pinned release."""
    url = url or repository_url()
    path = url.removeprefix("https://github.com/")
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{RELEASE}/book/{READER_FOLDER}/{notebook})")


def install_line(url: str | None = None) -> str:
    """The line of every chapter's set-up cell naming what Colab installs: the pinned release."""
    return f'PACKAGE = "mtm @ git+{url or repository_url()}@{RELEASE}"'


def gpu_check() -> str:
    """What will run where: the device the chapters train on, its precision, and the settings
    ``auto`` picks."""
    device = pick_device()
    precision = device_precision("auto", device)
    where = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "the CPU"
    settings = resolve_settings("auto")
    text = f"Training runs on {where} in {precision}; SETTINGS = 'auto' picks '{settings}'."
    if device.type != "cuda":
        text += " (On Colab: Runtime > Change runtime type > GPU for the 'gpu' settings.)"
    return text




# ------------------------------------------------------------------ numbers and code on the page
def glue_number(name: str, value: float, fmt: str = "{:.2f}") -> str:
    """Glue a number a chapter's prose states, so the text is filled in from the executed output.

    Glues two keys with myst-nb's ``glue`` (not displayed in the cell's output): ``name``, the text
    ``fmt.format(value)`` (e.g. ``"0.44"``), and ``name + "_value"``, the number itself. In the
    Markdown, ``{glue:text}`name``` inserts the text as the cell formatted it, and
    ``{glue:text}`name_value:.3f``` the number in any format spec. Returns the text.

    Recipe (checked in a throwaway book in /tmp: jupyter-book 1.0.4.post1, myst-nb 1.4.0, ``-W``):

    1. a code cell calls ``glue_number("mtm_intra", scores["intra-region"])`` (and, where the prose
       says "A beats B", :func:`assert_direction` on the same numbers);
    2. the chapter is executed (``python -m mtm.book execute``): each glue is stored as a
       ``display_data`` output with mime type ``application/papermill.record/text/plain``, which the page does
       not render;
    3. the Markdown says ``MtM scores {glue:text}`mtm_intra` bits per spike``; a glued string renders
       without its quotes (myst-nb reads it back with ``literal_eval``);
    4. ``jupyter-book build -W .`` with ``execute_notebooks: off`` renders "MtM scores 0.44 bits per
       spike" from the stored outputs alone, executing nothing.

    A key the Markdown names but no stored output holds is the warning "No key 'x' found in glue data
    for this document" (``mystnb.glue``), fatal under ``-W``: prose that refers to a number the
    chapter no longer glues fails the build. Glue is per page (``{glue:text}`other_page::key``` reads
    another page's).
    """
    import math

    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value: {name} must be a finite number, got {value!r}")
    text = GluedText(fmt.format(number))
    _glue(name, str(text))
    _glue(f"{name}_value", number)
    return text


def glue_text(name: str, text: str) -> str:
    """Glue words a chapter's prose states from its outputs (a ranking, the name of the factor that
    moved a score most, a sentence of :func:`verdict_sentence`, an interval as its table prints it,
    ``"+0.09 ± 0.04"``), as :func:`glue_number` glues a number: ``{glue:text}`name``` in the Markdown
    inserts ``text``, so a sentence at the top of a page can state what the cells below find. Returns
    the text, which a cell ending with the call does not echo."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text: {name} must be a non-empty string, got {text!r}")
    glued = GluedText(text)
    _glue(name, str(glued))
    return glued


def _glue(name: str, value) -> None:
    """Record ``value`` under ``name`` with myst-nb's ``glue`` (not displayed), for the book's build.
    Without myst-nb (a chapter run on Colab after installing the package alone) nothing is recorded:
    the records serve only the book's pages, and a reader's run shows its numbers in its outputs."""
    try:
        from myst_nb import glue  # the book's tooling, not a dependency of the package
    except ImportError:
        return
    glue(name, value, display=False)


class GluedText(str):
    """The text :func:`glue_number` returns: a ``str`` that Jupyter does not echo when a cell ends with
    the call (an echoed ``'0.44'`` would print on the page, and under a figure cell's caption it becomes
    a second figure with the same name, which fails the build)."""

    def _ipython_display_(self) -> None:
        pass


#: The relations :func:`assert_direction` checks, each with the word its message uses.
RELATIONS = {">": "above", "<": "below", ">=": "at least", "<=": "at most"}


def assert_direction(claim: str, a: float, relation: str, b: float, margin: float = 0.0) -> None:
    """Fail loudly when the numbers no longer say what the prose says of them.

    ``claim`` is the sentence's claim in words ("the linear baseline beats temporal masking on
    intra-region"); the check is ``a relation b`` with ``relation`` one of ``>``, ``<``, ``>=``,
    ``<=``, and ``margin`` (>= 0) the least gap the claim needs (``a > b + margin``, ``a < b -
    margin``; "far above" wants a margin, "beats" none). A re-execution that reverses the direction
    stops the chapter with an ``AssertionError`` naming the claim and both numbers, instead of
    publishing a sentence the outputs contradict.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation: expected one of {list(RELATIONS)}, got {relation!r}")
    if margin < 0:
        raise ValueError(f"margin: expected >= 0, got {margin}")
    a, b = float(a), float(b)
    holds = {">": a > b + margin, "<": a < b - margin, ">=": a >= b + margin, "<=": a <= b - margin}[relation]
    if not holds:
        gap = f" by more than {margin:g}" if margin else ""
        raise AssertionError(f"the text says {claim}, but {a:.4g} is not {RELATIONS[relation]} {b:.4g}{gap}; "
                             "rewrite the sentence for these outputs")


def _signed(value: float, digits: int, most: int = 4) -> str:
    """``value`` with its sign and ``digits`` decimals, or as many more (up to ``most``) as it takes
    not to print a non-zero bound as "+0.00": an interval "+0.003 to +0.16" excludes zero visibly."""
    for places in range(digits, most + 1):
        if value == 0 or round(value, places) != 0:
            break
    return f"{value:+.{places}f}"


def compare_words(a: str, b: str, difference, digits: int = 2) -> str:
    """The sentence a chapter states of a paired difference ``a - b`` (a :class:`mtm.stats.Interval`),
    its words chosen by the interval, never by hand: ``"MtM is above temporal masking (difference
    +0.05, 95 % interval +0.02 to +0.08)"``, ``"... below ..."``, or, when the interval contains zero,
    ``"MtM and temporal masking cannot be told apart (difference +0.01, 95 % interval -0.02 to +0.04,
    which contains zero)"``. A re-execution that moves the numbers changes the words with them.
    With fewer than two replicates there is no interval and the sentence says so."""
    mean, low, high = difference.mean, difference.low, difference.high
    word = verdict(difference, f"{a} - {b}")
    if word == "one run":
        return (f"{a} and {b} differ by {mean:+.{digits}f} in one run, with no interval "
                "(one replicate cannot tell a difference from seed noise)")
    # a mean the interval puts on one side of zero keeps the digits that show its sign; a mean that
    # rounds to zero inside an interval around zero is written 0.00, never "-0.0000"
    shown = (_signed(mean, digits) if word != "apart" or round(mean, digits) != 0 else f"{0:.{digits}f}")
    interval = (f"difference {shown}, 95 % interval {_signed(low, digits)} to "
                f"{_signed(high, digits)}")
    if word == "apart":
        return f"{a} and {b} cannot be told apart ({interval}, which contains zero)"
    return f"{a} is {word} {b} ({interval})"


#: What :func:`verdict` can say of a paired difference.
VERDICTS = ("above", "below", "apart", "one run")


def verdict(difference, name: str = "a - b") -> str:
    """What a paired difference ``a - b`` (a :class:`mtm.stats.Interval`) lets a text say: ``"above"``
    (its 95 % interval lies above zero), ``"below"`` (below zero), ``"apart"`` (the interval contains
    zero: the two cannot be told apart) or ``"one run"`` (one replicate, no interval). ``name`` names
    the difference in the error raised when it has no mean."""
    mean, low, high = difference.mean, difference.low, difference.high
    if not math.isfinite(mean):
        raise ValueError(f"difference: {name} has no mean (no paired cells)")
    if not (math.isfinite(low) and math.isfinite(high)):
        return "one run"
    return "above" if low > 0 else "below" if high < 0 else "apart"


def listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict_sentence(a: str, b: str, differences: dict, names: dict[str, str] | None = None) -> str:
    """One sentence of what the paired differences ``a - b`` on several columns say, grouped by their
    :func:`verdict` and without numbers (the table beside it holds them): ``"MtM is above the temporal
    baseline on co-smoothing and inter-region and below it on intra-region; the two cannot be told
    apart on forward prediction"``. ``differences``: {column: Interval}, in the order to name them;
    ``names``: {column: its name in words} (default :data:`mtm.plots.COLUMN_WORDS`, else the column)."""

    if not differences:
        raise ValueError("differences: expected at least one column")
    names = COLUMN_WORDS if names is None else names
    groups = {word: [names.get(c, c) for c, d in differences.items() if verdict(d, f"{a} - {b} on {c}") == word]
              for word in VERDICTS}
    clauses = [f"{word} {'it' if i else b} on {listed(groups[word])}"
               for i, word in enumerate(w for w in ("above", "below") if groups[w])]
    parts = [f"{a} is " + " and ".join(clauses)] if clauses else []
    if groups["apart"]:
        parts.append(f"{'the two' if parts else f'{a} and {b}'} cannot be told apart on {listed(groups['apart'])}")
    if groups["one run"]:
        parts.append(f"{a} and {b} are compared in one run only on {listed(groups['one run'])} (no interval)")
    return "; ".join(parts)


def transfer_findings(runs: dict, counts, sizes, protocols) -> dict[str, list[str]]:
    """What a transfer study's paired differences say (:mod:`mtm.reproduce.transfer`; ``runs``: its
    per_session.json), as sentences of :func:`verdict_sentence` for chapter 7's boxes: {"gain": the
    largest pretraining set minus from scratch at every size, a sentence per masking and size;
    "growth": the largest set minus the smallest at the size nearest 100 trials; "protocols": every
    other fine-tuning protocol minus the first there; "equal": the largest set minus from scratch at
    equal total compute}, from the study's own :func:`~mtm.reproduce.transfer.gains` and
    :func:`~mtm.reproduce.transfer.comparisons`. Glues the chapter's summary keys: ``transfer_point``
    (that size), ``transfer_words_mtm`` / ``transfer_words_temporal`` (the gain there),
    ``transfer_growth_mtm`` and ``protocol_words_mtm``."""
    from mtm.reproduce import transfer  # mtm.reproduce imports the trainer, as this module does
    from mtm.reproduce.scheduler import paired_differences  # the same

    counts, sizes = sorted(counts), sorted(sizes)
    point, largest, smallest = transfer.comparison_point(sizes), counts[-1], counts[0]
    found = transfer.gains(runs, counts, sizes)
    pairs = paired_differences(runs, transfer.comparisons(counts, sizes, protocols))
    condition = transfer.condition(largest)
    gain = {(label, n): verdict_sentence(f"{label} pretrained on {condition} and fine-tuned on {n} trials",
                                         "the same masking trained from scratch", found[label, largest][n])
            for label in transfer.MASKINGS for n in sizes}
    growth = {label: verdict_sentence(f"{label} pretrained on {condition} ({point} trials)",
                                      f"the same pretrained on {transfer.condition(smallest)}",
                                      pairs[f"{label}, {point} trials: {condition} - {transfer.condition(smallest)}"])
              for label in transfer.MASKINGS} if len(counts) > 1 else {}
    protocol = {(label, p): verdict_sentence(
        f"{label}: {p} fine-tuning", f"{protocols[0]} fine-tuning",
        pairs[f"{label}, {point} trials: {p} - {protocols[0]} fine-tuning ({condition})"])
        for label in transfer.MASKINGS for p in protocols[1:]}
    equal = [verdict_sentence(f"{label} pretrained on {condition} and fine-tuned ({point} trials)",
                              "the same from scratch at equal total compute",
                              pairs[f"{label}, {point} trials: {condition} - from scratch at equal total compute"])
             for label in transfer.MASKINGS]
    glue_number("transfer_point", point, "{:.0f}")
    glue_text("transfer_words_mtm", gain["MtM (prompted)", point])
    glue_text("transfer_words_temporal", gain["Temporal", point])
    if growth:
        glue_text("transfer_growth_mtm", growth["MtM (prompted)"])
    mtm_protocols = [w for (label, _), w in protocol.items() if label == "MtM (prompted)"]
    if mtm_protocols:
        glue_text("protocol_words_mtm", "; ".join(mtm_protocols))
    return {"gain": list(gain.values()), "growth": list(growth.values()), "protocols": list(protocol.values()),
            "equal": equal}


def run_box(*points: str, paper: str | None = None) -> str:
    """The Markdown of the box a results chapter ends on (:func:`what_this_run_shows`): "What this run
    shows", one bullet per point (sentences), and, when given, what the paper shows beside it. Plain
    CommonMark (a block quote), so it reads the same in the book, Jupyter, Colab and GitHub."""
    if not points:
        raise ValueError("points: expected at least one sentence")
    lines = ["**What this run shows**", ""] + [f"- {point.strip().rstrip('.')}." for point in points]
    if paper:
        lines += ["", f"*The paper:* {paper.strip()}"]
    return "\n".join("> " + line if line else ">" for line in lines)


def what_this_run_shows(*points: str, paper: str | None = None) -> None:
    """Display :func:`run_box` in the notebook's output (IPython ``Markdown``): the box is written from
    the run's numbers by the cell that calls this, so it cannot drift from them. Returns None, so the
    box shows once wherever the call stands in its cell."""
    from IPython.display import Markdown, display

    display(Markdown(run_box(*points, paper=paper)))


#: Characters of a code line that fit a 700 px content column without a horizontal scroll bar, from the
#: themes' CSS (sphinx-book-theme 1.3.0 on pydata-sphinx-theme 0.17.1): ``pre`` has 1 rem padding each side
#: and a 0.875 em monospace font (14 px, about 8.4 px a character), so (700 - 32) / 8.4 = 79. Longer lines
#: scroll inside their block (``pre {overflow: auto}``); :func:`source_block` never rewraps the package's code.
CODE_COLUMN = 79


def source_block(obj, lines: tuple[int, int] | None = None) -> str:
    """The package's own source of a function, class or method as a Markdown code block, headed by
    its module path and line numbers (``mtm/masking.py, lines 40-62``) and how many of its lines are
    wider than :data:`CODE_COLUMN`.

    ``lines`` = (first, last), 1-based and inclusive, in the file's numbering, picks part of the
    object (e.g. the lines a section walks through); it must lie within the object.
    """
    import inspect

    target = inspect.unwrap(obj)
    try:
        source_lines, start = inspect.getsourcelines(target)
        path = Path(inspect.getsourcefile(target)).resolve()
    except (TypeError, OSError) as err:
        raise ValueError(f"obj: expected a function, class or method of the mtm package, got {obj!r} ({err})")
    package = Path(__file__).resolve().parents[1]  # the mtm package, wherever it is installed
    if not path.is_relative_to(package):
        raise ValueError(f"obj: {obj!r} is defined in {path}, outside the mtm package at {package}")
    shown = path.relative_to(package.parent).as_posix()
    last = start + len(source_lines) - 1
    if lines is not None:
        first, stop = lines
        if not start <= first <= stop <= last:
            raise ValueError(f"lines: expected first <= last within {start}-{last} ({shown}), got {lines}")
        source_lines, start, last = source_lines[first - start:stop - start + 1], first, stop
    code = "".join(source_lines).rstrip("\n")
    wide = sum(len(line.rstrip("\n")) > CODE_COLUMN for line in source_lines)
    note = f" ({wide} wider than the column: scroll sideways)" if wide else ""
    return f"`{shown}`, lines {start}-{last}{note}:\n\n```python\n{code}\n```"


def source_span(obj, first: str, last: str) -> tuple[int, int]:
    """The (first, last) file line numbers, for :func:`show_source`'s ``lines``, of the part of ``obj``'s
    source from the first line that contains the text ``first`` to the next line (that one included)
    that contains ``last``: a chapter names the code it walks through, never its line numbers, so the
    shown part follows the package when lines move.

    >>> from mtm.masking import MtMSampler
    >>> a, b = source_span(MtMSampler.sample, "def sample", "return scheme")
    >>> b - a
    5
    """
    import inspect

    source_lines, start = inspect.getsourcelines(inspect.unwrap(obj))
    begin = next((i for i, line in enumerate(source_lines) if first in line), None)
    if begin is None:
        raise ValueError(f"first: no line of {getattr(obj, '__qualname__', obj)} contains {first!r}")
    end = next((i for i in range(begin, len(source_lines)) if last in source_lines[i]), None)
    if end is None:
        raise ValueError(f"last: no line of {getattr(obj, '__qualname__', obj)} from {first!r} on contains {last!r}")
    return start + begin, start + end


def show_source(obj, lines: tuple[int, int] | None = None):
    """Display :func:`source_block` in the notebook's output (IPython ``Markdown``, which Jupyter and
    the book render as a syntax-highlighted block): the page shows the code that runs, so it cannot
    drift from the package. Returns None, so a cell ending in it shows the block once. Checked in a jupyter-book 1.0.4.post1
    build with ``execute_notebooks: off``: the stored output renders as a Pygments-highlighted Python
    block under its path and line range."""
    from IPython.display import Markdown, display

    display(Markdown(source_block(obj, lines)))

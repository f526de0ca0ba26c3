"""What one experiment of ``mtm reproduce`` runs: :class:`Plan`, with each experiment's ``small``
(CPU) and ``paper`` (GPU) presets (and ``book`` where a chapter runs the experiment), the training
seeds, the synthetic sessions it runs on, held-out sessions cut to nested training sets around fixed
validation and test trials (:func:`split_sizes`, :func:`nested_pool`, :func:`train_subset`), and the
arithmetic of optimiser steps that lets two conditions be compared at equal steps
(:func:`batches_per_epoch`, :func:`epochs_for_steps`)."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np

from mtm.data import Session, synthetic_sessions
from mtm.data.session import DEFAULT_SPLIT_SEED, SPLIT_FRACTIONS
from mtm.train import TrainConfig

#: ``mtm reproduce --experiment NAME`` -> the module of ``mtm.reproduce`` that runs it.
EXPERIMENTS = {"table2": "table2", "ablation": "ablation", "ndt2": "ndt2", "prompts": "prompts",
               "mask-ratio": "mask_ratio", "scaling": "scaling", "region-decoding": "region_decoding",
               "budget": "budget", "transfer": "transfer"}
BEHAVIOR_KEYS = ("choice", "whisker_me")
#: Plan preset -> the training preset (:meth:`mtm.train.TrainConfig.preset`) and synthetic-session preset
#: it builds on: ``book`` (an experiment a chapter runs on the 2-core CPU) trains the small model.
BASE_PRESET = {"small": "small", "book": "small", "paper": "paper"}
#: How a from-scratch model beside a pretrained one is trained (:func:`scratch_epochs`): "heldout", for as many
#: optimiser steps on the held-out session as fine-tuning (the paper's comparison: a pretrained model is
#: trained once and reused, so what it costs a new session is its fine-tuning), or "total", for as many
#: steps as pretraining and fine-tuning together (equal total compute).
SCRATCH_STEPS = ("heldout", "total")


def experiment_module(name: str):
    """The module of an experiment (``run`` and ``PRESETS``); ValueError for an unknown name."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {list(EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(f"mtm.reproduce.{EXPERIMENTS[name]}")


@dataclass
class Plan:
    """What one experiment runs. :meth:`for_preset` gives each experiment's ``small`` and ``paper``
    (and ``book``). Every model is trained once per seed of :attr:`seeds`."""

    preset: str = "small"
    experiment: str = "table2"
    n_pretrain: int = 3
    n_test: int = 2
    session_seed: int = 0
    n_trials: int | None = None          # synthetic sessions: trials each (default: the session preset's range)
    n_neurons: int | None = None         # synthetic sessions: neurons each (default: the session preset's range)
    n_test_trials: int | None = None     # synthetic held-out sessions: trials each (default: n_trials)
    epochs: int | None = None            # single-session runs; default: the training preset's
    pretrain_epochs: int | None = None   # default: ``epochs``
    finetune_epochs: int | None = None   # default: ``epochs``
    device: str = "auto"
    n_seeds: int = 3                     # training seeds 0 .. n_seeds - 1, each a full repetition (mtm.stats)
    train_overrides: dict = field(default_factory=dict)  # any other TrainConfig field, e.g. model sizes
    pretrain_counts: tuple[int, ...] = ()   # scaling: the numbers of pretraining sessions compared
    ratios: tuple[float, ...] = ()          # mask-ratio: the masking probabilities compared
    factors: dict = field(default_factory=dict)  # budget: {factor: levels} (mtm.reproduce.budget)
    pretrain_patience: int | None = None    # pretraining stops after this many validations without a better
                                            # score (pretrain_epochs its maximum; mtm.train.plateau_reached)
    train_trials: tuple[int, ...] = ()      # transfer: the held-out sessions' training-trial counts compared
    heldout_steps: int | None = None        # transfer: optimiser steps of every run on a held-out session
    protocols: tuple[str, ...] = ()         # transfer: fine-tuning protocols (mtm.reproduce.transfer.PROTOCOLS)
    scratch_steps: str | None = None        # from-scratch runs beside pretrained ones (SCRATCH_STEPS); None: the
                                            # experiment's own (table2 "heldout", ndt2 and scaling "total")

    def __post_init__(self):
        if self.preset not in BASE_PRESET:
            raise ValueError(f"preset: expected one of {list(BASE_PRESET)}, got {self.preset!r}")
        for name in ("n_pretrain", "n_test", "n_seeds", "epochs", "pretrain_epochs", "finetune_epochs",
                     "pretrain_patience", "heldout_steps"):
            value = getattr(self, name)
            least = 0 if name == "n_pretrain" else 1
            if value is None and name not in ("n_pretrain", "n_test", "n_seeds"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
        if self.scratch_steps is not None and self.scratch_steps not in SCRATCH_STEPS:
            raise ValueError(f"scratch_steps: expected one of {list(SCRATCH_STEPS)} or None, got {self.scratch_steps!r}")

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seeds: 0 .. n_seeds - 1."""
        return tuple(range(self.n_seeds))

    @classmethod
    def for_preset(cls, preset: str, experiment: str = "table2", **overrides) -> Plan:
        """The experiment's preset (its module's ``PRESETS``), with ``overrides`` (None = keep).

        On the ``small`` preset ``epochs`` also caps pretraining and fine-tuning."""
        presets = experiment_module(experiment).PRESETS
        if preset not in presets:
            raise ValueError(f"preset: expected one of {list(presets)} for the {experiment} experiment, "
                             f"got {preset!r}")
        base = dict(presets[preset])
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if preset == "small" and "epochs" in overrides:
            for stage in ("pretrain_epochs", "finetune_epochs"):
                base[stage] = min(base.get(stage) or overrides["epochs"], overrides["epochs"])
        return cls(**{"preset": preset, "experiment": experiment, **base, **overrides})

    def train_config(self, masking: str, stage: str = "single", **settings) -> TrainConfig:
        """The training settings of one run; ``stage`` is "single", "pretrain" or "finetune";
        ``settings``: TrainConfig fields of this run (``prompted``, ``mask_ratio``, ``epochs``), and ``arch``."""
        arch = settings.pop("arch", None)
        overrides = {**self.train_overrides, "masking": masking, "device": self.device}
        epochs = {"pretrain": self.pretrain_epochs, "finetune": self.finetune_epochs}.get(stage) or self.epochs
        if epochs:
            overrides["epochs"] = epochs
        overrides.update(settings)  # this run's own settings win, ``epochs`` included
        if arch is not None:
            overrides["model"] = {**overrides.get("model", {}), "arch": arch}
        return TrainConfig.preset(BASE_PRESET[self.preset], **overrides)

    def describe(self) -> str:
        """One line of what the plan trains: its sessions, epochs (those of pretraining and fine-tuning where
        it pretrains; a single-session model beside them is trained as scratch_steps says), the model's size (NDT2's patch size for the ndt2 experiment) and the training seeds."""
        trials = "the preset's trials" if self.n_trials is None else f"{self.n_trials} trials"
        neurons = "the preset's neurons" if self.n_neurons is None else f"{self.n_neurons} neurons"
        single = self.train_config("mtm")
        epochs = f"{single.epochs} epochs"
        if self.n_pretrain:  # a single-session model beside them: scratch_steps
            epochs = (f"{self.train_config('mtm', 'pretrain').epochs} pretraining and "
                      f"{self.train_config('mtm', 'finetune').epochs} fine-tuning epochs")
        model = f"model {single.model.n_layers} x {single.model.hidden}"
        if self.experiment == "ndt2":
            model += f", NDT2 patches of {self.train_config('mtm', arch='ndt2').model.patch_size} neurons"
        return (f"{self.experiment}: {self.n_pretrain} pretraining + {self.n_test} held-out sessions of {trials} x "
                f"{neurons}; {epochs}, {model}; seeds {self.seeds}")

    def synthetic_sessions(self) -> tuple[list[Session], list[Session]]:
        """The plan's synthetic sessions: (pretraining, held out), the last ``n_test`` held out."""
        def make(count: int, first: int, n_trials: int | None) -> list[Session]:
            return synthetic_sessions(count, seed=first, preset=BASE_PRESET[self.preset], n_trials=n_trials,
                                      n_neurons=self.n_neurons) if count else []

        test_trials = self.n_trials if self.n_test_trials is None else self.n_test_trials
        return (make(self.n_pretrain, self.session_seed, self.n_trials),
                make(self.n_test, self.session_seed + self.n_pretrain, test_trials))


def batches_per_epoch(sessions: list[Session], batch_size: int) -> int:
    """Optimiser steps in one epoch over ``sessions``: each session's train split cut into batches of
    ``batch_size`` trials, the last one partial (as :func:`mtm.data.batches.epoch_batches` cuts them)."""
    return sum(math.ceil(len(s.splits.get("train", ())) / batch_size) for s in sessions)


def epochs_for_steps(sessions: list[Session], batch_size: int, steps: float) -> int:
    """The whole number of epochs over ``sessions`` nearest to ``steps`` optimiser steps (at least 1):
    how two conditions are trained for equal steps (they differ by less than half an epoch's batches)."""
    return max(1, round(steps / batches_per_epoch(sessions, batch_size)))


def split_sizes(trials: int) -> tuple[int, int, int]:
    """(train, val, test) trials of a session of ``trials`` trials (:func:`mtm.data.session.split_trials`)."""
    n_train = int(SPLIT_FRACTIONS[0] * trials)
    n_val = int(round(SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1], 9) * trials) - n_train
    return n_train, n_val, trials - n_train - n_val


def nested_pool(session: Session, n_val: int, n_test: int) -> Session:
    """``session`` with ``n_test`` test and ``n_val`` validation trials drawn at random and every other
    trial in ``train``, in a random order kept in ``meta["train_order"]``: :func:`train_subset` takes
    the first trials of that order, so training sets of different sizes are nested and share their
    validation and test trials."""
    order = np.random.default_rng(DEFAULT_SPLIT_SEED).permutation(session.n_trials)
    test, val, pool = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return session.replace(splits={"train": np.sort(pool), "val": np.sort(val), "test": np.sort(test)},
                           meta={**session.meta, "train_order": pool.tolist()})


def train_subset(pool: Session, n_train: int, ground_truth: bool = False) -> Session:
    """The first ``n_train`` training trials of a :func:`nested_pool` with its validation and test
    trials; counts only (a worker process needs no ground truth) unless ``ground_truth``."""
    order = pool.meta["train_order"]
    if not 1 <= n_train <= len(order):
        raise ValueError(f"n_train: expected from 1 to the {len(order)} training trials of {pool.eid}, got {n_train}")
    keep = np.sort(np.concatenate([np.asarray(order[:n_train]), pool.splits["val"], pool.splits["test"]]))
    meta = {k: v for k, v in pool.meta.items() if k != "train_order"}
    subset = pool.select_trials(keep).replace(meta=meta)
    return subset if ground_truth else subset.replace(rates=None, truth=None)

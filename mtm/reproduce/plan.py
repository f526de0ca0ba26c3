"""What one experiment of ``mtm reproduce`` runs: :class:`Plan`, with each experiment's ``small``
(CPU) and ``paper`` (GPU) presets, and the synthetic sessions it runs on."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from mtm.data import Session, synthetic_sessions
from mtm.train import TrainConfig

#: ``mtm reproduce --experiment NAME`` -> the module of ``mtm.reproduce`` that runs it.
EXPERIMENTS = {"table2": "table2", "ablation": "ablation", "ndt2": "ndt2", "prompts": "prompts",
               "mask-ratio": "mask_ratio", "scaling": "scaling", "region-decoding": "region_decoding"}
BEHAVIOR_KEYS = ("choice", "whisker_me")


def experiment_module(name: str):
    """The module of an experiment (``run`` and ``PRESETS``); ValueError for an unknown name."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {list(EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(f"mtm.reproduce.{EXPERIMENTS[name]}")


@dataclass
class Plan:
    """What one experiment runs. :meth:`for_preset` gives each experiment's ``small`` and ``paper``."""

    preset: str = "small"
    experiment: str = "table2"
    n_pretrain: int = 3
    n_test: int = 2
    session_seed: int = 0
    n_trials: int | None = None          # synthetic sessions: trials each (default: the session preset's range)
    n_neurons: int | None = None         # synthetic sessions: neurons each (default: the session preset's range)
    epochs: int | None = None            # single-session runs; default: the training preset's
    pretrain_epochs: int | None = None   # default: ``epochs``
    finetune_epochs: int | None = None   # default: ``epochs``
    device: str = "auto"
    train_overrides: dict = field(default_factory=dict)  # any other TrainConfig field, e.g. model sizes
    pretrain_counts: tuple[int, ...] = ()   # scaling: the numbers of pretraining sessions compared
    ratios: tuple[float, ...] = ()          # mask-ratio: the masking probabilities compared

    def __post_init__(self):
        for name in ("n_pretrain", "n_test", "epochs", "pretrain_epochs", "finetune_epochs"):
            value = getattr(self, name)
            least = 0 if name == "n_pretrain" else 1
            if value is None and name not in ("n_pretrain", "n_test"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")

    @classmethod
    def for_preset(cls, preset: str, experiment: str = "table2", **overrides) -> Plan:
        """The experiment's preset (its module's ``PRESETS``), with ``overrides`` (None = keep).

        On the ``small`` preset ``epochs`` also caps pretraining and fine-tuning."""
        if preset not in ("small", "paper"):
            raise ValueError(f"preset: expected 'small' or 'paper', got {preset!r}")
        base = dict(experiment_module(experiment).PRESETS[preset])
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if preset == "small" and "epochs" in overrides:
            for stage in ("pretrain_epochs", "finetune_epochs"):
                base[stage] = min(base.get(stage) or overrides["epochs"], overrides["epochs"])
        return cls(**{"preset": preset, "experiment": experiment, **base, **overrides})

    def train_config(self, masking: str, stage: str = "single", **settings) -> TrainConfig:
        """The training settings of one run; ``stage`` is "single", "pretrain" or "finetune";
        ``settings``: TrainConfig fields of this run (``prompted``, ``mask_ratio``), and ``arch``."""
        arch = settings.pop("arch", None)
        overrides = {**self.train_overrides, **settings, "masking": masking, "device": self.device}
        if arch is not None:
            overrides["model"] = {**overrides.get("model", {}), "arch": arch}
        epochs = {"pretrain": self.pretrain_epochs, "finetune": self.finetune_epochs}.get(stage) or self.epochs
        if epochs:
            overrides["epochs"] = epochs
        return TrainConfig.preset(self.preset, **overrides)

    def synthetic_sessions(self) -> tuple[list[Session], list[Session]]:
        """The plan's synthetic sessions: (pretraining, held out), the last ``n_test`` held out."""
        sessions = synthetic_sessions(self.n_pretrain + self.n_test, seed=self.session_seed,
                                      preset="paper" if self.preset == "paper" else "small",
                                      n_trials=self.n_trials, n_neurons=self.n_neurons)
        return sessions[:self.n_pretrain], sessions[self.n_pretrain:]

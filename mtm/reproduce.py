"""``mtm reproduce``: the paper's Tables 1 and 2 on synthetic sessions (or IBL sessions through ONE).

The pipeline (reference notes 4.2-4.3 and 6):

1. Sessions: ``n_pretrain + n_test`` sessions; the last ``n_test`` are held out (the paper: 34
   pretraining and 5 held-out IBL sessions; the ``small`` preset: a few small synthetic ones).
2. Single-session models, trained from scratch on every held-out session: the temporal baseline and
   prompted MtM (Table 1's two key rows; Table 2's "single-session" rows).
3. Multi-session models: both maskings pretrained on the pretraining sessions, then fine-tuned on
   every held-out session (Table 2's "multi-session" rows).
4. Every model is evaluated on every held-out session's test split: co-smoothing, forward prediction,
   intra-region, inter-region (per-neuron bits per spike, NaN-mean over neurons) and behaviour
   decoding (choice accuracy, whisker motion energy R^2). Scores are averaged over held-out sessions.
5. Beside them: the ground-truth rates (synthetic sessions only; the best any model can do, and
   the decoders on the log of the true rates) and the linear-regression baseline (with the decoders
   on the raw spikes), and the paper's own numbers for NDT1-stitch.

Every run folder is kept under ``out``; a finished run is reused and an interrupted one resumed, so
``mtm reproduce`` can be stopped and started again.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtm import checkpoint
from mtm.baselines import baseline_results
from mtm.data import Session
from mtm.decoding import decode_behavior
from mtm.evaluate import TASKS, evaluate_model
from mtm.plots import results_table
from mtm.train import TrainConfig, finetune, train

#: NDT1-stitch, mean over the paper's 5 held-out sessions (preprint Table 2, reference notes 6.3).
PAPER_TABLE2 = {
    "Single-session, Temporal": {"co-smooth": 0.55, "forward-pred": 0.17, "intra-region": -0.49,
                                 "inter-region": 0.18, "choice": 0.87, "whisker_me": 0.65},
    "Single-session, MtM (prompted)": {"co-smooth": 1.00, "forward-pred": 0.28, "intra-region": 0.70,
                                       "inter-region": 0.83, "choice": 0.85, "whisker_me": 0.67},
    "Multi-session, Temporal": {"co-smooth": 0.79, "forward-pred": 0.43, "intra-region": -0.08,
                                "inter-region": 0.34, "choice": 0.89, "whisker_me": 0.67},
    "Multi-session, MtM (prompted)": {"co-smooth": 1.11, "forward-pred": 0.46, "intra-region": 0.85,
                                      "inter-region": 0.96, "choice": 0.88, "whisker_me": 0.68},
}
MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
BEHAVIOR_KEYS = ("choice", "whisker_me")


@dataclass
class Plan:
    """What ``mtm reproduce`` runs. :meth:`preset` gives ``small`` and ``paper``."""

    preset: str = "small"
    n_pretrain: int = 4
    n_test: int = 2
    session_seed: int = 0
    epochs: int | None = None        # default: the training preset's
    finetune_epochs: int | None = None
    device: str = "auto"
    train_overrides: dict = field(default_factory=dict)  # any other TrainConfig field, e.g. model sizes

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> Plan:
        if preset == "small":
            return cls(preset="small", **overrides)
        if preset == "paper":
            return cls(**{"preset": "paper", "n_pretrain": 34, "n_test": 5, **overrides})
        raise ValueError(f"preset: expected 'small' or 'paper', got {preset!r}")

    def train_config(self, masking: str, finetuning: bool = False) -> TrainConfig:
        overrides = {**self.train_overrides, "masking": masking, "device": self.device}
        epochs = self.finetune_epochs if finetuning and self.finetune_epochs else self.epochs
        if epochs:
            overrides["epochs"] = epochs
        return TrainConfig.preset(self.preset, **overrides)


def _finished(run_dir: Path, cfg: TrainConfig) -> bool:
    last = run_dir / "last.pt"
    return last.exists() and (run_dir / "best.safetensors").exists() and \
        int(checkpoint.load_state(last)["epoch"]) == cfg.epochs - 1


def _run(run_dir: Path, cfg: TrainConfig, start) -> Path:
    """Train (or reuse a finished run, or resume an interrupted one) and return the best checkpoint."""
    if _finished(run_dir, cfg):
        return run_dir / "best.safetensors"
    return start(resume=(run_dir / "last.pt").exists())


def score_model(best: Path, session: Session, masking: str, device: str = "auto") -> dict[str, float]:
    """All four activity tasks and behaviour decoding of one checkpoint on one session."""
    from mtm.train import pick_device

    model, _ = checkpoint.load_model(best, device=pick_device(device))
    row = {task: result.mean_bps for task, result in evaluate_model(model, session, masking).items()}
    keys = [k for k in BEHAVIOR_KEYS if k in session.behavior]
    row.update(decode_behavior(session, keys, model=model, training_masking=masking))
    return row


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}


def run_reproduction(pretrain: list[Session], heldout: list[Session], plan: Plan, out, log=print) -> dict:
    """Train, fine-tune and evaluate everything; returns {row name: {column: mean over held-out sessions}}."""
    out = Path(out)
    started = time.perf_counter()
    per_session: dict[str, list[dict[str, float]]] = {}
    for label, masking in MASKINGS.items():
        for session in heldout:
            cfg = plan.train_config(masking)
            run_dir = out / "single" / masking / session.eid
            log(f"[{time.perf_counter() - started:6.0f} s] single-session {label} on {session.eid}")
            best = _run(run_dir, cfg, lambda resume: train([session], cfg, run_dir, resume=resume))
            per_session.setdefault(f"Single-session, {label}", []).append(score_model(best, session, masking, plan.device))
        if pretrain:
            cfg = plan.train_config(masking)
            run_dir = out / "pretrain" / masking
            log(f"[{time.perf_counter() - started:6.0f} s] pretraining {label} on {len(pretrain)} sessions")
            pretrained = _run(run_dir, cfg, lambda resume: train(pretrain, cfg, run_dir, resume=resume))
            for session in heldout:
                cfg = plan.train_config(masking, finetuning=True)
                run_dir = out / "finetune" / masking / session.eid
                log(f"[{time.perf_counter() - started:6.0f} s] fine-tuning {label} on {session.eid}")
                best = _run(run_dir, cfg, lambda resume: finetune(pretrained, session, cfg, run_dir, resume=resume))
                per_session.setdefault(f"Multi-session ({len(pretrain)} pretrain), {label}", []).append(
                    score_model(best, session, masking, plan.device))
    references: dict[str, list[dict[str, float]]] = {}
    for session in heldout:
        results = baseline_results(session, which=("truth", "linear"))
        for name, label in (("truth", "Ground truth (ceiling)"), ("linear", "Linear regression (baseline)")):
            if name in results:
                row = {task: r.mean_bps for task, r in results[name].items()}
                keys = [k for k in BEHAVIOR_KEYS if k in session.behavior]
                # decoders on the log of the true rates (ceiling), or on the raw spikes (baseline)
                features = np.log(session.rates) if name == "truth" else None
                row.update(decode_behavior(session, keys, features=features))
                references.setdefault(label, []).append(row)
    table = {name: _mean_rows(rows) for name, rows in {**per_session, **references}.items()}
    table_path = write_tables(table, per_session, out)
    log(f"[{time.perf_counter() - started:6.0f} s] done; tables in {table_path}")
    return table


def write_tables(table: dict, per_session: dict, out: Path) -> Path:
    """results.md (ours beside the paper's), results.csv and per_session.json in ``out``."""
    from mtm.atomic import atomic_write

    columns = list(TASKS) + list(BEHAVIOR_KEYS)
    markdown = ("## This run (mean over held-out sessions)\n\n" + results_table(table, columns)
                + "\n\nActivity: bits per spike (per-neuron, NaN-mean). Choice: accuracy. Whisker ME: R^2.\n\n"
                + "## The paper, NDT1-stitch, 5 held-out IBL sessions (Table 2)\n\n"
                + results_table(PAPER_TABLE2, columns) + "\n")

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["model"] + columns)
            for name, row in table.items():
                writer.writerow([name] + [f"{row.get(c, math.nan):.4f}" for c in columns])

    atomic_write(out / "results.csv", write_csv)
    atomic_write(out / "per_session.json", lambda tmp: Path(tmp).write_text(json.dumps(per_session, indent=1)))
    return atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(markdown))

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
5. Beside them: on synthetic sessions each task's oracle (:mod:`mtm.oracle`: the best score the
   task allows, with each model's share of it) and the true rates (not reachable: they include every
   neuron's private noise); the linear-regression baseline (with the decoders on the raw spikes);
   and the paper's own numbers for NDT1-stitch.

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
from mtm.baselines import ORACLE_ROW, REFERENCE_NOTE, reference_rows
from mtm.data import Session
from mtm.decoding import decode_behavior
from mtm.evaluate import TASKS, evaluate_model
from mtm.plots import oracle_share_table, results_table
from mtm.train import TrainConfig, finetune, first_difference, train

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
    n_pretrain: int = 3
    n_test: int = 2
    session_seed: int = 0
    epochs: int | None = None           # single-session runs; default: the training preset's
    pretrain_epochs: int | None = None  # default: ``epochs``
    finetune_epochs: int | None = None  # default: ``epochs``
    device: str = "auto"
    train_overrides: dict = field(default_factory=dict)  # any other TrainConfig field, e.g. model sizes

    def __post_init__(self):
        for name in ("n_pretrain", "n_test", "epochs", "pretrain_epochs", "finetune_epochs"):
            value = getattr(self, name)
            least = 0 if name == "n_pretrain" else 1
            if value is None and name not in ("n_pretrain", "n_test"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> Plan:
        """``small``: 3 + 2 small synthetic sessions, pretraining and fine-tuning for 100 epochs
        (fewer when ``epochs`` is smaller). ``paper``: 34 + 5 sessions, the published 1000 epochs."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if preset == "small":
            cap = overrides.get("epochs", 100)  # --epochs also caps pretraining and fine-tuning
            return cls(**{"preset": "small", "pretrain_epochs": min(100, cap), "finetune_epochs": min(100, cap),
                          **overrides})
        if preset == "paper":
            return cls(**{"preset": "paper", "n_pretrain": 34, "n_test": 5, **overrides})
        raise ValueError(f"preset: expected 'small' or 'paper', got {preset!r}")

    def train_config(self, masking: str, stage: str = "single") -> TrainConfig:
        """The training settings of one run; ``stage`` is "single", "pretrain" or "finetune"."""
        overrides = {**self.train_overrides, "masking": masking, "device": self.device}
        epochs = {"pretrain": self.pretrain_epochs, "finetune": self.finetune_epochs}.get(stage) or self.epochs
        if epochs:
            overrides["epochs"] = epochs
        return TrainConfig.preset(self.preset, **overrides)


def _finished(run_dir: Path, cfg: TrainConfig, sessions: list[Session]) -> bool:
    """Whether ``run_dir`` holds this very run (same settings, same sessions), complete.

    A folder holding a run of other settings or sessions is an error, and nothing in it is touched:
    each plan needs its own output folder.
    """
    last = run_dir / "last.pt"
    if not last.exists():
        return False
    state = checkpoint.load_state(last)
    saved = json.loads(state["config"])
    eids = [eid for eid, _ in saved["sessions"]]
    differs = first_difference(saved["train"], json.loads(json.dumps(cfg.to_dict())))
    if differs is None and eids != [s.eid for s in sessions]:
        differs = f"sessions ({', '.join(eids[:3])}{' ...' if len(eids) > 3 else ''} in the saved run)"
    if differs:
        raise ValueError(f"{run_dir} holds a run of other settings or sessions, first difference: {differs}; "
                         "use another output folder for this plan")
    return (run_dir / "best.safetensors").exists() and int(state["epoch"]) == cfg.epochs - 1


def run_job(sessions: list[Session], cfg: dict, run_dir: str, pretrained: str | None = None,
            score: bool = False, threads: int | None = None, progress: bool = True) -> dict:
    """One training run of the plan (train, or fine-tune ``pretrained``): reuse it when finished,
    resume it when interrupted; with ``score``, then evaluate it on its session. Returns
    ``{"best": checkpoint path, "scores": score_model's row or None}``. Runs in a worker process too."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    cfg, run_dir = TrainConfig.from_dict(cfg), Path(run_dir)
    if _finished(run_dir, cfg, sessions):
        best = run_dir / "best.safetensors"
    elif pretrained is None:
        best = train(sessions, cfg, run_dir, resume=(run_dir / "last.pt").exists(), progress=progress)
    else:
        best = finetune(pretrained, sessions[0], cfg, run_dir, resume=(run_dir / "last.pt").exists(),
                        progress=progress)
    scores = score_model(Path(best), sessions[0], cfg.masking, cfg.device) if score else None
    return {"best": str(best), "scores": scores}


def _run_all(jobs: dict, workers: int, log, progress: bool = True) -> dict:
    """Run {name: kwargs of run_job} with ``workers`` processes (inline when 1); {name: its result}.

    A job whose ``after`` names another job waits for it and fine-tunes its best checkpoint. A free
    worker takes the first job, in the order given, whose dependency is done (list the longest first).
    """
    pending, done = dict(jobs), {}
    for name, job in jobs.items():
        if job.get("after") not in (None, *jobs):
            raise ValueError(f"job {name!r} waits for {job['after']!r}, which is not a job of this plan")

    def take_next():
        name = next((n for n, j in pending.items() if j.get("after") in (None, *done)), None)
        if name is None:
            return None, None
        job = dict(pending.pop(name))
        after = job.pop("after", None)
        return name, {**job, **({"pretrained": done[after]["best"]} if after else {})}

    if workers <= 1:
        while pending:
            name, kwargs = take_next()
            done[name] = run_job(**kwargs, progress=progress)
            log(f"  finished {name}")
        return done
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {}
        while pending or running:
            while len(running) < workers:  # a job is chosen only when a worker is free for it
                name, kwargs = take_next()
                if name is None:
                    break
                running[pool.submit(run_job, **kwargs, threads=1, progress=False)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                done[name] = future.result()
                log(f"  finished {name}")
    return done


def score_model(best: Path, session: Session, masking: str, device: str = "auto") -> dict[str, float]:
    """All four activity tasks and behaviour decoding of one checkpoint on one session."""
    from mtm.train import pick_device

    model, extra = checkpoint.load_model(best, device=pick_device(device))
    checkpoint.check_session_fits(best, extra, session)
    row = {task: result.mean_bps for task, result in evaluate_model(model, session, masking).items()}
    keys = [k for k in BEHAVIOR_KEYS if k in session.behavior]
    row.update(decode_behavior(session, keys, model=model, training_masking=masking))
    return row


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}


def default_workers(device: str) -> int:
    """Parallel training runs: one per CPU core (up to 2) on the CPU, one at a time on a GPU."""
    import os

    from mtm.train import pick_device

    return 1 if pick_device(device).type == "cuda" else max(1, min(2, os.cpu_count() or 1))


def run_reproduction(pretrain: list[Session], heldout: list[Session], plan: Plan, out, log=print,
                     workers: int | None = None, progress: bool = True) -> dict:
    """Train, fine-tune and evaluate everything; returns {row name: {column: mean over held-out sessions}}.

    Runs go to ``workers`` processes (default :func:`default_workers`), pretraining first; a
    fine-tuning run starts as soon as its pretraining is done, and each single-session or fine-tuned
    model is evaluated by the worker that trained it. ``progress``: progress bars of runs trained in
    this process.
    """
    out = Path(out)
    started = time.perf_counter()
    workers = default_workers(plan.device) if workers is None else workers

    def stamp(message):
        log(f"[{time.perf_counter() - started:6.0f} s] {message}")

    jobs, rows = {}, {}
    if pretrain:  # the longest runs first
        for masking in MASKINGS.values():
            jobs[f"pretrain/{masking}"] = dict(sessions=pretrain, run_dir=str(out / "pretrain" / masking),
                                               cfg=plan.train_config(masking, "pretrain").to_dict())
    for stage in ("single", "finetune") if pretrain else ("single",):
        for label, masking in MASKINGS.items():
            cfg = plan.train_config(masking, stage).to_dict()
            row = f"Single-session, {label}" if stage == "single" else \
                f"Multi-session ({len(pretrain)} pretrain), {label}"
            for session in heldout:
                name = f"{stage}/{masking}/{session.eid}"
                jobs[name] = dict(sessions=[session], cfg=cfg, run_dir=str(out / name), score=True,
                                  after=f"pretrain/{masking}" if stage == "finetune" else None)
                rows[name] = row
    stamp(f"training {len(jobs)} runs ({workers} at a time): pretraining, single-session and fine-tuning; "
          "each single-session and fine-tuned model is evaluated when it finishes")
    done = _run_all(jobs, workers, stamp, progress)
    per_session: dict[str, list[dict[str, float]]] = {}
    for name, row in rows.items():
        per_session.setdefault(row, []).append(done[name]["scores"])
    stamp("oracles and baselines")
    references: dict[str, list[dict[str, float]]] = {}
    for session in heldout:
        for label, row in reference_rows(session, BEHAVIOR_KEYS).items():
            references.setdefault(label, []).append(row)
    table = {name: _mean_rows(rows) for name, rows in {**per_session, **references}.items()}
    table_path = write_tables(table, per_session, out, models=list(per_session))
    stamp(f"done; tables in {table_path}")
    return table


def results_markdown(table: dict, models: list[str]) -> str:
    """This run's table, its reference rows explained, and each model's share of the oracle."""
    columns = list(TASKS) + list(BEHAVIOR_KEYS)
    markdown = (results_table(table, columns) + "\n\nActivity: bits per spike (per-neuron, NaN-mean). "
                "Choice: accuracy. Whisker ME: R^2. " + REFERENCE_NOTE + "\n")
    if ORACLE_ROW in table:
        markdown += ("\n### Share of the oracle (activity tasks)\n\n"
                     + oracle_share_table({m: table[m] for m in models}, table[ORACLE_ROW], list(TASKS)) + "\n")
    return markdown


def write_tables(table: dict, per_session: dict, out: Path, models: list[str] | None = None) -> Path:
    """results.md (ours beside the paper's), results.csv and per_session.json in ``out``.

    ``models``: the rows that are trained models (default: those of ``per_session``)."""
    from mtm.atomic import atomic_write

    columns = list(TASKS) + list(BEHAVIOR_KEYS)
    models = list(per_session) if models is None else models
    markdown = ("## This run (mean over held-out sessions)\n\n" + results_markdown(table, models)
                + "\n## The paper, NDT1-stitch, 5 held-out IBL sessions (Table 2)\n\n"
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

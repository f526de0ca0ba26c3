"""The one scheduler every experiment shares: training runs in worker processes, finished runs
reused, interrupted ones resumed, each single-session or fine-tuned model scored by the worker that
trained it; every model trained once per seed (its runs under ``out/seed<k>/``, the seed in its
config and so in the run's identity); the means over seeds and held-out sessions with their 95 %
intervals and the paired differences of :mod:`mtm.stats`, with the reference rows beside the models."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mtm import checkpoint
from mtm.baselines import reference_rows
from mtm.checkpoint import RunFolder, data_record
from mtm.data import Session
from mtm.decoding import decode_behavior
from mtm.device import pick_device
from mtm.evaluate import evaluate_model, task_scores
from mtm.paths import safe_name
from mtm.reproduce.plan import BEHAVIOR_KEYS, SCRATCH_STEPS, batches_per_epoch, epochs_for_steps
from mtm.stats import Interval, paired_difference, seed_interval
from mtm.train import TrainConfig, finetune, train

OWN_ATTENTION_WHISKER = "whisker_me (own attention)"


def _finished(run_dir: Path, cfg: TrainConfig, sessions: list[Session]) -> bool:
    """Whether ``run_dir`` holds this very run (same settings, same sessions, same data), complete
    (:meth:`mtm.checkpoint.RunFolder.finished`: a folder holding another run is an error, and
    nothing in it is touched: each plan needs its own output folder)."""
    identity = RunFolder.identity(cfg.to_dict(), [[s.eid, s.n_neurons] for s in sessions], data_record(sessions))
    return RunFolder(run_dir).finished(identity, cfg.epochs)


def run_job(sessions: list[Session], cfg: dict, run_dir: str, pretrained: str | None = None,
            score: bool = False, threads: int | None = None, progress: bool = True,
            extra_scores: tuple[str, ...] = (), behavior: bool = True) -> dict:
    """One training run of the plan (train, or fine-tune ``pretrained``): reuse it when finished,
    resume it when interrupted; with ``score``, then evaluate it on its session (``extra_scores``,
    ``behavior``: see :func:`score_model`). Returns ``{"best": checkpoint path, "scores":
    score_model's row or None}``. Runs in a worker process too."""
    if threads:
        torch.set_num_threads(threads)
    cfg, folder = TrainConfig.from_dict(cfg), RunFolder(run_dir)
    if _finished(folder.path, cfg, sessions):
        best = folder.best
    elif pretrained is None:
        best = train(sessions, cfg, folder.path, resume=folder.state.exists(), progress=progress)
    else:
        best = finetune(pretrained, sessions[0], cfg, folder.path, resume=folder.state.exists(), progress=progress)
    scores = score_model(Path(best), sessions[0], cfg.masking, cfg.device, extra_scores, behavior) if score else None
    return {"best": str(best), "scores": scores}


REFERENCES = "references"


def reference_job(session: Session, threads: int | None = None) -> dict:
    """The reference rows of one held-out session (a job of :func:`_run_all`)."""
    if threads:
        torch.set_num_threads(threads)
    return {REFERENCES: reference_rows(session, BEHAVIOR_KEYS)}


def _call(job: dict, **settings) -> dict:
    """Run one job of :func:`_run_all`: reference rows, or a training run (:func:`run_job`)."""
    if REFERENCES in job:
        return reference_job(job[REFERENCES], settings.get("threads"))
    return run_job(**job, **settings)


def _run_all(jobs: dict, workers: int, log, progress: bool = True, references: list[Session] = ()) -> dict:
    """Run {name: kwargs of run_job} with ``workers`` processes (inline when 1); {name: its result}.

    A job whose ``after`` names another job waits for it and fine-tunes its best checkpoint. A free
    worker takes the first job, in the order given, whose dependency is done (list the longest first).
    ``references``: held-out sessions whose reference rows (:func:`mtm.baselines.reference_rows`: the
    linear baseline and, on synthetic sessions, the oracles and the Bayes reference) are computed as jobs
    too, ``references/<eid>``, first in the order (on the CPU each takes about as long as a pretraining
    run), rather than by the main process after the training, when one core would wait
    (:func:`collect` uses them).
    """
    jobs = {**{f"{REFERENCES}/{safe_name(s.eid)}": {REFERENCES: s} for s in references}, **jobs}
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
            done[name] = _call(kwargs, progress=progress)
            log(f"  finished {name}")
        return done
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {}
        while pending or running:
            while len(running) < workers:  # a job is chosen only when a worker is free for it
                name, kwargs = take_next()
                if name is None:
                    break
                running[pool.submit(_call, kwargs, threads=1, progress=False)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                done[name] = future.result()
                log(f"  finished {name}")
    return done


def score_model(best: Path, session: Session, masking: str, device: str = "auto",
                extra_scores: tuple[str, ...] = (), behavior: bool = True) -> dict[str, float]:
    """All four activity tasks and (with ``behavior``) behaviour decoding of one checkpoint on one session.

    ``whisker_me`` is decoded with causal attention for every model, as the reference does;
    ``extra_scores`` may ask for ``whisker_me (own attention)``: causal attention only for a model
    trained with it (the temporal baseline then decodes with the bidirectional attention it was
    trained with)."""
    model, extra = checkpoint.load_model(best, device=pick_device(device))
    checkpoint.check_session_fits(best, extra, session)
    row = task_scores(evaluate_model(model, session, masking))
    keys = [k for k in BEHAVIOR_KEYS if k in session.behavior] if behavior else []
    row.update(decode_behavior(session, keys, model=model, training_masking=masking))
    for name in extra_scores:
        if name != OWN_ATTENTION_WHISKER:
            raise ValueError(f"extra_scores: expected {OWN_ATTENTION_WHISKER!r}, got {name!r}")
        if "whisker_me" in session.behavior:
            row[name] = decode_behavior(session, ["whisker_me"], model=model, training_masking=masking,
                                        attention="trained")["whisker_me"]
    return row


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    """The NaN-mean of each column over rows (e.g. over held-out sessions)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}


def default_workers(device: str) -> int:
    """Parallel training runs: one per CPU core (up to 2) on the CPU, one at a time on a GPU."""
    return 1 if pick_device(device).type == "cuda" else max(1, min(2, os.cpu_count() or 1))


def stamp_log(log):
    """``log`` with the seconds since now in front of every message."""
    started = time.perf_counter()
    return lambda message: log(f"[{time.perf_counter() - started:6.0f} s] {message}")


def add_single(jobs: dict, rows: dict, heldout: list[Session], cfg: TrainConfig, out: Path, key: str, row: str,
               seeds=(0,), extra_scores: tuple[str, ...] = (), epochs=None) -> None:
    """Add one single-session run per seed and held-out session, ``out/seed<k>/single/<key>/<eid>``,
    scored as ``row``. ``epochs``: a function session -> that session's epochs (default: ``cfg``'s),
    e.g. :func:`from_scratch_epochs` for as many optimiser steps as pretraining and fine-tuning."""
    for seed in seeds:
        for session in heldout:
            name = f"seed{seed}/single/{key}/{safe_name(session.eid)}"
            run_cfg = replace(cfg, seed=seed, **({"epochs": epochs(session)} if epochs else {}))
            jobs[name] = dict(sessions=[session], cfg=run_cfg.to_dict(), run_dir=str(out / name), score=True,
                              extra_scores=tuple(extra_scores))
            rows[name] = (row, seed, session.eid)


def add_pretrain_finetune(pretrain_jobs: dict, jobs: dict, rows: dict, pretrain: list[Session],
                          heldout: list[Session], pretrain_cfg: TrainConfig, finetune_cfg: TrainConfig, out: Path,
                          key: str, row: str, seeds=(0,)) -> None:
    """Add, for every seed, a pretraining run ``out/seed<k>/pretrain/<key>`` and its fine-tuning on
    every held-out session (the same seed), scored as ``row``."""
    for seed in seeds:
        pretrain_name = f"seed{seed}/pretrain/{key}"
        pretrain_jobs[pretrain_name] = dict(sessions=pretrain, cfg=replace(pretrain_cfg, seed=seed).to_dict(),
                                            run_dir=str(out / pretrain_name))
        for session in heldout:
            name = f"seed{seed}/finetune/{key}/{safe_name(session.eid)}"
            jobs[name] = dict(sessions=[session], cfg=replace(finetune_cfg, seed=seed).to_dict(),
                              run_dir=str(out / name), score=True, after=pretrain_name)
            rows[name] = (row, seed, session.eid)


def from_scratch_epochs(pretrain: list[Session], pretrain_cfg: TrainConfig, finetune_cfg: TrainConfig):
    """session -> the epochs that give a from-scratch run on it as many optimiser steps as pretraining
    on ``pretrain`` and fine-tuning on it together (to the nearest whole epoch): equal total compute, so
    the comparison is about the other sessions' data, not about more training."""
    pretrain_steps = pretrain_cfg.epochs * batches_per_epoch(pretrain, pretrain_cfg.batch_size)

    def epochs(session: Session) -> int:
        steps = pretrain_steps + finetune_cfg.epochs * batches_per_epoch([session], finetune_cfg.batch_size)
        return epochs_for_steps([session], finetune_cfg.batch_size, steps)
    return epochs


def scratch_epochs(scratch_steps: str, pretrain: list[Session], pretrain_cfg: TrainConfig,
                   finetune_cfg: TrainConfig):
    """session -> the epochs of a from-scratch run on it beside models pretrained on ``pretrain``
    (:data:`SCRATCH_STEPS`): "heldout", fine-tuning's epochs; "total", :func:`from_scratch_epochs`.
    None without pretraining sessions (the run's own epochs)."""
    if scratch_steps not in SCRATCH_STEPS:
        raise ValueError(f"scratch_steps: expected one of {list(SCRATCH_STEPS)}, got {scratch_steps!r}")
    if not pretrain:
        return None
    if scratch_steps == "heldout":
        return lambda session: finetune_cfg.epochs
    return from_scratch_epochs(pretrain, pretrain_cfg, finetune_cfg)


def equal_steps_note(pretrain: list[Session], heldout: list[Session], pretrain_cfg: TrainConfig,
                     finetune_cfg: TrainConfig, scratch_steps: str = "total") -> str:
    """A sentence giving the optimiser steps of the from-scratch and the pretrained runs on each
    held-out session (:func:`scratch_epochs`)."""
    batch = finetune_cfg.batch_size
    pretrain_steps = pretrain_cfg.epochs * batches_per_epoch(pretrain, pretrain_cfg.batch_size)
    epochs = scratch_epochs(scratch_steps, pretrain, pretrain_cfg, finetune_cfg)
    parts = [f"{s.eid}: {epochs(s) * batches_per_epoch([s], batch)} from scratch, {pretrain_steps} + "
             f"{finetune_cfg.epochs * batches_per_epoch([s], batch)} pretrained and fine-tuned" for s in heldout]
    if scratch_steps == "heldout":
        lead = ("Equal steps on the held-out session, the paper's comparison: each from-scratch model is trained for "
                "as many optimiser steps as fine-tuning, and the pretrained model's pretraining, done once and reused "
                "for every held-out session, is not counted (")
    else:
        lead = ("Equal total compute: each from-scratch model is trained for as many optimiser steps as pretraining "
                "and fine-tuning together, to the nearest whole epoch (")
    return lead + "; ".join(parts) + ")."


def collect(done: dict, rows: dict, heldout: list[Session], log) -> tuple[dict, dict]:
    """(table, runs): runs = {row: [{"seed", "session", "scores"}]}, one record per scored run;
    table = {row: {column: mean over seeds of the mean over held-out sessions}}, then the reference
    rows (:func:`mtm.baselines.reference_rows`, the same for every seed) averaged over sessions, taken
    from ``done`` where :func:`_run_all` computed them."""
    runs: dict[str, list[dict]] = {}
    for name, (row, seed, eid) in rows.items():
        runs.setdefault(row, []).append({"seed": seed, "session": eid, "scores": done[name]["scores"]})
    computed = {s.eid: done[key][REFERENCES] for s in heldout if (key := f"{REFERENCES}/{safe_name(s.eid)}") in done}
    if len(computed) < len(heldout):
        log("oracles and baselines")
    return with_references(runs, heldout, computed), runs


def with_references(runs: dict[str, list[dict]], heldout: list[Session], computed: dict | None = None) -> dict:
    """{row: {column: mean}} of the model rows (:func:`row_means`), then of the reference rows of
    every held-out session (mean over sessions); ``computed``: {eid: reference rows} already computed
    (:func:`_run_all`), the others computed here."""
    references: dict[str, list[dict[str, float]]] = {}
    for session in heldout:
        rows = (computed or {}).get(session.eid) or reference_rows(session, BEHAVIOR_KEYS)
        for label, row in rows.items():
            references.setdefault(label, []).append(row)
    return {**{name: row_means(records) for name, records in runs.items()},
            **{name: mean_rows(rows) for name, rows in references.items()}}


def cells(records: list[dict], column: str) -> dict[tuple[int, str], float]:
    """{(seed, session): score} of one column of a row's records."""
    return {(r["seed"], r["session"]): float(r["scores"].get(column, math.nan)) for r in records}


def record_columns(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(c for r in records for c in r["scores"]))


def row_intervals(records: list[dict]) -> dict[str, Interval]:
    """{column: mean over seeds with its 95 % interval} of one row's records (:func:`mtm.stats.seed_interval`)."""
    return {column: seed_interval(cells(records, column)) for column in record_columns(records)}


def row_means(records: list[dict]) -> dict[str, float]:
    """{column: mean over seeds of the mean over sessions} of one row's records."""
    return {column: interval.mean for column, interval in row_intervals(records).items()}


def paired_differences(runs: dict[str, list[dict]], comparisons) -> dict[str, dict[str, Interval]]:
    """{label: {column: a - b with its 95 % interval}} for every (label, row a, row b) of
    ``comparisons``, cell by cell (same seed, same session; :func:`mtm.stats.paired_difference`)."""
    differences = {}
    for label, a, b in comparisons:
        for name in (a, b):
            if name not in runs:
                raise ValueError(f"comparisons: {label!r} names the row {name!r}, which this experiment did not train")
        columns = [c for c in record_columns(runs[a]) if c in record_columns(runs[b])]
        differences[label] = {c: paired_difference(cells(runs[a], c), cells(runs[b], c)) for c in columns}
    return differences

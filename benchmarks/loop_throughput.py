"""Throughput of the training loop on the CPU: optimiser steps per second of :class:`mtm.train.Trainer`
on chapter 5's session (1,600 trials x 300 neurons, 70 steps an epoch) with the ``small`` preset,
against variants of the loop, measured in one run.

Each variant trains whole epochs (the trainer's own ``train_epoch``, plus ``validate`` where the variant
validates that epoch); the variants take turns, round after round, so a machine whose load drifts
slows them alike, and each variant's figure is its median over the rounds. Ratios are to ``current``.

    python benchmarks/loop_throughput.py [--rounds 5] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtm.data import synthetic_session  # noqa: E402
from mtm.models import build_model, train_mean_counts  # noqa: E402
from mtm.train import TrainConfig, Trainer  # noqa: E402


def make_trainer(session, cfg: TrainConfig, folder: Path, optimizer: str | None = None) -> Trainer:
    torch.manual_seed(0)
    model = build_model(cfg.model, [(session.eid, session.n_neurons)])
    model.init_rates(session.eid, train_mean_counts(session))
    trainer = Trainer(model, [session], cfg, folder, progress=False)
    if optimizer is not None:  # the loop's AdamW rebuilt with another implementation, same settings
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        flag = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False)}[optimizer]
        trainer.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **flag)
        trainer.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            trainer.optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * trainer.batches_per_epoch,
            pct_start=cfg.warmup, div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)
    return trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="epochs a variant trains in each round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--masking", default="mtm")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    session = synthetic_session(0, 1600, 300)
    base = TrainConfig.preset("small", masking=args.masking, epochs=1000)
    variants = {  # name: (config, optimizer implementation, validate every n epochs)
        "current": (base, None, 1),
        "AdamW for-loop": (base, "for-loop", 1),
        "AdamW foreach": (base, "foreach", 1),
        "AdamW fused": (base, "fused", 1),
        "validate every 5th epoch": (base, None, 5),
        "no validation": (base, None, 0),
        # this CPU has avx512_bf16: does bf16 autocast (mtm.device, precision "bf16") make steps cheaper?
        "bf16 autocast": (replace(base, precision="bf16"), None, 1),
    }
    if args.compile:
        variants["torch.compile"] = (replace(base, compile=True), None, 1)
    with tempfile.TemporaryDirectory() as tmp:
        trainers, setup = {}, {}
        for i, (name, (cfg, optimizer, _)) in enumerate(variants.items()):
            start = time.perf_counter()
            trainers[name] = make_trainer(session, cfg, Path(tmp) / f"run{i}", optimizer)
            trainers[name].train_epoch(0)  # warm-up (and compiling)
            setup[name] = time.perf_counter() - start
        steps = {name: [] for name in variants}
        epoch = 1
        for _ in range(args.rounds):
            for name, (_, _, every) in variants.items():
                trainer = trainers[name]
                start = time.perf_counter()
                for e in range(epoch, epoch + args.epochs):
                    trainer.train_epoch(e)
                    if every and e % every == 0:
                        trainer.validate()
                seconds = time.perf_counter() - start
                steps[name].append(args.epochs * trainer.batches_per_epoch / seconds)
            epoch += args.epochs
    base_rate = statistics.median(steps["current"])
    print(f"Chapter 5's session ({session.n_trials} trials x {session.n_neurons} neurons), small preset, "
          f"{args.masking}, batch 16, {trainers['current'].batches_per_epoch} steps an epoch, {args.threads} "
          f"threads, torch {torch.__version__}; median of {args.rounds} rounds of {args.epochs} epochs each\n")
    print("| variant | steps/s (median) | min | max | ratio to current | first epoch (s) |")
    print("|---|---|---|---|---|---|")
    for name, rates in steps.items():
        med = statistics.median(rates)
        print(f"| {name} | {med:.1f} | {min(rates):.1f} | {max(rates):.1f} | {med / base_rate:.2f} | "
              f"{setup[name]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

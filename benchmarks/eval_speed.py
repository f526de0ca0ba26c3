"""Time to evaluate all four activity tasks (mtm.evaluate.evaluate_model) on one paper-size test split:
a synthetic session of 700 neurons and 800 trials (160 test trials), with the paper-size NDT1-stitch
(``--model paper``, the default) or the CPU presets' small one (``--model small``).

Co-smoothing and intra-region need one configuration per neuron, so a test split costs up to
2 x 700 x 160 = 224,000 trial passes of the model, batched into large forward passes (fewer: a
configuration whose hidden neurons did not spike in a trial shares that trial's pass). With
``--full`` (default on a GPU) the real evaluation runs end to end; otherwise (default on a CPU, where
it takes hours) the throughput of evaluation-sized forward passes is measured and the full time is
projected from it. The host's share, planning the passes (mtm.evaluate.heldout_passes), is timed
on its own.

    python benchmarks/eval_speed.py                   # GPU: full run; CPU: measured throughput + projection
    python benchmarks/eval_speed.py --device cpu --full
    python benchmarks/eval_speed.py --model small --full   # the model a CPU user trains
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from mtm.data import synthetic_session
from mtm.evaluate import TASKS, evaluate_model, heldout_passes, scored_bins, task_configurations
from mtm.models import ModelConfig, build_model
from mtm.device import autocast_dtype


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plan_tasks(session, split: str = "test") -> dict[str, dict]:
    """Per task: its held-out configurations, the trial passes it runs and the host seconds of
    planning them (mtm.evaluate.heldout_passes, as evaluate_model calls it)."""
    test = np.array(session.spikes[session.splits[split]])
    plans = {}
    for task in TASKS:
        hidden, scored = task_configurations(task, session.regions)
        seen = test[:, :session.n_bins - len(scored_bins(task, session.n_bins))] if task == "forward-pred" else test
        start = time.perf_counter()
        passes = heldout_passes(hidden, scored.argmax(axis=0), seen.any(axis=1))[0]
        plans[task] = dict(configurations=len(hidden), passes=len(passes), planning_s=time.perf_counter() - start)
    return plans


def forward_throughput(model, session, dtype, batch: int, repeats: int, split: str = "test") -> float:
    """Trial passes per second of evaluation-sized forward passes (``batch`` trials of the split)."""
    device = next(model.parameters()).device
    trials = np.array(session.spikes[session.splits[split]])
    x = torch.as_tensor(trials).to(device).float()
    x = x.repeat(-(-batch // len(trials)), 1, 1)[:batch]
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        model(x, session.eid, 0)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x, session.eid, 0)
        sync(device)
    return batch * repeats / (time.perf_counter() - start)


def time_tasks(model, session, dtype, batch: int) -> list[dict]:
    """Each task of evaluate_model end to end: seconds and peak GPU memory (GiB; NaN on the CPU)."""
    device = next(model.parameters()).device
    rows = []
    for task in TASKS:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        evaluate_model(model, session, "mtm", tasks=(task,), batch_trials=batch, autocast_dtype=dtype)
        sync(device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        rows.append(dict(task=task, seconds=seconds, peak_gib=peak))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--full", action="store_true", help="run the whole evaluation (default on a GPU)")
    parser.add_argument("--model", choices=["paper", "small"], default="paper", help="the model's sizes")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default="auto")
    parser.add_argument("--batch-trials", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    full = args.full or device.type == "cuda"
    dtype = autocast_dtype(args.precision, device)
    batch = args.batch_trials or (2048 if device.type == "cuda" else 128)

    session = synthetic_session(0, n_trials=800, n_neurons=700)
    torch.manual_seed(0)
    model = build_model(getattr(ModelConfig, args.model)(), [(session.eid, session.n_neurons)]).to(device).eval()
    n_test = len(session.splits["test"])
    plans = plan_tasks(session)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}; precision {dtype or 'fp32'}; "
          f"{n_test} test trials x 700 neurons; {args.model} model; {batch} trial passes per forward")
    print()
    throughput = forward_throughput(model, session, dtype, batch, repeats=10 if device.type == "cuda" else 2)

    print("| task | configurations | trial passes run | planning (host s) | seconds |")
    print("|---|---|---|---|---|")
    total, peak = 0.0, float("nan")
    if full:
        for row in time_tasks(model, session, dtype, batch):
            plan = plans[row["task"]]
            total += row["seconds"]
            peak = np.nanmax([peak, row["peak_gib"]])
            print(f"| {row['task']} | {plan['configurations']} | {plan['passes']:,} | {plan['planning_s']:.3f} "
                  f"| {row['seconds']:.2f} |")
        print(f"| all four | | {sum(p['passes'] for p in plans.values()):,} "
              f"| {sum(p['planning_s'] for p in plans.values()):.3f} | {total:.2f} |")
    else:
        for task, plan in plans.items():
            seconds = plan["passes"] / throughput
            total += seconds
            print(f"| {task} | {plan['configurations']} | {plan['passes']:,} | {plan['planning_s']:.3f} "
                  f"| {seconds:.0f} (projected) |")
        print(f"| all four | | {sum(p['passes'] for p in plans.values()):,} "
              f"| {sum(p['planning_s'] for p in plans.values()):.3f} | {total:.0f} (projected, {total / 60:.1f} min) |")
    print()
    print(f"forward throughput: {throughput:,.0f} trial passes/s; peak GPU memory {peak:.1f} GiB" if device.type == "cuda"
          else f"forward throughput: {throughput:,.0f} trial passes/s")
    print("targets (Performance issue): under 5 s on the GPU, under 2 minutes on the 2-core CPU")


if __name__ == "__main__":
    main()

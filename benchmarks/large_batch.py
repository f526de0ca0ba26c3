"""Does a large batch train as well as the paper's 16? Same sessions, same number of epochs, MtM
masking; the learning rate scaled with the batch (square-root and linear rules). Reports the best
validation bits per spike and the held-out co-smoothing / inter-region scores of each run.

    python benchmarks/large_batch.py                        # small preset on the CPU (minutes)
    python benchmarks/large_batch.py --preset paper --batches 16 256 512 --sessions 4   # a GPU
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
import time
from dataclasses import replace

import numpy as np

from mtm.checkpoint import load_model
from mtm.data import synthetic_sessions
from mtm.evaluate import evaluate_model
from mtm.device import pick_device
from mtm.train import TrainConfig, train


def compare_batches(sessions, base: TrainConfig, batches, tasks=("co-smooth", "inter-region"), progress=None):
    """Train ``base`` (its lr is the batch-16 rate) at each batch size for the same epochs; a batch
    other than 16 runs with the lr scaled by sqrt(batch / 16) and by batch / 16. Returns one dict per
    run: batch, rule, lr, best and last validation bps, the mean per-neuron bps of ``tasks`` on the
    sessions' test splits, median trials/s and seconds. ``progress(row)`` is called after each run."""
    rows = []
    for batch in batches:
        rules = [("base", 1.0)] if batch == 16 else [("sqrt", math.sqrt(batch / 16)), ("linear", batch / 16)]
        for rule, factor in rules:
            cfg = replace(base, batch_size=batch, lr=base.lr * factor)
            with tempfile.TemporaryDirectory() as run_dir:
                start = time.perf_counter()
                best = train(sessions, cfg, run_dir, progress=False)
                seconds = time.perf_counter() - start
                with open(f"{run_dir}/log.csv") as fh:
                    log = list(csv.DictReader(fh))
                scores = {}
                if tasks:
                    model, _ = load_model(best, device=pick_device(base.device))
                    results = [evaluate_model(model, s, "mtm", tasks=tasks) for s in sessions]
                    scores = {task: float(np.mean([r[task].mean_bps for r in results])) for task in tasks}
            validated = [float(r["val_bps"]) for r in log if r.get("val_bps")]
            row = dict(batch=batch, rule=rule, lr=cfg.lr, epochs=cfg.epochs, best_val_bps=max(validated),
                       last_val_bps=validated[-1], scores=scores,
                       trials_per_s=float(np.median([float(r["trials_per_s"]) for r in log])), seconds=seconds)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["small", "paper"], default="small")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    sessions = synthetic_sessions(args.sessions, seed=100, preset=args.preset)
    base = TrainConfig.preset(args.preset, masking="mtm", device=args.device,
                              **({"epochs": args.epochs} if args.epochs else {}))
    print(f"{args.preset} preset, {len(sessions)} sessions ({sum(len(s.splits['train']) for s in sessions)} "
          f"training trials), {base.epochs} epochs, base lr {base.lr:g} at batch 16")
    print()
    print("| batch | lr rule | lr | best val bps | co-smooth | inter-region | trials/s | minutes |")
    print("|---|---|---|---|---|---|---|---|")

    def show(row):
        print(f"| {row['batch']} | {row['rule']} | {row['lr']:.2g} | {row['best_val_bps']:.3f} "
              f"| {row['scores']['co-smooth']:.3f} | {row['scores']['inter-region']:.3f} | {row['trials_per_s']:.0f} "
              f"| {row['seconds'] / 60:.1f} |", flush=True)

    compare_batches(sessions, base, args.batches, progress=show)
    print()
    print("Scores on the sessions' test splits (per-neuron bits per spike, NaN-mean); val bps: pooled, masked.")


if __name__ == "__main__":
    main()

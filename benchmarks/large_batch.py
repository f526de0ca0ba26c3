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

import numpy as np

from mtm.checkpoint import load_model
from mtm.data import synthetic_sessions
from mtm.evaluate import evaluate_model
from mtm.train import TrainConfig, pick_device, train


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
    for batch in args.batches:
        rules = [("base", 1.0)] if batch == 16 else [("sqrt", math.sqrt(batch / 16)), ("linear", batch / 16)]
        for rule, factor in rules:
            cfg = TrainConfig.preset(args.preset, masking="mtm", device=args.device, batch_size=batch,
                                     lr=base.lr * factor, epochs=base.epochs)
            with tempfile.TemporaryDirectory() as run_dir:
                start = time.perf_counter()
                best = train(sessions, cfg, run_dir, progress=False)
                minutes = (time.perf_counter() - start) / 60
                with open(f"{run_dir}/log.csv") as fh:
                    rows = list(csv.DictReader(fh))
                model, _ = load_model(best, device=pick_device(args.device))
                scores = [evaluate_model(model, s, "mtm", tasks=("co-smooth", "inter-region")) for s in sessions]
            best_val = max(float(r["val_bps"]) for r in rows if r.get("val_bps"))
            speed = np.median([float(r["trials_per_s"]) for r in rows])
            co = np.mean([s["co-smooth"].mean_bps for s in scores])
            inter = np.mean([s["inter-region"].mean_bps for s in scores])
            print(f"| {batch} | {rule} | {cfg.lr:.2g} | {best_val:.3f} | {co:.3f} | {inter:.3f} | {speed:.0f} "
                  f"| {minutes:.1f} |", flush=True)
    print()
    print("Scores on the sessions' test splits (per-neuron bits per spike, NaN-mean); val bps: pooled, masked.")


if __name__ == "__main__":
    main()

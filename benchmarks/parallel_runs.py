"""Independent training runs on the CPU: one after the other on every thread, or side by side in
worker processes of one thread each (:func:`mtm.book.train_all`, as chapters 4-6 train their pair for
every seed)? Wall seconds to train the same runs both ways, measured in one run, alternating, median of
the rounds; every round trains in fresh folders.

    python benchmarks/parallel_runs.py [--rounds 3] [--epochs 5] [--threads 2]
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

from mtm.book import train_all  # noqa: E402
from mtm.data import synthetic_session  # noqa: E402
from mtm.train import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run")
    parser.add_argument("--threads", type=int, default=2, help="threads of the one-after-the-other runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    session = synthetic_session(0, 1600, 300)  # chapters 4-6's session
    configs = [TrainConfig.preset("small", masking=masking, epochs=args.epochs) for masking in ("temporal", "mtm")]
    ways = {f"one after the other, {args.threads} threads": 1, "side by side, 2 processes of 1 thread": 2}
    seconds = {way: [] for way in ways}
    for _ in range(args.rounds):
        for way, workers in ways.items():
            with tempfile.TemporaryDirectory() as tmp:
                runs = {Path(tmp) / cfg.masking: ([session], replace(cfg)) for cfg in configs}
                start = time.perf_counter()
                train_all(runs, workers=workers)
                seconds[way].append(time.perf_counter() - start)
    first = statistics.median(seconds[next(iter(ways))])
    steps = args.epochs * -(-int(0.7 * session.n_trials) // configs[0].batch_size)
    print(f"Chapters 4-6's session ({session.n_trials} trials x {session.n_neurons} neurons), small preset, "
          f"temporal and MtM, {args.epochs} epochs ({steps:,} steps) each, torch {torch.__version__}; median of "
          f"{args.rounds} rounds (process start-up included)\n")
    print("| how | wall s (median) | min | max | speed-up |")
    print("|---|---|---|---|---|")
    for way, values in seconds.items():
        median = statistics.median(values)
        print(f"| {way} | {median:.1f} | {min(values):.1f} | {max(values):.1f} | {first / median:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

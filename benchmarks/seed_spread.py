"""Seed spread of single-session runs on the transfer study's small world.

One synthetic session (seed 0 of the ``small`` session preset, 200 trials x 64 neurons: 140 training,
20 validation, 40 test trials); each seed trained with the ``small`` training preset for ``--epochs``
epochs through :func:`mtm.train.train`, its selected model scored on the test trials on every activity
task (:mod:`mtm.evaluate`). Prints one JSON line per run and a table of the seeds side by side.

    python benchmarks/seed_spread.py --maskings mtm temporal --seeds 0 1 2            # the small preset
    python benchmarks/seed_spread.py --token-std none --maskings mtm --seeds 0 1 2    # N(0, 1) tokens
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtm.checkpoint import RunFolder, load_model  # noqa: E402
from mtm.data import synthetic_sessions  # noqa: E402
from mtm.evaluate import TASKS, evaluate_model, task_scores  # noqa: E402
from mtm.train import TrainConfig, train  # noqa: E402


def run(masking: str, seed: int, epochs: int, token_std, out: Path) -> dict:
    session = synthetic_sessions(1, seed=0, preset="small", n_trials=200, n_neurons=64)[0]
    model = {} if token_std == "preset" else {"token_std": None if token_std == "none" else float(token_std)}
    cfg = TrainConfig.preset("small", masking=masking, epochs=epochs, seed=seed, model=model)
    best = train([session], cfg, out, progress=False)
    scores = [float(r["val_bps"]) for r in RunFolder(out).read_log() if r.get("val_bps")]
    net, _ = load_model(best)
    test = task_scores(evaluate_model(net, session, masking))
    return dict(masking=masking, seed=seed, token_std=cfg.model.token_std, best_val=max(scores),
                best_epoch=scores.index(max(scores)), test=test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maskings", nargs="+", default=["mtm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--token-std", default="preset", help="'preset', 'none' (N(0, 1)) or a number")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for masking in args.maskings:
            for seed in args.seeds:
                rows.append(run(masking, seed, args.epochs, args.token_std, Path(tmp) / f"{masking}-{seed}"))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| masking | best validation score | " + " | ".join(f"test {t}" for t in TASKS) + " |")
    print("|---" * (2 + len(TASKS)) + "|")
    for masking in args.maskings:
        mine = [r for r in rows if r["masking"] == masking]
        cells = [" / ".join(f"{r['best_val']:.3f}" for r in mine)]
        cells += [" / ".join(f"{r['test'][t]:.3f}" for r in mine) for t in TASKS]
        print(f"| {masking} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

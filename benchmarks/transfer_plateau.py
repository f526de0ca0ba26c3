"""Does the gain of pretraining grow with the pretraining set once every set is pretrained long enough?

The transfer experiment's ``book`` design (``mtm reproduce --experiment transfer --preset book``: 16
pretraining sessions of 400 trials x 100 neurons, sets of 1 / 4 / 16, one held-out session cut to
25 / 50 / 100 training trials, 300 steps on it fine-tuned or from scratch, each at its best
validation epoch, 3 seeds), with the pretraining cap raised from ``--base-epochs`` to ``--epochs``
epochs over the largest set for every set (patience and validation spacing as the design's), full
fine-tuning only, no equal-compute runs. Prints the gain over from scratch (paired by seed, 95 %
intervals), the largest set minus one session, and each pretraining run's length and best score.

    python benchmarks/transfer_plateau.py --out /tmp/plateau --epochs 32 --maskings mtm

Runs from scratch do not depend on pretraining: ``--reuse DIR`` copies the finished ones of an earlier
transfer run of the same design into ``--out`` (the scheduler reuses a finished run whose
configuration and sessions match, and retrains one that does not).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtm.reproduce import Plan  # noqa: E402
from mtm.reproduce import transfer  # noqa: E402
from mtm.reproduce.plan import nested_pool, train_subset  # noqa: E402
from mtm.reproduce.scheduler import _run_all, paired_differences  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=32, help="pretraining cap, epochs over the largest set")
    parser.add_argument("--maskings", nargs="+", default=["mtm"], choices=sorted(transfer.MASKINGS.values()))
    parser.add_argument("--reuse", type=Path, help="an earlier transfer run whose from-scratch runs to reuse")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    fields = dict(transfer.PRESETS["book"], pretrain_epochs=args.epochs, protocols=("full",))
    plan = Plan(preset="book", experiment="transfer", **fields)
    pretrain, heldout = plan.synthetic_sessions()
    transfer.MASKINGS = {label: m for label, m in transfer.MASKINGS.items() if m in args.maskings}
    counts, sizes, protocols = transfer.check_plan(plan, pretrain, heldout)
    pools = [nested_pool(s, *transfer.validation_and_test(plan, s)) for s in heldout]
    levels = {n: [train_subset(p, n) for p in pools] for n in sizes}
    pretrain = [s.replace(rates=None, truth=None) for s in pretrain]
    if args.reuse:
        for masking in args.maskings:
            for old in sorted(args.reuse.glob(f"seed*/single/{masking}")):
                new = args.out / old.relative_to(args.reuse)
                if not new.exists():
                    shutil.copytree(old, new)
    jobs, rows = transfer.schedule(pretrain, levels, plan, args.out, counts, protocols)
    start = time.perf_counter()
    done = _run_all(jobs, args.workers, print, False)
    seconds = time.perf_counter() - start

    runs: dict[str, list[dict]] = {}
    for name, (row, seed, eid) in rows.items():
        runs.setdefault(row, []).append({"seed": seed, "session": eid, "scores": done[name]["scores"]})
    (args.out / "per_session.json").write_text(json.dumps(runs, default=float, indent=1))
    batch = plan.train_config("mtm", "pretrain").batch_size
    pretraining = {(label, c, s): transfer.pretraining_record(args.out / f"seed{s}/pretrain/{m}-{c}", pretrain[:c],
                                                              batch)
                   for label, m in transfer.MASKINGS.items() for c in counts for s in plan.seeds}
    found = transfer.gains(runs, counts, sizes)
    print(f"\n{len(jobs)} runs in {seconds:.0f} s; pretraining at most {args.epochs} epochs over "
          f"{counts[-1]} sessions\n")
    print("## Gain over from scratch\n\n" + transfer.gain_tables(found, sizes))
    pairs = [(f"{label}, {n} trials: {transfer.condition(counts[-1])} - {transfer.condition(c)}",
              transfer.row_name(label, counts[-1], n), transfer.row_name(label, c, n))
             for label in transfer.MASKINGS for n in sizes for c in counts[:-1]]
    print("\n## Largest set minus the smaller ones\n")
    for label, by_task in paired_differences(runs, pairs).items():
        print(f"- {label}: " + " / ".join(f"{t} {by_task[t].format(sign=True)}" for t in transfer.TASKS))
    print("\n## Pretraining runs\n\n" + transfer.pretraining_table(pretraining, plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

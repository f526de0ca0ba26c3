"""Time to quality on the CPU: how fast a training recipe turns CPU seconds into bits per spike.

On chapter 5's session (synthetic seed 0, 1,600 trials x 300 neurons: 1,120 training trials), each
recipe (learning rate and schedule, batch size, width and depth, dropout, weight decay, masking
ratio) trains MtM and temporal masking for a budget of optimiser steps, through the package's own
loop (:func:`mtm.train.train`: validation every epoch, best epoch kept), and the selected model is
scored on every activity task on the first ``EVAL_TRIALS`` trials of the test split, as a share of
the Bayes reference (:mod:`mtm.bayes`) on the same trials.

Seconds are counted two ways: the run's own training wall time (noisy: the machine may be shared)
and steps x the recipe's seconds per step measured alone in one timing pass at the start of the
command (:func:`seconds_per_step`, every recipe timed back to back, so ratios between recipes are
fair). Tables use the second; both are in ``runs.csv``.

    python benchmarks/time_to_quality.py search OUT          # every candidate, MtM, seed 0, equal seconds
    python benchmarks/time_to_quality.py curves OUT --recipes preset tuned --seeds 0 1 2
    python benchmarks/time_to_quality.py timing OUT --threads 2   # seconds per step again, on a quiet machine
    python benchmarks/time_to_quality.py table OUT           # rewrite OUT/results.md from the runs

Finished runs are kept in ``OUT/runs/`` and reused, so an interrupted command continues.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtm.bayes import bayes_results  # noqa: E402
from mtm.checkpoint import load_model  # noqa: E402
from mtm.data import synthetic_session  # noqa: E402
from mtm.evaluate import TASKS, evaluate_model, task_scores  # noqa: E402
from mtm.models import build_model, train_mean_counts  # noqa: E402
from mtm.reproduce.plan import batches_per_epoch  # noqa: E402
from mtm.stats import mean_interval  # noqa: E402
from mtm.train import TrainConfig, Trainer, train  # noqa: E402

SESSION = dict(seed=0, n_trials=1600, n_neurons=300)   # chapter 5's session
EVAL_TRIALS = 96
MASKINGS = ("mtm", "temporal")
SHARES = (0.5, 0.7, 0.8)

#: A recipe: overrides of TrainConfig.preset("small"); "model" holds ModelConfig overrides.
RECIPES = {
    "preset": {},
    "tokens-N01": dict(model=dict(token_std=None)),
    "lr5e-3": dict(lr=5e-3),
    "lr1e-2": dict(lr=1e-2),
    "lr5e-3-warm5": dict(lr=5e-3, warmup=0.05),
    "lr5e-3-drop0.1": dict(lr=5e-3, model=dict(dropout=0.1, embed_dropout=0.1)),
    "lr5e-3-ratio0.5": dict(lr=5e-3, mask_ratio=0.5),
    "lr5e-3-b32": dict(lr=5e-3 * math.sqrt(2), batch_size=32),
    "w128-lr2e-3": dict(model=dict(hidden=128, mlp=256, n_channels=128)),
    "w128-lr5e-3": dict(lr=5e-3, model=dict(hidden=128, mlp=256, n_channels=128)),
    "w32-lr5e-3": dict(lr=5e-3, model=dict(hidden=32, mlp=64, n_channels=32)),
}


def recipe_config(name: str, masking: str, steps: int, session, seed: int = 0) -> TrainConfig:
    """The recipe's TrainConfig for ``steps`` optimiser steps (whole epochs, nearest) on ``session``."""
    overrides = json.loads(json.dumps(RECIPES[name]))
    model = overrides.pop("model", {})
    batch = overrides.get("batch_size", 16)
    epochs = max(1, round(steps / batches_per_epoch([session], batch)))
    return TrainConfig.preset("small", masking=masking, epochs=epochs, seed=seed, model=model, **overrides)


def seconds_per_step(configs: dict[str, TrainConfig], session, rounds: int = 5, steps: int = 15) -> dict:
    """{name: wall seconds of one optimiser step} of every config in ``configs``, validation included in
    its share of an epoch (validation seconds / steps per epoch). The configs take turns, ``rounds``
    times ``steps`` steps each (after 5 warm-up steps), and each figure is its median over the rounds,
    so a machine whose load drifts slows them alike: the ratios between configs are what to read."""
    import statistics
    import tempfile

    from mtm.masking import MTM_SCHEMES, MtMSampler
    from mtm.train import training_step

    with tempfile.TemporaryDirectory() as tmp:
        steppers = {}
        for i, (name, cfg) in enumerate(configs.items()):
            torch.manual_seed(0)
            model = build_model(cfg.model, [(session.eid, session.n_neurons)])
            model.init_rates(session.eid, train_mean_counts(session))
            trainer = Trainer(model, [session], cfg, Path(tmp) / f"run{i}", progress=False)
            data = trainer.data[0]
            trials = data.splits["train"][: cfg.batch_size]
            sampler = MtMSampler(MTM_SCHEMES, seed=0) if cfg.masking == "mtm" else None
            generator = torch.Generator().manual_seed(0)

            def step(trainer=trainer, data=data, trials=trials, sampler=sampler, generator=generator, cfg=cfg):
                scheme, prompt = trainer._scheme(sampler, len(data.regions))
                training_step(trainer.net, data.spikes[trials], data.regions, data.index, scheme, prompt, cfg,
                              generator, trainer.optimizer)
            for _ in range(5):
                step()
            steppers[name] = (trainer, step)
        times = {name: [] for name in configs}
        for _ in range(rounds):
            for name, (trainer, step) in steppers.items():
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                per_step = (time.perf_counter() - start) / steps
                start = time.perf_counter()
                trainer.validate()
                times[name].append(per_step + (time.perf_counter() - start) / trainer.batches_per_epoch)
    return {name: statistics.median(values) for name, values in times.items()}


def reference(out: Path, session) -> dict:
    """The Bayes reference on the evaluation trials (cached in ``out``)."""
    path = out / "bayes.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = task_scores(bayes_results(session))
    path.write_text(json.dumps(scores))
    return scores


def eval_session(session):
    """``session`` with its test split cut to its first :data:`EVAL_TRIALS` trials."""
    keep = np.sort(np.concatenate([session.splits["train"], session.splits["val"],
                                   session.splits["test"][:EVAL_TRIALS]]))
    return session.select_trials(keep)


def run_one(out: Path, session, name: str, masking: str, steps: int, seed: int, tasks) -> dict:
    """Train one recipe for ``steps`` and score it (reused when its record exists)."""
    key = f"{name}-{masking}-s{steps}-seed{seed}"
    record_path = out / "runs" / f"{key}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if set(tasks) <= set(record["scores"]):
            return record
    cfg = recipe_config(name, masking, steps, session, seed)
    run_dir = out / "runs" / key
    if run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    best = train([session], cfg, run_dir, progress=False)
    seconds = time.perf_counter() - start
    model, _ = load_model(best)
    scores = task_scores(evaluate_model(model, session, masking, tasks=tasks))
    record = dict(recipe=name, masking=masking, steps=cfg.epochs * batches_per_epoch([session], cfg.batch_size),
                  seed=seed, epochs=cfg.epochs, train_seconds=seconds, scores=scores)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record))
    return record


def timing(out: Path, session, names) -> dict:
    """Seconds per step of every recipe and masking (:func:`seconds_per_step`, all measured in one
    pass; cached in ``out``: delete ``seconds_per_step.json`` to measure again on a quiet machine)."""
    path = out / "seconds_per_step.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    missing = {f"{name}-{masking}": recipe_config(name, masking, 1000, session)
               for name in names for masking in MASKINGS if f"{name}-{masking}" not in known}
    if missing:
        known.update(seconds_per_step(missing, session))
        for key in missing:
            print(f"{key}: {known[key] * 1000:.1f} ms a step", flush=True)
        path.write_text(json.dumps(known, indent=1))
    return known


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("search", "curves", "timing", "table"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipes", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--maskings", nargs="+", default=["mtm"])
    parser.add_argument("--budget-steps", nargs="+", type=int, default=[2000],
                        help="each run's budget as optimiser steps of the preset: every recipe trains for as "
                             "many seconds (steps x its seconds per step) as the preset takes for these steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a shared machine)")
    parser.add_argument("--tasks", nargs="+", default=["co-smooth"])
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    session = eval_session(synthetic_session(**SESSION))
    names = args.recipes or list(RECIPES)
    if args.phase == "timing":  # every recipe's seconds per step measured again, in one pass
        (out / "seconds_per_step.json").unlink(missing_ok=True)
        timing(out, session, names)
    elif args.phase != "table":
        per_step = timing(out, session, names)
        bayes = reference(out, session)
        print("Bayes reference:", {k: round(v, 3) for k, v in bayes.items()}, flush=True)
        for budget in args.budget_steps:
            seconds = budget * per_step[f"preset-{args.maskings[0]}"]
            for name in names:
                for masking in args.maskings:
                    for seed in args.seeds:
                        steps = int(round(seconds / per_step[f"{name}-{masking}"]))
                        record = run_one(out, session, name, masking, steps, seed, args.tasks)
                        shares = {t: record["scores"][t] / bayes[t] for t in record["scores"]}
                        print(f"{seconds:5.0f} s {name:18s} {masking:8s} seed {seed} steps {record['steps']:5d} "
                              f"({record['train_seconds']:.0f} s) "
                              + " ".join(f"{t} {100 * v:.0f}%" for t, v in shares.items()), flush=True)
    write_results(out)
    return 0


def write_results(out: Path) -> None:
    """``OUT/results.md`` and ``OUT/runs.csv`` from every finished run."""
    bayes = json.loads((out / "bayes.json").read_text())
    per_step = json.loads((out / "seconds_per_step.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    lines = ["recipe,masking,seed,steps,epochs,seconds_per_step,cpu_seconds,train_wall_seconds,"
             + ",".join(TASKS) + "," + ",".join(f"share_{t}" for t in TASKS)]
    for r in records:
        sps = per_step[f"{r['recipe']}-{r['masking']}"]
        scores = [r["scores"].get(t, math.nan) for t in TASKS]
        lines.append(",".join(str(x) for x in [r["recipe"], r["masking"], r["seed"], r["steps"], r["epochs"],
                                               f"{sps:.5f}", f"{sps * r['steps']:.1f}", f"{r['train_seconds']:.1f}"]
                              + [f"{s:.4f}" for s in scores] + [f"{s / bayes[t]:.4f}" for s, t in zip(scores, TASKS)]))
    (out / "runs.csv").write_text("\n".join(lines) + "\n")
    md = [f"Bayes reference on the {EVAL_TRIALS} evaluation trials: "
          + ", ".join(f"{t} {v:.3f}" for t, v in bayes.items()), "",
          "## Seconds per step (validation included)", "", "| recipe | MtM (ms) | temporal (ms) |", "|---|---|---|"]
    for name in RECIPES:
        if f"{name}-mtm" in per_step:
            md.append(f"| {name} | {1000 * per_step[name + '-mtm']:.1f} | "
                      f"{1000 * per_step.get(name + '-temporal', math.nan):.1f} |")
    md += ["", "## Every run: share of the Bayes reference (mean over seeds, 95 % interval)", "",
           "| recipe | masking | steps | CPU s | seeds | " + " | ".join(TASKS) + " |",
           "|---|---|---|---|---|" + "---|" * len(TASKS)]
    groups = {}
    for r in records:
        groups.setdefault((r["recipe"], r["masking"], r["steps"]), []).append(r)
    for (name, masking, steps), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        cells = []
        for t in TASKS:
            values = [r["scores"][t] / bayes[t] for r in rs if t in r["scores"]]
            if not values:
                cells.append("")
            elif len(values) == 1:
                cells.append(f"{100 * values[0]:.0f} %")
            else:
                interval = mean_interval(np.array(values))
                cells.append(f"{100 * interval.mean:.0f} ± {100 * interval.half_width:.0f} %")
        sps = per_step[f"{name}-{masking}"]
        md.append(f"| {name} | {masking} | {steps} | {sps * steps:.0f} | {len(rs)} | " + " | ".join(cells) + " |")
    md += ["", "## CPU seconds to reach a share of the Bayes reference on co-smoothing", "",
           "Interpolated (log seconds) between the budgets run, per seed; '>' where the longest run stays below.",
           "", "| recipe | masking | " + " | ".join(f"{int(100 * s)} %" for s in SHARES) + " |",
           "|---|---|" + "---|" * len(SHARES)]
    curves = {}
    for (name, masking, steps), rs in groups.items():
        for r in rs:
            if "co-smooth" in r["scores"]:
                curves.setdefault((name, masking), {}).setdefault(r["seed"], []).append(
                    (per_step[f"{name}-{masking}"] * steps, r["scores"]["co-smooth"] / bayes["co-smooth"]))
    for (name, masking), by_seed in sorted(curves.items()):
        if max(len(v) for v in by_seed.values()) < 2:
            continue
        cells = []
        for share in SHARES:
            times = [seconds_to_share(sorted(points), share) for points in by_seed.values()]
            finite = [t for t in times if math.isfinite(t)]
            if len(finite) < len(times):
                longest = max(p[0] for points in by_seed.values() for p in points)
                cells.append(f"> {longest:.0f} ({len(finite)}/{len(times)} seeds reach it)")
            else:
                cells.append(" / ".join(f"{t:.0f}" for t in times))
        md.append(f"| {name} | {masking} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(md) + "\n")


def seconds_to_share(points, share: float) -> float:
    """The seconds at which a seed's (seconds, share) points first reach ``share``, interpolated in log
    seconds between the two budgets around it (the first budget's seconds if it is already there)."""
    for i, (seconds, value) in enumerate(points):
        if value >= share:
            if i == 0:
                return seconds
            (s0, v0) = points[i - 1]
            frac = (share - v0) / (value - v0)
            return float(math.exp(math.log(s0) + frac * (math.log(seconds) - math.log(s0))))
    return math.inf


if __name__ == "__main__":
    raise SystemExit(main())

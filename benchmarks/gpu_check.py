"""Every GPU measurement of benchmarks/RESULTS.md in one command, budgeted to 6 minutes on one H100.

    PYTHONPATH=. python benchmarks/gpu_check.py runs/gpu_check            # on the GPU machine
    PYTHONPATH=. python benchmarks/gpu_check.py /tmp/gpu_smoke --smoke    # the same code, tiny, CPU, seconds

Writes OUTDIR/results.md (Markdown tables) and OUTDIR/results.json after every measurement, so a run
cut short keeps what it measured. Sections, in this order (the time budget is checked before each
measurement; what no longer fits is listed as skipped):

1. the device, torch, the date, and the measured bf16 (and fp32) matmul rate;
2. training throughput of the paper-size NDT1-stitch and NDT2 (668 neurons, 5 x 512, 100 bins, MtM
   masking with prompts) at batch 16 and at a large batch, in the precision the package picks for
   the device (bf16 on an H100), eager; plus NDT1-stitch at batch 16 in fp32 (the reference's loop);
   trials/s, tokens/s, achieved TFLOP/s against the measured matmul rate, peak memory
   (benchmarks/train_throughput.py);
3. evaluation of a paper-size test split (a 700-neuron, 800-trial synthetic session: 160 test trials)
   with the paper-size NDT1-stitch: every activity task timed, host planning time, peak memory
   (benchmarks/eval_speed.py);
4. a short training comparison on paper-size synthetic sessions: large batches with the square-root
   and linear learning-rate rules against batch 16, the same epochs, validation bits per spike
   (benchmarks/large_batch.py);
5. training throughput under torch.compile (default mode at both batches, CUDA graphs through
   mode="reduce-overhead" at batch 16): last, because compiling takes most of the budget and a
   failure there must not cost the other figures.

Any failed measurement is recorded with its error, the run goes on, and the command exits with
status 1 and a one-line summary; a clean run exits 0. ``--smoke`` runs sections 1-4 at tiny sizes on
the CPU and lists section 5 as skipped (compiling takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_speed import forward_throughput, plan_tasks, time_tasks  # noqa: E402
from large_batch import compare_batches  # noqa: E402
from train_throughput import format_hours, matmul_tflops, measure_training  # noqa: E402

from mtm.atomic import atomic_write  # noqa: E402
from mtm.data import synthetic_session, synthetic_sessions  # noqa: E402
from mtm.models import ModelConfig, build_model  # noqa: E402
from mtm.device import autocast_dtype, device_precision  # noqa: E402
from mtm.train import TrainConfig  # noqa: E402

TINY_MODEL = dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32, patch_size=16)

# Sizes of the real check (one H100) and of the smoke run (CPU, seconds). Training: trials per step
# and timed steps per configuration; the large batch of NDT2 is smaller (6 times the tokens per trial).
SIZES = {
    "full": dict(model={}, n_neurons=668, n_bins=100, batches={"ndt1": (16, 512), "ndt2": (16, 128)},
                 steps={16: 150, 128: 20, 512: 10}, eval_trials=800, eval_neurons=700, eval_batch=2048,
                 compare_sessions=2, compare_trials=None, compare_neurons=None, compare_epochs=50,
                 compare_batches=(16, 128, 512), budget_s=345),
    "smoke": dict(model=TINY_MODEL, n_neurons=40, n_bins=20, batches={"ndt1": (4, 8), "ndt2": (4, 8)},
                  steps={4: 1, 8: 1}, eval_trials=40, eval_neurons=30, eval_batch=64,
                  compare_sessions=2, compare_trials=48, compare_neurons=30, compare_epochs=2,
                  compare_batches=(16, 32), budget_s=120),
}
COMPILE_RUNS = (("ndt1", 16, "reduce-overhead"), ("ndt1", "large", True), ("ndt1", 16, True),
                ("ndt2", "large", True), ("ndt2", 16, "reduce-overhead"), ("ndt2", 16, True))


class Check:
    """The results so far, the clock and the budget; writes results.md and results.json."""

    def __init__(self, out: Path, smoke: bool, budget_s: float):
        self.out, self.smoke, self.budget_s = out, smoke, budget_s
        self.start = time.perf_counter()
        self.results = dict(training=[], evaluation=[], large_batch=[], errors=[], skipped=[])

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def fits(self, what: str, reserve_s: float = 0.0) -> bool:
        """Whether there is budget left for ``what`` (keeping ``reserve_s`` for later sections)."""
        if self.elapsed() + reserve_s < self.budget_s:
            return True
        self.results["skipped"].append(f"{what}: time budget ({self.budget_s:.0f} s) spent")
        self.say(f"skipped {what}: time budget spent")
        return False

    def attempt(self, what: str, measure):
        """``measure()``; an exception is recorded (and printed with its traceback), not raised."""
        try:
            return measure()
        except Exception as error:  # every failure is recorded, reported and makes the exit status 1
            traceback.print_exc()
            first_line = (str(error).strip().splitlines() or [""])[0]
            message = f"{what}: {type(error).__name__}: {first_line}"
            self.results["errors"].append(message)
            self.say(f"FAILED {message}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return None

    def write(self) -> None:
        self.results["seconds"] = self.elapsed()
        text = json.dumps(self.results, indent=1, default=str)
        atomic_write(self.out / "results.json", lambda tmp: Path(tmp).write_text(text))
        markdown = markdown_report(self.results)
        atomic_write(self.out / "results.md", lambda tmp: Path(tmp).write_text(markdown))


def device_facts(device: torch.device, smoke: bool) -> dict:
    gpu = device.type == "cuda"
    return dict(
        device=torch.cuda.get_device_name(device) if gpu else f"{platform.processor() or platform.machine()} CPU, "
                                                              f"{os.cpu_count()} cores",
        capability=".".join(map(str, torch.cuda.get_device_capability(device))) if gpu else None,
        torch=torch.__version__, cuda=torch.version.cuda if gpu else None, python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command=" ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]), smoke=smoke,
        precision=device_precision("auto", device))


def mode_label(compile_mode) -> str:
    return {False: "eager", True: "compile"}.get(compile_mode, f"compile {compile_mode}")


def training_row(check: Check, sizes: dict, device: torch.device, arch: str, batch: int, precision: str,
                 compile_mode) -> None:
    mode = mode_label(compile_mode)
    what = f"training {arch} batch {batch} {precision} {mode}"
    check.say(what)
    row = check.attempt(what, lambda: measure_training(
        arch, batch, precision, str(device), sizes["steps"][batch], compile_mode=compile_mode, model=sizes["model"],
        n_neurons=sizes["n_neurons"], n_bins=sizes["n_bins"]))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if row is None:
        check.results["training"].append(dict(arch=arch, batch=batch, precision=precision, mode=mode, error=True))
    else:
        row["mode"] = mode
        row["matmul_share"] = row["tflops"] / check.results["matmul_tflops"][precision]
        check.results["training"].append(row)
        check.say(f"  {row['trials_per_s']:,.0f} trials/s, {row['tflops']:.2f} TFLOP/s ({row['matmul_share']:.0%} of "
                  f"matmul), peak {row['peak_gib']:.2f} GiB, warm-up {row['warmup_s']:.1f} s")
    check.write()


def evaluation_section(check: Check, sizes: dict, device: torch.device, precision: str) -> None:
    session = synthetic_session(0, n_trials=sizes["eval_trials"], n_neurons=sizes["eval_neurons"])
    torch.manual_seed(0)
    model = build_model(ModelConfig.paper(**sizes["model"]), [(session.eid, session.n_neurons)]).to(device).eval()
    dtype = autocast_dtype(precision, device)
    plans = plan_tasks(session)
    throughput = forward_throughput(model, session, dtype, sizes["eval_batch"], repeats=3)  # also warms up
    rows = time_tasks(model, session, dtype, sizes["eval_batch"])
    for row in rows:
        row.update(plans[row["task"]])
    rows.append(dict(task="all four", configurations=sum(r["configurations"] for r in rows),
                     passes=sum(r["passes"] for r in rows), planning_s=sum(r["planning_s"] for r in rows),
                     seconds=sum(r["seconds"] for r in rows), peak_gib=float(np.nanmax([r["peak_gib"] for r in rows]))
                     if device.type == "cuda" else float("nan")))
    check.results["evaluation"] = rows
    check.results["evaluation_setup"] = dict(test_trials=len(session.splits["test"]), neurons=session.n_neurons,
                                             precision=precision, batch_trials=sizes["eval_batch"],
                                             forward_trial_passes_per_s=throughput)
    check.say(f"  evaluation: {rows[-1]['seconds']:.2f} s for {rows[-1]['passes']:,} trial passes "
              f"(planning {rows[-1]['planning_s']:.3f} s)")


def comparison_section(check: Check, sizes: dict, device: torch.device, precision: str) -> None:
    preset = "small" if check.smoke else "paper"
    sessions = synthetic_sessions(sizes["compare_sessions"], seed=100, preset=preset, n_trials=sizes["compare_trials"],
                                  n_neurons=sizes["compare_neurons"])
    base = TrainConfig.preset(preset, masking="mtm", device=str(device), precision=precision,
                              epochs=sizes["compare_epochs"], model=dict(sizes["model"]),
                              checkpoint_every=sizes["compare_epochs"], checkpoint_minutes=None)  # last.pt at the end
    check.results["large_batch_setup"] = dict(sessions=len(sessions), neurons=[s.n_neurons for s in sessions],
                                              train_trials=sum(len(s.splits["train"]) for s in sessions),
                                              epochs=base.epochs, base_lr=base.lr, eval_every=base.eval_every)

    def show(row):
        check.results["large_batch"].append(row)
        check.write()
        check.say(f"  batch {row['batch']} {row['rule']} lr {row['lr']:.2g}: best val bps {row['best_val_bps']:.3f}, "
                  f"{row['trials_per_s']:,.0f} trials/s, {row['seconds']:.1f} s")

    compare_batches(sessions, base, sizes["compare_batches"], tasks=(), progress=show)


def markdown_report(results: dict) -> str:
    facts = results.get("facts", {})
    rates = results.get("matmul_tflops", {})
    gpu = f" (compute capability {facts['capability']}, CUDA {facts['cuda']})" if facts.get("capability") else ""
    lines = [f"# GPU check{' (smoke run: tiny sizes, not measurements)' if facts.get('smoke') else ''}", "",
             f"Device: {facts.get('device')}{gpu}; torch {facts.get('torch')}, Python {facts.get('python')}; "
             f"{facts.get('date')}; "
             f"`{facts.get('command')}`; precision picked for the device: {facts.get('precision')}; "
             "measured matmul rate: " + ", ".join(f"{p} {r:.1f} TFLOP/s" for p, r in rates.items())
             + f"; {results.get('seconds', 0):.0f} s in all.", "",
             "## Training throughput", "",
             "| model | batch | precision | mode | trials/s | tokens/s | TFLOP/s (of matmul rate) | peak memory (GiB) "
             "| warm-up (s) | 34-session pretraining |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["training"]:
        name = "NDT1-stitch" if r["arch"] == "ndt1" else "NDT2"
        if r.get("error"):
            lines.append(f"| {name} | {r['batch']} | {r['precision']} | {r['mode']} | failed (see errors) | | | | | |")
            continue
        lines.append(f"| {name} | {r['batch']} | {r['precision']} | {r['mode']} | {r['trials_per_s']:,.0f} "
                     f"| {r['tokens_per_s']:.3g} | {r['tflops']:.2f} ({r['matmul_share']:.0%}) | {r['peak_gib']:.2f} "
                     f"| {r['warmup_s']:.1f} | {format_hours(r['projected_hours'])} |")
    setup = results.get("evaluation_setup", {})
    lines += ["", "## Evaluation of one paper-size test split", "",
              f"{setup.get('test_trials')} test trials x {setup.get('neurons')} neurons, paper-size NDT1-stitch, "
              f"{setup.get('precision')}, {setup.get('batch_trials')} trial passes per forward; forward throughput "
              f"{setup.get('forward_trial_passes_per_s', float('nan')):,.0f} trial passes/s.", "",
              "| task | configurations | trial passes | planning (host s) | seconds | peak memory (GiB) |",
              "|---|---|---|---|---|---|"]
    for r in results["evaluation"]:
        lines.append(f"| {r['task']} | {r['configurations']} | {r['passes']:,} | {r['planning_s']:.3f} "
                     f"| {r['seconds']:.2f} | {r['peak_gib']:.2f} |")
    setup = results.get("large_batch_setup", {})
    lines += ["", "## Large batch against batch 16: same epochs, validation bits per spike", "",
              f"{setup.get('sessions')} synthetic sessions ({setup.get('train_trials')} training trials), "
              f"{setup.get('epochs')} epochs, lr {setup.get('base_lr')} at batch 16, validated every "
              f"{setup.get('eval_every')} epochs.", "",
              "| batch | lr rule | lr | best val bps | last val bps | trials/s | seconds |",
              "|---|---|---|---|---|---|---|"]
    for r in results["large_batch"]:
        lines.append(f"| {r['batch']} | {r['rule']} | {r['lr']:.2g} | {r['best_val_bps']:.3f} "
                     f"| {r['last_val_bps']:.3f} | {r['trials_per_s']:,.0f} | {r['seconds']:.1f} |")
    lines += ["", "## Errors", ""] + [f"- {e}" for e in results["errors"] or ["none"]]
    lines += ["", "## Skipped", ""] + [f"- {s}" for s in results["skipped"] or ["none"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="folder for results.md and results.json (must not hold results already)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, seconds: proves the code runs")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget in seconds (default 345; smoke 120)")
    args = parser.parse_args(argv)
    out = Path(args.outdir)
    if (out / "results.json").exists():
        parser.error(f"{out} already holds results.json; choose another folder")
    sizes = SIZES["smoke" if args.smoke else "full"]
    if args.smoke:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        parser.error("no CUDA GPU here; run with --smoke on a CPU")
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, args.smoke, args.budget_s or sizes["budget_s"])
    check.results["facts"] = facts = device_facts(device, args.smoke)
    precision = facts["precision"]
    check.say(f"{facts['device']}, torch {facts['torch']}, precision {precision}, budget {check.budget_s:.0f} s")

    check.results["matmul_tflops"] = {p: matmul_tflops(str(device), p) for p in dict.fromkeys([precision, "fp32"])}
    check.say("matmul: " + ", ".join(f"{p} {r:.1f} TFLOP/s" for p, r in check.results["matmul_tflops"].items()))
    check.write()

    for arch, batches in sizes["batches"].items():  # eager: cheap, and what every other figure builds on
        for batch in batches:
            if check.fits(f"training {arch} batch {batch} eager", reserve_s=0.5 * check.budget_s):
                training_row(check, sizes, device, arch, batch, precision, False)
    if precision != "fp32" and check.fits("training ndt1 batch 16 fp32 eager", reserve_s=0.5 * check.budget_s):
        training_row(check, sizes, device, "ndt1", sizes["batches"]["ndt1"][0], "fp32", False)

    if check.fits("evaluation", reserve_s=0.4 * check.budget_s):
        check.say("evaluation of a paper-size test split")
        check.attempt("evaluation", lambda: evaluation_section(check, sizes, device, precision))
        check.write()
    if check.fits("large batch against batch 16", reserve_s=0.3 * check.budget_s):
        check.say("large batch against batch 16")
        check.attempt("large batch against batch 16", lambda: comparison_section(check, sizes, device, precision))
        check.write()

    for arch, batch, mode in COMPILE_RUNS:
        batch = sizes["batches"][arch][1] if batch == "large" else sizes["batches"][arch][0]
        label = f"training {arch} batch {batch} {precision} {mode_label(mode)}"
        if args.smoke:
            check.results["skipped"].append(f"{label}: --smoke (compiling takes minutes on a CPU)")
        elif check.fits(label, reserve_s=60):  # compiling alone takes about a minute
            training_row(check, sizes, device, arch, batch, precision, mode)
    check.write()
    check.say(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    print()
    print(markdown_report(check.results))
    if check.results["errors"]:
        print(f"gpu_check: error: {len(check.results['errors'])} measurement(s) failed: "
              + "; ".join(check.results["errors"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

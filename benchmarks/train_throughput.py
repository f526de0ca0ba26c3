"""Training throughput of NDT1-stitch and NDT2 at the paper's sizes, through the package's own
training loop (mtm.train.Trainer): masking, forward, Poisson loss, backward, AdamW, one-cycle step.

Paper sizes: 668 neurons (the stitcher width), 512 wide, 5 layers, 8 heads, MLP 1024, 100 bins;
MtM masking with prompts. Each configuration (architecture x batch size x precision) runs in its
own process, so its peak memory is its own.

    python benchmarks/train_throughput.py                       # CPU, or the GPU when there is one
    python benchmarks/train_throughput.py --device cpu --steps 2 --large-batch 64 --archs ndt1

Prints a Markdown table: trials/s, tokens/s, achieved TFLOP/s against the device's measured matmul
rate, peak memory, and the projected time of the paper's 34-session pretraining (34 sessions x 560
training trials x 1000 epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

PAPER_TRIALS = 34 * 560 * 1000  # trial passes of the paper's 34-session pretraining


def flops_per_trial(cfg, n_neurons: int, n_bins: int = 100) -> float:
    """Training FLOPs of one trial (forward + backward = 3 x forward matmul FLOPs)."""
    d, f, layers = cfg.hidden, cfg.mlp, cfg.n_layers
    if cfg.arch == "ndt1":
        tokens = n_bins + 2
        embed = n_bins * (n_neurons * cfg.n_channels + cfg.n_channels * cfg.n_channels * cfg.embed_mult
                          + cfg.n_channels * cfg.embed_mult * d)
        readout = n_bins * d * n_neurons
    else:
        patches = -(-n_neurons // cfg.patch_size)
        tokens = n_bins * patches + 2
        embed = n_bins * patches * (cfg.patch_size * cfg.patch_size * cfg.embed_mult + cfg.patch_size * cfg.embed_mult * d)
        readout = n_bins * patches * d * cfg.patch_size
    per_layer = tokens * (4 * d * d + 2 * d * f) + 2 * tokens * tokens * d
    return 3 * 2 * (embed + readout + layers * per_layer)


def matmul_tflops(device: str, dtype_name: str) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    n = 4096 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    repeats = 50 if device.startswith("cuda") else 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def measure_training(arch: str, batch: int, precision: str, device: str, steps: int, compile_mode=False,
                     model: dict | None = None, n_neurons: int = 668, n_bins: int = 100) -> dict:
    """Training throughput of one configuration, in this process, through mtm.train.Trainer.

    ``model``: ModelConfig overrides of the paper sizes; ``compile_mode``: TrainConfig.compile (False,
    True or a torch.compile mode). One epoch of ``steps`` batches warms up (two when compiled: a
    masking scheme first drawn in the timed epoch would recompile there), the next is timed between
    device synchronisations. Returns trials/s, tokens/s, achieved TFLOP/s, peak memory
    (GiB: GPU max allocated since the start, or the process's peak resident set on the CPU), the
    warm-up seconds and the projected hours of the paper's 34-session pretraining.
    """
    import resource
    import tempfile

    import numpy as np
    import torch

    from mtm.data import Session
    from mtm.models import ModelConfig, build_model
    from mtm.train import Trainer, TrainConfig

    gpu = device.startswith("cuda")
    n_trials = batch * steps  # one epoch = the timed steps
    rng = np.random.default_rng(0)
    region_names = ["VISa", "CA1", "DG", "LP", "PO"]
    regions = np.array(region_names)[np.arange(n_neurons) * len(region_names) // n_neurons]
    block = rng.poisson(0.1, (min(n_trials, 64), n_bins, n_neurons)).astype(np.uint8)
    spikes = np.resize(block, (n_trials, n_bins, n_neurons))  # repeats the block: the values do not matter here
    session = Session("bench", spikes, regions, splits={"train": np.arange(n_trials)})
    warmup_epochs = 2 if compile_mode else 1
    cfg = TrainConfig(model=ModelConfig.paper(arch=arch, **(model or {})), masking="mtm", batch_size=batch,
                      epochs=warmup_epochs + 1, device=device, precision=precision, compile=compile_mode)
    torch.manual_seed(0)
    net = build_model(cfg.model, [("bench", n_neurons)])

    def synchronize():
        if gpu:
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory() as run_dir:
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer = Trainer(net, [session], cfg, run_dir, progress=False)
        synchronize()
        start = time.perf_counter()
        for epoch in range(warmup_epochs):  # warm-up (and compilation)
            trainer.train_epoch(epoch)
        synchronize()
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        trainer.train_epoch(warmup_epochs)
        synchronize()
        seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**30 if gpu
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    trials_per_s = n_trials / seconds
    tokens = n_bins + 2 if arch == "ndt1" else n_bins * -(-n_neurons // cfg.model.patch_size) + 2
    flops = flops_per_trial(cfg.model, n_neurons, n_bins)
    return dict(arch=arch, batch=batch, precision=precision, compile=compile_mode, trials_per_s=trials_per_s,
                tokens_per_s=trials_per_s * tokens, tflops=trials_per_s * flops / 1e12,
                peak_gib=peak, warmup_s=warmup, projected_hours=PAPER_TRIALS / trials_per_s / 3600)


def format_hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    parser.add_argument("--large-batch", type=int, default=None)
    parser.add_argument("--archs", nargs="+", default=["ndt1", "ndt2"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="default: fp32 and bf16 on a GPU, fp32 on a CPU (whose bf16 is emulated, ~40x slower)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one configuration, JSON on stdout
        spec = json.loads(args.one)
        print(json.dumps(measure_training(**spec)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    steps = args.steps or (50 if gpu else 2)
    large = args.large_batch or (512 if gpu else 64)
    name = torch.cuda.get_device_name() if gpu else f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    precisions = args.precisions or (["fp32", "bf16"] if gpu else ["fp32"])
    rates = {p: matmul_tflops(device, p) for p in precisions}
    print(f"device: {name}; torch {torch.__version__}; measured matmul rate: "
          + ", ".join(f"{p} {rate:.2f}" for p, rate in rates.items()) + " TFLOP/s")
    print()
    print("| model | batch | precision | trials/s | tokens/s | TFLOP/s (of matmul rate) | peak memory (GiB) "
          "| 34-session pretraining |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        for batch in (16, large):
            for precision in precisions:
                spec = dict(arch=arch, batch=batch, precision=precision, device=device, steps=steps,
                            compile_mode=args.compile)
                done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                                      text=True)
                if done.returncode != 0:
                    print(f"| {arch} | {batch} | {precision} | failed: {done.stderr.strip().splitlines()[-1]} |")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                share = r["tflops"] / rates[precision]
                projected = format_hours(r["projected_hours"])
                print(f"| {'NDT1-stitch' if arch == 'ndt1' else 'NDT2'} | {batch} | {precision} | {r['trials_per_s']:.0f} "
                      f"| {r['tokens_per_s']:.3g} | {r['tflops']:.3f} ({share:.0%}) | {r['peak_gib']:.2f} | {projected} |",
                      flush=True)
    print()
    print("Peak memory: GPU max allocated, or the process's peak resident set on the CPU.")


if __name__ == "__main__":
    main()

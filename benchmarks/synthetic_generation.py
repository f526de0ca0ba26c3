"""Time and peak memory to generate one paper-size synthetic session (700 neurons, 800 trials) on one
CPU core. Target (issue: Foundation): under 2 s.

    python benchmarks/synthetic_generation.py [--repeats 5]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"  # one core, set before numpy loads its BLAS

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from mtm.data.synthetic import World, synthetic_session  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=800)
    parser.add_argument("--neurons", type=int, default=700)
    args = parser.parse_args()

    t0 = time.perf_counter()
    world = World(0)
    world_s = time.perf_counter() - t0
    times = []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        session = synthetic_session(seed, args.trials, args.neurons, world=world)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    synthetic_session(args.repeats, args.trials, args.neurons, world=world)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux

    data_mb = (session.spikes.nbytes + session.rates.nbytes) / 2**20
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, one used; "
          f"numpy {np.__version__}")
    print(f"session: {args.trials} trials x 100 bins x {args.neurons} neurons "
          f"(spikes {session.spikes.dtype}, rates float32: {data_mb:.0f} MiB)")
    print()
    print("| step | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    print(f"| shared world (once per world_seed) | {world_s:.3f} | | |")
    print(f"| synthetic_session, {args.repeats} seeds | {np.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")
    print()
    print(f"peak memory: {traced_peak / 2**20:.0f} MiB allocated by one generation (tracemalloc), "
          f"{rss_peak:.0f} MiB process peak RSS")
    print(f"target: under 2 s -> {'met' if np.median(times) < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Every benchmark, one after the other, on whatever device is there (the GPU when there is one).

    python benchmarks/run_all.py            # prints each benchmark's table; paste them into RESULTS.md
    python benchmarks/run_all.py --quick    # CPU-friendly sizes

On a GPU, the figures of RESULTS.md come from one command instead (budgeted to 6 minutes on an
H100; tables written to a folder): ``PYTHONPATH=. python benchmarks/gpu_check.py runs/gpu_check``.
"""

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and the small large-batch study")
    args = parser.parse_args()
    large = ["large_batch.py"] + ([] if args.quick else
                                  ["--preset", "paper", "--epochs", "200", "--batches", "16", "256", "--sessions", "4"])
    runs = [["synthetic_generation.py"], ["train_throughput.py"] + (["--steps", "2"] if args.quick else []),
            ["eval_speed.py"], ["eval_speed.py", "--model", "small", "--full"], large]
    print(f"# benchmarks, {datetime.date.today()}, `{' '.join([Path(sys.argv[0]).name] + sys.argv[1:])}`\n")
    import torch

    if torch.cuda.is_available():
        print("A GPU is here: benchmarks/gpu_check.py measures every GPU figure of RESULTS.md, budgeted to 6 minutes "
              "(PYTHONPATH=. python benchmarks/gpu_check.py runs/gpu_check).\n", flush=True)
    failed = 0
    for run in runs:
        print(f"## {run[0]} {' '.join(run[1:])}\n", flush=True)
        done = subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]])
        failed += done.returncode != 0
        print(flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Speed of the decoders' row-space reduction (:func:`mtm.decoding.row_space`): the fitting trials'
Gram matrix (the package) against a thin SVD of the K_fit x F feature matrix (before 2026-12-08), at
the feature sizes the book decodes (T x N log-rates), measured in one run, alternating, median of the
rounds. Also the largest difference between the two in the predictions of a ridge fitted in each
coordinate system (they are the same model, so it should be rounding).

    python benchmarks/row_space.py [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtm.decoding import row_space  # noqa: E402

# (fitting trials, test trials, bins x neurons): the main job's held-out session (280 + 40 fitting
# trials of 100 bins x 80 neurons, 80 test trials), chapter 6's decoding (400 trials of a 300-neuron
# session: 320 fitting, 80 test), chapter 5's whole session (1,280 fitting, 320 test)
SIZES = ((320, 80, 100 * 80), (320, 80, 100 * 300), (1280, 320, 100 * 300))


def svd_row_space(features_fit: np.ndarray, features_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The former implementation: a thin SVD of the standardised fitting features."""
    mean, std = features_fit.mean(axis=0), features_fit.std(axis=0) + 1e-6
    fit, test = (features_fit - mean) / std, (features_test - mean) / std
    _, singular, basis = np.linalg.svd(fit, full_matrices=False)
    basis = basis[singular > singular[0] * 1e-10]
    return fit @ basis.T, test @ basis.T


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"BLAS threads {args.threads}, median of {args.rounds} rounds (seconds)\n")
    print("| fitting x test trials | features | thin SVD (before) | Gram (now) | ratio | largest ridge difference |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(args.threads, user_api="blas"):
        for n_fit, n_test, n_features in SIZES:
            # low-rank structure plus noise, like log-rates: a few latent directions shared by every bin
            latent = rng.normal(size=(n_fit + n_test, 8)) @ rng.normal(size=(8, n_features))
            features = latent + 0.5 * rng.normal(size=latent.shape)
            x_fit, x_test = features[:n_fit], features[n_fit:]
            target = latent[:, :3] + rng.normal(size=(n_fit + n_test, 3))
            times = {"svd": [], "gram": []}
            for _ in range(args.rounds):
                for name, fn in (("svd", svd_row_space), ("gram", row_space)):
                    start = time.perf_counter()
                    out = fn(x_fit, x_test)
                    times[name].append(time.perf_counter() - start)
                    if name == "svd":
                        before = out
                    else:
                        now = out
            predict = [Ridge(alpha=100).fit(z_fit, target[:n_fit]).predict(z_test) for z_fit, z_test in (before, now)]
            svd, gram = statistics.median(times["svd"]), statistics.median(times["gram"])
            print(f"| {n_fit} x {n_test} | {n_features:,} | {svd:.3f} | {gram:.3f} | {svd / gram:.1f} | "
                  f"{np.abs(predict[0] - predict[1]).max():.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

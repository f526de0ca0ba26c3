"""The Bayes predictor given the visible spikes (mtm.bayes) beside the linear baseline and the latent
oracle: bits per spike per task, the share of the oracle the Bayes predictor reaches, and its run time.

Sessions: the held-out synthetic sessions of ``mtm reproduce --preset small`` (table 2's plan), a
300-neuron session of the book settings of chapter 5 (mtm.book.CHAPTER_SETTINGS["05_evaluation"]
["book"]: N_TRIALS trials, N_NEURONS neurons, seed 0), and the speed case: 300 neurons, 600 trials
(a 120-trial test split). The time is the wall time of ``bayes_results`` for all four tasks
(BLAS on one thread, as the module runs it), including the inputs' prior when it is not cached.

    PYTHONPATH=. python benchmarks/bayes_reference.py            # every session
    PYTHONPATH=. python benchmarks/bayes_reference.py --speed    # the speed case only
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from mtm.baselines import baseline_results
from mtm.bayes import bayes_results
from mtm.book import CHAPTER_SETTINGS
from mtm.data import synthetic_session
from mtm.evaluate import TASKS
from mtm.oracle import oracle_results
from mtm.reproduce.plan import Plan


def sessions(speed_only: bool):
    book = CHAPTER_SETTINGS["05_evaluation"]["book"]
    if not speed_only:
        for session in Plan.for_preset("small").synthetic_sessions()[1]:
            yield f"reproduce small: {session.eid} ({session.n_neurons} neurons, {session.n_trials} trials)", session
        yield (f"book ch. 5: seed 0 ({book['N_NEURONS']} neurons, {book['N_TRIALS']} trials)",
               synthetic_session(0, book["N_TRIALS"], book["N_NEURONS"]))
    yield "speed: seed 1 (300 neurons, 600 trials)", synthetic_session(1, 600, 300)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true", help="only the 300-neuron, 120-test-trial speed case")
    args = parser.parse_args()
    print(f"{platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("| session | test trials | task | linear | Bayes (visible spikes) | latent oracle | Bayes / oracle "
          "| Bayes s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, session in sessions(args.speed):
        start = time.perf_counter()
        bayes = bayes_results(session)
        seconds = time.perf_counter() - start
        oracle = oracle_results(session)
        linear = baseline_results(session, which=("linear",))["linear"]
        for task in TASKS:
            lin, ref, top = linear[task].mean_bps, bayes[task].mean_bps, oracle[task].mean_bps
            print(f"| {name} | {len(session.splits['test'])} | {task} | {lin:.3f} | {ref:.3f} | {top:.3f} | "
                  f"{ref / top:.2f} | {seconds:.0f} |", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

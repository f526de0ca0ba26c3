"""Floors and references for the activity tasks: simple predictors, scored exactly like a model.

Every table shows where a model sits between these (:func:`baseline_results`, :func:`reference_rows`)
and, on synthetic sessions, two yardsticks: the Bayes predictor given exactly the spikes each task
leaves visible (:mod:`mtm.bayes`, known generative parameters: a score a model could in principle
reach) and the latent oracle of each task (:mod:`mtm.oracle`, given the true latents: an upper bound):

* ``truth``: the ground-truth rates of a synthetic session. Not reachable by any model: they include
  each neuron's private fluctuation, which no other neuron shows; the oracle is the bound.
* ``linear``: ridge regression, fit on the train split, from the visible neurons' spikes (smoothed
  with a Gaussian of 2 bins) to each held-out neuron, for every configuration of the task; for
  forward prediction, from every neuron's mean count in the 10 bins before the held-out window to
  each neuron's mean count in the window, predicted for each of its 10 bins (the regularisation of
  each neuron chosen by leave-one-out cross-validation). One rate per neuron for the window rather
  than one per bin: per-bin fits on a few hundred trials are noisier than the signal they add, and
  scored below the mean-rate floor.
  Predictions are floored at a fifth of the neuron's mean rate.
* ``psth``: each neuron's trial-averaged count per bin on the train split, smoothed over 2 bins:
  the stimulus-locked part of the activity, the same for every trial.
* ``mean_rate``: each neuron's mean count per bin on the train split (about 0 bits per spike).

The ridge fits for co-smoothing (one per neuron, each leaving its own neuron out) come from one
matrix inverse: with ``A = (Z'Z + alpha I)^-1`` and ``C = Z'Y``, neuron i's weights without
predictor i are ``A c_i - A[:, i] (A C)[i, i] / A[i, i]`` (the block-inverse identity).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.linear_model import RidgeCV

from mtm.bayes import BAYES_ROW, bayes_results
from mtm.decoding import decode_behavior
from mtm.evaluate import TASKS, FORWARD_BINS, TaskResult, evaluate_rates, scored_bins, task_scores
from mtm.oracle import latent_features, oracle_results

BASELINES = ("linear", "psth", "mean_rate")
SMOOTH_BINS = 2.0
RIDGE_ALPHA = 10.0


def _floor(rates: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return np.maximum(rates, np.maximum(0.2 * mean, 1e-4))


def _smooth(counts: np.ndarray) -> np.ndarray:
    return gaussian_filter1d(counts.astype(np.float64), SMOOTH_BINS, axis=1, mode="nearest")


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    sd[sd == 0] = 1.0
    return (train - mu) / sd, (test - mu) / sd


def _ridge(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray) -> np.ndarray:
    """Predictions on ``z_test`` of a ridge fit (intercept = mean of y; z already standardised)."""
    gram = z_train.T @ z_train + RIDGE_ALPHA * np.eye(z_train.shape[1])
    weights = np.linalg.solve(gram, z_train.T @ (y_train - y_train.mean(axis=0)))
    return z_test @ weights + y_train.mean(axis=0)


def _leave_one_out_ridge(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray) -> np.ndarray:
    """Column i: ridge prediction of target i from every predictor but i (square problems)."""
    inverse = np.linalg.inv(z_train.T @ z_train + RIDGE_ALPHA * np.eye(z_train.shape[1]))
    cross = z_train.T @ (y_train - y_train.mean(axis=0))
    full = inverse @ cross
    weights = full - inverse * (np.diag(full) / np.diag(inverse))[None, :]
    return z_test @ weights + y_train.mean(axis=0)


def linear_rates(session, task: str, split: str = "test") -> np.ndarray:
    """The ``linear`` baseline's rates (K_split, T, N) for one task (module docstring)."""
    train, test = session.spikes[session.splits["train"]], session.spikes[session.splits[split]]
    n_neurons, n_bins = session.n_neurons, session.n_bins
    mean = train.mean(axis=(0, 1))
    rates = np.empty(test.shape)
    if task == "forward-pred":
        edge = n_bins - FORWARD_BINS
        z_tr, z_te = _standardise(train[:, edge - FORWARD_BINS:edge].mean(axis=1),
                                  test[:, edge - FORWARD_BINS:edge].mean(axis=1))
        y_tr = train[:, edge:].mean(axis=1).astype(np.float64)
        model = RidgeCV(alphas=np.logspace(0, 6, 13), alpha_per_target=True).fit(z_tr, y_tr)
        rates[:, edge:] = model.predict(z_te)[:, None]
        rates[:, :edge] = mean
        return _floor(rates, mean)
    z_tr, z_te = _standardise(_smooth(train).reshape(-1, n_neurons), _smooth(test).reshape(-1, n_neurons))
    y_tr = train.reshape(-1, n_neurons).astype(np.float64)
    flat = rates.reshape(-1, n_neurons)
    regions = np.asarray(session.regions)
    if task == "co-smooth":
        flat[:] = _leave_one_out_ridge(z_tr, y_tr, z_te)
    elif task == "intra-region":
        for region in session.region_names:
            inside = np.flatnonzero(regions == region)
            if len(inside) == 1:  # nothing visible: the neuron's mean
                flat[:, inside] = y_tr[:, inside].mean(axis=0)
                continue
            flat[:, inside] = _leave_one_out_ridge(z_tr[:, inside], y_tr[:, inside], z_te[:, inside])
    elif task == "inter-region":
        for region in session.region_names:
            inside = regions == region
            flat[:, inside] = _ridge(z_tr[:, ~inside], y_tr[:, inside], z_te[:, ~inside])
    else:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    return _floor(rates, mean)


def psth_rates(session, split: str = "test") -> np.ndarray:
    """The ``psth`` baseline: train-split average per bin, smoothed, for every trial of ``split``."""
    train = session.spikes[session.splits["train"]]
    psth = _smooth(train.mean(axis=0, keepdims=True))
    return _floor(np.repeat(psth, len(session.splits[split]), axis=0), train.mean(axis=(0, 1)))


def mean_rate_rates(session, split: str = "test") -> np.ndarray:
    """The ``mean_rate`` baseline: each neuron's train-split mean count per bin, everywhere."""
    train = session.spikes[session.splits["train"]]
    shape = (len(session.splits[split]), session.n_bins, session.n_neurons)
    return np.broadcast_to(train.mean(axis=(0, 1)), shape).astype(np.float64)


ORACLE_ROW = "Latent oracle (upper bound: given the true latents)"
TRUE_RATES_ROW = "True rates (not reachable: includes each neuron's private noise)"
LINEAR_ROW = "Linear regression (baseline)"
REFERENCE_NOTE = ("Latent oracle: each task's expected counts given exactly what the task leaves visible, as true "
                  "latents (co-smooth and intra-region: the neuron's own region; inter-region: the other "
                  "regions and the task inputs; forward prediction: everything before the window and the "
                  "inputs); an upper bound for any model. Its behaviour cells: the same decoders on the "
                  "true latents, a reference, not a bound. Bayes given the visible spikes: each task's "
                  "expected counts given exactly the spikes the task leaves visible and the true generative "
                  "parameters (a Laplace posterior of the latents, mtm.bayes); a predictor a model could in "
                  "principle match (activity tasks only); shares are taken against it. True rates: decoders on their log. Linear "
                  "regression: decoders on the raw spikes.")


def reference_results(session, tasks=TASKS, split: str = "test") -> dict[str, dict[str, TaskResult]]:
    """The activity references of :func:`reference_rows`, as {row name: {task: TaskResult}}."""
    references = baseline_results(session, tasks, split, which=("truth", "linear"))
    results = {}
    if session.truth is not None:
        results[ORACLE_ROW] = oracle_results(session, tasks, split)
        results[BAYES_ROW] = bayes_results(session, tasks, split)
    if "truth" in references:
        results[TRUE_RATES_ROW] = references["truth"]
    results[LINEAR_ROW] = references["linear"]
    return results


def reference_rows(session, behavior_keys=(), tasks=TASKS, split: str = "test", score: str = "bps",
                   results: dict | None = None) -> dict[str, dict[str, float]]:
    """The rows every results table shows beside the models: {row name: {column: score}}.

    ``LINEAR_ROW`` always; on synthetic sessions also ``ORACLE_ROW`` (each task's oracle; behaviour
    decoded from the true latents), ``BAYES_ROW`` (each task's Bayes predictor given the visible spikes,
    :mod:`mtm.bayes`; activity tasks only) and ``TRUE_RATES_ROW`` (behaviour decoded from the log true
    rates). ``score``: the activity tasks' score (:func:`mtm.evaluate.task_scores`); ``results``: the
    :func:`reference_results` already computed, if any.
    """
    keys = [k for k in behavior_keys if k in session.behavior]
    results = reference_results(session, tasks, split) if results is None else results
    rows = {name: task_scores(per_task, score) for name, per_task in results.items()}
    if ORACLE_ROW in rows:
        rows[ORACLE_ROW].update(decode_behavior(session, keys, features=latent_features(session)))
    if TRUE_RATES_ROW in rows:
        rows[TRUE_RATES_ROW].update(decode_behavior(session, keys, features=np.log(session.rates)))
    rows[LINEAR_ROW].update(decode_behavior(session, keys))
    return rows


def baseline_results(session, tasks=TASKS, split: str = "test",
                     which=BASELINES + ("truth",)) -> dict[str, dict[str, TaskResult]]:
    """{baseline: {task: TaskResult}}; ``truth`` only for sessions with ground-truth rates."""
    if "train" not in session.splits or len(session.splits["train"]) == 0:
        raise ValueError(f"split: session {session.eid!r} has no train trials to fit the baselines on")
    results = {}
    trials = session.splits[split]
    for name in which:
        if name == "truth":
            if session.rates is not None:
                results["truth"] = evaluate_rates(session.rates, session, tasks, split)
            continue
        if name not in BASELINES:
            raise ValueError(f"baseline: expected some of {BASELINES + ('truth',)}, got {name!r}")
        per_task = {}
        for task in tasks:
            bins = scored_bins(task, session.n_bins)
            if name == "linear":
                rates = linear_rates(session, task, split)
            elif name == "psth":
                rates = psth_rates(session, split)
            else:
                rates = mean_rate_rates(session, split)
            per_task[task] = TaskResult(task, rates[:, bins], session.spikes[trials][:, bins].astype(float), bins)
        results[name] = per_task
    return results

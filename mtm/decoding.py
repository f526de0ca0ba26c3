"""Behaviour decoding from a model's predicted log-rates, and from the raw spikes as a baseline
(reference notes 5.4).

* ``choice``: L2 logistic regression (``LogisticRegression``, C in 1e-4 ... 1e4, 4-fold
  cross-validation on the fitting trials), scored by accuracy on the test split.
* continuous behaviour (``whisker_me``, ``wheel_speed``, any (K, T) key): ridge regression with one
  output per bin (alpha in {1, 10, 100, 1e3, 1e4}, 4-fold cross-validation), scored by one pooled R^2
  over every (test trial, bin), as the reference's ``r2_score`` on the flattened arrays. The
  reference's grid starts at alpha = 0, which with more features than trials interpolates the
  fitting trials exactly and is numerically unstable; it is replaced by 1.

Features are the flattened (T x N) log-rates of a trial, computed on the *unmasked* spikes with a
prompt: the reference reports choice from the ``neuron`` prompt and whisker motion energy from the
``causal`` prompt, which also switches every model to causal attention, prompted or not, the temporal
baseline included (``attention="reference"``, the default); ``attention="trained"`` uses causal
attention only for a model trained with the causal scheme. The fitting trials
are train + val, the scored ones the test split. Features are standardised on the fitting trials
and, when there are more features than trials, fitted in the trials' row space (:func:`row_space`),
which gives the same model. The paper says "a linear classifier ... R-squared";
the reference code uses logistic regression (accuracy) and ridge (pooled R^2), and so does this module.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV

from mtm.evaluate import CAUSAL_MASKINGS
from mtm.masking import PROMPT_IDS

CHOICE_C = tuple(10.0 ** np.arange(-4, 5))
RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4)  # the reference: (0, 10, ...); see decode_continuous
DECODING_PROMPT = {"choice": "neuron"}  # continuous behaviour: "causal"
ATTENTIONS = ("reference", "trained")


@torch.no_grad()
def model_log_rates(model, session, prompt_scheme: str, training_masking: str, trials=None,
                    batch_trials: int = 256, autocast_dtype=None, attention: str = "reference") -> np.ndarray:
    """A model's log-rates (K, T, N) on the unmasked spikes of ``trials`` (default: all), with the
    prompt of ``prompt_scheme`` (ignored by an unprompted model) and, for ``causal``, causal
    attention: for every model (``attention="reference"``) or only for one trained with the causal
    scheme (``"trained"``)."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention: expected one of {ATTENTIONS}, got {attention!r}")
    device = next(model.parameters()).device
    model.eval()
    trials = np.arange(session.n_trials) if trials is None else np.asarray(trials)
    spikes = torch.as_tensor(np.array(session.spikes[trials])).to(device)
    prompt = PROMPT_IDS[prompt_scheme] if model.cfg.use_prompt else None
    causal = prompt_scheme == "causal" and (attention == "reference" or training_masking in CAUSAL_MASKINGS)
    out = []
    for i in range(0, len(trials), batch_trials):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out.append(model(spikes[i:i + batch_trials].float(), session.eid, prompt, causal).float().cpu())
    return torch.cat(out).numpy()


def _check(features: np.ndarray, target: np.ndarray, fit: np.ndarray, test: np.ndarray, name: str) -> None:
    if features.shape[0] != target.shape[0]:
        raise ValueError(f"{name}: {target.shape[0]} trials of behaviour for {features.shape[0]} trials of features")
    if len(fit) < 8 or len(test) == 0:
        raise ValueError(f"{name}: need at least 8 fitting trials and 1 test trial, got {len(fit)} and {len(test)}")


def row_space(features_fit: np.ndarray, features_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise on the fitting trials, then express both sets in the fitting trials' row space.

    An L2-penalised linear model's weights lie in the span of its training rows (the representer
    theorem), so fitting on these at most K_fit coordinates instead of the F = T x N features gives
    the same predictions, for every cross-validation fold too, and is much faster when F >> K_fit.
    The coordinates come from the fitting trials' Gram matrix (K_fit x K_fit): its eigenvectors U and
    eigenvalues s^2 give the right singular vectors V = X' U / s of the standardised fitting features X,
    so the fitting trials are U s and the test trials X_test X' U / s, without an SVD of the K_fit x F
    matrix (several times faster at F >> K_fit). Directions whose eigenvalue is below 1e-10 of the largest
    (singular values below 1e-5 of the largest; the standardised rows' mean direction among them) are
    dropped.
    """
    mean, std = features_fit.mean(axis=0), features_fit.std(axis=0) + 1e-6
    fit, test = (features_fit - mean) / std, (features_test - mean) / std
    if fit.shape[1] <= fit.shape[0]:
        return fit, test
    values, vectors = np.linalg.eigh(fit @ fit.T)
    keep = values > values[-1] * 1e-10
    values, vectors = values[keep][::-1], vectors[:, keep][:, ::-1]
    scale = np.sqrt(values)
    return vectors * scale, (test @ fit.T) @ vectors / scale


def decode_choice(features: np.ndarray, choice: np.ndarray, fit, test, seed: int = 42) -> float:
    """Test accuracy of a cross-validated logistic regression from ``features`` (K, F) to ``choice`` (K,)."""
    features, choice = np.asarray(features).reshape(len(features), -1), np.asarray(choice)
    fit, test = np.asarray(fit), np.asarray(test)
    _check(features, choice, fit, test, "choice")
    if len(np.unique(choice[fit])) < 2:
        raise ValueError("choice: the fitting trials hold a single choice; nothing to decode")
    x_fit, x_test = row_space(features[fit], features[test])
    folds = min(4, int(np.bincount((choice[fit] > 0).astype(int)).min()))
    search = GridSearchCV(LogisticRegression(random_state=seed, max_iter=1000), {"C": CHOICE_C}, cv=max(folds, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x_fit, choice[fit])
    return float(search.score(x_test, choice[test]))


def decode_continuous(features: np.ndarray, target: np.ndarray, fit, test) -> float:
    """Pooled test R^2 of a cross-validated ridge from ``features`` (K, F) to ``target`` (K, T)."""
    features, target = np.asarray(features).reshape(len(features), -1), np.asarray(target, dtype=np.float64)
    fit, test = np.asarray(fit), np.asarray(test)
    _check(features, target, fit, test, "behavior")
    if target.ndim != 2:
        raise ValueError(f"behavior: expected a per-bin (K, T) target, got shape {target.shape}")
    usable = np.isfinite(target).all(axis=1)
    fit, test = fit[usable[fit]], test[usable[test]]
    _check(features, target, fit, test, "behavior (trials without NaN)")
    x_fit, x_test = row_space(features[fit], features[test])
    search = GridSearchCV(Ridge(), {"alpha": RIDGE_ALPHAS}, cv=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x_fit, target[fit])
    predicted = search.predict(x_test)
    return float(r2_score(target[test].ravel(), predicted.ravel()))


def decode_behavior(session, keys=("choice", "whisker_me"), model=None, training_masking: str | None = None,
                    features=None, prompt: str | None = None, attention: str = "reference") -> dict[str, float]:
    """Decode each behaviour key of ``session``: from a model's log-rates when ``model`` is given
    (``choice`` with the neuron prompt, per-bin keys with the causal prompt, or every key with the
    scheme ``prompt``; ``attention`` as in :func:`model_log_rates`), from ``features`` (K, T, N) when
    given (e.g. the log of ground-truth rates), else from the raw spikes.
    Returns {key: accuracy (choice) or pooled R^2}."""
    if prompt is not None and prompt not in PROMPT_IDS:
        raise ValueError(f"prompt: expected one of {tuple(PROMPT_IDS)}, got {prompt!r}")
    missing = [key for key in keys if key not in session.behavior]
    if missing:
        raise ValueError(f"behavior: session {session.eid!r} has no {missing}; it has {sorted(session.behavior)}")
    for split in ("train", "test"):
        if len(session.splits.get(split, ())) == 0:
            raise ValueError(f"split: session {session.eid!r} has no trials in its {split!r} split")
    fit = np.concatenate([session.splits["train"], session.splits.get("val", np.array([], int))])
    test = session.splits["test"]
    by_prompt = {}
    scores = {}
    for key in keys:
        scheme = prompt or DECODING_PROMPT.get(key, "causal")
        if model is not None:
            if scheme not in by_prompt:
                by_prompt[scheme] = model_log_rates(model, session, scheme, training_masking, attention=attention)
            inputs = by_prompt[scheme]
        else:
            inputs = session.spikes.astype(np.float32) if features is None else np.asarray(features, np.float32)
        values = session.behavior[key]
        if key == "choice":
            scores[key] = decode_choice(inputs, values, fit, test)
        else:
            scores[key] = decode_continuous(inputs, values, fit, test)
    return scores

r"""Every score of the package, defined once: bits per spike (pooled and per neuron), Poisson D^2, the
validation score that selects a run's best epoch, single-trial, PSTH and top-50 R^2. Training
(:mod:`mtm.train`) and evaluation (:mod:`mtm.evaluate`) both score with these functions.

Bits per spike
--------------
For predicted rates :math:`\lambda` (expected counts per bin) and counts :math:`y`, the Poisson
negative log-likelihood is :math:`\mathrm{NLL}(\lambda, y) = \sum [\lambda - y \ln \lambda + \ln \Gamma(y + 1)]`
(zero rates replaced by 1e-9, entries with NaN counts dropped). The null model predicts each neuron's
mean count over the evaluated trials and bins themselves, :math:`\bar y_n`. Then

.. math:: \mathrm{bps} = \frac{\mathrm{NLL}(\bar y, y) - \mathrm{NLL}(\lambda, y)}{\ln 2 \sum y}

* **NLB co-bps** (``per_neuron=False``, :func:`nlb_tools.evaluation.bits_per_spike`): the sums run
  over every neuron, trial and bin at once, so one number pools all neurons.
* **MtM per-neuron bps** (``per_neuron=True``, the reference's ``eval_utils``): the formula applied to
  each neuron alone, giving an (N,) array; :math:`\pm\infty` becomes NaN, so neurons with no spike in
  the evaluated window drop out; a session's score is the NaN-mean over neurons. The paper's tables
  use this convention, and so do the tables of this package.
* **BrainWideBench bps** (``drop_silent=True``, ``ibl_bwb_eval.metrics.BPS`` of ``ibl-bwb-eval``
  0.1.0): NLB's pooled sums over the neurons whose mean count is at least 1e-9, i.e. that spike in the
  evaluated entries. NLB keeps a silent neuron, whose predicted rates then cost bits; the benchmark
  drops it. The two agree whenever every neuron spikes.

Poisson D^2
-----------
The share of the explainable Poisson deviance that a prediction explains (Cohen's pseudo-R^2; the
primary metric of BrainWideBench's TS2 suite, ``ibl_bwb_eval.metrics.PoissonD2Score``). The saturated
model predicts every count exactly, :math:`\mathrm{NLL}(y, y)` (with :math:`0 \ln 0 = 0`); per neuron n,

.. math:: D^2_n = 1 - \frac{\mathrm{NLL}_n(\lambda, y) - \mathrm{NLL}_n(y, y)}
                           {\mathrm{NLL}_n(\bar y, y) - \mathrm{NLL}_n(y, y)}
              = \frac{\mathrm{NLL}_n(\bar y, y) - \mathrm{NLL}_n(\lambda, y)}
                      {\mathrm{NLL}_n(\bar y, y) - \mathrm{NLL}_n(y, y)}

(the null mean clamped at 1e-9), defined for a neuron with a spike and a denominator of at least 1e-9
in size; the session's score is the mean of :math:`D^2_n` over the neurons where it is defined.
The numerator is the per-neuron bps times :math:`\ln 2 \sum_n y`, so
:math:`D^2_n = \mathrm{bps}_n / \mathrm{bps}^{sat}_n`: a neuron's bits per spike as a share of those of
the saturated model, the most any prediction of its counts can earn. 1 is a perfect prediction, 0 the
neuron's mean rate, below 0 worse than the mean. Bits per spike grow with how much a neuron's counts
vary; D^2 divides that out, so neurons (and sessions) of different rates and variability are on one
scale.


Validation score
----------------
During training (:meth:`mtm.train.Trainer.validate`) the model sees masked inputs, so the score
pools only the masked (target) entries :math:`M` of the validation split, against a null model that
predicts each neuron's mean count over the whole split, :math:`\bar y_n` (clamped at 1e-9):
:math:`\mathrm{val\_bps} = \sum_M [\mathrm{NLL}(\bar y, y) - \mathrm{NLL}(\lambda, y)] / (\ln 2 \sum_M y)`
(:class:`ValidationBitsPerSpike`, on the training device). :func:`top50_trial_r2` is the reference's
selection score.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def as_trials_array(values, name: str) -> np.ndarray:
    """``values`` (an array or a tensor) as a float64 (trials, bins, neurons) array; ``ValueError``
    naming ``name`` otherwise."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"{name}: expected a (trials, bins, neurons) array, got shape {values.shape}")
    return values


def check_rates(rates, spikes) -> tuple[np.ndarray, np.ndarray]:
    """Rates and counts (K, T, N) as float64 arrays of one shape, the rates finite and non-negative
    wherever a count is observed (not NaN)."""
    rates, spikes = as_trials_array(rates, "rates"), as_trials_array(spikes, "spikes")
    if rates.shape != spikes.shape:
        raise ValueError(f"rates: expected the shape of spikes {spikes.shape}, got {rates.shape}")
    observed = ~np.isnan(spikes)
    seen = rates if observed.all() else rates[observed]
    if not np.isfinite(seen).all():
        raise ValueError("rates: NaN or infinite rate predictions where spikes are observed")
    if (seen < 0).any():
        raise ValueError("rates: negative rate predictions (expected counts per bin must be >= 0)")
    return rates, spikes


def _poisson_sums(rates: np.ndarray, spikes: np.ndarray, saturated: bool = False) -> dict[str, np.ndarray]:
    """Per-neuron sums (N,) over the observed (not NaN) entries of (K, T, N) ``rates`` and ``spikes``,
    from which every Poisson score here is computed: ``counted`` (entries), ``total`` (sum y),
    ``model`` (sum lambda - y ln lambda, zero rates replaced by 1e-9: NLL_model without
    ln Gamma(y + 1), which cancels in every score), ``mean`` (total / counted, the null model's rate,
    not clamped) and, if ``saturated``, ``y_log_y`` (sum y ln y, with 0 ln 0 = 0)."""
    observed = ~np.isnan(spikes)
    complete = bool(observed.all())
    y = spikes if complete else np.where(observed, spikes, 0.0)
    r = np.where(rates == 0, 1e-9, rates) if complete else np.where(observed, np.where(rates == 0, 1e-9, rates), 1.0)
    model_terms = r - y * np.log(r)
    if not complete:
        model_terms = np.where(observed, model_terms, 0.0)
    counted = observed.sum(axis=(0, 1))
    total = y.sum(axis=(0, 1))
    sums = {"counted": counted, "total": total, "model": model_terms.sum(axis=(0, 1)),
            "mean": total / np.maximum(counted, 1)}
    if saturated:
        sums["y_log_y"] = (y * np.log(np.where(y > 0, y, 1.0))).sum(axis=(0, 1))
    return sums


def _likelihood_gain(sums: dict[str, np.ndarray]) -> np.ndarray:
    """NLL_null - NLL_model per neuron (N,); the null model's NLL has a closed form per neuron,
    n_observed * ybar - ln(ybar) * sum(y), with a zero mean replaced by 1e-9."""
    mean = np.where(sums["mean"] == 0, 1e-9, sums["mean"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums["counted"] * mean - sums["total"] * np.log(mean) - sums["model"]


def poisson_scores(rates: np.ndarray, spikes: np.ndarray) -> tuple[np.ndarray, float]:
    """MtM per-neuron bps (N,) (NaN where not finite) and NLB's pooled co-bps, from one pass.

    Per neuron, NLL_null - NLL_model is summed over its observed entries (:func:`_poisson_sums`).
    """
    sums = _poisson_sums(rates, spikes)
    gain, total = _likelihood_gain(sums), sums["total"]
    with np.errstate(invalid="ignore", divide="ignore"):
        co_bps = float(gain.sum() / total.sum() / math.log(2))
        bps = gain / total / math.log(2)
    bps[~np.isfinite(bps)] = np.nan
    return bps, co_bps


def bits_per_spike(rates, spikes, per_neuron: bool = False, drop_silent: bool = False):
    """Bits per spike of ``rates`` for ``spikes``, both (trials, bins, neurons) (formula in the module
    docstring). ``per_neuron=False``: NLB's pooled co-bps (a float); with ``drop_silent``,
    BrainWideBench's pooled bps, over the neurons that spike only. ``per_neuron=True``: the MtM
    per-neuron bps, an (N,) array with NaN for neurons without spikes; average it with ``np.nanmean``.
    """
    rates, spikes = check_rates(rates, spikes)
    if not drop_silent:
        bps, co_bps = poisson_scores(rates, spikes)
        return bps if per_neuron else co_bps
    if per_neuron:
        raise ValueError("drop_silent: a pooled score's option; per neuron, silent neurons are NaN already")
    sums = _poisson_sums(rates, spikes)
    spiking = sums["mean"] >= 1e-9
    if not spiking.any():
        return math.nan
    return float(_likelihood_gain(sums)[spiking].sum() / sums["total"][spiking].sum() / math.log(2))


def poisson_d2(rates, spikes, per_neuron: bool = False):
    """Poisson D^2 of ``rates`` for ``spikes``, both (trials, bins, neurons) (formula in the module
    docstring; ``ibl_bwb_eval.metrics.PoissonD2Score`` of ``ibl-bwb-eval`` 0.1.0, in float64 here).
    ``per_neuron=True``: an (N,) array, NaN where D^2 is undefined (no spike, or a denominator below
    1e-9 in size). ``per_neuron=False``: their mean over the neurons where it is defined, the
    benchmark's score (NaN when it is defined for none)."""
    sums = _poisson_sums(*check_rates(rates, spikes), saturated=True)
    total, y_log_y = sums["total"], sums["y_log_y"]
    denominator = y_log_y - total * np.log(np.maximum(sums["mean"], 1e-9))    # NLL_null - NLL_saturated
    with np.errstate(invalid="ignore", divide="ignore"):
        d2 = 1.0 - (sums["model"] - (total - y_log_y)) / denominator           # NLL_saturated = sum y - y ln y
    defined = (total > 0) & (np.abs(denominator) >= 1e-9)
    d2 = np.where(defined, d2, np.nan)
    if per_neuron:
        return d2
    return float(d2[defined].mean()) if defined.any() else math.nan


def trial_r2(rates, spikes) -> np.ndarray:
    """Single-trial R^2 of each neuron (N,): 1 - SS_res / SS_tot over every (trial, bin) of the
    neuron, with SS_tot about its mean count; NaN for a neuron that never spikes (reference notes 5.2,
    ``r2.npy``). ``rates`` and ``spikes``: (K, T, N)."""
    rates, spikes = check_rates(rates, spikes)
    residual = ((spikes - rates) ** 2).sum(axis=(0, 1))
    total = ((spikes - spikes.mean(axis=(0, 1), keepdims=True)) ** 2).sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.nan)


def psth_r2(rates, spikes, conditions) -> np.ndarray:
    """PSTH R^2 of each neuron (N,): the trial-averaged predicted rates against the trial-averaged
    counts, one PSTH per condition (``conditions`` (K,): a label per trial, e.g. each (block, choice,
    reward) combination as the reference), R^2 over the concatenated (condition, bin) values, not
    clipped; NaN for a neuron whose PSTHs are flat."""
    rates, spikes = check_rates(rates, spikes)
    conditions = np.asarray(conditions)
    if conditions.shape != (len(spikes),):
        raise ValueError(f"conditions: expected one label per trial ({len(spikes)}), got shape {conditions.shape}")
    labels = np.unique(conditions)
    predicted = np.concatenate([rates[conditions == c].mean(axis=0) for c in labels])   # (C * T, N)
    observed = np.concatenate([spikes[conditions == c].mean(axis=0) for c in labels])
    residual = ((observed - predicted) ** 2).sum(axis=0)
    total = ((observed - observed.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.nan)


def top50_trial_r2(rates: torch.Tensor, spikes: torch.Tensor, n_neurons: int = 50) -> float:
    """The reference's selection score: single-trial R^2 of the ``n_neurons`` most active neurons.

    For each of the most active neurons (total count) and each trial, R^2 between its counts and
    predicted rates over the bins; NaN (constant trials) dropped, mean over trials, then neurons.
    """
    top = torch.argsort(spikes.sum(dim=(0, 1)), descending=True)[:n_neurons]
    y, r = spikes[..., top].double(), rates[..., top].double()
    ss_res = ((y - r) ** 2).sum(dim=1)
    ss_tot = ((y - y.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp(min=1e-12), torch.nan)
    return float(torch.nanmean(torch.nanmean(r2, dim=0)))

class ValidationBitsPerSpike:
    """The pooled validation bits per spike of one session, accumulated over batches (formula in the
    module docstring). ``split_spikes`` (K, T, N): the counts of the whole validation split, which give
    the null model's rate of each neuron."""

    def __init__(self, split_spikes: torch.Tensor):
        self.null_rate = split_spikes.float().mean(dim=(0, 1)).clamp(min=1e-9)
        self.gain = torch.zeros(2, device=split_spikes.device, dtype=torch.float64)  # (NLL_null - NLL_model, spikes)

    def add(self, log_rates: torch.Tensor, spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Add one batch: log-rates, counts and the target mask, each (B, T, N); returns its rates
        exp(log-rates) in fp32."""
        y, log_rates, weight = spikes.float(), log_rates.float(), target.float()
        nll_model = (torch.exp(log_rates) - y * log_rates) * weight
        nll_null = (self.null_rate - y * torch.log(self.null_rate)) * weight
        self.gain += torch.stack([(nll_null - nll_model).sum(), (y * weight).sum()]).double()
        return torch.exp(log_rates)

    def value(self) -> float:
        return float(self.gain[0] / self.gain[1].clamp(min=1) / math.log(2))

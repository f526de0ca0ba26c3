r"""Ground-truth oracles: the best score each activity task allows on a synthetic session.

The true rates of a synthetic session are not reachable: every neuron carries a private fluctuation
:math:`s_n p_{kn}(t)` that nothing else in the recording shows (:mod:`mtm.data.synthetic`). What a
task allows depends on what it leaves visible. For each task the oracle predicts every scored entry
with its conditional expectation given an *information set* that contains everything the task shows
a model, as exact latent states rather than noisy spikes:

=================  ===========================================================================
task               information set of the oracle
=================  ===========================================================================
``co-smooth``      the latents of the neuron's own region at every bin
``intra-region``   the latents of the neuron's own region at every bin
``inter-region``   the latents of every other region at every bin, and the task inputs
``forward-pred``   every latent and every neuron's private fluctuation up to the last visible
                   bin, and the task inputs at every bin
=================  ===========================================================================

*Why these are upper bounds.* For a Poisson count :math:`y` and any prediction :math:`\hat\lambda`
built from information :math:`\mathcal I`, the expected log-likelihood
:math:`E[y\log\hat\lambda - \hat\lambda]` is largest at :math:`\hat\lambda = E[\lambda\mid\mathcal I]`,
and more information never lowers that maximum. A model sees spikes, which are noisy functions of
the latents and of the *other* neurons' private fluctuations (independent of the scored neuron's), so
its information is contained in the oracle's: in expectation no model scores above the oracle. (On
a finite test split a model can exceed it by chance, by the sampling noise of the score.)
Co-smoothing and intra-region share one oracle: given its own region's latents, a neuron's rate does
not depend on any other region. Forward prediction is different: the scored neuron's own spikes
before the window are visible, and its private fluctuation is smooth (bumps of 250 ms), so its past
is part of the information set; eight bumps seen over 90 bins fix the fluctuation's coefficients,
so the oracle knows it in the window too and is left with the latents' uncertainty over 200 ms.

*Formulas.* The log-rate of neuron :math:`n` is :math:`\eta = a_n^\top x(t) + \pi_n(t) + \beta_n`
with read-out :math:`a_n` (zero outside its region), private part :math:`\pi_n(t) = s_n p_{kn}(t)`,
:math:`p \sim N(0, 1)` at every bin, and :math:`\beta_n` = ``log_base``; the rate is
:math:`\min(c, e^\eta)` with the clip :math:`c` = 150 Hz :math:`\times\Delta`. When
:math:`\eta \sim N(\mu, v)` given the information,

.. math:: E[\min(c, e^\eta)] = e^{\mu + v/2}\,\Phi\Big(\frac{\log c - \mu - v}{\sqrt v}\Big)
          + c\,\Big(1 - \Phi\Big(\frac{\log c - \mu}{\sqrt v}\Big)\Big)

exactly (:func:`expected_clipped_exp`; :math:`\min(c, e^\mu)` when :math:`v = 0`). So:

* co-smoothing, intra-region: :math:`\mu = a_n^\top x(t) + \beta_n`, :math:`v = s_n^2`.
* inter-region (region :math:`r` hidden): the latents follow
  :math:`x(t) = A x(t-1) + B u(t) + \sigma\epsilon(t)` after ``burn_in`` steps from 0 driven by
  :math:`u(0)`, so given the inputs the whole trajectory :math:`X = (x(0), \dots, x(T-1))` is
  Gaussian with mean :math:`m` (the noise-free recursion) and a covariance :math:`\Sigma` that is the
  same for every trial (:func:`latent_prior`). Conditioning on the other regions' part :math:`X_O`,
  the hidden part :math:`X_H` is Gaussian with mean :math:`m_H + \Sigma_{HO}\Sigma_{OO}^{-1}(X_O - m_O)`
  and covariance :math:`V = \Sigma_{HH} - \Sigma_{HO}\Sigma_{OO}^{-1}\Sigma_{OH}` (the
  Rauch-Tung-Striebel smoother's answer, computed as one Gaussian conditioning since :math:`\Sigma`
  is shared by all trials). Then :math:`\mu = a_n^\top E[x(t)] + \beta_n`,
  :math:`v = a_n^\top V_{tt} a_n + s_n^2`.
* forward prediction: the same conditioning with :math:`X_O` = every latent before the window,
  :math:`\mu = a_n^\top E[x(t)] + \pi_n(t) + \beta_n`, :math:`v = a_n^\top V_{tt} a_n`.
  Bins before the window are known exactly (the true rates); only the window is scored.

Behaviour has no such bound here (the decoders are linear and fitted on a few hundred trials);
:func:`latent_features` gives the true latents as decoding features, a reference, not a bound.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import ndtr

from mtm.data.synthetic import PRIVATE_GAIN, World, synthetic_session
from mtm.evaluate import TASKS, TaskResult, evaluate_rates, scored_bins, task_scores

TASK_INFORMATION = {
    "co-smooth": "latents of the neuron's own region",
    "intra-region": "latents of the neuron's own region",
    "inter-region": "latents of the other regions + task inputs",
    "forward-pred": "all latents and private fluctuations before the window + task inputs",
}


def _truth(session):
    if getattr(session, "truth", None) is None:
        raise ValueError(f"truth: session {session.eid!r} has no ground truth (only synthetic sessions from "
                         "mtm.data.synthetic have one), so it has no oracle")
    return session.truth


def expected_clipped_exp(mean, var, cap: float) -> np.ndarray:
    """E[min(cap, exp(Z))] for Z ~ N(mean, var), elementwise and exact (formula in the module docstring)."""
    mean, var = np.broadcast_arrays(np.asarray(mean, np.float64), np.asarray(var, np.float64))
    log_cap = np.log(cap)
    out = np.minimum(np.exp(np.minimum(mean, log_cap)), cap)
    spread = var > 0
    m, v = mean[spread], var[spread]
    sd = np.sqrt(v)
    out[spread] = (np.exp(np.minimum(m + v / 2, 700.0)) * ndtr((log_cap - m - v) / sd)
                   + cap * ndtr((m - log_cap) / sd))
    return out


def latent_prior(truth, trials=None, inputs=None) -> tuple[np.ndarray, np.ndarray]:
    """The latents' prior given the task inputs: means (K, T, L) and the covariance (T*L, T*L) of the
    flattened trajectory (bin-major), both in the read-out's scaled units (module docstring).

    ``inputs`` (K, T, U): other input trajectories than the session's own (``trials`` is then ignored).
    """
    if inputs is None:
        inputs = truth.inputs if trials is None else truth.inputs[trials]
    transition, noise = truth.transition, truth.noise
    drive = inputs.astype(np.float64) @ truth.input_weights.T  # (K, T, L)
    n_trials, n_bins, n_latent = drive.shape
    state = np.zeros((n_trials, n_latent))
    cov = np.zeros((n_latent, n_latent))
    innovation = noise ** 2 * np.eye(n_latent)
    for _ in range(truth.burn_in):
        state = state @ transition.T + drive[:, 0]
        cov = transition @ cov @ transition.T + innovation
    means = np.empty_like(drive)
    marginal = []
    for t in range(n_bins):
        state = state @ transition.T + drive[:, t]
        cov = transition @ cov @ transition.T + innovation
        means[:, t] = state
        marginal.append(cov)
    full = np.empty((n_bins * n_latent, n_bins * n_latent))
    for s in range(n_bins):  # Cov(x(t), x(s)) = A^(t-s) P(s) for t >= s
        block = marginal[s]
        for t in range(s, n_bins):
            full[t * n_latent:(t + 1) * n_latent, s * n_latent:(s + 1) * n_latent] = block
            full[s * n_latent:(s + 1) * n_latent, t * n_latent:(t + 1) * n_latent] = block.T
            block = transition @ block
    scale = np.tile(truth.latent_scale, n_bins)
    return means / truth.latent_scale, full / scale[:, None] / scale[None, :]


def condition(means: np.ndarray, cov: np.ndarray, observed: np.ndarray, values: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian conditioning of a flattened trajectory on the entries ``observed`` (bool, (D,)).

    ``means`` and ``values`` are (K, D) prior means and true values. Returns the posterior means of the
    hidden entries (K, H) and their covariance (H, H), the same for every trial.
    """
    hidden = ~observed
    factor = cho_factor(cov[np.ix_(observed, observed)])
    cross = cov[np.ix_(hidden, observed)]
    gain = cho_solve(factor, cross.T).T  # (H, O)
    posterior = means[:, hidden] + (values[:, observed] - means[:, observed]) @ gain.T
    return posterior, cov[np.ix_(hidden, hidden)] - gain @ cross.T


def _readout_moments(truth, mean_latents: np.ndarray, cov_blocks: np.ndarray, neurons: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Mean (K, T, n) and variance (T, n) of a_n' x(t) for ``neurons``, given latent means (K, T, L)
    and per-bin latent covariances (T, L, L)."""
    readout = truth.readout[:, neurons].astype(np.float64)
    mean = mean_latents @ readout
    var = np.einsum("ln,tlm,mn->tn", readout, cov_blocks, readout)
    return mean, np.maximum(var, 0.0)


def oracle_rates(session, task: str, split: str = "test") -> np.ndarray:
    """The oracle's expected counts (K_split, T, N) for ``task`` on ``split`` (module docstring).

    Every entry the task scores is the conditional expectation given the task's information set
    (:data:`TASK_INFORMATION`); for forward prediction, bins before the window are the true rates.
    """
    truth = _truth(session)
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    trials = session.splits[split]
    latents = truth.latents[trials].astype(np.float64)
    private_sd = truth.private_gain.astype(np.float64)
    log_base = truth.log_base.astype(np.float64)
    n_trials, n_bins, n_latent = latents.shape
    if task in ("co-smooth", "intra-region"):
        mean = latents @ truth.readout.astype(np.float64) + log_base
        return expected_clipped_exp(mean, np.broadcast_to(private_sd ** 2, mean.shape), truth.max_rate)
    prior_means, cov = latent_prior(truth, trials)
    flat_means, flat_values = prior_means.reshape(n_trials, -1), latents.reshape(n_trials, -1)
    if task == "forward-pred":
        window = scored_bins(task, n_bins)
        observed = np.ones((n_bins, n_latent), dtype=bool)
        observed[window] = False
        posterior, post_cov = condition(flat_means, cov, observed.reshape(-1), flat_values)
        mean_latents = latents.copy()
        mean_latents[:, window] = posterior.reshape(n_trials, len(window), n_latent)
        blocks = np.zeros((n_bins, n_latent, n_latent))
        h = np.arange(len(window))
        blocks[window] = post_cov.reshape(len(window), n_latent, len(window), n_latent)[h, :, h]
        mean, var = _readout_moments(truth, mean_latents, blocks, np.arange(truth.n_neurons))
        private = np.matmul(truth.private_basis.astype(np.float64), truth.private[trials].astype(np.float64))
        return expected_clipped_exp(mean + private + log_base, np.broadcast_to(var, mean.shape), truth.max_rate)
    rates = np.empty((n_trials, n_bins, truth.n_neurons))
    regions = np.asarray(session.regions).astype(str)
    for region in session.region_names:
        neurons = np.flatnonzero(regions == region)
        visible = np.isin(truth.latent_regions, np.unique(regions[regions != region]))
        observed = np.broadcast_to(visible, (n_bins, n_latent)).reshape(-1)
        mean_latents = np.zeros_like(latents)
        blocks = np.zeros((n_bins, n_latent, n_latent))
        if observed.all():  # the region has no latents of its own: its rates do not vary
            pass
        elif observed.any():
            posterior, post_cov = condition(flat_means, cov, observed, flat_values)
            n_hidden = int((~visible).sum())
            mean_latents[:, :, ~visible] = posterior.reshape(n_trials, n_bins, n_hidden)
            t = np.arange(n_bins)
            blocks[np.ix_(t, ~visible, ~visible)] = post_cov.reshape(n_bins, n_hidden, n_bins, n_hidden)[t, :, t]
        else:  # nothing visible: the prior given the inputs
            mean_latents = prior_means
            blocks = np.stack([cov[t * n_latent:(t + 1) * n_latent, t * n_latent:(t + 1) * n_latent]
                               for t in range(n_bins)])
        mean, var = _readout_moments(truth, mean_latents, blocks, neurons)
        rates[..., neurons] = expected_clipped_exp(mean + log_base[neurons], var + private_sd[neurons] ** 2,
                                                   truth.max_rate)
    return rates


def oracle_results(session, tasks=TASKS, split: str = "test") -> dict[str, TaskResult]:
    """{task: TaskResult} of the oracle, scored exactly like a model (per-neuron bits per spike)."""
    _truth(session)
    results = {}
    trials = session.splits[split]
    for task in tasks:
        bins = scored_bins(task, session.n_bins)
        rates = oracle_rates(session, task, split)
        results[task] = TaskResult(task, rates[:, bins], session.spikes[trials][:, bins].astype(float), bins)
    return results


KNOBS = ("private_gain", "coupling", "noise")


TRUE_RATES = "true rates"
#: The name of the latent oracle in :func:`knob_sweep`'s output.
LATENT_ORACLE = "latent oracle"


def knob_sweep(knob: str, values, seed: int = 0, n_trials: int = 200, n_neurons: int = 100,
               tasks=TASKS, references=None) -> dict[float, dict]:
    """How one generator knob moves each task's yardsticks: {value: {name: {task: mean bps}, TRUE_RATES:
    the true rates' mean bps over every bin (what no model reaches)}}, one name per reference.

    ``knob``: ``private_gain`` (every neuron's private amplitude set to the value), ``coupling`` (the
    coupling between regions, 0.12 by default) or ``noise`` (the latent noise sigma, 0.35 by default);
    everything else as in :func:`mtm.data.synthetic.synthetic_session` with ``seed``. ``references``:
    {name: function(session, tasks) -> {task: TaskResult}} scored on the test split, e.g.
    :func:`oracle_results` and :func:`mtm.bayes.bayes_results`; default ``{LATENT_ORACLE: oracle_results}``.
    """
    if knob not in KNOBS:
        raise ValueError(f"knob: expected one of {KNOBS}, got {knob!r}")
    references = references or {LATENT_ORACLE: oracle_results}
    sweep = {}
    for value in values:
        value = float(value)
        world = World(0, **{knob: value}) if knob != "private_gain" else World(0)
        gain = (value, value) if knob == "private_gain" else PRIVATE_GAIN
        session = synthetic_session(seed, n_trials, n_neurons, world=world, private_gain=gain)
        sweep[value] = {name: task_scores(score(session, tasks)) for name, score in references.items()}
        sweep[value][TRUE_RATES] = evaluate_rates(session.rates, session, ("co-smooth",))["co-smooth"].mean_bps
    return sweep


def latent_features(session) -> np.ndarray:
    """(K, T, L) the true latents of every trial, as decoding features (a reference for behaviour)."""
    return np.asarray(_truth(session).latents, np.float32)

r"""The Bayes predictor given the visible spikes: a yardstick a model can reach, per task.

The latent oracle (:mod:`mtm.oracle`) conditions on the true latents, which no model sees, so it is
an upper bound and a loose one on sparse sessions. This module predicts every hidden count with its
expectation given *exactly the spikes the task leaves visible* (the same held-out sets as
:mod:`mtm.evaluate`, built by :func:`mtm.evaluate.task_configurations` and
:func:`mtm.evaluate.scored_bins`) and the true generative parameters of the synthetic session
(dynamics, couplings, loadings, gains, baselines, private amplitudes, the inputs' distribution). A
model sees the same spikes and lacks only the parameters, so this predictor is reachable in
principle: up to the approximations below, no model beats it in expectation.

Model, per trial (notation of :mod:`mtm.data.synthetic`, scaled latent units)
-----------------------------------------------------------------------------
Latent trajectory :math:`X = (x(0), \dots, x(T-1))`, :math:`x(t) \in \mathbb R^L` (all regions),
:math:`x(t) = \tilde A x(t-1) + d(t) + w(t)`, :math:`w \sim N(0, Q)`, with
:math:`\tilde A = S^{-1} A S`, :math:`Q = \sigma^2 S^{-2}` (:math:`S` = ``latent_scale``), started
``burn_in`` steps earlier from 0 (so :math:`x(0)` has covariance :math:`P_0`, read from
:func:`mtm.oracle.latent_prior`). The drive :math:`d(t) = S^{-1} B u(t)` comes from the task inputs,
which no task shows a model, so they are **marginalised with their distribution**: input
trajectories are drawn from the task generator (:func:`mtm.data.synthetic.simulate_task`, sessions of
this session's trial count, the centre of the task parameters' ranges since a session's own draw is
not stored), pushed through the noise-free recursion, and their effect on the latents is replaced
by a Gaussian with the same mean :math:`\mu` and covariance, truncated to its :math:`K` leading
principal components :math:`\Psi` (99.5 % of the variance): :math:`X = \mu + \Psi z + e` with
:math:`z \sim N(0, I_K)` and :math:`e` the Gauss-Markov noise process, whose precision
:math:`J` is block-tridiagonal in time (blocks :math:`L \times L`).
Neuron :math:`n` (read-out :math:`a_n`, ``log_base`` :math:`\beta_n`, private amplitude :math:`s_n`)
has log-rate :math:`\eta_n(t) = a_n^\top x(t) + b_t^\top c_n + \beta_n`, private coefficients
:math:`c_n \sim N(0, s_n^2 I_8)` over the bumps :math:`b_t` (``private_basis``), and
:math:`y_n(t) \sim \mathrm{Poisson}(e^{\eta_n(t)})`.

Posterior given the visible spikes (Laplace)
--------------------------------------------
The visible set :math:`\mathcal V` is a set of (bin, neuron) entries. Every **visible neuron's private
coefficients are in the posterior** (they explain away the part of its spikes no latent explains).
The log-posterior of :math:`(X, z, c)` is

.. math:: F = \sum_{(t,n)\in\mathcal V} \big[y_n(t)\,\eta_n(t) - e^{\eta_n(t)}\big]
          - \tfrac12 (X - \mu - \Psi z)^\top J (X - \mu - \Psi z) - \tfrac12 |z|^2
          - \sum_n \frac{|c_n|^2}{2 s_n^2},

concave, maximised by block Newton steps with a backtracking line search per trial: the
:math:`(X, z)` block is solved exactly given :math:`c` with the Hessian
:math:`\begin{pmatrix} J + W & -J\Psi \\ -\Psi^\top J & I + \Psi^\top J \Psi\end{pmatrix}`,
:math:`W_t = \sum_{n:(t,n)\in\mathcal V} e^{\eta_n(t)} a_n a_n^\top` (block-diagonal), through a
block-tridiagonal Cholesky factor of :math:`J + W` (:math:`O(T L^3)`) and a :math:`K \times K` Schur
complement; each :math:`c_n` by its own :math:`8 \times 8` Newton step given :math:`X`. At the mode
the Laplace covariance of the latents is
:math:`\Sigma = H^{-1} + V S_z^{-1} V^\top` (:math:`H = J + W`, :math:`V = H^{-1} J \Psi`,
:math:`S_z` the Schur complement); its per-bin blocks come from the backward recursion
:math:`\Sigma^H_{tt} = L_t^{-\top} L_t^{-1} + F_t \Sigma^H_{t+1,t+1} F_t^\top`,
:math:`F_t = -L_t^{-\top} L_{t+1,t}^\top`, and cross-bin blocks from
:math:`\Sigma^H_{ts} = F_t \Sigma^H_{t+1,s}` (:math:`s > t`). A visible neuron's coefficients have
covariance :math:`(\sum_t e^{\eta_n(t)} b_t b_t^\top + I/s_n^2)^{-1}` (visible bins).

Held-out neurons (co-smoothing, intra-region): leave-one-out cavity
-------------------------------------------------------------------
Co-smoothing hides one neuron at a time, intra-region one neuron plus the other regions. Rather than
one fit per neuron, the configurations that differ only in the scored neuron share one fit on the
visible set *with* that neuron, and its own spikes are then removed from the Gaussian posterior:
in the space of its latent drive :math:`\eta^x_i(t) = a_i^\top x(t)`, with posterior mean :math:`m`,
covariance :math:`C = (a_i^\top \Sigma_{ts} a_i)_{ts}` (:math:`T \times T`), residual
:math:`r_t = y_i(t) - e^{\eta_i(t)}` and weights :math:`D = \mathrm{diag}(e^{\eta_i(t)})`, one Newton
step of the posterior without neuron :math:`i` from the joint mode gives

.. math:: C_{-i} = (C^{-1} - D)^{-1} = C + CDC + CDCDC + \dots, \qquad m_{-i} = m - C_{-i}\, r,

the series converging because :math:`C^{-1} - D` is the cavity's precision. Its mean is taken to the
third term, its variance to the second (:math:`\mathrm{diag}(C) + \mathrm{diag}(CDC)`); the next
terms are smaller by the factor :math:`\rho(C D) < 1` (a few per cent here: one neuron of dozens).
The removed neuron's private part is then its prior.

Prediction
----------
Every scored count gets :math:`E[\min(c_{\max}, e^{\eta})]` for :math:`\eta \sim N(m_\eta, v_\eta)`
(:func:`mtm.oracle.expected_clipped_exp`, the clipped log-normal moment) with

* hidden neuron (co-smoothing, intra-region, inter-region): :math:`m_\eta = a_n^\top E[x(t)] + \beta_n`
  (cavity mean where the neuron was in the fit), :math:`v_\eta = a_n^\top \Sigma_{tt} a_n + s_n^2`
  (cavity variance likewise): its private part is unknown and marginalised with its prior;
* forward prediction (every neuron visible before the window, none in it):
  :math:`m_\eta = a_n^\top E[x(t)] + b_t^\top E[c_n] + \beta_n`,
  :math:`v_\eta = a_n^\top \Sigma_{tt} a_n + b_t^\top \mathrm{Cov}(c_n) b_t`: the posterior over its
  private coefficients given its own spikes before the window.

What it ignores
---------------
* The inputs' non-Gaussianity (stimulus sides, reaction times and choices are discrete or skewed; the
  Gaussian keeps their mean and covariance), the 0.5 % of their covariance outside :math:`\Psi`, the
  session's own task parameters (lapse, threshold, prior bias: the centres of their ranges), and the
  block prior's correlation across trials (each trial is treated alone, as a model sees it).
* Laplace's Gaussian shape of the posterior, centred on its mode: with few spikes the posterior is
  skewed and its mean lies off the mode. Measured against elliptical slice sampling on one trial of a
  15-neuron session (3 neurons a region, ``tests/test_bayes.py``): the hidden region's drive 0.2
  posterior standard deviations off, the same variances, predicted rates 19 % apart on average. The
  gap to exact Bayes is therefore largest on small sessions; an approximation lowers the expected
  score, so the reference errs low, never above the exact Bayes predictor in expectation.
* The rate clip in the likelihood (150 Hz, rarely reached).
* The cavity's accuracy falls where one neuron carries much of its region's information: within 5 %
  of a refit on a 40-neuron session, but on the 15-neuron session the refit and the cavity differ.
* The posterior covariance between the latents and the private coefficients (each block's covariance
  is taken given the other block at the mode), and the cavity series beyond the terms above.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.linalg import eigh
from threadpoolctl import threadpool_limits

from mtm.data.synthetic import TaskParams, simulate_task
from mtm.evaluate import TASKS, TaskResult, scored_bins, task_configurations
from mtm.oracle import expected_clipped_exp, latent_prior

BAYES_ROW = "Bayes given the visible spikes (known parameters)"
INPUT_SAMPLES = 600         # simulated input trajectories that define the inputs' Gaussian
MAX_COMPONENTS = 80         # at most this many of their principal components
INPUT_VARIANCE = 0.995      # share of their latent covariance kept in Psi
MAX_NEWTON = 40
TOLERANCE = 1e-6            # stop when no entry of the Newton step exceeds this
ROWS = 48                   # (trial, visible set) rows fitted in one batch
CHUNK = 8                   # rows per batch of cross-bin covariances (memory: ~20 MB per row and region)


@dataclass(frozen=True)
class LatentPrior:
    """The latent trajectory's prior with the inputs marginalised (module docstring), scaled units.

    ``mean`` (T, L): mu; ``psi`` (T, L, K): the inputs' principal directions; ``transition`` (L, L):
    A~; ``innovation`` (L,): the diagonal of Q; ``initial`` (L, L): P0; ``j_diag`` (T, L, L) and
    ``j_lower`` (L, L): the blocks J_tt and J_{t,t-1} of the noise process's precision; ``j_psi``
    (T, L, K): J Psi; ``z_precision`` (K, K): I + Psi' J Psi.
    """

    mean: np.ndarray
    psi: np.ndarray
    transition: np.ndarray
    innovation: np.ndarray
    initial: np.ndarray
    j_diag: np.ndarray
    j_lower: np.ndarray
    j_psi: np.ndarray
    z_precision: np.ndarray

    def apply_j(self, d: np.ndarray) -> np.ndarray:
        """J d for trajectories d (..., T, L, R)."""
        out = self.j_diag @ d
        out[..., 1:, :, :] += self.j_lower @ d[..., :-1, :, :]
        out[..., :-1, :, :] += self.j_lower.T @ d[..., 1:, :, :]
        return out

    def inputs_part(self, z: np.ndarray) -> np.ndarray:
        """Psi z (B, T, L) for z (B, K)."""
        return (self.psi @ z[:, None, :, None])[..., 0].reshape(len(z), *self.mean.shape)


def _truth(session):
    if getattr(session, "truth", None) is None:
        raise ValueError(f"truth: session {session.eid!r} has no ground truth (only synthetic sessions from "
                         "mtm.data.synthetic have one), so it has no Bayes predictor")
    return session.truth


def latent_prior_marginal(truth, n_trials: int, seed: int = 0) -> LatentPrior:
    """The latents' prior with the task inputs marginalised, for sessions of ``n_trials`` trials."""
    key = (hash(truth.transition.tobytes()), hash(truth.input_weights.tobytes()), hash(truth.latent_scale.tobytes()),
           truth.noise, truth.burn_in, n_trials, seed)
    if key not in _PRIORS:
        _PRIORS.clear()  # one world at a time: every session of a world shares it
        _PRIORS[key] = _latent_prior_marginal(truth, n_trials, seed)
    return _PRIORS[key]


_PRIORS: dict[tuple, LatentPrior] = {}


def _latent_prior_marginal(truth, n_trials: int, seed: int) -> LatentPrior:
    rng = np.random.default_rng((seed, 22))
    runs = [simulate_task(rng, n_trials, TaskParams())["inputs"]
            for _ in range(-(-INPUT_SAMPLES // n_trials))]
    inputs = np.concatenate(runs)[:INPUT_SAMPLES]
    drives, cov = latent_prior(truth, inputs=inputs)
    n_bins, n_latent = drives.shape[1:]
    mean = drives.mean(axis=0)
    deviation = (drives - mean).reshape(len(drives), -1)
    gram = deviation @ deviation.T / len(drives)
    values, vectors = eigh(gram, subset_by_index=(len(gram) - MAX_COMPONENTS, len(gram) - 1))
    values, vectors = values[::-1], vectors[:, ::-1]
    keep = min(int(np.searchsorted(np.cumsum(values) / np.trace(gram), INPUT_VARIANCE)) + 1, len(values))
    psi = (deviation.T @ vectors[:, :keep] / np.sqrt(len(drives))).reshape(n_bins, n_latent, keep)
    scale = truth.latent_scale
    transition = truth.transition * scale[None, :] / scale[:, None]
    innovation = truth.noise ** 2 / scale ** 2
    initial = cov[:n_latent, :n_latent]
    q_inv = np.diag(1 / innovation)
    a_q_a = transition.T @ q_inv @ transition
    j_diag = np.broadcast_to(q_inv + a_q_a, (n_bins, n_latent, n_latent)).copy()
    j_diag[0] = np.linalg.inv(initial) + a_q_a
    j_diag[-1] = q_inv
    prior = LatentPrior(mean, psi, transition, innovation, initial, j_diag, -q_inv @ transition,
                        np.empty(0), np.empty(0))
    j_psi = prior.apply_j(psi)
    z_precision = np.eye(keep) + psi.reshape(-1, keep).T @ j_psi.reshape(-1, keep)
    return LatentPrior(mean, psi, transition, innovation, initial, j_diag, prior.j_lower, j_psi, z_precision)


def _factor(h_diag: np.ndarray, h_lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block Cholesky H = L L' of a block-tridiagonal H with diagonal blocks (B, T, L, L) and lower
    blocks H_{t,t-1} = ``h_lower`` (L, L). Returns the inverses of the diagonal factors L_t^-1 and
    the sub-diagonal factors L_{t,t-1} (index t; entry 0 unused), both (B, T, L, L)."""
    inverse, lower = np.empty_like(h_diag), np.zeros_like(h_diag)
    for t in range(h_diag.shape[1]):
        block = h_diag[:, t]
        if t:
            lower[:, t] = h_lower @ np.swapaxes(inverse[:, t - 1], -1, -2)
            block = block - lower[:, t] @ np.swapaxes(lower[:, t], -1, -2)
        inverse[:, t] = np.linalg.inv(np.linalg.cholesky(block))
    return inverse, lower


def _solve(inverse: np.ndarray, lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """H^-1 rhs for the factor of :func:`_factor`; ``rhs`` (B, T, L, R)."""
    n_bins = rhs.shape[1]
    forward = np.empty_like(rhs)
    for t in range(n_bins):
        r = rhs[:, t] if t == 0 else rhs[:, t] - lower[:, t] @ forward[:, t - 1]
        forward[:, t] = inverse[:, t] @ r
    out = np.empty_like(rhs)
    for t in reversed(range(n_bins)):
        r = forward[:, t] if t == n_bins - 1 else forward[:, t] - np.swapaxes(lower[:, t + 1], -1, -2) @ out[:, t + 1]
        out[:, t] = np.swapaxes(inverse[:, t], -1, -2) @ r
    return out


def _covariance_steps(inverse: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin blocks of H^-1 (B, T, L, L) and the backward gains F_t (B, T, L, L) (module docstring)."""
    n_bins = inverse.shape[1]
    cov, gain = np.empty_like(inverse), np.zeros_like(inverse)
    inv_t = np.swapaxes(inverse, -1, -2)
    cov[:, -1] = inv_t[:, -1] @ inverse[:, -1]
    for t in reversed(range(n_bins - 1)):
        gain[:, t] = -inv_t[:, t] @ np.swapaxes(lower[:, t + 1], -1, -2)
        cov[:, t] = inv_t[:, t] @ inverse[:, t] + gain[:, t] @ cov[:, t + 1] @ np.swapaxes(gain[:, t], -1, -2)
    return cov, gain


@dataclass
class Posterior:
    """The Laplace posterior of R rows (a row: one trial under one visible set; module docstring).

    ``latents`` (R, T, L) posterior mean; ``latent_cov`` (R, T, L, L) per-bin covariance and
    ``markov_cov`` its H^-1 part; ``private`` (R, J, N) and ``private_cov`` (R, N, J, J) every neuron's
    coefficients (the prior for neurons without a visible bin); ``rates`` (R, T, N) the fit's expected
    counts at the mode; ``gain`` (R, T, L, L) the F_t, ``v`` (R, T, L, K) and ``z_cov`` (R, K, K)
    S_z^-1, for cross-bin covariances.
    """

    latents: np.ndarray
    latent_cov: np.ndarray
    markov_cov: np.ndarray
    private: np.ndarray
    private_cov: np.ndarray
    rates: np.ndarray
    gain: np.ndarray
    v: np.ndarray
    z_cov: np.ndarray

    def rows(self, index) -> Posterior:
        return Posterior(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


class Fitter:
    """Laplace posteriors of a session's trials given visible sets of their spikes (module docstring).

    Methods take ``spikes`` (R, T, N) counts and ``vis`` (R, T, N) 0/1 visibility, one row per
    (trial, visible set), so fits of several visible sets run in one batch.
    """

    def __init__(self, truth, prior: LatentPrior):
        self.truth, self.prior = truth, prior
        self.readout = truth.readout.astype(np.float64)               # (L, N)
        self.log_base = truth.log_base.astype(np.float64)
        self.marginal_base = self.log_base + 0.5 * truth.private_gain.astype(np.float64) ** 2
        self.basis = truth.private_basis.astype(np.float64)            # (T, J)
        self.private_var = np.maximum(truth.private_gain.astype(np.float64) ** 2, 1e-12)
        self.outer_basis = (self.basis[:, :, None] * self.basis[:, None, :]).reshape(len(self.basis), -1)
        self.region_of = np.full(self.readout.shape[1], -1)
        self.blocks = []  # (latent rows, neurons, a_n a_n' flattened (n, D*D)) of each region
        for region in np.unique(truth.latent_regions):
            latent_rows = np.flatnonzero(truth.latent_regions == region)
            neurons = np.flatnonzero((self.readout[latent_rows] != 0).any(axis=0))
            if len(neurons):
                self.region_of[neurons] = len(self.blocks)
                loads = self.readout[latent_rows][:, neurons]
                self.blocks.append((latent_rows, neurons,
                                    (loads.T[:, :, None] * loads.T[:, None, :]).reshape(len(neurons), -1)))

    def _log_rates(self, y: np.ndarray) -> np.ndarray:
        """log E[rate | latents] (R, T, N): the private part averaged over its prior."""
        return (self.prior.mean + y) @ self.readout + self.marginal_base

    def _objective(self, y, z, spikes, vis) -> np.ndarray:
        eta = self._log_rates(y)
        fit = (vis * (spikes * eta - np.exp(eta))).sum(axis=(1, 2))
        d = (y - self.prior.inputs_part(z))[..., None]
        return fit - 0.5 * (d * self.prior.apply_j(d)).sum(axis=(1, 2, 3)) - 0.5 * (z ** 2).sum(axis=1)

    def _weights(self, weights: np.ndarray) -> np.ndarray:
        """W_t = sum_n weights_tn a_n a_n' (R, T, L, L) for weights (R, T, N)."""
        n_rows, n_bins = weights.shape[:2]
        out = np.zeros((n_rows, n_bins) + self.prior.j_lower.shape)
        for rows, neurons, outer in self.blocks:
            dims = len(rows)
            out[:, :, rows[:, None], rows[None]] = (weights[..., neurons] @ outer).reshape(n_rows, n_bins, dims, dims)
        return out

    def _project(self, cov: np.ndarray) -> np.ndarray:
        """a_n' cov a_n (..., N) for latent covariances cov (..., L, L)."""
        out = np.zeros(cov.shape[:-2] + (self.readout.shape[1],))
        for rows, neurons, outer in self.blocks:
            out[..., neurons] = cov[..., rows[:, None], rows[None]].reshape(*cov.shape[:-2], -1) @ outer.T
        return out

    def _private_hessian(self, weights: np.ndarray) -> np.ndarray:
        """sum_t weights_tn b_t b_t' + I / s_n^2 (R, N, J, J) for weights (R, T, N)."""
        n_basis = self.basis.shape[1]
        return ((np.swapaxes(weights, 1, 2) @ self.outer_basis).reshape(*weights.shape[::2], n_basis, n_basis)
                + np.eye(n_basis) / self.private_var[:, None, None])

    def fit(self, spikes: np.ndarray, vis: np.ndarray) -> Posterior:
        """The posterior of every row (module docstring): Newton on (X, z), then the private parts."""
        prior, n_rows = self.prior, len(spikes)
        n_bins, n_latent, n_comp = prior.psi.shape
        j_psi = prior.j_psi.reshape(-1, n_comp)
        repeat = (n_rows,) + prior.j_psi.shape
        y = np.zeros((n_rows, n_bins, n_latent))
        z = np.zeros((n_rows, n_comp))
        current = self._objective(y, z, spikes, vis)
        for _ in range(MAX_NEWTON):
            rates = np.exp(self._log_rates(y))
            inverse, lower = _factor(prior.j_diag + self._weights(vis * rates), prior.j_lower)
            d = y - prior.inputs_part(z)
            grad_y = vis * (spikes - rates) @ self.readout.T - prior.apply_j(d[..., None])[..., 0]
            grad_z = d.reshape(n_rows, -1) @ j_psi - z
            rhs = np.concatenate([grad_y[..., None], np.broadcast_to(prior.j_psi, repeat)], -1)
            solved = _solve(inverse, lower, rhs)
            h_grad, v = solved[..., 0], solved[..., 1:].reshape(n_rows, -1, n_comp)
            schur = prior.z_precision - j_psi.T @ v
            step_z = np.linalg.solve(schur, (grad_z + h_grad.reshape(n_rows, -1) @ j_psi)[..., None])[..., 0]
            step_y = h_grad + (v @ step_z[..., None]).reshape(h_grad.shape)
            size = np.ones(n_rows)
            for _ in range(40):  # backtracking: halve the step of every row whose objective fell
                value = self._objective(y + size[:, None, None] * step_y, z + size[:, None] * step_z, spikes, vis)
                worse = value < current - 1e-12 * np.abs(current)
                if not worse.any():
                    break
                size[worse] /= 2
            y, z, current = y + size[:, None, None] * step_y, z + size[:, None] * step_z, value
            if max(np.abs(size[:, None, None] * step_y).max(), np.abs(size[:, None] * step_z).max()) < TOLERANCE:
                break
        rates = np.exp(self._log_rates(y))
        inverse, lower = _factor(prior.j_diag + self._weights(vis * rates), prior.j_lower)
        v = _solve(inverse, lower, np.broadcast_to(prior.j_psi, repeat).copy())
        z_cov = np.linalg.inv(prior.z_precision - j_psi.T @ v.reshape(n_rows, -1, n_comp))
        markov, gain = _covariance_steps(inverse, lower)
        cov = markov + (v @ z_cov[:, None]) @ np.swapaxes(v, -1, -2)
        private, private_cov = self._private_posterior(prior.mean + y, spikes, vis)
        return Posterior(prior.mean + y, cov, markov, private, private_cov, rates, gain, v, z_cov)

    def _private_posterior(self, latents, spikes, vis) -> tuple[np.ndarray, np.ndarray]:
        """Each neuron's private coefficients given its visible spikes and the latents at the mode:
        mean (R, J, N) and covariance (R, N, J, J) (Laplace; the prior where nothing is visible)."""
        drive = latents @ self.readout + self.log_base
        private = np.zeros((len(latents), self.basis.shape[1], self.readout.shape[1]))

        def objective(c):
            eta = drive + np.matmul(self.basis, c)
            return (vis * (spikes * eta - np.exp(eta))).sum(axis=1) - 0.5 * (c ** 2).sum(axis=1) / self.private_var

        current = objective(private)
        for _ in range(MAX_NEWTON):
            rates = np.exp(drive + np.matmul(self.basis, private))
            grad = np.matmul(self.basis.T, vis * (spikes - rates)) - private / self.private_var
            step = np.linalg.solve(self._private_hessian(vis * rates), np.swapaxes(grad, 1, 2)[..., None])
            step = np.swapaxes(step[..., 0], 1, 2)
            size = np.ones(current.shape)
            for _ in range(40):
                value = objective(private + size[:, None] * step)
                worse = value < current - 1e-12 * np.abs(current)
                if not worse.any():
                    break
                size[worse] /= 2
            private, current = private + size[:, None] * step, value
            if np.abs(size[:, None] * step).max() < TOLERANCE:
                break
        rates = np.exp(drive + np.matmul(self.basis, private))
        return private, np.linalg.inv(self._private_hessian(vis * rates))

    def predict(self, post: Posterior, neurons: np.ndarray) -> np.ndarray:
        """Expected counts (R, T, n) of ``neurons`` from the posterior, private parts included (a
        neuron without a visible bin keeps its prior: mean 0, variance s_n^2, the basis rows having
        unit norm)."""
        mean = post.latents @ self.readout[:, neurons] + self.log_base[neurons] \
            + np.matmul(self.basis, post.private[..., neurons])
        private_var = post.private_cov[:, neurons].reshape(len(post.private), len(neurons), -1) @ self.outer_basis.T
        var = self._project(post.latent_cov)[..., neurons] + np.swapaxes(private_var, 1, 2)
        return expected_clipped_exp(mean, np.maximum(var, 0.0), self.truth.max_rate)

    def predict_left_out(self, post: Posterior, neurons: np.ndarray, spikes: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """Expected counts (R, T, n) of each of ``neurons`` from the posterior without its own spikes
        (the cavity of the module docstring); its private part from its prior."""
        out = np.empty((len(post.latents), self.basis.shape[0], len(neurons)))
        for start in range(0, len(out), CHUNK):
            b = slice(start, start + CHUNK)
            drive_cov = self._drive_covariance(post.rows(b), neurons)                    # (b, n, T, T)
            weight = np.swapaxes(vis[b][..., neurons] * post.rates[b][..., neurons], 1, 2)  # (b, n, T)
            residual = np.swapaxes(vis[b][..., neurons] * (spikes[b][..., neurons] - post.rates[b][..., neurons]), 1, 2)
            term = (drive_cov @ residual[..., None])[..., 0]
            shift = term.copy()
            for _ in range(2):
                term = (drive_cov @ (weight * term)[..., None])[..., 0]
                shift += term
            var = np.diagonal(drive_cov, axis1=-2, axis2=-1) + ((drive_cov ** 2) @ weight[..., None])[..., 0]
            mean = np.swapaxes(post.latents[b] @ self.readout[:, neurons], 1, 2) - shift \
                + self.log_base[neurons][None, :, None]
            var = var + self.private_var[neurons][None, :, None]
            out[b] = np.swapaxes(expected_clipped_exp(mean, np.maximum(var, 0.0), self.truth.max_rate), 1, 2)
        return out

    def _drive_covariance(self, post: Posterior, neurons: np.ndarray) -> np.ndarray:
        """C (R, n, T, T): the posterior covariance of a_n' x(t) across bins, per neuron: for each
        region, the columns of the H^-1 blocks Sigma^H_ts (s >= t) on its latents by the recursion
        Sigma^H_{t,s} = F_t Sigma^H_{t+1,s}, plus the inputs' low-rank part."""
        n_rows, n_bins, n_latent = post.latents.shape
        out = np.empty((n_rows, len(neurons), n_bins, n_bins))
        upper = np.triu(np.ones((n_bins, n_bins)))  # entries s < t of the recursion are not Sigma^H
        for rows, members, outer in self.blocks:
            wanted = np.flatnonzero(np.isin(neurons, members))
            if not len(wanted):
                continue
            dims = len(rows)  # columns[:, t, :, s * dims:(s + 1) * dims] = Sigma^H_ts[:, rows], s >= t
            columns = np.zeros((n_rows, n_bins, n_latent, n_bins * dims))
            for t in reversed(range(n_bins)):
                if t < n_bins - 1:
                    columns[:, t, :, (t + 1) * dims:] = post.gain[:, t] @ columns[:, t + 1, :, (t + 1) * dims:]
                columns[:, t, :, t * dims:(t + 1) * dims] = post.markov_cov[:, t][..., rows]
            block = np.moveaxis(columns[:, :, rows].reshape(n_rows, n_bins, dims, n_bins, dims), 2, 3).reshape(
                n_rows, n_bins, n_bins, -1)
            local = np.searchsorted(members, neurons[wanted])
            half = np.moveaxis(block @ outer[local].T, -1, 1) * upper
            out[:, wanted] = half + np.swapaxes(half, -1, -2) - half * np.eye(n_bins)
        low_rank = np.swapaxes(np.swapaxes(post.v, -1, -2) @ self.readout[:, neurons], 1, 3)  # (R, n, K, T)
        return out + np.swapaxes(low_rank, -1, -2) @ post.z_cov[:, None] @ low_rank


def bayes_rates(session, task: str, split: str = "test", prior: LatentPrior | None = None) -> np.ndarray:
    """The Bayes predictor's expected counts (K_split, T, N) for ``task`` on ``split`` (module docstring).

    Every scored entry is predicted from the spikes the task leaves visible
    (:func:`mtm.evaluate.task_configurations`, :func:`mtm.evaluate.scored_bins`); other entries hold
    the posterior's expected counts too, but are not predictions of hidden counts. ``prior``: a
    :func:`latent_prior_marginal` to reuse across tasks.
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    truth = _truth(session)
    if prior is None:
        prior = latent_prior_marginal(truth, session.n_trials)
    with threadpool_limits(1, user_api="blas"):  # small batched products: threads only contend
        return _bayes_rates(session, task, split, Fitter(truth, prior))


def _bayes_rates(session, task: str, split: str, fitter: Fitter) -> np.ndarray:
    hidden, scored = task_configurations(task, session.regions)
    n_bins, n_neurons = session.n_bins, session.n_neurons
    spikes = session.spikes[session.splits[split]].astype(np.float64)
    visible_bins = np.ones(n_bins, dtype=bool)
    if task == "forward-pred":
        visible_bins[scored_bins(task, n_bins)] = False
    # configurations that hide one scored neuron beyond a shared set share one fit on that set plus
    # the neuron, whose spikes the cavity then removes; any other configuration is fitted as it is
    fits: dict[bytes, dict] = {}
    for m in range(len(hidden)):
        targets = np.flatnonzero(scored[m])
        left_out = len(targets) == 1 and hidden[m, targets[0]]
        fit_set = ~hidden[m] | scored[m] if left_out else ~hidden[m]
        entry = fits.setdefault(fit_set.tobytes(), dict(visible=visible_bins[:, None] & fit_set[None],
                                                        left_out=[], direct=[]))
        entry["left_out" if left_out else "direct"].extend(targets.tolist())
    fits = list(fits.values())
    n_trials = len(spikes)
    rates = np.empty((n_trials, n_bins, n_neurons))
    pairs = [(g, k) for g in range(len(fits)) for k in range(n_trials)]
    for start in range(0, len(pairs), ROWS):
        chunk = pairs[start:start + ROWS]
        fit_of, trial_of = np.array([g for g, _ in chunk]), np.array([k for _, k in chunk])
        vis = np.stack([fits[g]["visible"] for g in fit_of]).astype(np.float64)
        post = fitter.fit(spikes[trial_of], vis)
        for g in np.unique(fit_of):
            mine = np.flatnonzero(fit_of == g)
            trials, part = trial_of[mine], post.rows(mine)
            left_out, direct = np.array(fits[g]["left_out"], int), np.array(fits[g]["direct"], int)
            if len(left_out):
                rates[trials[:, None], :, left_out[None]] = np.moveaxis(
                    fitter.predict_left_out(part, left_out, spikes[trials], vis[mine]), -1, 1)
            if len(direct):
                rates[trials[:, None], :, direct[None]] = np.moveaxis(fitter.predict(part, direct), -1, 1)
    return rates


def bayes_results(session, tasks=TASKS, split: str = "test") -> dict[str, TaskResult]:
    """{task: TaskResult} of the Bayes predictor, scored exactly like a model (per-neuron bits per spike),
    the structure of :func:`mtm.oracle.oracle_results`."""
    prior = latent_prior_marginal(_truth(session), session.n_trials)
    trials = session.splits[split]
    results = {}
    for task in tasks:
        bins = scored_bins(task, session.n_bins)
        rates = bayes_rates(session, task, split, prior)
        results[task] = TaskResult(task, rates[:, bins], session.spikes[trials][:, bins].astype(float), bins)
    return results

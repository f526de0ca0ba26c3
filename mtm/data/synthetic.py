r"""Synthetic multi-region sessions with ground truth: the embedded default data of `mtm`.

The real IBL repeated-site recordings cannot be downloaded everywhere, so every chapter and test can
run on synthetic sessions shaped like them: the five repeated-site regions (VISa, CA1, DG, LP, PO,
neurons ordered along the probe from cortex down to thalamus), trials aligned to stimulus onset,
:math:`[-0.5, 1.5)` s in 20 ms bins, a few hundred to ~900 neurons per session with heavy-tailed
rates, an IBL-like task and movement behaviour. Unlike real data they come with the ground-truth
firing rates and everything that generated them (``session.truth``), so every metric can be compared with
the best score its task allows (:mod:`mtm.oracle`; the true rates themselves are not reachable, since
each neuron carries private noise).

Generative model
----------------
Time bin :math:`t = 0..T-1` (:math:`\Delta` = 20 ms, bin centre :math:`\tau_t = -0.5 + (t + 1/2)\Delta` s),
trial :math:`k`, region :math:`r \in \{1..R\}`, neuron :math:`n` in region :math:`r(n)`.

*Task* (IBL biased-choice world). Block prior :math:`\pi_k = P(\text{stimulus left})`: 0.5 for the
first 90 trials, then blocks of 0.2 / 0.8 whose lengths are exponential (mean 60) clipped to
[20, 100]. Stimulus side :math:`s_k = -1` (left) with probability :math:`\pi_k`, else :math:`+1`;
contrast :math:`c_k \in \{0, 0.0625, 0.125, 0.25, 1\}`; signed contrast :math:`\varsigma_k = s_k c_k`.
Choice (IBL convention: +1 = clockwise, the correct answer to a left stimulus):

.. math:: P(\text{choice}_k = -1) = \gamma + (1 - 2\gamma)\,\Phi\big((\varsigma_k + b\,(0.5 - \pi_k)/0.3)/\sigma_p\big)

with session lapse :math:`\gamma`, threshold :math:`\sigma_p` and prior bias :math:`b`. Reward
:math:`= [\text{choice}_k = -s_k]`. Reaction time :math:`\mathrm{RT}_k = 0.08 +
\mathrm{LogNormal}(\log(0.2 + 0.3(1 - c_k)^2), 0.45)`, clipped to 1.2 s. Movement vigour
:math:`v_k \sim \mathrm{LogNormal}(0, 0.35)`, movement envelope
:math:`m_k(t) = v_k\, a((\tau_t - \mathrm{RT}_k)/0.12)` with :math:`a(x) = x e^{1-x}` for :math:`x > 0`
(else 0). Spontaneous whisking :math:`h_k(t) = \alpha h_k(t-1) + \sqrt{1-\alpha^2}\,\eta_k(t)`,
:math:`\alpha = e^{-\Delta / 0.3\,\mathrm{s}}`, :math:`\eta \sim N(0, 1)`.

*Behaviour* per bin: wheel speed :math:`8\,m_k(t)\,(1 + 0.1\,\xi)` rad/s and whisker motion energy
:math:`\max(0, \exp(0.5 h_k(t) + 0.8 m_k(t)) + 0.1\,\xi)` (arbitrary units), :math:`\xi \sim N(0,1)`.

*Inputs* :math:`u_k(t) \in \mathbb{R}^6`: left and right stimulus transients
:math:`[s_k = \mp 1]\sqrt{c_k}\,a((\tau_t - 0.04)/0.06)`, the block prior :math:`(\pi_k - 0.5)/0.3`,
movement :math:`m_k(t)`, lateralised movement :math:`\text{choice}_k\, m_k(t)` and whisking :math:`h_k(t)`.

*Latent dynamics*, :math:`D` dimensions per region, coupled across regions:

.. math:: x_r(t) = A_r x_r(t-1) + \kappa \sum_{r' \ne r} G_{rr'} C_{rr'} x_{r'}(t-1) + B_r u(t) + \sigma \epsilon_r(t)

:math:`D = 4`; :math:`A_r` = damped rotations (time constants 100-300 ms, 0.5-3 Hz); :math:`G` an
anatomical coupling graph (VISa-LP, VISa-PO, LP-PO, CA1-DG strength 1; VISa-CA1, DG-LP 0.4);
:math:`C_{rr'} \sim N(0, I/D)` entry-wise; :math:`\kappa = 0.12`; :math:`B_r` = 0.5 x the region's
input sensitivity (``INPUT_GAIN``) x a random unit direction per input; :math:`\sigma = 0.35` and
:math:`\epsilon_r \sim N(0, I)` private to each region. Each region is thus
partly predictable from the others (coupling, shared task and movement inputs) and partly private
(its own noise): both inter-region and intra-region prediction are meaningful. Latents are scaled to
unit standard deviation per dimension.

*Neurons*:

.. math:: \lambda_{kn}(t) = \min\big(\lambda_{\max},\ \Delta\,\rho_n \exp(g_n w_n^\top x_{r(n)}(t)
   + s_n p_{kn}(t) - g_n^2 \|w_n\|^2 / 2 - s_n^2 / 2)\big), \qquad y_{kn}(t) \sim \mathrm{Poisson}(\lambda_{kn}(t))

with a slow fluctuation private to each neuron and trial, :math:`p_{kn}(t) = \sum_{j=1}^{8} c_{knj} b_j(t)`,
:math:`c_{knj} \sim N(0, 1)`, over 8 Gaussian bumps :math:`b_j` (width 250 ms) spread over the trial and
scaled so that :math:`p` has unit variance (:func:`private_basis`), of amplitude
:math:`s_n \sim U(0.3, 0.9)`: the part of a neuron that no other neuron explains, as real neurons have.

The baseline rate is :math:`\rho_n \sim \mathrm{LogNormal}(\log \mu_{r(n)}, 0.9)` Hz (:math:`\mu` = 3.5,
1.5, 1.2, 6, 6 Hz for VISa, CA1, DG, LP, PO) and 8 % nearly silent units
(:math:`\rho_n \sim \mathrm{LogUniform}(0.02, 0.3)` Hz), gain :math:`g_n \sim U(0.6, 1.6)`, loading
:math:`w_n \sim N(0, I_D / D)` and :math:`\lambda_{\max}` = 150 Hz :math:`\times\Delta`. ``rates`` holds
:math:`\lambda` (expected counts per bin).

*Shared and session-specific parts.* :math:`A, C, G, B, \kappa, \sigma` and the latent scaling come
from ``world_seed`` and are shared by every session of that world; neuron counts, regions'
proportions, loadings, gains, baselines, task statistics and all noise come from the session's
``seed``. Pretraining on many sessions of one world can therefore help a new session, which only
needs new per-neuron read-in and read-out (the stitchers of NDT1-stitch).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from mtm.data.session import Session, split_trials
from mtm.data.truth import GroundTruth

REGIONS = ("VISa", "CA1", "DG", "LP", "PO")
BIN_SIZE = 0.02
WINDOW = (-0.5, 1.5)
N_BINS = 100
LATENT_DIMS = 4
INPUT_NAMES = ("stim_left", "stim_right", "prior", "movement", "choice_movement", "whisking")
BEHAVIOR_KEYS = ("choice", "block", "reward", "contrast", "stim_side", "reaction_time", "whisker_me",
                 "wheel_speed")

MEAN_RATE_HZ = {"VISa": 3.5, "CA1": 1.5, "DG": 1.2, "LP": 6.0, "PO": 6.0}
REGION_SHARE = {"VISa": 0.25, "CA1": 0.2, "DG": 0.15, "LP": 0.2, "PO": 0.2}
# Input sensitivity of each region: (stimulus, prior, movement, lateralised movement, whisking).
INPUT_GAIN = {"VISa": (1.0, 0.3, 0.5, 0.3, 0.4), "CA1": (0.2, 0.4, 0.6, 0.4, 0.5),
              "DG": (0.1, 0.3, 0.5, 0.3, 0.4), "LP": (0.8, 0.2, 0.6, 0.3, 0.5),
              "PO": (0.3, 0.2, 0.8, 0.4, 0.8)}
COUPLING = {("VISa", "LP"): 1.0, ("VISa", "PO"): 1.0, ("LP", "PO"): 1.0, ("CA1", "DG"): 1.0,
            ("VISa", "CA1"): 0.4, ("DG", "LP"): 0.4}
SILENT_FRACTION = 0.08
PRIVATE_BASIS = 8             # smooth bumps per trial of each neuron's private fluctuation
PRIVATE_GAIN = (0.3, 0.9)     # its standard deviation in log-rate, per neuron
MAX_RATE_HZ = 150.0
BURN_IN = 25                  # latent steps before bin 0, driven by the first bin's input
CONTRASTS = (0.0, 0.0625, 0.125, 0.25, 1.0)

PRESETS = {
    # (n_trials range, n_neurons range), both inclusive; drawn per session from its seed.
    "paper": ((350, 900), (300, 900)),
    "small": ((250, 350), (80, 99)),
}


class World:
    """The dynamics shared by every session of one ``world_seed``: A, C, G, B, kappa, sigma, scaling."""

    def __init__(self, world_seed: int = 0, coupling: float = 0.12, noise: float = 0.35):
        rng = np.random.default_rng((world_seed, 0))
        R, D = len(REGIONS), LATENT_DIMS
        self.world_seed, self.coupling, self.noise = world_seed, coupling, noise
        transition = np.zeros((R * D, R * D))
        for r in range(R):
            block = np.zeros((D, D))
            for p in range(D // 2):
                tau, freq = rng.uniform(0.1, 0.3), rng.uniform(0.5, 3.0)
                decay, angle = np.exp(-BIN_SIZE / tau), 2 * np.pi * freq * BIN_SIZE
                block[2 * p:2 * p + 2, 2 * p:2 * p + 2] = decay * np.array(
                    [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            transition[r * D:(r + 1) * D, r * D:(r + 1) * D] = block
        for (a, b), strength in COUPLING.items():
            i, j = REGIONS.index(a), REGIONS.index(b)
            for dst, src in ((i, j), (j, i)):
                transition[dst * D:(dst + 1) * D, src * D:(src + 1) * D] = (
                    coupling * strength * rng.normal(0, 1 / np.sqrt(D), (D, D)))
        radius = np.abs(np.linalg.eigvals(transition)).max()
        if radius > 0.97:
            transition *= 0.97 / radius
        self.transition = transition
        inputs = np.zeros((R * D, len(INPUT_NAMES)))
        for r, region in enumerate(REGIONS):
            stim, prior, move, choice_move, whisk = INPUT_GAIN[region]
            gains = (stim, stim, prior, move, choice_move, whisk)
            directions = rng.normal(0, 1, (D, len(INPUT_NAMES)))
            directions /= np.linalg.norm(directions, axis=0)
            inputs[r * D:(r + 1) * D] = 0.5 * directions * np.asarray(gains)
        self.inputs = inputs
        # Scale every latent dimension to unit standard deviation over a reference batch of trials.
        ref_rng = np.random.default_rng((world_seed, 1))
        task = simulate_task(ref_rng, 400, TaskParams())
        latents = self.simulate_latents(ref_rng, task["inputs"], scale=False)
        self.scale = latents.reshape(-1, R * D).std(axis=0)

    def simulate_latents(self, rng: np.random.Generator, inputs: np.ndarray, scale: bool = True,
                         burn_in: int = BURN_IN) -> np.ndarray:
        """(K, T, R * D) latent trajectories driven by ``inputs`` (K, T, 6), with private noise."""
        n_trials, n_bins, _ = inputs.shape
        dims = self.transition.shape[0]
        state = np.zeros((n_trials, dims))
        drive_pre = inputs[:, 0] @ self.inputs.T  # the pre-stimulus input (prior, whisking at t=0)
        for _ in range(burn_in):
            state = state @ self.transition.T + drive_pre + self.noise * rng.standard_normal((n_trials, dims))
        drive = inputs @ self.inputs.T
        out = np.empty((n_trials, n_bins, dims))
        for t in range(n_bins):
            state = state @ self.transition.T + drive[:, t] + self.noise * rng.standard_normal((n_trials, dims))
            out[:, t] = state
        return out / self.scale if scale else out


class TaskParams:
    """Per-session behaviour statistics (lapse, psychometric threshold, prior bias)."""

    def __init__(self, lapse: float = 0.1, threshold: float = 0.12, prior_bias: float = 0.1):
        self.lapse, self.threshold, self.prior_bias = lapse, threshold, prior_bias

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TaskParams:
        return cls(lapse=rng.uniform(0.05, 0.15), threshold=rng.uniform(0.08, 0.2),
                   prior_bias=rng.uniform(0.05, 0.15))


def private_basis(n_basis: int = None, width: float = 0.25) -> np.ndarray:
    """(T, J) Gaussian bumps spread over the trial window, scaled so that sum_j c_j b_j(t) with
    c_j ~ N(0, 1) has unit variance at every bin: a smooth, private per-neuron fluctuation."""
    n_basis = PRIVATE_BASIS if n_basis is None else n_basis
    tau = WINDOW[0] + (np.arange(N_BINS) + 0.5) * BIN_SIZE
    centres = np.linspace(WINDOW[0], WINDOW[1], n_basis)
    basis = np.exp(-0.5 * ((tau[:, None] - centres[None]) / width) ** 2)
    return (basis / np.linalg.norm(basis, axis=1, keepdims=True)).astype(np.float32)


def _alpha(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x * np.exp(1 - np.maximum(x, 0)), 0.0)


def _block_priors(rng: np.random.Generator, n_trials: int) -> np.ndarray:
    prior = np.full(n_trials, 0.5)
    t, value = 90, rng.choice((0.2, 0.8))
    while t < n_trials:
        length = int(np.clip(round(rng.exponential(60)), 20, 100))
        prior[t:t + length] = value
        t, value = t + length, 0.2 if value == 0.8 else 0.8
    return prior


def simulate_task(rng: np.random.Generator, n_trials: int, params: TaskParams) -> dict[str, np.ndarray]:
    """Trials of the IBL task, the behaviour traces and the latent inputs (see the module docstring)."""
    tau = WINDOW[0] + (np.arange(N_BINS) + 0.5) * BIN_SIZE
    block = _block_priors(rng, n_trials)
    stim_side = np.where(rng.random(n_trials) < block, -1, 1)
    contrast = rng.choice(CONTRASTS, n_trials)
    signed = stim_side * contrast
    p_ccw = params.lapse + (1 - 2 * params.lapse) * ndtr(
        (signed + params.prior_bias * (0.5 - block) / 0.3) / params.threshold)
    choice = np.where(rng.random(n_trials) < p_ccw, -1, 1)
    reward = (choice == -stim_side).astype(np.int8)
    reaction_time = np.minimum(
        0.08 + rng.lognormal(np.log(0.2 + 0.3 * (1 - contrast) ** 2), 0.45), 1.2)
    vigour = rng.lognormal(0.0, 0.35, n_trials)
    movement = vigour[:, None] * _alpha((tau[None] - reaction_time[:, None]) / 0.12)
    decay = np.exp(-BIN_SIZE / 0.3)
    whisking = np.empty((n_trials, N_BINS))
    state = rng.standard_normal(n_trials)
    for t in range(N_BINS):
        state = decay * state + np.sqrt(1 - decay ** 2) * rng.standard_normal(n_trials)
        whisking[:, t] = state
    wheel_speed = 8.0 * movement * np.maximum(0, 1 + 0.1 * rng.standard_normal(movement.shape))
    whisker_me = np.maximum(0, np.exp(0.5 * whisking + 0.8 * movement)
                            + 0.1 * rng.standard_normal(movement.shape))
    transient = np.sqrt(contrast)[:, None] * _alpha((tau[None] - 0.04) / 0.06)
    inputs = np.stack([transient * (stim_side == -1)[:, None], transient * (stim_side == 1)[:, None],
                       np.broadcast_to(((block - 0.5) / 0.3)[:, None], movement.shape),
                       movement, choice[:, None] * movement, whisking], axis=-1)
    behavior = dict(choice=choice.astype(np.int8), block=block, reward=reward, contrast=signed,
                    stim_side=stim_side.astype(np.int8), reaction_time=reaction_time,
                    whisker_me=whisker_me, wheel_speed=wheel_speed)
    return dict(behavior=behavior, inputs=inputs)


def _region_sizes(rng: np.random.Generator, n_neurons: int) -> np.ndarray:
    minimum = max(3, int(0.04 * n_neurons))
    if n_neurons < minimum * len(REGIONS):
        raise ValueError(f"n_neurons: expected at least {minimum * len(REGIONS)} neurons "
                         f"({minimum} per region), got {n_neurons}")
    share = rng.dirichlet(30 * np.array([REGION_SHARE[r] for r in REGIONS]))
    sizes = minimum + np.floor(share * (n_neurons - minimum * len(REGIONS))).astype(int)
    sizes[np.argmax(share)] += n_neurons - sizes.sum()
    return sizes


def poisson_counts(rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Poisson samples for small rates, fast: count the arrivals of a unit-rate process in [0, rate].

    The first arrival time is one exponential draw per entry; only the few entries with an arrival
    (rate ~0.1 per bin) draw again. Returns uint8 counts (uint16 or uint32 if a count exceeds 255).
    """
    flat_rates = rates.reshape(-1)
    arrival = rng.standard_exponential(flat_rates.shape, dtype=np.float32)
    hit = arrival <= flat_rates
    counts = hit.view(np.uint8)
    idx = np.flatnonzero(hit)
    total, limit = arrival[idx].astype(np.float64), flat_rates[idx].astype(np.float64)
    while idx.size:
        total += rng.standard_exponential(idx.size)
        more = total <= limit
        idx, total, limit = idx[more], total[more], limit[more]
        if idx.size and counts[idx].max() == np.iinfo(counts.dtype).max:  # widen, never wrap
            counts = counts.astype(np.uint16 if counts.dtype == np.uint8 else np.uint32)
        counts[idx] += 1
    return counts.reshape(rates.shape)


def synthetic_session(seed: int = 0, n_trials: int | None = None, n_neurons: int | None = None, *,
                      preset: str = "paper", world_seed: int = 0, world: World | None = None,
                      split_seed: int = 42, private_gain: tuple[float, float] = PRIVATE_GAIN) -> Session:
    """One synthetic session with ground-truth rates (the generative model is in the module docstring).

    ``n_trials`` and ``n_neurons`` default to values drawn from ``preset``'s ranges with ``seed``
    ("paper": 350-900 trials, 300-900 neurons; "small": 250-350 trials, 80-99 neurons). Sessions
    with the same ``world_seed`` share their latent dynamics. Deterministic for
    ``(seed, n_trials, n_neurons, world_seed)``.

    The generator's knobs: ``private_gain``, the range of the private amplitude :math:`s_n` (``(0, 0)``
    removes every neuron's private fluctuation); ``world=World(world_seed, coupling=..., noise=...)``,
    the coupling between regions (kappa) and the latent noise (sigma). The session
    keeps what generated it in ``session.truth`` (:class:`mtm.data.truth.GroundTruth`), which the
    oracles of :mod:`mtm.oracle` read.

    >>> s = synthetic_session(0, n_trials=20, n_neurons=30)
    >>> s.spikes.shape, s.region_names
    ((20, 100, 30), ['VISa', 'CA1', 'DG', 'LP', 'PO'])
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    if world is None:
        world = World(world_seed)
    rng = np.random.default_rng((world.world_seed, 1, seed))
    (t_lo, t_hi), (n_lo, n_hi) = PRESETS[preset]
    drawn_trials, drawn_neurons = rng.integers(t_lo, t_hi + 1), rng.integers(n_lo, n_hi + 1)
    n_trials = int(drawn_trials if n_trials is None else n_trials)
    n_neurons = int(drawn_neurons if n_neurons is None else n_neurons)
    if n_trials < 1:
        raise ValueError(f"n_trials: expected at least 1 trial, got {n_trials}")

    sizes = _region_sizes(rng, n_neurons)
    regions = np.repeat(np.array(REGIONS), sizes)
    region_index = np.repeat(np.arange(len(REGIONS)), sizes)
    mean_rate = np.array([MEAN_RATE_HZ[r] for r in regions])
    baseline_hz = rng.lognormal(np.log(mean_rate), 0.9)
    silent = rng.random(n_neurons) < SILENT_FRACTION
    baseline_hz[silent] = np.exp(rng.uniform(np.log(0.02), np.log(0.3), silent.sum()))
    gain = rng.uniform(0.6, 1.6, n_neurons)
    low, high = (float(v) for v in private_gain)
    if not 0 <= low <= high:
        raise ValueError(f"private_gain: expected (low, high) with 0 <= low <= high, got {private_gain!r}")
    private = rng.uniform(low, high, n_neurons).astype(np.float32)
    loading = rng.normal(0, 1 / np.sqrt(LATENT_DIMS), (LATENT_DIMS, n_neurons)) * gain
    readout = np.zeros((len(REGIONS) * LATENT_DIMS, n_neurons), dtype=np.float32)
    rows = region_index[None] * LATENT_DIMS + np.arange(LATENT_DIMS)[:, None]
    readout[rows, np.arange(n_neurons)[None]] = loading
    log_base = (np.log(baseline_hz * BIN_SIZE) - 0.5 * (loading ** 2).sum(axis=0)
                - 0.5 * private ** 2).astype(np.float32)
    basis = private_basis()

    task = simulate_task(rng, n_trials, TaskParams.draw(rng))
    latents = world.simulate_latents(rng, task["inputs"]).astype(np.float32)
    rates = np.empty((n_trials, N_BINS, n_neurons), dtype=np.float32)
    chunks, coefficient_chunks = [], []
    for start in range(0, n_trials, 64):  # chunks of trials keep the arrays in cache
        chunk = rates[start:start + 64]
        np.matmul(latents[start:start + 64], readout, out=chunk)
        coefficients = rng.standard_normal((len(chunk), PRIVATE_BASIS, n_neurons), dtype=np.float32) * private
        coefficient_chunks.append(coefficients)
        chunk += np.matmul(basis, coefficients)
        chunk += log_base
        np.exp(chunk, out=chunk)
        np.minimum(chunk, MAX_RATE_HZ * BIN_SIZE, out=chunk)
        chunks.append(poisson_counts(chunk, rng))
    dtype = np.result_type(*(c.dtype for c in chunks))
    spikes = np.concatenate([c.astype(dtype, copy=False) for c in chunks])

    meta = dict(source="synthetic", seed=int(seed), world_seed=int(world.world_seed), preset=preset,
                latent_dims_per_region=LATENT_DIMS, coupling=world.coupling, noise=world.noise,
                private_gain=[low, high], regions_along_probe=list(REGIONS), generator="mtm.data.synthetic v1")
    truth = GroundTruth(latents=latents, inputs=task["inputs"], private=np.concatenate(coefficient_chunks),
                        private_basis=basis, readout=readout, log_base=log_base, private_gain=private,
                        latent_regions=np.repeat(np.array(REGIONS), LATENT_DIMS), transition=world.transition,
                        input_weights=world.inputs, latent_scale=world.scale, noise=world.noise,
                        burn_in=BURN_IN, max_rate=MAX_RATE_HZ * BIN_SIZE)
    return Session(eid=f"synthetic-{seed:04d}", spikes=spikes, regions=regions, behavior=task["behavior"],
                   splits=split_trials(n_trials, split_seed), bin_size=BIN_SIZE,
                   align={"event": "stimOn_times", "window": WINDOW}, rates=rates, truth=truth, meta=meta)


def synthetic_sessions(n_sessions: int, seed: int = 0, *, preset: str = "paper", world_seed: int = 0,
                       n_trials: int | None = None, n_neurons: int | None = None) -> list[Session]:
    """``n_sessions`` sessions of one world: session ``i`` is ``synthetic_session(seed + i, ...)``."""
    if n_sessions < 1:
        raise ValueError(f"n_sessions: expected at least 1, got {n_sessions}")
    world = World(world_seed)
    return [synthetic_session(seed + i, n_trials, n_neurons, preset=preset, world=world)
            for i in range(n_sessions)]

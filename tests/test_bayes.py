"""The Bayes predictor given the visible spikes (mtm.bayes): it runs and scores like a model, its
leave-one-out cavity against a refit, its Laplace posterior against a sampler, its place between the
linear baseline and the latent oracle on 300-neuron sessions, and its gap to the oracle shrinking as
neurons and rates grow."""

import math

import numpy as np
import pytest

from mtm.baselines import baseline_results
from mtm.bayes import Fitter, bayes_rates, bayes_results, latent_prior_marginal
from mtm.data import Session, synthetic_session
from mtm.evaluate import TASKS, scored_bins
from mtm.oracle import oracle_results


@pytest.fixture(scope="module")
def small():
    return synthetic_session(6, n_trials=30, n_neurons=40)


def test_scores_every_task_like_a_model_on_a_small_session(small):
    results = bayes_results(small)
    assert set(results) == set(TASKS)
    for task, result in results.items():
        bins = scored_bins(task, small.n_bins)
        assert result.rates.shape == (len(small.splits["test"]), len(bins), small.n_neurons)
        assert np.isfinite(result.rates).all() and (result.rates > 0).all()
        assert math.isfinite(result.mean_bps)


def test_bad_input_is_a_value_error(small):
    with pytest.raises(ValueError, match="task"):
        bayes_rates(small, "decoding")
    with pytest.raises(ValueError, match="no ground truth"):
        bayes_results(Session("real", small.spikes, small.regions))


def test_cavity_matches_a_refit_without_the_neuron(small):
    """The held-out neuron's prediction from the shared fit minus its own spikes (the cavity) against a
    fit that never saw it. The cavity is one Newton step from the shared mode, with its series cut
    after three terms (mean) and two (variance); on this session (up to 180 spikes per neuron in the
    test split) it stayed within 0.6 % on average and 4.4 % at worst: the bounds below leave a factor
    of about two."""
    fitter = Fitter(small.truth, latent_prior_marginal(small.truth, small.n_trials))
    spikes = small.spikes[small.splits["test"]].astype(float)
    vis = np.ones(spikes.shape)
    neurons = np.array([0, 10, 20, 30, 39])
    cavity = fitter.predict_left_out(fitter.fit(spikes, vis), neurons, spikes, vis)
    for j, n in enumerate(neurons):
        without = vis.copy()
        without[..., n] = 0
        refit = fitter.predict(fitter.fit(spikes, without), np.array([n]))[..., 0]
        error = np.abs(cavity[..., j] / refit - 1)
        assert error.mean() < 0.012 and error.max() < 0.1, (n, error.mean(), error.max())
    # and the cavity matters: keeping the neuron's own spikes would predict it differently
    kept = fitter.predict(fitter.fit(spikes, vis), neurons)
    assert np.abs(kept / cavity - 1).max() > 0.05


def _elliptical_slice(prior, log_likelihood, n_chains, n_steps, rng):
    """Samples (steps, chains, T, L) of the latent deviation X - mu from prior x likelihood, by
    elliptical slice sampling (Murray, Adams and MacKay 2010), vectorised over chains."""
    n_bins, n_latent, n_comp = prior.psi.shape
    initial = np.linalg.cholesky(prior.initial)

    def draw():
        e = np.empty((n_chains, n_bins, n_latent))
        e[:, 0] = rng.standard_normal((n_chains, n_latent)) @ initial.T
        for t in range(1, n_bins):
            noise = np.sqrt(prior.innovation) * rng.standard_normal((n_chains, n_latent))
            e[:, t] = e[:, t - 1] @ prior.transition.T + noise
        return e + prior.inputs_part(rng.standard_normal((n_chains, n_comp)))

    state, samples = draw(), []
    current = log_likelihood(state)
    for _ in range(n_steps):
        nu = draw()
        level = current + np.log(rng.random(n_chains))
        angle = rng.uniform(0, 2 * np.pi, n_chains)
        low, high = angle - 2 * np.pi, angle.copy()
        todo = np.ones(n_chains, dtype=bool)
        while todo.any():
            c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
            proposal = state * c + nu * s
            value = log_likelihood(proposal)
            accept = todo & (value > level)
            state[accept], current[accept] = proposal[accept], value[accept]
            todo &= ~accept
            low = np.where(todo & (angle < 0), angle, low)
            high = np.where(todo & (angle >= 0), angle, high)
            angle = np.where(todo, rng.uniform(low, high), angle)
        samples.append(state.copy())
    return np.array(samples)


@pytest.mark.xfail(strict=True, reason=(
    "Laplace centres its Gaussian on the posterior's mode; on this sparse trial (15 neurons, 3 per "
    "region) the posterior mean of the hidden region's drive lies about 0.2 posterior standard deviations "
    "from the mode (variances agree within 2 %), so the predicted rates differ by 19 % on average: 64 % of "
    "the entries within 4 standard errors, the log-likelihoods -30.1 (Laplace) and -32.4 (sampler) "
    "4.5 standard errors apart. With 24 chains instead of 48 the same comparison passed, for lack of "
    "precision."))
def test_laplace_agrees_with_a_sampler_on_a_tiny_session():
    """Inter-region prediction of VISa on one trial of a 15-neuron session without private fluctuations
    (so the posterior over the latents given the spikes is the whole inference): the Laplace posterior
    against elliptical slice sampling of the exact posterior given the other regions' spikes (inputs as
    the same Gaussian). Standard errors from 48 independent chains (their spread); the tolerance is 4
    standard errors per entry (a 1 in 16,000 chance for one entry under exact agreement) on at least
    98 % of the entries, and the Poisson log-likelihood of the hidden counts under both within 4
    standard errors (jackknife over chains) of each other. It fails (module docstring of mtm.bayes,
    "What it ignores"): kept as a strict expected failure, so that a better approximation shows."""
    tiny = synthetic_session(4, n_trials=20, n_neurons=15, private_gain=(0.0, 0.0))
    truth, prior = tiny.truth, latent_prior_marginal(tiny.truth, tiny.n_trials)
    hidden = np.asarray(tiny.regions) == "VISa"
    spikes = tiny.spikes[tiny.splits["test"][:1]].astype(float)
    vis = np.broadcast_to(~hidden, spikes.shape).astype(float)
    fitter = Fitter(truth, prior)
    laplace = fitter.predict(fitter.fit(spikes, vis), np.flatnonzero(hidden))[0]
    readout, base = truth.readout.astype(float), truth.log_base.astype(float)

    def log_likelihood(x):
        eta = (x + prior.mean) @ readout[:, ~hidden] + base[~hidden]
        return (spikes[0][:, ~hidden] * eta - np.exp(eta)).sum(axis=(-2, -1))

    samples = _elliptical_slice(prior, log_likelihood, 48, 2500, np.random.default_rng(0))[500:]
    rates = np.minimum(truth.max_rate, np.exp((samples + prior.mean) @ readout[:, hidden] + base[hidden]))
    per_chain = rates.mean(axis=0)                                   # (chains, T, n)
    estimate = per_chain.mean(axis=0)
    error = per_chain.std(axis=0, ddof=1) / np.sqrt(per_chain.shape[0])
    z = (laplace - estimate) / error
    assert (np.abs(z) < 4).mean() >= 0.98, (np.abs(z) < 4).mean()
    counts = spikes[0][:, hidden]

    def score(predicted):
        return (counts * np.log(predicted) - predicted).sum()

    chains = len(per_chain)
    jackknife = np.array([score((estimate * chains - c) / (chains - 1)) for c in per_chain])
    jack_error = np.sqrt((chains - 1) / chains * ((jackknife - jackknife.mean()) ** 2).sum())
    assert abs(score(laplace) - score(estimate)) < 4 * jack_error, (score(laplace), score(estimate), jack_error)


def _bps_gap(upper, lower):
    """Mean and standard error over neurons of the per-neuron difference upper - lower."""
    d = upper.bps - lower.bps
    d = d[np.isfinite(d)]
    return d.mean(), d.std(ddof=1) / np.sqrt(len(d))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_between_the_linear_baseline_and_the_latent_oracle(seed):
    """On every task of three 300-neuron sessions: linear <= Bayes <= latent oracle, each difference
    of per-neuron bits per spike allowed to fall below zero by at most 3 of its standard errors (over
    neurons, same test trials), the sampling noise of a finite test split."""
    session = synthetic_session(seed, n_trials=150, n_neurons=300)
    bayes = bayes_results(session)
    oracle = oracle_results(session)
    linear = baseline_results(session, which=("linear",))["linear"]
    for task in TASKS:
        for upper, lower, name in ((bayes[task], linear[task], "Bayes - linear"),
                                   (oracle[task], bayes[task], "oracle - Bayes")):
            mean, error = _bps_gap(upper, lower)
            assert mean >= -3 * error, (task, name, mean, error)


def _scaled(session, factor):
    """The same session with every rate multiplied by ``factor`` (log_base + log factor), spikes redrawn."""
    from dataclasses import replace

    from mtm.data.synthetic import poisson_counts

    truth = replace(session.truth, log_base=session.truth.log_base + np.float32(np.log(factor)))
    rates = truth.rates()
    spikes = poisson_counts(rates, np.random.default_rng(1))
    return Session(eid=session.eid, spikes=spikes, regions=session.regions, behavior=session.behavior,
                   splits=session.splits, bin_size=session.bin_size, align=session.align, rates=rates,
                   truth=truth, meta=session.meta)


def test_gap_to_the_latent_oracle_shrinks_as_neurons_and_rates_grow():
    """40 neurons at the generator's rates, 120 at twice and 360 at four times: the latents become
    better determined by the spikes, so on the tasks whose oracle knows only latents (co-smoothing,
    intra- and inter-region) the oracle - Bayes gap falls at each step."""
    tasks = ("co-smooth", "intra-region", "inter-region")
    gaps = []
    for n_neurons, factor in ((40, 1.0), (120, 2.0), (360, 4.0)):
        session = _scaled(synthetic_session(8, n_trials=50, n_neurons=n_neurons), factor)
        bayes, oracle = bayes_results(session, tasks), oracle_results(session, tasks)
        gaps.append([oracle[t].mean_bps - bayes[t].mean_bps for t in tasks])
    gaps = np.array(gaps)
    assert (np.diff(gaps, axis=0) < 0).all(), gaps

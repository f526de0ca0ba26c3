"""The ground-truth oracles: each closed form against Monte Carlo redraws of what it integrates out,
and the order true rates >= oracle >= linear baseline >= mean-rate baseline on every task."""

import numpy as np
import pytest

from mtm.baselines import baseline_results
from mtm.data import Session, synthetic_session
from mtm.data.synthetic import World
from mtm.evaluate import TASKS, scored_bins
from mtm.oracle import (TASK_INFORMATION, condition, expected_clipped_exp, knob_sweep, latent_prior, oracle_rates,
                        oracle_results)


@pytest.fixture(scope="module")
def session():
    return synthetic_session(5, n_trials=120, n_neurons=40)


def test_clipped_lognormal_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mean = np.array([-4.0, -1.0, 0.5, 1.0, 1.5, 1.1])
    var = np.array([0.5, 0.8, 0.3, 0.0, 1.2, 0.01])
    cap = 3.0
    draws = np.minimum(cap, np.exp(mean + np.sqrt(var) * rng.standard_normal((400_000, len(mean)))))
    error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected_clipped_exp(mean, var, cap)) <= 5 * error + 1e-9)


def test_cosmoothing_oracle_is_the_true_rate_averaged_over_private_redraws(session):
    truth, trials = session.truth, session.splits["test"][:3]
    rng = np.random.default_rng(1)
    drive = truth.latents[trials] @ truth.readout + truth.log_base  # (3, T, N)
    draws = 4000
    total, total_sq = np.zeros(drive.shape), np.zeros(drive.shape)
    for _ in range(draws // 500):
        coefficients = rng.standard_normal((500, *truth.private[trials].shape)) * truth.private_gain
        rates = np.minimum(truth.max_rate, np.exp(drive + np.matmul(truth.private_basis, coefficients)))
        total += rates.sum(axis=0)
        total_sq += (rates ** 2).sum(axis=0)
    mc_mean = total / draws
    error = np.sqrt(total_sq / draws - mc_mean ** 2) / np.sqrt(draws)
    oracle = oracle_rates(session, "co-smooth")[:3]
    assert np.all(np.abs(mc_mean - oracle) <= 5.5 * error + 1e-7)
    np.testing.assert_array_equal(oracle, oracle_rates(session, "intra-region")[:3])


@pytest.fixture(scope="module")
def many_trials():
    """Latent trajectories of 3000 trials of one world, redrawn by the generator itself."""
    return synthetic_session(7, n_trials=3000, n_neurons=25, world=World(0))


def _residual_checks(truth, observed_entries, n_trials):
    means, cov = latent_prior(truth)
    values = truth.latents.reshape(n_trials, -1).astype(np.float64)
    flat_means = means.reshape(n_trials, -1)
    # the prior itself: the generator's latents scatter around the means with covariance cov
    prior_residual = values - flat_means
    np.testing.assert_allclose(prior_residual.var(axis=0), np.diag(cov), rtol=0.15)
    posterior, post_cov = condition(flat_means, cov, observed_entries, values)
    residual = values[:, ~observed_entries] - posterior
    sd = np.sqrt(np.diag(post_cov))
    assert np.all(np.abs(residual.mean(axis=0)) <= 5 * sd / np.sqrt(n_trials))
    np.testing.assert_allclose(residual.var(axis=0), sd ** 2, rtol=0.15)
    # nothing left to learn from what was observed: residuals uncorrelated with every observed entry
    observed = values[:, observed_entries][:, ::7]
    z_obs = (observed - observed.mean(axis=0)) / observed.std(axis=0)
    z_res = (residual - residual.mean(axis=0)) / residual.std(axis=0)
    correlation = z_res[:, ::5].T @ z_obs / n_trials
    assert np.abs(correlation).max() < 5.5 / np.sqrt(n_trials)
    return post_cov


def test_inter_region_smoother_matches_the_generator(many_trials):
    truth = many_trials.truth
    visible = truth.latent_regions != "LP"
    post_cov = _residual_checks(truth, np.tile(visible, many_trials.n_bins), many_trials.n_trials)
    assert 0 < np.diag(post_cov).mean() < 1  # the other regions explain part of LP, not all


def test_forward_prediction_rollout_matches_the_generator(many_trials):
    truth, n_bins = many_trials.truth, many_trials.n_bins
    observed = np.ones((n_bins, len(truth.latent_regions)), dtype=bool)
    observed[scored_bins("forward-pred", n_bins)] = False
    post_cov = _residual_checks(truth, observed.reshape(-1), many_trials.n_trials)
    first, last = np.diag(post_cov)[:20].mean(), np.diag(post_cov)[-20:].mean()
    assert first < last  # uncertainty grows over the hidden window


def test_forward_oracle_is_true_before_the_window_and_below_truth_in_it(session):
    oracle = oracle_rates(session, "forward-pred")
    truth_rates = session.rates[session.splits["test"]]
    window = scored_bins("forward-pred", session.n_bins)
    np.testing.assert_allclose(oracle[:, :window[0]], truth_rates[:, :window[0]], rtol=1e-5)
    assert not np.allclose(oracle[:, window], truth_rates[:, window], rtol=1e-2)


def test_without_private_fluctuations_the_cosmoothing_oracle_is_the_truth():
    quiet = synthetic_session(2, n_trials=40, n_neurons=30, private_gain=(0.0, 0.0))
    np.testing.assert_allclose(oracle_rates(quiet, "co-smooth"), quiet.rates[quiet.splits["test"]], rtol=1e-5)


def test_true_rates_oracle_linear_and_mean_rate_in_order_on_a_large_session():
    large = synthetic_session(12, n_trials=500, n_neurons=150)
    oracle = oracle_results(large)
    references = baseline_results(large, which=("truth", "linear", "mean_rate"))
    for task in TASKS:
        scores = [references["truth"][task].mean_bps, oracle[task].mean_bps,
                  references["linear"][task].mean_bps, references["mean_rate"][task].mean_bps]
        assert scores == sorted(scores, reverse=True), (task, scores)
    assert oracle["inter-region"].mean_bps < oracle["co-smooth"].mean_bps  # less visible, lower bound


def test_the_oracle_survives_saving_and_loading(session, tmp_path):
    loaded = Session.load(session.save(tmp_path / "s.npz"))
    assert loaded.truth == session.truth
    for task in TASKS:
        np.testing.assert_array_equal(oracle_rates(loaded, task), oracle_rates(session, task))


def test_trial_selection_keeps_the_ground_truth_aligned(session):
    subset = session.select_trials("test")
    np.testing.assert_array_equal(subset.truth.latents, session.truth.latents[session.splits["test"]])
    np.testing.assert_array_equal(subset.truth.rates(), subset.rates)


def test_a_real_session_has_no_oracle(session):
    real = Session("real", session.spikes, session.regions)
    assert real.truth is None
    with pytest.raises(ValueError, match="no ground truth"):
        oracle_results(real)


def test_ground_truth_is_validated(session):
    with pytest.raises(ValueError, match="truth: holds"):
        Session("cut", session.spikes[:10], session.regions, rates=session.rates[:10], truth=session.truth)
    with pytest.raises(ValueError, match="needs its ground-truth rates"):
        Session("no-rates", session.spikes, session.regions, truth=session.truth)


def test_every_task_names_its_information_set():
    assert set(TASK_INFORMATION) == set(TASKS)


def test_knob_sweep_moves_the_oracles_as_the_generator_says():
    sweep = knob_sweep("private_gain", (0.0, 0.9), seed=3, n_trials=60, n_neurons=40,
                       tasks=("co-smooth", "inter-region"))
    oracle = {value: scores["latent oracle"] for value, scores in sweep.items()}
    assert oracle[0.0]["co-smooth"] > oracle[0.9]["co-smooth"]
    assert oracle[0.0]["inter-region"] < oracle[0.0]["co-smooth"]
    assert np.isclose(sweep[0.0]["true rates"], oracle[0.0]["co-smooth"], atol=1e-5)  # nothing private
    assert sweep[0.9]["true rates"] > oracle[0.9]["co-smooth"] + 0.1
    with pytest.raises(ValueError, match="knob"):
        knob_sweep("gain", (1.0,))


def test_knob_sweep_draws_every_reference_it_is_given():
    from mtm.bayes import bayes_results

    references = {"latent oracle": oracle_results, "Bayes": bayes_results}
    sweep = knob_sweep("coupling", (0.3,), seed=3, n_trials=60, n_neurons=40, tasks=("co-smooth", "inter-region"),
                       references=references)
    scores = sweep[0.3]
    assert set(scores) == {"latent oracle", "Bayes", "true rates"}
    for task in ("co-smooth", "inter-region"):  # the Bayes predictor sees spikes, not latents
        assert scores["Bayes"][task] < scores["latent oracle"][task]

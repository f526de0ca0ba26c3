import math

import numpy as np
import pytest
import torch
from torch import nn

from mtm.baselines import _leave_one_out_ridge, _ridge, baseline_results
from mtm.data import Session, synthetic_session
from mtm.evaluate import (TASKS, bits_per_spike, evaluate_model, evaluate_rates, heldout_passes, predict_heldout,
                          region_scores, task_configurations, task_scores)
from mtm.metrics import poisson_d2
from mtm.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def nlb():
    """NLB's own implementation, the reference for ours (installed with pip install --no-deps nlb_tools)."""
    return pytest.importorskip("nlb_tools.evaluation", reason="pip install --no-deps nlb_tools==0.0.4")


def nlb_per_neuron(nlb, rates, spikes):
    out = np.array([nlb.bits_per_spike(rates[:, :, [n]].copy(), spikes[:, :, [n]].copy())
                    for n in range(spikes.shape[2])])
    out[~np.isfinite(out)] = np.nan
    return out


@pytest.mark.parametrize("seed", range(5))
def test_bits_per_spike_matches_nlb_on_random_inputs(nlb, seed):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 0.3, (7, 20, 9))
    spikes = rng.poisson(rates * rng.uniform(0.5, 1.5, rates.shape)).astype(float)
    assert math.isclose(bits_per_spike(rates, spikes), nlb.bits_per_spike(rates.copy(), spikes), rel_tol=1e-10)
    np.testing.assert_allclose(bits_per_spike(rates, spikes, per_neuron=True), nlb_per_neuron(nlb, rates, spikes),
                               rtol=1e-10)


def test_bits_per_spike_edge_cases_match_nlb(nlb):
    rng = np.random.default_rng(9)
    rates = rng.gamma(2.0, 0.3, (6, 15, 5))
    spikes = rng.poisson(rates).astype(float)
    spikes[:, :, 1] = 0  # a silent neuron
    rates[:, :, 2] = 0  # zero rates, replaced by 1e-9
    spikes[0, :3, 3] = np.nan  # missing targets are dropped
    spikes[:, :, 4] = np.nan  # a neuron with no data at all
    ours, theirs = bits_per_spike(rates, spikes, per_neuron=True), nlb_per_neuron(nlb, rates, spikes)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert np.isnan(ours[1]) and np.isnan(ours[4])
    keep = spikes[:, :, :4]
    assert math.isclose(bits_per_spike(rates[:, :, :4], keep), nlb.bits_per_spike(rates[:, :, :4].copy(), keep),
                        rel_tol=1e-10)


def test_perfect_and_mean_predictions():
    rng = np.random.default_rng(1)
    spikes = rng.poisson(0.4, (10, 30, 4)).astype(float)
    mean = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    np.testing.assert_allclose(bits_per_spike(mean, spikes, per_neuron=True), 0.0, atol=1e-12)
    assert bits_per_spike(spikes + 1e-3, spikes) > 0.5


def test_poisson_d2_by_hand():
    """D^2 per neuron from its definition: 1 - (NLL_model - NLL_sat) / (NLL_null - NLL_sat), with the
    full Poisson NLL (ln Gamma(y + 1) included); the benchmark's score is the mean over neurons."""
    from scipy.stats import poisson

    rng = np.random.default_rng(3)
    rates = rng.gamma(2.0, 0.3, (5, 12, 4))
    spikes = rng.poisson(rates * rng.uniform(0.5, 1.5, rates.shape)).astype(float)
    nll = lambda lam, y: -poisson.logpmf(y, lam).sum(axis=(0, 1))  # noqa: E731
    mean = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    saturated = -np.where(spikes > 0, poisson.logpmf(spikes, np.maximum(spikes, 1e-300)), 0.0).sum(axis=(0, 1))
    expected = 1 - (nll(rates, spikes) - saturated) / (nll(mean, spikes) - saturated)
    np.testing.assert_allclose(poisson_d2(rates, spikes, per_neuron=True), expected, rtol=1e-10)
    assert math.isclose(poisson_d2(rates, spikes), expected.mean(), rel_tol=1e-10)
    # the same gain as bits per spike, divided by the saturated model's: D^2 = bps / bps_saturated
    bps_saturated = bits_per_spike(np.where(spikes > 0, spikes, 0.0), spikes, per_neuron=True)
    np.testing.assert_allclose(poisson_d2(rates, spikes, per_neuron=True),
                               bits_per_spike(rates, spikes, per_neuron=True) / bps_saturated, rtol=1e-6)


def test_poisson_d2_bounds_and_undefined_neurons():
    rng = np.random.default_rng(1)
    spikes = rng.poisson(0.4, (10, 30, 5)).astype(float)
    mean = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    np.testing.assert_allclose(poisson_d2(mean, spikes, per_neuron=True), 0.0, atol=1e-12)
    np.testing.assert_allclose(poisson_d2(spikes, spikes, per_neuron=True), 1.0, atol=1e-6)  # zeros as 1e-9
    assert poisson_d2(2 * mean, spikes) < 0
    spikes[:, :, 1] = 0                      # no spike: undefined
    spikes[:, :, 2] = 3                      # constant counts: nothing to explain, undefined
    spikes[0, :4, 3] = np.nan                # unobserved entries are dropped
    d2 = poisson_d2(mean, spikes, per_neuron=True)
    assert np.isnan(d2[1]) and np.isnan(d2[2]) and np.isfinite(d2[[0, 3, 4]]).all()
    assert poisson_d2(mean, spikes) == pytest.approx(np.nanmean(d2))
    assert math.isnan(poisson_d2(np.ones((2, 3, 1)), np.zeros((2, 3, 1))))


def test_brainwidebench_bps_drops_silent_neurons_only():
    rng = np.random.default_rng(2)
    rates = rng.gamma(2.0, 0.3, (6, 15, 5))
    spikes = rng.poisson(rates).astype(float)
    assert bits_per_spike(rates, spikes, drop_silent=True) == pytest.approx(bits_per_spike(rates, spikes), rel=1e-12)
    spikes[:, :, 1] = 0
    keep = [0, 2, 3, 4]
    assert bits_per_spike(rates, spikes, drop_silent=True) == pytest.approx(
        bits_per_spike(rates[:, :, keep], spikes[:, :, keep]), rel=1e-12)
    assert bits_per_spike(rates, spikes, drop_silent=True) > bits_per_spike(rates, spikes)
    assert math.isnan(bits_per_spike(rates, np.zeros_like(spikes), drop_silent=True))
    with pytest.raises(ValueError, match="drop_silent"):
        bits_per_spike(rates, spikes, per_neuron=True, drop_silent=True)


@pytest.mark.parametrize("rates, message", [
    (np.ones((2, 3, 5)), "shape"),
    (-np.ones((2, 3, 4)), "negative"),
    (np.full((2, 3, 4), np.nan), "NaN or infinite"),
    (np.ones((3, 4)), "trials, bins, neurons"),
])
def test_bad_rates(rates, message):
    with pytest.raises(ValueError, match=message):
        bits_per_spike(rates, np.ones((2, 3, 4)))


class InputEcho(nn.Module):
    """A fake model whose rate for a neuron is its own input count + 0.5 (records each call)."""

    def __init__(self, mode="self"):
        super().__init__()
        self.mode, self.calls = mode, []
        self.weight = nn.Parameter(torch.zeros(1))
        self.cfg = ModelConfig(use_prompt=True)

    def forward(self, x, session, prompt=None, causal=False, select=None, hide=None):
        if hide is not None:
            x = x[hide[0]] * ~hide[1].unsqueeze(1)
        self.calls.append((x.shape[0], prompt, causal))
        log_rates = self.log_rates(x)
        return log_rates if select is None else log_rates[select[0], :, select[1]]

    def log_rates(self, x):
        if self.mode == "self":
            return torch.log(x + 0.5)
        return torch.log(x.sum(dim=-1, keepdim=True).expand_as(x) + 0.5)  # sees every visible neuron


@pytest.fixture(scope="module")
def session():
    return synthetic_session(2, n_trials=60, n_neurons=30)


def test_held_out_neurons_are_hidden_from_the_model(session):
    model = InputEcho("self")
    results = evaluate_model(model, session, "mtm", batch_trials=64)
    for task in ("co-smooth", "intra-region", "inter-region"):
        np.testing.assert_allclose(results[task].rates, 0.5)  # the scored neuron was zeroed
    np.testing.assert_allclose(results["forward-pred"].rates, 0.5)
    assert results["forward-pred"].rates.shape == (12, 10, 30) and list(results["forward-pred"].bins) == list(range(90, 100))
    prompts = {p for _, p, _ in model.calls}
    assert prompts == {0, 1, 2, 3}
    assert {c for _, p, c in model.calls if p == 1} == {True}  # forward prediction: causal attention
    assert not any(c for _, p, c in model.calls if p != 1)


def test_visible_neurons_per_task(session):
    model = InputEcho("sum")
    test = session.spikes[session.splits["test"]].astype(float)
    regions = np.asarray(session.regions)
    results = evaluate_model(model, session, "temporal", batch_trials=1000)
    total = test.sum(axis=2)
    for n in (0, 13, 29):
        same = regions == regions[n]
        np.testing.assert_allclose(results["co-smooth"].rates[:, :, n], total - test[:, :, n] + 0.5, rtol=1e-5)
        np.testing.assert_allclose(results["intra-region"].rates[:, :, n],
                                   test[:, :, same].sum(-1) - test[:, :, n] + 0.5, rtol=1e-5)
        np.testing.assert_allclose(results["inter-region"].rates[:, :, n], test[:, :, ~same].sum(-1) + 0.5, rtol=1e-5)
    assert not any(c for _, _, c in model.calls)  # a temporal model stays bidirectional


def test_configurations_are_batched_not_looped(session):
    model = InputEcho("self")
    evaluate_model(model, session, "mtm", tasks=("co-smooth",), batch_trials=120)
    # one pass per neuron that spiked in a trial, plus the trial's unmasked pass for its silent neurons
    active = session.spikes[session.splits["test"]].any(axis=1)
    passes = int(active.sum() + (~active).any(axis=1).sum())
    assert [rows for rows, _, _ in model.calls] == [120] * (passes // 120) + [passes % 120] * (passes % 120 > 0)
    assert passes < active.size  # fewer than one pass per neuron and trial


def test_the_silent_neuron_shortcut_is_exact(session):
    torch.manual_seed(0)
    model = build_model(ModelConfig.small(), [(session.eid, session.n_neurons)]).eval()
    spikes = torch.as_tensor(session.spikes[session.splits["test"]])
    assert not spikes.any(dim=1).all()  # some neurons are silent in some trials
    for task in ("co-smooth", "intra-region"):
        hidden, scored = task_configurations(task, session.regions)
        fast = predict_heldout(model, session.eid, spikes, hidden, scored, prompt=0, batch_trials=50)
        with torch.no_grad():
            for m in range(len(hidden)):  # one full pass over the trials per configuration
                x = spikes.float().masked_fill(torch.as_tensor(hidden[m]), 0.0)
                slow = torch.exp(model(x, session.eid, 0))
                torch.testing.assert_close(fast[:, :, scored[m]], slow[:, :, scored[m]], rtol=1e-5, atol=1e-6)


def test_heldout_passes_one_per_distinct_input():
    """Against the definition: a pass per distinct (trial, hidden & active), every neuron scored from a
    pass of its own trial whose input equals its configuration's. 400 trials x 300 neurons x 300
    configurations: the packed keys span five 64-bit words and the planning runs in several chunks."""
    rng = np.random.default_rng(1)
    regions = rng.choice(["A", "B", "C"], 300)
    hidden, scored = task_configurations("intra-region", regions)
    owner = scored.argmax(axis=0)
    active = rng.random((400, 300)) < 0.3
    active[5] = False  # a silent trial: one pass for all its configurations
    pass_trial, pass_config, pass_of = heldout_passes(hidden, owner, active)
    distinct = {(k, (hidden[m] & active[k]).tobytes()) for k in range(400) for m in range(len(hidden))}
    assert len(pass_trial) == len(distinct) and (np.diff(pass_trial) >= 0).all()
    assert (pass_trial[pass_of] == np.arange(400)[:, None]).all()
    np.testing.assert_array_equal(hidden[pass_config[pass_of]] & active[:, None], hidden[owner][None] & active[:, None])
    assert (pass_of[5] == pass_of[5, 0]).all()


class TruthModel(InputEcho):
    """Returns the ground-truth rates of the test trial it is shown, whatever is hidden.

    The test trials carry their index in the first bin (count k + 1 for every neuron of trial k), so any
    visible neuron tells the model which trial it sees."""

    def __init__(self, rates):
        super().__init__()
        self.rates = torch.as_tensor(rates, dtype=torch.float32)
        self.cfg = ModelConfig(use_prompt=False)

    def log_rates(self, x):
        return torch.log(self.rates[x[:, 0].amax(dim=-1).long() - 1])


def test_a_model_returning_the_truth_scores_as_the_true_rates(session):
    test = session.splits["test"]
    spikes = np.array(session.spikes)
    spikes[test, 0] = np.arange(1, len(test) + 1)[:, None]
    marked = session.replace(spikes=spikes)
    scored = evaluate_model(TruthModel(session.rates[test]), marked, "mtm", batch_trials=len(test))
    true_rates = evaluate_rates(session.rates, marked)
    for task in TASKS:
        np.testing.assert_allclose(scored[task].bps, true_rates[task].bps, rtol=1e-5, atol=1e-5)
    assert evaluate_rates(session.rates, session)["co-smooth"].mean_bps > 0.3


def test_task_scores_in_bits_per_spike_or_d2(session):
    results = evaluate_rates(session.rates, session, tasks=("co-smooth", "forward-pred"))
    assert task_scores(results) == {task: r.mean_bps for task, r in results.items()}
    d2 = task_scores(results, "d2")
    assert d2 == {task: float(np.nanmean(poisson_d2(r.rates, r.spikes, per_neuron=True)))
                  for task, r in results.items()}
    assert all(0 < value < 1 for value in d2.values())
    pooled = task_scores(results, "co_bps")
    assert pooled == {task: bits_per_spike(r.rates, r.spikes) for task, r in results.items()}
    assert pooled != task_scores(results)  # NLB's pooled score weighs neurons by their spikes
    with pytest.raises(ValueError, match="score"):
        task_scores(results, "r2")


def test_region_scores_average_each_regions_neurons_and_leave_a_silent_region_nan(session):
    co = evaluate_rates(session.rates, session, tasks=("co-smooth",))["co-smooth"]
    scores = region_scores(co, session.regions)
    assert list(scores) == list(dict.fromkeys(session.regions.tolist()))
    for region, value in scores.items():
        assert value == pytest.approx(np.nanmean(co.bps[session.regions == region]))
    silent_region = session.regions[0]
    spikes = np.array(session.spikes)
    spikes[..., session.regions == silent_region] = 0
    quiet = evaluate_rates(session.rates, session.replace(spikes=spikes), tasks=("co-smooth",))["co-smooth"]
    assert math.isnan(region_scores(quiet, session.regions)[silent_region])
    with pytest.raises(ValueError, match="regions"):
        region_scores(co, session.regions[:-1])


def test_baselines_sit_below_the_truth(session):
    results = baseline_results(session)
    assert set(results) == {"linear", "psth", "mean_rate", "truth"}
    for task in TASKS:
        assert results["truth"][task].mean_bps > results["linear"][task].mean_bps
        assert results["mean_rate"][task].co_bps < 0.05
    assert results["linear"]["co-smooth"].co_bps > results["mean_rate"]["co-smooth"].co_bps
    no_truth = Session("real", session.spikes, session.regions)
    assert "truth" not in baseline_results(no_truth, tasks=("co-smooth",))


def test_leave_one_out_ridge_equals_separate_fits():
    rng = np.random.default_rng(0)
    z, z_test = rng.normal(size=(300, 6)), rng.normal(size=(20, 6))
    y = z @ rng.normal(size=(6, 6)) + rng.normal(size=(300, 6))
    fast = _leave_one_out_ridge(z, y, z_test)
    for i in range(6):
        keep = np.arange(6) != i
        np.testing.assert_allclose(fast[:, i], _ridge(z[:, keep], y[:, [i]], z_test[:, keep])[:, 0], atol=1e-10)


def test_task_configurations():
    regions = ["A", "A", "B", "C"]
    hidden, scored = task_configurations("intra-region", regions)
    assert hidden[0].tolist() == [True, False, True, True] and scored[0].tolist() == [True, False, False, False]
    hidden, scored = task_configurations("inter-region", regions)
    assert hidden.tolist() == [[True, True, False, False], [False, False, True, False], [False, False, False, True]]
    with pytest.raises(ValueError, match="at least two regions"):
        task_configurations("inter-region", ["A", "A"])
    with pytest.raises(ValueError, match="task"):
        task_configurations("decoding", regions)
    with pytest.raises(ValueError, match="exactly one configuration"):
        predict_heldout(InputEcho(), "s", torch.zeros(2, 5, 3), np.eye(3, dtype=bool), np.zeros((3, 3), bool))


def test_bad_evaluation_inputs(session):
    no_test = session.replace(splits={"train": np.arange(50), "val": np.arange(50, 60)})
    with pytest.raises(ValueError, match="no trials in its 'test' split"):
        evaluate_rates(session.rates, no_test)
    with pytest.raises(ValueError, match="shape"):
        evaluate_rates(session.rates[:, :, :5], session)
    one_region = Session("one", session.spikes, ["CA1"] * 30, rates=session.rates)
    with pytest.raises(ValueError, match="at least two regions"):
        evaluate_rates(one_region.rates, one_region, tasks=("inter-region",))


def test_evaluating_under_another_prompt_changes_the_prompt_and_the_attention(session):
    model = InputEcho("self")
    evaluate_model(model, session, "mtm", prompts=dict.fromkeys(TASKS, "neuron"))
    assert {(p, c) for _, p, c in model.calls} == {(0, False)}  # forward prediction too: bidirectional
    model = InputEcho("self")
    evaluate_model(model, session, "mtm", tasks=("co-smooth",), prompts={"co-smooth": "causal"})
    assert {(p, c) for _, p, c in model.calls} == {(1, True)}
    with pytest.raises(ValueError, match="prompts: expected"):
        evaluate_model(model, session, "mtm", prompts={"co-smooth": "temporal"})


def test_forward_prediction_attention_follows_the_reference(session):
    """Causal for prompted MtM and the causal scheme alone; bidirectional for temporal and unprompted MtM."""
    for masking, prompted, causal in (("mtm", True, True), ("mtm", False, False), ("causal", False, True),
                                      ("temporal", False, False)):
        model = InputEcho("self")
        model.cfg = ModelConfig(use_prompt=prompted)
        evaluate_model(model, session, masking, tasks=("forward-pred",))
        assert {c for _, _, c in model.calls} == {causal}, masking


def test_single_trial_and_psth_r2_by_hand():
    from mtm.evaluate import trial_conditions
    from mtm.metrics import psth_r2, trial_r2

    rng = np.random.default_rng(0)
    spikes = rng.poisson(1.0, size=(6, 5, 3)).astype(float)
    rates = spikes + rng.normal(0, 0.3, size=spikes.shape)
    rates = np.abs(rates)
    y, r = spikes[..., 1].ravel(), rates[..., 1].ravel()
    assert trial_r2(rates, spikes)[1] == pytest.approx(1 - ((y - r) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    conditions = np.array([0, 0, 1, 1, 1, 2])
    observed = np.concatenate([spikes[conditions == c, :, 2].mean(axis=0) for c in range(3)])
    predicted = np.concatenate([rates[conditions == c, :, 2].mean(axis=0) for c in range(3)])
    expected = 1 - ((observed - predicted) ** 2).sum() / ((observed - observed.mean()) ** 2).sum()
    assert psth_r2(rates, spikes, conditions)[2] == pytest.approx(expected)
    silent = spikes.copy()
    silent[..., 0] = 0
    assert np.isnan(trial_r2(rates, silent)[0]) and np.isnan(psth_r2(rates, silent, conditions)[0])
    with pytest.raises(ValueError, match="conditions: expected one label per trial"):
        psth_r2(rates, spikes, conditions[:4])
    session = synthetic_session(2, n_trials=30, n_neurons=15)
    labels = trial_conditions(session, np.arange(30))
    combos = {(b, c, r) for b, c, r in zip(session.behavior["block"], session.behavior["choice"],
                                          session.behavior["reward"])}
    assert labels.shape == (30,) and len(set(labels)) == len(combos)

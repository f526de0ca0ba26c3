import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from mtm.data import Session
from mtm.data.synthetic import REGIONS, World, poisson_counts, synthetic_session, synthetic_sessions


@pytest.fixture(scope="module")
def session():
    return synthetic_session(3, n_trials=400, n_neurons=250)


def test_shape_alignment_and_regions_along_the_probe(session):
    assert isinstance(session, Session)
    assert session.spikes.shape == (400, 100, 250)
    assert session.bin_size == 0.02 and session.align == {"event": "stimOn_times", "window": (-0.5, 1.5)}
    assert session.region_names == list(REGIONS)
    order = [REGIONS.index(r) for r in session.regions]
    assert order == sorted(order)  # cortex first, thalamus last, as along a repeated-site probe
    assert min(session.region_counts().values()) >= 10
    assert session.rates.shape == session.spikes.shape and session.rates.dtype == np.float32
    assert session.meta["source"] == "synthetic" and session.meta["seed"] == 3


def test_deterministic_for_a_seed():
    a, b = synthetic_session(5, n_trials=30, n_neurons=40), synthetic_session(5, n_trials=30, n_neurons=40)
    assert a == b
    c = synthetic_session(6, n_trials=30, n_neurons=40)
    assert not np.array_equal(a.spikes, c.spikes)


def test_presets_draw_session_sizes():
    small = [synthetic_session(i, preset="small") for i in range(3)]
    assert all(250 <= s.n_trials <= 350 and 80 <= s.n_neurons <= 99 for s in small)
    assert len({s.n_neurons for s in small}) > 1  # neuron counts vary by session
    paper = synthetic_session(0, n_trials=20)  # paper preset: a few hundred to ~900 neurons
    assert 300 <= paper.n_neurons <= 900


def test_sessions_share_a_world_and_are_listed_by_seed():
    sessions = synthetic_sessions(3, seed=10, preset="small")
    assert [s.eid for s in sessions] == ["synthetic-0010", "synthetic-0011", "synthetic-0012"]
    assert sessions[1] == synthetic_session(11, preset="small")
    same_world = synthetic_session(11, n_trials=50, n_neurons=40)
    other_world = synthetic_session(11, n_trials=50, n_neurons=40, world_seed=1)
    assert not np.allclose(other_world.rates, same_world.rates)
    assert not np.allclose(World(0).transition, World(1).transition)


def test_firing_statistics_look_like_ibl_units(session):
    rate_hz = session.spikes.mean(axis=(0, 1)) / session.bin_size
    assert 2 < rate_hz.mean() < 10  # a few Hz on average
    assert rate_hz.max() > 5 * np.median(rate_hz)  # heavy-tailed across neurons
    assert stats.skew(rate_hz) > 1
    assert 0.02 < np.mean(rate_hz < 0.5) < 0.3  # some nearly silent units
    by_region = {r: rate_hz[session.regions == r].mean() for r in REGIONS}
    assert by_region["LP"] > by_region["CA1"] and by_region["PO"] > by_region["DG"]  # thalamus fires faster


def test_spikes_are_poisson_given_the_rates(session):
    spikes, rates = session.spikes.astype(float), session.rates.astype(float)
    assert abs(spikes.mean() / rates.mean() - 1) < 0.01
    resid = (spikes - rates) / np.sqrt(rates)
    assert abs(resid.var() - 1) < 0.03


@pytest.mark.parametrize("rate", [0.02, 0.3, 2.0, 20.0])
def test_poisson_sampler_is_exact(rate):
    counts = poisson_counts(np.full(200_000, rate, dtype=np.float32), np.random.default_rng(0))
    values, observed = np.unique(counts, return_counts=True)
    expected = stats.poisson.pmf(values, rate) * counts.size
    keep = expected > 20
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    assert abs(counts.mean() - rate) < 5 * np.sqrt(rate / counts.size)


def test_poisson_sampler_widens_dtype_past_255():
    counts = poisson_counts(np.full((2, 3), 400.0, dtype=np.float32), np.random.default_rng(0))
    assert counts.dtype == np.uint16 and counts.min() > 255


def test_behaviour_follows_the_task(session):
    b = session.behavior
    assert set(b) == {"choice", "block", "reward", "contrast", "stim_side", "reaction_time", "whisker_me",
                      "wheel_speed"}
    assert set(np.unique(b["choice"])) == {-1, 1} and set(np.unique(b["block"])) <= {0.2, 0.5, 0.8}
    assert np.all(b["block"][:90] == 0.5)
    assert np.array_equal(b["reward"], (b["choice"] == -b["stim_side"]).astype(int))
    # psychometric: strong right stimuli get counter-clockwise (-1) choices, strong left ones +1
    assert np.mean(b["choice"][b["contrast"] == 1] == -1) > 0.75
    assert np.mean(b["choice"][b["contrast"] == -1] == 1) > 0.75
    assert np.all((b["reaction_time"] >= 0.08) & (b["reaction_time"] <= 1.2))
    assert b["whisker_me"].shape == (400, 100) and b["whisker_me"].min() >= 0
    # the wheel moves after the reaction time, not before the stimulus
    t = session.bin_times()
    before = b["wheel_speed"][:, t < 0].mean()
    after = np.mean([b["wheel_speed"][k, (t > rt) & (t < rt + 0.4)].mean()
                     for k, rt in enumerate(b["reaction_time"])])
    assert after > 10 * max(before, 1e-3)


def test_block_prior_biases_zero_contrast_choices():
    s = synthetic_session(1, n_trials=900, n_neurons=30)
    b = s.behavior
    zero = b["contrast"] == 0
    left_block = np.mean(b["choice"][zero & (b["block"] == 0.8)] == 1)
    right_block = np.mean(b["choice"][zero & (b["block"] == 0.2)] == 1)
    assert left_block > right_block + 0.2


def test_regions_are_partly_predictable_from_each_other(session):
    """Inter-region prediction is meaningful (other regions explain part of a region's neurons) and
    intra-region prediction adds the region's own part (its other neurons explain more); each
    neuron also keeps a private part that nothing else explains."""
    log_rates = np.log(session.rates.astype(float))
    train, test = session.splits["train"], session.splits["test"]

    def r2(target, columns):
        x_train = log_rates[train][:, :, columns].reshape(-1, len(columns))
        x_test = log_rates[test][:, :, columns].reshape(-1, len(columns))
        y_train, y_test = log_rates[train][:, :, target].ravel(), log_rates[test][:, :, target].ravel()
        pred = Ridge(alpha=1.0).fit(x_train, y_train).predict(x_test)
        return 1 - np.mean((pred - y_test) ** 2) / np.var(y_test)

    for region in REGIONS:
        inside = np.flatnonzero(session.regions == region)
        outside = np.flatnonzero(session.regions != region)
        inter = np.mean([r2(n, outside) for n in inside[:8]])
        intra = np.mean([r2(n, np.concatenate([outside, inside[inside != n]])) for n in inside[:8]])
        assert 0.1 < inter < 0.8, (region, inter)
        assert inter + 0.05 < intra < 0.95, (region, inter, intra)


def test_behaviour_is_encoded_in_the_population(session):
    """Movement and whisking drive every region, so both are linearly decodable from the spikes."""
    counts = session.spikes.astype(float)
    smooth = (counts[:, :-2] + counts[:, 1:-1] + counts[:, 2:]) / 3
    train, test = session.splits["train"], session.splits["test"]
    for key in ("wheel_speed", "whisker_me"):
        target = session.behavior[key][:, 1:-1]
        model = Ridge(alpha=10.0).fit(smooth[train].reshape(-1, session.n_neurons), target[train].ravel())
        assert model.score(smooth[test].reshape(-1, session.n_neurons), target[test].ravel()) > 0.15, key


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="huge"), "preset"),
    (dict(n_neurons=10), "n_neurons: expected at least"),
    (dict(n_trials=0), "n_trials"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_session(0, **kwargs)
    with pytest.raises(ValueError, match="n_sessions"):
        synthetic_sessions(0)

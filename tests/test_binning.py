import numpy as np
import pytest

from mtm.data.binning import bin_spikes, interpolate_to_bins, speed_in_bins, trial_windows


def test_bin_spikes_matches_a_histogram_per_trial_and_neuron():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 30, 5000))
    neurons = rng.integers(0, 7, times.size)
    starts, n_bins = trial_windows([3.0, 10.25, 10.5, 20.0], (-0.5, 1.5), 0.02)
    counts = bin_spikes(times, neurons, 7, starts, n_bins, 0.02)
    assert counts.shape == (4, 100, 7)
    edges = starts[:, None] + np.arange(101) * 0.02
    for k in range(4):
        for n in range(7):
            expected, _ = np.histogram(times[neurons == n], edges[k])
            assert np.array_equal(counts[k, :, n], expected)


def test_bin_edges_are_left_closed_right_open():
    counts = bin_spikes([1.0, 1.02, 2.999999, 3.0], [0, 0, 0, 0], 1, np.array([1.0]), 100, 0.02)
    assert counts[0, 0, 0] == 1 and counts[0, 1, 0] == 1 and counts[0, 99, 0] == 1 and counts.sum() == 3


def test_bad_binning_arguments():
    with pytest.raises(ValueError, match="whole number"):
        trial_windows([0.0], (-0.5, 1.51), 0.02)
    with pytest.raises(ValueError, match="NaN"):
        trial_windows([np.nan], (-0.5, 1.5), 0.02)
    with pytest.raises(ValueError, match="start < stop"):
        trial_windows([0.0], (1.0, 0.0), 0.02)
    with pytest.raises(ValueError, match="neuron indices"):
        bin_spikes([0.1], [3], 2, np.array([0.0]), 10, 0.02)


def test_interpolation_at_right_bin_edges_and_gaps():
    t = np.arange(0, 10, 0.01)
    out = interpolate_to_bins(t, 2 * t + 1, np.array([1.0, 9.0]), 100, 0.02)
    assert np.allclose(out[0], 2 * (1.0 + 0.02 * np.arange(1, 101)) + 1)
    assert np.isnan(out[1, -1]) and np.isfinite(out[1, 40])  # past the end of the trace: missing
    assert np.isnan(interpolate_to_bins([0.0], [1.0], np.array([0.0]), 5, 0.02)).all()


def test_speed_in_bins_of_a_constant_velocity():
    t = np.linspace(0, 10, 5001)
    speed = speed_in_bins(t, -3.0 * t, np.array([2.0, 5.0]), 100, 0.02)
    assert speed.shape == (2, 100) and np.allclose(speed, 3.0)

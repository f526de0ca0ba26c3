import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mtm.stats import Interval, mean_interval, minus_fixed, paired_difference, seed_interval, seed_means


def test_mean_interval_is_scipys_one_sample_t_interval():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 12):
        values = rng.normal(0.3, 0.1, n)
        ours = mean_interval(values)
        low, high = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
        assert ours.n == n and ours.mean == pytest.approx(values.mean())
        assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-12)
    low, high = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(0.9)
    assert (mean_interval(values, 0.9).low, mean_interval(values, 0.9).high) == pytest.approx((low, high))


def test_three_seeds_use_t_with_two_degrees_of_freedom():
    interval = mean_interval([1.0, 2.0, 3.0])  # mean 2, sd 1: half-width t(0.975, 2) / sqrt(3)
    assert interval.half_width == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert interval.format() == "2.00 ± 2.48" and interval.format(sign=True) == "+2.00 ± 2.48"


def test_nan_and_single_replicates():
    assert mean_interval([0.5, math.nan, 0.7]).n == 2
    one = mean_interval([0.4])
    assert one.mean == 0.4 and math.isnan(one.low) and not one.excludes_zero and one.format() == "0.40"
    assert mean_interval([]).format() == "–"
    with pytest.raises(ValueError, match="level"):
        mean_interval([1, 2], level=95)


def test_a_seed_is_averaged_over_its_sessions_before_the_interval():
    cells = {(0, "a"): 0.1, (0, "b"): 0.3, (1, "a"): 0.4, (1, "b"): 0.4, (2, "a"): 0.2, (2, "b"): math.nan}
    assert seed_means(cells) == pytest.approx({0: 0.2, 1: 0.4, 2: 0.2})
    interval = seed_interval(cells)
    low, high = scipy_stats.ttest_1samp([0.2, 0.4, 0.2], 0.0).confidence_interval()
    assert interval.n == 3 and (interval.low, interval.high) == pytest.approx((low, high))


def test_paired_difference_is_scipys_paired_t_interval_over_seed_means():
    rng = np.random.default_rng(1)
    cells = [(seed, session) for seed in range(4) for session in ("s1", "s2")]
    shared = {cell: rng.normal(0, 0.1) for cell in cells}  # what a seed's run shares on a session: pairing removes it
    a = {cell: shared[cell] + 0.10 + rng.normal(0, 0.02) for cell in cells}
    b = {cell: shared[cell] + rng.normal(0, 0.02) for cell in cells}
    ours = paired_difference(a, b)
    mean_a, mean_b = list(seed_means(a).values()), list(seed_means(b).values())
    low, high = scipy_stats.ttest_rel(mean_a, mean_b).confidence_interval()
    assert (ours.low, ours.high) == pytest.approx((low, high)) and ours.excludes_zero and ours.n == 4
    unpaired = scipy_stats.ttest_ind(mean_a, mean_b).confidence_interval()
    assert ours.half_width < (unpaired.high - unpaired.low) / 2  # narrower than the unpaired comparison


def test_a_paired_difference_needs_the_same_cells():
    with pytest.raises(ValueError, match=r"same \(seed, session\) cells"):
        paired_difference({(0, "a"): 1.0, (1, "a"): 1.0}, {(0, "a"): 1.0})


def test_excludes_zero():
    assert Interval(0.1, 0.02, 0.18, 3).excludes_zero and Interval(-0.1, -0.2, -0.01, 3).excludes_zero
    assert not Interval(0.1, -0.02, 0.22, 3).excludes_zero


def test_a_row_minus_a_fixed_reference_keeps_the_rows_spread():
    row = mean_interval([0.30, 0.34, 0.32])
    shifted = minus_fixed(row, 0.25)
    assert (shifted.mean, shifted.low, shifted.high, shifted.n) == pytest.approx(
        (row.mean - 0.25, row.low - 0.25, row.high - 0.25, 3))
    assert shifted.excludes_zero and not minus_fixed(row, 0.31).excludes_zero

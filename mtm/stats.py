r"""Means with 95 % intervals, and paired differences, over the training seeds of an experiment.

A result of ``mtm reproduce`` is a set of *cells*: one score per (training seed, held-out session)
of a model row. This module turns cells into a mean with an interval (:func:`seed_interval`) and
two rows' cells into a paired difference with an interval (:func:`paired_difference`).

*The unit of replication is the training seed.* A seed fixes everything random in training (initial
weights, batch order, masks, dropout: :mod:`mtm.train`), and in a multi-session experiment the
pretraining run too, which every held-out session's fine-tuning starts from. So the scores of one seed
on different held-out sessions are not independent replicates (they share a pretrained model, and
the same initial weights), while two seeds are: each seed is one complete repetition of the
experiment. The cells of a seed are therefore averaged over the held-out sessions first (its
*seed-mean*), and the interval is Student's t-interval over the seed-means,

.. math:: \bar m \pm t_{0.975,\,S-1}\; s / \sqrt S,

with :math:`S` seeds, :math:`\bar m` and :math:`s` the mean and standard deviation (``ddof=1``) of
the seed-means. The held-out sessions are fixed (the paper's 5 IBL sessions, or the plan's synthetic
ones): the interval says how much the result would move with another training seed *on these
sessions*; how the sessions differ from each other is in ``per_session.json``, not in the interval.
Treating the S x sessions cells as independent would count correlated cells as replicates and give
intervals that are too narrow.

*Why a t-interval and not a bootstrap.* With 3 seeds a bootstrap over seeds has 10 distinct
resamples and covers far less than 95 %; the t-interval is exact when seed-means are normal, and
a seed-mean averages hundreds of per-neuron scores, so it is close to normal. It is wide with few
seeds (:math:`t_{0.975,2} = 4.30`): that width is the honest price of 3 seeds.

*Paired differences.* A comparison of two rows (MtM against temporal, pretrained against from
scratch, an ablation against MtM) subtracts the cells of the same seed and the same session,
:math:`d_{s,n} = a_{s,n} - b_{s,n}`, then takes the t-interval over the seed-means of :math:`d`.
Pairing removes what the two cells share (the session's difficulty, the seed's initial weights and
batch order), so a difference is measured far more precisely than either mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean and its ``level`` interval [low, high] over ``n`` replicates (NaN bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero (False when it is undefined)."""
        return bool(self.low > 0 or self.high < 0)

    def format(self, digits: int = 2, sign: bool = False) -> str:
        """``"0.26 ± 0.05"`` (``"+0.26 ± 0.05"`` with ``sign``); ``"0.26"`` without an interval; "–" for NaN."""
        if not math.isfinite(self.mean):
            return "–"
        mean = f"{self.mean:+.{digits}f}" if sign else f"{self.mean:.{digits}f}"
        return mean if not math.isfinite(self.half_width) else f"{mean} ± {self.half_width:.{digits}f}"


def mean_interval(values, level: float = LEVEL) -> Interval:
    """Student's t-interval of the mean of independent replicates ``values`` (1-d; NaNs dropped):
    mean ± t_{(1+level)/2, n-1} sd / sqrt(n), sd with ddof=1."""
    from scipy.stats import t

    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def seed_means(cells: dict[tuple[int, str], float]) -> dict[int, float]:
    """{seed: NaN-mean over its sessions} of ``cells`` {(seed, session): score}."""
    by_seed: dict[int, list[float]] = {}
    for (seed, _), value in cells.items():
        by_seed.setdefault(seed, []).append(value)
    return {seed: float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
            for seed, values in sorted(by_seed.items())}


def seed_interval(cells: dict[tuple[int, str], float], level: float = LEVEL) -> Interval:
    """The mean of ``cells`` {(seed, session): score} with the t-interval over seed-means."""
    return mean_interval(list(seed_means(cells).values()), level)


def paired_difference(a: dict[tuple[int, str], float], b: dict[tuple[int, str], float],
                      level: float = LEVEL) -> Interval:
    """a - b, cell by cell (same seed, same session), with the t-interval over the seed-means of the
    differences. Both must hold the same (seed, session) cells."""
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))[:3]
        raise ValueError(f"cells: a paired difference needs the same (seed, session) cells in both rows; "
                         f"only one row has {missing}")
    return seed_interval({key: a[key] - b[key] for key in a}, level)


def minus_fixed(interval: Interval, value: float) -> Interval:
    """``interval`` minus ``value``: a row compared with a reference that no training seed changes (a
    baseline fitted once on each fixed held-out session). With nothing random on the reference's side,
    the difference varies over seeds exactly as the row does: its interval is the row's, shifted."""
    value = float(value)
    return Interval(interval.mean - value, interval.low - value, interval.high - value, interval.n)

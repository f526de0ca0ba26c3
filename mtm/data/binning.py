"""Cutting continuous recordings into trial-aligned bins: the one implementation both the IBL and
the NWB loaders use.

The MtM reference counts spikes with ``iblutil.numerical.bincount2D(times, clusters, xbin=0.02,
xlim=[start, stop])`` per trial and keeps the first 100 columns: spike ``s`` of neuron ``n`` falls in
bin ``floor((t_s - start) / bin_size)`` when ``start <= t_s < stop``. :func:`bin_spikes` computes
exactly that for every trial at once. Behaviour traces are interpolated linearly at the right edge
of each bin (``start + (t + 1) * bin_size``), as the reference does for whisker motion energy.
"""

from __future__ import annotations

import numpy as np


def trial_windows(align_times, window: tuple[float, float], bin_size: float) -> tuple[np.ndarray, int]:
    """Start time of every trial's window and the number of bins per trial.

    ``align_times`` (K,) event times in s; ``window`` (start, stop) relative to the event, in s.
    """
    align_times = np.asarray(align_times, dtype=np.float64)
    start, stop = (float(w) for w in window)
    if not start < stop:
        raise ValueError(f"window: expected (start, stop) with start < stop, got {window}")
    if not bin_size > 0:
        raise ValueError(f"bin_size: expected a positive number of seconds, got {bin_size}")
    n_bins = int(round((stop - start) / bin_size))
    if abs(n_bins * bin_size - (stop - start)) > 1e-9:
        raise ValueError(f"window {window} is not a whole number of {bin_size} s bins")
    if not np.isfinite(align_times).all():
        raise ValueError("align times: NaN or inf event times; drop those trials first")
    return align_times + start, n_bins


def bin_spikes(spike_times, spike_neurons, n_neurons: int, starts, n_bins: int,
               bin_size: float) -> np.ndarray:
    """Spike counts (K trials, T bins, N neurons) in the windows ``[starts[k], starts[k] + T * bin_size)``.

    ``spike_times`` (S,) in s and ``spike_neurons`` (S,) integer neuron index in ``[0, n_neurons)``.
    Spikes outside every window are ignored; windows may overlap. The counts are uint16, or the
    smallest unsigned type that holds them when a bin holds more than 65,535 spikes: never wrapped.
    """
    times = np.asarray(spike_times, dtype=np.float64)
    neurons = np.asarray(spike_neurons)
    if times.shape != neurons.shape or times.ndim != 1:
        raise ValueError(f"spike times {times.shape} and neuron indices {neurons.shape} must be 1-d and equal length")
    if neurons.size and (neurons.min() < 0 or neurons.max() >= n_neurons):
        raise ValueError(f"spike neuron indices must lie in [0, {n_neurons})")
    starts = np.asarray(starts, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    times, neurons = times[order], neurons[order].astype(np.int64)
    duration = n_bins * bin_size
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, starts + duration, side="left")
    counts = np.zeros((len(starts), n_bins, n_neurons), dtype=np.uint16)
    flat = counts.reshape(len(starts), -1)
    for k, (a, b) in enumerate(zip(lo, hi)):
        if a == b:
            continue
        bins = np.floor((times[a:b] - starts[k]) / bin_size).astype(np.int64)
        np.clip(bins, 0, n_bins - 1, out=bins)  # guards the float edge case t = start + T * bin_size - eps
        trial = np.bincount(bins * n_neurons + neurons[a:b], minlength=n_bins * n_neurons)
        if trial.max() > np.iinfo(counts.dtype).max:  # widen, never wrap (no bin holds more than S spikes)
            counts = counts.astype(np.promote_types(counts.dtype, np.min_scalar_type(trial.max())))
            flat = counts.reshape(len(starts), -1)
        flat[k] = trial
    return counts


def interpolate_to_bins(sample_times, values, starts, n_bins: int, bin_size: float,
                        max_gap: float | None = None) -> np.ndarray:
    """Sample a continuous trace at the right edge of every bin: (K, T) float array.

    Linear interpolation between the samples (NaN samples dropped). Bins whose edge lies more than
    ``max_gap`` seconds (default: one bin) outside the sampled time range are NaN rather than
    extrapolated, so a camera that stopped early gives missing data, not a made-up trace.
    """
    sample_times = np.asarray(sample_times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if sample_times.shape != values.shape or sample_times.ndim != 1:
        raise ValueError(f"sample times {sample_times.shape} and values {values.shape} must be 1-d and equal length")
    keep = np.isfinite(sample_times) & np.isfinite(values)
    sample_times, values = sample_times[keep], values[keep]
    edges = np.asarray(starts, dtype=np.float64)[:, None] + (np.arange(n_bins) + 1) * bin_size
    if sample_times.size < 2:
        return np.full(edges.shape, np.nan)
    order = np.argsort(sample_times, kind="stable")
    sample_times, values = sample_times[order], values[order]
    out = np.interp(edges, sample_times, values)
    gap = bin_size if max_gap is None else max_gap
    out[(edges < sample_times[0] - gap) | (edges > sample_times[-1] + gap)] = np.nan
    return out


def speed_in_bins(sample_times, position, starts, n_bins: int, bin_size: float) -> np.ndarray:
    """Mean absolute speed in every bin, (K, T): |position(bin end) - position(bin start)| / bin_size.

    ``position`` is interpolated linearly at the bin edges (e.g. wheel angle in rad gives rad/s).
    """
    edges = interpolate_to_bins(sample_times, position, np.asarray(starts) - bin_size, n_bins + 1, bin_size)
    return np.abs(np.diff(edges, axis=1)) / bin_size

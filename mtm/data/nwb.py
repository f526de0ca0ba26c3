"""Load a recording stored as NWB (Neurodata Without Borders, e.g. from DANDI) as a :class:`Session`.

An NWB file holds what a session needs in three places:

- the ``units`` table: one row per sorted unit, its spike times in s (the ragged ``spike_times``
  column) and, usually, its brain region (a ``location`` column, or the ``location`` of its
  electrodes in the ``electrodes`` table);
- the ``trials`` table: one row per trial, with ``start_time``, ``stop_time`` and any event times
  (``stim_on_time``, ...) and per-trial variables (``choice``, ...) the experimenter added;
- TimeSeries (in ``acquisition`` or a ``processing`` module): continuous behaviour such as wheel
  speed, with explicit timestamps or a ``starting_time`` and sampling ``rate``.

:func:`load_nwb_session` cuts the spike trains into trials aligned to one trials column (as the MtM
reference aligns IBL trials to stimulus onset, ``window=(-0.5, 1.5)`` s in 20 ms bins) with the same
binning as the IBL loader (:mod:`mtm.data.binning`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from hdmf.common import DynamicTableRegion, VectorIndex
from pynwb import NWBHDF5IO, TimeSeries

from mtm.data.binning import bin_spikes, interpolate_to_bins, trial_windows
from mtm.data.session import DEFAULT_SPLIT_SEED, Session, split_trials

#: Units-table columns tried, in order, for each unit's brain region when ``region_column`` is None.
REGION_COLUMNS = ("location", "brain_area", "region")


def load_nwb_session(path: str | os.PathLike, align: str = "start_time",
                     window: tuple[float, float] = (-0.5, 1.5), bin_size: float = 0.02, *,
                     region_column: str | None = None, trial_columns: dict[str, str] | None = None,
                     timeseries: dict[str, str] | None = None, trial_filter=None,
                     eid: str | None = None, split_seed: int = DEFAULT_SPLIT_SEED) -> Session:
    """Read an NWB file into a trial-aligned, binned :class:`Session`.

    Parameters
    ----------
    path
        The ``.nwb`` (HDF5) file.
    align
        Name of the trials column holding each trial's alignment event time in s (``"start_time"``,
        ``"stim_on_time"``, ...). Trials whose event time is NaN are dropped.
    window, bin_size
        The window (start, stop) in s around the event, cut into bins of ``bin_size`` s:
        T = (stop - start) / bin_size bins per trial.
    region_column
        Units column with each unit's region label. Default: the first of :data:`REGION_COLUMNS`
        present, else the ``location`` of each unit's first electrode in the electrodes table.
    trial_columns
        Behaviour key -> trials column, each giving a (K,) per-trial array of the kept trials
        (e.g. ``{"choice": "choice", "block": "prob_left"}``). Default (None): ``{"choice": "choice"}``
        when a ``choice`` column exists and all its kept values are -1 or +1, else nothing.
    timeseries
        Behaviour key -> path of a TimeSeries in the file (e.g.
        ``{"wheel_speed": "processing/behavior/wheel_speed"}``), giving a (K, T) array: the
        trace (data * conversion + offset) interpolated linearly at the right edge of every bin,
        NaN where the trace does not cover the bin (:func:`mtm.data.binning.interpolate_to_bins`).
    trial_filter
        Trials to keep besides the NaN check: a boolean array over the rows of the trials table,
        or the name of a boolean trials column.
    eid
        Session id; default the file's ``identifier``.
    split_seed
        Seed of the random 70 / 10 / 20 % train / val / test split (:func:`mtm.data.split_trials`).

    Returns
    -------
    Session
        spikes (K kept trials, T bins, N units) counts, units in table order; regions (N,);
        ``meta`` records the file, its description, identifier and start time, the region column,
        the align column, the dropped trials and the ids of the kept trials and units.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError``, naming the field and what
    was expected, for a file that is not NWB, a missing units or trials table, repeated unit ids, a column or
    TimeSeries that does not exist or has the wrong shape, and when no trial is left.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no NWB file at {path}")
    try:
        io = NWBHDF5IO(str(path), "r")
    except OSError as err:
        raise ValueError(f"path: {path} is not an HDF5 / NWB file ({err})") from err
    with io:
        try:
            nwbfile = io.read()
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"path: {path} is not a readable NWB file ({err})") from err
        units, trials = nwbfile.units, nwbfile.trials
        if units is None or len(units) == 0:
            raise ValueError(f"units: {path} has no units table (or it is empty); expected one row per "
                             "sorted unit with a spike_times column")
        if trials is None or len(trials) == 0:
            raise ValueError(f"trials: {path} has no trials table (or it is empty); expected one row per "
                             "trial holding the alignment event times")
        spike_times, spike_units = _spike_trains(units)
        unit_ids = np.asarray(units.id[:], dtype=np.int64)
        ids, repeats = np.unique(unit_ids, return_counts=True)
        if (repeats > 1).any():
            raise ValueError(f"units: the unit ids {ids[repeats > 1][:10].tolist()} occur more than once; expected "
                             "one row per sorted unit, each with its own id")
        regions, region_source = _unit_regions(units, region_column)

        align_times = _numeric_trials_column(trials, align, "align")
        has_time = np.isfinite(align_times)
        passes_filter = _trial_filter_mask(trials, trial_filter)
        kept = has_time & passes_filter
        if not kept.any():
            raise ValueError(f"trials: no trial left out of {len(kept)} ({int((~has_time).sum())} without a "
                             f"{align!r} time, {int((has_time & ~passes_filter).sum())} removed by trial_filter)")
        starts, n_bins = trial_windows(align_times[kept], window, bin_size)
        spikes = bin_spikes(spike_times, spike_units, len(unit_ids), starts, n_bins, bin_size)

        behavior = _per_trial_behavior(trials, trial_columns, kept)
        if timeseries:
            series_by_path = _timeseries_paths(io, nwbfile)
            for key, ts_path in timeseries.items():
                if key in behavior:
                    raise ValueError(f"timeseries[{key!r}]: key already used by trial_columns")
                behavior[key] = _binned_timeseries(series_by_path, key, ts_path, starts, n_bins, bin_size)

        meta = {
            "source": "nwb",
            "path": str(path.resolve()),
            "session_description": str(nwbfile.session_description),
            "identifier": str(nwbfile.identifier),
            "session_start_time": nwbfile.session_start_time.isoformat(),
            "region_column": region_source,
            "align_column": align,
            "n_trials_in_file": int(len(kept)),
            "n_trials_dropped_nan_align": int((~has_time).sum()),
            "n_trials_dropped_by_filter": int((has_time & ~passes_filter).sum()),
            "trial_ids": np.asarray(trials.id[:], dtype=np.int64)[kept].tolist(),
            "unit_ids": unit_ids.tolist(),
        }
        session_id = str(nwbfile.identifier) if eid is None else eid
    return Session(session_id, spikes, regions, behavior=behavior, splits=split_trials(len(starts), seed=split_seed),
                   bin_size=bin_size, align={"event": align, "window": tuple(window)}, meta=meta)


def _spike_trains(units) -> tuple[np.ndarray, np.ndarray]:
    """All spikes of the units table: times (S,) in s and the unit's row index (S,) of each spike."""
    if "spike_times" not in units.colnames:
        raise ValueError(f"units: no 'spike_times' column; the units table has {list(units.colnames)}")
    column = units["spike_times"]
    if not isinstance(column, VectorIndex):
        raise ValueError("units['spike_times']: expected a ragged column (a list of spike times per unit)")
    ends = np.asarray(column.data[:], dtype=np.int64)
    spike_times = np.asarray(column.target.data[:], dtype=np.float64)
    spikes_per_unit = np.diff(ends, prepend=0)
    return spike_times, np.repeat(np.arange(len(ends)), spikes_per_unit)


def _as_labels(values, field: str) -> np.ndarray:
    """(N,) str array from a column of str or bytes labels."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{field}: expected one region label per unit, got shape {values.shape}")
    labels = [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
    if not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{field}: expected string region labels, got {values.dtype} values")
    return np.asarray(labels, dtype=str)


def _unit_regions(units, region_column: str | None) -> tuple[np.ndarray, str]:
    """Region label (N,) of every unit and the column it came from (``"electrodes.location"`` for the
    electrodes-table route)."""
    if region_column is not None:
        if region_column not in units.colnames:
            raise ValueError(f"region_column: the units table has no column {region_column!r}; "
                             f"it has {list(units.colnames)}")
        if isinstance(units[region_column], VectorIndex):
            raise ValueError(f"region_column: units[{region_column!r}] is ragged; expected one label per unit")
        return _as_labels(units[region_column][:], f"units[{region_column!r}]"), region_column
    for name in REGION_COLUMNS:
        if name in units.colnames and not isinstance(units[name], VectorIndex):
            return _as_labels(units[name][:], f"units[{name!r}]"), name
    if "electrodes" in units.colnames:
        column = units["electrodes"]
        region_refs = column.target if isinstance(column, VectorIndex) else column
        if isinstance(region_refs, DynamicTableRegion) and "location" in region_refs.table.colnames:
            return _first_electrode_locations(column), "electrodes.location"
    raise ValueError(f"regions: found no brain region per unit; looked for the units columns "
                     f"{list(REGION_COLUMNS)} and for 'location' in the electrodes table of the units' "
                     f"'electrodes' column (the units table has {list(units.colnames)}); pass "
                     "region_column='<units column holding the region of each unit>'")


def _first_electrode_locations(column) -> np.ndarray:
    """(N,) ``location`` of each unit's first electrode, from the units ``electrodes`` column: ragged
    (a VectorIndex over a DynamicTableRegion, as the NWB schema has it) or one electrode per unit."""
    if isinstance(column, VectorIndex):
        region_refs = column.target
        ends = np.asarray(column.data[:], dtype=np.int64)
        firsts = np.concatenate([[0], ends[:-1]])
        empty = np.flatnonzero(ends == firsts)
        if empty.size:
            raise ValueError(f"units['electrodes']: units at rows {empty[:10].tolist()} have no electrode, "
                             "so no region; pass region_column")
        electrode_rows = np.asarray(region_refs.data[:], dtype=np.int64)[firsts]
    else:
        region_refs = column
        electrode_rows = np.asarray(column.data[:], dtype=np.int64)
    locations = _as_labels(region_refs.table["location"][:], "electrodes['location']")
    return locations[electrode_rows]


def _numeric_trials_column(trials, name: str, field: str) -> np.ndarray:
    """(K_all,) float64 values of one non-ragged numeric trials column."""
    if name not in trials.colnames:
        raise ValueError(f"{field}: the trials table has no column {name!r}; it has {list(trials.colnames)}")
    column = trials[name]
    if isinstance(column, VectorIndex):
        raise ValueError(f"{field}: trials[{name!r}] is ragged; expected one number per trial")
    values = np.asarray(column[:])
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise ValueError(f"{field}: trials[{name!r}] must hold one number per trial, got "
                         f"{values.dtype} values of shape {values.shape}")
    return values.astype(np.float64)


def _trial_filter_mask(trials, trial_filter) -> np.ndarray:
    """(K_all,) bool: which rows of the trials table ``trial_filter`` keeps (all when None)."""
    n_rows = len(trials)
    if trial_filter is None:
        return np.ones(n_rows, dtype=bool)
    if isinstance(trial_filter, str):
        values = _numeric_trials_column(trials, trial_filter, "trial_filter")
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"trial_filter: trials[{trial_filter!r}] must be boolean, got values "
                             f"{np.unique(values)[:10]}")
        return values.astype(bool)
    mask = np.asarray(trial_filter)
    if mask.dtype != bool or mask.shape != (n_rows,):
        raise ValueError(f"trial_filter: expected a boolean array of shape ({n_rows},) over the trials "
                         f"table, or a trials column name; got {mask.dtype} of shape {mask.shape}")
    return mask


def _per_trial_behavior(trials, trial_columns: dict[str, str] | None, kept: np.ndarray) -> dict[str, np.ndarray]:
    """Behaviour key -> (K,) values of its trials column on the kept trials."""
    if trial_columns is None:
        if "choice" not in trials.colnames or isinstance(trials["choice"], VectorIndex):
            return {}
        choice = np.asarray(trials["choice"][:])
        if choice.ndim != 1 or choice.dtype.kind not in "iuf" or not np.isin(choice[kept], (-1, 1)).all():
            return {}
        return {"choice": choice[kept]}
    return {key: _numeric_trials_column(trials, name, f"trial_columns[{key!r}]")[kept]
            for key, name in trial_columns.items()}


def _timeseries_paths(io: NWBHDF5IO, nwbfile) -> dict[str, TimeSeries]:
    """Every TimeSeries of the file by its path inside the file (``processing/behavior/wheel``)."""
    found = {}
    for container in nwbfile.objects.values():
        if isinstance(container, TimeSeries):
            builder = io.manager.get_builder(container)
            if builder is not None:
                found[builder.path.removeprefix("root/")] = container
    return found


def _binned_timeseries(series_by_path: dict[str, TimeSeries], key: str, ts_path: str, starts: np.ndarray,
                       n_bins: int, bin_size: float) -> np.ndarray:
    """(K, T) values of the TimeSeries at ``ts_path`` at the right edge of every bin of every trial."""
    series = series_by_path.get(ts_path.strip("/"))
    if series is None:
        raise ValueError(f"timeseries[{key!r}]: no TimeSeries at {ts_path!r}; the file has "
                         f"{sorted(series_by_path) or 'none'}")
    values = np.asarray(series.get_data_in_units(), dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"timeseries[{key!r}]: {ts_path!r} has data of shape {values.shape}; expected one "
                         "value per sample (1-d, or 2-d with 1 column)")
    sample_times = np.asarray(series.get_timestamps(), dtype=np.float64)
    if sample_times.shape != values.shape:
        raise ValueError(f"timeseries[{key!r}]: {ts_path!r} has {len(sample_times)} timestamps for "
                         f"{len(values)} samples")
    return interpolate_to_bins(sample_times, values, starts, n_bins, bin_size)

"""load_nwb_session: NWB files written here with pynwb, checked against independent computations."""

import datetime

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from mtm.data import Session, split_trials
from mtm.data.nwb import load_nwb_session

UNIT_REGIONS = ["CA1", "CA1", "LP", "VISa", "LP", "CA1", "VISa", "VISa", "LP", "CA1", "LP", "VISa"]
N_TRIALS = 20
NAN_ALIGN_ROWS = (3, 7)
RECORDING_S = 60.0
RAMP_SLOPE, RAMP_OFFSET = 2.0, 1.0  # wheel trace = RAMP_SLOPE * t + RAMP_OFFSET
START_TIME = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.timezone.utc)


def trial_starts() -> np.ndarray:
    """(N_TRIALS,) trial start times in s: one trial every 2.5 s from 2 s."""
    return 2.0 + 2.5 * np.arange(N_TRIALS)


def stim_on_times() -> np.ndarray:
    """(N_TRIALS,) stimulus onsets in s, 0.3-0.5 s after each start; NaN on NAN_ALIGN_ROWS."""
    onsets = trial_starts() + 0.3 + 0.2 * np.random.default_rng(1).random(N_TRIALS)
    onsets[list(NAN_ALIGN_ROWS)] = np.nan
    return onsets


def unit_spike_times() -> list[np.ndarray]:
    """Sorted spike times in s of each unit, uniform over the recording at 5-40 Hz."""
    rng = np.random.default_rng(0)
    return [np.sort(rng.uniform(0, RECORDING_S, int(rng.integers(300, 2400)))) for _ in UNIT_REGIONS]


def write_nwb(path, *, units=True, trials=True, unit_region_column="location", electrodes=True,
              choice=None, wheel_timestamps_until=RECORDING_S):
    """Write a small NWB session to ``path`` and return the path.

    12 units (spike times, a ``unit_region_column`` column unless None, and two electrodes each:
    the first in the unit's region, the second in 'root'), 20 trials (start/stop_time,
    stim_on_time, choice, prob_left, is_good), a ``behavior`` module with the wheel ramp sampled at
    100 Hz with timestamps up to ``wheel_timestamps_until`` s, and its position sampled at a
    50 Hz rate from 0.5 s plus a 2-column pose series.
    """
    nwbfile = NWBFile(session_description="synthetic NWB session", identifier="nwb-test-session",
                      session_start_time=START_TIME)
    if units:
        if electrodes:
            device = nwbfile.create_device("probe00")
            group = nwbfile.create_electrode_group("shank0", description="shank", location="brain", device=device)
            for region in UNIT_REGIONS:
                nwbfile.add_electrode(location=region, group=group)
            nwbfile.add_electrode(location="root", group=group)
        if unit_region_column is not None:
            nwbfile.add_unit_column(unit_region_column, "brain region of the unit")
        root_electrode = len(UNIT_REGIONS)
        for index, (region, times) in enumerate(zip(UNIT_REGIONS, unit_spike_times())):
            columns = {unit_region_column: region} if unit_region_column is not None else {}
            if electrodes:
                columns["electrodes"] = [index, root_electrode]
            nwbfile.add_unit(spike_times=times, **columns)
    if trials:
        nwbfile.add_trial_column("stim_on_time", "stimulus onset, s")
        nwbfile.add_trial_column("choice", "-1 left, +1 right")
        nwbfile.add_trial_column("prob_left", "block prior")
        nwbfile.add_trial_column("is_good", "trial passes quality control")
        choice = np.where(np.arange(N_TRIALS) % 3 == 0, 1, -1) if choice is None else choice
        for row, (start, onset) in enumerate(zip(trial_starts(), stim_on_times())):
            nwbfile.add_trial(start_time=start, stop_time=start + 2.0, stim_on_time=onset, choice=int(choice[row]),
                              prob_left=0.2 if row < 10 else 0.8, is_good=row % 4 != 1)
    behavior = nwbfile.create_processing_module("behavior", "wheel")
    ramp_times = np.arange(0, int(wheel_timestamps_until * 100) + 1) / 100
    behavior.add(TimeSeries(name="wheel_speed", data=RAMP_SLOPE * ramp_times + RAMP_OFFSET, unit="rad/s",
                            timestamps=ramp_times))
    behavior.add(TimeSeries(name="wheel_position", data=(np.arange(3000) / 50.0)[:, None], unit="rad",
                            rate=50.0, starting_time=0.5))
    behavior.add(TimeSeries(name="pose", data=np.zeros((100, 2)), unit="px", rate=10.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return write_nwb(tmp_path_factory.mktemp("nwb") / "session.nwb")


def kept_rows() -> np.ndarray:
    return np.setdiff1d(np.arange(N_TRIALS), NAN_ALIGN_ROWS)


def test_counts_equal_a_histogram_of_each_units_spike_times(nwb_path):
    session = load_nwb_session(nwb_path, align="stim_on_time")
    assert isinstance(session, Session)
    assert session.spikes.shape == (N_TRIALS - len(NAN_ALIGN_ROWS), 100, len(UNIT_REGIONS))
    assert session.bin_size == 0.02 and session.align == {"event": "stim_on_time", "window": (-0.5, 1.5)}
    onsets, spike_times = stim_on_times()[kept_rows()], unit_spike_times()
    compared = 0
    for trial in range(6):
        edges = onsets[trial] + np.linspace(-0.5, 1.5, 101)
        for unit, times in enumerate(spike_times):
            expected, _ = np.histogram(times, bins=edges)
            np.testing.assert_array_equal(session.spikes[trial, :, unit], expected)
            compared += expected.sum()
    assert compared > 1000


def test_counts_respect_window_and_bin_size(nwb_path):
    session = load_nwb_session(nwb_path, align="start_time", window=(-0.2, 0.3), bin_size=0.05)
    assert session.spikes.shape == (N_TRIALS, 10, len(UNIT_REGIONS))
    edges = trial_starts()[4] + np.linspace(-0.2, 0.3, 11)
    expected, _ = np.histogram(unit_spike_times()[5], bins=edges)
    np.testing.assert_array_equal(session.spikes[4, :, 5], expected)


def test_regions_follow_unit_order(nwb_path):
    session = load_nwb_session(nwb_path)
    assert session.regions.tolist() == UNIT_REGIONS
    assert session.meta["region_column"] == "location"
    assert session.meta["unit_ids"] == list(range(len(UNIT_REGIONS)))


def test_region_from_named_column_and_from_brain_area(tmp_path):
    path = write_nwb(tmp_path / "acronym.nwb", unit_region_column="acronym")
    assert load_nwb_session(path, region_column="acronym").regions.tolist() == UNIT_REGIONS
    path = write_nwb(tmp_path / "brain_area.nwb", unit_region_column="brain_area", electrodes=False)
    session = load_nwb_session(path)
    assert session.regions.tolist() == UNIT_REGIONS and session.meta["region_column"] == "brain_area"


def test_region_falls_back_to_first_electrode_location(tmp_path):
    path = write_nwb(tmp_path / "electrodes.nwb", unit_region_column=None)
    session = load_nwb_session(path)
    assert session.regions.tolist() == UNIT_REGIONS  # the second electrode of every unit is in 'root'
    assert session.meta["region_column"] == "electrodes.location"


def test_nan_align_trials_are_dropped(nwb_path):
    session = load_nwb_session(nwb_path, align="stim_on_time")
    assert session.n_trials == N_TRIALS - len(NAN_ALIGN_ROWS)
    assert session.meta["n_trials_in_file"] == N_TRIALS
    assert session.meta["n_trials_dropped_nan_align"] == len(NAN_ALIGN_ROWS)
    assert session.meta["trial_ids"] == kept_rows().tolist()
    assert load_nwb_session(nwb_path, align="start_time").meta["n_trials_dropped_nan_align"] == 0


def test_trial_filter_by_column_and_by_mask(nwb_path):
    by_column = load_nwb_session(nwb_path, align="stim_on_time", trial_filter="is_good")
    expected_rows = [row for row in kept_rows() if row % 4 != 1]
    assert by_column.meta["trial_ids"] == expected_rows
    assert by_column.meta["n_trials_dropped_by_filter"] == len(kept_rows()) - len(expected_rows)
    mask = np.arange(N_TRIALS) >= 10
    by_mask = load_nwb_session(nwb_path, trial_filter=mask)
    assert by_mask.meta["trial_ids"] == list(range(10, N_TRIALS))
    edges = trial_starts()[10] + np.linspace(-0.5, 1.5, 101)
    np.testing.assert_array_equal(by_mask.spikes[0, :, 0], np.histogram(unit_spike_times()[0], bins=edges)[0])


def test_choice_by_default_and_trial_columns(nwb_path, tmp_path):
    session = load_nwb_session(nwb_path, align="stim_on_time")
    assert list(session.behavior) == ["choice"]
    np.testing.assert_array_equal(session.behavior["choice"], np.where(kept_rows() % 3 == 0, 1, -1))
    mapped = load_nwb_session(nwb_path, trial_columns={"block": "prob_left", "choice": "choice"})
    np.testing.assert_array_equal(mapped.behavior["block"], np.where(np.arange(N_TRIALS) < 10, 0.2, 0.8))
    assert sorted(mapped.behavior) == ["block", "choice"]
    with_no_go = write_nwb(tmp_path / "no_go.nwb", choice=np.where(np.arange(N_TRIALS) == 5, 0, 1))
    assert load_nwb_session(with_no_go).behavior == {}


def test_timeseries_ramp_sampled_at_right_bin_edges(nwb_path):
    session = load_nwb_session(nwb_path, align="stim_on_time",
                               timeseries={"wheel_speed": "processing/behavior/wheel_speed",
                                           "wheel_position": "/processing/behavior/wheel_position"})
    starts = stim_on_times()[kept_rows()] - 0.5
    right_edges = starts[:, None] + (np.arange(100) + 1) * 0.02
    assert session.behavior["wheel_speed"].shape == (session.n_trials, 100)
    np.testing.assert_allclose(session.behavior["wheel_speed"], RAMP_SLOPE * right_edges + RAMP_OFFSET,
                               rtol=0, atol=1e-12)
    # position = t - 0.5 s: 50 Hz samples of i / 50 starting at 0.5 s (starting_time + rate)
    np.testing.assert_allclose(session.behavior["wheel_position"], right_edges - 0.5, rtol=0, atol=1e-12)


def test_timeseries_outside_its_samples_is_nan(tmp_path):
    path = write_nwb(tmp_path / "short_wheel.nwb", wheel_timestamps_until=30.0)
    wheel = load_nwb_session(path, timeseries={"wheel": "processing/behavior/wheel_speed"}).behavior["wheel"]
    late = trial_starts() - 0.5 > 30.0 + 0.02
    assert late.any() and np.isnan(wheel[late]).all()
    assert np.isfinite(wheel[trial_starts() + 1.5 < 30.0]).all()


def test_eid_meta_and_splits(nwb_path):
    session = load_nwb_session(nwb_path, split_seed=7)
    assert session.eid == "nwb-test-session"
    assert session.meta["source"] == "nwb" and session.meta["identifier"] == "nwb-test-session"
    assert session.meta["session_description"] == "synthetic NWB session"
    assert session.meta["session_start_time"] == START_TIME.isoformat()
    assert session.meta["path"] == str(nwb_path.resolve()) and session.meta["align_column"] == "start_time"
    for name, indices in split_trials(N_TRIALS, seed=7).items():
        np.testing.assert_array_equal(session.splits[name], indices)
    assert load_nwb_session(nwb_path, eid="my-session").eid == "my-session"


def test_session_survives_save_and_load(nwb_path, tmp_path):
    session = load_nwb_session(nwb_path, timeseries={"wheel_speed": "processing/behavior/wheel_speed"})
    assert Session.load(session.save(tmp_path / "s.npz")) == session


@pytest.mark.parametrize("file_kwargs, load_kwargs, message", [
    ({"units": False}, {}, r"units: .* no units table"),
    ({"trials": False}, {}, r"trials: .* no trials table"),
    ({}, {"align": "stimOn_times"}, r"align: .* no column 'stimOn_times'.*'stim_on_time'"),
    ({}, {"timeseries": {"wheel": "processing/behavior/wheel"}},
     r"timeseries\['wheel'\]: no TimeSeries at 'processing/behavior/wheel'.*processing/behavior/wheel_speed"),
    ({}, {"timeseries": {"pose": "processing/behavior/pose"}}, r"timeseries\['pose'\]: .* shape \(100, 2\)"),
    ({}, {"region_column": "acronym"}, r"region_column: .* no column 'acronym'.*'location'"),
    ({"unit_region_column": None, "electrodes": False}, {},
     r"regions: .*\['location', 'brain_area', 'region'\].*region_column="),
    ({}, {"trial_filter": np.zeros(N_TRIALS, dtype=bool)}, r"trials: no trial left out of 20"),
    ({}, {"trial_filter": np.ones(5, dtype=bool)}, r"trial_filter: expected a boolean array of shape \(20,\)"),
    ({}, {"trial_filter": "prob_left"}, r"trial_filter: trials\['prob_left'\] must be boolean"),
    ({}, {"trial_columns": {"block": "probabilityLeft"}}, r"trial_columns\['block'\]: .* 'probabilityLeft'"),
])
def test_bad_input_raises_value_error(tmp_path, file_kwargs, load_kwargs, message):
    path = write_nwb(tmp_path / "session.nwb", **file_kwargs)
    with pytest.raises(ValueError, match=message):
        load_nwb_session(path, **load_kwargs)


def test_missing_or_non_nwb_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no NWB file"):
        load_nwb_session(tmp_path / "absent.nwb")
    not_hdf5 = tmp_path / "notes.nwb"
    not_hdf5.write_text("not an NWB file")
    with pytest.raises(ValueError, match="path: .* not an HDF5 / NWB file"):
        load_nwb_session(not_hdf5)

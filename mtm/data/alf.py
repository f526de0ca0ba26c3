"""Writing ALF sessions that ONE opens in local mode, so the IBL loading path runs with no network.

IBL publishes its recordings as ALF files (``object.attribute.extension`` in a
``lab/Subjects/subject/date/number`` folder) that ONE indexes through two cache tables. This
module writes such folders and their tables:

* :func:`write_alf_session` writes one session from plain arrays (spikes per probe, a channels
  table, trials, wheel, left camera), with the dataset names IBL uses.
* :func:`build_one_cache` indexes a folder of sessions for ``ONE(cache_dir=root, mode='local')``.
* :func:`session_to_alf` turns any binned :class:`~mtm.data.Session` (a synthetic one, say) into an
  ALF session that :func:`mtm.data.ibl.load_ibl_session` loads back to the same spike counts.
* :func:`real_fixture_alf` builds an ALF session around the real IBL spikes, behaviour and wheel
  of ``<real data>/ibl_brainbox_fixtures/``; what it has to make up is listed in its docstring.

Channel brain regions are stored as Allen CCF 2017 ids (``channels.brainLocationIds_ccf_2017``),
looked up by acronym in ``iblatlas.regions.BrainRegions`` (offline), never hard-coded.
"""

from __future__ import annotations

import inspect
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mtm.data.sources import real_data_dir

EID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "mtm.data.alf")
IBL_WHEEL_RADIUS_CM = 3.1
REWARD_VOLUME_UL = 1.5
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# Insertion path of the real-data fixture from the brain surface down: (Allen acronym, channels).
# It follows the repeated-site target (VISa, hippocampus, thalamus); the numbers are made up.
FIXTURE_PATH = (("VISa1", 12), ("VISa2/3", 28), ("VISa4", 12), ("VISa5", 32), ("VISa6a", 28),
                ("VISa6b", 8), ("scwm", 8), ("alv", 8), ("CA1", 48), ("DG-mo", 24), ("DG-sg", 16),
                ("DG-po", 24), ("LP", 72), ("PO", 64))
FIXTURE_SESSION = dict(lab="mtm_fixtures", subject="brainbox_ephys_test", date="2020-01-01", number=1)
FIXTURE_TRIAL_ROWS = ("2020-09-01", 150, 45)  # date, first row, number of rows of trials_test_SWC_054
FIXTURE_TRIAL_PERIOD = 2.6
FIXTURE_FIRST_STIM_ON = 1.0


def session_eid(relative_session_path: str) -> str:
    """The deterministic eid :func:`build_one_cache` gives a session: uuid5 of its relative path."""
    return str(uuid.uuid5(EID_NAMESPACE, relative_session_path))


def build_one_cache(root, eids: dict | None = None) -> dict[Path, str]:
    """Index every ALF session under ``root`` (``lab/Subjects/subject/date/NNN`` folders) for
    ``ONE(cache_dir=root, mode='local')``.

    Builds ``sessions.pqt`` and ``datasets.pqt`` with ``one.alf.cache.make_parquet_db`` (file hashes
    included, so ONE does not warn about md5 mismatches), then replaces the random eids it makes up
    with the ones in ``eids`` (session path, absolute or relative to ``root`` -> eid) or, for other
    sessions, with :func:`session_eid` of the relative path, so rebuilding gives the same eids. Every
    dataset is marked as the default revision. Returns {absolute session path: eid}.
    """
    from iblutil.io import parquet
    from one.alf.cache import make_parquet_db

    root = Path(root).resolve()
    wanted = {_relative(root, path): str(eid) for path, eid in (eids or {}).items()}
    sessions_file, datasets_file = make_parquet_db(root, hash_ids=True, hash_files=True)
    sessions, sessions_info = parquet.load(sessions_file)
    datasets, datasets_info = parquet.load(datasets_file)
    relative = {old: f"{row.lab}/Subjects/{row.subject}/{row.date}/{int(row.number):03d}"
                for old, row in sessions.iterrows()}
    unknown = set(wanted) - set(relative.values())
    if unknown:
        raise ValueError(f"eids: no ALF session at {sorted(unknown)} under {root}")
    new_ids = {old: wanted.get(rel, session_eid(rel)) for old, rel in relative.items()}
    sessions = sessions.rename(index=new_ids)
    sessions.index.name = "id"
    datasets = datasets.reset_index()
    datasets["eid"] = datasets["eid"].map(new_ids)
    datasets["default_revision"] = True
    datasets = datasets.set_index(["eid", "id"])
    parquet.save(sessions_file, sessions, sessions_info)
    parquet.save(datasets_file, datasets, datasets_info)
    return {root / rel: new_ids[old] for old, rel in relative.items()}


def _relative(root: Path, path) -> str:
    path = Path(path)
    return (path.resolve().relative_to(root) if path.is_absolute() else path).as_posix()


def write_alf_session(root, *, lab: str, subject: str, date: str, number: int, probes: dict,
                      trials, wheel: dict | None = None, left_camera: dict | None = None,
                      sorter: str = "pykilosort") -> Path:
    """Write one ALF session under ``root/lab/Subjects/subject/date/NNN`` and return its folder.

    ``probes``: {probe name: dict} with ``spike_times`` (S,) s, ``spike_clusters`` (S,) cluster index,
    ``cluster_channels`` (C,) channel index per cluster and ``channel_atlas_ids`` (H,) Allen CCF 2017
    id per channel. Written to ``alf/<probe>/<sorter>/`` (``alf/<probe>/`` if ``sorter`` is '') as
    ``spikes.times/clusters.npy`` (sorted by time), ``clusters.channels.npy``, ``clusters.uuids.csv``
    (uuid5 of the session, probe and cluster) and ``channels.brainLocationIds_ccf_2017.npy``.
    ``trials``: dict or DataFrame of (K,) columns (IBL names: ``stimOn_times``, ``choice``, ...) and
    optionally ``intervals`` (K, 2) s -> ``alf/_ibl_trials.table.pqt`` + ``_ibl_trials.intervals.npy``.
    ``wheel``: dict(times (W,) s, position (W,) rad) -> ``alf/_ibl_wheel.timestamps/position.npy``.
    ``left_camera``: dict(times (F,) s, motion_energy (F,)) -> ``alf/_ibl_leftCamera.times.npy`` and
    ``alf/leftCamera.ROIMotionEnergy.npy``. The session folder must not exist yet.
    """
    folders = [("lab", lab), ("subject", subject), *(("probe", pname) for pname in probes)]
    for name, value in folders + ([("sorter", sorter)] if sorter else []):
        if not _FOLDER_NAME.match(str(value)):
            raise ValueError(f"{name}: {value!r} is not a valid ALF folder name (letters, digits, _ and -)")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(date)):
        raise ValueError(f"date: expected yyyy-mm-dd, got {date!r}")
    session = Path(root) / lab / "Subjects" / subject / str(date) / f"{int(number):03d}"
    if session.exists():
        raise FileExistsError(f"{session} already exists; write each ALF session into a new folder")
    files: dict[str, object] = {}
    for pname, probe in probes.items():
        collection = f"alf/{pname}/{sorter}" if sorter else f"alf/{pname}"
        files.update({f"{collection}/{name}": value for name, value in
                      _probe_datasets(pname, probe, f"{lab}/{subject}/{date}/{number}").items()})
    files.update(_trials_datasets(trials))
    if wheel is not None:
        times, position = _paired(wheel, "times", "position", "wheel")
        files["alf/_ibl_wheel.timestamps.npy"], files["alf/_ibl_wheel.position.npy"] = times, position
    if left_camera is not None:
        times, energy = _paired(left_camera, "times", "motion_energy", "left_camera")
        files["alf/_ibl_leftCamera.times.npy"], files["alf/leftCamera.ROIMotionEnergy.npy"] = times, energy
    for rel_path, content in files.items():
        path = session / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            content.to_csv(path, index=False)
        elif path.suffix == ".pqt":
            content.to_parquet(path, index=False)
        else:
            np.save(path, content)
    return session


def _probe_datasets(pname: str, probe: dict, session_name: str) -> dict[str, object]:
    missing = {"spike_times", "spike_clusters", "cluster_channels", "channel_atlas_ids"} - set(probe)
    if missing:
        raise ValueError(f"probes[{pname!r}]: missing {sorted(missing)}")
    times = np.asarray(probe["spike_times"], dtype=np.float64)
    clusters = np.asarray(probe["spike_clusters"], dtype=np.int64)
    channels = np.asarray(probe["cluster_channels"], dtype=np.int64)
    atlas_ids = np.asarray(probe["channel_atlas_ids"], dtype=np.int64)
    if times.ndim != 1 or times.shape != clusters.shape:
        raise ValueError(f"probes[{pname!r}]: spike_times {times.shape} and spike_clusters {clusters.shape} "
                         "must be 1-d and of equal length")
    if clusters.size and (clusters.min() < 0 or clusters.max() >= channels.size):
        raise ValueError(f"probes[{pname!r}]: spike_clusters must index the {channels.size} clusters")
    if channels.size and (channels.min() < 0 or channels.max() >= atlas_ids.size):
        raise ValueError(f"probes[{pname!r}]: cluster_channels must index the {atlas_ids.size} channels")
    order = np.argsort(times, kind="stable")
    uuids = [str(uuid.uuid5(EID_NAMESPACE, f"{session_name}/{pname}/{c}")) for c in range(channels.size)]
    return {"spikes.times.npy": times[order], "spikes.clusters.npy": clusters[order].astype(np.uint32),
            "clusters.channels.npy": channels, "clusters.uuids.csv": pd.DataFrame({"uuids": uuids}),
            "channels.brainLocationIds_ccf_2017.npy": atlas_ids}


def _trials_datasets(trials) -> dict[str, object]:
    columns = {name: np.asarray(trials[name]) for name in trials}
    intervals = columns.pop("intervals", None)
    n_trials = {len(value) for value in columns.values()}
    if len(n_trials) != 1 or any(value.ndim != 1 for value in columns.values()):
        raise ValueError(f"trials: expected 1-d columns of one length, got "
                         f"{ {name: value.shape for name, value in columns.items()} }")
    files: dict[str, object] = {"alf/_ibl_trials.table.pqt": pd.DataFrame(columns)}
    if intervals is not None:
        intervals = np.asarray(intervals, dtype=np.float64)
        if intervals.shape != (n_trials.pop(), 2):
            raise ValueError(f"trials['intervals']: expected shape (K, 2), got {intervals.shape}")
        files["alf/_ibl_trials.intervals.npy"] = intervals
    return files


def _paired(data: dict, times_key: str, values_key: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    times, values = np.asarray(data[times_key], np.float64), np.asarray(data[values_key], np.float64)
    if times.ndim != 1 or times.shape != values.shape:
        raise ValueError(f"{what}: {times_key} {times.shape} and {values_key} {values.shape} "
                         "must be 1-d and of equal length")
    return times, values


def atlas_ids(acronyms) -> np.ndarray:
    """Allen CCF 2017 id of every acronym (BrainRegions, offline); an unknown acronym is a ValueError."""
    from iblatlas.regions import BrainRegions

    regions = BrainRegions()
    acronyms = np.asarray(acronyms, dtype=str)
    unknown = sorted(set(acronyms[~np.isin(acronyms, regions.acronym)].tolist()))
    if unknown:
        raise ValueError(f"regions: {unknown} are not acronyms of the Allen ontology (iblatlas BrainRegions)")
    names, inverse = np.unique(acronyms, return_inverse=True)
    return regions.acronym2id(names)[inverse].astype(np.int64)


def spread_spikes(counts, starts, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Spike times and neuron indices that re-bin to exactly ``counts`` (K, T, N).

    The ``c`` spikes of a bin ``[s, s + bin_size)`` are placed at ``s + bin_size * (j + 0.5) / c``,
    j = 0..c-1, where ``s = starts[k] + t * bin_size``: evenly spread and half a spacing away from
    both edges, so :func:`mtm.data.binning.bin_spikes` on the same ``starts`` counts them back.
    Returns (times (S,) s sorted, neurons (S,)).
    """
    counts = np.asarray(counts)
    trial, time_bin, neuron = np.nonzero(counts)
    per_bin = counts[trial, time_bin, neuron].astype(np.int64)
    rank = np.arange(per_bin.sum()) - np.repeat(np.cumsum(per_bin) - per_bin, per_bin)
    offset = (np.repeat(time_bin, per_bin) + (rank + 0.5) / np.repeat(per_bin, per_bin)) * bin_size
    times = np.asarray(starts, dtype=np.float64)[np.repeat(trial, per_bin)] + offset
    order = np.argsort(times, kind="stable")
    return times[order], np.repeat(neuron, per_bin)[order]


def session_to_alf(session, root, *, lab: str = "mtm", subject: str | None = None, date: str = "2024-01-01",
                   number: int = 1, n_probes: int = 1, trial_period: float = 3.0,
                   camera_rate: float = 60.0, sorter: str = "pykilosort") -> Path:
    """Write a binned :class:`~mtm.data.Session` as an ALF session (trials laid end to end in time).

    Trial k's alignment event is written as ``stimOn_times = t0 + k * trial_period`` s, with
    ``t0 = 1 - window[0]`` so the first window starts at 1 s. Every spike count is turned into spikes
    spread evenly inside its bin (:func:`spread_spikes`), so loading with the session's window and
    bin size gives back the identical counts. Neurons are split into ``n_probes`` contiguous groups
    ``probe00``, ``probe01``, ..., one channel per neuron whose Allen id is that of the neuron's
    region (the acronyms must exist in the Allen ontology; Beryl acronyms such as VISa, CA1, DG, LP,
    PO map back to themselves). Behaviour becomes (value used when the session lacks the key):

    * ``choice`` -> ``choice`` (required: the IBL trial filter drops trials without one);
    * ``block`` -> ``probabilityLeft`` (0.5);
    * ``stim_side``, ``contrast`` -> ``contrastRight = |contrast|`` for side +1, ``contrastLeft`` for
      side -1, NaN on the other side (side from the sign of ``contrast``, right for 0; contrast 0);
    * ``reward`` -> ``feedbackType`` +1 / -1 and ``rewardVolume`` 1.5 / 0 uL (1);
    * ``reaction_time`` -> ``firstMovement_times = stimOn + reaction_time`` (0.3 s), with
      ``goCue = stimOn`` and ``response = feedback = firstMovement + 0.1 s``;
    * ``wheel_speed`` (K, T) rad/s -> ``wheel.position`` (rad) sampled at every bin edge, the running
      integral of the speed signed by -choice, constant between trials (no wheel);
    * ``whisker_me`` (K, T) -> ``leftCamera.ROIMotionEnergy`` sampled at ``camera_rate`` Hz, linear
      between the bins' right edges (no camera).

    Trials that the reference filter would drop (reaction time outside [0.08, 2] s) are written
    too and dropped again on loading. NaN wheel speeds are written as no movement.
    """
    window = session.align["window"]
    if window is None:
        raise ValueError("session_to_alf: the session has no align window, so its trials cannot be placed in time")
    behavior = session.behavior
    if "choice" not in behavior:
        raise ValueError("session_to_alf: the session has no behavior['choice']; the IBL trial filter needs it")
    duration = window[1] - window[0]
    if not trial_period > duration:
        raise ValueError(f"trial_period: must exceed the window length {duration} s, got {trial_period}")
    n_trials, n_bins, bin_size = session.n_trials, session.n_bins, session.bin_size
    stim_on = (1.0 - window[0]) + trial_period * np.arange(n_trials)
    starts = stim_on + window[0]
    ids = atlas_ids(session.regions)
    probes = {}
    for index, neurons in enumerate(np.array_split(np.arange(session.n_neurons), n_probes)):
        times, clusters = spread_spikes(session.spikes[:, :, neurons], starts, bin_size)
        probes[f"probe{index:02d}"] = dict(spike_times=times, spike_clusters=clusters,
                                          cluster_channels=np.arange(neurons.size), channel_atlas_ids=ids[neurons])
    choice = np.asarray(behavior["choice"]).astype(np.int64)
    contrast = np.asarray(behavior.get("contrast", np.zeros(n_trials)), dtype=np.float64)
    side = np.asarray(behavior.get("stim_side", np.where(contrast < 0, -1, 1)))
    reward = np.asarray(behavior.get("reward", np.ones(n_trials))).astype(bool)
    movement = stim_on + np.asarray(behavior.get("reaction_time", np.full(n_trials, 0.3)), dtype=np.float64)
    trials = {
        "intervals": np.column_stack([starts, starts + trial_period]),
        "stimOn_times": stim_on, "goCue_times": stim_on, "firstMovement_times": movement,
        "response_times": movement + 0.1, "feedback_times": movement + 0.1, "choice": choice,
        "contrastLeft": np.where(side < 0, np.abs(contrast), np.nan),
        "contrastRight": np.where(side > 0, np.abs(contrast), np.nan),
        "probabilityLeft": np.asarray(behavior.get("block", np.full(n_trials, 0.5)), dtype=np.float64),
        "feedbackType": np.where(reward, 1, -1), "rewardVolume": np.where(reward, REWARD_VOLUME_UL, 0.0),
    }
    edges = starts[:, None] + np.arange(n_bins + 1) * bin_size
    wheel = left_camera = None
    if "wheel_speed" in behavior:
        speed = np.nan_to_num(np.asarray(behavior["wheel_speed"], dtype=np.float64))
        steps = np.concatenate([np.zeros((n_trials, 1)), -choice[:, None] * speed * bin_size], axis=1)
        wheel = dict(times=edges.ravel(), position=np.cumsum(steps.ravel()))
    if "whisker_me" in behavior:
        frames = np.arange(edges[0, 0], edges[-1, -1] + 1.0 / camera_rate, 1.0 / camera_rate)
        energy = np.interp(frames, edges[:, 1:].ravel(), np.asarray(behavior["whisker_me"], np.float64).ravel())
        left_camera = dict(times=frames, motion_energy=energy)
    subject = subject or re.sub(r"[^A-Za-z0-9_-]", "_", session.eid)
    return write_alf_session(root, lab=lab, subject=subject, date=date, number=number, probes=probes,
                             trials=trials, wheel=wheel, left_camera=left_camera, sorter=sorter)


def real_fixture_alf(root, real_dir=None) -> Path:
    """An ALF session around real IBL data (``<real_dir>/ibl_brainbox_fixtures/``); returns its folder.

    Real: the spikes (``ephys_test.npz``: 124,905 spikes of 289 Neuropixels units, 120 s of an
    unidentified IBL recording), the behaviour of 45 consecutive trials (rows 150-194 of the biased
    session 2020-09-01 of mouse SWC_054 in ``trials_test_SWC_054.pqt``: choice, contrasts,
    feedbackType, probabilityLeft, response time minus stimulus onset) and the wheel trace
    (``wheel_test.npz`` ``fpga_x2_cm_*``, cm / 3.1 cm wheel radius -> rad).

    Made up, so this is not an IBL session: the session path (``mtm_fixtures/Subjects/
    brainbox_ephys_test/2020-01-01/001``) and hence its eid; the cluster ids (renumbered densely
    0..288 in the order of the original ids); the split into two probes (units 0-144 on ``probe00``,
    145-288 on ``probe01``, renumbered from 0 on each); the channels (384 per probe along
    :data:`FIXTURE_PATH`, VISa layers, scwm, alv, CA1, DG, LP, PO from surface to tip, channel 0
    deepest; cluster i of n on channel ``(i + 0.5) * 384 // n``); the trial times (stimulus onset
    every 2.6 s from 1 s, ``goCue = stimOn``; ``firstMovement = response = feedback = stimOn +`` the
    real response time, since the table has no first-movement times; no ``rewardVolume`` column, so
    reward comes from feedbackType); the wheel's time base (shifted to start at 0, cut at 120 s);
    and the left camera, a synthetic motion energy (60 Hz, wheel speed smoothed plus noise, seed 0).
    This text is also written to ``README.md`` in the session folder.
    """
    folder = Path(real_dir if real_dir is not None else real_data_dir(required=True)) / "ibl_brainbox_fixtures"
    ephys = np.load(folder / "ephys_test.npz")
    spike_times, original_ids = ephys["spike_times"], ephys["spike_clusters"]
    unit_ids, dense = np.unique(original_ids, return_inverse=True)
    duration = float(np.ceil(spike_times.max()))
    channel_ids = np.repeat(atlas_ids([name for name, _ in FIXTURE_PATH]), [n for _, n in FIXTURE_PATH])[::-1]
    probes = {}
    for index, units in enumerate(np.array_split(np.arange(unit_ids.size), 2)):
        on_probe = np.isin(dense, units)
        positions = (np.arange(units.size) + 0.5) * channel_ids.size // units.size
        probes[f"probe{index:02d}"] = dict(spike_times=spike_times[on_probe],
                                          spike_clusters=dense[on_probe] - units[0],
                                          cluster_channels=positions.astype(np.int64),
                                          channel_atlas_ids=channel_ids)
    date, first_row, n_trials = FIXTURE_TRIAL_ROWS
    table = pd.read_parquet(folder / "trials_test_SWC_054.pqt")
    rows = table[table["date"] == date].iloc[first_row:first_row + n_trials]
    stim_on = FIXTURE_FIRST_STIM_ON + FIXTURE_TRIAL_PERIOD * np.arange(n_trials)
    response = stim_on + (rows["response_times"] - rows["stimOn_times"]).to_numpy()
    trials = {
        "intervals": np.column_stack([stim_on - 0.5, stim_on - 0.5 + FIXTURE_TRIAL_PERIOD]),
        "stimOn_times": stim_on, "goCue_times": stim_on, "firstMovement_times": response,
        "response_times": response, "feedback_times": response,
        **{name: rows[name].to_numpy() for name in
           ("choice", "contrastLeft", "contrastRight", "feedbackType", "probabilityLeft")},
    }
    wheel_data = np.load(folder / "wheel_test.npz")
    wheel_times = wheel_data["fpga_x2_cm_t"] - wheel_data["fpga_x2_cm_t"][0]
    in_recording = wheel_times <= duration
    wheel = dict(times=wheel_times[in_recording],
                 position=wheel_data["fpga_x2_cm_pos"][in_recording] / IBL_WHEEL_RADIUS_CM)
    session = write_alf_session(root, **FIXTURE_SESSION, probes=probes, trials=trials, wheel=wheel,
                                left_camera=_synthetic_camera(wheel["times"], wheel["position"], duration))
    (session / "README.md").write_text("# Not an IBL session: an ALF fixture built by mtm.data.alf.real_fixture_alf\n\n"
                                       + inspect.cleandoc(real_fixture_alf.__doc__) + "\n")
    return session


def _synthetic_camera(wheel_times, wheel_position, duration: float, rate: float = 60.0) -> dict:
    """Made-up left-camera motion energy: |wheel velocity| smoothed over 0.2 s, plus noise (seed 0)."""
    frames = np.arange(0.0, duration, 1.0 / rate)
    speed = np.abs(np.gradient(np.interp(frames, wheel_times, wheel_position), frames))
    kernel = np.ones(int(0.2 * rate)) / int(0.2 * rate)
    noise = np.random.default_rng(0).gamma(2.0, 0.5, frames.size)
    return dict(times=frames, motion_energy=1000.0 * (np.convolve(speed, kernel, mode="same") + noise))

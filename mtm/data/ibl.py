"""Loading IBL sessions through ONE, the way the MtM reference builds its datasets.

One code path serves the IBL public server (:func:`ibl_one`) and a local ALF cache
(``ONE(cache_dir=..., mode='local')``, see :mod:`mtm.data.alf`). For a session (eid):

1. Spike sorting: every probe's collection holding ``spikes.times`` (``alf/probe00/iblsorter``,
   ``alf/probe00/pykilosort`` or ``alf/probe00``) is found from ``one.list_datasets``; with several
   per probe, iblsorter is preferred, then pykilosort, then the bare probe folder.
2. Neurons: every cluster of every probe (no quality filter, as the reference), probe00 first, in
   cluster order; the region of a neuron is its channel's Allen id (``channels.
   brainLocationIds_ccf_2017``) as an acronym, mapped to Beryl by default (``iblatlas``, offline).
3. Trials: the reference filter (:func:`reference_trial_mask`), windows [-0.5, 1.5) s around
   ``stimOn_times`` cut into 20 ms bins (:mod:`mtm.data.binning`): spikes (K, 100, N).
4. Behaviour: per trial from the trials table; per bin the left-camera motion energy and the wheel
   speed (only those named in ``behavior``).

Every missing piece raises ``ValueError`` naming the eid and the dataset.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np

from mtm.data import binning
from mtm.data.session import Session, split_trials
from mtm.paths import refuse_existing, safe_name

IBL_OPENALYX_URL = "https://openalyx.internationalbrainlab.org"
SORTER_PREFERENCE = ("iblsorter", "pykilosort", "")
REGION_MAPPINGS = ("Beryl", "Cosmos", "Allen")
PER_BIN_BEHAVIORS = ("whisker_me", "wheel_speed")
TRIAL_NAN_FIELDS = ("stimOn_times", "choice", "feedback_times", "probabilityLeft",
                    "firstMovement_times", "feedbackType")
TRIAL_FIELDS = TRIAL_NAN_FIELDS + ("goCue_times",)
_PROBE_COLLECTION = re.compile(r"^alf/(probe[^/]+)(?:/([^/]+))?$")


IBL_SIGNUP_URL = f"{IBL_OPENALYX_URL}/signup"
CREDENTIAL_VARIABLES = ("ALYX_LOGIN", "ALYX_PASSWORD", "ALYX_TOKEN")
ONE_SETTINGS_FOLDER = ".one_settings"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NO_ACCOUNT = (f"the IBL public server needs an account of your own (free; ONE no longer ships a shared "
              f"login): create one at {IBL_SIGNUP_URL}, then pass username and password (mtm data ibl "
              "--username NAME --password PASSWORD, or the environment variables ALYX_LOGIN and ALYX_PASSWORD; "
              "an account without a password passes the token shown on the server's /me page: --token or "
              f"ALYX_TOKEN), or store them once with ONE.setup(base_url='{IBL_OPENALYX_URL}', username=NAME)")


def check_eid(eid) -> str:
    """``eid`` as a string if it has the UUID form of an IBL session id; ``ValueError`` otherwise."""
    if not isinstance(eid, str) or not _UUID.match(eid.strip()):
        raise ValueError(f"eid: expected an IBL session id in UUID form "
                         f"(such as 56956777-dca5-468c-87cb-78150432cc57), got {eid!r}")
    return eid.strip().lower()


@contextmanager
def one_settings_in(folder):
    """Keep ONE's settings (its ``~/.one`` folder: server parameters, cached login token) under
    ``folder`` while the block runs. ONE reads the home folder from ``HOME``, which is pointed at
    ``folder`` and restored afterwards."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(folder.resolve())
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved


def _stored_login() -> str | None:
    """The login stored with ``ONE.setup`` for the IBL public server, read without writing anything."""
    from iblutil.io import params as iopar
    from one.params import _key_from_url

    path = Path(iopar.getfile(f"one/{_key_from_url(IBL_OPENALYX_URL)}"))
    if not path.is_file():
        return None
    try:
        return iopar.read(f"one/{_key_from_url(IBL_OPENALYX_URL)}").as_dict().get("ALYX_LOGIN") or None
    except (OSError, ValueError, AttributeError):
        return None


def default_one_cache() -> Path:
    """The folder of :func:`ibl_one`'s downloads when none is given: ``~/.cache/mtm/one``."""
    return Path.home() / ".cache" / "mtm" / "one"


def ibl_one(cache_dir=None, *, username: str | None = None, password: str | None = None, token: str | None = None):
    """A ONE client of the IBL public server, with the caller's account.

    Credentials, first found: the arguments; the environment variables ``ALYX_LOGIN``,
    ``ALYX_PASSWORD`` (or ``ALYX_TOKEN``); a login stored with ``ONE.setup``. Without any, a
    ``ValueError`` says how to get an account (:data:`IBL_SIGNUP_URL`). Downloads go to
    ``cache_dir`` (default :func:`default_one_cache`); with given credentials ONE's settings and login token are kept in
    ``cache_dir/.one_settings`` (nothing is written in the home folder), while a stored
    ``ONE.setup`` login is used where the user stored it. A server that cannot be reached raises
    ``ConnectionError``.
    """
    from one.api import ONE

    if cache_dir is None:
        cache_dir = default_one_cache()
    if not str(cache_dir).strip():
        raise ValueError("cache_dir: expected the folder for ONE's downloads, or None for ~/.cache/mtm/one")
    cache_dir = Path(cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"cache_dir: {cache_dir} is a file, expected a folder")
    username = username or os.environ.get("ALYX_LOGIN") or None
    password = password or os.environ.get("ALYX_PASSWORD") or None
    token = token or os.environ.get("ALYX_TOKEN") or None
    if username is None and token is None:
        if _stored_login() is None:
            raise ValueError(NO_ACCOUNT)
        return ONE(base_url=IBL_OPENALYX_URL, silent=True, cache_dir=cache_dir)
    if password is None and token is None:
        raise ValueError(f"password: no password (or token) for the IBL account {username!r}; pass --password "
                         "or set ALYX_PASSWORD (ALYX_TOKEN for an account without a password)")
    import one.params
    import requests

    with one_settings_in(cache_dir / ONE_SETTINGS_FOLDER):
        one.params.setup(client=IBL_OPENALYX_URL, silent=True, username=username, cache_dir=cache_dir,
                         make_default=True)
        try:
            return ONE(base_url=IBL_OPENALYX_URL, username=username, password=password, token=token, silent=True,
                       cache_dir=cache_dir)
        except requests.HTTPError as err:
            raise ValueError(f"the IBL server refused the login of {username!r} ({err}); check the username and "
                             f"password, or create an account at {IBL_SIGNUP_URL}") from None


def reference_trial_mask(trials, min_rt: float = 0.08, max_rt: float = 2.0,
                         max_trial_len: float = 10.0) -> np.ndarray:
    """The MtM reference's trial filter (``load_trials_and_mask``): bool (K,), True = kept.

    ``trials``: dict, ONE Bunch or DataFrame of (K,) columns (times in s). A trial is dropped if its
    reaction time ``firstMovement_times - stimOn_times`` is below ``min_rt`` or above ``max_rt``,
    if ``feedback_times - goCue_times > max_trial_len``, if any of stimOn_times, choice,
    feedback_times, probabilityLeft, firstMovement_times, feedbackType is NaN, or if ``choice == 0``
    (no response). As in the reference (a pandas query), a NaN goCue time drops nothing.
    """
    missing = [name for name in TRIAL_FIELDS if name not in trials]
    if missing:
        raise ValueError(f"trials: missing the column(s) {missing}, needed by the reference trial filter")
    column = {name: np.asarray(trials[name], dtype=np.float64) for name in TRIAL_FIELDS}
    lengths = {value.shape for value in column.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"trials: expected 1-d columns of one length, got shapes {sorted(lengths)}")
    reaction_time = column["firstMovement_times"] - column["stimOn_times"]
    keep = (reaction_time >= min_rt) & (reaction_time <= max_rt)
    keep &= ~(column["feedback_times"] - column["goCue_times"] > max_trial_len)
    for name in TRIAL_NAN_FIELDS:
        keep &= ~np.isnan(column[name])
    return keep & (column["choice"] != 0)


def spike_sorting_collections(one, eid: str, spike_sorter: str | None = None,
                              probes=None) -> dict[str, str]:
    """{probe name: spike-sorting collection} of a session, probes in name order.

    Candidates are the collections ``alf/<probe>`` and ``alf/<probe>/<sorter>`` holding a
    ``spikes.times`` dataset. Per probe, ``spike_sorter`` ('' for the bare probe folder) picks one;
    otherwise the first of :data:`SORTER_PREFERENCE` present, else the first other sorter by name.
    ``probes`` restricts the probes (each must exist).
    """
    from one.alf.path import rel_path_parts

    found: dict[str, list[str]] = {}
    for rel_path in one.list_datasets(eid, filename="spikes.times*"):
        match = _PROBE_COLLECTION.match(rel_path_parts(rel_path)[0] or "")
        if match:
            found.setdefault(match.group(1), []).append(match.group(2) or "")
    if not found:
        raise ValueError(f"{eid}: no spike-sorting collection (alf/probeXX[/sorter]/spikes.times) among the "
                         f"collections {sorted(one.list_collections(eid))}")
    if probes is not None:
        absent = sorted(set(probes) - set(found))
        if absent:
            raise ValueError(f"{eid}: no spike sorting for probe(s) {absent}; have {sorted(found)}")
        found = {pname: found[pname] for pname in probes}
    chosen = {}
    for pname in sorted(found):
        sorters = sorted(set(found[pname]))
        if spike_sorter is not None:
            if spike_sorter not in sorters:
                raise ValueError(f"{eid}: no spike sorting {spike_sorter!r} for {pname}; have {sorters}")
            sorter = spike_sorter
        else:
            sorter = next((s for s in SORTER_PREFERENCE if s in sorters), sorters[0])
        chosen[pname] = f"alf/{pname}/{sorter}" if sorter else f"alf/{pname}"
    return chosen


def _load_object(one, eid: str, obj: str, collection: str, attributes: tuple[str, ...],
                 optional: tuple[str, ...] = (), whole: bool = False) -> dict:
    """ONE ``load_object``: the ``attributes`` (all required) and ``optional`` ones, or all if ``whole``."""
    from one.alf.exceptions import ALFError

    try:
        loaded = one.load_object(eid, obj, collection=collection,
                                 attribute=None if whole else list(attributes + optional))
    except ALFError as err:
        raise ValueError(f"{eid}: dataset {collection}/{obj}.{attributes[0]} not found "
                         f"(ONE: {type(err).__name__})") from err
    absent = [name for name in attributes if name not in loaded]
    if absent:
        raise ValueError(f"{eid}: dataset {collection}/{obj}.{absent[0]} not found")
    return loaded


def _load_probe(one, eid: str, collection: str) -> dict:
    """Spike times (S,) s, cluster (S,), Allen id per cluster (C,) and cluster uuids of one probe."""
    spikes = _load_object(one, eid, "spikes", collection, ("times", "clusters"))
    clusters = _load_object(one, eid, "clusters", collection, ("channels",), optional=("uuids",))
    channels = _load_object(one, eid, "channels", collection, ("brainLocationIds_ccf_2017",))
    cluster_channels = np.asarray(clusters["channels"], dtype=np.int64)
    atlas_ids = np.asarray(channels["brainLocationIds_ccf_2017"], dtype=np.int64)
    times, spike_clusters = np.asarray(spikes["times"], np.float64), np.asarray(spikes["clusters"], np.int64)
    if times.shape != spike_clusters.shape:
        raise ValueError(f"{eid}: {collection}/spikes.times {times.shape} and spikes.clusters "
                         f"{spike_clusters.shape} differ in length")
    if spike_clusters.size and (spike_clusters.min() < 0 or spike_clusters.max() >= cluster_channels.size):
        raise ValueError(f"{eid}: {collection}/spikes.clusters refers to clusters beyond the "
                         f"{cluster_channels.size} of clusters.channels")
    if cluster_channels.size and (cluster_channels.min() < 0 or cluster_channels.max() >= atlas_ids.size):
        raise ValueError(f"{eid}: {collection}/clusters.channels refers to channels beyond the "
                         f"{atlas_ids.size} of channels.brainLocationIds_ccf_2017")
    uuids = clusters.get("uuids")
    if uuids is not None:
        uuids = [str(u) for u in np.asarray(uuids["uuids"] if hasattr(uuids, "columns") else uuids).ravel()]
        if len(uuids) != cluster_channels.size:
            raise ValueError(f"{eid}: {collection}/clusters.uuids has {len(uuids)} rows for "
                             f"{cluster_channels.size} clusters")
    return dict(times=times, clusters=spike_clusters, atlas_ids=atlas_ids[cluster_channels], uuids=uuids)


def _region_names(eid: str, atlas_ids: np.ndarray, region_mapping: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw Allen acronyms, acronyms under ``region_mapping``) of Allen ids (N,)."""
    from iblatlas.regions import BrainRegions

    regions = BrainRegions()
    unknown = np.unique(atlas_ids[~np.isin(atlas_ids, regions.id)])
    if unknown.size:
        raise ValueError(f"{eid}: channels.brainLocationIds_ccf_2017 holds ids {unknown[:10].tolist()} "
                         "unknown to the Allen ontology (iblatlas BrainRegions)")
    return regions.id2acronym(atlas_ids), regions.id2acronym(atlas_ids, mapping=region_mapping)


def _trial_behavior(eid: str, trials, kept: np.ndarray) -> dict[str, np.ndarray]:
    """Per-trial variables (K,) of the kept trials, from the trials table."""
    needed = ("choice", "probabilityLeft", "contrastLeft", "contrastRight", "feedbackType")
    missing = [name for name in needed if name not in trials]
    if missing:
        raise ValueError(f"{eid}: dataset alf/trials.{missing[0]} not found (needed for the behaviour)")
    column = {name: np.asarray(trials[name], dtype=np.float64)[kept] for name in needed}
    if "rewardVolume" in trials:
        reward = np.asarray(trials["rewardVolume"], dtype=np.float64)[kept] > 1
    else:
        reward = column["feedbackType"] == 1
    left, right = column["contrastLeft"], column["contrastRight"]
    return {
        "choice": column["choice"].astype(np.int64),
        "block": column["probabilityLeft"],
        "reward": reward.astype(np.int64),
        "contrast": np.nan_to_num(right) - np.nan_to_num(left),
        "stim_side": np.where(~np.isnan(right), 1, np.where(~np.isnan(left), -1, 0)).astype(np.int64),
        "reaction_time": (np.asarray(trials["firstMovement_times"], np.float64)
                          - np.asarray(trials["stimOn_times"], np.float64))[kept],
    }


def _motion_energy(one, eid: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(camera side, frame times (F,) s, ROI motion energy (F,)): left camera, else right camera."""
    reasons = []
    for side in ("left", "right"):
        try:
            camera = _load_object(one, eid, f"{side}Camera", "alf", ("times", "ROIMotionEnergy"))
        except ValueError as err:
            reasons.append(str(err).removeprefix(f"{eid}: "))
            continue
        times, energy = np.ravel(camera["times"]), np.ravel(camera["ROIMotionEnergy"])
        if times.shape == energy.shape:
            return side, times, energy
        reasons.append(f"alf/{side}Camera.times {times.shape} and ROIMotionEnergy {energy.shape} differ in length")
    raise ValueError(f"{eid}: whisker_me needs the left or right camera's ROIMotionEnergy: " + "; ".join(reasons))


def load_ibl_session(eid, one=None, *, spike_sorter: str | None = None, probes=None,
                     align_event: str = "stimOn_times", window: tuple[float, float] = (-0.5, 1.5),
                     bin_size: float = 0.02, region_mapping: str = "Beryl",
                     behavior=("whisker_me", "wheel_speed"), min_rt: float = 0.08, max_rt: float = 2.0,
                     max_trial_len: float = 10.0, split_seed: int = 42) -> Session:
    """One IBL session as a :class:`~mtm.data.Session` of spike counts (K trials, T bins, N neurons).

    ``one``: a ONE client, remote (:func:`ibl_one`) or local. ``spike_sorter`` / ``probes``:
    see :func:`spike_sorting_collections`. ``window`` (s, relative to ``align_event``) and
    ``bin_size`` (s) give T bins; trials failing :func:`reference_trial_mask` (or whose
    ``align_event`` is NaN) are dropped. Regions: Allen acronyms mapped with ``region_mapping``
    ("Beryl", "Cosmos", or "Allen" = raw).

    Behaviour, always: ``choice`` (-1/+1), ``block`` (probabilityLeft), ``reward`` (1 if
    rewardVolume > 1 uL, or feedbackType == 1 without rewardVolume), ``contrast`` (contrastRight -
    contrastLeft, NaN as 0: positive = stimulus on the right; the reference computes
    -(contrastLeft + contrastRight), losing the side), ``stim_side`` (+1 right, -1 left, 0 if neither
    contrast is recorded) and ``reaction_time`` (firstMovement - stimOn, s). Per bin (K, T), if named
    in ``behavior``: ``whisker_me`` (left-camera ROIMotionEnergy at the right bin edges, right camera
    if the left one is missing; NaN where the camera has no frames) and ``wheel_speed`` (rad/s).

    ``meta``: source, one_version, collections and spike_sorter per probe, region_mapping,
    trial_filter, trial_numbers (kept rows of the trials table), camera, and per neuron (lists of N)
    ``neurons`` = {probe, cluster_id, cluster_uuid (None without clusters.uuids), allen_acronym}.
    """
    from one.alf.exceptions import ALFError

    behavior = (behavior,) if isinstance(behavior, str) else tuple(behavior)
    if region_mapping not in REGION_MAPPINGS:
        raise ValueError(f"{eid}: unknown region_mapping {region_mapping!r}; expected one of {REGION_MAPPINGS}")
    unknown = sorted(set(behavior) - set(PER_BIN_BEHAVIORS))
    if unknown:
        raise ValueError(f"{eid}: unknown per-bin behaviour(s) {unknown}; expected some of {PER_BIN_BEHAVIORS}")
    if one is None:
        check_eid(eid)
        raise ValueError(f"{eid}: one: expected a ONE client, e.g. mtm.data.ibl.ibl_one(cache_dir, username=..., "
                         "password=...) for the IBL public server, or ONE(cache_dir=..., mode='local')")
    try:
        eid = str(one.to_eid(eid))
    except (ValueError, ALFError) as err:
        raise ValueError(f"{eid}: ONE does not know this session ({err})") from err

    collections = spike_sorting_collections(one, eid, spike_sorter, probes)
    loaded = {pname: _load_probe(one, eid, collection) for pname, collection in collections.items()}
    offsets = np.cumsum([0] + [probe["atlas_ids"].size for probe in loaded.values()])
    spike_times = np.concatenate([probe["times"] for probe in loaded.values()])
    spike_neurons = np.concatenate([probe["clusters"] + offset for probe, offset in zip(loaded.values(), offsets)])
    if offsets[-1] == 0 or spike_times.size == 0:
        raise ValueError(f"{eid}: no spikes (spikes.times) or no clusters in {list(collections.values())}")
    atlas_ids = np.concatenate([probe["atlas_ids"] for probe in loaded.values()])
    allen, regions = _region_names(eid, atlas_ids, region_mapping)

    trials = _load_object(one, eid, "trials", "alf", (align_event,), whole=True)
    try:
        kept = reference_trial_mask(trials, min_rt, max_rt, max_trial_len)
    except ValueError as err:
        raise ValueError(f"{eid}: alf/{err}") from err
    kept &= np.isfinite(np.asarray(trials[align_event], dtype=np.float64))
    if not kept.any():
        raise ValueError(f"{eid}: no trial left of {kept.size} in alf/trials after the reference filter "
                         f"(min_rt={min_rt}, max_rt={max_rt}, max_trial_len={max_trial_len})")
    starts, n_bins = binning.trial_windows(np.asarray(trials[align_event], np.float64)[kept], window, bin_size)
    counts = binning.bin_spikes(spike_times, spike_neurons, int(offsets[-1]), starts, n_bins, bin_size)

    values = _trial_behavior(eid, trials, kept)
    camera = None
    if "whisker_me" in behavior:
        camera, frame_times, energy = _motion_energy(one, eid)
        values["whisker_me"] = binning.interpolate_to_bins(frame_times, energy, starts, n_bins, bin_size)
    if "wheel_speed" in behavior:
        wheel = _load_object(one, eid, "wheel", "alf", ("timestamps", "position"))
        values["wheel_speed"] = binning.speed_in_bins(wheel["timestamps"], wheel["position"], starts,
                                                      n_bins, bin_size)

    meta = {
        "source": "ibl", "one_version": version("ONE-api"),
        "collections": collections,
        "spike_sorter": {pname: "/".join(collection.split("/")[2:]) for pname, collection in collections.items()},
        "region_mapping": region_mapping,
        "trial_filter": {"min_rt": min_rt, "max_rt": max_rt, "max_trial_len": max_trial_len,
                         "n_trials_total": int(kept.size), "n_trials_kept": int(kept.sum())},
        "trial_numbers": np.flatnonzero(kept).tolist(),
        "camera": camera,
        "neurons": {
            "probe": [pname for pname, probe in loaded.items() for _ in range(probe["atlas_ids"].size)],
            "cluster_id": [c for probe in loaded.values() for c in range(probe["atlas_ids"].size)],
            "cluster_uuid": [u for probe in loaded.values()
                             for u in (probe["uuids"] or [None] * probe["atlas_ids"].size)],
            "allen_acronym": allen.tolist(),
        },
    }
    return Session(eid, counts, regions, behavior=values, splits=split_trials(counts.shape[0], seed=split_seed),
                   bin_size=bin_size, align={"event": align_event, "window": window}, meta=meta)


def save_ibl_sessions(eids, out_dir, one=None, force: bool = False, **kwargs) -> list[Path]:
    """Load every eid with :func:`load_ibl_session` (``kwargs`` passed on) and save ``<out_dir>/<eid>.npz``.

    Sessions are saved one by one (atomically, :meth:`Session.save`), so when an eid fails the
    earlier files are complete; the failure is raised with the eid. A session file already in
    ``out_dir`` is kept and refused (``ValueError``) unless ``force``. Returns the written paths.
    """
    if one is None:
        raise ValueError("one: expected a ONE client, e.g. mtm.data.ibl.ibl_one(cache_dir, username=..., "
                         "password=...) for the IBL public server, or ONE(cache_dir=..., mode='local')")
    out_dir = Path(out_dir)
    for eid in eids:
        refuse_existing(out_dir / f"{safe_name(eid)}.npz", force, "session file")
    written = []
    for eid in eids:
        try:
            session = load_ibl_session(eid, one, **kwargs)
        except ValueError as err:
            raise ValueError(f"save_ibl_sessions: session {eid} failed after {len(written)} saved in "
                             f"{out_dir}: {err}") from err
        written.append(session.save(refuse_existing(out_dir / f"{safe_name(session.eid)}.npz", force,
                                                    "session file")))
    return written

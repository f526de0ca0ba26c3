"""IBL loading through ONE, offline: the reference trial filter, ALF caches opened in local mode,
the real-data fixture, the round trip Session -> ALF -> Session, and every bad input."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtm.data import Session
from mtm.data.alf import build_one_cache, real_fixture_alf, session_eid, session_to_alf, write_alf_session
from mtm.data.ibl import load_ibl_session, reference_trial_mask, save_ibl_sessions

REGIONS = ("VISa", "CA1", "DG", "LP", "PO")


@pytest.fixture(scope="module", autouse=True)
def offline_one_env(tmp_path_factory):
    """A HOME for ONE's settings, and iblutil's md5 with a 1 MB buffer instead of 256 MB.

    ``iblutil.io.hashfile`` allocates a 256 MB buffer for every file it hashes (~0.2 s each here);
    ONE hashes every dataset it loads. The hashes are the same with a small buffer.
    """
    from iblutil.io import hashfile

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        patch.setattr(hashfile, "BUF_SIZE", 2 ** 20)
        yield


def open_local(root):
    from one.api import ONE

    return ONE(cache_dir=root, mode="local")


def small_session(seed=0, n_trials=40, n_neurons=30, eid="handmade"):
    """A hand-made session: 40 trials x 100 bins x 30 neurons over the five repeated-site regions."""
    rng = np.random.default_rng(seed)
    side = rng.choice([-1, 1], n_trials)
    t = np.arange(100) * 0.02
    behavior = dict(
        choice=rng.choice([-1, 1], n_trials), block=rng.choice([0.2, 0.5, 0.8], n_trials),
        reward=rng.integers(0, 2, n_trials), stim_side=side,
        contrast=side * rng.choice([0.0, 0.0625, 0.25, 1.0], n_trials),
        reaction_time=rng.uniform(0.1, 1.5, n_trials),
        whisker_me=2.0 + np.sin(2 * np.pi * (0.5 * t[None] + rng.random((n_trials, 1)))),
        wheel_speed=np.abs(rng.normal(0, 2, (n_trials, 100))),
    )
    return Session(eid, rng.poisson(0.3, (n_trials, 100, n_neurons)), np.repeat(REGIONS, n_neurons // 5),
                   behavior=behavior, align={"event": "stimOn_times", "window": (-0.5, 1.5)})


# ------------------------------------------------------------------------------ trial filter
def test_reference_trial_mask_applies_each_rule():
    nan = np.nan
    trials = pd.DataFrame({
        # kept, rt<min, rt>max, long trial, NaN stimOn, NaN choice, NaN feedback, NaN pLeft,
        # NaN firstMovement, NaN feedbackType, no choice, rt == min_rt, NaN goCue (kept, as the reference)
        "stimOn_times":        [0, 0,    0, 0,  nan, 0,   0,   0,   0,   0,   0,   0,    0],
        "firstMovement_times": [.3, .05, 2.5, .3, .3, .3,  .3,  .3,  nan, .3,  .3,  .08,  .3],
        "goCue_times":         [0, 0,    0, 0,  0,   0,   0,   0,   0,   0,   0,   0,    nan],
        "feedback_times":      [.5, .5,  3, 11, .5,  .5,  nan, .5,  .5,  .5,  .5,  .5,   .5],
        "choice":              [1, 1,    -1, 1, 1,   nan, 1,   1,   1,   1,   0,   -1,   1],
        "probabilityLeft":     [.5, .5,  .5, .5, .5, .5,  .5,  nan, .5,  .5,  .5,  .2,   .8],
        "feedbackType":        [1, 1,    1, 1,  1,   1,   1,   1,   1,   nan, -1,  1,    1],
    })
    expected = [True] + [False] * 10 + [True, True]
    assert reference_trial_mask(trials).tolist() == expected
    assert reference_trial_mask({k: trials[k].to_numpy() for k in trials}).tolist() == expected
    assert reference_trial_mask(trials, min_rt=0.0, max_rt=3.0, max_trial_len=20.0)[[1, 2, 3]].all()
    with pytest.raises(ValueError, match="goCue_times"):
        reference_trial_mask(trials.drop(columns="goCue_times"))


# ------------------------------------------------------------------------------ real fixture
@pytest.fixture(scope="module")
def real_one(real_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("real_alf")
    path = real_fixture_alf(root, real_data)
    eid = build_one_cache(root)[path.resolve()]
    return open_local(root), eid, path


def test_real_fixture_loads_through_one_local(real_data, real_one):
    one, eid, _ = real_one
    session = load_ibl_session(eid, one=one)
    folder = real_data / "ibl_brainbox_fixtures"
    ephys = np.load(folder / "ephys_test.npz")
    rows = pd.read_parquet(folder / "trials_test_SWC_054.pqt")
    rows = rows[rows["date"] == "2020-09-01"].iloc[150:195]
    real_rt = (rows["response_times"] - rows["stimOn_times"]).to_numpy()
    kept = np.flatnonzero((real_rt >= 0.08) & (real_rt <= 2.0))
    assert 0 < kept.size < 45
    assert session.meta["trial_numbers"] == kept.tolist()
    assert session.spikes.shape == (kept.size, 100, 289)

    unit_ids = np.unique(ephys["spike_clusters"])
    stim_on = one.load_object(eid, "trials", collection="alf")["stimOn_times"][kept]
    for k in (0, kept.size // 2, kept.size - 1):
        edges = stim_on[k] - 0.5 + np.arange(101) * 0.02
        for n in (0, 3, 144, 145, 200, 288):
            raw = ephys["spike_times"][ephys["spike_clusters"] == unit_ids[n]]
            assert np.array_equal(session.spikes[k, :, n], np.histogram(raw, edges)[0])
    assert session.spikes.sum() > 1000

    neurons = session.meta["neurons"]
    assert neurons["probe"].count("probe00") == 145 and neurons["probe"].count("probe01") == 144
    assert neurons["cluster_id"][145] == 0 and neurons["cluster_id"][-1] == 143
    assert session.meta["collections"] == {"probe00": "alf/probe00/pykilosort", "probe01": "alf/probe01/pykilosort"}
    allen = np.array(neurons["allen_acronym"])
    assert {"VISa5", "DG-mo", "CA1", "LP", "PO"} <= set(allen)
    assert set(session.regions) == {"VISa", "CA1", "DG", "LP", "PO", "root"}
    tract = np.isin(allen, ["alv", "scwm"])
    assert tract.any() and (session.regions[tract] == "root").all()
    assert (session.regions[np.char.startswith(allen, "VISa")] == "VISa").all()

    behavior = session.behavior
    assert np.array_equal(behavior["choice"], rows["choice"].to_numpy()[kept])
    assert np.array_equal(behavior["block"], rows["probabilityLeft"].to_numpy()[kept])
    assert np.array_equal(behavior["reward"], (rows["feedbackType"].to_numpy()[kept] == 1).astype(int))
    right, left = rows["contrastRight"].to_numpy()[kept], rows["contrastLeft"].to_numpy()[kept]
    assert np.array_equal(behavior["stim_side"], np.where(np.isnan(right), -1, 1))
    assert np.allclose(behavior["contrast"], np.nan_to_num(right) - np.nan_to_num(left))
    assert np.allclose(behavior["reaction_time"], real_rt[kept])
    for key in ("whisker_me", "wheel_speed"):
        assert behavior[key].shape == (kept.size, 100) and np.isfinite(behavior[key]).all()
    assert behavior["wheel_speed"].max() > 1.0 and (behavior["wheel_speed"] >= 0).all()
    assert session.meta["camera"] == "left"


def test_real_fixture_files_are_valid_alf(real_one):
    from one.alf.spec import is_valid

    one, eid, path = real_one
    files = [f.relative_to(path).as_posix() for f in path.rglob("*.*") if f.name != "README.md"]
    assert len(files) == 16 and all(is_valid(f.split("/")[-1]) for f in files)
    assert sorted(one.list_datasets(eid)) == sorted(files)
    assert "Made up, so this is not an IBL session" in (path / "README.md").read_text()


# ------------------------------------------------------------------------------ round trip and bad input
@pytest.fixture(scope="module")
def alf_cache(tmp_path_factory):
    """One cache holding the complete hand-made session and variants with something missing."""
    root = tmp_path_factory.mktemp("alf")
    complete = small_session()
    paths = {"complete": session_to_alf(complete, root, subject="complete", n_probes=2)}
    for name in ("no_sorting", "no_channels", "no_trials", "no_behaviour", "no_movement_column"):
        paths[name] = session_to_alf(complete, root, subject=name)
    shutil.rmtree(paths["no_sorting"] / "alf/probe00")
    (paths["no_channels"] / "alf/probe00/pykilosort/channels.brainLocationIds_ccf_2017.npy").unlink()
    for f in (paths["no_trials"] / "alf").glob("_ibl_trials.*"):
        f.unlink()
    for f in [*(paths["no_behaviour"] / "alf").glob("*wheel.*"), *(paths["no_behaviour"] / "alf").glob("*Camera.*")]:
        f.unlink()
    table = paths["no_movement_column"] / "alf/_ibl_trials.table.pqt"
    pd.read_parquet(table).drop(columns="firstMovement_times").to_parquet(table, index=False)
    silent = complete.replace(spikes=np.zeros_like(complete.spikes))
    paths["no_spikes"] = session_to_alf(silent, root, subject="no_spikes")
    slow = complete.replace(behavior={**complete.behavior, "reaction_time": np.full(40, 2.5)})
    paths["all_filtered"] = session_to_alf(slow, root, subject="all_filtered")
    paths["bare_probe"] = session_to_alf(complete, root, subject="bare_probe", sorter="")
    paths["two_sorters"] = session_to_alf(complete, root, subject="two_sorters")
    shutil.copytree(paths["two_sorters"] / "alf/probe00/pykilosort", paths["two_sorters"] / "alf/probe00/iblsorter")
    eids = build_one_cache(root)
    return open_local(root), {name: eids[path.resolve()] for name, path in paths.items()}, complete


def check_round_trip(loaded, original):
    assert np.array_equal(loaded.spikes, original.spikes)
    assert np.array_equal(loaded.regions, original.regions)
    for key in ("choice", "reward", "stim_side"):
        assert np.array_equal(loaded.behavior[key], original.behavior[key]), key
    for key in ("block", "contrast", "reaction_time", "wheel_speed"):
        assert np.allclose(loaded.behavior[key], original.behavior[key], rtol=1e-9, atol=1e-6), key
    whisker, expected = loaded.behavior["whisker_me"], original.behavior["whisker_me"]
    assert np.corrcoef(whisker.ravel(), expected.ravel())[0, 1] > 0.95
    assert np.nanmean(np.abs(whisker - expected)) < 0.1 * np.mean(np.abs(expected))


def test_session_round_trip_through_alf(alf_cache):
    one, eids, original = alf_cache
    loaded = load_ibl_session(eids["complete"], one=one)
    check_round_trip(loaded, original)
    assert loaded.meta["trial_numbers"] == list(range(40))
    assert loaded.meta["neurons"]["probe"] == ["probe00"] * 15 + ["probe01"] * 15
    assert loaded.align == {"event": "stimOn_times", "window": (-0.5, 1.5)}
    raw = load_ibl_session(eids["complete"], one=one, region_mapping="Allen", behavior=())
    assert np.array_equal(raw.regions, original.regions) and list(raw.behavior) == [
        "choice", "block", "reward", "contrast", "stim_side", "reaction_time"]
    cosmos = load_ibl_session(eids["complete"], one=one, region_mapping="Cosmos", behavior=())
    assert set(cosmos.regions) == {"Isocortex", "HPF", "TH"}


def test_synthetic_session_round_trip(tmp_path):
    from mtm.data.synthetic import synthetic_session

    original = synthetic_session(0, preset="small")
    path = session_to_alf(original, tmp_path)
    eid = build_one_cache(tmp_path)[path.resolve()]
    loaded = load_ibl_session(eid, one=open_local(tmp_path))
    assert loaded.meta["trial_numbers"] == list(range(original.n_trials))
    check_round_trip(loaded, original)


def test_sorter_preference_and_choice(alf_cache):
    one, eids, original = alf_cache
    preferred = load_ibl_session(eids["two_sorters"], one=one, behavior=())
    assert preferred.meta["collections"] == {"probe00": "alf/probe00/iblsorter"}
    assert preferred.meta["spike_sorter"] == {"probe00": "iblsorter"}
    chosen = load_ibl_session(eids["two_sorters"], one=one, behavior=(), spike_sorter="pykilosort")
    assert chosen.meta["collections"] == {"probe00": "alf/probe00/pykilosort"}
    bare = load_ibl_session(eids["bare_probe"], one=one, behavior=())
    assert bare.meta["collections"] == {"probe00": "alf/probe00"} and bare.meta["spike_sorter"] == {"probe00": ""}
    assert np.array_equal(bare.spikes, original.spikes)
    only = load_ibl_session(eids["complete"], one=one, behavior=(), probes=["probe01"])
    assert np.array_equal(only.spikes, original.spikes[:, :, 15:])


@pytest.mark.parametrize("variant, kwargs, message", [
    ("no_sorting", {}, "no spike-sorting collection"),
    ("no_spikes", {}, "no spikes"),
    ("no_channels", {}, r"channels\.brainLocationIds_ccf_2017"),
    ("no_trials", {}, r"alf/trials\.stimOn_times not found"),
    ("no_movement_column", {}, "firstMovement_times"),
    ("no_behaviour", {"behavior": ("wheel_speed",)}, r"alf/wheel\.timestamps"),
    ("no_behaviour", {"behavior": ("whisker_me",)}, "ROIMotionEnergy"),
    ("complete", {"region_mapping": "Swansea"}, "region_mapping"),
    ("complete", {"behavior": ("pupil",)}, "pupil"),
    ("complete", {"spike_sorter": "kilosort2"}, "kilosort2"),
    ("complete", {"probes": ["probe07"]}, "probe07"),
    ("all_filtered", {}, "no trial left"),
])
def test_bad_input_names_eid_and_dataset(alf_cache, variant, kwargs, message):
    one, eids, _ = alf_cache
    with pytest.raises(ValueError, match=message) as info:
        load_ibl_session(eids[variant], one=one, **kwargs)
    assert eids[variant] in str(info.value)


def test_load_is_quiet(alf_cache, caplog):
    """Hashes and default revisions are in the cache: no md5 or revision warnings from ONE."""
    from one.alf.exceptions import ALFWarning

    one, eids, _ = alf_cache
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_ibl_session(eids["complete"], one=one)
    assert not [w for w in caught if issubclass(w.category, ALFWarning)]
    assert "mismatch" not in caplog.text


def test_unknown_eid(alf_cache):
    one, _, _ = alf_cache
    unknown = "00000000-1111-2222-3333-444444444444"
    with pytest.raises(ValueError, match=f"{unknown}: ONE does not know"):
        load_ibl_session(unknown, one=one)


def test_write_alf_session_refuses_bad_input(tmp_path):
    trials = {"stimOn_times": np.arange(3.0)}
    session = dict(lab="lab", subject="mouse", date="2024-01-01", number=1, trials=trials)
    probe = dict(spike_times=[0.1, 0.2], spike_clusters=[0, 2], cluster_channels=[0, 1], channel_atlas_ids=[382, 382])
    with pytest.raises(ValueError, match="spike_clusters must index"):
        write_alf_session(tmp_path, probes={"probe00": probe}, **session)
    with pytest.raises(ValueError, match="not a valid ALF folder"):
        write_alf_session(tmp_path, probes={"probe 00": {}}, **session)
    write_alf_session(tmp_path, probes={}, **session)
    with pytest.raises(FileExistsError):
        write_alf_session(tmp_path, probes={}, **session)
    with pytest.raises(ValueError, match="Allen ontology"):
        session_to_alf(small_session().replace(regions=["VISa"] * 29 + ["V1"]), tmp_path / "x")


def test_build_one_cache_eids(tmp_path):
    path = session_to_alf(small_session(), tmp_path, subject="mouse")
    relative = "mtm/Subjects/mouse/2024-01-01/001"
    assert build_one_cache(tmp_path) == build_one_cache(tmp_path) == {path.resolve(): session_eid(relative)}
    given = "5dcee0eb-b34d-4652-acc3-d10afc6eae68"
    assert build_one_cache(tmp_path, eids={relative: given}) == {path.resolve(): given}
    one = open_local(tmp_path)
    assert [str(eid) for eid in one.search()] == [given] and one.eid2path(given) == path.resolve()
    with pytest.raises(ValueError, match="no ALF session"):
        build_one_cache(tmp_path, eids={"mtm/Subjects/rat/2024-01-01/001": given})


# ------------------------------------------------------------------------------ saving many
def test_save_ibl_sessions(alf_cache, tmp_path):
    one, eids, original = alf_cache
    written = save_ibl_sessions([eids["complete"], eids["bare_probe"]], tmp_path, one=one, behavior=())
    assert [p.name for p in written] == [f"{eids['complete']}.npz", f"{eids['bare_probe']}.npz"]
    assert np.array_equal(Session.load(written[0]).spikes, original.spikes)
    assert Session.load(written[1]) == load_ibl_session(eids["bare_probe"], one=one, behavior=())

    out = tmp_path / "partial"
    with pytest.raises(ValueError, match=f"{eids['no_channels']}.*after 1 saved"):
        save_ibl_sessions([eids["complete"], eids["no_channels"]], out, one=one)
    assert [p.name for p in out.iterdir()] == [f"{eids['complete']}.npz"]
    assert Session.load(out / f"{eids['complete']}.npz") == load_ibl_session(eids["complete"], one=one)


# ------------------------------------------------------------------------------ chapter 7's call
def test_chapter_7_call_loads_a_heldout_session_through_ibl_one(tmp_path, monkeypatch):
    """Chapter 7's released-weights cell runs ``load_ibl_session(heldout_eids()[0], ibl_one())`` (the
    account in ALYX_LOGIN / ALYX_PASSWORD, no cache folder given). That exact call, with the IBL server
    replaced by a local ALF cache that holds a session under that eid: ibl_one takes its default cache
    folder, and the session loads."""
    import one.api

    from mtm.data import heldout_eids
    from mtm.data.ibl import default_one_cache, ibl_one

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ALYX_LOGIN", "reader")
    monkeypatch.setenv("ALYX_PASSWORD", "secret")
    original = small_session()
    alf = tmp_path / "alf"
    session_to_alf(original, alf, subject="mouse")
    build_one_cache(alf, eids={"mtm/Subjects/mouse/2024-01-01/001": heldout_eids()[0]})
    made = {}
    make_local = one.api.ONE

    def server_as_local_cache(**kwargs):
        made.update(kwargs)
        return make_local(cache_dir=alf, mode="local")

    monkeypatch.setattr(one.api, "ONE", server_as_local_cache)
    session = load_ibl_session(heldout_eids()[0], ibl_one())
    assert session.eid == heldout_eids()[0] and np.array_equal(session.spikes, original.spikes)
    assert made["username"] == "reader" and made["password"] == "secret"
    assert Path(made["cache_dir"]) == default_one_cache() == home / ".cache" / "mtm" / "one"


# ------------------------------------------------------------------------------ BrainWideBench's sessions
def test_data_ibl_loads_the_brainwidebench_eval_sessions(tmp_path, capsys):
    """``mtm data ibl --sessions bwb`` loads the benchmark's 29 eval recordings through ONE, as it loads
    the paper's: here from a local ALF cache holding a small session under each of their eids."""
    from mtm.cli import main
    from mtm.data import bwb_eval_eids

    eids = bwb_eval_eids()
    alf, originals = tmp_path / "alf", {}
    for i, eid in enumerate(eids):
        originals[eid] = small_session(seed=i, n_trials=4, n_neurons=5, eid=eid)
        session_to_alf(originals[eid], alf, subject=f"mouse{i:02d}")
    build_one_cache(alf, eids={f"mtm/Subjects/mouse{i:02d}/2024-01-01/001": eid for i, eid in enumerate(eids)})
    out = tmp_path / "sessions"
    assert main(["data", "ibl", "--sessions", "bwb", "--local", "--cache-dir", str(alf), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / f"{eid}.npz") for eid in eids]
    for eid in (eids[0], eids[-1]):
        loaded = Session.load(out / f"{eid}.npz")
        assert loaded.eid == eid and np.array_equal(loaded.spikes, originals[eid].spikes)

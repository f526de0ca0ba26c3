import json

import numpy as np
import pytest

from mtm.data import Session, split_trials


def make(n_trials=20, n_bins=100, n_neurons=6, **kwargs):
    rng = np.random.default_rng(0)
    fields = dict(eid="s0", spikes=rng.poisson(0.3, (n_trials, n_bins, n_neurons)),
                  regions=["CA1", "CA1", "DG", "LP", "LP", "LP"][:n_neurons])
    fields.update(kwargs)
    return Session(**fields)


def test_minimal_session_and_defaults():
    s = make()
    assert (s.n_trials, s.n_bins, s.n_neurons) == (20, 100, 6)
    assert s.spikes.dtype == np.uint8
    assert s.region_names == ["CA1", "DG", "LP"]
    assert s.region_counts() == {"CA1": 2, "DG": 1, "LP": 3}
    assert [len(s.splits[k]) for k in ("train", "val", "test")] == [14, 2, 4]
    assert s.behavior == {} and s.rates is None and s.bin_size == 0.02
    with pytest.raises(ValueError):
        s.spikes[0, 0, 0] = 5  # arrays are read-only


def test_counts_stored_compactly():
    big = np.zeros((2, 100, 3), dtype=np.int64)
    big[0, 0, 0] = 300
    assert make(spikes=big, regions=["a", "b", "c"]).spikes.dtype == np.uint16
    as_float = make(spikes=np.ones((2, 100, 3)), regions=["a", "b", "c"])
    assert as_float.spikes.dtype == np.uint8 and as_float.spikes.sum() == 600


def test_split_trials_matches_reference_cut_points():
    splits = split_trials(828, seed=42)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [579, 83, 166]  # 5dcee0eb's sizes
    together = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(together), np.arange(828))
    assert all(np.all(np.diff(v) > 0) for v in splits.values())
    again = split_trials(828, seed=42)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    other = split_trials(828, seed=1)
    assert not np.array_equal(splits["test"], other["test"])


def test_repr_is_short_and_informative():
    s = make(behavior={"choice": np.ones(20, int)})
    text = repr(s)
    assert text.startswith("Session(eid='s0', trials=20 (train 14 / val 2 / test 4), bins=100 x 20 ms")
    assert "regions={CA1: 2, DG: 1, LP: 3}" in text and "behavior=[choice]" in text
    assert len(text) < 300


@pytest.mark.parametrize("change, message", [
    (dict(eid=""), "eid"),
    (dict(spikes=np.zeros((20, 100))), "spikes: expected a \\(trials, bins, neurons\\)"),
    (dict(spikes=np.zeros((0, 100, 6))), "spikes: expected at least one"),
    (dict(spikes=-np.ones((20, 100, 6))), "non-negative"),
    (dict(spikes=np.full((20, 100, 6), 0.5)), "whole numbers"),
    (dict(spikes=np.full((20, 100, 6), np.nan)), "finite"),
    (dict(spikes=np.full((20, 100, 6), "1")), "integer counts"),
    (dict(regions=["CA1"] * 5), "regions: expected one label per neuron"),
    (dict(regions=[1, 2, 3, 4, 5, 6]), "regions: expected strings"),
    (dict(regions=["CA1", "", "DG", "LP", "LP", "LP"]), "empty region label"),
    (dict(behavior={"choice": np.ones(19)}), "behavior\\['choice'\\]: expected shape \\(20,\\)"),
    (dict(behavior={"whisker_me": np.ones((20, 99))}), "behavior\\['whisker_me'\\]"),
    (dict(behavior={"choice": np.zeros(20)}), "choice.*-1, \\+1"),
    (dict(behavior={"reward": np.full(20, 2)}), "reward"),
    (dict(behavior={"speed": np.full(20, np.inf)}), "infinite"),
    (dict(behavior=[1, 2]), "behavior: expected a dict"),
    (dict(splits={"train": [0, 1, 2], "test": [2, 3]}), "overlaps"),
    (dict(splits={"train": [0, 25]}), "\\[0, 20\\)"),
    (dict(splits={"train": [-1]}), "\\[0, 20\\)"),
    (dict(splits={"train": [1, 1]}), "repeated"),
    (dict(splits={"training": [1]}), "unknown split names"),
    (dict(splits={"train": [0.5]}), "integer trial indices"),
    (dict(bin_size=0), "bin_size"),
    (dict(align={"event": "stimOn_times", "window": (-0.5, 1.0)}), "gives 75 bins"),
    (dict(align={"window": (0, 2)}), "align"),
    (dict(rates=np.ones((20, 100, 5))), "rates: expected the shape"),
    (dict(rates=-np.ones((20, 100, 6))), "rates"),
    (dict(meta={"x": object()}), "meta: must be JSON"),
])
def test_bad_input_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        make(**change)


def test_save_load_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(1)
    s = make(behavior={"choice": rng.choice([-1, 1], 20), "whisker_me": rng.random((20, 100)),
                       "block": np.where(rng.random(20) < 0.5, 0.2, np.nan)},
             rates=rng.random((20, 100, 6)), meta={"source": "test", "list": [1, 2]},
             align={"event": "stimOn_times", "window": (-0.5, 1.5)})
    path = s.save(tmp_path / "s0")
    assert path.name == "s0.npz"
    loaded = Session.load(path)
    assert loaded == s
    assert loaded.align == {"event": "stimOn_times", "window": (-0.5, 1.5)}
    with np.load(path, allow_pickle=False) as data:  # every array loads without pickle
        assert json.loads(str(data["header"]))["eid"] == "s0"
    assert list(tmp_path.iterdir()) == [path]


def test_save_is_atomic_and_keeps_the_old_file(tmp_path, monkeypatch):
    old = make(eid="old")
    path = old.save(tmp_path / "s.npz")

    def broken(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        make(eid="new").save(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]
    assert Session.load(path).eid == "old"


def test_load_validates_again(tmp_path):
    s = make()
    path = s.save(tmp_path / "s.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["regions"] = arrays["regions"][:3]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="regions"):
        Session.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable session file"):
        Session.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="no header"):
        Session.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        Session.load(tmp_path / "missing.npz")


def test_select_trials_and_resplit():
    s = make(behavior={"choice": np.repeat([-1, 1], 10)}, rates=np.ones((20, 100, 6)))
    test = s.select_trials("test")
    assert test.n_trials == 4 and list(test.splits["test"]) == [0, 1, 2, 3]
    assert len(test.splits["train"]) == 0
    assert np.array_equal(test.spikes, s.spikes[s.splits["test"]])
    assert np.array_equal(test.behavior["choice"], s.behavior["choice"][s.splits["test"]])
    picked = s.select_trials([3, 0])
    assert np.array_equal(picked.spikes[0], s.spikes[3])
    with pytest.raises(ValueError, match="no split named"):
        s.select_trials("holdout")
    with pytest.raises(ValueError, match="repeated"):
        s.select_trials([1, 1])
    other = s.resplit(seed=7)
    assert not np.array_equal(other.splits["train"], s.splits["train"])
    assert np.array_equal(other.spikes, s.spikes)


def test_bin_times_follow_the_alignment_window():
    s = make(align={"event": "stimOn_times", "window": (-0.5, 1.5)})
    assert np.allclose(s.bin_times()[[0, -1]], [-0.49, 1.49])

"""Importing the MtM reference's own checkpoints: the reference's outputs reproduced, hostile pickles
refused without running, damaged or foreign files refused, and an imported model fine-tuned further.

The fixture (installed with the package, ``mtm/data/fixtures/reference_checkpoint``, see its PROVENANCE.md) is a ``model_best.pt`` written
by the reference code itself, with that code's log-rates for fixed inputs under each prompt."""

import io
import json
import pickle
import re
import sys
import zipfile

import numpy as np
import pytest
import torch

from mtm.checkpoint import import_reference, load_model
from mtm.cli import main
from mtm.data import reference_checkpoint_dir, target_eids
from mtm.masking import PROMPT_IDS
from mtm.reference_import import RefusedGlobal, read_reference_pickle, reference_attention, reference_causal_mask

CHECKPOINT = "reference_ndt1_stitch_prompting_small.pt"


@pytest.fixture(scope="module")
def fixture():
    folder = reference_checkpoint_dir(required=True)  # installed with the package
    meta = json.loads((folder / "reference_ndt1_outputs.json").read_text())
    outputs = np.load(folder / "reference_ndt1_outputs.npz")
    sessions = {s["eid"]: s["n_neurons"] for s in meta["sessions"]}
    return folder / CHECKPOINT, meta, outputs, sessions


def test_the_reference_outputs_are_reproduced_for_every_session_and_prompt(fixture):
    path, meta, outputs, sessions = fixture
    model, report = import_reference(path, sessions=sessions)
    cfg = model.cfg
    assert (cfg.hidden, cfg.n_layers, cfg.n_heads, cfg.mlp, cfg.n_channels, cfg.embed_mult, cfg.stitching) == \
        (64, 2, 4, 128, 48, 2, True)
    assert report.epoch == 39 and report.masking == "mtm" and report.prompted
    assert report.dropped == ["decoder.0.weight (48, 64)", "decoder.0.bias (48,)",
                              "encoder.embedder.embed_session.weight rows 2-39 (38 of 40, sessions not named)"]
    assert meta["prompt_order_in_reference"] == ["neuron", "causal", "inter-region", "intra-region"]
    for k, s in enumerate(meta["sessions"]):
        spikes = torch.as_tensor(outputs[f"s{k}_spikes"]).float()
        for mode in ("neuron", "intra-region", "inter-region"):
            with torch.no_grad():
                ours = model(spikes, s["eid"], prompt=PROMPT_IDS[mode]).numpy()
            np.testing.assert_allclose(ours, outputs[f"s{k}_{mode}_log_rates"], rtol=0, atol=1e-5, err_msg=mode)
        # causal: mtm's session and prompt tokens see no bin; the reference's see every bin, and that
        # leak of future bins is the one difference: with the reference's attention the outputs agree.
        reference = outputs[f"s{k}_causal_log_rates"]
        with torch.no_grad():
            strict = model(spikes, s["eid"], prompt=PROMPT_IDS["causal"], causal=True).numpy()
            with reference_attention(model):
                leaky = model(spikes, s["eid"], prompt=PROMPT_IDS["causal"], causal=True).numpy()
            assert "causal_mask" not in vars(model)
        assert np.abs(strict - reference).max() > 1e-3
        np.testing.assert_allclose(leaky, reference, rtol=0, atol=1e-5)
        # with mtm's attention no output depends on a later bin
        later = spikes.clone()
        later[:, 50:] = 0
        with torch.no_grad():
            cut = model(later, s["eid"], prompt=PROMPT_IDS["causal"], causal=True).numpy()
        np.testing.assert_allclose(cut[:, :50], strict[:, :50], rtol=0, atol=1e-5)


def test_the_saved_checkpoint_is_an_ordinary_mtm_checkpoint(fixture, tmp_path, capsys):
    path, meta, outputs, sessions = fixture
    out = tmp_path / "imported.safetensors"
    args = ["import-reference", str(path), "--out", str(out)]
    for eid, n in sessions.items():
        args += ["--session", f"{eid}={n}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "NDT1-stitch, 2 layers, 64 wide, 4 heads" in printed and "decoder.0.weight (48, 64)" in printed
    model, extra = load_model(out)
    assert extra["train"] == {"masking": "mtm", "prompted": True}
    assert model.session_ids == list(sessions)
    eid = meta["sessions"][1]["eid"]
    with torch.no_grad():
        ours = model(torch.as_tensor(outputs["s1_spikes"]).float(), eid, prompt=PROMPT_IDS["neuron"]).numpy()
    np.testing.assert_allclose(ours, outputs["s1_neuron_log_rates"], rtol=0, atol=1e-5)


def test_sessions_are_checked_against_the_checkpoint(fixture):
    path, meta, outputs, sessions = fixture
    eid = meta["sessions"][0]["eid"]
    with pytest.raises(ValueError, match=r"no stitcher for .*stitchers are for \[37, 52\] neurons"):
        import_reference(path, sessions={eid: 40})
    with pytest.raises(ValueError, match="not in the checkpoint's session table"):
        import_reference(path, sessions={"not-an-eid": 37})
    model, report = import_reference(path)  # no session named: the shared weights only
    assert model.session_ids == [] and any("for [37, 52] neurons" in d for d in report.dropped)


def test_an_imported_checkpoint_is_fine_tuned_further(fixture, tmp_path):
    path, meta, outputs, sessions = fixture
    data = tmp_path / "data"
    assert main(["data", "synthetic", "--n-sessions", "1", "--n-trials", "24", "--n-neurons", "20", "--out", str(data),
                 "--quiet"]) == 0
    imported = tmp_path / "imported.safetensors"
    assert main(["import-reference", str(path), "--out", str(imported)]) == 0
    assert main(["finetune", str(imported), "--data", str(data), "--epochs", "1", "--batch-size", "8",
                 "--out", str(tmp_path / "ft")]) == 0
    tuned, extra = load_model(tmp_path / "ft" / "best.safetensors")
    start, _ = load_model(imported)
    assert tuned.session_ids == ["synthetic-0000"] and extra["pretrained"] == str(imported)
    assert torch.isfinite(tuned.session_token.weight).all()
    assert not torch.equal(tuned.blocks[0].qkv.weight, start.blocks[0].qkv.weight)  # trained on


# ------------------------------------------------------------------ hostile and damaged files
def torch_archive(path, pickled: bytes, storages: dict | None = None):
    """A zip laid out as torch.save writes it, holding ``pickled`` as its data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def calling(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle of ``{"model": module.name(argument)}``: GLOBAL, then REDUCE."""
    text = argument.encode()
    return (b"\x80\x02}X\x05\x00\x00\x00modelc" + f"{module}\n{name}\n".encode() + b"X"
            + len(text).to_bytes(4, "little") + text + b"\x85Rs.")


@pytest.mark.parametrize("module, name, shown, command", [
    ("os", "system", "os.system", "touch {marker}"),
    ("posix", "system", "posix.system", "touch {marker}"),  # what pickle.dumps(os.system) names
    ("builtins", "eval", "builtins.eval", "open({marker!r}, 'w').close()"),
    ("__builtin__", "exec", "builtins.exec", "open({marker!r}, 'w').close()"),
    ("subprocess", "getoutput", "subprocess.getoutput", "touch {marker}"),
    ("subprocess", "Popen", "subprocess.Popen", "touch"),
])
def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, module, name, shown, command):
    marker = tmp_path / "marker"
    pickled = calling(module, name, command.format(marker=str(marker)))
    path = torch_archive(tmp_path / "model_best.pt", pickled)
    with pytest.raises(RefusedGlobal, match=rf"refused: the pickle calls {re.escape(shown)},"):
        import_reference(path)
    assert not marker.exists()
    assert main(["import-reference", str(path), "--out", str(tmp_path / "out.safetensors")]) == 2
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    if name != "Popen":  # the payload is live: an unrestricted unpickler runs it
        pickle.loads(pickled)
        assert marker.exists()


def test_named_classes_are_never_imported_and_unknown_calls_are_refused(tmp_path):
    # GLOBAL of a module that does not exist, instantiated (NEWOBJ) and given state (BUILD): an inert record
    record = b"\x80\x02}X\x05\x00\x00\x00modelcno_such_package_xyz.models\nNDT1\n)\x81}X\x01\x00\x00\x00a" \
             b"K\x01sbs."
    obj = read_reference_pickle(torch_archive(tmp_path / "a.pt", record))
    assert obj["model"].global_name == "no_such_package_xyz.models.NDT1" and obj["model"].attributes == {"a": 1}
    assert "no_such_package_xyz" not in sys.modules
    with pytest.raises(ValueError, match=r"not a reference NDT1 checkpoint \(its model is a no_such_package_xyz"):
        import_reference(tmp_path / "a.pt")
    # the same class called (REDUCE): an unknown callable, refused by name
    called = b"\x80\x02}X\x05\x00\x00\x00modelcmodels.ndt1\nhelper\nX\x02\x00\x00\x00rm\x85Rs."
    with pytest.raises(RefusedGlobal, match=r"calls models\.ndt1\.helper"):
        read_reference_pickle(torch_archive(tmp_path / "b.pt", called))
    # a storage type that is not one of torch's
    storage = b"\x80\x02(X\x07\x00\x00\x00storagecos\nsystem\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ."
    with pytest.raises(RefusedGlobal, match=r"unknown storage type os\.system"):
        read_reference_pickle(torch_archive(tmp_path / "c.pt", storage))


def test_truncated_and_foreign_files_are_refused_clearly(fixture, tmp_path, capsys):
    path = fixture[0]
    raw = path.read_bytes()
    (tmp_path / "half.pt").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match="not a complete torch checkpoint archive"):
        import_reference(tmp_path / "half.pt")
    with zipfile.ZipFile(path) as archive:  # a whole archive whose pickle stops half-way
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl"))
        cut = archive.read(pkl)
        cut = cut[:len(cut) // 2]
        with zipfile.ZipFile(tmp_path / "cut.pt", "w") as out:
            for name in names:
                out.writestr(name, cut if name == pkl else archive.read(name))
    with pytest.raises(ValueError, match="unreadable checkpoint pickle"):
        import_reference(tmp_path / "cut.pt")
    torch.save({"weight": torch.ones(3)}, tmp_path / "state.pt")  # a plain state dict
    with pytest.raises(ValueError, match="not a reference checkpoint"):
        import_reference(tmp_path / "state.pt")
    torch.save({"model": torch.nn.Linear(2, 3)}, tmp_path / "linear.pt")
    with pytest.raises(ValueError, match=r"its model is a torch\.nn\.modules\.linear\.Linear"):
        import_reference(tmp_path / "linear.pt")
    buffer = io.BytesIO()
    pickle.dump({"model": 1}, buffer)
    (tmp_path / "raw.pkl").write_bytes(buffer.getvalue())
    assert main(["import-reference", str(tmp_path / "raw.pkl"), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtm: error:") and "not a complete torch checkpoint archive" in err
    assert len(err.strip().splitlines()) == 1


def test_ndt2_checkpoints_are_refused_with_the_reason(fixture, tmp_path):
    path = fixture[0]
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(tmp_path / "ndt2.pt", "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            if name.endswith("/data.pkl"):
                data = data.replace(b"cmodels.ndt1\nNDT1\n", b"cmodels.stpatch\nSTPatch\n", 1)
            out.writestr(name, data)
    with pytest.raises(ValueError, match=r"an NDT2 checkpoint \(models\.stpatch\.STPatch\), not imported"):
        import_reference(tmp_path / "ndt2.pt")


def test_the_table_eids_come_from_the_checkpoint_or_the_caller(fixture, monkeypatch):
    path, meta, outputs, sessions = fixture
    obj = read_reference_pickle(path)
    embedder = obj["model"].attributes["_modules"]["encoder"].attributes["_modules"]["embedder"].attributes
    assert embedder["eid_lookup"] == target_eids()  # the reference's target_eids.txt, in its order
    del embedder["eid_lookup"]  # a checkpoint that does not record its table
    monkeypatch.setattr("mtm.reference_import.read_reference_pickle", lambda p: obj)
    with pytest.raises(ValueError, match="holds no eid table"):
        import_reference(path, sessions=sessions)
    with pytest.raises(ValueError, match="3 eids for a session table of 40 rows"):
        import_reference(path, sessions=sessions, eids=target_eids()[:3])
    model, _ = import_reference(path, sessions=sessions, eids=target_eids())
    eid = meta["sessions"][0]["eid"]
    with torch.no_grad():
        ours = model(torch.as_tensor(outputs["s0_spikes"]).float(), eid, prompt=PROMPT_IDS["intra-region"]).numpy()
    np.testing.assert_allclose(ours, outputs["s0_intra-region_log_rates"], rtol=0, atol=1e-5)


def test_the_reference_causal_mask_tiles_a_triangle_and_opens_the_prefix_rows():
    """One token per bin: strict causal attention except the prepended tokens' rows, which see every
    bin; several tokens per bin: token i treated as bin i % period (the reference's NDT2 defect)."""
    one_per_bin = reference_causal_mask(6, 2, 6)
    strict = torch.ones(8, 8, dtype=torch.bool).tril()
    strict[:, :2] = True
    assert torch.equal(one_per_bin[2:], strict[2:]) and one_per_bin[:2].all()
    tiled = reference_causal_mask(6, 0, 3)  # two tokens per bin, time-major: tokens 0-5 are bins 0,0,1,1,2,2
    assert tiled[2, 4] and not tiled[4, 2]  # token 2 (bin 1) sees token 4 (bin 2); token 4 misses token 2

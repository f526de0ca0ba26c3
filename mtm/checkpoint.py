"""Checkpoints that hold weights and configuration only, written atomically.

* ``*.safetensors``: a model's weights, with its configuration (JSON) in the file's metadata. A
  safetensors file holds tensors and strings only, so loading one can never run code (the reference
  pickled whole ``nn.Module`` objects, notes 7.3).
* ``last.pt``: the training state needed to resume (model, optimizer and scheduler state dicts,
  epoch, best score, history): plain tensors and numbers saved with ``torch.save`` and read back
  with ``weights_only=True``.

Every write goes to a temporary file in the same folder, then ``os.replace`` puts it in place: an
interrupted write never leaves a partial checkpoint and never destroys the previous one.

:func:`import_reference` reads the reference's own pickled ``model_best.pt`` without running it and
maps it onto an mtm model (:mod:`mtm.reference_import`); :func:`save_model` then writes it as above.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mtm.atomic import atomic_write
from mtm.masking import TRAINING_SCHEMES
from mtm.models import MaskedModel, ModelConfig, build_model
from mtm.reference_import import ReferenceImport, import_reference

__all__ = ["FORMAT", "ReferenceImport", "import_reference", "load_model", "load_state", "model_description",
           "read_description", "save_model", "save_state"]

FORMAT = "mtm.model"


def model_description(model: MaskedModel) -> dict:
    """What it takes to rebuild a model: its config and its sessions."""
    return {"format": FORMAT, "model": model.cfg.to_dict(),
            "sessions": [[sid, n] for sid, n in zip(model.session_ids, model.n_neurons)]}


def save_model(path, model: MaskedModel, extra: dict | None = None) -> Path:
    """Write a model's weights and configuration (plus JSON-able ``extra``) to a safetensors file."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"mtm": json.dumps({**model_description(model), "extra": extra or {}})}
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def read_description(path) -> dict:
    """The configuration stored in a model checkpoint (no weights loaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a safetensors model checkpoint ({err})") from None
    if "mtm" not in metadata:
        raise ValueError(f"{path}: a safetensors file without an mtm model description")
    return _checked_description(path, metadata["mtm"])


def _checked_description(path, raw: str) -> dict:
    """The model description of a checkpoint's metadata, checked field by field."""
    try:
        description = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{path}: the model description in its metadata is not JSON ({err})") from None
    if not isinstance(description, dict):
        raise ValueError(f"{path}: the model description is a JSON {type(description).__name__}, expected an object")
    if description.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mtm model checkpoint (format {description.get('format')!r})")
    if not isinstance(description.get("model"), dict):
        raise ValueError(f"{path}: the model description has no model configuration (an object)")
    sessions = description.get("sessions")
    if not isinstance(sessions, list) or not all(
            isinstance(s, list) and len(s) == 2 and isinstance(s[0], str) and isinstance(s[1], int)
            and not isinstance(s[1], bool) and s[1] > 0 for s in sessions):
        raise ValueError(f"{path}: the model description's sessions must be a list of [session id, neurons], "
                         f"got {str(sessions)[:80]}")
    if not isinstance(description.get("extra", {}), dict):
        raise ValueError(f"{path}: the model description's extra is not an object")
    return description


def load_model(path, arch: str | None = None, device="cpu") -> tuple[MaskedModel, dict]:
    """Rebuild a model from a checkpoint; returns it (in eval mode) and the checkpoint's ``extra``.

    ``arch``, when given, must match the checkpoint's architecture.
    """
    description = read_description(path)
    try:
        cfg = ModelConfig.from_dict(description["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: the model configuration in its metadata is not valid ({err})") from None
    if arch is not None and arch != cfg.arch:
        raise ValueError(f"{path}: the checkpoint holds an {cfg.arch} model, not {arch}")
    _check_training_record(path, cfg, description.get("extra", {}))
    sessions = [tuple(s) for s in description["sessions"]]
    with torch.device("meta"):  # the described sizes, checked against the stored ones before allocating
        expected = {k: tuple(v.shape) for k, v in build_model(cfg, sessions).state_dict().items()}
    with safe_open(str(path), framework="pt") as fh:
        stored = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    wrong = [f"{k} {stored[k]} (expected {expected[k]})" for k in expected if k in stored and stored[k] != expected[k]]
    if wrong:
        raise ValueError(f"{path}: weights do not fit the described model ({', '.join(wrong[:3])})")
    model = build_model(cfg, sessions)
    state = load_file(str(path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the described model ({str(err).splitlines()[-1].strip()})") \
            from None
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the described model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model.to(device).eval(), description.get("extra", {})


def _check_training_record(path, cfg: ModelConfig, extra: dict) -> None:
    """The masking a checkpoint says it was trained with (``extra["train"]["masking"]``, default mtm)
    must be one mtm knows, and ``mtm`` if its weights hold prompt tokens (only MtM trains them)."""
    train = extra.get("train", {})
    if not isinstance(train, dict):
        raise ValueError(f"{path}: the model description's extra.train is not an object")
    masking, known = train.get("masking", "mtm"), ("mtm",) + TRAINING_SCHEMES
    if masking not in known:
        raise ValueError(f"{path}: its description says it was trained with masking {masking!r}; expected one of "
                         f"{known}")
    if cfg.use_prompt and masking != "mtm":
        raise ValueError(f"{path}: its weights hold prompt tokens, which only mtm masking trains, but its "
                         f"description says masking {masking!r}; not loaded, as it would be scored as the wrong model")


def read_log(run_dir) -> list[dict]:
    """The rows of a run's ``log.csv`` (one per epoch; values as strings, as :mod:`csv` reads them)."""
    import csv

    path = Path(run_dir) / "log.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no log; is {run_dir} a run folder written by mtm.train?")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def save_state(path, state: dict) -> Path:
    """Write a training state (tensors, numbers, strings, lists, dicts) for ``--resume``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "best", "history", "config")


def load_state(path) -> dict:
    """Read a training state written by :func:`save_state`, refusing anything but plain data (a
    file that would run code is refused unread). ``ValueError`` naming the file when it is
    truncated, tampered with or lacks a key."""
    import pickle
    import zipfile

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path}: refused: it holds objects other than tensors and numbers (not a training "
                         "state mtm wrote, or tampered with); nothing in it was run") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable training state, truncated or corrupt "
                         f"({str(err).splitlines()[0][:120]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a training state (a {type(state).__name__}, expected a dict)")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"{path}: not a complete training state, missing {missing}")
    return state


def check_session_fits(path, extra: dict, session) -> None:
    """Refuse to score a checkpoint on a session of another bin count or bin size than the data it
    was trained on (``extra["data"]``, recorded by training); warn when a session it was trained on
    now holds other counts (its data fingerprint differs)."""
    import warnings

    data = extra.get("data")
    if not isinstance(data, dict):
        return
    if data.get("n_bins") not in (None, session.n_bins):
        raise ValueError(f"{path}: trained on sessions of {data['n_bins']} bins, the session {session.eid!r} has "
                         f"{session.n_bins}")
    if data.get("bin_size") is not None and abs(data["bin_size"] - session.bin_size) > 1e-9:
        raise ValueError(f"{path}: trained on {data['bin_size'] * 1000:g} ms bins, the session {session.eid!r} has "
                         f"{session.bin_size * 1000:g} ms bins")
    fingerprint = data.get("fingerprints", {}).get(session.eid)
    if fingerprint is not None:
        from mtm.train import data_record

        if data_record([session])["fingerprints"][session.eid] != fingerprint:
            warnings.warn(f"{path}: the session {session.eid!r} holds other counts than the data of that name the "
                          "checkpoint was trained on", stacklevel=2)

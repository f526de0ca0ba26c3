"""Checkpoints that hold weights and configuration only, written atomically, and the run folder
that holds every file of a training run.

* ``*.safetensors``: a model's weights, with its configuration (JSON) in the file's metadata. A
  safetensors file holds tensors and strings only, so loading one can never run code (the reference
  pickled whole ``nn.Module`` objects, notes 7.3).
* ``last.pt``: the training state needed to resume (model, optimizer and scheduler state dicts,
  epoch, best score, history): plain tensors and numbers saved with ``torch.save`` and read back
  with ``weights_only=True``.

Every write goes to a temporary file in the same folder, then ``os.replace`` puts it in place: an
interrupted write never leaves a partial checkpoint and never destroys the previous one.

A run folder (:class:`RunFolder`) holds ``best.safetensors`` (the selected weights),
``last.safetensors`` and ``last.pt`` (the last checkpoint), ``log.csv`` (one row per epoch),
``config.json`` (the run's settings and sessions) and, while a run holds it, its lock
(:mod:`mtm.runlock`). A run's identity is what defines its result: the training settings except
:data:`EXECUTION_FIELDS`, its sessions and a fingerprint of their counts (:func:`data_record`); a
run is resumed, or a finished one reused, only when the identity is the same
(:meth:`RunFolder.difference` names the first difference).

:func:`import_reference` reads the reference's own pickled ``model_best.pt`` without running it and
maps it onto an mtm model (:mod:`mtm.reference_import`); :func:`save_model` then writes it as above.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mtm.atomic import atomic_write
from mtm.masking import TRAINING_SCHEMES
from mtm.models import MaskedModel, ModelConfig, build_model
from mtm.reference_import import ReferenceImport, import_reference
from mtm.runlock import run_lock

__all__ = ["EXECUTION_FIELDS", "FORMAT", "ReferenceImport", "RunFolder", "check_session_fits", "data_difference",
           "data_record", "first_difference", "import_reference", "load_model", "load_state", "model_description",
           "read_description", "read_log", "save_model", "save_state"]

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
    return RunFolder(run_dir).read_log()


def log_column(rows: list[dict], key: str) -> np.ndarray:
    """One column of a run's log rows (:func:`read_log`) as floats, NaN where an epoch has no value
    (an epoch without validation); ``ValueError`` when no row has the column."""
    if not any(key in row for row in rows):
        raise ValueError(f"key: no log row has a {key!r} column; the log has {sorted(rows[0]) if rows else []}")
    return np.array([float(row[key]) if str(row.get(key, "")).strip() else math.nan for row in rows])


#: The log columns of the selection criteria (:data:`mtm.train.SELECTIONS`).
LOGGED_SELECTIONS = ("val_bps", "r2_top50")


def kept_epochs(rows: list[dict]) -> dict[str, int]:
    """{criterion: the epoch it keeps} for each selection criterion the log holds: the first epoch with
    the highest finite score, as the trainer keeps it (a later tie is no improvement)."""
    epochs = log_column(rows, "epoch").astype(int)
    kept = {}
    for criterion in LOGGED_SELECTIONS:
        if any(criterion in row for row in rows):
            scores = log_column(rows, criterion)
            if np.isfinite(scores).any():
                kept[criterion] = int(epochs[np.nanargmax(scores)])
    return kept


def log_summary(rows: list[dict]) -> str:
    """One line of a run's log: its training loss per target entry in the first and last epochs, and
    its best validation bits per spike with the epoch that scored it (epochs counted from 0)."""
    loss, val = log_column(rows, "train_loss"), log_column(rows, "val_bps")
    best = kept_epochs(rows).get("val_bps")
    scored = (f"best validation {np.nanmax(val):.3f} bits per spike at epoch {best}" if best is not None
              else "no validation score")
    return (f"training loss {loss[0]:.3f} -> {loss[-1]:.3f} nats per target entry over {len(rows)} epochs; "
            f"{scored}")


def save_state(path, state: dict) -> Path:
    """Write a training state (tensors, numbers, strings, lists, dicts) for ``--resume``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "best", "history", "config")


def load_state(path) -> dict:
    """Read a training state written by :func:`save_state`, refusing anything but plain data (a
    file that would run code is refused unread). ``ValueError`` naming the file when it is
    truncated, tampered with or lacks a key."""
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


# ---------------------------------------------------------------------------- the run's identity
#: TrainConfig fields that change how a run runs but not what it computes: a run may be resumed
#: (or a finished one reused) with other values of these.
EXECUTION_FIELDS = ("device", "precision", "compile", "checkpoint_every", "checkpoint_minutes")

#: Settings derived from others, named by the one a user sets: ``model.use_prompt`` follows
#: ``masking`` and ``prompted``.
DERIVED_FIELDS = ("model.use_prompt",)

#: Settings added after runs were first saved, with the value a run saved without them trained with:
#: such a run is still reused or resumed.
ADDED_FIELDS = {"staged_epochs": 0, "patience": None, "patience_floor": None, "model.token_std": None}

#: Settings that change nothing while another is None: {setting: that other}. Two runs without
#: patience compute the same whatever their ``patience_floor``.
UNUSED_WITHOUT = {"patience_floor": "patience"}

#: The command-line option of each setting (``mtm train`` / ``mtm finetune``), named in a refusal.
OPTIONS = {"masking": "--masking", "prompted": "--no-prompt", "epochs": "--epochs", "lr": "--lr",
           "batch_size": "--batch-size", "selection": "--selection", "eval_every": "--eval-every", "seed": "--seed",
           "freeze_core": "--freeze-core", "staged_epochs": "--staged-epochs", "patience": "--patience",
           "patience_floor": "--patience-floor",
           "model.arch": "--arch", "model.max_bins": "--max-bins"}


def first_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first setting (dotted name) whose value differs between two config dicts, ignoring
    :data:`EXECUTION_FIELDS`, :data:`DERIVED_FIELDS` and a setting of :data:`UNUSED_WITHOUT` whose
    other setting is None in both (a setting of :data:`ADDED_FIELDS` that ``saved`` lacks has its
    value there), with its command-line option where it has one; None if they agree."""
    for key in list(dict.fromkeys([*saved, *current])):
        name = f"{prefix}{key}"
        if (not prefix and key in EXECUTION_FIELDS) or name in DERIVED_FIELDS:
            continue
        other = UNUSED_WITHOUT.get(name)
        if other is not None and saved.get(other, ADDED_FIELDS.get(other)) is None and current.get(other) is None:
            continue
        a, b = saved.get(key, ADDED_FIELDS.get(name)), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, f"{name}.")
            if inner:
                return inner
        elif a != b:
            option = f", set by {OPTIONS[name]}" if name in OPTIONS else ""
            return f"{name} ({a!r} in the saved run, {b!r} now){option}"
    return None


def data_record(sessions) -> dict:
    """What a checkpoint records of its training data: each session's bins, the bin size (s) and a
    fingerprint of each session's counts."""
    return {"bins": {s.eid: int(s.n_bins) for s in sessions}, "bin_size": float(sessions[0].bin_size),
            "fingerprints": {s.eid: hashlib.sha256(np.ascontiguousarray(s.spikes).tobytes()).hexdigest()[:16]
                             for s in sessions}}


def data_difference(saved: dict | None, current: dict) -> str | None:
    """The first session whose counts differ between a run's recorded data and ``current`` (both
    :func:`data_record`), as a phrase; None when they match or the run recorded no data."""
    if not isinstance(saved, dict):
        return None
    now = current.get("fingerprints", {})
    for eid, fingerprint in saved.get("fingerprints", {}).items():
        if eid in now and now[eid] != fingerprint:
            return f"the session {eid!r} holds other counts than the data the run was trained on"
    return None


def check_session_fits(path, extra: dict, session) -> None:
    """Refuse to score a checkpoint on a session of another bin count or bin size than the data it
    was trained on (``extra["data"]``, recorded by training: a session it was trained on must have
    its own bins, another session the bins of one of them); warn when a session it was trained on
    now holds other counts (its data fingerprint differs)."""
    data = extra.get("data")
    if not isinstance(data, dict):
        return
    bins = data.get("bins")
    if not isinstance(bins, dict):  # a checkpoint written before each session's bins were recorded
        bins = {} if data.get("n_bins") is None else {None: data["n_bins"]}
    allowed = [bins[session.eid]] if session.eid in bins else sorted(set(bins.values()))
    if allowed and session.n_bins not in allowed:
        trained = " or ".join(map(str, allowed))
        raise ValueError(f"{path}: trained on sessions of {trained} bins, the session {session.eid!r} has "
                         f"{session.n_bins}")
    if data.get("bin_size") is not None and abs(data["bin_size"] - session.bin_size) > 1e-9:
        raise ValueError(f"{path}: trained on {data['bin_size'] * 1000:g} ms bins, the session {session.eid!r} has "
                         f"{session.bin_size * 1000:g} ms bins")
    fingerprint = data.get("fingerprints", {}).get(session.eid)
    if fingerprint is not None and data_record([session])["fingerprints"][session.eid] != fingerprint:
        warnings.warn(f"{path}: the session {session.eid!r} holds other counts than the data of that name the "
                      "checkpoint was trained on", stacklevel=2)


# ---------------------------------------------------------------------------- the run folder
class RunFolder:
    """Every file of one training run, in the folder ``path``.

    * ``best.safetensors``: the weights of the best validation score so far; ``last.safetensors`` and
      ``last.pt`` (weights, optimiser, schedule, history): the last checkpoint, written together.
    * ``log.csv``: one row per epoch; ``config.json``: the run's settings and sessions.
    * ``mtm.lock`` while a run holds the folder (:meth:`lock`).

    A run's identity, ``{"train": settings, "sessions": [[eid, neurons], ...], "data":
    data_record(sessions)}``, is stored in ``last.pt``; :meth:`difference` compares a saved run's with
    the one asked for.
    """

    BEST, LAST, STATE, LOG, CONFIG = "best.safetensors", "last.safetensors", "last.pt", "log.csv", "config.json"

    def __init__(self, path):
        self.path = Path(path)
        self.best, self.last = self.path / self.BEST, self.path / self.LAST
        self.state, self.log, self.config = self.path / self.STATE, self.path / self.LOG, self.path / self.CONFIG
        self._tensorboard = None

    def lock(self):
        """Hold the folder's lock for a ``with`` block (:func:`mtm.runlock.run_lock`)."""
        return run_lock(self.path)

    @staticmethod
    def identity(train: dict, sessions: list, data: dict) -> dict:
        """What defines a run's result: its settings (``TrainConfig.to_dict()``), its sessions
        ([[eid, neurons], ...], as :func:`model_description`) and its data (:func:`data_record`)."""
        return {"train": json.loads(json.dumps(train)), "sessions": [list(s) for s in sessions], "data": data}

    # ------------------------------------------------------------------ starting, resuming, reusing
    def refuse_existing(self) -> None:
        """Refuse to start a new run where one already is (or where a run's weights are)."""
        if self.state.exists():
            raise ValueError(f"run_dir: {self.path} already holds a run; pass resume=True (--resume) to "
                             "continue it, or choose another folder")
        if self.best.exists():
            raise ValueError(f"run_dir: {self.path} holds best.safetensors but no last.pt (an incomplete run, or "
                             "another program's files); choose another folder, or delete it to start again")

    def difference(self, saved: dict, identity: dict) -> str | None:
        """The first difference between a saved run's identity (``last.pt``'s ``config``) and
        ``identity``, as a phrase; None when the run is this one."""
        differs = first_difference(saved["train"], identity["train"])
        if differs is None and saved["sessions"] != identity["sessions"]:
            eids = [eid for eid, _ in saved["sessions"]]
            differs = f"sessions ({', '.join(eids[:3])}{' ...' if len(eids) > 3 else ''} in the saved run)"
        if differs is None:
            differs = data_difference(saved.get("data"), identity["data"])
        return differs

    def resume_state(self, identity: dict) -> dict:
        """The training state to resume from (:func:`load_state`), after checking it is this run."""
        if not self.state.exists():
            raise ValueError(f"resume: no last.pt in {self.path} to resume from")
        state = load_state(self.state)
        saved = json.loads(state["config"])
        differs = first_difference(saved["train"], identity["train"])
        if differs:
            raise ValueError(f"resume: {self.state} was written with another configuration, first difference: "
                             f"{differs}; resume with the same settings")
        if saved["sessions"] != identity["sessions"]:
            raise ValueError(f"resume: {self.state} was trained on other sessions {saved['sessions'][:3]}")
        differs = data_difference(saved.get("data"), identity["data"])
        if differs:
            raise ValueError(f"resume: {self.state} was trained on other data: {differs}; use another run folder")
        return state

    def finished(self, identity: dict, epochs: int) -> bool:
        """Whether the folder holds this very run, complete (all ``epochs``, or stopped early on a
        plateau: its last log row says ``stopped``). A folder holding a run of other settings, sessions
        or data is an error, and nothing in it is touched."""
        if not self.state.exists():
            return False
        state = load_state(self.state)
        differs = self.difference(json.loads(state["config"]), identity)
        if differs:
            raise ValueError(f"{self.path} holds a run of other settings or sessions, first difference: {differs}; "
                             "use another output folder for this plan")
        history = json.loads(state["history"])
        stopped = bool(history) and bool(history[-1].get("stopped"))
        return self.best.exists() and (int(state["epoch"]) == epochs - 1 or stopped)

    # ------------------------------------------------------------------ writing
    def start(self, train: dict, model: MaskedModel) -> None:
        """Write ``config.json`` (the run's settings and sessions, readable by people) and open the
        ``tensorboard`` folder when TensorBoard is installed."""
        config = json.dumps({"train": train, "sessions": model_description(model)["sessions"]}, indent=1)
        atomic_write(self.config, lambda tmp: Path(tmp).write_text(config))
        try:  # TensorBoard is optional
            from torch.utils.tensorboard import SummaryWriter
            self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        except ImportError:
            pass

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def save_best(self, model: MaskedModel, extra: dict) -> None:
        save_model(self.best, model, extra)

    def save_last(self, model: MaskedModel, extra: dict, identity: dict, *, optimizer, scheduler, scaler, epoch: int,
                  best: float, history: list[dict]) -> None:
        """The last checkpoint: ``last.safetensors`` (weights and ``extra``), then ``last.pt`` for
        ``--resume`` (:data:`STATE_KEYS`: the model, optimiser and schedule states, the epoch, the best
        score, the history and the run's ``identity``; the gradient scaler's state with fp16)."""
        save_model(self.last, model, extra)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "epoch": epoch, "best": best, "history": json.dumps(history), "config": json.dumps(identity)}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        save_state(self.state, state)

    def write_log(self, rows: list[dict]) -> None:
        """``log.csv``: every row so far (a column appears from the first row that has it); the last row
        also to TensorBoard."""
        columns = list(dict.fromkeys(key for r in rows for key in r))

        def write(tmp):
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        atomic_write(self.log, write)
        if self._tensorboard is not None and rows:
            row = rows[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, row["epoch"])

    def read_log(self) -> list[dict]:
        """The rows of ``log.csv`` (one per epoch; values as strings, as :mod:`csv` reads them)."""
        if not self.log.exists():
            raise FileNotFoundError(f"{self.log}: no log; is {self.path} a run folder written by mtm.train?")
        with open(self.log, newline="") as fh:
            return list(csv.DictReader(fh))

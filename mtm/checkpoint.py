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
    description = json.loads(metadata["mtm"])
    if description.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mtm model checkpoint (format {description.get('format')!r})")
    return description


def load_model(path, arch: str | None = None, device="cpu") -> tuple[MaskedModel, dict]:
    """Rebuild a model from a checkpoint; returns it (in eval mode) and the checkpoint's ``extra``.

    ``arch``, when given, must match the checkpoint's architecture.
    """
    description = read_description(path)
    cfg = ModelConfig.from_dict(description["model"])
    if arch is not None and arch != cfg.arch:
        raise ValueError(f"{path}: the checkpoint holds an {cfg.arch} model, not {arch}")
    model = build_model(cfg, [tuple(s) for s in description["sessions"]])
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the described model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model.to(device).eval(), description.get("extra", {})


def save_state(path, state: dict) -> Path:
    """Write a training state (tensors, numbers, strings, lists, dicts) for ``--resume``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path) -> dict:
    """Read a training state written by :func:`save_state`, refusing anything but plain data."""
    return torch.load(path, map_location="cpu", weights_only=True)

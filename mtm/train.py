"""One training loop for every run: single-session, multi-session pretraining and fine-tuning
(reference notes section 4).

* Optimiser: AdamW (lr 1e-4, weight decay 0.01), one-cycle schedule stepped every batch (15 %
  warm-up from lr / 10, cosine annealing to lr / 1e5, beta1 cycled 0.95 -> 0.85 -> 0.95, PyTorch's
  ``OneCycleLR`` defaults as the reference uses them).
* Batches of 16 trials, each from one session; every epoch shuffles the trials of each session's
  train split, cuts them into batches and shuffles the batches of all sessions together.
* Masking per batch: one scheme (``temporal`` baseline, or any single scheme), or ``mtm``: one of
  neuron / causal / intra-region / inter-region drawn uniformly, with its prompt token when
  ``prompted``. The loss is the masked Poisson NLL summed over the batch, as the reference.
* Model selection: after every ``eval_every`` epochs (and after the last) the model is scored on the
  validation split and the best weights are kept (``best.safetensors``). ``selection="val_bps"`` (the
  default) is the pooled bits per spike of the masked entries, with masks drawn from a fixed seed so every epoch is
  scored on the same masks; ``"r2_top50"`` is the reference's criterion (single-trial R^2 of the 50
  most active validation neurons, masking active). Bits per spike is what the paper's tables
  report, so the default selects on the quantity being reported; the reference's R^2 is noisier
  (re-drawn masks, 50 neurons) and blind to rate calibration.
* Reproducible and resumable: every epoch re-seeds the batch order, the masks and dropout from
  ``(seed, epoch)``, so a run resumed from ``last.pt`` reaches the same weights as one never stopped.
  ``last.pt`` (weights, optimiser, schedule) is written every ``checkpoint_every`` epochs, when
  ``checkpoint_minutes`` have passed since the last one, and after the last epoch; a resumed run
  repeats the epochs after its last checkpoint and reaches the same weights.
* Precision (:func:`resolve_precision`): bf16 autocast on GPUs with native bf16, fp16 autocast with
  a gradient scaler on older GPUs, fp32 on the CPU; the loss and the exponential of the log-rates
  always in fp32.
* GPU: sessions resident on the device as uint8 counts, autocast, optional ``torch.compile``,
  nothing in the training step reads a value back to the host (the loss is summed on the device and
  read once per epoch). Several GPUs or nodes: launch the same entry point with ``torchrun``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

with warnings.catch_warnings():  # tqdm.auto warns in a notebook without ipywidgets, then uses text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from mtm import checkpoint
from mtm.atomic import atomic_write
from mtm.data import Session
from mtm.masking import (MTM_SCHEMES, REGION_SCHEMES, TRAINING_SCHEMES, MtMSampler, RegionIndex,
                         is_causal, mask_batch, training_ratio)
from mtm.models import MaskedModel, ModelConfig, build_model, poisson_nll
from mtm.runlock import run_lock

MASKINGS = ("mtm",) + TRAINING_SCHEMES
SELECTIONS = ("val_bps", "r2_top50")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class TrainConfig:
    """Everything a run needs besides its data. :meth:`preset` gives ``small`` and ``paper``."""

    model: ModelConfig = field(default_factory=ModelConfig.paper)
    masking: str = "mtm"            # "mtm" or one scheme of mtm.masking.TRAINING_SCHEMES ("temporal" = baseline)
    prompted: bool = True           # MtM: prepend the scheme's prompt token (ignored for a single scheme)
    mask_ratio: float | None = None  # masking probability, default 0.3 (MtM's causal: 0.6; masking.training_ratio)
    epochs: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.15            # fraction of the steps spent warming up
    div_factor: float = 10.0        # start lr = lr / div_factor
    final_div_factor: float = 1e4   # end lr = start lr / final_div_factor
    selection: str = "val_bps"      # "val_bps" or the reference's "r2_top50"
    eval_every: int = 1             # epochs between validations (and after the last epoch)
    checkpoint_every: int = 1       # epochs between writes of last.pt (and after the last epoch)
    checkpoint_minutes: float | None = None  # also write last.pt when this many minutes have passed since the last
    seed: int = 0
    device: str = "auto"            # "auto" = cuda if available, else cpu
    precision: str = "auto"         # "auto": bf16 on GPUs with native bf16, fp16 on older GPUs, fp32 on the CPU
    compile: bool | str = False     # torch.compile the model: True (default mode) or a mode of COMPILE_MODES
    freeze_core: bool = False       # fine-tuning: train only the session's stitchers and token

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if self.masking not in MASKINGS:
            raise ValueError(f"masking: unknown scheme {self.masking!r}; expected one of {MASKINGS}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection: expected one of {SELECTIONS}, got {self.selection!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if self.mask_ratio is not None and not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio: expected a probability strictly between 0 and 1 (0 hides nothing, so the "
                             f"loss has no target; 1 hides everything, so the model sees no input); got "
                             f"{self.mask_ratio}")
        for name in ("epochs", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            raise ValueError(f"checkpoint_minutes: expected a positive number of minutes or None, "
                             f"got {self.checkpoint_minutes}")
        if self.compile not in (False, True) + COMPILE_MODES:
            raise ValueError(f"compile: expected True, False or one of {COMPILE_MODES}, got {self.compile!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        self.model = replace(self.model, use_prompt=self.uses_prompts)  # a copy: never edit the caller's config

    @property
    def uses_prompts(self) -> bool:
        return self.masking == "mtm" and self.prompted

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """``paper``: the published settings (NDT1-stitch 5 x 512, 1000 epochs, lr 1e-4, batch 16),
        validating every 10 epochs and writing ``last.pt`` every 10 epochs or 10 minutes, whichever
        comes first (on a GPU an epoch of the paper's 34 sessions takes about a second, and ``last.pt``
        with the optimiser is about 150 MB). ``small``: a 2 x 64 model trained for 150 epochs at lr
        2e-3, about a minute per small session on a laptop CPU, validated and checkpointed every epoch."""
        model_overrides = overrides.pop("model", {})
        if isinstance(model_overrides, ModelConfig):
            model_overrides = model_overrides.to_dict()
        if name == "paper":
            base = dict(eval_every=10, checkpoint_every=10, checkpoint_minutes=10.0)
            base.update(overrides)
            return cls(model=ModelConfig.paper(**model_overrides), **base)
        if name == "small":
            base = dict(epochs=150, lr=2e-3)
            base.update(overrides)
            return cls(model=ModelConfig.small(**model_overrides), **base)
        raise ValueError(f"preset: expected 'small' or 'paper', got {name!r}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"train config: unknown fields {sorted(unknown)}")
        return cls(**values)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device: {name!r} is not a device name ({err}); expected auto, cpu, cuda, cuda:1, ...") \
            from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} asked for, but this machine has no GPU that torch can use; "
                         "use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device: {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def resolve_precision(precision: str, device_type: str, capability: tuple[int, int] | None = None) -> str:
    """The precision a run computes in, "fp32", "bf16" or "fp16", from the setting, the device type
    ("cuda", "cpu", ...) and, on CUDA, the GPU's compute capability (major, minor).

    ``auto``: bf16 on a CUDA GPU with native bf16 (compute capability 8.0 or newer: A100, H100), fp16
    with a gradient scaler on older CUDA GPUs (T4 7.5, V100 7.0), fp32 elsewhere (the CPU has no
    native bf16; its bf16 is emulated and about 40 times slower). ``torch.cuda.is_bf16_supported()``
    is not consulted: it answers yes on a T4, through emulation. An explicit setting is kept, except
    bf16 on a CUDA GPU older than 8.0, which is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    cuda = device_type == "cuda"
    if cuda and capability is None:
        raise ValueError("capability: a CUDA device needs its compute capability (major, minor)")
    native_bf16 = cuda and tuple(capability) >= (8, 0)
    if precision == "auto":
        return "bf16" if native_bf16 else "fp16" if cuda else "fp32"
    if precision == "bf16" and cuda and not native_bf16:
        raise ValueError(f"precision: bf16 needs a GPU with native bfloat16 (compute capability 8.0 or newer); "
                         f"this GPU has {capability[0]}.{capability[1]}, where bf16 is emulated. Use 'fp16' or "
                         "'auto' (fp16 with a gradient scaler) or 'fp32'")
    return precision


def device_precision(precision: str, device: torch.device) -> str:
    """:func:`resolve_precision` for a torch device (reads a CUDA GPU's compute capability)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return resolve_precision(precision, device.type, capability)


def autocast_dtype(precision: str, device: torch.device):
    """The autocast dtype of a precision setting on ``device`` (:func:`resolve_precision`); None for fp32."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[device_precision(precision, device)]


def maskable_counts(spikes: np.ndarray) -> np.ndarray:
    """Counts (K, T, N) in a dtype torch can mask and index: uint8 as it is, wider unsigned
    integers (counts above 255) as int32 or int64."""
    spikes = np.array(spikes)
    if spikes.dtype.kind == "u" and spikes.dtype.itemsize > 1:
        return spikes.astype(np.int32 if spikes.dtype.itemsize == 2 else np.int64)
    return spikes


#: TrainConfig fields that change how a run runs but not what it computes: a run may be resumed
#: (or a finished one reused) with other values of these.
EXECUTION_FIELDS = ("device", "precision", "compile", "checkpoint_every", "checkpoint_minutes")


def first_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first setting (dotted name) whose value differs between two config dicts, ignoring
    :data:`EXECUTION_FIELDS`; None if they agree."""
    for key in list(dict.fromkeys([*saved, *current])):
        if not prefix and key in EXECUTION_FIELDS:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key} ({a!r} in the saved run, {b!r} now)"
    return None


def data_record(sessions) -> dict:
    """What a checkpoint records of its training data: bins, bin size (s) and a fingerprint per session."""
    import hashlib

    return {"n_bins": int(sessions[0].n_bins), "bin_size": float(sessions[0].bin_size),
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


class SessionTensors:
    """One session on the training device: uint8 counts, region ids, split indices."""

    def __init__(self, session: Session, index: int, device: torch.device):
        self.session, self.index, self.eid = session, index, session.eid
        self.spikes = torch.from_numpy(maskable_counts(session.spikes)).to(device)
        self.regions = RegionIndex.from_labels(session.regions, device)
        self.splits = {name: torch.tensor(np.asarray(idx), dtype=torch.long) for name, idx in session.splits.items()}


class Distributed:
    """``torchrun`` context: rank, world size; a single process when not launched by torchrun."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1
        if self.active and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(tensor)
        return tensor

    def check_replicas(self, model: torch.nn.Module) -> float:
        """Sum of all parameters; raises if the replicas of the ranks disagree."""
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
        if self.active:
            gathered = [torch.zeros_like(total) for _ in range(self.world)]
            torch.distributed.all_gather(gathered, total)
            values = [float(v) for v in gathered]
            if max(values) != min(values):
                raise RuntimeError(f"distributed replicas diverged: parameter sums {values}")
        return float(total)


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 101 + stream) % (2 ** 62)


def epoch_batches(data: list[SessionTensors], batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world: int = 1) -> list[tuple[int, torch.Tensor]]:
    """This rank's batches of one epoch: (session position, trial indices), single-session batches.

    Every rank draws the same global order from ``(seed, epoch)`` and takes every ``world``-th batch
    (all ranks get the same number of batches).
    """
    gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch, 0))
    batches = []
    for pos, st in enumerate(data):
        train = st.splits.get("train", torch.empty(0, dtype=torch.long))
        order = train[torch.randperm(len(train), generator=gen)]
        batches += [(pos, order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    batches = [batches[i] for i in order]
    per_rank = len(batches) // world
    return batches[rank::world][:per_rank]


class Trainer:
    """Trains ``model`` on ``sessions`` with ``cfg``, writing checkpoints and logs to ``run_dir``.

    Use :func:`train` / :func:`finetune` rather than this class directly. ``callbacks`` are called
    as ``callback(trainer, epoch, row)`` after every epoch with the epoch's log row.
    """

    def __init__(self, model: MaskedModel, sessions: list[Session], cfg: TrainConfig, run_dir,
                 resume: bool = False, callbacks=(), progress: bool = True, extra: dict | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = pick_device(cfg.device)
        self.dist = Distributed(self.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.precision = device_precision(cfg.precision, self.device)
        self.amp_dtype = autocast_dtype(self.precision, self.device)
        # fp16's narrow range: the loss is scaled up for backward and steps with inf/NaN gradients skipped
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.callbacks, self.progress, self.extra = list(callbacks), progress, dict(extra or {})
        self._check_sessions(model, sessions)
        self.extra.setdefault("data", data_record(sessions))
        self.model = model.to(self.device)
        self.data = [SessionTensors(s, model.session_index(s.eid, s.n_neurons), self.device) for s in sessions]
        self.batches_per_epoch = len(epoch_batches(self.data, cfg.batch_size, cfg.seed, 0, self.dist.rank,
                                                   self.dist.world))
        if self.batches_per_epoch == 0:
            raise ValueError("sessions: no training batch (the train splits are empty or smaller than the world size)")
        if cfg.freeze_core:
            trained = {id(p) for p in model.session_parameters()}
            for p in model.parameters():
                p.requires_grad_(id(p) in trained)
        params = [p for p in model.parameters() if p.requires_grad]
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * self.batches_per_epoch, pct_start=cfg.warmup,
            div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)
        self.net = model
        if self.dist.active:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        if cfg.compile:
            self.net = torch.compile(self.net, mode=None if cfg.compile is True else cfg.compile)
        self.start_epoch, self.best, self.history = 0, -math.inf, []
        if resume:
            self._resume()
        elif self.dist.main and (self.run_dir / "last.pt").exists():
            raise ValueError(f"run_dir: {self.run_dir} already holds a run; pass resume=True (--resume) to "
                             "continue it, or choose another folder")
        elif self.dist.main and (self.run_dir / "best.safetensors").exists():
            raise ValueError(f"run_dir: {self.run_dir} holds best.safetensors but no last.pt (an incomplete run, or "
                             "another program's files); choose another folder, or delete it to start again")

    # ------------------------------------------------------------------ set-up
    def _check_sessions(self, model: MaskedModel, sessions: list[Session]) -> None:
        if not sessions:
            raise ValueError("sessions: expected at least one session to train on")
        for s in sessions:
            model.session_index(s.eid, s.n_neurons)
            if self.cfg.masking in REGION_SCHEMES + ("mtm",) and len(s.region_names) < 2:
                raise ValueError(f"session {s.eid!r}: the {self.cfg.masking} masking needs at least two regions, "
                                 f"the session has {s.region_names}")
            if len(s.splits.get("train", ())) == 0:
                raise ValueError(f"session {s.eid!r}: empty train split")
            if not np.any(s.spikes[s.splits["train"]]):
                raise ValueError(f"session {s.eid!r}: no spike in its train split, nothing to learn from")
            if s.n_bins > model.cfg.max_bins:
                raise ValueError(f"session {s.eid!r}: {s.n_bins} bins, more than the model's max_bins "
                                 f"{model.cfg.max_bins}; train with --max-bins {s.n_bins} (model max_bins)")

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.exists():
            raise ValueError(f"resume: no last.pt in {self.run_dir} to resume from")
        state = checkpoint.load_state(path)
        saved = json.loads(state["config"])
        differs = first_difference(saved["train"], json.loads(json.dumps(self.cfg.to_dict())))
        if differs:
            raise ValueError(f"resume: {path} was written with another configuration, first difference: {differs}; "
                             "resume with the same settings")
        description = checkpoint.model_description(self.model)
        if saved["sessions"] != description["sessions"]:
            raise ValueError(f"resume: {path} was trained on other sessions {saved['sessions'][:3]}")
        differs = data_difference(saved.get("data"), self.extra["data"])
        if differs:
            raise ValueError(f"resume: {path} was trained on other data: {differs}; use another run folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:  # a run resumed in another precision starts a fresh scale
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.best = int(state["epoch"]) + 1, float(state["best"])
        self.history = json.loads(state["history"])

    # ------------------------------------------------------------------ one epoch
    def _scheme(self, sampler: MtMSampler | None, n_regions: int) -> tuple[str, int | None]:
        if sampler is None:
            return self.cfg.masking, None
        scheme, prompt = sampler.sample(n_regions)
        return scheme, prompt if self.cfg.uses_prompts else None

    def _forward_loss(self, spikes: torch.Tensor, st: SessionTensors, scheme: str, prompt: int | None,
                      generator: torch.Generator, net=None):
        """Mask a batch, predict, score: (summed loss, number of targets, log-rates, target mask)."""
        ratio = training_ratio(scheme, self.cfg.masking, self.cfg.mask_ratio)
        masked, target = mask_batch(spikes, scheme, st.regions, ratio, generator,
                                    patch_size=self.cfg.model.patch_size)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            log_rates = (net or self.net)(masked, st.index, prompt, is_causal(scheme))
        loss, count = poisson_nll(log_rates, spikes, target)
        return loss, count, log_rates, target

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, 1) + self.dist.rank)  # dropout
        generator = torch.Generator(self.device).manual_seed(_epoch_seed(cfg.seed, epoch, 2) + self.dist.rank)
        sampler = MtMSampler(MTM_SCHEMES, seed=_epoch_seed(cfg.seed, epoch, 3) + self.dist.rank) \
            if cfg.masking == "mtm" else None
        batches = epoch_batches(self.data, cfg.batch_size, cfg.seed, epoch, self.dist.rank, self.dist.world)
        self.net.train()
        total_loss = torch.zeros((), device=self.device)
        total_count = torch.zeros((), device=self.device)
        n_trials = sum(len(trials) for _, trials in batches)
        start = time.perf_counter()
        # every batch's trial indices reach the device in one copy per epoch, not one per step
        on_device = torch.cat([trials for _, trials in batches]).to(self.device).split([len(t) for _, t in batches])
        for (pos, _), trials in zip(batches, on_device):
            st = self.data[pos]
            spikes = st.spikes[trials]
            scheme, prompt = self._scheme(sampler, len(st.regions))
            loss, count, _, _ = self._forward_loss(spikes, st, scheme, prompt, generator)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            total_loss += loss.detach()
            total_count += count
        totals = self.dist.all_sum(torch.stack([total_loss, total_count]))
        loss_per_entry = float(totals[0] / totals[1].clamp(min=1))  # waits for the device: the epoch's work is done
        seconds = time.perf_counter() - start
        if not math.isfinite(loss_per_entry):
            raise FloatingPointError(f"training loss became {loss_per_entry} in epoch {epoch}; no checkpoint was "
                                     f"written for it (the last good one stays in {self.run_dir}). Lower the "
                                     "learning rate or check the data.")
        return {"epoch": epoch, "train_loss": loss_per_entry, "lr": lr,
                "seconds": seconds, "trials_per_s": n_trials * self.dist.world / max(seconds, 1e-9)}

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Scores on every session's val split (mean over sessions), masks drawn from a fixed seed.

        ``val_bps``: pooled bits per spike of the masked entries against each neuron's mean rate on
        the val split, (NLL_null - NLL_model) / spikes / ln 2 over all targets of the session.
        ``r2_top50``: :func:`top50_trial_r2` of the same predictions (logged whatever the selection, so
        one run's log shows which epoch either criterion keeps).
        """
        cfg = self.cfg
        self.model.eval()
        generator = torch.Generator(self.device).manual_seed(_epoch_seed(cfg.seed, 0, 7))
        sampler = MtMSampler(MTM_SCHEMES, seed=_epoch_seed(cfg.seed, 0, 8)) if cfg.masking == "mtm" else None
        scores = {"val_bps": [], "r2_top50": []}
        for st in self.data:
            val = st.splits.get("val")
            if val is None or len(val) == 0:
                continue
            spikes_all = st.spikes[val.to(self.device)]
            null_rate = spikes_all.float().mean(dim=(0, 1)).clamp(min=1e-9)
            gain = torch.zeros(2, device=self.device, dtype=torch.float64)  # (NLL_null - NLL_model, spikes)
            rates, counts = [], []
            for i in range(0, len(val), cfg.batch_size):
                spikes = spikes_all[i:i + cfg.batch_size]
                scheme, prompt = self._scheme(sampler, len(st.regions))
                _, _, log_rates, target = self._forward_loss(spikes, st, scheme, prompt, generator, net=self.model)
                y, log_rates, weight = spikes.float(), log_rates.float(), target.float()
                nll_model = (torch.exp(log_rates) - y * log_rates) * weight
                nll_null = (null_rate - y * torch.log(null_rate)) * weight
                gain += torch.stack([(nll_null - nll_model).sum(), (y * weight).sum()]).double()
                rates.append(torch.exp(log_rates))
                counts.append(y)
            scores["val_bps"].append(float(gain[0] / gain[1].clamp(min=1) / math.log(2)))
            scores["r2_top50"].append(top50_trial_r2(torch.cat(rates), torch.cat(counts)))
        self.model.train()
        return {k: float(np.mean(v)) for k, v in scores.items() if v}

    # ------------------------------------------------------------------ the run
    def _checkpoint_due(self, epoch: int, last_checkpoint: float) -> bool:
        """Whether ``last.pt`` is written after ``epoch``: every ``checkpoint_every`` epochs, when
        ``checkpoint_minutes`` have passed since ``last_checkpoint`` (a ``time.monotonic()``), and at the end."""
        cfg = self.cfg
        minutes = (time.monotonic() - last_checkpoint) / 60
        overdue = cfg.checkpoint_minutes is not None and minutes >= cfg.checkpoint_minutes
        return (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs or overdue

    def _save(self, epoch: int, row: dict, improved: bool, resumable: bool) -> None:
        """``best.safetensors`` when the score ``improved``; ``last.safetensors`` and ``last.pt`` when ``resumable``."""
        description = checkpoint.model_description(self.model)
        config = json.dumps({"train": self.cfg.to_dict(), "sessions": description["sessions"],
                             "data": self.extra.get("data")})
        extra = {**self.extra, "train": self.cfg.to_dict(), "epoch": epoch, "scores": row}
        if improved:
            checkpoint.save_model(self.run_dir / "best.safetensors", self.model, extra)
        if not resumable:
            return
        checkpoint.save_model(self.run_dir / "last.safetensors", self.model, extra)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": epoch, "best": self.best,
                 "history": json.dumps(self.history), "config": config}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        checkpoint.save_state(self.run_dir / "last.pt", state)

    def _log(self, row: dict) -> None:
        path = self.run_dir / "log.csv"
        rows = self.history
        columns = list(dict.fromkeys(key for r in rows for key in r))  # validation columns stay between validations
        def write(tmp):
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        atomic_write(path, write)
        if self._tensorboard is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, row["epoch"])

    def run(self) -> Path:
        """Train for the remaining epochs; returns the path of the best checkpoint."""
        cfg = self.cfg
        self._tensorboard = None
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config = json.dumps({"train": cfg.to_dict(),
                                 "sessions": checkpoint.model_description(self.model)["sessions"]}, indent=1)
            atomic_write(self.run_dir / "config.json", lambda tmp: Path(tmp).write_text(config))
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                pass
        bar = tqdm(range(self.start_epoch, cfg.epochs), desc=f"train {cfg.masking}", unit="epoch",
                   disable=not (self.progress and self.dist.main) or progress_disabled(), initial=self.start_epoch,
                   total=cfg.epochs)
        last_checkpoint = time.monotonic()
        for epoch in bar:
            row = self.train_epoch(epoch)
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                row.update(self.validate())
            if self.dist.active:
                row["param_sum"] = self.dist.check_replicas(self.model)
            score = row.get(cfg.selection, math.nan)
            improved = math.isfinite(score) and score > self.best
            if improved:
                self.best = score
            row["best"] = self.best
            self.history.append(row)
            if self.dist.main:
                resumable = self._checkpoint_due(epoch, last_checkpoint)
                self._save(epoch, row, improved, resumable)
                if resumable:
                    last_checkpoint = time.monotonic()
                self._log(row)
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_bps=f"{row.get('val_bps', math.nan):.3f}",
                            trials_s=f"{row['trials_per_s']:.0f}")
            for callback in self.callbacks:
                callback(self, epoch, row)
        if self._tensorboard is not None:
            self._tensorboard.close()
        best = self.run_dir / "best.safetensors"
        if self.dist.main and not best.exists():  # no finite validation score: keep the last weights
            checkpoint.save_model(best, self.model, {**self.extra, "train": cfg.to_dict(), "epoch": cfg.epochs - 1})
        return best


def progress_disabled() -> bool:
    """Whether the environment turns progress bars off (tqdm's own ``TQDM_DISABLE``, which an explicit
    ``disable=`` would otherwise override); the book's execution sets it."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def top50_trial_r2(rates: torch.Tensor, spikes: torch.Tensor, n_neurons: int = 50) -> float:
    """The reference's selection score: single-trial R^2 of the ``n_neurons`` most active neurons.

    For each of the most active neurons (total count) and each trial, R^2 between its counts and
    predicted rates over the bins; NaN (constant trials) dropped, mean over trials, then neurons.
    """
    top = torch.argsort(spikes.sum(dim=(0, 1)), descending=True)[:n_neurons]
    y, r = spikes[..., top].double(), rates[..., top].double()
    ss_res = ((y - r) ** 2).sum(dim=1)
    ss_tot = ((y - y.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp(min=1e-12), torch.nan)
    return float(torch.nanmean(torch.nanmean(r2, dim=0)))


def train_mean_counts(session: Session) -> torch.Tensor:
    """Each neuron's mean count per bin over the train split (N,)."""
    train = session.splits.get("train")
    spikes = session.spikes if train is None or len(train) == 0 else session.spikes[train]
    return torch.as_tensor(spikes.mean(axis=(0, 1)))


def train(sessions: list[Session], cfg: TrainConfig, run_dir, *, resume: bool = False, callbacks=(),
          progress: bool = True) -> Path:
    """Train a new model on ``sessions`` (one: single-session; several: multi-session pretraining).

    Writes ``run_dir/best.safetensors`` (the selected weights), ``last.safetensors``, ``last.pt``
    (to resume), ``log.csv`` and ``config.json``; returns the path of ``best.safetensors``.
    """
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, [(s.eid, s.n_neurons) for s in sessions])
    for session in sessions:
        model.init_rates(session.eid, train_mean_counts(session))
    with run_lock(run_dir):
        return Trainer(model, sessions, cfg, run_dir, resume=resume, callbacks=callbacks, progress=progress).run()


def finetune_model(pretrained: MaskedModel, session: Session, seed: int = 0) -> MaskedModel:
    """A model for a new session that starts from a pretrained one (reference notes 4.3).

    Everything shared (embedding, transformer, prompt tokens, NDT2's patch layers) is copied; the new
    session gets fresh stitchers (NDT1) and a session token initialised at the mean of the pretrained
    tokens (the reference used the session's untrained row of its table), or a fresh one when the
    pretrained model keeps no session (a reference checkpoint imported without naming its sessions).
    The pretrained sessions' own stitchers are not carried over.
    """
    if session.eid in pretrained.session_ids and \
            pretrained.n_neurons[pretrained.session_ids.index(session.eid)] != session.n_neurons:
        pretrained.session_index(session.eid, session.n_neurons)  # raises: neuron count differs
    torch.manual_seed(seed)
    model = build_model(pretrained.cfg, [])
    shared = {k: v for k, v in pretrained.state_dict().items()
              if not k.startswith(("read_in.", "read_out.", "session_token.", "space."))}
    missing, unexpected = model.load_state_dict(shared, strict=False)
    if unexpected:
        raise ValueError(f"pretrained weights do not fit a fresh {pretrained.cfg.arch} model: {unexpected[:3]}")
    if pretrained.cfg.arch == "ndt2":
        model.space = torch.nn.Embedding.from_pretrained(pretrained.space.weight.detach().clone(), freeze=False)
    model.add_session(session.eid, session.n_neurons)
    if pretrained.cfg.arch == "ndt1":
        model.init_rates(session.eid, train_mean_counts(session))
    if model.session_token is not None and pretrained.session_token is not None and pretrained.session_ids:
        with torch.no_grad():
            model.session_token.weight[0] = pretrained.session_token.weight.mean(dim=0)
    return model


def finetune(checkpoint_path, session: Session, cfg: TrainConfig, run_dir, *, resume: bool = False,
             callbacks=(), progress: bool = True) -> Path:
    """Fine-tune a pretrained checkpoint on a new session (all weights, or only its stitchers and
    session token with ``cfg.freeze_core``). Same outputs as :func:`train`."""
    pretrained, _ = checkpoint.load_model(checkpoint_path, arch=cfg.model.arch)
    if pretrained.cfg.use_prompt != cfg.uses_prompts:
        raise ValueError(f"{checkpoint_path}: the checkpoint was trained "
                         f"{'with' if pretrained.cfg.use_prompt else 'without'} prompts; fine-tune it with the "
                         f"same masking (got masking={cfg.masking!r}, prompted={cfg.prompted})")
    cfg = replace(cfg, model=pretrained.cfg)
    model = finetune_model(pretrained, session, cfg.seed)
    with run_lock(run_dir):
        return Trainer(model, [session], cfg, run_dir, resume=resume, callbacks=callbacks, progress=progress,
                       extra={"pretrained": str(checkpoint_path)}).run()

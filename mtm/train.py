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
  validation split (:mod:`mtm.metrics`) and the best weights are kept (``best.safetensors``).
  ``selection="val_bps"`` (the default) is the pooled bits per spike of the masked entries, masks
  drawn from a fixed seed so every epoch and every training seed is scored on the same masks (an MtM
  run: the mean over its four schemes, each on a quarter of the validation trials): the quantity the
  paper's tables report. ``"r2_top50"`` is the reference's criterion (single-trial R^2 of the 50 most active
  validation neurons), noisier (re-drawn masks, 50 neurons) and blind to rate calibration.
* Early stopping (``patience``): a run ends once ``patience`` validations after the warm-up have
  brought no score above the best before them (:func:`plateau_reached`); ``epochs`` is then the
  maximum. The one-cycle schedule stays laid out over that maximum, so a run that stops early
  stops at the learning rate of that epoch of the full schedule (not annealed to its end), and
  validations that end inside the warm-up (epoch + 1 <= ``warmup`` x ``epochs``) never count towards
  the patience: the rate is still rising there (a new best during the warm-up does reset the count).
  Nor do validations before the best score has passed ``patience_floor`` (default 0.05, in the
  selection's units; predicting each neuron's mean rate scores about 0 on both selections):
  multi-session and small-session runs often sit on an early *mean-rate plateau*, validation bits
  per spike about 0, for a number of epochs that differs between seeds, then climb. A run still on
  it trains for all its ``epochs``, so no seed is stopped before it has learnt more than its mean
  rates (``patience_floor=None``: count from the warm-up's end). The best epoch's weights are kept as
  always. The stopping epoch writes ``last.pt`` and its log row says ``stopped: plateau``, so the
  run counts as finished (:meth:`mtm.checkpoint.RunFolder.finished`), and a run resumed from an
  earlier checkpoint repeats its epochs and stops at the same one.
* Staged fine-tuning (``staged_epochs``): the first ``staged_epochs`` epochs train only the session's
  stitchers and token (as ``freeze_core`` does throughout), then every weight, under one schedule
  laid out over all ``epochs`` and one optimiser (the core's Adam moments start when it starts).
* Non-finite losses, validation scores or weights end the run before anything of that epoch is
  saved: a NaN model is never written, let alone as the best.
* Reproducible and resumable: every epoch re-seeds the batch order, the masks and dropout from
  ``(seed, epoch)``, so a run resumed from ``last.pt`` reaches the same weights as one never stopped.
  ``last.pt`` (weights, optimiser, schedule) is written every ``checkpoint_every`` epochs, when
  ``checkpoint_minutes`` have passed since the last one, and after the last epoch; a resumed run
  repeats the epochs after its last checkpoint and reaches the same weights.
* Device and precision (:mod:`mtm.device`): bf16 autocast on GPUs with native bf16, fp16 with a
  gradient scaler on older GPUs, fp32 on the CPU; the loss and the exponential always in fp32.
* GPU: sessions resident on the device as uint8 counts, autocast, optional ``torch.compile``,
  nothing in the training step reads a value back to the host (the loss is summed on the device and
  read once per epoch). Several GPUs or nodes: launch the same entry point with ``torchrun``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

with warnings.catch_warnings():  # tqdm.auto warns in a notebook without ipywidgets, then uses text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from mtm.checkpoint import RunFolder, data_record, load_model, model_description
from mtm.data import Session
from mtm.data.batches import epoch_batches, epoch_seed, maskable_counts
from mtm.device import (PRECISIONS, autocast_dtype, device_precision, pick_device, progress_disabled, training_device,
                        training_module)
from mtm.masking import (MTM_SCHEMES, PROMPT_IDS, REGION_SCHEMES, TRAINING_SCHEMES, MtMSampler, RegionIndex,
                         is_causal, mask_batch, training_ratio)
from mtm.metrics import ValidationBitsPerSpike, top50_trial_r2
from mtm.models import MaskedModel, ModelConfig, build_model, finetune_model, poisson_nll, train_mean_counts

# the chapters import these from here: the device, and a model for a new session
__all__ = ["COMPILE_MODES", "MASKINGS", "SELECTIONS", "TrainConfig", "Trainer", "finetune", "finetune_model",
           "forward_loss", "pick_device", "plateau_reached", "train", "train_mean_counts", "training_step"]

MASKINGS = ("mtm",) + TRAINING_SCHEMES
SELECTIONS = ("val_bps", "r2_top50")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
VALIDATION_SEED = 0  # the validation masks' seed: the same masks whatever the training seed


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
    staged_epochs: int = 0          # fine-tuning: epochs that train only the stitchers and token, before everything
    patience: int | None = None     # stop after this many validations past the warm-up without a better score
    patience_floor: float | None = 0.05  # patience counts only once the best score is above this (None: no floor)

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
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience: expected a positive number of validations or None (train for all epochs), "
                             f"got {self.patience!r}")
        if self.patience_floor is not None and (isinstance(self.patience_floor, bool)
                                                or not isinstance(self.patience_floor, (int, float))
                                                or not math.isfinite(self.patience_floor)):
            raise ValueError(f"patience_floor: expected a finite score (the selection's units; patience counts "
                             f"only once the best validation score is above it) or None, got "
                             f"{self.patience_floor!r}")
        if isinstance(self.staged_epochs, bool) or not isinstance(self.staged_epochs, int) or \
                not 0 <= self.staged_epochs < self.epochs:
            raise ValueError(f"staged_epochs: expected an integer from 0 to epochs - 1 = {self.epochs - 1} (the "
                             f"epochs that train only the session's stitchers and token), got {self.staged_epochs!r}")
        if self.staged_epochs and self.freeze_core:
            raise ValueError("staged_epochs: expected 0 with freeze_core=True (a frozen core never trains; staged "
                             f"fine-tuning trains it after the first epochs), got {self.staged_epochs}")
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
        presets = {"paper": (ModelConfig.paper, dict(eval_every=10, checkpoint_every=10, checkpoint_minutes=10.0)),
                   "small": (ModelConfig.small, dict(epochs=150, lr=2e-3))}
        if name not in presets:
            raise ValueError(f"preset: expected 'small' or 'paper', got {name!r}")
        model, base = presets[name]
        return cls(model=model(**model_overrides), **{**base, **overrides})

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

    def differences(self, other: TrainConfig) -> dict[str, tuple]:
        """{setting: (this value, ``other``'s)} of every setting the two configurations set differently,
        in field order; the model's settings as ``model.<name>`` (``model.use_prompt``)."""
        def flat(cfg: TrainConfig) -> dict:
            values = cfg.to_dict()
            model = values.pop("model")
            return {**values, **{f"model.{k}": v for k, v in model.items()}}

        mine, theirs = flat(self), flat(other)
        return {key: (value, theirs[key]) for key, value in mine.items() if value != theirs[key]}


class SessionTensors:
    """One session on the training device: uint8 counts, region ids, split indices."""

    def __init__(self, session: Session, index: int, device: torch.device):
        self.session, self.index, self.eid = session, index, session.eid
        self.spikes = torch.from_numpy(maskable_counts(session.spikes)).to(device)
        self.regions = RegionIndex.from_labels(session.regions, device)
        self.splits = {name: torch.tensor(np.asarray(idx), dtype=torch.long) for name, idx in session.splits.items()}


def forward_loss(net, spikes: torch.Tensor, regions, session, scheme: str, prompt: int | None, cfg: TrainConfig,
                 generator: torch.Generator, amp_dtype: torch.dtype | None = None):
    """Mask one batch with ``scheme``, predict it, and score the hidden entries.

    ``spikes``: (B, T, N) counts of one session; ``regions``: its (N,) region labels or
    :class:`~mtm.masking.RegionIndex`; ``session``: the session's id or index in ``net``; ``prompt``:
    the scheme's prompt id, or None for a model without prompts; ``cfg`` gives the run's masking ratio
    and patch size; ``amp_dtype``: the autocast precision (None: fp32).
    Returns (the Poisson NLL summed over the targets, the number of targets, the (B, T, N) log-rates,
    the (B, T, N) target mask).
    """
    ratio = training_ratio(scheme, cfg.masking, cfg.mask_ratio)
    masked, target = mask_batch(spikes, scheme, regions, ratio, generator, patch_size=cfg.model.patch_size)
    with torch.autocast(spikes.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        log_rates = net(masked, session, prompt, is_causal(scheme))
    loss, count = poisson_nll(log_rates, spikes, target)
    return loss, count, log_rates, target


def training_step(net, spikes: torch.Tensor, regions, session, scheme: str, prompt: int | None, cfg: TrainConfig,
                  generator: torch.Generator, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None):
    """One optimiser step on one batch, as :class:`Trainer` takes every step: :func:`forward_loss`,
    the gradient of the *summed* loss, the step (through ``scaler`` under fp16), gradients cleared.
    The learning-rate schedule is the caller's. Returns (the summed loss, detached; the number of
    targets), both still on the device."""
    loss, count, _, _ = forward_loss(net, spikes, regions, session, scheme, prompt, cfg, generator, amp_dtype)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:  # fp16: the loss scaled up for backward, a step with inf/NaN gradients skipped
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), count


class Trainer:
    """Trains ``model`` on ``sessions`` with ``cfg``, writing checkpoints and logs to the run folder
    ``run_dir`` (:class:`mtm.checkpoint.RunFolder`, which owns every file of the run).

    Use :func:`train` / :func:`finetune` rather than this class directly. ``callbacks`` are called
    as ``callback(trainer, epoch, row)`` after every epoch with the epoch's log row.
    """

    def __init__(self, model: MaskedModel, sessions: list[Session], cfg: TrainConfig, run_dir,
                 resume: bool = False, callbacks=(), progress: bool = True, extra: dict | None = None):
        self.cfg, self.folder = cfg, RunFolder(run_dir)
        self.device, self.dist = training_device(cfg.device)
        self.precision = device_precision(cfg.precision, self.device)
        self.amp_dtype = autocast_dtype(self.precision, self.device)
        # fp16's narrow range: the loss is scaled up for backward and steps with inf/NaN gradients skipped
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.callbacks, self.progress, self.extra = list(callbacks), progress, dict(extra or {})
        self._check_sessions(model, sessions)
        self.extra.setdefault("data", data_record(sessions))
        self.identity = RunFolder.identity(cfg.to_dict(), model_description(model)["sessions"], self.extra["data"])
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
        if cfg.staged_epochs:  # the core waits (its weights get no gradient, so AdamW leaves them alone)
            for p in model.core_parameters():
                p.requires_grad_(False)
        self.net = training_module(model, self.device, self.dist, cfg.compile)
        self.start_epoch, self.best, self.history = 0, -math.inf, []
        self.saved_epoch = None  # the epoch of the last checkpoint (last.pt) in the folder
        if resume:
            self._resume()
        elif self.dist.main:
            self.folder.refuse_existing()

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
        state = self.folder.resume_state(self.identity)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:  # a run resumed in another precision starts a fresh scale
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.best = int(state["epoch"]) + 1, float(state["best"])
        self.history = json.loads(state["history"])
        self.saved_epoch = int(state["epoch"])

    # ------------------------------------------------------------------ one epoch
    def _scheme(self, sampler: MtMSampler | None, n_regions: int) -> tuple[str, int | None]:
        if sampler is None:
            return self.cfg.masking, None
        scheme, prompt = sampler.sample(n_regions)
        return scheme, prompt if self.cfg.uses_prompts else None

    def _stage(self, epoch: int) -> None:
        """Staged fine-tuning: from epoch ``staged_epochs`` on the core trains too (the training module
        is built again, as DistributedDataParallel and torch.compile see only the trained weights)."""
        if not self.cfg.staged_epochs:
            return
        core = self.model.core_parameters()
        if core[0].requires_grad == (epoch >= self.cfg.staged_epochs):
            return
        for p in core:
            p.requires_grad_(epoch >= self.cfg.staged_epochs)
        self.net = training_module(self.model, self.device, self.dist, self.cfg.compile)

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        self._stage(epoch)
        torch.manual_seed(epoch_seed(cfg.seed, epoch, 1) + self.dist.rank)  # dropout
        generator = torch.Generator(self.device).manual_seed(epoch_seed(cfg.seed, epoch, 2) + self.dist.rank)
        sampler = MtMSampler(MTM_SCHEMES, seed=epoch_seed(cfg.seed, epoch, 3) + self.dist.rank) \
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
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
            loss, count = training_step(self.net, spikes, st.regions, st.index, scheme, prompt, cfg, generator,
                                        self.optimizer, self.scaler, self.amp_dtype)
            self.scheduler.step()
            total_loss += loss
            total_count += count
        totals = self.dist.all_sum(torch.stack([total_loss, total_count]))
        loss_per_entry = float(totals[0] / totals[1].clamp(min=1))  # waits for the device: the epoch's work is done
        seconds = time.perf_counter() - start
        return {"epoch": epoch, "train_loss": loss_per_entry, "lr": lr,
                "seconds": seconds, "trials_per_s": n_trials * self.dist.world / max(seconds, 1e-9)}

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Scores on every session's val split (mean over sessions), the same masks for every epoch and
        every training seed (drawn from :data:`VALIDATION_SEED`).

        ``val_bps``: pooled bits per spike of the masked entries against each neuron's mean rate on
        the val split (:class:`mtm.metrics.ValidationBitsPerSpike`). An MtM run is scored on each of its
        schemes, validation trial ``i`` under scheme ``i mod 4`` (:func:`validation_schemes`), and its
        score is the mean of the four schemes' pooled scores: every seed is scored on the same tasks
        at the cost of one pass over the split. (Drawing a scheme per batch, as training does, scored a
        20-trial split on the one or two schemes its two batches drew, so seeds were scored on
        different tasks: one seed's split was mostly inter-region prediction, the hardest.)
        ``r2_top50``: :func:`mtm.metrics.top50_trial_r2` of the same predictions (logged whatever the selection, so
        one run's log shows which epoch either criterion keeps).
        """
        cfg = self.cfg
        self.model.eval()
        scores = {"val_bps": [], "r2_top50": []}
        for st in self.data:
            val = st.splits.get("val")
            if val is None or len(val) == 0:
                continue
            spikes_all = st.spikes[val.to(self.device)]
            rates, counts, bps = [], [], []
            for k, scheme in enumerate(validation_schemes(cfg)):
                if k >= len(val):  # a split of fewer trials than schemes: the first len(val) schemes
                    break
                trials = torch.arange(k, len(val), len(validation_schemes(cfg)), device=self.device)
                generator = torch.Generator(self.device).manual_seed(epoch_seed(VALIDATION_SEED, k, 7))
                prompt = PROMPT_IDS[scheme] if cfg.uses_prompts else None
                score = ValidationBitsPerSpike(spikes_all)
                for i in range(0, len(trials), cfg.batch_size):
                    spikes = spikes_all[trials[i:i + cfg.batch_size]]
                    _, _, log_rates, target = forward_loss(self.model, spikes, st.regions, st.index, scheme, prompt,
                                                           cfg, generator, self.amp_dtype)
                    rates.append(score.add(log_rates, spikes, target))
                    counts.append(spikes.float())
                bps.append(score.value())
            scores["val_bps"].append(float(np.mean(bps)))
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

    def _check_finite(self, epoch: int, row: dict) -> None:
        """End the run, before anything of ``epoch`` is saved, when its training loss, its validation
        score or the weights are not finite: NaN weights are never saved, let alone called best."""
        what = [f"{name} became {row[key]}" for key, name in (("train_loss", "training loss"),
                                                               ("val_bps", "validation score val_bps"))
                if not math.isfinite(row.get(key, 0.0))]
        if not what and not bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all()):
            what = ["weights became non-finite"]
        if what:
            kept = (f"the last finite checkpoint stays: {self.folder.state} (epoch {self.saved_epoch})"
                    if self.saved_epoch is not None else "no checkpoint was written before it")
            raise FloatingPointError(f"{what[0]} in epoch {epoch}; the run stops and nothing of that epoch is saved "
                                     f"({kept}). Lower the learning rate or check the data.")

    def _save(self, epoch: int, row: dict, improved: bool, resumable: bool) -> None:
        """``best.safetensors`` when the score ``improved``; ``last.safetensors`` and ``last.pt`` when ``resumable``."""
        extra = {**self.extra, "train": self.cfg.to_dict(), "epoch": epoch, "scores": row}
        if improved:
            self.folder.save_best(self.model, extra)
        if resumable:
            self.folder.save_last(self.model, extra, self.identity, optimizer=self.optimizer, scheduler=self.scheduler,
                                  scaler=self.scaler, epoch=epoch, best=self.best, history=self.history)
            self.saved_epoch = epoch

    def run(self) -> Path:
        """Train for the remaining epochs; returns the path of the best checkpoint."""
        cfg = self.cfg
        if self.dist.main:
            self.folder.start(cfg.to_dict(), self.model)
        bar = tqdm(range(self.start_epoch, cfg.epochs), desc=f"train {cfg.masking}", unit="epoch",
                   disable=not (self.progress and self.dist.main) or progress_disabled(), initial=self.start_epoch,
                   total=cfg.epochs)
        last_checkpoint = time.monotonic()
        for epoch in bar:
            if plateau_reached(self.history, cfg):  # resumed from the checkpoint of the epoch it stopped at
                break
            row = self.train_epoch(epoch)
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                row.update(self.validate())
            self._check_finite(epoch, row)
            if self.dist.active:
                row["param_sum"] = self.dist.check_replicas(self.model)
            score = row.get(cfg.selection, math.nan)
            improved = math.isfinite(score) and score > self.best
            if improved:
                self.best = score
            row["best"] = self.best
            stop = plateau_reached([*self.history, row], cfg)
            if stop:
                row["stopped"] = "plateau"
            self.history.append(row)
            if self.dist.main:
                resumable = self._checkpoint_due(epoch, last_checkpoint) or stop
                self._save(epoch, row, improved, resumable)
                if resumable:
                    last_checkpoint = time.monotonic()
                self.folder.write_log(self.history)
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_bps=f"{row.get('val_bps', math.nan):.3f}",
                            trials_s=f"{row['trials_per_s']:.0f}")
            for callback in self.callbacks:
                callback(self, epoch, row)
            if stop:
                break
        bar.close()
        self.folder.close()
        if self.dist.main and not self.folder.best.exists():  # no finite validation score: keep the last weights
            self.folder.save_best(self.model, {**self.extra, "train": cfg.to_dict(), "epoch": cfg.epochs - 1})
        return self.folder.best


def validation_schemes(cfg: TrainConfig) -> tuple[str, ...]:
    """The masking schemes a run is validated on: MtM's four (:data:`mtm.masking.MTM_SCHEMES`), taking turns
    over the validation trials, or the run's one scheme."""
    return MTM_SCHEMES if cfg.masking == "mtm" else (cfg.masking,)


def plateau_reached(history: list[dict], cfg: TrainConfig) -> bool:
    """Whether a run with ``cfg.patience`` stops after the last of its log rows ``history``: its last
    ``patience`` validations that ended after the warm-up (epoch + 1 > ``warmup`` x ``epochs``), with a
    best score before them above ``cfg.patience_floor``, each scored no better (``cfg.selection``)
    than that best. A run whose best has not passed the floor (still on its early mean-rate plateau)
    never stops. Always False without patience."""
    if cfg.patience is None:
        return False
    floor = -math.inf if cfg.patience_floor is None else cfg.patience_floor
    best, stale = -math.inf, 0
    for row in history:
        score = row.get(cfg.selection)
        if score is None or not math.isfinite(score):
            continue
        if score > best:
            best, stale = score, 0
        elif row["epoch"] + 1 > cfg.warmup * cfg.epochs and best > floor:
            stale += 1
    return stale >= cfg.patience


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
    with RunFolder(run_dir).lock():
        return Trainer(model, sessions, cfg, run_dir, resume=resume, callbacks=callbacks, progress=progress).run()


def finetune(checkpoint_path, session: Session, cfg: TrainConfig, run_dir, *, resume: bool = False,
             callbacks=(), progress: bool = True) -> Path:
    """Fine-tune a pretrained checkpoint on a new session: every weight (the reference's protocol),
    only its stitchers and session token (``cfg.freeze_core``), or those first and then every weight
    (``cfg.staged_epochs``: staged). Same outputs as :func:`train`."""
    pretrained, _ = load_model(checkpoint_path, arch=cfg.model.arch)
    if pretrained.cfg.use_prompt != cfg.uses_prompts:
        raise ValueError(f"{checkpoint_path}: the checkpoint was trained "
                         f"{'with' if pretrained.cfg.use_prompt else 'without'} prompts; fine-tune it with the "
                         f"same masking (got masking={cfg.masking!r}, prompted={cfg.prompted})")
    cfg = replace(cfg, model=pretrained.cfg)
    model = finetune_model(pretrained, session, cfg.seed)
    with RunFolder(run_dir).lock():
        return Trainer(model, [session], cfg, run_dir, resume=resume, callbacks=callbacks, progress=progress,
                       extra={"pretrained": str(checkpoint_path)}).run()

r"""The four activity-prediction tasks of MtM (reference notes 5.2-5.3, peers notes 1.2); their
scores (bits per spike, Poisson D^2, R^2) are defined in :mod:`mtm.metrics`. BrainWideBench's two
tasks, which hold out other neurons and bins, are in :mod:`mtm.bwb`.

Tasks (each neuron gets exactly one score per task, on the test split)
----------------------------------------------------------------------
=================  ==========================================================  ===============
task               held out (zeroed in the input)                               scored
=================  ==========================================================  ===============
``co-smooth``      neuron i, all bins; one configuration per neuron             neuron i
``forward-pred``   the last 10 bins (200 ms), all neurons; one configuration    bins 90-99
``inter-region``   every neuron of region r; one configuration per region       region r
``intra-region``   every neuron outside i's region and neuron i; one per neuron neuron i
=================  ==========================================================  ===============

A prompted model gets the matching prompt (neuron, causal, inter-region, intra-region); forward
prediction uses causal attention for a prompted MtM model (its causal prompt) and a model trained with
the causal scheme alone, and bidirectional attention otherwise (the temporal baseline and MtM without
prompts, whose reference evaluation passes the run's own masking mode, not ``causal``). The held-out configurations are batched
(many configurations x trials per forward pass), so a session costs at most ``N`` passes over the test
split for co-smoothing and intra-region, in a few hundred large batches rather than N loops; and a
configuration is not run on a trial where the neurons it hides have no spike (the input is unchanged),
which is exact and skips a fifth of the passes on the synthetic sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mtm.masking import PROMPT_IDS, TRAINING_SCHEMES
from mtm.metrics import as_trials_array, check_rates, poisson_d2, poisson_scores
from mtm.metrics import bits_per_spike  # noqa: F401  (chapter 5 imports it from here)

TASKS = ("co-smooth", "forward-pred", "intra-region", "inter-region")
TASK_PROMPT = {"co-smooth": "neuron", "forward-pred": "causal", "intra-region": "intra-region",
               "inter-region": "inter-region"}
FORWARD_BINS = 10
CAUSAL_MASKINGS = ("mtm", "causal")


@dataclass
class TaskResult:
    """One task on one session: predicted rates on the scored window and the scores."""

    task: str
    rates: np.ndarray          # (K, T_scored, N) predicted expected counts per bin
    spikes: np.ndarray         # (K, T_scored, N) the true counts they are scored against
    bins: np.ndarray           # (T_scored,) indices of the scored bins
    bps: np.ndarray = field(init=False)      # (N,) MtM per-neuron bits per spike
    co_bps: float = field(init=False)        # NLB pooled bits per spike
    d2: np.ndarray = field(init=False)       # (N,) per-neuron Poisson D^2

    def __post_init__(self):
        rates, spikes = check_rates(self.rates, self.spikes)
        self.bps, self.co_bps = poisson_scores(rates, spikes)
        self.d2 = poisson_d2(rates, spikes, per_neuron=True)

    @property
    def mean_bps(self) -> float:
        """The session score of the paper's tables: NaN-mean of the per-neuron bps."""
        return float(np.nanmean(self.bps)) if np.isfinite(self.bps).any() else math.nan

    @property
    def mean_d2(self) -> float:
        """Poisson D^2 as BrainWideBench summarises it: the mean over the neurons where it is defined."""
        return float(np.nanmean(self.d2)) if np.isfinite(self.d2).any() else math.nan


#: The session scores of a :class:`TaskResult`: the attribute each name of :func:`task_scores` reads.
SCORES = {"bps": "mean_bps", "d2": "mean_d2", "co_bps": "co_bps"}


def task_scores(results: dict[str, TaskResult], score: str = "bps") -> dict[str, float]:
    """{task: session score} of :func:`evaluate_model` or :func:`evaluate_rates` results: each
    task's :attr:`TaskResult.mean_bps` (``score="bps"``), the number the paper's tables report, its
    :attr:`TaskResult.mean_d2` (``score="d2"``), or NLB's pooled :attr:`TaskResult.co_bps`
    (``score="co_bps"``)."""
    if score not in SCORES:
        raise ValueError(f"score: expected one of {tuple(SCORES)}, got {score!r}")
    return {task: float(getattr(result, SCORES[score])) for task, result in results.items()}


def region_scores(result: TaskResult, regions) -> dict[str, float]:
    """{region: the NaN-mean of the per-neuron bits per spike of its neurons} of one task's result, in
    the order the regions first appear; NaN for a region none of whose neurons spiked in the scored
    window. ``regions``: (N,) the session's region of each neuron."""
    regions = np.asarray(regions).astype(str)
    if regions.shape != result.bps.shape:
        raise ValueError(f"regions: expected one region per neuron ({result.bps.shape[0]}), got shape {regions.shape}")
    scores = {}
    for region in dict.fromkeys(regions.tolist()):
        bps = result.bps[regions == region]
        scores[region] = float(np.nanmean(bps)) if np.isfinite(bps).any() else math.nan
    return scores


def task_configurations(task: str, regions) -> tuple[np.ndarray, np.ndarray]:
    """The held-out neuron masks of a task: ``hidden`` (M, N) and ``scored`` (M, N), both bool.

    Forward prediction holds out bins, not neurons: one configuration, nothing hidden, all scored.
    """
    regions = np.asarray(regions).astype(str)
    n = len(regions)
    if task == "co-smooth":
        eye = np.eye(n, dtype=bool)
        return eye, eye
    if task == "forward-pred":
        return np.zeros((1, n), dtype=bool), np.ones((1, n), dtype=bool)
    names = list(dict.fromkeys(regions.tolist()))
    if len(names) < 2:
        raise ValueError(f"regions: the {task} task needs at least two regions, the session has {names}")
    if task == "inter-region":
        hidden = np.stack([regions == r for r in names])
        return hidden, hidden
    if task == "intra-region":
        same = regions[:, None] == regions[None, :]
        eye = np.eye(n, dtype=bool)
        return ~same | eye, eye
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


def scored_bins(task: str, n_bins: int) -> np.ndarray:
    """The bins a task scores: the last :data:`FORWARD_BINS` for forward prediction (which needs more
    bins than that to predict from), else all ``n_bins``."""
    if task != "forward-pred":
        return np.arange(n_bins)
    if n_bins <= FORWARD_BINS:
        raise ValueError(f"n_bins: forward prediction scores the last {FORWARD_BINS} bins from the ones before, "
                         f"so it needs more than {FORWARD_BINS} bins; the session has {n_bins}")
    return np.arange(n_bins - FORWARD_BINS, n_bins)


def heldout_passes(hidden: np.ndarray, owner: np.ndarray, active: np.ndarray):
    """The forward passes a held-out evaluation needs: one per distinct input.

    Configuration m on trial k zeroes the neurons ``hidden[m]`` (M, N); ``owner`` (N,) is the
    configuration that scores each neuron, ``active`` (K, N) whether a neuron spiked in a trial. Inputs
    that differ only in zeroing silent neurons are the same, so they share a pass. Returns
    ``pass_trial`` (P,) and ``pass_config`` (P,), the trial and a configuration of each pass (passes
    ordered by trial; the configuration is the first of the pass's group), and ``pass_of`` (K, N), the
    pass whose output scores neuron n on trial k.

    Vectorised over trials and configurations: each (trial, configuration) is keyed by the bits of
    ``hidden[m] & active[k]`` packed into 64-bit words, one stable sort by (trial, key) groups equal
    inputs, and a group starts wherever the trial or any word changes (exact, no hashing).
    """
    n_trials, n_neurons = active.shape
    n_configs = len(hidden)
    n_words = -(-n_neurons // 64)
    keys = np.zeros((n_trials, n_configs, n_words * 8), dtype=np.uint8)  # packed bits, zero-padded to words
    step = max(1, 2 ** 25 // max(1, n_configs * n_neurons))  # trials per chunk: at most 32 MB of booleans
    for k0 in range(0, n_trials, step):
        keys[k0:k0 + step, :, :-(-n_neurons // 8)] = np.packbits(hidden[None] & active[k0:k0 + step, None], axis=2)
    keys = keys.view(np.uint64).reshape(n_trials * n_configs, n_words)
    trial = np.repeat(np.arange(n_trials, dtype=np.int64), n_configs)
    order = np.lexsort([keys[:, w] for w in reversed(range(n_words))] + [trial])  # trial first; stable
    keys, sorted_trial = keys[order], trial[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_trial[1:] != sorted_trial[:-1]) | (keys[1:] != keys[:-1]).any(axis=1)
    pass_of_config = np.empty(len(order), dtype=np.int64)
    pass_of_config[order] = np.cumsum(starts) - 1
    pass_of = pass_of_config.reshape(n_trials, n_configs)[:, owner]
    return sorted_trial[starts], order[starts] % n_configs, pass_of


@torch.no_grad()
def predict_heldout(model, session_id, spikes: torch.Tensor, hidden: np.ndarray, scored: np.ndarray, *,
                    hidden_bins: np.ndarray | None = None, prompt: int | None = None, causal: bool = False,
                    batch_trials: int = 256, autocast_dtype=None) -> torch.Tensor:
    """Rates (K, T, N) where neuron n comes from the configuration that scores it.

    ``spikes`` (K, T, N) on the model's device; configuration m zeroes the neurons ``hidden[m]``
    (and the bins ``hidden_bins``, if given) in every trial; each neuron must be scored by exactly one
    configuration. Up to ``batch_trials`` trial-configurations run in one forward pass.

    Exact shortcut: zeroing a neuron that has no spike in a trial leaves that trial's input as it was,
    so configurations that differ only in such neurons give the model the same input and run once
    (in co-smoothing, every neuron silent in a trial is scored from that trial's unmasked pass).

    Host work is planned once (:func:`heldout_passes`, vectorised) and its indices reach the device
    in one copy; the loop over forward passes only slices device tensors at host-known offsets, and
    the rates are gathered on the device.
    """
    n_trials, n_bins, n_neurons = spikes.shape
    device = spikes.device
    hidden, scored = np.asarray(hidden, dtype=bool), np.asarray(scored, dtype=bool)
    if not np.array_equal(scored.sum(axis=0), np.ones(n_neurons)):
        raise ValueError("scored: every neuron must be scored by exactly one configuration")
    owner = scored.argmax(axis=0)
    x = spikes.float()
    if hidden_bins is not None:
        x = x.masked_fill(torch.as_tensor(hidden_bins, device=device).view(1, n_bins, 1), 0.0)
    active = (x != 0).any(dim=1).cpu().numpy()  # (K, N): neurons whose zeroing changes the input
    pass_trial, pass_config, pass_of = heldout_passes(hidden, owner, active)
    order = np.argsort(pass_of, axis=None, kind="stable")  # (trial, neuron) pairs grouped by pass
    pair_pass = pass_of.reshape(-1)[order]
    pair_trial, pair_neuron = np.unravel_index(order, (n_trials, n_neurons))
    starts = np.arange(0, len(pass_trial), batch_trials)
    bounds = np.searchsorted(pair_pass, np.append(starts, len(pass_trial)))
    # one copy of every index to the device: pass trial, pass configuration, pair pass, pair trial, pair neuron
    planned = (pass_trial, pass_config, pair_pass, pair_trial, pair_neuron)
    d_pass_trial, d_pass_config, d_pair_pass, d_pair_trial, d_pair_neuron = torch.as_tensor(
        np.concatenate(planned).astype(np.int64)).to(device).split([len(v) for v in planned])
    d_hidden = torch.as_tensor(hidden).to(device)
    rates = torch.empty((n_trials, n_bins, n_neurons), dtype=torch.float32, device=device)
    for chunk, p0 in enumerate(starts):
        p1 = min(p0 + batch_trials, len(pass_trial))
        first, last = int(pass_trial[p0]), int(pass_trial[p1 - 1])  # passes are ordered by trial
        hide = (d_pass_trial[p0:p1] - first, d_hidden[d_pass_config[p0:p1]])
        b0, b1 = bounds[chunk], bounds[chunk + 1]
        trials, neurons = d_pair_trial[b0:b1], d_pair_neuron[b0:b1]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            log_rates = model(x[first:last + 1], session_id, prompt, causal,
                              select=(d_pair_pass[b0:b1] - p0, neurons), hide=hide)  # (pairs, T)
        rates[trials, :, neurons] = torch.exp(log_rates.float())
    return rates


def attention_is_causal(model, training_masking: str, task: str, scheme: str) -> bool:
    """A task's attention (reference notes 5.3): a prompted model attends causally exactly under the
    causal prompt (``scheme``); an unprompted one for forward prediction only when trained with the
    causal scheme alone (the temporal baseline and MtM without prompts stay bidirectional)."""
    if model.cfg.use_prompt and training_masking in CAUSAL_MASKINGS:
        return scheme == "causal"
    return task == "forward-pred" and training_masking == "causal"


def prompt_and_attention(model, training_masking: str, task: str, scheme: str | None = None) -> tuple:
    """The prompt id (None for an unprompted model) and the attention (causal or not) of ``task``, one
    of :data:`TASKS`, under its own prompt (:data:`TASK_PROMPT`) or under ``scheme``."""
    scheme = TASK_PROMPT[task] if scheme is None else scheme
    prompt = PROMPT_IDS[scheme] if model.cfg.use_prompt else None
    return prompt, attention_is_causal(model, training_masking, task, scheme)


def check_training_masking(training_masking: str) -> None:
    """``ValueError`` unless ``training_masking`` is a masking a model can be trained with."""
    maskings = ("mtm",) + TRAINING_SCHEMES
    if training_masking not in maskings:
        raise ValueError(f"training_masking: expected the masking the model was trained with, one of {maskings}; "
                         f"got {training_masking!r}")


def evaluation_device(model, device=None, batch_trials: int | None = None):
    """The model on its evaluation device (``device``, default where its weights are), in eval mode,
    with that device and the trial-configurations per forward pass (default 1024 on a GPU, 128 on the
    CPU)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_trials is None:
        batch_trials = 1024 if device.type == "cuda" else 128
    return model.to(device).eval(), device, batch_trials


def evaluate_model(model, session, training_masking: str, tasks=TASKS, split: str = "test",
                   batch_trials: int | None = None, device=None, autocast_dtype=None,
                   prompts: dict[str, str] | None = None) -> dict[str, TaskResult]:
    """Every activity task for a trained model on one session's ``split`` (reference notes 5.3).

    ``training_masking``: the masking the model was trained with (``mtm``, ``temporal``, ...), which
    decides forward prediction's attention (:func:`attention_is_causal`). ``tasks``: some of
    :data:`TASKS` (or one task's name). ``batch_trials`` trial-configurations per forward pass
    (default 1024 on a GPU, 128 on the CPU). ``prompts``: {task: scheme} to give a prompted model
    another prompt than the task's own (a wrong prompt shows what the prompt does).
    """
    check_training_masking(training_masking)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"tasks: expected some of {TASKS}, got {list(tasks)}")
    prompts = {**TASK_PROMPT, **(prompts or {})}
    for task, scheme in prompts.items():
        if task not in TASKS or scheme not in PROMPT_IDS:
            raise ValueError(f"prompts: expected {{task: scheme}} with tasks of {TASKS} and schemes of "
                             f"{tuple(PROMPT_IDS)}, got {task!r}: {scheme!r}")
    check_split(session, split)
    model, device, batch_trials = evaluation_device(model, device, batch_trials)
    counts = np.array(session.spikes[session.splits[split]])  # (K, T, N) on the host, for scoring
    spikes = torch.as_tensor(counts).to(device)
    results = {}
    for task in tasks:
        hidden, scored = task_configurations(task, session.regions)
        bins = scored_bins(task, session.n_bins)
        hidden_bins = None
        if task == "forward-pred":
            hidden_bins = np.zeros(session.n_bins, dtype=bool)
            hidden_bins[bins] = True
        prompt, causal = prompt_and_attention(model, training_masking, task, prompts[task])
        rates = predict_heldout(model, session.eid, spikes, hidden, scored, hidden_bins=hidden_bins, prompt=prompt,
                                causal=causal, batch_trials=batch_trials, autocast_dtype=autocast_dtype)
        results[task] = TaskResult(task, rates[:, bins].cpu().numpy(), counts[:, bins], bins)  # one copy back
    return results


def evaluate_rates(rates, session, tasks=TASKS, split: str = "test") -> dict[str, TaskResult]:
    """The same scores for given rates (K_all, T, N) of every trial, e.g. the ground truth."""
    check_split(session, split)
    rates = as_trials_array(rates, "rates")
    if rates.shape != session.spikes.shape:
        raise ValueError(f"rates: expected the session's shape {session.spikes.shape}, got {rates.shape}")
    trials = session.splits[split]
    results = {}
    for task in tasks:
        task_configurations(task, session.regions)  # validates the regions
        bins = scored_bins(task, session.n_bins)
        results[task] = TaskResult(task, rates[trials][:, bins], session.spikes[trials][:, bins].astype(float), bins)
    return results


def check_split(session, split: str) -> None:
    """``ValueError`` unless ``session`` has trials and a spike in its ``split``."""
    if split not in session.splits or len(session.splits[split]) == 0:
        raise ValueError(f"split: session {session.eid!r} has no trials in its {split!r} split")
    if not np.any(session.spikes[session.splits[split]]):
        raise ValueError(f"spikes: session {session.eid!r} has no spike in its {split!r} split, so bits per spike "
                         "are undefined for every neuron")


def trial_conditions(session, trials) -> np.ndarray:
    """One label per trial of ``trials``: its (block, choice, reward) combination, from the keys of
    ``session.behavior`` that exist (all trials one condition when none does)."""
    keys = [k for k in ("block", "choice", "reward") if k in session.behavior]
    trials = np.asarray(trials)
    if not keys:
        return np.zeros(len(trials), dtype=int)
    values = np.stack([np.asarray(session.behavior[k])[trials].astype(float) for k in keys], axis=1)
    return np.unique(values, axis=0, return_inverse=True)[1].reshape(-1)

r"""BrainWideBench's activity-prediction suite (TS2) on a :class:`~mtm.data.Session`: its two tasks,
its two scores and its submission files, which the benchmark's own scorer reads.

The IBL BrainWideBench publishes its evaluation contract as the package ``ibl-bwb-eval`` (0.1.0, MIT,
github.com/brainbench-org/ibl-bwb). This module follows it without importing it (the package pins
exact versions of torch, numpy, scipy and scikit-learn): the task definitions of the benchmark's
``IBLBrainWideBenchTS2`` dataset and ``TS2TestMixin`` test loop (the constants below carry their
names), its metrics (Poisson D^2 and pooled bits per spike: :func:`mtm.metrics.poisson_d2` and
:func:`mtm.metrics.bits_per_spike` with ``drop_silent=True``) and the files its ``PredictionsWriter``
writes. :func:`export_ts2` writes them, and the benchmark scores them with::

    python -m ibl_bwb_eval.scoring.ts2 --pred_dir OUT/predictions/LABEL --gt_dir OUT/ground_truth

Its tasks beside mtm's (:mod:`mtm.evaluate`)
--------------------------------------------
==================  ===================================  ===================================================
                    mtm (the MtM paper)                  BrainWideBench TS2
==================  ===================================  ===================================================
model input         one trial (2 s, 100 bins of 20 ms)   a 1 s window (50 bins of 20 ms), at every bin offset
co-smoothing        each neuron hidden alone; every      a fixed 10 % of the units hidden together, the
                    neuron scored over the trial         k = max(1, round(0.1 N)) whose sha256 of
                                                         ``"ts2_co_smoothing_test:" + unit id`` sorts first;
                                                         only they are scored, over the whole window
forward prediction  the last 10 bins (200 ms) hidden     ``forecasting``: the last 5 bins (0.1 s) of each
                    and scored, every neuron             window hidden and scored, every unit
scores              per-neuron bits per spike,           Poisson D^2 (mean over units; the primary metric)
                    NaN-mean over neurons                and bits per spike pooled over the units that spike;
                                                         every (window, bin) is one sample
==================  ===================================  ===================================================

A model runs here as the benchmark runs it: on the window alone, the hidden units or bins zeroed
(the benchmark removes their spikes from the input), with the prompt and attention of the mtm task
it matches (:data:`TASKS`, :func:`mtm.evaluate.prompt_and_attention`), through the same batched
held-out forward passes as mtm's own tasks (:func:`mtm.evaluate.predict_heldout`).

What a Session cannot carry over from the benchmark's own data, and what is done instead:

* Windows. The benchmark slides its windows (stride one bin) over continuous time, inside each task-
  aligned interval (one per valid trial, from about 1 s before stimulus onset to 1 s after feedback) of
  its test split (interleaved 5-minute chunks). A Session holds trial-aligned windows only, so here
  they slide inside each trial of the session's ``test`` split (51 windows in a trial of 100 bins).
  A window is named by its start on a session clock that lays the trials end to end (trial k, first bin
  j: ``(k T + j) * 0.02`` s), since a Session keeps no absolute times; the scorer matches predictions
  and ground truth by that name only.
* Units. A unit's id is its IBL cluster uuid (sessions of :func:`mtm.data.load_ibl_session`), its NWB
  unit id, or ``"<eid>/<index>"``; the benchmark's rule above picks the hidden ones. The benchmark draws
  from the units that pass its filters (probe QC PASS, firing rate above 1 Hz, unit label 1); mtm keeps
  every cluster, so on an IBL session both the pool and the hidden set differ from the benchmark's.
* Context. A benchmark model may see up to 20 s before its window (``context_length``); here, as by
  the benchmark's default, the window alone.
* Bins. The benchmark bins at 20 ms; a session of other bins is refused, not rebinned.

The ground truth (:func:`write_ground_truth`) is the session's own counts in the benchmark's layout.
The benchmark's ground truth for its 29 eval recordings (:func:`mtm.data.bwb_eval_eids`) is its own,
scored on its server from its own data build, and its windows are not these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from mtm.atomic import atomic_write
from mtm.evaluate import (check_split, check_training_masking, evaluation_device, predict_heldout,
                          prompt_and_attention)
from mtm.metrics import bits_per_spike, poisson_d2
from mtm.paths import refuse_existing, safe_name

#: ``ibl_bwb_eval.__version__`` of the contract followed here, stamped into every file as the writer does
EVAL_VERSION = "0.1.0"
#: ``IBLBrainWideBenchTS2.BIN_SIZE`` (s)
BIN_SIZE = 0.02
#: ``COSMOOTH_TARGET_WINDOW`` = ``FORECAST_BASE_WINDOW`` = the default ``context_length`` (s): the window
WINDOW = 1.0
#: ``IBLBrainWideBenchTS2.FORECAST_RATIO``: forecasting hides and scores this share of the window's end
FORECAST_RATIO = 0.1
#: ``TS2_CO_SMOOTHING_HELD_OUT_RATIO`` and ``TS2_CO_SMOOTHING_TEST_SALT`` of the benchmark's data pipeline
HELD_OUT_RATIO = 0.1
HELD_OUT_SALT = "ts2_co_smoothing_test"
#: ``ibl_bwb_eval.EVAL_SEEDS``: the training seeds a reported number is averaged over
EVAL_SEEDS = (43, 44, 45, 46, 47)
#: the benchmark's TS2 tasks, each with the mtm task whose prompt and attention a model uses for it
TASKS = {"co_smoothing": "co-smooth", "forecasting": "forward-pred"}


def task_id(task: str) -> str:
    """The task id a file is filed under (``ibl_bwb_eval.tasks.task_id("ts2", task)``)."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")
    return f"ts2-{task}"


def window_bins() -> int:
    """Bins in one window (50)."""
    return round(WINDOW / BIN_SIZE)


def forecast_bins() -> int:
    """Bins forecasting hides and scores at the end of each window (5)."""
    return round(FORECAST_RATIO * WINDOW / BIN_SIZE)


def check_session(session) -> None:
    """``ValueError`` unless the session is binned as the benchmark bins (20 ms) and its trials hold
    at least one window."""
    if abs(session.bin_size - BIN_SIZE) > 1e-9:
        raise ValueError(f"bin_size: BrainWideBench bins at {BIN_SIZE * 1000:g} ms; session {session.eid!r} has "
                         f"{session.bin_size * 1000:g} ms bins (bin it at 20 ms, e.g. mtm data nwb --bin-size 0.02)")
    if session.n_bins < window_bins():
        raise ValueError(f"n_bins: BrainWideBench's windows are {WINDOW:g} s ({window_bins()} bins); session "
                         f"{session.eid!r} has trials of {session.n_bins} bins")


def unit_ids(session) -> np.ndarray:
    """(N,) str: each neuron's id: its IBL cluster uuid (``meta["neurons"]["cluster_uuid"]``, when every
    neuron has one), its NWB unit id (``meta["unit_ids"]``), else ``"<eid>/<index>"``."""
    neurons = session.meta.get("neurons", {})
    uuids = neurons.get("cluster_uuid") if isinstance(neurons, dict) else None
    if uuids and len(uuids) == session.n_neurons and all(uuids):
        return np.asarray(uuids, dtype=str)
    nwb = session.meta.get("unit_ids")
    if nwb and len(nwb) == session.n_neurons:
        return np.asarray([str(u) for u in nwb])
    return np.asarray([f"{safe_name(session.eid)}/{n}" for n in range(session.n_neurons)])


def held_out_units(ids, salt: str = HELD_OUT_SALT, ratio: float = HELD_OUT_RATIO) -> np.ndarray:
    """(N,) bool: the units co-smoothing hides, by the benchmark's rule (``co_smoothing_held_out_mask``
    of its pipeline): the ``max(1, round(ratio * N))`` whose ``sha256(f"{salt}:{id}")`` hex digests sort
    first; a function of the ids alone, whatever their order."""
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError("ids: expected at least one unit id")
    k = max(1, round(ratio * len(ids)))
    digests = [hashlib.sha256(f"{salt}:{uid}".encode()).hexdigest() for uid in ids]
    mask = np.zeros(len(ids), dtype=bool)
    mask[sorted(range(len(ids)), key=lambda i: digests[i])[:k]] = True
    return mask


def windows(session, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of the ``split`` trials: trial index (W,), first bin (W,), and its start on the
    session clock (W,) float64 s, ``(trial * n_bins + first bin) * 0.02``, ordered by trial then bin."""
    check_session(session)
    trials = np.asarray(session.splits[split], dtype=np.int64)
    offsets = np.arange(session.n_bins - window_bins() + 1, dtype=np.int64)
    trial = np.repeat(trials, offsets.size)
    first = np.tile(offsets, trials.size)
    return trial, first, (trial * session.n_bins + first).astype(np.float64) * BIN_SIZE


def window_counts(session, trial: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The counts of windows (W, 50, N) float32, window w from bin ``first[w]`` of trial ``trial[w]``."""
    bins = first[:, None] + np.arange(window_bins())
    return session.spikes[trial[:, None], bins].astype(np.float32)


def encode_ids(ids) -> np.ndarray:
    """Ids as the benchmark stores them (``ibl_bwb_eval.entity_ids.encode_entity_ids``): an (n, width)
    uint8 matrix of their ASCII bytes, NUL-padded to the longest."""
    rows = [str(i).encode("ascii") for i in ids]
    if not rows or not all(rows):
        raise ValueError("ids: expected non-empty ids")
    out = np.zeros((len(rows), max(map(len, rows))), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i, :len(row)] = np.frombuffer(row, dtype=np.uint8)
    return out


@dataclass
class Ts2Result:
    """One benchmark task on one session: the predictions and counts of the scored entries, as the
    benchmark's files hold them, and the benchmark's two scores."""

    task: str
    rates: np.ndarray               # (W, T_scored, N_scored) float32 predicted expected counts per bin
    targets: np.ndarray             # (W, T_scored, N_scored) float32 counts
    window_timestamps: np.ndarray   # (W,) float64 window starts on the session clock, s
    unit_ids: np.ndarray            # (N_scored,) str
    bps: float = field(init=False)          # pooled over the units that spike
    poisson_d2: float = field(init=False)   # mean over the units where it is defined

    def __post_init__(self):
        self.bps = bits_per_spike(self.rates, self.targets, drop_silent=True)
        self.poisson_d2 = poisson_d2(self.rates, self.targets)

    def log_rates(self) -> np.ndarray:
        """The predictions as the benchmark takes them: log-rates (float32), zero rates as 1e-9 as
        in :mod:`mtm.metrics`."""
        return np.log(np.where(self.rates == 0, np.float32(1e-9), self.rates)).astype(np.float32)


@torch.no_grad()
def predict_ts2(model, session, training_masking: str, tasks=tuple(TASKS), split: str = "test",
                device=None, batch_trials: int | None = None, autocast_dtype=None) -> dict[str, Ts2Result]:
    """The benchmark's tasks for a trained model on one session's ``split`` (the module docstring says
    how they are defined). ``training_masking``, ``device``, ``batch_trials``, ``autocast_dtype``: as
    for :func:`mtm.evaluate.evaluate_model`."""
    check_training_masking(training_masking)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    for task in tasks:
        task_id(task)
    check_split(session, split)
    trial, first, stamps = windows(session, split)
    model, device, batch_trials = evaluation_device(model, device, batch_trials)
    ids, width, n = unit_ids(session), window_bins(), session.n_neurons
    per_chunk = max(1, 2 ** 24 // (width * n))  # windows per pass over the data: at most 64 MB of counts
    results = {}
    for task in tasks:
        if task == "co_smoothing":
            hidden, hidden_bins = held_out_units(ids), None
            scored_bins, scored_units = np.arange(width), hidden
        else:
            hidden, hidden_bins = np.zeros(n, dtype=bool), np.arange(width) >= width - forecast_bins()
            scored_bins, scored_units = np.flatnonzero(hidden_bins), np.ones(n, dtype=bool)
        prompt, causal = prompt_and_attention(model, training_masking, TASKS[task])
        rates, targets = [], []
        for start in range(0, len(trial), per_chunk):
            counts = window_counts(session, trial[start:start + per_chunk], first[start:start + per_chunk])
            predicted = predict_heldout(model, session.eid, torch.as_tensor(counts).to(device), hidden[None],
                                        np.ones((1, n), dtype=bool), hidden_bins=hidden_bins, prompt=prompt,
                                        causal=causal, batch_trials=batch_trials, autocast_dtype=autocast_dtype)
            rates.append(predicted[:, scored_bins][:, :, scored_units].cpu().numpy())
            targets.append(counts[:, scored_bins][:, :, scored_units])
        results[task] = Ts2Result(task, np.concatenate(rates), np.concatenate(targets), stamps, ids[scored_units])
    return results


def recording_id(session) -> str:
    """The recording id of a session's files: its eid, as a safe folder name."""
    return safe_name(session.eid)


def prediction_path(out, label: str, task: str, recording: str, seed: int) -> Path:
    """``out/label/ts2-<task>/recording/seed_<seed>.safetensors``, the path ``PredictionsWriter`` gives
    a TS2 file (its ``path_fn`` adds the recording id)."""
    if safe_name(label) != label:
        raise ValueError(f"label: expected a folder name of letters, digits, '.', '_' and '-', got {label!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return Path(out) / label / task_id(task) / recording / f"seed_{int(seed)}.safetensors"


def ground_truth_path(out, task: str, recording: str) -> Path:
    """``out/ts2-<task>/recording/ground_truth.safetensors``, where the scorer looks for it."""
    return Path(out) / task_id(task) / recording / "ground_truth.safetensors"


def _save(path: Path, tensors: dict, metadata: dict) -> Path:
    """A safetensors file of ``tensors`` (made C-contiguous: ``safetensors.numpy`` writes an array's
    memory as it lies, so a Fortran-ordered one would be read back transposed) and ``metadata`` (as
    strings, as ``PredictionsWriter`` stores it), written atomically."""
    tensors = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={k: str(v) for k, v in metadata.items()}))


def write_predictions(results: dict[str, Ts2Result], out, label: str, seed: int, session,
                      force: bool = False) -> list[Path]:
    """One prediction file per task, as ``TS2TestMixin.test`` writes it through ``PredictionsWriter``:
    ``predictions`` (W, T_scored, N_scored) log-rates, float32 (the writer's default; the benchmark's
    trainer asks for float16), ``window_timestamps`` (W,) float64, ``unit_ids`` (the scored units,
    :func:`encode_ids`); metadata ``label``, ``task``, ``seed``, ``ibl_bwb_eval_version``, then
    ``recording_id``, ``unit_filtering`` (``all_units``: mtm filters no unit), ``dataset_version``
    (``mtm-<source>``: not the benchmark's data build), ``context_window`` and ``bin_size``. A file
    already there is refused unless ``force``. Returns the paths."""
    recording = recording_id(session)
    paths = {task: refuse_existing(prediction_path(out, label, task, recording, seed), force, "prediction file")
             for task in results}
    for task, result in results.items():
        metadata = {"label": label, "task": task_id(task), "seed": int(seed), "ibl_bwb_eval_version": EVAL_VERSION,
                    "recording_id": recording, "unit_filtering": "all_units",
                    "dataset_version": f"mtm-{session.meta.get('source', 'session')}", "context_window": WINDOW,
                    "bin_size": BIN_SIZE}
        _save(paths[task], {"predictions": result.log_rates(), "window_timestamps": result.window_timestamps,
                            "unit_ids": encode_ids(result.unit_ids)}, metadata)
    return list(paths.values())


def write_ground_truth(results: dict[str, Ts2Result], out, session, force: bool = False) -> list[Path]:
    """One ground-truth file per task, as the scorer reads it: ``targets`` (the counts of the scored
    entries, float32), ``window_timestamps`` (float64) and ``unit_ids``. Returns the paths."""
    recording = recording_id(session)
    paths = {task: refuse_existing(ground_truth_path(out, task, recording), force, "ground-truth file")
             for task in results}
    for task, result in results.items():
        metadata = {"task": task_id(task), "recording_id": recording, "bin_size": BIN_SIZE,
                    "context_window": WINDOW, "source": f"mtm-{session.meta.get('source', 'session')}"}
        _save(paths[task], {"targets": result.targets.astype(np.float32), "window_timestamps": result.window_timestamps,
                            "unit_ids": encode_ids(result.unit_ids)}, metadata)
    return list(paths.values())


def check_export(out, label: str, seed: int, session, force: bool = False) -> None:
    """``ValueError`` before any work when :func:`export_ts2` could not write its files: a session the
    benchmark's tasks do not fit, a bad label or seed, or a file already there (unless ``force``)."""
    check_session(session)
    recording = recording_id(session)
    for task in TASKS:
        refuse_existing(prediction_path(Path(out) / "predictions", label, task, recording, seed), force,
                        "prediction file")
        refuse_existing(ground_truth_path(Path(out) / "ground_truth", task, recording), force, "ground-truth file")


def export_ts2(model, session, training_masking: str, out, label: str, seed: int, force: bool = False,
               **predict) -> dict[str, Ts2Result]:
    """Predict the benchmark's two tasks (:func:`predict_ts2`, ``predict`` passed on) and write them under
    ``out``: ``out/predictions/<label>/ts2-<task>/<recording>/seed_<seed>.safetensors`` and the
    ground truth ``out/ground_truth/ts2-<task>/<recording>/ground_truth.safetensors``, so that
    ``python -m ibl_bwb_eval.scoring.ts2 --pred_dir out/predictions/<label> --gt_dir
    out/ground_truth`` scores them. Every file is checked before any is written."""
    check_export(out, label, seed, session, force)
    results = predict_ts2(model, session, training_masking, **predict)
    write_predictions(results, Path(out) / "predictions", label, seed, session, force)
    write_ground_truth(results, Path(out) / "ground_truth", session, force)
    return results


def score_rows(results: dict[str, dict[str, Ts2Result]]) -> dict[str, dict[str, float]]:
    """{model: {"<task> D2": ..., "<task> bps": ...}} of {model: :func:`predict_ts2` results}."""
    return {name: {column: value for task, r in per_task.items()
                   for column, value in ((f"{task} D2", r.poisson_d2), (f"{task} bps", r.bps))}
            for name, per_task in results.items()}

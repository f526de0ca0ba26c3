"""The book's machinery: every chapter's three settings, the Colab set-up, and the command that
executes chapters and records how they were executed.

**Settings.** Each chapter has three literal parameter sets (:data:`CHAPTER_SETTINGS`):

- ``smoke``: tiny sessions and a few epochs, seconds per chapter; what CI runs (``MTM_SMOKE=1``);
- ``book``: what the published book is executed with, on a 2-core CPU within 15 minutes per
  chapter, sized so that every result a chapter discusses can be read. Neurons are cheap for the
  small model and help it most, and longer training beats a bigger model: measured on one
  synthetic session, the small model trained for 500 epochs on 300 neurons and 400 trials is above
  the linear baseline on every activity task (278 s), while 150 epochs (about 100 s) or a 4 x 128
  model for 150 epochs (294 s) are not (co-smooth / forward / intra / inter bits per spike: 500
  epochs 0.43 / 0.08 / 0.44 / 0.29; 150 epochs 0.35 / 0.07 / 0.33 / 0.22; 4 x 128, 150 epochs
  0.36 / 0.12 / 0.34 / 0.22; the linear baseline 0.24 / -0.22 / 0.42 / 0.04). So ``book`` uses
  300-neuron sessions and long training of the ``small`` model;
- ``gpu``: sized for about 20 minutes per chapter on a free Colab GPU (a T4); a bigger session and
  model than ``book``, never the paper's preset (that takes hours to days, see chapter 8).

A chapter's ``parameters`` cell holds literals only (``SETTINGS = "auto"`` and overrides that
default to None); the next cell calls :func:`chapter_settings`, which resolves ``auto`` (``smoke``
under ``MTM_SMOKE=1``, ``gpu`` with a CUDA GPU, ``book`` otherwise), applies the overrides, and
prints one line with the settings, the machine and, for long runs, an estimated run time.

**Execution.** ``python -m mtm.book execute [CHAPTER ...] [--settings book] [--stale]`` executes
chapters in place with papermill and records in each notebook's metadata (key ``mtm``) the hash of
its code cells, the settings, the package version and git commit, the machine and the wall time.
``python -m mtm.book check`` lists what is wrong with the stored outputs (:func:`notebook_problems`).

**Colab.** The repository URL is the book's ``repository.url`` (``_config.yml``) and the release
the chapters install is ``v<package version>``; :func:`colab_badge` and :func:`install_line` give
the lines every chapter carries, and a test checks that they agree.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mtm import __version__, smoke
from mtm.atomic import atomic_write
from mtm.device import device_precision, pick_device
from mtm.plots import plot_mtm_schematic, use_style
from mtm.train import finetune, train

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SETTINGS = ("smoke", "book", "gpu")
#: The settings every stored output must have been executed with.
PUBLISHED_SETTINGS = "book"
#: The release the Colab set-up cells install and the badges open: a tag of the repository.
RELEASE = f"v{__version__}"
#: Notebook metadata key of the execution record.
METADATA_KEY = "mtm"
#: Environment variable naming the folder where chapters share trained runs (one sub-folder per settings).
RUNS_ENV = "MTM_BOOK_RUNS"

#: The tiny model of smoke runs (the ``small`` preset otherwise).
SMOKE_MODEL = dict(hidden=32, n_layers=1, n_heads=2, mlp=64, n_channels=32)
#: A Colab GPU affords a wider and deeper model than the CPU's ``small`` one.
GPU_MODEL = dict(hidden=128, n_layers=4, n_heads=4, mlp=256, n_channels=128)

# One single-session pair of runs (temporal, MtM) shared by chapters 4, 5 and 6: the same session,
# model and training, so the book trains each model once.
_SINGLE = {
    "smoke": dict(PRESET="small", N_TRIALS=60, N_NEURONS=40, EPOCHS=3, MODEL=SMOKE_MODEL),
    "book": dict(PRESET="small", N_TRIALS=400, N_NEURONS=300, EPOCHS=500, MODEL={}),
    "gpu": dict(PRESET="small", N_TRIALS=600, N_NEURONS=500, EPOCHS=1000, MODEL=GPU_MODEL),
}

#: Every chapter's parameters under each settings, literal values only.
CHAPTER_SETTINGS: dict[str, dict[str, dict]] = {
    "01_data": {
        "smoke": dict(N_TRIALS=120, N_NEURONS=60, SWEEP_TRIALS=120, SWEEP_NEURONS=60, SWEEP_POINTS=2),
        "book": dict(N_TRIALS=400, N_NEURONS=300, SWEEP_TRIALS=300, SWEEP_NEURONS=200, SWEEP_POINTS=None),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, SWEEP_TRIALS=300, SWEEP_NEURONS=200, SWEEP_POINTS=None),
    },
    "02_masking": {
        "smoke": dict(N_TRIALS=60, N_NEURONS=50, PATCH_SIZE=16, N_MASKS=30, N_DRAWS=4000),
        "book": dict(N_TRIALS=400, N_NEURONS=300, PATCH_SIZE=128, N_MASKS=200, N_DRAWS=4000),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, PATCH_SIZE=128, N_MASKS=200, N_DRAWS=4000),
    },
    "03_model": {
        "smoke": dict(N_TRIALS=60, N_NEURONS=50, MODEL_SIZE="small", NDT2_PATCH=24),
        "book": dict(N_TRIALS=400, N_NEURONS=300, MODEL_SIZE="paper", NDT2_PATCH=128),
        "gpu": dict(N_TRIALS=400, N_NEURONS=300, MODEL_SIZE="paper", NDT2_PATCH=128),
    },
    "04_training": {name: {**values, "RESUME_EPOCHS": 3} for name, values in _SINGLE.items()},
    "05_evaluation": {name: dict(values) for name, values in _SINGLE.items()},
    "06_decoding": {name: dict(values) for name, values in _SINGLE.items()},
    "07_multisession": {
        "smoke": dict(PRESET="small", N_PRETRAIN=[1, 2], N_TRIALS=40, N_NEURONS=30, EPOCHS=2,
                      PRETRAIN_EPOCHS=2, MODEL=SMOKE_MODEL),
        "book": dict(PRESET="small", N_PRETRAIN=[1, 2, 4], N_TRIALS=250, N_NEURONS=200, EPOCHS=60,
                     PRETRAIN_EPOCHS=80, MODEL={}),
        "gpu": dict(PRESET="small", N_PRETRAIN=[1, 2, 4], N_TRIALS=400, N_NEURONS=300, EPOCHS=150,
                    PRETRAIN_EPOCHS=150, MODEL=GPU_MODEL),
    },
    "08_reproduction": {
        "smoke": dict(PRESET="small", N_PRETRAIN=1, N_TEST=1, N_TRIALS=40, N_NEURONS=30, EPOCHS=2,
                      PRETRAIN_EPOCHS=2, FINETUNE_EPOCHS=2, MODEL=SMOKE_MODEL, WORKERS=1),
        "book": dict(PRESET="small", N_PRETRAIN=3, N_TEST=2, N_TRIALS=300, N_NEURONS=200, EPOCHS=120,
                     PRETRAIN_EPOCHS=100, FINETUNE_EPOCHS=100, MODEL={}, WORKERS=2),
        "gpu": dict(PRESET="small", N_PRETRAIN=4, N_TEST=2, N_TRIALS=400, N_NEURONS=300, EPOCHS=200,
                    PRETRAIN_EPOCHS=200, FINETUNE_EPOCHS=150, MODEL=GPU_MODEL, WORKERS=1),
    },
    "09_experiments": {
        "smoke": dict(N_TEST=1, N_TRIALS=40, N_NEURONS=30, ABLATION_EPOCHS=2, NDT2_EPOCHS=2, NDT2_PRETRAIN=1,
                      NDT2_PATCH=16, MODEL=SMOKE_MODEL, WORKERS=1),
        # the presets' 64-80-neuron sessions leave every model near zero bits per spike; 200 neurons and
        # longer training make the ablation readable within 15 minutes on a 2-core CPU, with one held-out
        # session and NDT2 single-session only (multi-session pretraining is chapter 7's experiment).
        # NDT2 with the paper's 128-neuron patches (2 per bin): the small preset's 32 (7 per bin) made an
        # epoch 5.7 times as slow and, after 30 epochs, left NDT2 below zero on every activity task
        "book": dict(N_TEST=1, N_TRIALS=300, N_NEURONS=200, ABLATION_EPOCHS=150, NDT2_EPOCHS=100, NDT2_PRETRAIN=0,
                     NDT2_PATCH=128, MODEL={}, WORKERS=2),
        "gpu": dict(N_TEST=2, N_TRIALS=400, N_NEURONS=300, ABLATION_EPOCHS=200, NDT2_EPOCHS=100, NDT2_PRETRAIN=2,
                    NDT2_PATCH=128, MODEL={}, WORKERS=1),
    },
}

# Run-time model, calibrated on the measurement quoted in the module docstring: the small model
# trains 500 epochs of a 400-trial, 300-neuron session (280 training trials) in 278 s on a 2-core
# CPU, i.e. about 2 ms per training trial and epoch, validation included; the 4 x 128 model took
# about three times as long per epoch. On a GPU a step of these models is bound by kernel launches,
# not by arithmetic: the per-step figure below is an assumption for a T4, to be replaced by a
# measurement.
CPU_SECONDS_PER_TRIAL_EPOCH = 278 / (500 * 280)
GPU_SECONDS_PER_STEP = 0.015
TRAIN_FRACTION = 0.7
#: Estimates above this many minutes are printed before the chapter runs.
ANNOUNCE_MINUTES = 3.0


def _training_runs(chapter: str, values: dict) -> list[tuple]:
    """(sessions, trials per session, epochs[, cost of an epoch relative to the calibration]) of every
    training run a chapter makes."""
    trials, epochs = values.get("N_TRIALS"), values.get("EPOCHS")
    if chapter in ("04_training", "05_evaluation", "06_decoding"):
        # chapter 4 trains the shared pair and two short resume runs; chapters 5 and 6 reuse the
        # pair when chapter 4 ran before them with the same settings
        runs = [(1, trials, epochs)] * 2
        if chapter == "04_training":
            runs += [(1, trials, values["RESUME_EPOCHS"])] * 2
        return runs
    if chapter == "07_multisession":
        sizes = values["N_PRETRAIN"]
        pretrain = [(n, trials, values["PRETRAIN_EPOCHS"]) for n in sizes] * 2
        # fine-tuning per size and masking, the frozen core, two from scratch, the reference checkpoint
        return pretrain + [(1, trials, epochs)] * (2 * len(sizes) + 4)
    if chapter == "08_reproduction":
        n_pretrain, n_test = values["N_PRETRAIN"], values["N_TEST"]
        runs = [(n_pretrain, trials, values["PRETRAIN_EPOCHS"])] * 2 if n_pretrain else []
        runs += [(1, trials, epochs)] * (2 * n_test)
        runs += [(1, trials, values["FINETUNE_EPOCHS"])] * (2 * n_test if n_pretrain else 0)
        return runs
    if chapter == "09_experiments":
        # an epoch costs about (neurons / 300) of a 300-neuron one, at least half; an NDT2 epoch about
        # p (1 + p / 10) times an NDT1 one for p patch tokens per bin (measured on 200 neurons, two runs
        # side by side: 2 to 2.4, 4.7 and 13 times for 2, 4 and 7 patches; attention grows with the
        # square of the tokens)
        n_test, n_pretrain, neurons = values["N_TEST"], values["NDT2_PRETRAIN"], values["N_NEURONS"]
        size = max(0.5, neurons / 300)
        ablation = [(1, trials, values["ABLATION_EPOCHS"], size)] * (7 * n_test)
        ndt2_epochs, patches = values["NDT2_EPOCHS"], -(-neurons // values["NDT2_PATCH"])
        costs = [size * patches * (1 + patches / 10)] * 2 + [size] * 2  # NDT2's two maskings, then NDT1's
        ndt2 = [(1, trials, ndt2_epochs, cost) for cost in costs] * n_test
        if n_pretrain:
            ndt2 += [(n_pretrain, trials, ndt2_epochs, cost) for cost in costs]
            ndt2 += [(1, trials, ndt2_epochs, cost) for cost in costs] * n_test
        return ablation + ndt2
    return []


def estimate_minutes(chapter: str, values: dict, gpu: bool) -> float:
    """Rough training time of a chapter in minutes (0 for chapters that train nothing), from the
    run-time model above: training trial-epochs on a CPU, optimiser steps on a GPU."""
    total = 0.0
    model = values.get("MODEL") or {}
    slower = 3.0 if model.get("n_layers", 2) >= 4 else 1.0
    for n_sessions, trials, epochs, *cost in _training_runs(chapter, values):
        train_trials = n_sessions * int(trials * TRAIN_FRACTION)
        if gpu:
            total += epochs * -(-train_trials // 16) * GPU_SECONDS_PER_STEP
        else:
            total += epochs * train_trials * CPU_SECONDS_PER_TRIAL_EPOCH * slower * (cost[0] if cost else 1.0)
    return total / 60


def machine() -> dict:
    """The machine a chapter runs on: CPU model, cores, and the GPU's name (None without one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "gpu": gpu}


def describe_machine(record: dict) -> str:
    """One phrase for a :func:`machine` record: "Intel Xeon ..., 2 cores, no GPU"."""
    gpu = f"GPU {record['gpu']}" if record.get("gpu") else "no GPU"
    return f"{record['cpu']}, {record['cores']} cores, {gpu}"


def resolve_settings(name: str) -> str:
    """``auto``: ``smoke`` under ``MTM_SMOKE=1``, ``gpu`` with a CUDA GPU, ``book`` otherwise;
    any other name is checked and returned."""
    if name == "auto":
        if smoke():
            return "smoke"
        return "gpu" if machine()["gpu"] else "book"
    if name not in SETTINGS:
        raise ValueError(f"SETTINGS: expected 'auto' or one of {SETTINGS}, got {name!r}")
    return name


@dataclass
class ChapterSettings:
    """One chapter's resolved parameters: ``settings`` (smoke, book or gpu) and ``values``."""

    chapter: str
    settings: str
    values: dict
    started: float = field(default_factory=time.perf_counter)

    def __getitem__(self, key: str):
        return self.values[key]

    def unpack(self, *keys: str):
        """The values of ``keys``, in order (one value for one key)."""
        values = tuple(self.values[k] for k in keys)
        return values[0] if len(values) == 1 else values

    @property
    def run_dir(self) -> Path:
        """Where the chapters share trained runs: a new temporary folder for smoke runs;
        ``$MTM_BOOK_RUNS/<settings>`` (default ``~/.cache/mtm/book-runs/<settings>``) otherwise."""
        if self.settings == "smoke":
            return Path(tempfile.mkdtemp(prefix="mtm_"))
        base = os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "mtm" / "book-runs"
        folder = Path(base) / self.settings
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def line(self) -> str:
        """The line printed under the parameters: settings, machine, estimate for long runs."""
        record = machine()
        text = f"Settings '{self.settings}' on {describe_machine(record)}"
        minutes = estimate_minutes(self.chapter, self.values, gpu=record["gpu"] is not None)
        if minutes > ANNOUNCE_MINUTES:
            text += f"; training takes roughly {minutes:.0f} minutes here (runs already in the run folder are reused)"
        return text + "."

    def done(self) -> str:
        """The closing line of a chapter: settings, machine and wall time since the settings were resolved."""
        minutes = (time.perf_counter() - self.started) / 60
        commit = git_commit()
        version = f"mtm {__version__}" + (f", commit {commit[:10]}" if commit else "")
        return (f"Executed with settings '{self.settings}' on {describe_machine(machine())} in "
                f"{minutes:.1f} min ({version}).")


def chapter_settings(chapter: str, settings: str = "auto", **overrides) -> ChapterSettings:
    """The parameters of ``chapter`` under ``settings``; ``overrides`` that are not None replace
    the settings' values (a chapter's parameters cell passes its literal overrides here).

    >>> chapter_settings("04_training", "smoke", EPOCHS=5)["EPOCHS"]
    5
    """
    if chapter not in CHAPTER_SETTINGS:
        raise ValueError(f"chapter: expected one of {sorted(CHAPTER_SETTINGS)}, got {chapter!r}")
    name = resolve_settings(settings)
    values = copy.deepcopy(CHAPTER_SETTINGS[chapter][name])
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"{chapter}: unknown parameters {sorted(unknown)}; expected some of {sorted(values)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    resolved = ChapterSettings(chapter, name, values)
    print(resolved.line())
    return resolved


def train_once(sessions, cfg, run_dir, progress: bool = True) -> Path:
    """:func:`mtm.train.train` that reuses a finished run in ``run_dir`` and resumes an interrupted
    one; a run there of other settings or sessions is refused, naming the first difference."""
    run_dir = Path(run_dir)
    return train(sessions, cfg, run_dir, resume=(run_dir / "last.pt").exists(), progress=progress)


def finetune_once(checkpoint_path, session, cfg, run_dir, progress: bool = True) -> Path:
    """:func:`mtm.train.finetune`, reusing or resuming a run in ``run_dir`` as :func:`train_once` does."""
    run_dir = Path(run_dir)
    return finetune(checkpoint_path, session, cfg, run_dir, resume=(run_dir / "last.pt").exists(),
                    progress=progress)


# ---------------------------------------------------------------------------------- Colab
def repository_url(config_path: Path = ROOT / "_config.yml") -> str:
    """The book's ``repository.url`` (the one place the repository's address is written)."""
    import yaml

    url = yaml.safe_load(Path(config_path).read_text())["repository"]["url"]
    return url.rstrip("/")


def colab_badge(notebook: str, url: str | None = None) -> str:
    """The Colab badge of a chapter (``01_data.ipynb``), opening the notebook of the pinned release."""
    url = url or repository_url()
    path = url.removeprefix("https://github.com/")
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{RELEASE}/book/{notebook})")


def install_line(url: str | None = None) -> str:
    """The line of every chapter's set-up cell naming what Colab installs: the pinned release."""
    return f'PACKAGE = "mtm @ git+{url or repository_url()}@{RELEASE}"'


def gpu_check() -> str:
    """What will run where: the device the chapters train on, its precision, and the settings
    ``auto`` picks."""
    device = pick_device()
    precision = device_precision("auto", device)
    where = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "the CPU"
    settings = resolve_settings("auto")
    text = f"Training runs on {where} in {precision}; SETTINGS = 'auto' picks '{settings}'."
    if device.type != "cuda":
        text += " (On Colab: Runtime > Change runtime type > GPU for the 'gpu' settings.)"
    return text


# ---------------------------------------------------------------------------------- execution record
def chapter_paths(names=()) -> list[Path]:
    """The chapters' notebooks, all of them or those named (``04``, ``04_training`` or a path)."""
    every = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).stem
        match = [p for p in every if p.stem == stem or p.stem.split("_")[0] == stem]
        if not match:
            raise ValueError(f"chapter: {name!r} is not a chapter; expected one of {[p.stem for p in every]}")
        chosen += match
    return chosen


def _is_injected(cell: dict) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def code_hash(notebook: dict) -> str:
    """SHA-256 of a notebook's code cells (their sources, in order; papermill's injected cell excluded)."""
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and not _is_injected(cell):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            digest.update(source.strip().encode() + b"\0")
    return digest.hexdigest()


def git_commit(root: Path = ROOT) -> str | None:
    """The working tree's commit, with ``-dirty`` when the package (``mtm/``, ``pyproject.toml``,
    ``requirements.txt``) differs from it: what computes a chapter's outputs besides the chapter's own
    code, which its code hash records (executing chapters in turn rewrites the notebooks, and edits
    to tests or text change no output); None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "mtm",
                                "pyproject.toml", "requirements.txt"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


#: Phrases of output that belong to a smoke run or a failure, never to a published page.
FORBIDDEN_OUTPUT = (re.compile(r"Traceback \(most recent call last\)"), re.compile(r"\bsmoke\b", re.I),
                    re.compile(r"MTM_SMOKE"), re.compile(r"say(s)? nothing"), re.compile(r"nothing can be read"),
                    re.compile(r"\|\s*\d+/\d+ \["), re.compile(r"IProgress not found"),  # progress bars, their warning
                    re.compile(r"\w+Warning: "))  # a warning printed into a page is a defect to fix, not to publish


def _output_text(output: dict) -> str:
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", [])) + output.get("ename", "")
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else "".join(text)
    data = output.get("data", {})
    parts = [data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def has_outputs(notebook: dict) -> bool:
    return any(cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")


def notebook_problems(notebook: dict) -> list[str]:
    """Why a notebook's stored outputs may not be published (empty when they may): no execution
    record, settings other than ``book``, code changed since execution, an error or a traceback, a
    smoke-only phrase in an output."""
    record = notebook.get("metadata", {}).get(METADATA_KEY)
    if record is None:
        return ["holds outputs but no execution record (execute it with python -m mtm.book execute)"]
    problems = []
    if record.get("settings") != PUBLISHED_SETTINGS:
        problems.append(f"executed with settings {record.get('settings')!r}, not {PUBLISHED_SETTINGS!r}")
    if record.get("code_hash") != code_hash(notebook):
        problems.append("its code changed after it was executed (stale: python -m mtm.book execute --stale)")
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: an error output ({output.get('ename')})")
                continue
            text = _output_text(output)
            for pattern in FORBIDDEN_OUTPUT:
                if pattern.search(text):
                    problems.append(f"cell {index}: output matches {pattern.pattern!r}")
    return problems


def coalesce_streams(notebook: dict) -> int:
    """Merge each code cell's consecutive outputs of one stream (stdout, stderr) into one output, as
    Jupyter shows them: a log printed line by line then renders as one block, not one box per line.
    Only adjacent outputs of the same stream merge (a figure between two prints keeps them apart).
    Returns the number of outputs merged away."""
    merged_away = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            previous = kept[-1] if kept else None
            if (previous is not None and output["output_type"] == "stream" == previous["output_type"]
                    and output["name"] == previous["name"]):
                previous["text"] = _output_text(previous) + _output_text(output)
                merged_away += 1
            else:
                kept.append(output)
        cell["outputs"] = kept
    return merged_away


def execute(notebook_path: Path, settings: str = PUBLISHED_SETTINGS, timeout: int = 1800) -> dict:
    """Execute one chapter in place with papermill (``SETTINGS`` set to ``settings``) and record
    how in its metadata; returns the record. The notebook is written only after a successful run."""
    import nbformat
    import papermill

    notebook_path = Path(notebook_path)
    if settings not in SETTINGS:
        raise ValueError(f"settings: expected one of {SETTINGS}, got {settings!r}")
    # progress bars off: in a stored notebook they are thousands of partial lines, not a bar
    env = {RUNS_ENV: os.environ.get(RUNS_ENV) or str(ROOT / "runs" / "book"), "TQDM_DISABLE": "1"}
    previous = {k: os.environ.get(k) for k in (*env, "MTM_SMOKE")}
    os.environ.update(env)
    os.environ.pop("MTM_SMOKE", None)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / notebook_path.name
            papermill.execute_notebook(str(notebook_path), str(out), parameters={"SETTINGS": settings},
                                       kernel_name="python3", cwd=str(notebook_path.parent), progress_bar=False,
                                       execution_timeout=timeout)
            executed = nbformat.read(out, as_version=4)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    wall = time.perf_counter() - started
    executed.cells = [cell for cell in executed.cells if not _is_injected(cell)]
    for cell in executed.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    coalesce_streams(executed)
    executed.metadata.pop("papermill", None)
    record = {"settings": settings, "code_hash": code_hash(executed), "package_version": __version__,
              "commit": git_commit(), "machine": machine(), "wall_time_s": round(wall, 1),
              "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    executed.metadata[METADATA_KEY] = record
    atomic_write(notebook_path, lambda tmp: nbformat.write(executed, tmp))
    return record


#: The introduction's MtM schematic, drawn by :func:`mtm.plots.plot_mtm_schematic`.
SCHEMATIC = BOOK / "mtm_schematic.png"


def write_schematic(path: Path = SCHEMATIC) -> Path:
    """Draw the introduction's MtM schematic with the book's style and save it as a PNG."""
    import matplotlib

    matplotlib.use("Agg")

    use_style()
    figure = plot_mtm_schematic()
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def failure_reason(err: Exception) -> str:
    """One line saying why a chapter failed: the cell's exception for papermill's error (whose own
    message starts with an empty line), the exception's first line otherwise."""
    if hasattr(err, "ename"):
        evalue = str(getattr(err, "evalue", "")).strip().splitlines()
        return f"cell {getattr(err, 'exec_count', '?')} raised {err.ename}: {evalue[0] if evalue else ''}"
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtm.book", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("execute", help="execute chapters in place with papermill and record how")
    run.add_argument("chapters", nargs="*", help="chapters (01, 04_training, book/04_training.ipynb); default all")
    run.add_argument("--settings", default=PUBLISHED_SETTINGS, choices=SETTINGS)
    run.add_argument("--stale", action="store_true", help="only chapters never executed, or whose code changed")
    run.add_argument("--timeout", type=int, default=1800, help="per-cell timeout (s)")
    check = commands.add_parser("check", help="list what keeps stored outputs from being published")
    check.add_argument("chapters", nargs="*")
    args = parser.parse_args(argv)
    try:
        paths = chapter_paths(args.chapters)
    except ValueError as err:
        parser.exit(2, f"mtm: error: {err}\n")
    if args.command == "check":
        failed = 0
        for path in paths:
            notebook = json.loads(path.read_text())
            problems = notebook_problems(notebook) if has_outputs(notebook) else ["not executed"]
            failed += bool(problems)
            print(f"{path.stem}: " + ("; ".join(problems) if problems else "ok"))
        return 1 if failed else 0
    write_schematic()
    for path in paths:
        notebook = json.loads(path.read_text())
        record = notebook.get("metadata", {}).get(METADATA_KEY, {})
        if args.stale and record.get("code_hash") == code_hash(notebook) and record.get("settings") == args.settings:
            print(f"{path.stem}: up to date")
            continue
        print(f"{path.stem}: executing with settings {args.settings} ...", flush=True)
        try:
            record = execute(path, args.settings, args.timeout)
        except Exception as err:  # a failing chapter leaves its notebook as it was
            print(f"mtm: error: {path.stem} failed: {failure_reason(err)}", file=sys.stderr)
            return 1
        print(f"{path.stem}: done in {record['wall_time_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(_main())

"""``mtm reproduce --experiment ndt2``: the paper's Tables 4 and 5, NDT2 beside NDT1.

NDT2 (space-time patches, :mod:`mtm.models.ndt2`) with its baseline, random-token masking (whole
1 bin x ``patch_size`` tokens at ratio 0.3), and with prompted MtM, trained through the same loop as
NDT1: single-session on every held-out session, and pretrained on the pretraining sessions then
fine-tuned on every held-out session. NDT1 with the temporal baseline and prompted MtM is trained
the same way on the same sessions, so the two backbones stand side by side (the paper: NDT1 better
on every metric). A single-session model is trained for as many optimiser steps as pretraining and
fine-tuning together. Paired differences: MtM against each backbone's baseline, pretrained against
from scratch, NDT1 against NDT2. The figure draws the table.
"""

from __future__ import annotations

from pathlib import Path

from mtm.reproduce.paper import PAPER_TABLE4, PAPER_TABLE5
from mtm.reproduce.scheduler import (_run_all, add_pretrain_finetune, add_single, collect, default_workers,
                                     equal_steps_note, scratch_epochs, stamp_log)
from mtm.reproduce.tables import COLUMNS, plot_runs, save_figure, write_tables

#: (architecture, its label) -> {row label: masking}
MODELS = {("ndt2", "NDT2"): {"Random token": "random-token", "MtM (prompted)": "mtm"},
          ("ndt1", "NDT1"): {"Temporal": "temporal", "MtM (prompted)": "mtm"}}
PRESETS = {"small": dict(n_pretrain=2, n_trials=200, n_neurons=64, epochs=25, pretrain_epochs=15,
                         finetune_epochs=15),
           "paper": dict(n_pretrain=34, n_test=5)}


def row_name(name: str, label: str, n_pretrain: int = 0) -> str:
    return f"{name} multi-session ({n_pretrain} pretrain), {label}" if n_pretrain else f"{name} single-session, {label}"


def comparisons(n_pretrain: int) -> list[tuple[str, str, str]]:
    """(label, row a, row b): MtM against each backbone's baseline at each stage; pretrained against
    from scratch; NDT1 against NDT2 for each stage and masking (the baselines: temporal for NDT1,
    random token for NDT2)."""
    stages = (0, n_pretrain) if n_pretrain else (0,)
    stage_name = {0: "single-session"} | ({n_pretrain: "multi-session"} if n_pretrain else {})
    pairs = []
    for (_, name), maskings in MODELS.items():
        baseline, mtm = list(maskings)
        pairs += [(f"{name}: MtM - {baseline}, {stage_name[k]}", row_name(name, mtm, k), row_name(name, baseline, k))
                  for k in stages]
        if n_pretrain:
            pairs += [(f"{name}: pretrained - from scratch, {label}", row_name(name, label, n_pretrain),
                       row_name(name, label)) for label in maskings]
    for k in stages:
        pairs += [(f"NDT1 - NDT2, {stage_name[k]}, {which}", row_name("NDT1", ndt1, k), row_name("NDT2", ndt2, k))
                  for which, ndt1, ndt2 in (("baselines", "Temporal", "Random token"),
                                            ("MtM", "MtM (prompted)", "MtM (prompted)"))]
    return pairs


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Train and score NDT2 and NDT1, each with its baseline and prompted MtM, single and multi-session."""
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    scratch = plan.scratch_steps or "total"
    pretrain_jobs, jobs, rows = {}, {}, {}
    for (arch, name), maskings in MODELS.items():
        for label, masking in maskings.items():
            key = f"{arch}-{masking}"
            pretrain_cfg = plan.train_config(masking, "pretrain", arch=arch)
            finetune_cfg = plan.train_config(masking, "finetune", arch=arch)
            epochs = scratch_epochs(scratch, pretrain, pretrain_cfg, finetune_cfg)
            add_single(jobs, rows, heldout, plan.train_config(masking, arch=arch), out, key, row_name(name, label),
                       plan.seeds, epochs=epochs)
            if pretrain:
                add_pretrain_finetune(pretrain_jobs, jobs, rows, pretrain, heldout, pretrain_cfg, finetune_cfg, out,
                                      key, row_name(name, label, len(pretrain)), plan.seeds)
    jobs = {**pretrain_jobs, **jobs}
    stamp(f"training {len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds), NDT2 and NDT1")
    table, runs = collect(_run_all(jobs, workers, stamp, progress, references=heldout), rows, heldout, stamp)
    # side by side: each training stage, the baselines then MtM, NDT1 above NDT2
    models = sorted(runs, key=lambda r: ("multi" in r, "MtM" in r, r.startswith("NDT2")))
    patch = plan.train_config("mtm", arch="ndt2").model.patch_size
    notes = (f"NDT2 tokens: 1 bin x {patch} neurons. Both backbones trained with the same loop, epochs and "
             "sessions; rows of the same training and masking stand together.")
    if pretrain:
        notes += " " + equal_steps_note(pretrain, heldout, plan.train_config("mtm", "pretrain"),
                                        plan.train_config("mtm", "finetune"), scratch)
    table = {m: table[m] for m in models} | {r: v for r, v in table.items() if r not in models}
    path = write_tables(table, runs, out, models=models, notes=notes, comparisons=comparisons(len(pretrain)),
                        paper=(("The paper, Table 5: NDT2, 5 held-out IBL sessions", PAPER_TABLE5),
                               ("The paper, Table 4: NDT2 single-session, one selected IBL session", PAPER_TABLE4)))
    save_figure(plot_runs(table, runs, COLUMNS, "NDT2 beside NDT1 (Tables 4 and 5)"), out / "results.png")
    stamp(f"done; tables in {path}")
    return table

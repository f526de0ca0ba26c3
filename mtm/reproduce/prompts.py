"""``mtm reproduce --experiment prompts``: the paper's Table 6, and what a prompt does.

Prompted MtM NDT1-stitch pretrained on the pretraining sessions and fine-tuned on every held-out
session. Table 6: choice and whisker motion energy decoded from its log-rates under each of the four
prompts at inference (causal attention under the causal prompt). The wrong-prompt demonstration: every
activity task scored under each prompt; a task's own prompt (co-smooth: neuron, forward prediction:
causal, intra-region, inter-region) tells the model which part of the input is missing, so the other
prompts show what the prompt is worth: each prompt is compared with each task's own prompt as a paired
difference (the same model, seed and session). The figure draws the table.
"""

from __future__ import annotations

from pathlib import Path

from mtm import checkpoint
from mtm.decoding import decode_behavior
from mtm.device import pick_device
from mtm.evaluate import TASK_PROMPT, TASKS, evaluate_model, task_scores
from mtm.masking import PROMPT_IDS
from mtm.reproduce.paper import PAPER_TABLE6
from mtm.reproduce.plan import BEHAVIOR_KEYS
from mtm.reproduce.scheduler import (_run_all, add_pretrain_finetune, collect, default_workers, row_means,
                                     stamp_log)
from mtm.reproduce.tables import COLUMNS, plot_runs, save_figure, write_tables

OWN_PROMPTS = "MtM (prompted), each task's own prompt"
PRESETS = {"small": dict(n_pretrain=2, n_trials=200, n_neurons=64, pretrain_epochs=80, finetune_epochs=80),
           "paper": dict(n_pretrain=34, n_test=5)}


def prompt_row(scheme: str) -> str:
    return f"MtM (prompted), every task under the {scheme} prompt"


def prompt_scores(model, session, scheme: str) -> dict[str, float]:
    """Every activity task and behaviour key of ``session`` scored under the prompt of ``scheme``."""
    row = task_scores(evaluate_model(model, session, "mtm", prompts={task: scheme for task in TASKS}))
    keys = [k for k in BEHAVIOR_KEYS if k in session.behavior]
    row.update(decode_behavior(session, keys, model=model, training_masking="mtm", prompt=scheme))
    return row


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Pretrain and fine-tune prompted MtM, then score every held-out session under each prompt."""
    if not pretrain:
        raise ValueError("n_pretrain: the prompts experiment fine-tunes a pretrained model; give it pretraining "
                         "sessions")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    pretrain_jobs, jobs, rows = {}, {}, {}
    add_pretrain_finetune(pretrain_jobs, jobs, rows, pretrain, heldout, plan.train_config("mtm", "pretrain"),
                          plan.train_config("mtm", "finetune"), out, "mtm", OWN_PROMPTS, plan.seeds)
    stamp(f"training {len(pretrain_jobs) + len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds)")
    done = _run_all({**pretrain_jobs, **jobs}, workers, stamp, progress, references=heldout)
    table, runs = collect(done, rows, heldout, stamp)
    for name, (_, seed, eid) in rows.items():
        session = next(s for s in heldout if s.eid == eid)
        model, _ = checkpoint.load_model(done[name]["best"], device=pick_device(plan.device))
        for scheme in PROMPT_IDS:
            stamp(f"seed {seed}, {eid}: every task under the {scheme} prompt")
            runs.setdefault(prompt_row(scheme), []).append(
                {"seed": seed, "session": eid, "scores": prompt_scores(model, session, scheme)})
    models = [OWN_PROMPTS] + [prompt_row(s) for s in PROMPT_IDS]
    table = {**{m: row_means(runs[m]) for m in models}, **{r: v for r, v in table.items() if r not in models}}
    own = ", ".join(f"{task}: {scheme}" for task, scheme in TASK_PROMPT.items())
    notes = (f"Each task's own prompt ({own}) is the first row; the next rows give every task the same prompt, "
             "so an activity column under another prompt than its own shows what the wrong prompt costs. "
             "Behaviour under each prompt is the paper's Table 6 (choice is reported from the neuron prompt, "
             "whisker ME from the causal prompt, with causal attention).")
    paper = {prompt_row(s): PAPER_TABLE6[label] for s, label in
             (("neuron", "Neuron"), ("causal", "Causal"), ("intra-region", "Intra-region"),
              ("inter-region", "Inter-region"))}
    comparisons = [(f"{scheme} prompt - each task's own", prompt_row(scheme), OWN_PROMPTS) for scheme in PROMPT_IDS]
    path = write_tables(table, {m: runs[m] for m in models}, out, models=models, notes=notes, comparisons=comparisons,
                        paper=(("The paper, Table 6: NDT1-stitch MtM, pretrained and fine-tuned, 5 held-out IBL "
                                "sessions", paper),))
    save_figure(plot_runs(table, {m: runs[m] for m in models}, COLUMNS, "Prompts at inference (Table 6)"),
                out / "results.png")
    stamp(f"done; tables in {path}")
    return table

"""``mtm reproduce`` (the default experiment): the paper's Table 2 on synthetic sessions (or IBL
sessions through ONE).

The pipeline (reference notes 4.2-4.3 and 6):

1. Sessions: ``n_pretrain + n_test`` sessions; the last ``n_test`` are held out (the paper: 34
   pretraining and 5 held-out IBL sessions; the ``small`` preset: a few small synthetic ones).
2. Single-session models, trained from scratch on every held-out session: the temporal baseline and
   prompted MtM (Table 1's two key rows; Table 2's "single-session" rows).
3. Multi-session models: both maskings pretrained on the pretraining sessions, then fine-tuned on
   every held-out session (Table 2's "multi-session" rows).
4. Every model is evaluated on every held-out session's test split: co-smoothing, forward prediction,
   intra-region, inter-region (per-neuron bits per spike, NaN-mean over neurons) and behaviour
   decoding (choice accuracy, whisker motion energy R^2). Scores are averaged over held-out sessions.
5. Beside them: on synthetic sessions each task's oracle (:mod:`mtm.oracle`: the best score the
   task allows, with each model's share of it) and the true rates (not reachable: they include every
   neuron's private noise); the linear-regression baseline (with the decoders on the raw spikes);
   and the paper's own numbers for NDT1-stitch.

Every run folder is kept under ``out``; a finished run is reused and an interrupted one resumed, so
``mtm reproduce`` can be stopped and started again. The figure ``results.png`` draws the table.
"""

from __future__ import annotations

from pathlib import Path

from mtm.data import Session
from mtm.paths import safe_name
from mtm.reproduce.plan import Plan
from mtm.reproduce.scheduler import _run_all, collect, default_workers, stamp_log
from mtm.reproduce.tables import COLUMNS, REFERENCE_ROWS, plot_table, save_figure, write_tables

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRESETS = {"small": dict(pretrain_epochs=100, finetune_epochs=100),  # single-session: TrainConfig's 150
           "paper": dict(n_pretrain=34, n_test=5)}


def run_reproduction(pretrain: list[Session], heldout: list[Session], plan: Plan, out, log=print,
                     workers: int | None = None, progress: bool = True) -> dict:
    """Train, fine-tune and evaluate everything; returns {row name: {column: mean over held-out sessions}}.

    Runs go to ``workers`` processes (default :func:`default_workers`), pretraining first; a
    fine-tuning run starts as soon as its pretraining is done, and each single-session or fine-tuned
    model is evaluated by the worker that trained it. ``progress``: progress bars of runs trained in
    this process.
    """
    out = Path(out)
    stamp = stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    jobs, rows = {}, {}
    if pretrain:  # the longest runs first
        for masking in MASKINGS.values():
            jobs[f"pretrain/{masking}"] = dict(sessions=pretrain, run_dir=str(out / "pretrain" / masking),
                                               cfg=plan.train_config(masking, "pretrain").to_dict())
    for stage in ("single", "finetune") if pretrain else ("single",):
        for label, masking in MASKINGS.items():
            cfg = plan.train_config(masking, stage).to_dict()
            row = f"Single-session, {label}" if stage == "single" else \
                f"Multi-session ({len(pretrain)} pretrain), {label}"
            for session in heldout:
                name = f"{stage}/{masking}/{safe_name(session.eid)}"
                jobs[name] = dict(sessions=[session], cfg=cfg, run_dir=str(out / name), score=True,
                                  after=f"pretrain/{masking}" if stage == "finetune" else None)
                rows[name] = row
    stamp(f"training {len(jobs)} runs ({workers} at a time): pretraining, single-session and fine-tuning; "
          "each single-session and fine-tuned model is evaluated when it finishes")
    done = _run_all(jobs, workers, stamp, progress)
    table, per_session = collect(done, rows, heldout, stamp)
    table_path = write_tables(table, per_session, out, models=list(per_session))
    models = list(per_session)
    save_figure(plot_table(table, models + [r for r in REFERENCE_ROWS if r in table], COLUMNS,
                           "Table 2 on synthetic sessions"), out / "results.png")
    stamp(f"done; tables in {table_path}")
    return table


run = run_reproduction

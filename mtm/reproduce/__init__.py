"""``mtm reproduce``: the paper's experiments on synthetic sessions (or IBL sessions through ONE).

One small module per experiment over one shared scheduler (:mod:`mtm.reproduce.scheduler`: runs in
worker processes, finished runs reused, interrupted ones resumed) and one table writer
(:mod:`mtm.reproduce.tables`); the paper's numbers live once in :mod:`mtm.reproduce.paper`.

=================== =================================================================== ============
``--experiment``    what it trains and scores                                           the paper
=================== =================================================================== ============
``table2``          temporal and prompted MtM, single-session and pretrained+fine-tuned  Table 2
``ablation``        NDT1 single-session, each masking scheme alone and MtM               Tables 1, 3
``ndt2``            NDT2 (random-token baseline, MtM) beside NDT1, single and multi      Tables 4, 5
``prompts``         behaviour under each prompt; every activity task under each prompt   Table 6
``mask-ratio``      ratios 0.1 / 0.3 / 0.6 for temporal, neuron, intra-region, MtM        Table 7
``scaling``         pretraining on more sessions, temporal and MtM                       Figs. 4, 9
``region-decoding`` behaviour from one region at a time; per-neuron view                 Figs. 5, 7
``budget``          score against trials, pretraining sessions, steps and width           (none)
``transfer``        a pretrained model reused: fine-tuned vs from scratch, by new-session  Fig. 4
                    size and pretraining-set size, each pretraining run to its plateau
=================== =================================================================== ============

Each experiment's ``run(pretrain, heldout, plan, out)`` writes ``results.md``, ``results.csv``,
``per_session.json`` and a figure into ``out`` and returns its table. Every model is trained once
per seed of the plan (``--seeds``, default 3); a model row is the mean over seeds and held-out
sessions with its 95 % interval, and each comparison the experiment makes a paired difference with
its interval (``differences.csv``; :mod:`mtm.stats` says why the seed is the unit of replication).
Wherever two conditions are compared they are trained for equal optimiser steps, unless the steps
are what is compared.
"""

from mtm.reproduce.paper import (PAPER_TABLE2, PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5, PAPER_TABLE6,
                                 PAPER_TABLE7)
from mtm.reproduce.plan import BEHAVIOR_KEYS, EXPERIMENTS, Plan, experiment_module
from mtm.reproduce.scheduler import _finished, _run_all, default_workers, run_job, score_model
from mtm.reproduce.table2 import MASKINGS, run_reproduction
from mtm.reproduce.tables import results_markdown, write_tables


def run_experiment(pretrain, heldout, plan: Plan, out, log=print, workers: int | None = None,
                   progress: bool = True) -> dict:
    """Run ``plan.experiment`` on the sessions; returns its table {row: {column: score}}.

    Each session's runs are named by its id (:func:`mtm.paths.safe_name`), so the ids of ``pretrain``
    and of ``heldout`` must each be distinct."""
    for field, sessions in (("pretrain", pretrain), ("heldout", heldout)):
        eids = [session.eid for session in sessions]
        repeated = sorted({eid for eid in eids if eids.count(eid) > 1})
        if repeated:
            raise ValueError(f"{field}: the session ids {repeated} occur more than once; each session's runs "
                             "are named by its id")
    return experiment_module(plan.experiment).run(pretrain, heldout, plan, out, log=log, workers=workers,
                                                  progress=progress)


__all__ = ["BEHAVIOR_KEYS", "EXPERIMENTS", "MASKINGS", "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TABLE4",
           "PAPER_TABLE5", "PAPER_TABLE6", "PAPER_TABLE7", "Plan", "_finished", "_run_all", "default_workers",
           "experiment_module", "results_markdown", "run_experiment", "run_job", "run_reproduction",
           "score_model", "write_tables"]

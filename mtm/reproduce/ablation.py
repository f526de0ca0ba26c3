"""``mtm reproduce --experiment ablation``: the paper's Tables 1 and 3, the masking ablation.

NDT1 trained from scratch on every held-out session with one masking scheme each (temporal, neuron,
causal, intra-region, inter-region; reference notes 3.4: every single scheme at ratio 0.3, causal
being temporal masking with causal attention), MtM without prompts and MtM with prompts; every model
scored on the four activity tasks, choice and whisker motion energy. Whisker ME is decoded with causal
attention for every model, as the reference does; the column ``whisker_me (own attention)`` decodes it
with the attention each model was trained with (causal only for causal and MtM). Every model is
trained for the same epochs on the same session, so for the same optimiser steps. Each scheme is
compared with prompted MtM as a paired difference (same seed, same session). The figure draws the table.
"""

from __future__ import annotations

from pathlib import Path

from mtm.book import listed, verdict
from mtm.evaluate import TASKS
from mtm.reproduce.paper import PAPER_TABLE3
from mtm.reproduce.scheduler import (OWN_ATTENTION_WHISKER, _run_all, add_single, collect, default_workers,
                                     stamp_log)
from mtm.reproduce.tables import COLUMNS, SELECTED_SESSION_NOTE, plot_runs, save_figure, write_tables

#: row name (the paper's) -> (masking, prompted)
SCHEMES = {"Temporal (baseline)": ("temporal", False), "Neuron": ("neuron", False), "Causal": ("causal", False),
           "Intra-region": ("intra-region", False), "Inter-region": ("inter-region", False),
           "MtM (not prompted)": ("mtm", False), "MtM (prompted)": ("mtm", True)}
#: Each scheme's row in words ("prompted MtM is above causal masking").
SCHEME_WORDS = {"Temporal (baseline)": "temporal masking", "Neuron": "neuron masking", "Causal": "causal masking",
                "Intra-region": "intra-region masking", "Inter-region": "inter-region masking",
                "MtM (not prompted)": "MtM without prompts", "MtM (prompted)": "prompted MtM"}
#: The activity task each single scheme is named for: the paper's claim is that each scheme is best, or near
#: best, on its own task and poor on the others, and MtM good on all four.
OWN_TASK = {"Neuron": "co-smooth", "Causal": "forward-pred", "Intra-region": "intra-region",
            "Inter-region": "inter-region"}
PRESETS = {"small": dict(n_pretrain=0, n_trials=200, n_neurons=80, epochs=80),
           "paper": dict(n_pretrain=0, n_test=5)}


def comparisons() -> list[tuple[str, str, str]]:
    """(label, row a, row b): prompted MtM against every other scheme."""
    return [(f"MtM (prompted) - {row}", "MtM (prompted)", row) for row in SCHEMES if row != "MtM (prompted)"]


def own_task_sentence(differences: dict) -> str:
    """The paper's claim read from this run's paired differences ``differences`` ({label of
    :func:`comparisons`: {column: Interval}}): for each single scheme of :data:`OWN_TASK`, what prompted
    MtM minus the scheme says on the scheme's own task (:func:`mtm.book.verdict`), then, counted over the
    other activity tasks of every scheme, how often MtM is above, below or not told apart. No numbers: the
    table of differences holds them."""
    own: dict[str, list[str]] = {}
    others = dict.fromkeys(("above", "below", "apart", "one run"), 0)
    for scheme, task in OWN_TASK.items():
        label = f"MtM (prompted) - {scheme}"
        if label not in differences:
            raise ValueError(f"differences: expected the comparison {label!r} (mtm.reproduce.ablation.comparisons)")
        row = differences[label]
        own.setdefault(verdict(row[task], f"{label} on {task}"), []).append(SCHEME_WORDS[scheme])
        for other in TASKS:
            if other != task:
                others[verdict(row[other], f"{label} on {other}")] += 1
    words = {"above": "prompted MtM is above {}", "below": "prompted MtM is below {}",
             "apart": "prompted MtM cannot be told apart from {}", "one run": "one run only compares MtM with {}"}
    clauses = [words[word].format(listed(own[word])) for word in words if word in own]
    counts = [f"{word} in {others[word]}" for word in ("above", "below")] + [f"not told apart in {others['apart']}"]
    if others["one run"]:
        counts.append(f"compared in one run only in {others['one run']}")
    return (f"On the task each single scheme is named for, {'; '.join(clauses)}; on the other activity tasks of "
            f"the {len(OWN_TASK)} schemes ({sum(others.values())} comparisons), MtM is {listed(counts)}")


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Train and score the seven single-session models on every held-out session (``pretrain`` unused)."""
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    jobs, rows = {}, {}
    for row, (masking, prompted) in SCHEMES.items():
        key = masking if masking != "mtm" else ("mtm" if prompted else "mtm-unprompted")
        add_single(jobs, rows, heldout, plan.train_config(masking, prompted=prompted), out, key, row, plan.seeds,
                   extra_scores=(OWN_ATTENTION_WHISKER,))
    stamp(f"training {len(jobs)} single-session runs ({workers} at a time), each scored when it finishes")
    table, runs = collect(_run_all(jobs, workers, stamp, progress, references=heldout), rows, heldout, stamp)
    columns = COLUMNS + [OWN_ATTENTION_WHISKER]
    notes = (f"{SELECTED_SESSION_NOTE} Single-session NDT1, {len(heldout)} held-out sessions. Whisker ME: "
             "decoded with causal attention for every model (the reference); whisker_me (own attention): with "
             "the attention each model was trained with (bidirectional for temporal, neuron, intra- and "
             "inter-region).")
    path = write_tables(table, runs, out, columns=columns, notes=notes, comparisons=comparisons(),
                        paper=(("The paper, Tables 1 and 3: NDT1, one selected IBL session", PAPER_TABLE3),))
    save_figure(plot_runs(table, runs, COLUMNS, "Masking ablation (Tables 1 and 3), single-session NDT1"),
                out / "results.png")
    stamp(f"done; tables in {path}")
    return table

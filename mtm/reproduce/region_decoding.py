"""``mtm reproduce --experiment region-decoding``: the paper's Fig. 5 (behaviour decoded from one
region at a time) and Fig. 7 (the per-neuron view).

Temporal and prompted MtM NDT1-stitch, pretrained on the pretraining sessions and fine-tuned on every
held-out session (the paper: 34-session models). For every region of a held-out session, every other
region is zeroed, the model runs with the intra-region prompt (the temporal baseline has none) and
bidirectional attention, and choice (logistic regression, accuracy) and whisker motion energy (ridge,
pooled R^2) are decoded from the log-rates of that region's neurons alone (:mod:`mtm.decoding`). Beside
them, the same decoders on the region's raw spikes (linear baseline) and on the log of its true rates.
The paper's reference code for this figure is not public (notes 5.4), and the paper gives no table.

Every seed of the plan repeats the training; a region's score is the mean over seeds and held-out
sessions (the decoders on spikes and true rates need no seed: the mean over sessions); the comparison
of the two maskings is the paired difference of their multi-session rows.

Fig. 7: on the first held-out session, each model's (first seed's) per-neuron co-smoothing bits per spike, PSTH R^2
(conditions: block x choice x reward) and single-trial R^2 against firing rate (``per_neuron.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mtm import checkpoint
from mtm.decoding import decode_choice, decode_continuous
from mtm.device import pick_device
from mtm.evaluate import evaluate_model, trial_conditions
from mtm.masking import PROMPT_IDS
from mtm.metrics import psth_r2, trial_r2
from mtm.paths import safe_name
from mtm.plots import plot_per_neuron, tidy_layout
from mtm.reproduce.scheduler import (_run_all, add_pretrain_finetune, collect, default_workers, mean_rows,
                                     row_intervals, row_means, stamp_log)
from mtm.reproduce.tables import save_figure, write_tables

MASKINGS = {"Temporal": "temporal", "MtM (prompted)": "mtm"}
PRESETS = {"small": dict(n_pretrain=2, n_trials=200, n_neurons=80, pretrain_epochs=80, finetune_epochs=80),
           "paper": dict(n_pretrain=34, n_test=5)}
LINEAR = "Linear (the region's spikes)"
TRUE_RATES = "True rates (log, the region's neurons)"


def multi_row(label: str, n_pretrain: int) -> str:
    return f"Multi-session ({n_pretrain} pretrain), {label}"


@torch.no_grad()
def region_log_rates(model, session, region: str, batch_trials: int = 256) -> np.ndarray:
    """Log-rates (K, T, N_region) of ``region``'s neurons on every trial, every other region zeroed,
    under the intra-region prompt (for a prompted model), bidirectional attention."""
    inside = np.asarray(session.regions) == region
    if not inside.any():
        raise ValueError(f"region: session {session.eid!r} has no neuron in {region!r}")
    device = next(model.parameters()).device
    model.eval()
    spikes = torch.as_tensor(np.array(session.spikes), dtype=torch.float32, device=device)
    spikes = spikes * torch.as_tensor(inside, device=device)
    prompt = PROMPT_IDS["intra-region"] if model.cfg.use_prompt else None
    out = [model(spikes[i:i + batch_trials], session.eid, prompt, False)[..., torch.as_tensor(inside, device=device)]
           for i in range(0, len(spikes), batch_trials)]
    return torch.cat(out).float().cpu().numpy()


def decode_from(features: np.ndarray, session) -> dict[str, float]:
    """Choice accuracy and whisker ME R^2 decoded from ``features`` (K, T, F) of every trial."""
    fit = np.concatenate([session.splits["train"], session.splits.get("val", np.array([], int))])
    test = session.splits["test"]
    scores = {}
    if "choice" in session.behavior:
        scores["choice"] = decode_choice(features, session.behavior["choice"], fit, test)
    if "whisker_me" in session.behavior:
        scores["whisker_me"] = decode_continuous(features, session.behavior["whisker_me"], fit, test)
    return scores


def per_neuron_metrics(model, session, masking: str) -> dict[str, np.ndarray]:
    """Fig. 7's per-neuron scores on the test split: co-smoothing bits per spike, PSTH R^2 and
    single-trial R^2 of the co-smoothing rates (each neuron predicted with itself held out)."""
    result = evaluate_model(model, session, masking, tasks=("co-smooth",))["co-smooth"]
    conditions = trial_conditions(session, session.splits["test"])
    return {"bps": result.bps, "psth_r2": psth_r2(result.rates, result.spikes, conditions),
            "trial_r2": trial_r2(result.rates, result.spikes)}


def run(pretrain, heldout, plan, out, log=print, workers=None, progress=True) -> dict:
    """Pretrain and fine-tune both maskings, then decode from one region at a time; the per-neuron view."""
    if not pretrain:
        raise ValueError("n_pretrain: the region-decoding experiment uses pretrained models; give it pretraining "
                         "sessions")
    out, stamp = Path(out), stamp_log(log)
    workers = default_workers(plan.device) if workers is None else workers
    pretrain_jobs, jobs, rows = {}, {}, {}
    for label, masking in MASKINGS.items():
        add_pretrain_finetune(pretrain_jobs, jobs, rows, pretrain, heldout, plan.train_config(masking, "pretrain"),
                              plan.train_config(masking, "finetune"), out, masking, multi_row(label, len(pretrain)),
                              plan.seeds)
    stamp(f"training {len(pretrain_jobs) + len(jobs)} runs ({workers} at a time, {plan.n_seeds} seeds)")
    done = _run_all({**pretrain_jobs, **jobs}, workers, stamp, progress, references=heldout)
    table, runs = collect(done, rows, heldout, stamp)
    models = list(runs)
    by_model_region: dict[str, list[dict]] = {}  # records {"seed", "session", "scores"}
    by_region: dict[str, list[dict]] = {}        # decoders without a model: one score per session
    neuron_view = {}
    for index, session in enumerate(heldout):
        for seed in plan.seeds:
            stamp(f"seed {seed}, {session.eid}: decoding from one region at a time")
            for label, masking in MASKINGS.items():
                best = done[f"seed{seed}/finetune/{masking}/{safe_name(session.eid)}"]["best"]
                model, _ = checkpoint.load_model(best, device=pick_device(plan.device))
                for region in session.region_names:
                    by_model_region.setdefault(f"{label}: {region}", []).append(
                        {"seed": seed, "session": session.eid,
                         "scores": decode_from(region_log_rates(model, session, region), session)})
                if index == 0 and seed == plan.seeds[0]:
                    neuron_view[label] = per_neuron_metrics(model, session, masking)
        regions = np.asarray(session.regions)
        for region in session.region_names:
            inside = regions == region
            by_region.setdefault(f"{LINEAR}: {region}", []).append(decode_from(session.spikes[..., inside]
                                                                               .astype(np.float32), session))
            if session.rates is not None:
                by_region.setdefault(f"{TRUE_RATES}: {region}", []).append(
                    decode_from(np.log(session.rates[..., inside]), session))
    region_table = {**{name: row_means(records) for name, records in by_model_region.items()},
                    **{name: mean_rows(values) for name, values in by_region.items()}}
    names = list(dict.fromkeys(r for s in heldout for r in s.region_names))
    first = heldout[0]
    rate_hz = first.spikes[first.splits["test"]].mean(axis=(0, 1)) / first.bin_size
    medians = "\n".join(f"| {label} | " + " | ".join(f"{np.nanmedian(v):.2f}" for v in metrics.values()) + " |"
                        for label, metrics in neuron_view.items())
    sections = [("Behaviour from one region at a time (Fig. 5)", _region_markdown(
        region_table, {name: row_intervals(records) for name, records in by_model_region.items()}, names)),
                (f"Per-neuron view (Fig. 7), {first.eid}, seed {plan.seeds[0]}",
                 "Medians over neurons of the co-smoothing rates' scores; every neuron against its firing rate "
                 "in per_neuron.png.\n\n| | Co-smoothing bps | PSTH R^2 | Single-trial R^2 |\n|---|---|---|---|\n"
                 + medians)]
    notes = ("The paper (Fig. 5, 34-session models, IBL sessions) gives no table: MtM decodes better than the "
             "temporal baseline from every region, which falls below chance for choice in several hippocampal "
             "areas of one session.")
    comparisons = [("MtM - Temporal", multi_row("MtM (prompted)", len(pretrain)), multi_row("Temporal", len(pretrain)))]
    path = write_tables(table, runs, out, models=models, notes=notes, sections=sections, paper=(),
                        comparisons=comparisons)
    save_figure(plot_regions(region_table, names), out / "results.png")
    save_figure(plot_per_neuron(neuron_view, rate_hz), out / "per_neuron.png")
    stamp(f"done; tables in {path}")
    return {**table, **region_table}


def _region_markdown(region_table: dict, intervals: dict, regions: list[str]) -> str:
    """Choice and whisker ME tables, a column per region; a model's cells with their interval
    (``intervals``: {row: {column: Interval}})."""
    sources = list(MASKINGS) + [LINEAR, TRUE_RATES]
    lines = []
    for key, title in (("choice", "Choice (accuracy)"), ("whisker_me", "Whisker ME (R^2)")):
        lines += [f"{title}, mean over seeds and held-out sessions (models: ± 95 % interval over seeds):", "",
                  "| | " + " | ".join(regions) + " |", "|---|" + "---|" * len(regions)]
        for source in sources:
            names = [f"{source}: {r}" for r in regions]
            cells = [region_table.get(name, {}).get(key, np.nan) for name in names]
            if not np.isfinite(cells).any():
                continue
            shown = ("–" if not np.isfinite(c) else intervals[name][key].format() if name in intervals
                     else f"{c:.2f}" for name, c in zip(names, cells))
            lines.append(f"| {source} | " + " | ".join(shown) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_regions(region_table: dict, regions: list[str]):
    """Choice and whisker ME decoded from each region: grouped bars, one per source."""
    import matplotlib.pyplot as plt  # matplotlib is loaded only when a figure is made

    sources = list(MASKINGS) + [LINEAR, TRUE_RATES]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    width = 0.8 / len(sources)
    for ax, (key, title) in zip(axes, (("choice", "Choice (accuracy)"), ("whisker_me", "Whisker ME (R^2)"))):
        for i, source in enumerate(sources):
            values = [region_table.get(f"{source}: {r}", {}).get(key, np.nan) for r in regions]
            ax.bar(np.arange(len(regions)) + (i - (len(sources) - 1) / 2) * width, values, width, label=source)
        ax.set_xticks(np.arange(len(regions)), regions)
        ax.set_title(title)
    axes[0].legend(fontsize=7, frameon=False)
    tidy_layout(fig)
    return fig

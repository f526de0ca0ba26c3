"""The ``mtm`` command: what the notebooks do, from a shell.

    mtm data synthetic --preset small --n-sessions 3 --out runs/data     # the embedded default
    mtm data ibl --sessions test --username NAME --out runs/ibl          # IBL through ONE (network, an account)
    mtm data ibl --sessions bwb --username NAME --out runs/bwb_eval      # BrainWideBench's 29 eval recordings
    mtm data ibl --eid EID --cache-dir ~/ibl_cache --local --out DIR     # ... or from a local ALF cache
    mtm data nwb recording.nwb --align stim_on_time --out DIR            # NWB / DANDI files
    mtm data info runs/data                                              # summarise saved sessions
    mtm train --preset small --masking mtm --out runs/mtm                # train on synthetic sessions
    mtm train --data runs/data --masking temporal --out runs/temporal    # ... or on saved sessions
    mtm finetune runs/mtm/best.safetensors --data new.npz --out runs/ft  # a pretrained model, new session
    torchrun --nproc_per_node 4 -m mtm train ...                         # several GPUs (or nodes)
    mtm evaluate runs/mtm/best.safetensors session.npz --out runs/eval   # every task, tables, figures
    mtm evaluate ... --bwb runs/bwb                                      # ... and BrainWideBench's TS2 files
    mtm reproduce --preset small                                         # the paper's Table 2, synthetic data
    mtm reproduce --experiment ablation                                  # ... ablation, ndt2, prompts, mask-ratio, ...
    mtm import-reference model_best.pt --out model.safetensors           # the authors' released weights, safely
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mtm.atomic import atomic_write
from mtm import bwb
from mtm.baselines import LINEAR_ROW, baseline_results, reference_results, reference_rows
from mtm.checkpoint import check_session_fits, import_reference, load_model, read_description, save_model
from mtm.data import Session, bwb_eval_eids, heldout_eids, ibl, pretrain_eids, synthetic_sessions, target_eids
from mtm.data.synthetic import World, synthetic_session
from mtm.decoding import decode_behavior
from mtm.device import pick_device
from mtm.evaluate import TASKS, evaluate_model, task_scores, trial_conditions
from mtm.masking import TRAINING_SCHEMES
from mtm.metrics import psth_r2, trial_r2
from mtm.models import ModelConfig
from mtm.paths import refuse_existing, safe_name
from mtm.plots import plot_bps_scatter, plot_per_neuron, plot_predicted_vs_true, results_table
from mtm.reproduce import BEHAVIOR_KEYS, Plan, results_markdown, run_experiment
from mtm.tables import write_scores_csv
from mtm.train import TrainConfig, finetune, train


def _session_files(paths: list[str]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.npz")))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no session file or folder at {path}")
    if not files:
        raise FileNotFoundError(f"no .npz session files in {', '.join(paths)}")
    return files


def describe(session) -> str:
    """A few lines on a session: its repr, firing statistics and behaviour."""
    rate_hz = session.spikes.mean(axis=(0, 1)) / session.bin_size
    lines = [repr(session),
             f"  firing: mean {rate_hz.mean():.2f} Hz, median {np.median(rate_hz):.2f} Hz, "
             f"max {rate_hz.max():.1f} Hz, {np.mean(rate_hz < 0.5):.0%} of neurons below 0.5 Hz",
             "  by region: " + ", ".join(f"{r} {rate_hz[session.regions == r].mean():.1f} Hz"
                                         for r in session.region_names)]
    if "choice" in session.behavior:
        lines.append(f"  choice: {np.mean(session.behavior['choice'] == 1):.0%} of trials +1")
    if "reward" in session.behavior:
        lines.append(f"  reward: {np.mean(session.behavior['reward']):.0%} of trials rewarded")
    if session.rates is not None:
        lines.append("  ground-truth rates: stored")
    if session.truth is not None:
        lines.append(f"  ground truth: {session.truth.latents.shape[-1]} latents, task inputs and per-neuron "
                     "parameters (oracles in mtm.oracle)")
    return "\n".join(lines)


def _data_synthetic(args) -> None:
    if args.n_sessions < 1:
        raise ValueError(f"--n-sessions: expected a positive number of sessions, got {args.n_sessions}")
    world = World(args.world_seed)
    out = Path(args.out)
    for i in tqdm(range(args.n_sessions), desc="synthetic sessions", unit="session", disable=args.quiet):
        session = synthetic_session(args.seed + i, args.n_trials, args.n_neurons, preset=args.preset, world=world)
        path = session.save(refuse_existing(out / f"{safe_name(session.eid)}.npz", args.force, "session file"))
        print(f"{path}\n{describe(session)}")


def _one_settings(args):
    """Where ONE keeps its settings while a command runs: in the cache folder, unless the user's own
    ``ONE.setup`` login is in use (no account given), which ONE keeps where the user stored it."""
    given = args.username or args.token or os.environ.get("ALYX_LOGIN") or os.environ.get("ALYX_TOKEN")
    if not (getattr(args, "local", False) or given):
        return contextlib.nullcontext()
    return ibl.one_settings_in(Path(args.cache_dir or Path(args.out) / "one_cache") / ibl.ONE_SETTINGS_FOLDER)


def _ibl_client(args, eids: list[str]):
    """The ONE client of ``mtm data ibl`` / ``mtm reproduce --data ibl``: a local ALF cache with
    ``--local``, else the public server with the caller's account (eids checked first, offline)."""
    if getattr(args, "local", False):
        if not args.cache_dir:
            raise ValueError("--local needs --cache-dir (the folder of the ALF cache)")
        from one.api import One  # ONE, an optional dependency, is loaded only for IBL data

        with _one_settings(args):
            return One(cache_dir=args.cache_dir, mode="local")
    for eid in eids:
        ibl.check_eid(eid)
    return ibl.ibl_one(args.cache_dir or Path(args.out) / "one_cache", username=args.username, password=args.password,
                   token=args.token)


def _data_ibl(args) -> None:
    eids = list(args.eid or [])
    if args.eids_file:
        eids += [line.strip() for line in Path(args.eids_file).read_text().splitlines() if line.strip()]
    if args.sessions:
        eids += {"test": heldout_eids, "target": target_eids, "pretrain": pretrain_eids,
                 "bwb": bwb_eval_eids}[args.sessions]()
    if not eids:
        raise ValueError("give --eid, --eids-file or --sessions")
    one = _ibl_client(args, eids)
    with _one_settings(args):
        for path in ibl.save_ibl_sessions(eids, args.out, one=one, force=args.force, spike_sorter=args.spike_sorter,
                                      region_mapping=args.region_mapping):
            print(path)


def _data_nwb(args) -> None:
    from mtm.data.nwb import load_nwb_session  # pynwb, an optional dependency, is loaded only for NWB files

    target = refuse_existing(Path(args.out) / f"{safe_name(Path(args.path).stem)}.npz", args.force, "session file")
    session = load_nwb_session(args.path, align=args.align, window=tuple(args.window), bin_size=args.bin_size,
                               region_column=args.region_column, eid=args.eid)
    path = session.save(target)
    print(f"{path}\n{describe(session)}")
    _warn_if_long(session)


def _warn_if_long(session) -> None:
    """A note on stderr when a session has more bins than a model takes by default (``max_bins``)."""
    limit = ModelConfig().max_bins
    if session.n_bins > limit:
        print(f"mtm: warning: {session.eid} has {session.n_bins} bins, more than the {limit} a model takes by "
              f"default; train on it with --max-bins {session.n_bins}", file=sys.stderr)


def _data_info(args) -> None:
    for path in _session_files(args.paths):
        print(f"{path}\n{describe(Session.load(path))}")


def load_sessions(args) -> list:
    """Sessions from ``--data`` files / folders, else ``--synthetic`` sessions sized by ``--preset``."""
    if args.data:
        return [Session.load(path) for path in _session_files(args.data)]
    preset = "paper" if args.preset == "paper" else "small"
    return synthetic_sessions(args.synthetic, seed=args.seed or 0, preset=preset)


def _train_config(args, base: dict | None = None):
    overrides = dict(base or {})
    for name in ("masking", "epochs", "lr", "batch_size", "selection", "seed", "device", "precision",
                 "eval_every", "checkpoint_every", "checkpoint_minutes", "patience", "patience_floor", "staged_epochs"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "no_prompt", False):
        overrides["prompted"] = False
    if getattr(args, "compile", False):
        overrides["compile"] = True
    if getattr(args, "freeze_core", False):
        overrides["freeze_core"] = True
    model = dict(overrides.pop("model", {}))
    if getattr(args, "arch", None):
        model["arch"] = args.arch
    if getattr(args, "max_bins", None) is not None:
        model["max_bins"] = args.max_bins
    return TrainConfig.preset(args.preset, model=model, **overrides)


def _train(args) -> None:
    sessions = load_sessions(args)
    cfg = _train_config(args)
    print(f"training {cfg.model.arch} with {cfg.masking} masking{' and prompts' if cfg.uses_prompts else ''} "
          f"on {len(sessions)} session(s): {', '.join(s.eid for s in sessions[:5])}{' ...' if len(sessions) > 5 else ''}")
    best = train(sessions, cfg, args.out, resume=args.resume)
    print(f"best checkpoint: {best}")


def _finetune(args) -> None:
    description = read_description(args.checkpoint)
    trained = description.get("extra", {}).get("train", {})
    base = {k: trained[k] for k in ("masking", "prompted", "mask_ratio") if k in trained}
    base["model"] = {"arch": description["model"].get("arch", "ndt1")}  # --arch, if given, must match it
    sessions = load_sessions(args)
    if args.session is not None:
        chosen = [s for s in sessions if s.eid == args.session]
        if not chosen:
            raise ValueError(f"session: no session {args.session!r} in the data; have {[s.eid for s in sessions]}")
        session = chosen[0]
    elif len(sessions) == 1:
        session = sessions[0]
    else:
        raise ValueError(f"session: the data hold {len(sessions)} sessions; name one with --session")
    cfg = _train_config(args, base)
    best = finetune(args.checkpoint, session, cfg, args.out, resume=args.resume)
    print(f"best checkpoint: {best}")


def _evaluate(args) -> None:
    import matplotlib  # matplotlib is loaded only when figures are drawn

    matplotlib.use("Agg")
    session = Session.load(args.session)
    if args.region is not None and args.region not in session.region_names:
        raise ValueError(f"--region: no region {args.region!r} in {session.eid}; have {session.region_names}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file, expected a folder for the tables and figures")
    region = args.region or session.region_names[0]
    files = ["results.md", "results.csv", "per_neuron.png", f"predicted_vs_true_{safe_name(region)}.png"] + \
        [f"bps_{task}.png" for task in TASKS]
    for file in files:
        refuse_existing(out / file, args.force, "result of an earlier evaluation")
    paths = [args.checkpoint] + ([args.compare] if args.compare else [])
    if args.compare and Path(args.compare).resolve() == Path(args.checkpoint).resolve():
        raise ValueError(f"--compare: {args.compare} is the checkpoint being evaluated; compare it with another")
    models, labels = {}, {}  # every checkpoint loaded and checked before anything is written
    for path in paths:
        model, extra = load_model(path, device=pick_device(args.device))
        check_session_fits(path, extra, session)
        masking = read_description(path).get("extra", {}).get("train", {}).get("masking", "mtm")
        models[path], labels[path] = (model, masking), f"{Path(path).parent.name or Path(path).stem} ({masking})"
    if len(set(labels.values())) < len(labels):  # e.g. runs/a/model and runs/b/model: named by their paths
        labels = {path: f"{path} ({models[path][1]})" for path in paths}
    exports = _bwb_exports(args, paths, session)
    out.mkdir(parents=True, exist_ok=True)
    keys = [k for k in BEHAVIOR_KEYS if k in session.behavior]
    rows, results, d2_rows, bwb_results = {}, {}, {}, {}
    for path, (model, masking) in models.items():
        name = labels[path]
        results[name] = evaluate_model(model, session, masking)
        rows[name] = task_scores(results[name])
        d2_rows[name] = task_scores(results[name], "d2")
        rows[name].update(decode_behavior(session, keys, model=model, training_masking=masking))
        if path in exports:
            bwb_results[name] = bwb.predict_ts2(model, session, masking)
    model_rows = list(rows)
    references = reference_results(session)
    rows.update(reference_rows(session, keys, results=references))
    d2_rows.update({row: task_scores(per_task, "d2") for row, per_task in references.items()})
    table = results_markdown(rows, model_rows) + "\n" + _d2_section(d2_rows)
    if bwb_results:
        table += "\n" + _bwb_section(args.bwb, bwb_results, exports, session)
    atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(f"# {session.eid}\n\n{table}\n"))
    bwb_rows = bwb.score_rows(bwb_results)
    csv_rows = {name: {**row, **{f"{task} D2": value for task, value in d2_rows[name].items()},
                       **bwb_rows.get(name, {})} for name, row in rows.items()}
    write_scores_csv(out / "results.csv", csv_rows, next(iter(csv_rows.values())))
    for path, (label, seed) in exports.items():
        bwb.write_predictions(bwb_results[labels[path]], Path(args.bwb) / "predictions", label, seed, session,
                              force=args.force)
    if bwb_results:
        bwb.write_ground_truth(next(iter(bwb_results.values())), Path(args.bwb) / "ground_truth", session,
                               force=args.force)
    names = list(results)
    other = results[names[1]] if len(names) > 1 else baseline_results(session, which=("linear",))["linear"]
    other_name = names[1] if len(names) > 1 else LINEAR_ROW
    rate_hz = session.spikes[session.splits["test"]].mean(axis=(0, 1)) / session.bin_size
    for task, result in results[names[0]].items():
        fig = plot_bps_scatter(other[task].bps, result.bps, other_name, names[0], task, rates_hz=rate_hz)
        atomic_write(out / f"bps_{task}.png", lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=120))
    conditions = trial_conditions(session, session.splits["test"])
    per_neuron = {name: {"bps": r["co-smooth"].bps, "trial_r2": trial_r2(r["co-smooth"].rates, r["co-smooth"].spikes),
                         "psth_r2": psth_r2(r["co-smooth"].rates, r["co-smooth"].spikes, conditions)}
                  for name, r in results.items()}
    fig = plot_per_neuron(per_neuron, rate_hz)
    atomic_write(out / "per_neuron.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    cosmooth = results[names[0]]["co-smooth"]
    fig = plot_predicted_vs_true(cosmooth.spikes, cosmooth.rates, session.regions, region,
                                 bin_size=session.bin_size, t0=session.bin_times()[0] - session.bin_size / 2,
                                 title=f"{names[0]}, co-smoothing")
    atomic_write(out / files[3], lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    print(table)
    print(f"tables and figures in {out}")


def _bwb_exports(args, paths: list[str], session) -> dict[str, tuple[str, int]]:
    """{checkpoint: (label, seed)} of the BrainWideBench files ``--bwb`` writes, checked before any work:
    the label is the run folder's name (or the checkpoint's path, when two share it), the seed the
    training seed the checkpoint records."""
    if not args.bwb:
        return {}
    out = Path(args.bwb)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--bwb: {out} is a file, expected a folder for the benchmark's files")
    names = {path: safe_name(Path(path).parent.name or Path(path).stem) for path in paths}
    if len(set(names.values())) < len(names):
        names = {path: safe_name(Path(path).with_suffix("").as_posix()) for path in paths}
    exports = {}
    for path in paths:
        seed = read_description(path).get("extra", {}).get("train", {}).get("seed", 0)
        bwb.check_export(out, names[path], seed, session, args.force)
        exports[path] = (names[path], seed)
    return exports


def _d2_section(d2_rows: dict) -> str:
    return ("### Poisson D^2 (mean over neurons)\n\n" + results_table(d2_rows, list(TASKS)) +
            "\n\nThe same predictions as the bits per spike above, scored by the share of the explainable "
            "deviance they explain (mtm.metrics.poisson_d2: 1 = the counts themselves, 0 = each neuron's mean "
            "rate), BrainWideBench's primary metric: neurons of different rates on one scale.\n")


def _bwb_section(folder, bwb_results: dict, exports: dict, session) -> str:
    rows = bwb.score_rows(bwb_results)
    files = ", ".join(f"{label} (seed {seed})" for label, seed in exports.values())
    return ("## BrainWideBench TS2\n\n" + results_table(rows, list(next(iter(rows.values())))) +
            "\n\nThe benchmark's tasks and scores, not mtm's (mtm.bwb): 1 s windows at every bin offset of the "
            f"{len(session.splits['test'])} test trials; co_smoothing hides a fixed 10 % of the units together "
            "and scores them, forecasting hides and scores the last 0.1 s of each window. D2: Poisson D^2, mean "
            f"over units; bps: pooled over the units that spike. Predictions of {files} and the ground truth are "
            f"in {folder}; the benchmark's scorer reads them: `python -m ibl_bwb_eval.scoring.ts2 --pred_dir "
            f"{Path(folder) / 'predictions'} --gt_dir {Path(folder) / 'ground_truth'}`.\n")


def _reproduce(args) -> None:
    plan = Plan.for_preset(args.preset, experiment=args.experiment, device=args.device or "auto", epochs=args.epochs,
                           pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs,
                           n_pretrain=args.n_pretrain, n_test=args.n_test, n_seeds=args.seeds,
                           scratch_steps=args.scratch_steps)
    if args.data == "synthetic":
        pretrain, heldout = plan.synthetic_sessions()
    else:
        one = _ibl_client(args, heldout_eids()[:plan.n_test] + pretrain_eids()[:plan.n_pretrain])
        cache = Path(args.out) / "sessions"

        def get(eid):
            path = cache / f"{safe_name(eid)}.npz"
            if path.exists():
                return Session.load(path)
            session = ibl.load_ibl_session(eid, one)
            session.save(path)
            return session

        with _one_settings(args):
            heldout = [get(eid) for eid in heldout_eids()[:plan.n_test]]
            pretrain = [get(eid) for eid in pretrain_eids()[:plan.n_pretrain]]
    out = Path(args.out)
    print(f"reproducing {args.experiment} ({args.preset} preset, {args.data} data): {len(pretrain)} pretraining "
          f"sessions, {len(heldout)} held out; runs in {out}")
    run_experiment(pretrain, heldout, plan, out)
    print((out / "results.md").read_text())


def _session_counts(pairs: list[str]) -> dict[str, int]:
    """``["EID=N", ...]`` -> ``{eid: N}``."""
    counts = {}
    for pair in pairs:
        eid, _, count = pair.rpartition("=")
        if not eid or not count.isdigit():
            raise ValueError(f"--session: expected EID=NEURONS, got {pair!r}")
        counts[eid] = int(count)
    return counts


def _import_reference(args) -> None:
    out = refuse_existing(args.out, args.force, "checkpoint")
    eids = None
    if args.eids_file:
        eids = [line.strip() for line in Path(args.eids_file).read_text().splitlines() if line.strip()]
    model, report = import_reference(args.checkpoint, sessions=_session_counts(args.session or []), eids=eids,
                                     masking=args.masking)
    path = save_model(out, model, report.extra())
    cfg = model.cfg
    print(f"{report.source} (epoch {report.epoch}): NDT1{'-stitch' if cfg.stitching else ''}, {cfg.n_layers} layers, "
          f"{cfg.hidden} wide, {cfg.n_heads} heads, MLP {cfg.mlp}, {cfg.n_channels} channels; masking {report.masking}"
          f"{' with prompts' if report.prompted else ''}")
    print("sessions: " + (", ".join(f"{eid} ({n} neurons)" for eid, n in report.sessions) or
                          "none named (shared weights only: fine-tune on a session with mtm finetune)"))
    print("dropped: " + ("; ".join(report.dropped) or "nothing"))
    print(path)


def _add_training_arguments(parser: argparse.ArgumentParser, data_default_synthetic: int) -> None:
    parser.add_argument("--data", nargs="+", help="session .npz files or folders (default: synthetic sessions)")
    parser.add_argument("--synthetic", type=int, default=data_default_synthetic,
                        help="without --data: how many synthetic sessions (sized by --preset)")
    parser.add_argument("--preset", choices=["small", "paper"], default="small",
                        help="small: CPU minutes; paper: the published settings")
    parser.add_argument("--masking", choices=("mtm",) + TRAINING_SCHEMES, default=None,
                        help="mtm (default for train) or one scheme; temporal is the baseline")
    parser.add_argument("--no-prompt", action="store_true", help="MtM without prompt tokens")
    parser.add_argument("--arch", choices=["ndt1", "ndt2"], default=None)
    parser.add_argument("--epochs", type=int, default=None, help="epochs (with --patience: the most)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop after this many validations past the warm-up without a better score, counted "
                             "once the best score is above --patience-floor")
    parser.add_argument("--patience-floor", type=float, default=None,
                        help="with --patience: validations count only once the best validation score is above "
                             "this (default 0.05; the mean-rate prediction scores about 0), so a run still on its "
                             "early mean-rate plateau trains for all --epochs")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--selection", choices=["val_bps", "r2_top50"], default=None)
    parser.add_argument("--eval-every", type=int, default=None, help="epochs between validations")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="epochs between writes of last.pt")
    parser.add_argument("--checkpoint-minutes", type=float, default=None,
                        help="also write last.pt when this many minutes have passed since the last")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=None,
                        help="auto: bf16 on GPUs with native bf16, fp16 on older GPUs, fp32 on the CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--max-bins", type=int, default=None,
                        help="longest trial in bins the model takes (default 100: 2 s of 20 ms bins)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, config.json")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")


def _add_account_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="IBL public server account (default: $ALYX_LOGIN, or ONE.setup's); "
                        "free at https://openalyx.internationalbrainlab.org/signup")
    parser.add_argument("--password", help="its password (default: $ALYX_PASSWORD)")
    parser.add_argument("--token", help="or its token, from the server's /me page (default: $ALYX_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtm", description="Multi-task masking (MtM) for neural spiking data.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="make, load and inspect sessions").add_subparsers(
        dest="data_command", required=True)

    synthetic = data.add_parser("synthetic", help="generate synthetic multi-region sessions with ground truth")
    synthetic.add_argument("--n-sessions", type=int, default=1)
    synthetic.add_argument("--seed", type=int, default=0, help="session i uses seed + i")
    synthetic.add_argument("--preset", choices=["small", "paper"], default="small")
    synthetic.add_argument("--n-trials", type=int, default=None, help="default: drawn from the preset")
    synthetic.add_argument("--n-neurons", type=int, default=None, help="default: drawn from the preset")
    synthetic.add_argument("--world-seed", type=int, default=0, help="sessions of one world share dynamics")
    synthetic.add_argument("--out", required=True, help="folder for the <eid>.npz files")
    synthetic.add_argument("--quiet", action="store_true", help="no progress bar")
    synthetic.add_argument("--force", action="store_true", help="replace session files already in --out")
    synthetic.set_defaults(run=_data_synthetic)

    ibl = data.add_parser("ibl", help="load IBL sessions through ONE and save them")
    ibl.add_argument("--eid", action="append", help="a session id (repeatable)")
    ibl.add_argument("--eids-file", help="a text file with one eid per line")
    ibl.add_argument("--sessions", choices=["test", "target", "pretrain", "bwb"],
                     help="the reference's 5 test, 40 target or 35 pretraining sessions, or BrainWideBench's "
                          "29 eval recordings")
    ibl.add_argument("--out", required=True, help="folder for the <eid>.npz files")
    ibl.add_argument("--cache-dir", help="ONE cache folder (default <out>/one_cache); ONE writes nowhere else")
    ibl.add_argument("--local", action="store_true", help="offline: read the ALF cache in --cache-dir only")
    _add_account_arguments(ibl)
    ibl.add_argument("--spike-sorter", default=None, help="e.g. pykilosort, iblsorter (default: best available)")
    ibl.add_argument("--region-mapping", default="Beryl", choices=["Beryl", "Cosmos", "Allen"])
    ibl.add_argument("--force", action="store_true", help="replace session files already in --out")
    ibl.set_defaults(run=_data_ibl)

    nwb = data.add_parser("nwb", help="load an NWB file (units + trials tables) and save it as a session")
    nwb.add_argument("path")
    nwb.add_argument("--align", default="start_time", help="trials column with the alignment event time")
    nwb.add_argument("--window", type=float, nargs=2, default=(-0.5, 1.5), metavar=("START", "STOP"))
    nwb.add_argument("--bin-size", type=float, default=0.02)
    nwb.add_argument("--region-column", default=None)
    nwb.add_argument("--eid", default=None)
    nwb.add_argument("--out", required=True, help="folder for <file name>.npz")
    nwb.add_argument("--force", action="store_true", help="replace a session file already in --out")
    nwb.set_defaults(run=_data_nwb)

    info = data.add_parser("info", help="summarise saved sessions (files or folders)")
    info.add_argument("paths", nargs="+")
    info.set_defaults(run=_data_info)

    train = commands.add_parser("train", help="train a model (one session, or pretraining on several)")
    _add_training_arguments(train, data_default_synthetic=1)
    train.set_defaults(run=_train)

    finetune = commands.add_parser("finetune", help="fine-tune a pretrained checkpoint on a new session")
    finetune.add_argument("checkpoint", help="a .safetensors model checkpoint")
    finetune.add_argument("--session", default=None, help="the session id to fine-tune on, if --data holds several")
    finetune.add_argument("--freeze-core", action="store_true", help="train only the new session's stitchers and token")
    finetune.add_argument("--staged-epochs", type=int, default=None,
                          help="staged: train only the new stitchers and token for this many epochs, then everything")
    _add_training_arguments(finetune, data_default_synthetic=1)
    finetune.set_defaults(run=_finetune)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a session: every task, tables, figures")
    evaluate.add_argument("checkpoint", help="a .safetensors model checkpoint")
    evaluate.add_argument("session", help="a session .npz file (its test split is scored)")
    evaluate.add_argument("--compare", help="a second checkpoint to compare with (per-neuron scatter)")
    evaluate.add_argument("--region", help="region for the predicted-vs-true figure (default: the first)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--out", required=True, help="folder for results.md, results.csv and figures")
    evaluate.add_argument("--bwb", metavar="DIR", help="also write BrainWideBench's TS2 predictions and ground "
                          "truth (mtm.bwb) into DIR, for its scorer: python -m ibl_bwb_eval.scoring.ts2 "
                          "--pred_dir DIR/predictions/LABEL --gt_dir DIR/ground_truth")
    evaluate.add_argument("--force", action="store_true", help="replace the tables and figures of an earlier "
                                                                 "evaluation in --out (and the files in --bwb)")
    evaluate.set_defaults(run=_evaluate)

    reproduce = commands.add_parser("reproduce", help="the paper's experiments: train, fine-tune, evaluate")
    reproduce.add_argument("--experiment", default="table2", metavar="NAME",
                           help="table2 (the default), ablation, ndt2, prompts, mask-ratio, scaling, "
                                "region-decoding, budget or transfer (mtm.reproduce.EXPERIMENTS)")
    reproduce.add_argument("--preset", choices=["small", "book", "paper"], default="small",
                           help="small (CPU, minutes), paper (GPU) or book (the experiments a chapter runs)")
    reproduce.add_argument("--data", choices=["synthetic", "ibl"], default="synthetic")
    reproduce.add_argument("--seeds", type=int, default=None, help="training seeds, each model trained once per seed "
                                                                   "(default 3)")
    reproduce.add_argument("--n-pretrain", type=int, default=None, help="pretraining sessions (small 2, paper 34)")
    reproduce.add_argument("--n-test", type=int, default=None, help="held-out sessions (small 2, paper 5)")
    reproduce.add_argument("--epochs", type=int, default=None, help="single-session runs (default: the preset's)")
    reproduce.add_argument("--pretrain-epochs", type=int, default=None, help="(default: the preset's)")
    reproduce.add_argument("--finetune-epochs", type=int, default=None, help="(default: the preset's)")
    reproduce.add_argument("--scratch-steps", choices=["heldout", "total"], default=None,
                           help="from-scratch models beside pretrained ones: as many steps on the held-out session "
                                "as fine-tuning (heldout, the paper's comparison; table2's default) or as pretraining "
                                "and fine-tuning together (total: equal compute; ndt2's and scaling's default)")
    reproduce.add_argument("--cache-dir", help="ONE cache folder (--data ibl; default <out>/one_cache)")
    _add_account_arguments(reproduce)
    reproduce.add_argument("--device", default=None)
    reproduce.add_argument("--out", default=None, help="run folder (default runs/reproduce-<preset>)")
    reproduce.set_defaults(run=_reproduce)

    imported = commands.add_parser("import-reference",
                                   help="read the reference's model_best.pt safely and save it as an mtm checkpoint")
    imported.add_argument("checkpoint", help="a model_best.pt written by the MtM reference code (NDT1 / NDT1-stitch)")
    imported.add_argument("--session", action="append", metavar="EID=NEURONS",
                          help="a session the checkpoint was trained on and its neuron count, to keep its stitchers "
                               "(repeatable; the reference keys stitchers by neuron count only)")
    imported.add_argument("--eids-file", help="the session table's eids, one per line, if the checkpoint has none "
                                              "(the reference's: mtm/data/eids/target_eids.txt)")
    imported.add_argument("--masking", choices=["mtm", "temporal"], default=None,
                          help="how it was trained (default: mtm for a prompted checkpoint; required otherwise)")
    imported.add_argument("--out", required=True, help="the .safetensors file to write")
    imported.add_argument("--force", action="store_true", help="replace the file --out if it exists")
    imported.set_defaults(run=_import_reference)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm, ``docker stop``), handled as Ctrl-C is: the run stops between two
    writes, its lock is released and its last checkpoint stays."""


def _terminate(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "reproduce" and args.out is None:
        args.out = f"runs/reproduce-{args.preset}" if args.experiment == "table2" else \
            f"runs/reproduce-{args.experiment}-{args.preset}"
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"mtm: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the disk (full, read-only), the network: the environment, not the input
        print(f"mtm: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        resumable = args.command in ("train", "finetune")
        hint = "; resume with --resume" if resumable else \
            "; run the same command again to resume" if args.command == "reproduce" else ""
        terminated = isinstance(err, Terminated)
        print(f"mtm: {'terminated (SIGTERM)' if terminated else 'interrupted'}{hint}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _one_line(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    return where + " ".join(str(err.strerror or err).split())


if __name__ == "__main__":
    sys.exit(main())

"""The one table writer: Markdown tables for the pages and results files, CSV files for programs.

Every table of scores has one row per model (or reference) and one column per task or behaviour key.
:func:`markdown_table` lays out cells already formatted; :func:`write_scores_csv` writes scores
through :mod:`csv`, so a model name holding a comma, a quote or a line break stays one field.
"""

from __future__ import annotations

import csv
import math

from mtm.atomic import atomic_write


def score_cell(value, digits: int = 2) -> str:
    """A score as a table cell: ``digits`` decimals, "–" when missing or not finite."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: dict[str, list[str]]) -> str:
    """A Markdown table: a column of row names (no title), then one column per ``header`` entry;
    ``rows``: {row name: its cells, already formatted}."""
    lines = ["| | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return "\n".join(lines)


def write_csv(path, header: list[str], rows) -> object:
    """``path``: a CSV file of ``header`` and ``rows`` (lists of cells) through :mod:`csv`, written
    atomically; returns the path."""
    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)

    return atomic_write(path, write)


def write_scores_csv(path, table: dict[str, dict[str, float]], columns, digits: int = 4):
    """``path``: a CSV file with a ``model`` column, then one column per entry of ``columns``; one
    row per model of ``table`` ({model: {column: score}}), scores with ``digits`` decimals ("nan"
    when missing). Written atomically; returns the path."""
    columns = list(columns)
    return write_csv(path, ["model"] + columns,
                     [[name] + [f"{row.get(c, math.nan):.{digits}f}" for c in columns] for name, row in table.items()])


#: The rows of :func:`training_settings_table`: a label and the :class:`mtm.train.TrainConfig` value it shows.
TRAINING_SETTINGS = {
    "epochs": lambda c: c.epochs,
    "batch size (trials of one session)": lambda c: c.batch_size,
    "peak learning rate": lambda c: c.lr,
    "weight decay (AdamW)": lambda c: c.weight_decay,
    "warm-up (fraction of steps)": lambda c: c.warmup,
    "warm-up starts at peak lr divided by": lambda c: c.div_factor,
    "schedule ends at start lr divided by": lambda c: c.final_div_factor,
    "model selection": lambda c: c.selection,
    "layers x width": lambda c: f"{c.model.n_layers} x {c.model.hidden}",
    "heads": lambda c: c.model.n_heads,
    "MLP width": lambda c: c.model.mlp,
    "stitcher width": lambda c: c.model.n_channels,
    "dropout": lambda c: c.model.dropout,
}


def training_settings_table(configs: dict) -> str:
    """A Markdown table of the settings that shape a training run (:data:`TRAINING_SETTINGS`), one row
    per setting and one column per configuration of ``configs`` ({name: :class:`mtm.train.TrainConfig`};
    a name is shown as code, e.g. the presets ``paper`` and ``small``)."""
    if not configs:
        raise ValueError("configs: expected at least one training configuration")
    return markdown_table([f"`{name}`" for name in configs],
                          {label: [f"{value(cfg):g}" if isinstance(value(cfg), float) else str(value(cfg))
                                   for cfg in configs.values()] for label, value in TRAINING_SETTINGS.items()})

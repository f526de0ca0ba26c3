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

"""Metric tables: rows of (name, metrics), their mean, as plain text or CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ddfm_edu.data import atomic_write, prepare_output_dir

Rows = list[tuple[str, dict[str, float]]]


def with_mean(rows: Rows) -> Rows:
    """The rows (name, metrics) followed by ("mean", the mean of each metric)."""
    keys = list(rows[0][1])
    return [*rows, ("mean", {k: float(np.mean([values[k] for _, values in rows])) for k in keys})]


def format_table(rows: Rows, label: str = "image") -> str:
    """A plain-text table of (name, metrics) rows, 4 decimals, columns as wide as they need."""
    keys = list(rows[0][1])
    cells = [[label, *keys]] + [[name, *(f"{values[k]:.4f}" for k in keys)] for name, values in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]
    return "\n".join(
        row[0].ljust(widths[0])
        + "".join(cell.rjust(w + 2) for cell, w in zip(row[1:], widths[1:], strict=True))
        for row in cells
    )


def check_csv_path(path: str | os.PathLike) -> Path:
    """Fail early (before any metric is computed) if `path` cannot be written as a CSV file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--csv {path} is a folder; give a file name such as {path / 'metrics.csv'}")
    prepare_output_dir(path.parent)
    return path


def write_csv(path: str | os.PathLike, tables: dict[str, Rows], label: str = "image") -> None:
    """Tables {method: rows} as one CSV (columns method, label, metrics; full precision), atomically."""
    path = check_csv_path(path)
    keys = list(next(iter(tables.values()))[0][1])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", label, *keys])
    for method, rows in tables.items():
        writer.writerows([method, name, *(repr(float(values[k])) for k in keys)] for name, values in rows)
    with atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())

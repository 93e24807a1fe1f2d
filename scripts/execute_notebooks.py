"""Execute notebooks in place, top to bottom, for committing: outputs kept, widget state stripped.

    python scripts/execute_notebooks.py notebooks/04_em_fusion.ipynb [more.ipynb ...]

Each notebook runs in its own folder with the current environment's kernel ("python3"); a failing cell
stops with the error. Widget state (metadata "widgets") and widget-view outputs are removed so that the
committed file reads well on a hosting site and diffs stay small.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    """Drop saved widget state and widget-view outputs (their text fallback is only an object repr);
    the static figure beside every widget is what a hosting site shows."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]


def execute(path: Path, timeout: int = 900) -> float:
    """Run one notebook in place; return the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    strip_widget_state(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(paths: list[str]) -> int:
    # The kernels inherit this environment: MPLBACKEND=Agg (as `make test` sets it) would replace the
    # inline backend, and the committed notebooks would lose every figure.
    os.environ.pop("MPLBACKEND", None)
    for name in paths:
        seconds = execute(Path(name))
        print(f"{name}: executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

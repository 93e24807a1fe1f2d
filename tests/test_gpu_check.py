"""The prepared GPU script must keep running: its CPU smoke mode runs every check at toy size."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_smoke_runs_every_check(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-smoke"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, OUT=str(tmp_path)),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "all checks ok" in run.stdout
    assert (tmp_path / "gpu_check.txt").read_text().count(" ok") >= 8

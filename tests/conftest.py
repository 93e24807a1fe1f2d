"""Shared fixtures. Real image pairs live outside the project (../shared/data); tests that use them
take the folder from DDFM_EDU_SHARED_DATA and skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real image pairs (ivf/tno, ivf/roadscene, mif/...), or skip."""
    root = Path(os.environ.get("DDFM_EDU_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "ivf").is_dir():
        pytest.skip(f"real image pairs not found at {root} (set DDFM_EDU_SHARED_DATA to that folder)")
    return root


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tests use small tensors: one torch thread is faster for them, and steady when the machine is
    busy (two threads per op wait on each other). The notebooks' kernels keep torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

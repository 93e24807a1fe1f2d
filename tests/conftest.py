"""Shared fixtures. Real image pairs live outside the project (../shared/data); tests that use them
take the folder from DDFM_EDU_SHARED_DATA and skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real image pairs (ivf/tno, ivf/roadscene, mif/...), or skip."""
    root = Path(os.environ.get("DDFM_EDU_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "ivf").is_dir():
        pytest.skip(f"real image pairs not found at {root} (set DDFM_EDU_SHARED_DATA to that folder)")
    return root

"""The layering of the package: the numerical core loads no image files, plotting or widgets."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ("ddfm_edu.em", "ddfm_edu.diffusion", "ddfm_edu.sample", "ddfm_edu.gsm")
NOT_IN_THE_CORE = ("PIL", "matplotlib", "ipywidgets", "ddfm_edu.data", "ddfm_edu.cli")


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_file_io_plotting_or_widgets(module):
    loaded = _loaded_after_import(module)
    assert module in loaded  # the check can see what it looks for
    offending = sorted(m for m in loaded if m in NOT_IN_THE_CORE or m.split(".")[0] in NOT_IN_THE_CORE)
    assert offending == [], f"importing {module} loads {offending}"


def test_the_check_sees_a_module_that_does_load_them():
    assert "PIL" in _loaded_after_import("ddfm_edu.data")

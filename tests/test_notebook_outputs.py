"""The committed outputs of the compared notebook cells (`# NBVAL_CHECK_OUTPUT`) are portable: they
print no number that is rounding noise. nbval compares those outputs as text on whatever machine runs
the suite, so a value such as "max difference 1e-14" (or "2e-14" on a CPU with other vector kernels)
fails there; such a cell prints a statement with its tolerance ("max difference < 1e-9: True")
instead. Reads the .ipynb files only; no notebook is executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MARK = "# NBVAL_CHECK_OUTPUT"
NOISE = 1e-4
# a number in exponent form: 1e-14, 2.3e-07, 5E-9, -0.0e+00, .5e-6
EXPONENT_FORM = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+(?![\w.])")


def compared_outputs(path: Path) -> list[tuple[int, str, str]]:
    """(cell index, its source, the text of its outputs) for every compared code cell of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or MARK not in "".join(cell["source"]):
            continue
        text = []
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                text.append("".join(output["text"]))
            elif "text/plain" in output.get("data", {}):
                text.append("".join(output["data"]["text/plain"]))
        found.append((index, "".join(cell["source"]), "".join(text)))
    return found


def noise_numbers(text: str, source: str = "") -> list[str]:
    """The numbers of an output written in exponent form whose magnitude is below 1e-4 (zero included:
    "0e+00" is a difference that another machine may print as "1e-16"), except those written
    literally in the cell's source: a tolerance or a constant the text quotes ("< 1e-9: True")."""
    literal = {m.group() for m in EXPONENT_FORM.finditer(source)}
    return [
        m.group()
        for m in EXPONENT_FORM.finditer(text)
        if abs(float(m.group())) < NOISE and m.group() not in literal
    ]


def test_noise_numbers_are_found():
    text = "max 1e-14, 2.3e-07 and 5E-9; zero 0.0e+00, -4e-06, 3.0e-05, 6.33e-05; kept: 1e-04, 1e3, x1e-9"
    assert noise_numbers(text) == ["1e-14", "2.3e-07", "5E-9", "0.0e+00", "-4e-06", "3.0e-05", "6.33e-05"]
    source = 'print(f"max difference < 1e-9: {err < 1e-9}, err {err:.0e}")'
    assert noise_numbers("max difference < 1e-9: True, err 3e-15", source) == ["3e-15"]


def test_the_notebooks_have_compared_cells():
    assert len(NOTEBOOKS) >= 10
    assert sum(len(compared_outputs(path)) for path in NOTEBOOKS) > 50


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_compared_cells_print_no_rounding_noise(path):
    bad = [
        f"cell {index}: {', '.join(numbers)}"
        for index, source, text in compared_outputs(path)
        if (numbers := noise_numbers(text, source))
    ]
    assert not bad, (
        f"{path.name}: compared cells print numbers below {NOISE:g} in exponent form, which differ "
        f"between machines; print a statement with its tolerance instead ({'; '.join(bad)})"
    )

"""Every exercise of the course, read from the notebooks themselves: the stub cell calls a checker
on the reader's function, the collapsed "Answer" block after it defines that function, and the answer
passes its checker while the stub (as committed) is "not attempted yet". So an answer can neither
drift from its checker nor sit in its stub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ddfm_edu import colour, diffusion, em, exercises, gsm

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CALL = re.compile(r"exercises\.(check_\w+)\((my_\w+)\)")


def _exercises() -> list[tuple[str, str, str, str, str]]:
    """(notebook, checker, function, stub source, answer source) of every exercise."""
    found = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        for index, cell in enumerate(cells):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code":
                continue
            for checker, function in CALL.findall(source):
                answer = next(
                    ("".join(c["source"]) for c in cells[index + 1:]
                     if c["cell_type"] == "markdown" and "<summary>Answer" in "".join(c["source"])),
                    "",
                )  # fmt: skip
                code = "\n".join(re.findall(r"```python\n(.*?)```", answer, re.S))
                found.append((path.name, checker, function, source, code))
    return found


EXERCISES = _exercises()


def _namespace() -> dict:
    return {"np": np, "torch": torch, "em": em, "diffusion": diffusion, "colour": colour, "gsm": gsm,
            "exercises": exercises}  # fmt: skip


def test_the_course_has_its_exercises():
    assert len(EXERCISES) >= 29 and {name for name, *_ in EXERCISES} >= {p.name for p in NOTEBOOKS[:11]}


@pytest.mark.parametrize(
    "notebook,checker,function,stub,answer", EXERCISES, ids=[f"{e[0][:2]}-{e[1]}" for e in EXERCISES]
)
def test_answer_passes_and_stub_is_not_attempted(notebook, checker, function, stub, answer, capsys):
    assert f"def {function}(" in answer, f"{notebook}: no collapsed answer defines {function}"
    answer_namespace = _namespace()
    exec(answer, answer_namespace)  # noqa: S102 - the course's own answer blocks
    assert getattr(exercises, checker)(answer_namespace[function]) is True
    stub_namespace = _namespace()
    exec(stub.split(f"exercises.{checker}(")[0], stub_namespace)  # noqa: S102 - the stub's definitions
    assert getattr(exercises, checker)(stub_namespace[function]) is False
    assert "not attempted yet" in capsys.readouterr().out
    # the answer's returned formulas (not plain names) are not in the stub
    for returned in re.findall(r"^\s+return (.+)$", answer, re.M):
        if re.search(r"[-+*/(]", returned):
            assert returned.strip() not in stub, f"{notebook}: the stub of {function} holds its answer"

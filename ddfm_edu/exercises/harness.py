r"""What every checker shares: call the reader's function on a few cases, compare it with the
reference, and say WHAT is wrong (which case, expected vs got, and a hint when the answer matches
a known mistake).

A checker lists its `Case`s and its hints (a known wrong formula of the same arguments, and what
to say when the reader's answer equals it) and hands them to `check` with the reference. A right
answer prints one line ("check_m_bar: correct on 5 cases ...") and returns True; a wrong one
raises `ExerciseError` (an AssertionError) with the diagnosis; a stub that still returns None
prints "not attempted yet" and returns False, so that the committed notebooks run their exercise
cells with the stubs in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


class ExerciseError(AssertionError):
    """A reader's answer is wrong; the message says for which input and how."""


@dataclass
class Case:
    """One input of a checker: `label` names it ("a large residual"), `where` prints its values."""

    label: str
    args: tuple
    where: str
    kwargs: dict = field(default_factory=dict)


Hint = tuple[Callable[..., object], str]  # (a known wrong formula of the args, what to say)


def as_array(value: object) -> np.ndarray:
    """A tensor, array or number as a float64 numpy array (tensors detached, on the CPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _short(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.3g}"
    return "[" + ", ".join(f"{v:.3g}" for v in a.reshape(-1)[:4]) + (", ...]" if a.size > 4 else "]")


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def not_attempted(name: str) -> bool:
    """Say that the reader's stub still returns None; False (the checker's result for a stub)."""
    print(f"{name}: not attempted yet (your function returns None): fill it in and run the cell again.")
    return False


def attempted(name: str, fn: Callable, *args: object) -> bool:
    """False, with a "not attempted yet" line, while the reader's stub returns None for `args`
    (a committed notebook runs its stubs: they must not raise). Errors are left to the checker,
    which calls `fn` again and reports them."""
    try:
        result = fn(*args)
    except Exception:  # noqa: BLE001 - the checker calls it again and reports the error
        return True
    return result is not None or not_attempted(name)


def _call(name: str, fn: Callable, case: Case) -> object:
    try:
        return fn(*case.args, **case.kwargs)
    except ExerciseError:  # a checker's own diagnosis of the result's form: pass it on as it is
        raise
    except Exception as error:  # noqa: BLE001 - the reader's code: report whatever it raised
        raise ExerciseError(
            f"{name}: your function raised {type(error).__name__}: {error} for {case.label} ({case.where})"
        ) from error


def _parts(name: str, value: object, parts: Sequence[str] | None) -> list[np.ndarray]:
    """A result as its list of arrays: one array, or one per named part of a tuple result."""
    if parts is None:
        return [as_array(value)]
    if not isinstance(value, (tuple, list)) or len(value) != len(parts):
        raise ExerciseError(f"{name}: return a tuple ({', '.join(parts)}), got {type(value).__name__}")
    return [as_array(v) for v in value]


def check(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    hints: Sequence[Hint] = (),
    rtol: float = 1e-4,
    atol: float = 1e-6,
    parts: Sequence[str] | None = None,
) -> bool:
    """Compare fn with `reference` on every case (np.allclose with rtol, atol): True and one line
    when all agree; False and "not attempted yet" when fn returns None on the first case (the
    notebook's stub); otherwise ExerciseError naming the first case that fails (an exception, None,
    a wrong shape, NaN/inf or a wrong value), with the first matching hint's advice.

    parts: the names of a tuple result's items (e.g. ("m_bar", "n_bar", "gamma", "rho")); each is
    compared on its own, the message names the first wrong one, and a hint (a wrong formula
    returning the same tuple) fires when its value of that item equals the reader's."""
    for index, case in enumerate(cases):
        got_raw = _call(name, fn, case)
        if got_raw is None:
            if index == 0:
                return not_attempted(name)
            raise ExerciseError(f"{name}: your function returned None (forgot `return`?)")
        expected_parts = _parts(name, reference(*case.args, **case.kwargs), parts)
        got_parts = _parts(name, got_raw, parts)
        for j, (expected, got) in enumerate(zip(expected_parts, got_parts, strict=True)):
            what = "" if parts is None else f" {parts[j]}"
            if got.shape != expected.shape and got.size == expected.size == 1:
                got = got.reshape(expected.shape)
            if got.shape != expected.shape:
                raise ExerciseError(
                    f"{name}: wrong{what} shape for {case.label}: expected {expected.shape}, got {got.shape} "
                    f"({case.where})"
                )
            if not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
                where = what or " the result"
                raise ExerciseError(f"{name}: NaN or inf in{where} for {case.label} ({case.where})")
            if _close(got, expected, rtol, atol):
                continue
            message = (
                f"{name}: wrong{what} for {case.label}: expected {_short(expected)}, got {_short(got)} "
                f"at {case.where}"
            )
            for wrong, hint in hints:
                if _close(got, _parts(name, wrong(*case.args, **case.kwargs), parts)[j], rtol, atol):
                    message += f". Hint: {hint}"
                    break
            raise ExerciseError(message)
    labels = ", ".join(case.label for case in cases)
    print(f"{name}: correct on {len(cases)} cases ({labels}).")
    return True


def random_image(*shape: int, seed: int) -> torch.Tensor:
    """Standard normal values of `shape` (float64), the same for a seed on every machine."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_rgb(*shape: int, seed: int) -> torch.Tensor:
    """Uniform values in [-1, 1] of `shape` (float64, e.g. an RGB image), the same for a seed."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1

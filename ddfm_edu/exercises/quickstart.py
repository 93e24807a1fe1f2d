"""Checker of notebook 00 (quickstart): the max-abs rule of Laplacian-pyramid fusion."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import baselines
from ddfm_edu.exercises.harness import Case, check, random_image


def check_max_abs(fn: Callable) -> bool:
    """fn(a, b) = the coefficient of larger magnitude, pixel by pixel, WITH its sign (the rule of
    Laplacian-pyramid fusion for detail bands): a where |a| >= |b|, else b."""
    a, b = random_image(1, 1, 5, 6, seed=10), random_image(1, 1, 5, 6, seed=11)
    cases = [
        Case("two random bands", (a, b), "a, b of shape (1, 1, 5, 6), values of both signs"),
        Case(
            "a batch",
            (random_image(2, 1, 3, 4, seed=12), random_image(2, 1, 3, 4, seed=13)),
            "shape (2, 1, 3, 4)",
        ),
    ]
    hints = [
        (torch.maximum, "that is the larger VALUE; a detail of -0.9 beats one of +0.2: compare |a|, |b|"),
        (
            lambda a, b: torch.maximum(a.abs(), b.abs()),
            "keep the selected coefficient with its sign, not its magnitude",
        ),
        (lambda a, b: torch.where(a.abs() >= b.abs(), b, a), "inverted: keep the LARGER magnitude"),
    ]
    return check("check_max_abs", fn, baselines.select_max_abs, cases, hints, atol=1e-12)

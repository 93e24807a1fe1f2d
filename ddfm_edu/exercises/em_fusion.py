"""Checkers of notebook 04 (EM fusion and phi): the weight phi the two Laplace scales imply, the
scale a chosen phi fixes, the L1 fusion loss, and EM alone written as a loop of EM steps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ddfm_edu import em, gsm
from ddfm_edu.exercises.harness import Case, check, random_rgb


def check_phi_from_scales(fn: Callable) -> bool:
    """fn(gamma, rho) = phi = sqrt(gamma/rho), the weight of ||f - v||_1 the scales imply."""
    cases = [
        Case("gamma = rho", (0.5, 0.5), "gamma = rho = 0.5"),
        Case("gamma > rho", (0.4, 0.1), "gamma = 0.4, rho = 0.1"),
        Case("gamma < rho", (0.1, 0.9), "gamma = 0.1, rho = 0.9"),
    ]
    hints = [
        (lambda g, r: np.sqrt(r / g), "phi weights |x| = |f - v|, whose scale is rho: sqrt(gamma/rho)"),
        (lambda g, r: g / r, "the Laplace scales are sqrt(gamma/2), sqrt(rho/2): take a square root"),
    ]
    return check("check_phi_from_scales", fn, gsm.phi_from_scales, cases, hints)


def check_rho_from_phi(fn: Callable) -> bool:
    """fn(gamma, phi) = rho = gamma / phi^2, the scale a chosen phi fixes."""
    cases = [
        Case(f"phi = {phi:g}", (gamma, phi), f"gamma = {gamma:g}, phi = {phi:g}")
        for gamma, phi in ((0.5, 1.0), (0.4, 2.0), (0.3, 0.5))
    ]
    hints = [
        (lambda g, p: g / p, "phi = sqrt(gamma/rho), so rho = gamma / phi^2"),
        (lambda g, p: g * p**2, "inverted: a larger phi means a smaller rho"),
    ]
    return check("check_rho_from_phi", fn, gsm.rho_from_phi, cases, hints)


def check_l1_fusion_loss(fn: Callable) -> bool:
    """fn(f, i, v, phi) = ||f - i||_1 + phi ||f - v||_1 (sums over pixels, numpy arrays)."""
    rng = np.random.default_rng(1)
    f, i, v = rng.uniform(-1, 1, (3, 4, 6))
    cases = [
        Case("phi = 1", (f, i, v, 1.0), "random 4x6 f, i, v, phi = 1"),
        Case("phi = 3", (f, i, v, 3.0), "the same, phi = 3"),
    ]

    def reference(f, i, v, phi):
        return np.abs(f - i).sum() + phi * np.abs(f - v).sum()

    hints = [
        (
            lambda f, i, v, phi: np.abs(f - v).sum() + phi * np.abs(f - i).sum(),
            "phi weights ||f - v||_1, not ||f - i||_1",
        ),
        (
            lambda f, i, v, phi: ((f - i) ** 2).sum() + phi * ((f - v) ** 2).sum(),
            "L1 norms: absolute values, not squares",
        ),
        (
            lambda f, i, v, phi: np.abs(f - i).mean() + phi * np.abs(f - v).mean(),
            "sum over pixels, not the mean",
        ),
    ]
    return check("check_l1_fusion_loss", fn, reference, cases, hints)


def _em_alone_with(i, v, iters, *, start="average", carry=True, feed_back=True):
    """EM alone from the library's em_step, with one typical mistake (the hints)."""
    f0 = {"average": 0.5 * (i + v), "i": i, "v": v}[start]
    f, state = f0, None
    for _ in range(iters):
        f_new, new_state = em.em_step(f if feed_back else f0, i, v, state)
        f, state = f_new, (new_state if carry else None)
    return f


def check_em_alone(fn: Callable) -> bool:
    """fn(i, v, iters) = EM alone (`em.em_fuse(i, v, iters=iters)[0]`, `baselines.em_alone`): from
    f = (i + v) / 2 and no state, `iters` paper EM steps, each from the previous f and state."""
    i, v = random_rgb(1, 1, 6, 8, seed=90), random_rgb(1, 1, 6, 8, seed=91)
    ib, vb = random_rgb(2, 1, 5, 5, seed=92), random_rgb(2, 1, 5, 5, seed=93)
    cases = [
        Case("one step", (i, v, 1), "random i, v (1, 1, 6, 8), iters = 1"),
        Case("five steps", (i, v, 5), "the same, iters = 5"),
        Case("a batch, twelve steps", (ib, vb, 12), "i, v (2, 1, 5, 5), iters = 12"),
    ]

    def wrong(**mistake: object) -> Callable:
        return lambda i, v, n: _em_alone_with(i, v, n, **mistake)

    hints = [
        (wrong(start="v"), "start from the average (i + v) / 2, not from v"),
        (wrong(start="i"), "start from the average (i + v) / 2, not from i"),
        (wrong(carry=False), "carry the EM state from one step to the next"),
        (wrong(feed_back=False), "each step starts from the PREVIOUS step's f"),
    ]

    def reference(i: torch.Tensor, v: torch.Tensor, iters: int) -> torch.Tensor:
        return em.em_fuse(i, v, iters=iters)[0]

    return check("check_em_alone", fn, reference, cases, hints, rtol=1e-6, atol=1e-9)

"""Checkers of notebook 04 (EM fusion and phi): the weight phi the two Laplace scales imply, the
scale a chosen phi fixes, and the L1 fusion loss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ddfm_edu import gsm
from ddfm_edu.exercises.harness import Case, check


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

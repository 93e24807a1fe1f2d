"""Checkers of notebook 02 (the E-step): the posterior expectations of the Laplace noise's mixing
variable m given the residual r = y - x (Proposition 2), and the update of gamma they give."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ddfm_edu import gsm
from ddfm_edu.exercises.harness import Case, check


def _m_bar(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """E[1/m | y - x] (`gsm.posterior_moments`)."""
    return gsm.posterior_moments(np.subtract(y, x), gamma)[0]


def _mean_m(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """E[m | y - x] (`gsm.posterior_moments`)."""
    return gsm.posterior_moments(np.subtract(y, x), gamma)[1]


def _residual_cases() -> list[Case]:
    return [
        Case("a moderate residual", (0.2, 0.5, 0.5), "r = y - x = 0.3, gamma = 0.5"),
        Case("a large residual", (0.0, 5.0, 1.1), "r = y - x = 5, gamma = 1.1"),
        Case("a negative residual", (0.5, 0.2, 0.5), "r = y - x = -0.3, gamma = 0.5"),
        Case("another gamma", (0.0, 0.3, 2.0), "r = y - x = 0.3, gamma = 2"),
        Case(
            "arrays",
            (np.array([0.1, -0.4, 0.9]), np.array([0.6, 0.2, -0.3]), 0.8),
            "x = [0.1, -0.4, 0.9], y = [0.6, 0.2, -0.3], gamma = 0.8",
        ),
    ]


def check_m_bar(fn: Callable) -> bool:
    """fn(x, y, gamma) = m_bar = E[1/m | y - x] = sqrt(2/gamma) / |y - x| (Proposition 2)."""
    cases = _residual_cases()
    hints = [
        (
            lambda x, y, g: gsm.inverted_m_bar_erratum(np.subtract(y, x), g),
            "this is the inverted formula sqrt(2 (y - x)^2 / gamma) that circulates: it gives "
            "outliers LARGE weights. E[1/m | r] = sqrt(2/gamma) / |r|",
        ),
        (lambda x, y, g: np.sqrt(2 / g) / np.subtract(y, x), "take the absolute value |y - x|"),
        (
            lambda x, y, g: np.sqrt(2 * g) / np.abs(np.subtract(y, x)),
            "it is sqrt(2/gamma), not sqrt(2 gamma)",
        ),
        (
            lambda x, y, g: 1 / _mean_m(x, y, g),
            "E[1/m | r] is not 1 / E[m | r] (Jensen); integrate 1/m against p(m | r)",
        ),
    ]
    return check("check_m_bar", fn, _m_bar, cases, hints)


def check_posterior_mean_m(fn: Callable) -> bool:
    """fn(x, y, gamma) = E[m | y - x] = |y - x| sqrt(gamma/2) + gamma/2 (Proposition 2)."""
    cases = _residual_cases()
    hints = [
        (
            lambda x, y, g: np.abs(np.subtract(y, x)) * np.sqrt(g / 2),
            "the term gamma/2 is missing: E[m | r] = 1/E[1/m | r] + gamma/2",
        ),
        (
            lambda x, y, g: np.subtract(y, x) * np.sqrt(g / 2) + g / 2,
            "take the absolute value |y - x|",
        ),
        (
            lambda x, y, g: 1 / _m_bar(x, y, g),
            "1/E[1/m | r] is only part of it: add gamma/2",
        ),
    ]
    return check("check_posterior_mean_m", fn, _mean_m, cases, hints)


def check_gamma_update(fn: Callable) -> bool:
    """fn(x, y, gamma) = the new gamma = mean over pixels of E[m | y - x] (arrays x, y)."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (2, 6, 5))
    cases = [
        Case("a 6x5 image", (x, y, 1.0), "random x, y in [-1, 1], gamma = 1"),
        Case("another gamma", (x, y, 0.3), "the same x, y, gamma = 0.3"),
    ]
    hints = [
        (lambda x, y, g: np.mean(_m_bar(x, y, g)), "gamma is the mean of E[m | r], not of E[1/m | r]"),
        (lambda x, y, g: 1 / np.mean(_m_bar(x, y, g)), "average E[m | r], not 1/E[1/m | r]"),
        (_mean_m, "return one number: the MEAN over pixels"),
    ]
    return check("check_gamma_update", fn, lambda x, y, g: np.mean(_mean_m(x, y, g)), cases, hints)

"""Checkers of notebook 01 (the Laplace distribution as a Gaussian scale mixture, Proposition 1):
the Laplace density, the scale of the mixture, a sampler of it, and the mixture integral itself
computed by quadrature."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import integrate, stats

from ddfm_edu import gsm
from ddfm_edu.exercises.harness import Case, ExerciseError, as_array, attempted, check


def check_laplace_pdf(fn: Callable) -> bool:
    """fn(x, mu, s) = LAP(x; mu, s) = 1/(2s) exp(-|x - mu|/s), on scalars and arrays."""
    xs = np.linspace(-2, 2, 9)
    cases = [
        Case("the peak", (0.3, 0.3, 0.5), "x = mu = 0.3, s = 0.5"),
        Case("the left tail", (-1.0, 0.5, 0.7), "x = -1, mu = 0.5, s = 0.7"),
        Case("an array of x", (xs, 0.2, 2.0), "x = linspace(-2, 2, 9), mu = 0.2, s = 2"),
    ]
    hints = [
        (lambda x, mu, s: np.exp(-np.abs(x - mu) / s) / s, "the normaliser is 1/(2s), not 1/s"),
        (lambda x, mu, s: np.exp(-(x - mu) / s) / (2 * s), "use |x - mu|: the density is symmetric"),
        (lambda x, mu, s: s / 2 * np.exp(-np.abs(x - mu) * s), "s is a scale, not a rate"),
    ]
    return check("check_laplace_pdf", fn, gsm.laplace_pdf, cases, hints)


def check_laplace_scale(fn: Callable) -> bool:
    """fn(b) = the Laplace scale s of the mixture of N(mu, a) over a ~ EXP(b): s = sqrt(b/2)."""
    cases = [
        Case("b = 2", (2.0,), "b = 2"),
        Case("a small b", (0.02,), "b = 0.02"),
        Case("a large b", (8.0,), "b = 8"),
    ]
    hints = [
        (lambda b: b / 2, "b/2 is the square of the scale; take its square root"),
        (lambda b: np.sqrt(b), "the Laplace variance 2 s^2 equals the mean variance b: s^2 = b/2"),
        (lambda b: np.sqrt(2 * b), "the Laplace variance is 2 s^2 = b, so s = sqrt(b/2)"),
        (lambda b: b, "a Laplace of scale b has variance 2 b^2, not b"),
    ]
    return check("check_laplace_scale", fn, gsm.laplace_scale, cases, hints)


def check_gsm_sampler(fn: Callable, n: int = 20_000) -> bool:
    """fn(mu, b, size, rng) draws a ~ EXP(b) (mean b), then xi ~ N(mu, a) (VARIANCE a); the draws
    must pass a Kolmogorov-Smirnov test against LAP(mu, sqrt(b/2))."""
    if not attempted("check_gsm_sampler", fn, 0.0, 1.0, 10, np.random.default_rng(0)):
        return False
    for mu, b, seed in [(0.0, 1.0, 0), (0.5, 0.2, 1)]:
        where = f"mu = {mu}, b = {b}, {n} draws"
        draws = as_array(fn(mu, b, n, np.random.default_rng(seed))).reshape(-1)
        if draws.size != n:
            raise ExerciseError(f"check_gsm_sampler: expected {n} draws, got {draws.size} ({where})")
        scale = gsm.laplace_scale(b)
        p = stats.kstest(draws, stats.laplace(loc=mu, scale=scale).cdf).pvalue
        if p < 1e-3:
            raise ExerciseError(
                f"check_gsm_sampler: the draws are not LAP(mu, sqrt(b/2)) (KS p = {p:.1e}) at "
                f"{where}: their mean is {draws.mean():.3g} (expected {mu}) and their variance "
                f"{draws.var():.3g} (expected b = {b}). Hint: numpy's exponential takes the MEAN b, "
                "and normal takes the standard deviation sqrt(a), not the variance a"
            )
    print("check_gsm_sampler: correct (KS test against the Laplace passes for 2 settings).")
    return True


def _mixture_with(xi: float, mu: float, b: float, normal: Callable, mixing: Callable) -> float:
    """integral_0^inf normal(xi, mu, a) mixing(a, b) da by scipy's quad (a typical mistake's mixture)."""
    return integrate.quad(lambda a: normal(xi, mu, a) * mixing(a, b), 0.0, np.inf, limit=200)[0]


def check_gsm_pdf(fn: Callable) -> bool:
    """fn(xi, mu, b) = integral_0^inf N(xi; mu, a) EXP(a; b) da, the mixture density at a scalar xi
    computed numerically (`gsm.gsm_pdf`); N(.; mu, a) has VARIANCE a, EXP(a; b) = exp(-a/b) / b."""
    cases = [
        Case("a moderate xi", (0.3, 0.0, 1.0), "xi = 0.3, mu = 0, b = 1"),
        Case("the left tail", (-1.2, 0.5, 0.7), "xi = -1.2, mu = 0.5, b = 0.7"),
        Case("a large b", (2.0, 0.0, 3.0), "xi = 2, mu = 0, b = 3"),
        Case("b = 1 (where mean = rate)", (1.5, 0.0, 1.0), "xi = 1.5, mu = 0, b = 1"),
    ]
    normal, exponential = gsm.normal_pdf, gsm.exponential_pdf
    hints = [
        (
            lambda xi, mu, b: _mixture_with(xi, mu, b, normal, lambda a, b: b * np.exp(-a * b)),
            "EXP(a; b) has MEAN b: exp(-a/b) / b, not the rate form b exp(-a b)",
        ),
        (
            lambda xi, mu, b: _mixture_with(xi, mu, b, lambda x, m, a: normal(x, m, a**2), exponential),
            "a is the VARIANCE of the Gaussian, not its standard deviation",
        ),
        (
            lambda xi, mu, b: _mixture_with(xi, mu, b, normal, lambda a, b: np.exp(-a / b)),
            "the exponential density needs its normaliser 1/b",
        ),
    ]
    return check("check_gsm_pdf", fn, gsm.gsm_pdf, cases, hints, rtol=1e-5, atol=1e-8)

r"""The Laplace distribution as a Gaussian scale mixture (docs/method.md sections 2-3).

Conventions: LAP(xi; mu, s) = 1/(2s) exp(-|xi - mu|/s);  EXP(a; b) = (1/b) exp(-a/b), a > 0, so b is
the MEAN of the exponential (its scale), not its rate.

Proposition 1:  integral_0^inf N(xi; mu, a) EXP(a; b) da = LAP(xi; mu, sqrt(b/2)).
Proposition 2:  for y | x, m ~ N(x, m), m ~ EXP(gamma) and r = y - x,
    E[1/m | r] = sqrt(2/gamma) / |r|,      E[m | r] = |r| sqrt(gamma/2) + gamma/2.

Everything here is numpy/scipy and accepts scalars or arrays (broadcast). The closed forms have
independent checks beside them: quadrature over the latent variance and Monte Carlo sampling.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import integrate

ArrayLike = float | np.ndarray


def laplace_pdf(x: ArrayLike, mu: ArrayLike, s: ArrayLike) -> np.ndarray:
    r"""LAP(x; mu, s) = 1/(2s) exp(-|x - mu| / s)."""
    x, mu, s = np.asarray(x, float), np.asarray(mu, float), np.asarray(s, float)
    return np.exp(-np.abs(x - mu) / s) / (2.0 * s)


def laplace_scale(b: ArrayLike) -> np.ndarray:
    r"""The Laplace scale s = sqrt(b/2) of the mixture with mixing density EXP(a; b) (Prop. 1)."""
    return np.sqrt(np.asarray(b, float) / 2.0)


def exponential_pdf(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    r"""EXP(a; b) = (1/b) exp(-a/b) for a >= 0 and 0 for a < 0 (b is the mean)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.where(a >= 0, np.exp(-np.maximum(a, 0.0) / b) / b, 0.0)


def normal_pdf(x: ArrayLike, mu: ArrayLike, a: ArrayLike) -> np.ndarray:
    r"""N(x; mu, a) = exp(-(x - mu)^2 / (2a)) / sqrt(2 pi a), with a the VARIANCE."""
    x, mu, a = np.asarray(x, float), np.asarray(mu, float), np.asarray(a, float)
    return np.exp(-((x - mu) ** 2) / (2.0 * a)) / np.sqrt(2.0 * np.pi * a)


def _gsm_pdf_scalar(x: float, mu: float, b: float) -> float:
    # With a = t^2 (da = 2t dt) the 1/sqrt(a) singularity at a = 0 disappears:
    # N(x; mu, t^2) EXP(t^2; b) 2t = 2/sqrt(2 pi) exp(-(x - mu)^2/(2 t^2)) EXP(t^2; b)
    d2 = (x - mu) ** 2

    def integrand(t: float) -> float:  # quad never evaluates the endpoint t = 0
        return 2.0 / np.sqrt(2.0 * np.pi) * np.exp(-d2 / (2.0 * t * t) - t * t / b) / b

    value, _ = integrate.quad(integrand, 0.0, np.inf, epsabs=0.0, epsrel=1e-11, limit=200)
    return value


def gsm_pdf(x: ArrayLike, mu: ArrayLike, b: ArrayLike) -> np.ndarray:
    r"""integral_0^inf N(x; mu, a) EXP(a; b) da by numerical quadrature (scipy.integrate.quad).

    Proposition 1 says this equals laplace_pdf(x, mu, sqrt(b/2)); the quadrature does not use that.
    """
    return np.vectorize(_gsm_pdf_scalar, otypes=[float])(x, mu, b)


def posterior_moments(r: ArrayLike, scale: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Closed-form E[1/m | r] and E[m | r] for r | m ~ N(0, m), m ~ EXP(scale) (Proposition 2).

    p(m | r) is GIG(p = 1/2, a = 2/scale, b = r^2), and
        E[1/m | r] = sqrt(2/scale) / |r|        (the IRLS weight m_bar: SMALL for a large residual)
        E[m | r]   = |r| sqrt(scale/2) + scale/2
    At r = 0, E[1/m | r] is infinite (returned as inf).
    """
    r, scale = np.abs(np.asarray(r, float)), np.asarray(scale, float)
    with np.errstate(divide="ignore"):
        e_inv = np.sqrt(2.0 / scale) / r
    return e_inv, r * np.sqrt(scale / 2.0) + scale / 2.0


def inverted_m_bar_erratum(r: ArrayLike, gamma: ArrayLike) -> np.ndarray:
    r"""WRONG on purpose: the E-step as some write-ups transcribe it, m_bar = sqrt(2 r^2 / gamma).

    It is (up to constants) the reciprocal of the correct E[1/m | r] = sqrt(2/gamma)/|r| and would
    give outliers LARGE weights. Kept only so that the course can show it is wrong by a number:
    r = 0.3, gamma = 0.5 gives 0.6 here, while quadrature and the correct formula give 6.667.
    """
    r, gamma = np.asarray(r, float), np.asarray(gamma, float)
    return np.sqrt(2.0 * r**2 / gamma)


def _posterior_expectation(g, r: float, scale: float) -> float:
    # E[g(m) | r] = int g(m) N(r; 0, m) EXP(m; scale) dm / int N(r; 0, m) EXP(m; scale) dm.
    # Both integrands are divided by their common peak value so that quad's tolerance is relative.
    def log_joint(m: float) -> float:
        return -0.5 * np.log(2.0 * np.pi * m) - r * r / (2.0 * m) - np.log(scale) - m / scale

    mode = abs(r) * np.sqrt(scale / 2.0) + scale / 2.0  # E[m | r]: in the bulk of the posterior
    shift = log_joint(mode)

    def integrate_times(h) -> float:
        def f(m: float) -> float:
            return h(m) * np.exp(log_joint(m) - shift) if m > 0 else 0.0

        parts = [(0.0, mode), (mode, np.inf)]
        return sum(integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-11, limit=400)[0] for lo, hi in parts)

    return integrate_times(g) / integrate_times(lambda m: 1.0)


def posterior_moments_quadrature(r: ArrayLike, scale: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""E[1/m | r] and E[m | r] by quadrature of the unnormalised posterior N(r; 0, m) EXP(m; scale).

    Independent of Proposition 2's closed form (no GIG identities used); r must be nonzero.
    """
    e_inv = np.vectorize(lambda r_, s_: _posterior_expectation(lambda m: 1.0 / m, r_, s_))
    e = np.vectorize(lambda r_, s_: _posterior_expectation(lambda m: m, r_, s_))
    return e_inv(r, scale).astype(float), e(r, scale).astype(float)


def posterior_moments_monte_carlo(
    r: float, scale: float, n: int = 200_000, rng: np.random.Generator | None = None
) -> tuple[float, float]:
    r"""E[1/m | r] and E[m | r] by self-normalised importance sampling with the prior as proposal:
    draw m_k ~ EXP(scale), weight w_k = N(r; 0, m_k), E[g(m) | r] ~ sum w_k g(m_k) / sum w_k."""
    rng = np.random.default_rng() if rng is None else rng
    m = rng.exponential(scale, size=n)
    w = normal_pdf(r, 0.0, m)
    return float(np.sum(w / m) / np.sum(w)), float(np.sum(w * m) / np.sum(w))


def sample_gsm(
    mu: ArrayLike, b: ArrayLike, size: int | tuple[int, ...], rng: np.random.Generator | None = None
) -> np.ndarray:
    r"""Draws of the hierarchical model a ~ EXP(b), then xi | a ~ N(mu, a) (variance a).

    By Proposition 1 the draws are LAP(mu, sqrt(b/2)) distributed."""
    rng = np.random.default_rng() if rng is None else rng
    a = rng.exponential(b, size=size)
    return rng.normal(mu, np.sqrt(a))


class FusionSample(NamedTuple):
    """Draws of the fusion model: x = f - v, y = i - v and the latent variances m, n."""

    x: np.ndarray
    y: np.ndarray
    m: np.ndarray
    n: np.ndarray


def sample_fusion_model(
    gamma: float, rho: float, size: int | tuple[int, ...], rng: np.random.Generator | None = None
) -> FusionSample:
    r"""Draws of the per-pixel model of section 2 (without the smoothness term):

    n ~ EXP(rho),  x | n ~ N(0, n);   m ~ EXP(gamma),  y | x, m ~ N(x, m).
    Marginally x ~ LAP(0, sqrt(rho/2)) and y - x ~ LAP(0, sqrt(gamma/2)).
    """
    rng = np.random.default_rng() if rng is None else rng
    n = rng.exponential(rho, size=size)
    x = rng.normal(0.0, np.sqrt(n))
    m = rng.exponential(gamma, size=size)
    y = rng.normal(x, np.sqrt(m))
    return FusionSample(x=x, y=y, m=m, n=n)


def phi_from_scales(gamma: ArrayLike, rho: ArrayLike) -> np.ndarray:
    r"""The weight phi of the L1 fusion loss ||f - i||_1 + phi ||f - v||_1 that the model's scales
    imply: -log p(x, y) = |y - x|/sqrt(gamma/2) + |x|/sqrt(rho/2) + const, so phi = sqrt(gamma/rho)."""
    return np.sqrt(np.asarray(gamma, float) / np.asarray(rho, float))


def rho_from_phi(gamma: ArrayLike, phi: ArrayLike) -> np.ndarray:
    r"""The scale rho that a chosen phi fixes when the hyperparameter updates are off: rho = gamma/phi^2."""
    return np.asarray(gamma, float) / np.asarray(phi, float) ** 2

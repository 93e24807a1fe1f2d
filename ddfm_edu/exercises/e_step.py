"""Checkers of notebook 02 (the E-step): the posterior expectations of the Laplace noise's mixing
variable m given the residual r = y - x (Proposition 2), the update of gamma they give, and the
whole E-step of the library (weights with the residual floor, scale updates, per image)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from ddfm_edu import em, gsm
from ddfm_edu.exercises.harness import Case, check, random_image


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


def _floored(r: torch.Tensor, floor: float = em.RESIDUAL_FLOOR) -> torch.Tensor:
    """|r| with the E-step's smooth floor, sqrt(r^2 + floor^2)."""
    return (r * r + floor * floor).sqrt()


def _weight(abs_r: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """sqrt(2/scale) / |r| with one scale per image (scale: (B,))."""
    return (2.0 / scale).sqrt().view(-1, 1, 1, 1) / abs_r


def _scale_update(abs_r: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """mean over each image of E[m | r] = |r| sqrt(scale/2) + scale/2: (B,)."""
    return abs_r.mean(dim=(1, 2, 3)) * (scale / 2.0).sqrt() + scale / 2.0


def _e_step_with(
    x: torch.Tensor,
    y: torch.Tensor,
    gamma: torch.Tensor,
    rho: torch.Tensor,
    *,
    absolute: Callable = _floored,
    weight: Callable = _weight,
    update: Callable = _scale_update,
    new_scales_in_weights: bool = False,
    n_residual: Callable = lambda x, y: x,
) -> tuple[torch.Tensor, ...]:
    """The E-step built from its pieces, each replaceable by a typical mistake (the hints)."""
    abs_r_m, abs_r_n = absolute(y - x), absolute(n_residual(x, y))
    gamma_new, rho_new = update(abs_r_m, gamma), update(abs_r_n, rho)
    g, p = (gamma_new, rho_new) if new_scales_in_weights else (gamma, rho)
    return weight(abs_r_m, g), weight(abs_r_n, p), gamma_new, rho_new


def check_e_step(fn: Callable) -> bool:
    r"""fn(x, y, gamma, rho) = (m_bar, n_bar, gamma_new, rho_new), the whole E-step (`em.e_step`):
    x, y (B, 1, H, W) float64, gamma, rho (B,) one scale per image;
        m_bar = sqrt(2/gamma) / |y - x|_eps,   n_bar = sqrt(2/rho) / |x|_eps,
        gamma_new = mean_ij E[m | y - x],      rho_new = mean_ij E[n | x]   (per image, OLD scales),
    with |r|_eps = sqrt(r^2 + eps^2), eps = em.RESIDUAL_FLOOR = 1e-3."""
    def scales(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    x, y = 0.5 * random_image(1, 1, 4, 5, seed=20), 0.5 * random_image(1, 1, 4, 5, seed=21)
    xb, yb = 0.5 * random_image(2, 1, 3, 4, seed=22), 0.5 * random_image(2, 1, 3, 4, seed=23)
    x_tiny = scales(2e-4, 0.3, -0.5, 1e-4).view(1, 1, 1, 4)
    y_tiny = x_tiny + scales(1e-4, 0.2, -0.4, 3e-4).view(1, 1, 1, 4)
    x_zero = scales(0.0, 0.4, -0.2).view(1, 1, 1, 3)
    cases = [
        Case("a 4x5 image", (x, y, scales(0.5), scales(1.0)), "random x, y (1, 1, 4, 5), gamma 0.5, rho 1"),
        Case("a batch of two", (xb, yb, scales(0.3, 2.0), scales(1.0, 0.2)),
             "x, y (2, 1, 3, 4), gamma = [0.3, 2], rho = [1, 0.2]: one scale per image"),
        Case("tiny residuals", (x_tiny, y_tiny, scales(0.5), scales(0.5)),
             "x = [2e-4, 0.3, -0.5, 1e-4], y - x = [1e-4, 0.2, -0.4, 3e-4], gamma = rho = 0.5"),
        Case("residuals exactly 0", (x_zero, x_zero.clone(), scales(1.0), scales(1.0)),
             "x = y = [0, 0.4, -0.2], gamma = rho = 1"),
    ]  # fmt: skip
    hints = [
        *(  # the weight's two typical mistakes, with or without the floor
            (partial(_e_step_with, weight=weight, absolute=absolute), hint)
            for weight, hint in [
                (
                    lambda a, s: (2.0 / s).sqrt().view(-1, 1, 1, 1) * a,
                    "the weight is inverted: E[1/m | r] = sqrt(2/gamma) / |r| FALLS with the residual",
                ),
                (
                    lambda a, s: (2.0 / s).view(-1, 1, 1, 1) / a,
                    "a square root is missing: sqrt(2/gamma) / |r|",
                ),
            ]
            for absolute in (_floored, torch.abs)
        ),
        (partial(_e_step_with, absolute=torch.abs), "use the floored |r|_eps = sqrt(r^2 + 1e-6), not |r|"),
        (
            partial(_e_step_with, absolute=lambda r: r.abs() + em.RESIDUAL_FLOOR),
            "the floor is smooth, |r|_eps = sqrt(r^2 + eps^2), not |r| + eps",
        ),
        (
            partial(_e_step_with, absolute=lambda r: r.abs().clamp(min=em.RESIDUAL_FLOOR)),
            "the floor is smooth, |r|_eps = sqrt(r^2 + eps^2), not max(|r|, eps)",
        ),
        (
            partial(_e_step_with, new_scales_in_weights=True),
            "the weights use the OLD gamma and rho (the E-step's expectations are under the current model)",
        ),
        (
            partial(_e_step_with, n_residual=lambda x, y: y - x),
            "n_bar belongs to the prior on x: its residual is x itself, not y - x",
        ),
        (
            partial(_e_step_with, update=lambda a, s: 1 / _scale_update(a, s)),
            "gamma is the MEAN of EXP(gamma), not its rate: gamma <- mean E[m | r], not its reciprocal",
        ),
        (
            partial(_e_step_with, update=lambda a, s: (2.0 / s).sqrt() / a.mean(dim=(1, 2, 3))),
            "gamma <- the mean of E[m | r] (the variance), not of E[1/m | r]",
        ),
        (
            partial(_e_step_with, update=lambda a, s: a.mean(dim=(1, 2, 3)) * (s / 2.0).sqrt()),
            "the term gamma/2 is missing: E[m | r] = |r| sqrt(gamma/2) + gamma/2",
        ),
        (
            partial(_e_step_with, update=lambda a, s: a.mean() * (s / 2.0).sqrt() + s / 2.0),
            "one scale PER IMAGE: average over the pixels of each image (dims 1, 2, 3), not the batch",
        ),
    ]
    parts = ("m_bar", "n_bar", "gamma_new", "rho_new")
    return check("check_e_step", fn, em.e_step, cases, hints, rtol=1e-6, atol=1e-9, parts=parts)

"""Checkers of notebook 03 (the M-step by half-quadratic splitting): the periodic gradient,
the k-update solved in Fourier space, and the closed-form x-update."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import em, operators
from ddfm_edu.exercises.harness import Case, check, random_image


def check_grad(fn: Callable) -> bool:
    """fn(x) = periodic forward differences, (B, 1, H, W) -> (B, 2, H, W): channel 0 horizontal
    x[r, c+1] - x[r, c], channel 1 vertical x[r+1, c] - x[r, c], indices wrapping around."""
    cases = [
        Case("a 5x7 image", (random_image(1, 1, 5, 7, seed=0),), "x of shape (1, 1, 5, 7)"),
        Case("a batch", (random_image(2, 1, 4, 3, seed=1),), "x of shape (2, 1, 4, 3)"),
    ]
    hints = [
        (lambda x: operators.grad(x).flip(1), "channel 0 is horizontal (along W), channel 1 vertical"),
        (lambda x: -operators.grad(x), "forward differences are x[next] - x[this], not the reverse"),
        (
            lambda x: torch.cat(
                [torch.diff(x, dim=-1, append=x[..., -1:]), torch.diff(x, dim=-2, append=x[..., -1:, :])], 1
            ),  # fmt: skip
            "the boundary is periodic: the last column's difference is x[r, 0] - x[r, W-1]",
        ),
    ]
    return check("check_grad", fn, operators.grad, cases, hints, atol=1e-9)


def check_k_update(fn: Callable) -> bool:
    """fn(x, u) = k solving (I + grad^T grad) k = x + grad^T u (periodic grad), via the FFT:
    x (B, 1, H, W), u (B, 2, H, W) with channels (horizontal, vertical)."""
    x1, x2 = random_image(1, 1, 6, 8, seed=2), random_image(2, 1, 5, 7, seed=3)
    cases = [
        Case("u = 0", (x1, torch.zeros(1, 2, 6, 8, dtype=torch.float64)), "a 6x8 x and u = 0"),
        Case("a nonzero u", (x1, random_image(1, 2, 6, 8, seed=4)), "a 6x8 x and a random u"),
        Case("an odd-sized batch", (x2, random_image(2, 2, 5, 7, seed=5)), "x of shape (2, 1, 5, 7)"),
    ]
    hints = [
        (lambda x, u: x, "k must solve (I + grad^T grad) k = x + grad^T u, not equal x"),
        (lambda x, u: em.k_update(x, -u), "the sign of the u term: + conj(D_hat) fft2(u)"),
        (lambda x, u: em.k_update(x, u.flip(1)), "u's channel 0 is horizontal, channel 1 vertical"),
        (
            lambda x, u: x + operators.grad_adjoint(u),
            "that is the right-hand side; divide by 1 + |Dx_hat|^2 + |Dy_hat|^2 in Fourier space",
        ),
    ]
    return check("check_k_update", fn, em.k_update, cases, hints, atol=1e-8)


def check_x_update(fn: Callable) -> bool:
    """fn(y, m_bar, n_bar, k, eta) = (2 m_bar y + eta k) / (2 m_bar + 2 n_bar + eta)."""
    y, k = random_image(1, 1, 4, 5, seed=6), random_image(1, 1, 4, 5, seed=7)
    m_bar = 0.1 + random_image(1, 1, 4, 5, seed=8).abs()
    n_bar = 0.1 + random_image(1, 1, 4, 5, seed=9).abs()
    cases = [
        Case("eta = 0.5", (y, m_bar, n_bar, k, 0.5), "random y, k, positive m_bar, n_bar, eta = 0.5"),
        Case("a large eta", (y, m_bar, n_bar, k, 50.0), "the same, eta = 50"),
        Case("n_bar = 0", (y, m_bar, 0 * n_bar, k, 0.5), "n_bar = 0, eta = 0.5"),
    ]
    hints = [
        (
            lambda y, m, n, k, eta: (m * y + eta * k) / (m + n + eta),
            "the factors 2 on m_bar and n_bar are missing (the derivative of a square is 2 (.))",
        ),
        (
            lambda y, m, n, k, eta: (2 * n * y + eta * k) / (2 * m + 2 * n + eta),
            "m_bar, the weight of (x - y)^2, multiplies y in the numerator",
        ),
        (
            lambda y, m, n, k, eta: (2 * m * y + eta * k) / (2 * m + 2 * n),
            "the denominator needs + eta (from (eta/2) ||k - x||^2)",
        ),
    ]
    return check("check_x_update", fn, em.x_update, cases, hints, atol=1e-9)

r"""Checkers for the exercises of notebooks 01-04: they call the reader's function on a few inputs
and say WHAT is wrong (which case, expected vs got, and a hint when the answer matches a known
mistake), e.g.

    >>> exercises.check_m_bar(my_m_bar)
    ExerciseError: check_m_bar: wrong for a large residual: expected 0.27, got 3.7 at r = y - x = 5,
    gamma = 1.1. Hint: ...

A right answer prints one line ("check_m_bar: correct on 5 cases ...") and returns True; a wrong
one raises ExerciseError (an AssertionError) with the diagnosis.

Notebook 01 (Laplace as a Gaussian scale mixture): check_laplace_pdf, check_laplace_scale,
    check_gsm_sampler.
Notebook 02 (the E-step): check_m_bar, check_posterior_mean_m, check_gamma_update.
Notebook 03 (the M-step by HQS): check_grad, check_k_update, check_x_update.
Notebook 04 (EM fusion and phi): check_phi_from_scales, check_rho_from_phi, check_l1_fusion_loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from ddfm_edu import em, gsm, operators


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


def _numpy(value: object) -> np.ndarray:
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


def _check(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    hints: Sequence[Hint] = (),
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> bool:
    for case in cases:
        expected = _numpy(reference(*case.args, **case.kwargs))
        try:
            got_raw = fn(*case.args, **case.kwargs)
        except Exception as error:  # noqa: BLE001 - the reader's code: report whatever it raised
            raise ExerciseError(
                f"{name}: your function raised {type(error).__name__}: {error} for {case.label} "
                f"({case.where})"
            ) from error
        if got_raw is None:
            raise ExerciseError(f"{name}: your function returned None (forgot `return`?)")
        got = _numpy(got_raw)
        if got.shape != expected.shape and got.size == expected.size == 1:
            got = got.reshape(expected.shape)
        if got.shape != expected.shape:
            raise ExerciseError(
                f"{name}: wrong shape for {case.label}: expected {expected.shape}, got {got.shape} "
                f"({case.where})"
            )
        if not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
            raise ExerciseError(f"{name}: NaN or inf for {case.label} ({case.where})")
        if _close(got, expected, rtol, atol):
            continue
        message = (
            f"{name}: wrong for {case.label}: expected {_short(expected)}, got {_short(got)} at {case.where}"
        )
        for wrong, hint in hints:
            if _close(got, _numpy(wrong(*case.args, **case.kwargs)), rtol, atol):
                message += f". Hint: {hint}"
                break
        raise ExerciseError(message)
    labels = ", ".join(case.label for case in cases)
    print(f"{name}: correct on {len(cases)} cases ({labels}).")
    return True


# ------------------------------------------------------------------ notebook 01


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
    return _check("check_laplace_pdf", fn, gsm.laplace_pdf, cases, hints)


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
    return _check("check_laplace_scale", fn, gsm.laplace_scale, cases, hints)


def check_gsm_sampler(fn: Callable, n: int = 20_000) -> bool:
    """fn(mu, b, size, rng) draws a ~ EXP(b) (mean b), then xi ~ N(mu, a) (VARIANCE a); the draws
    must pass a Kolmogorov-Smirnov test against LAP(mu, sqrt(b/2))."""
    for mu, b, seed in [(0.0, 1.0, 0), (0.5, 0.2, 1)]:
        where = f"mu = {mu}, b = {b}, {n} draws"
        draws = _numpy(fn(mu, b, n, np.random.default_rng(seed))).reshape(-1)
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


# ------------------------------------------------------------------ notebook 02


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
            lambda x, y, g: 1 / gsm.posterior_moments(np.subtract(y, x), g)[1],
            "E[1/m | r] is not 1 / E[m | r] (Jensen); integrate 1/m against p(m | r)",
        ),
    ]
    return _check(
        "check_m_bar",
        fn,
        lambda x, y, g: gsm.posterior_moments(np.subtract(y, x), g)[0],
        _residual_cases(),
        hints,
    )


def check_posterior_mean_m(fn: Callable) -> bool:
    """fn(x, y, gamma) = E[m | y - x] = |y - x| sqrt(gamma/2) + gamma/2 (Proposition 2)."""
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
            lambda x, y, g: 1 / gsm.posterior_moments(np.subtract(y, x), g)[0],
            "1/E[1/m | r] is only part of it: add gamma/2",
        ),
    ]
    return _check(
        "check_posterior_mean_m",
        fn,
        lambda x, y, g: gsm.posterior_moments(np.subtract(y, x), g)[1],
        _residual_cases(),
        hints,
    )


def check_gamma_update(fn: Callable) -> bool:
    """fn(x, y, gamma) = the new gamma = mean over pixels of E[m | y - x] (arrays x, y)."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (2, 6, 5))
    cases = [
        Case("a 6x5 image", (x, y, 1.0), "random x, y in [-1, 1], gamma = 1"),
        Case("another gamma", (x, y, 0.3), "the same x, y, gamma = 0.3"),
    ]

    def reference(x, y, g):
        return np.mean(gsm.posterior_moments(y - x, g)[1])

    hints = [
        (
            lambda x, y, g: np.mean(gsm.posterior_moments(y - x, g)[0]),
            "gamma is the mean of E[m | r], not of E[1/m | r]",
        ),
        (
            lambda x, y, g: 1 / np.mean(gsm.posterior_moments(y - x, g)[0]),
            "average E[m | r], not 1/E[1/m | r]",
        ),
        (lambda x, y, g: gsm.posterior_moments(y - x, g)[1], "return one number: the MEAN over pixels"),
    ]
    return _check("check_gamma_update", fn, reference, cases, hints)


# ------------------------------------------------------------------ notebook 03


def _image(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def check_grad(fn: Callable) -> bool:
    """fn(x) = periodic forward differences, (B, 1, H, W) -> (B, 2, H, W): channel 0 horizontal
    x[r, c+1] - x[r, c], channel 1 vertical x[r+1, c] - x[r, c], indices wrapping around."""
    cases = [
        Case("a 5x7 image", (_image(1, 1, 5, 7, seed=0),), "x of shape (1, 1, 5, 7)"),
        Case("a batch", (_image(2, 1, 4, 3, seed=1),), "x of shape (2, 1, 4, 3)"),
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
    return _check("check_grad", fn, operators.grad, cases, hints, atol=1e-9)


def check_k_update(fn: Callable) -> bool:
    """fn(x, u) = k solving (I + grad^T grad) k = x + grad^T u (periodic grad), via the FFT:
    x (B, 1, H, W), u (B, 2, H, W) with channels (horizontal, vertical)."""
    x1, x2 = _image(1, 1, 6, 8, seed=2), _image(2, 1, 5, 7, seed=3)
    cases = [
        Case("u = 0", (x1, torch.zeros(1, 2, 6, 8, dtype=torch.float64)), "a 6x8 x and u = 0"),
        Case("a nonzero u", (x1, _image(1, 2, 6, 8, seed=4)), "a 6x8 x and a random u"),
        Case("an odd-sized batch", (x2, _image(2, 2, 5, 7, seed=5)), "x of shape (2, 1, 5, 7)"),
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
    return _check("check_k_update", fn, em.k_update, cases, hints, atol=1e-8)


def check_x_update(fn: Callable) -> bool:
    """fn(y, m_bar, n_bar, k, eta) = (2 m_bar y + eta k) / (2 m_bar + 2 n_bar + eta)."""
    y, k = _image(1, 1, 4, 5, seed=6), _image(1, 1, 4, 5, seed=7)
    m_bar = 0.1 + _image(1, 1, 4, 5, seed=8).abs()
    n_bar = 0.1 + _image(1, 1, 4, 5, seed=9).abs()
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
    return _check("check_x_update", fn, em.x_update, cases, hints, atol=1e-9)


# ------------------------------------------------------------------ notebook 04


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
    return _check("check_phi_from_scales", fn, gsm.phi_from_scales, cases, hints)


def check_rho_from_phi(fn: Callable) -> bool:
    """fn(gamma, phi) = rho = gamma / phi^2, the scale a chosen phi fixes."""
    cases = [
        Case("phi = 1", (0.5, 1.0), "gamma = 0.5, phi = 1"),
        Case("phi = 2", (0.4, 2.0), "gamma = 0.4, phi = 2"),
        Case("phi = 0.5", (0.3, 0.5), "gamma = 0.3, phi = 0.5"),
    ]
    hints = [
        (lambda g, p: g / p, "phi = sqrt(gamma/rho), so rho = gamma / phi^2"),
        (lambda g, p: g * p**2, "inverted: a larger phi means a smaller rho"),
    ]
    return _check("check_rho_from_phi", fn, gsm.rho_from_phi, cases, hints)


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
    return _check("check_l1_fusion_loss", fn, reference, cases, hints)

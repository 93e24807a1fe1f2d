r"""Checkers for the exercises of the notebooks: they call the reader's function on a few inputs
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
Notebook 00 (quickstart): check_max_abs. Notebook 07 (evaluation): check_entropy,
    check_spatial_frequency. Notebook 08 (medical fusion): check_luma, check_merge_luma_chroma.
Notebook 05 (diffusion primer): check_q_sample, check_tweedie, check_ddim_step.
Notebook 06 (DDFM sampling): check_ddpm_mean, check_replace_luma.
Notebook 09 (paper vs released code): check_released_output, check_studio_luma.
Notebook 10 (priors): check_score_from_x0, check_edm_coefficients.
Every checker prints "not attempted yet" (and returns False) while the reader's stub returns None:
the committed notebooks run their exercise cells with the stubs in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from ddfm_edu import baselines, colour, data, diffusion, em, gsm, metrics, operators


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
    if not _attempted("check_laplace_pdf", fn, *cases[0].args):
        return False
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
    if not _attempted("check_laplace_scale", fn, *cases[0].args):
        return False
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
    if not _attempted("check_gsm_sampler", fn, 0.0, 1.0, 10, np.random.default_rng(0)):
        return False
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
    cases = _residual_cases()
    if not _attempted("check_m_bar", fn, *cases[0].args):
        return False
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
        cases,
        hints,
    )


def check_posterior_mean_m(fn: Callable) -> bool:
    """fn(x, y, gamma) = E[m | y - x] = |y - x| sqrt(gamma/2) + gamma/2 (Proposition 2)."""
    cases = _residual_cases()
    if not _attempted("check_posterior_mean_m", fn, *cases[0].args):
        return False
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
        cases,
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
    if not _attempted("check_gamma_update", fn, *cases[0].args):
        return False

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
    if not _attempted("check_grad", fn, *cases[0].args):
        return False
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
    if not _attempted("check_k_update", fn, *cases[0].args):
        return False
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
    if not _attempted("check_x_update", fn, *cases[0].args):
        return False
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
    if not _attempted("check_phi_from_scales", fn, *cases[0].args):
        return False
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
    if not _attempted("check_rho_from_phi", fn, *cases[0].args):
        return False
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
    if not _attempted("check_l1_fusion_loss", fn, *cases[0].args):
        return False

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


# ------------------------------------------------------------------ notebooks 00, 07, 08


def _attempted(name: str, fn: Callable, *args: object) -> bool:
    """False, with a "not attempted yet" line, while the reader's stub returns None for `args`
    (a committed notebook runs its stubs: they must not raise). Errors are left to `_check`."""
    try:
        result = fn(*args)
    except Exception:  # noqa: BLE001 - `_check` calls it again and reports the error
        return True
    if result is None:
        print(f"{name}: not attempted yet (your function returns None): fill it in and run the cell again.")
        return False
    return True


def check_max_abs(fn: Callable) -> bool:
    """fn(a, b) = the coefficient of larger magnitude, pixel by pixel, WITH its sign (the rule of
    Laplacian-pyramid fusion for detail bands): a where |a| >= |b|, else b."""
    a, b = _image(1, 1, 5, 6, seed=10), _image(1, 1, 5, 6, seed=11)
    cases = [
        Case("two random bands", (a, b), "a, b of shape (1, 1, 5, 6), values of both signs"),
        Case("a batch", (_image(2, 1, 3, 4, seed=12), _image(2, 1, 3, 4, seed=13)), "shape (2, 1, 3, 4)"),
    ]
    if not _attempted("check_max_abs", fn, a, b):
        return False
    hints = [
        (torch.maximum, "that is the larger VALUE; a detail of -0.9 beats one of +0.2: compare |a|, |b|"),
        (
            lambda a, b: torch.maximum(a.abs(), b.abs()),
            "keep the selected coefficient with its sign, not its magnitude",
        ),
        (lambda a, b: torch.where(a.abs() >= b.abs(), b, a), "inverted: keep the LARGER magnitude"),
    ]
    return _check("check_max_abs", fn, baselines.select_max_abs, cases, hints, atol=1e-12)


def _grey_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 256, (40, 50)).astype(np.float64)
    return [
        Case("a ramp over all 256 levels", (np.tile(np.arange(256.0), (4, 1)),), "a 4 x 256 ramp 0..255"),
        Case("a two-level image", (np.repeat([[10.0, 200.0]], 6, axis=0),), "half 10, half 200 (6 x 2)"),
        Case("a noisy uint8 image", (noisy.astype(np.uint8),), "random uint8 values, 40 x 50"),
        Case("non-integer values", (noisy + rng.uniform(-0.45, 0.45, noisy.shape),),
             "the same image + uniform noise in (-0.45, 0.45) (float64)"),
    ]  # fmt: skip


def check_entropy(fn: Callable) -> bool:
    """fn(f) = EN of a grey image on 0..255 (numpy): -sum p_l log2 p_l over the 256-bin histogram
    of round(f), empty bins skipped (`ddfm_edu.metrics.en`)."""
    cases = _grey_cases()
    if not _attempted("check_entropy", fn, *cases[0].args):
        return False

    def per_value(f):
        _, counts = np.unique(np.asarray(f, dtype=np.float64), return_counts=True)
        p = counts / counts.sum()
        return -(p * np.log2(p)).sum()

    hints = [
        (lambda f: metrics.en(f) * np.log(2), "EN is in bits: log base 2, not the natural log"),
        (lambda f: metrics.en(f) * np.log10(2), "EN is in bits: log base 2, not log10"),
        (per_value, "round to the 256 grey levels first: a float image has one value per pixel"),
    ]
    return _check("check_entropy", fn, metrics.en, cases, hints)


def check_spatial_frequency(fn: Callable) -> bool:
    """fn(f) = SF = sqrt(RF^2 + CF^2) of a grey image (numpy, float or uint8 on 0..255), RF^2 and
    CF^2 the means of the squared horizontal and vertical neighbour differences (`metrics.sf`)."""
    cases = _grey_cases()
    if not _attempted("check_spatial_frequency", fn, *cases[0].args):
        return False

    def naive(f):  # differences and squares in f's own dtype: uint8 wraps around
        return np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2))

    def no_root(f):
        return metrics.sf(f) ** 2

    def root_sum(f):
        f = np.asarray(f, dtype=np.float64)
        return np.sqrt(np.mean(np.diff(f, axis=1) ** 2)) + np.sqrt(np.mean(np.diff(f, axis=0) ** 2))

    hints = [
        (naive, "convert to float first: on uint8, differences (and squares) wrap around modulo 256"),
        (no_root, "take the square root of RF^2 + CF^2"),
        (root_sum, "SF = sqrt(RF^2 + CF^2), not RF + CF"),
    ]
    return _check("check_spatial_frequency", fn, metrics.sf, cases, hints)


def _rgb(*shape: int, seed: int) -> torch.Tensor:
    """Random RGB in [-1, 1] (float64)."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def check_luma(fn: Callable) -> bool:
    """fn(rgb) = BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B, (B, 3, H, W) -> (B, 1, H, W)."""
    rgb = _rgb(1, 3, 4, 5, seed=20)
    cases = [
        Case("a random colour image", (rgb,), "rgb of shape (1, 3, 4, 5) in [-1, 1]"),
        Case("a batch", (_rgb(2, 3, 3, 2, seed=21),), "rgb of shape (2, 3, 3, 2)"),
    ]
    if not _attempted("check_luma", fn, rgb):
        return False
    hints = [
        (lambda x: x.mean(dim=1, keepdim=True), "not the plain mean: green counts most (0.587), blue least"),
        (
            lambda x: torch.einsum("c,bchw->bhw", x.new_tensor([0.2126, 0.7152, 0.0722]), x)[:, None],
            "these are the BT.709 (HDTV) weights; the fusion literature uses BT.601: 0.299, 0.587, 0.114",
        ),
        (lambda x: colour.luma(x)[:, 0], "keep the channel axis: (B, 1, H, W)"),
    ]
    return _check("check_luma", fn, colour.luma, cases, hints, atol=1e-9)


def check_merge_luma_chroma(fn: Callable) -> bool:
    """fn(y, chroma) = RGB (B, 3, H, W) with luma y (B, 1, H, W) and chroma (Cb, Cr) (B, 2, H, W),
    BT.601 full range on [-1, 1] (centred chroma): R = Y + 1.402 Cr, G = Y - 0.344136 Cb -
    0.714136 Cr, B = Y + 1.772 Cb (`ddfm_edu.data.merge_chroma`)."""
    ycbcr = colour.rgb_to_ycbcr(_rgb(1, 3, 4, 5, seed=22))
    y, chroma = _rgb(1, 1, 4, 5, seed=23), ycbcr[:, 1:]
    cases = [
        Case("a fused luma with PET chroma", (y, chroma), "random y (1, 1, 4, 5), a colour image's chroma"),
        Case("grey (zero chroma)", (y, torch.zeros_like(chroma)), "the same y, Cb = Cr = 0: R = G = B = Y"),
        Case("a batch", (_rgb(2, 1, 3, 2, seed=24), colour.rgb_to_ycbcr(_rgb(2, 3, 3, 2, seed=25))[:, 1:]),
             "y (2, 1, 3, 2), chroma (2, 2, 3, 2)"),
    ]  # fmt: skip
    if not _attempted("check_merge_luma_chroma", fn, y, chroma):
        return False
    hints = [
        (lambda y, c: data.merge_chroma(y, c.flip(1)), "Cb and Cr are swapped: channel 0 is Cb, 1 is Cr"),
        (
            lambda y, c: torch.einsum("ij,bjhw->bihw", colour.RGB_TO_YCBCR.to(y), torch.cat([y, c], 1)),
            "that is the forward (RGB -> YCbCr) matrix; merging needs its inverse",
        ),
        (
            lambda y, c: torch.cat([y + c[:, 1:], y - c[:, :1] - c[:, 1:], y + c[:, :1]], 1),
            "the chroma coefficients are 1.402 (Cr in R), 0.344136 and 0.714136 (G), 1.772 (Cb in B)",
        ),
    ]
    return _check("check_merge_luma_chroma", fn, data.merge_chroma, cases, hints, atol=1e-9)


# ------------------------------------------------------------------ notebook 05


def _diffusion_cases(n_images: int, seed: int) -> list[Case]:
    """Random (1, 1, 4, 5) images and a few alpha_bar values of the linear schedule."""
    images = [_image(1, 1, 4, 5, seed=seed + j) for j in range(n_images)]
    return [
        Case("t = 50 (little noise)", (*images, 0.9807), "alpha_bar = 0.9807"),
        Case("t = 500", (*images, 0.0784), "alpha_bar = 0.0784"),
        Case("t = 999 (almost pure noise)", (*images, 4.04e-5), "alpha_bar = 4.04e-5"),
    ]


def check_q_sample(fn: Callable) -> bool:
    """fn(f0, alpha_bar, noise) = f_t = sqrt(alpha_bar) f0 + sqrt(1 - alpha_bar) noise."""
    cases = [
        Case(c.label, (c.args[0], c.args[2], c.args[1]), f"{c.where}, random f0 and noise")
        for c in _diffusion_cases(2, seed=20)
    ]
    if not _attempted("check_q_sample", fn, *cases[0].args):
        return False
    hints = [
        (
            lambda f0, a, z: a * f0 + (1 - a) * z,
            "alpha_bar and 1 - alpha_bar are VARIANCES: take square roots",
        ),
        (
            lambda f0, a, z: a**0.5 * f0 + (1 - a) * z,
            "the noise's standard deviation is sqrt(1 - alpha_bar), so that Var f_t = 1 for Var f0 = 1",
        ),
        (
            lambda f0, a, z: (1 - a) ** 0.5 * f0 + a**0.5 * z,
            "swapped: alpha_bar is the share of the SIGNAL (close to 1 at small t)",
        ),
    ]
    return _check("check_q_sample", fn, diffusion.q_sample, cases, hints, atol=1e-9)


def check_tweedie(fn: Callable) -> bool:
    """fn(f_t, eps, alpha_bar) = f_{0|t} = (f_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)."""
    cases = [Case(c.label, c.args, f"{c.where}, random f_t and eps") for c in _diffusion_cases(2, seed=30)]
    if not _attempted("check_tweedie", fn, *cases[0].args):
        return False
    hints = [
        (
            lambda f, e, a: (f - (1 - a) * e) / a**0.5,
            "the noise in f_t has standard deviation sqrt(1 - alpha_bar): subtract sqrt(1 - alpha_bar) eps",
        ),
        (
            lambda f, e, a: (f - (1 - a) ** 0.5 * e) * a**0.5,
            "f_t holds sqrt(alpha_bar) f_0: DIVIDE by sqrt(alpha_bar)",
        ),
        (lambda f, e, a: f - (1 - a) ** 0.5 * e, "what is left is sqrt(alpha_bar) f_0: divide by it"),
        (lambda f, e, a: (f + (1 - a) ** 0.5 * e) / a**0.5, "subtract the noise, do not add it"),
    ]
    return _check("check_tweedie", fn, diffusion.x0_from_eps, cases, hints, rtol=1e-6, atol=1e-8)


def check_ddim_step(fn: Callable) -> bool:
    """fn(f_t, f0, alpha_bar, alpha_bar_prev) = the DDIM (eta = 0) update
    sqrt(alpha_bar_prev) f0 + sqrt(1 - alpha_bar_prev) eps', eps' = (f_t - sqrt(alpha_bar) f0) /
    sqrt(1 - alpha_bar)."""
    f_t, f0 = _image(1, 1, 4, 5, seed=40), _image(1, 1, 4, 5, seed=41)
    cases = [
        Case("t = 500 -> 490", (f_t, f0, 0.0784, 0.0848), "alpha_bar = 0.0784, alpha_bar_prev = 0.0848"),
        Case("t = 999 -> 949", (f_t, f0, 4.04e-5, 1.23e-4), "alpha_bar = 4.04e-5, alpha_bar_prev = 1.23e-4"),
        Case("the last step t = 0", (f_t, f0, 0.9999, 1.0), "alpha_bar = 0.9999, alpha_bar_prev = 1"),
    ]
    if not _attempted("check_ddim_step", fn, *cases[0].args):
        return False
    hints = [
        (
            lambda f, x0, a, ap: diffusion.ddpm_posterior(f, x0, a, ap)[0],
            "that is the DDPM posterior mean mu_tilde; DDIM re-noises f0 with the noise eps' that "
            "f_t implies",
        ),
        (
            lambda f, x0, a, ap: diffusion.ddim_step(f, x0, ap, a),
            "alpha_bar (of t) and alpha_bar_prev (of the next, less noisy step) are swapped",
        ),
        (
            lambda f, x0, a, ap: ap**0.5 * x0 + (1 - ap) ** 0.5 * (f - x0) / (1 - a) ** 0.5,
            "eps' = (f_t - sqrt(alpha_bar) f0) / sqrt(1 - alpha_bar): f_t holds sqrt(alpha_bar) f0",
        ),
    ]
    return _check("check_ddim_step", fn, diffusion.ddim_step, cases, hints, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ notebook 09


def _released_from_weights(
    i: torch.Tensor, v: torch.Tensor, c: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """The release's output as eta -> 0 with the cap inactive: X = C Y / (C + D), F = I - X,
    i.e. i + v - f_paper with f_paper = v + (i - v) C / (C + D)."""
    return i + v - (v + (i - v) * c / (c + d))


def check_released_output(fn: Callable) -> bool:
    """fn(i, v, c, d) = the release's F = I - X as RHO -> 0 (cap D <= 2C inactive), with I = i,
    V = v and its weights C (m_bar), D (n_bar): X = C (I - V) / (C + D)."""
    i, v = _image(1, 1, 4, 5, seed=90), _image(1, 1, 4, 5, seed=91)
    c = 1 + torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(92), dtype=torch.float64)
    d = 1 + torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(93), dtype=torch.float64)
    cases = [
        Case("random sources and weights", (i, v, c, d), "i, v in [-1, 1], C, D in [1, 2], (1, 1, 4, 5)"),
        Case("equal weights C = D", (i, v, c, c), "C = D: the paper gives the mean of the sources"),
        Case("a strong data weight", (i, v, 50 * c, d), "C = 50..100, D in [1, 2]"),
        Case("a batch", (_image(2, 1, 3, 2, seed=94), _image(2, 1, 3, 2, seed=95),
                         c[..., :3, :2].expand(2, 1, 3, 2), d[..., :3, :2].expand(2, 1, 3, 2)),
             "shape (2, 1, 3, 2)"),
    ]  # fmt: skip
    if not _attempted("check_released_output", fn, *cases[0].args):
        return False
    hints = [
        (lambda i, v, c, d: v + (i - v) * c / (c + d),
         "that is the paper's f = x + v; the release outputs F = I - X"),
        (lambda i, v, c, d: (i - v) * c / (c + d), "that is X = C Y / (C + D); the output is F = I - X"),
        (lambda i, v, c, d: i - (i - v) * c / (c + 2 * d),
         "as RHO -> 0 the denominator is 2C + 2D: C / (C + D)"),
    ]  # fmt: skip
    return _check("check_released_output", fn, _released_from_weights, cases, hints, atol=1e-9)


def _studio_luma(rgb: torch.Tensor) -> torch.Tensor:
    from ddfm_edu.released import released_rgb_to_ycbcr

    return released_rgb_to_ycbcr(rgb)[:, :1]


def check_studio_luma(fn: Callable) -> bool:
    """fn(rgb) = the luma the release hands to EM: Y' = (16 + 65.481 R + 128.553 G + 24.966 B) / 255
    with R, G, B the network's x0 estimate in [-1, 1] as is, (B, 3, H, W) -> (B, 1, H, W)."""
    rgb = _rgb(1, 3, 4, 5, seed=96)
    grey = torch.linspace(-1, 1, 5, dtype=torch.float64).view(1, 1, 1, 5).expand(1, 3, 2, 5)
    cases = [
        Case("a random colour estimate", (rgb,), "rgb of shape (1, 3, 4, 5) in [-1, 1]"),
        Case("grey values -1 .. 1", (grey,), "R = G = B = -1, -0.5, 0, 0.5, 1"),
        Case("a batch", (_rgb(2, 3, 3, 2, seed=97),), "rgb of shape (2, 3, 3, 2)"),
    ]
    if not _attempted("check_studio_luma", fn, rgb):
        return False
    hints = [
        (colour.luma, "that is the full-range luma 0.299 R + 0.587 G + 0.114 B; the release uses the "
                      "studio-range matrix: (16 + 65.481 R + 128.553 G + 24.966 B) / 255"),
        (lambda x: _studio_luma((x + 1) / 2), "the release does NOT rescale [-1, 1] to [0, 1] first"),
        (lambda x: _studio_luma(x) * 255, "divide by 255 (the release's scaling before EM)"),
        (lambda x: _studio_luma(x) - 16 / 255, "add the offset 16 before dividing by 255"),
    ]  # fmt: skip
    return _check("check_studio_luma", fn, _studio_luma, cases, hints, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ notebook 06


def _ddpm_mean(
    f_t: torch.Tensor, f_hat: torch.Tensor, alpha_bar: float, alpha_bar_prev: float
) -> torch.Tensor:
    return diffusion.ddpm_posterior(f_t, f_hat, alpha_bar, alpha_bar_prev)[0]


def check_ddpm_mean(fn: Callable) -> bool:
    """fn(f_t, f_hat, alpha_bar, alpha_bar_prev) = mu_tilde, the mean of Algorithm 1's update
    (`diffusion.ddpm_posterior`): beta = 1 - alpha_bar / alpha_bar_prev (the step's beta on the
    respaced chain), mu_tilde = (beta sqrt(alpha_bar_prev) f_hat + (1 - alpha_bar_prev)
    sqrt(1 - beta) f_t) / (1 - alpha_bar)."""
    f_t, f_hat = _image(1, 1, 4, 5, seed=60), _image(1, 1, 4, 5, seed=61)
    cases = [
        Case("t = 500 -> 458", (f_t, f_hat, 0.0778, 0.1169), "alpha_bar = 0.0778, alpha_bar_prev = 0.1169"),
        Case("t = 999 -> 957", (f_t, f_hat, 4.04e-5, 9.26e-5), "alpha_bar 4.04e-5, alpha_bar_prev 9.26e-5"),
        Case("the last step t = 0", (f_t, f_hat, 0.9999, 1.0), "alpha_bar = 0.9999, alpha_bar_prev = 1"),
    ]  # fmt: skip
    if not _attempted("check_ddpm_mean", fn, *cases[0].args):
        return False

    def cumulative_beta(f, x0, a, ap):
        return ((1 - a) * ap**0.5 * x0 + (1 - ap) * a**0.5 * f) / (1 - a)  # beta = 1 - alpha_bar

    hints = [
        (
            lambda f, x0, a, ap: diffusion.ddim_step(f, x0, a, ap),
            "that is the release's DDIM update; Algorithm 1 takes the DDPM posterior mean mu_tilde",
        ),
        (
            cumulative_beta,
            "beta is the step's own beta, 1 - alpha_bar / alpha_bar_prev (the respaced chain skips "
            "timesteps), not 1 - alpha_bar",
        ),
        (
            lambda f, x0, a, ap: _ddpm_mean(x0, f, a, ap),
            "f_t and f_hat are swapped: the beta sqrt(alpha_bar_prev) term multiplies the clean "
            "estimate f_hat",
        ),
        (
            lambda f, x0, a, ap: ((1 - a / ap) * ap**0.5 * x0 + (1 - ap) * (a / ap) * f) / (1 - a),
            "the f_t coefficient has sqrt(1 - beta) = sqrt(alpha_bar / alpha_bar_prev), a square root",
        ),
    ]
    return _check("check_ddpm_mean", fn, _ddpm_mean, cases, hints, rtol=1e-6, atol=1e-8)


def check_replace_luma(fn: Callable) -> bool:
    """fn(rgb, y) = the RGB image with luma y (B, 1, H, W) and the chroma of rgb (B, 3, H, W),
    BT.601 full range on [-1, 1] (`colour.replace_luma`): what DDFM does with an RGB prior's
    estimate after EM has rectified its luma."""
    rgb, y = _rgb(1, 3, 4, 5, seed=62), _rgb(1, 1, 4, 5, seed=63)
    grey = _rgb(1, 1, 4, 5, seed=64).expand(1, 3, 4, 5)
    cases = [
        Case("a colour estimate", (rgb, y), "rgb (1, 3, 4, 5) and y (1, 1, 4, 5), random in [-1, 1]"),
        Case("a grey estimate", (grey, y), "R = G = B: the result is y in all three channels"),
        Case("a batch", (_rgb(2, 3, 3, 2, seed=65), _rgb(2, 1, 3, 2, seed=66)), "rgb (2, 3, 3, 2)"),
    ]
    if not _attempted("check_replace_luma", fn, rgb, y):
        return False
    hints = [
        (
            lambda x, y: y.expand_as(x),
            "the chroma of rgb must stay: a grey y in three channels loses the colour",
        ),
        (
            lambda x, y: x * y / colour.luma(x),
            "scaling R, G, B by y / Y changes the chroma too (and divides by zero where Y = 0); "
            "ADD y - Y to every channel",
        ),
        (
            lambda x, y: torch.cat([x[:, :1], y, x[:, 2:]], dim=1),
            "luma is not the green channel: convert to Y, Cb, Cr, swap Y, convert back",
        ),
        (lambda x, y: x + y - x.mean(dim=1, keepdim=True), "Y = 0.299 R + 0.587 G + 0.114 B, not the mean"),
    ]
    return _check("check_replace_luma", fn, colour.replace_luma, cases, hints, atol=1e-9)


# ------------------------------------------------------------------ notebook 10


def _gaussian_tweedie(
    f_t: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, alpha_bar: float
) -> torch.Tensor:
    r"""E[f_0 | f_t] for independent pixels f_0 ~ N(mean, std^2): the Wiener gain
    mean + sqrt(ab) std^2 / (ab std^2 + 1 - ab) (f_t - sqrt(ab) mean)."""
    gain = alpha_bar**0.5 * std**2 / (alpha_bar * std**2 + 1.0 - alpha_bar)
    return mean + gain * (f_t - alpha_bar**0.5 * mean)


def _score_from_x0(f_t: torch.Tensor, x0: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    return (alpha_bar**0.5 * x0 - f_t) / (1.0 - alpha_bar)


def check_score_from_x0(fn: Callable) -> bool:
    r"""fn(f_t, x0_hat, alpha_bar) = the score grad log p_t(f_t) from a denoiser's estimate
    x0_hat = E[f_0 | f_t] (Tweedie's formula solved for the score):
    (sqrt(alpha_bar) x0_hat - f_t) / (1 - alpha_bar). The cases' x0_hat are exact posterior means
    of per-pixel Gaussian priors, whose score is known in closed form (the tests compare)."""
    mean, std = 0.5 * _image(1, 1, 4, 5, seed=100), 0.2 + _image(1, 1, 4, 5, seed=101).abs()
    cases = []
    for label, alpha_bar in (("t = 25", 0.9910), ("t = 250", 0.5214), ("t = 500", 0.0778)):
        f_t = alpha_bar**0.5 * mean + _image(1, 1, 4, 5, seed=102)
        x0 = _gaussian_tweedie(f_t, mean, std, alpha_bar)
        cases.append(Case(label, (f_t, x0, alpha_bar), f"alpha_bar = {alpha_bar}, Gaussian pixels"))
    if not _attempted("check_score_from_x0", fn, *cases[0].args):
        return False
    hints = [
        (
            lambda f, x0, a: (x0 - f) / (1 - a),
            "f_t holds sqrt(alpha_bar) f_0: compare f_t with sqrt(alpha_bar) x0_hat",
        ),
        (
            lambda f, x0, a: (a**0.5 * x0 - f) / (1 - a) ** 0.5,
            "that is minus the noise eps; the score divides by the noise VARIANCE 1 - alpha_bar",
        ),
        (
            lambda f, x0, a: (f - a**0.5 * x0) / (1 - a),
            "wrong sign: the score points from f_t towards the (scaled) clean estimate",
        ),
        (
            lambda f, x0, a: (x0 - a**0.5 * f) / (1 - a),
            "sqrt(alpha_bar) multiplies the estimate x0_hat, not f_t",
        ),
    ]
    return _check("check_score_from_x0", fn, _score_from_x0, cases, hints, rtol=1e-6, atol=1e-8)


def check_edm_coefficients(fn: Callable) -> bool:
    r"""fn(sigma) = (c_skip, c_out) of the EDM preconditioning of the embedded prior, sigma_data =
    0.5 (`priors.embedded.edm_coefficients`): x0_hat = c_skip y + c_out F(c_in y, c_noise) with
    c_skip = sd^2 / (sigma^2 + sd^2) and c_out = sigma sd / sqrt(sigma^2 + sd^2)."""
    from ddfm_edu.priors.embedded import SIGMA_DATA, edm_coefficients

    def pair(sigma: torch.Tensor) -> torch.Tensor | None:
        out = fn(sigma)
        if out is None:
            return None
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("return the pair (c_skip, c_out)")
        return torch.stack([torch.as_tensor(c, dtype=torch.float64).expand_as(sigma) for c in out])

    cases = [
        Case("small noise", (torch.tensor([0.0955], dtype=torch.float64),), "sigma = 0.0955 (t = 25)"),
        Case("sigma = sigma_data", (torch.tensor([SIGMA_DATA], dtype=torch.float64),), "sigma = 0.5"),
        Case("a batch", (torch.tensor([0.01, 0.958, 3.44, 157.4], dtype=torch.float64),),
             "sigma = [0.01, 0.958, 3.44, 157.4] (t = 0, 250, 500, 999)"),
    ]  # fmt: skip
    if not _attempted("check_edm_coefficients", pair, *cases[0].args):
        return False
    sd = SIGMA_DATA

    def hint(c_skip: Callable, c_out: Callable) -> Callable:
        return lambda s: torch.stack([c_skip(s), c_out(s)])

    hints = [
        (
            hint(lambda s: s**2 / (s**2 + sd**2), lambda s: s * sd / (s**2 + sd**2) ** 0.5),
            "c_skip is sd^2 / (sigma^2 + sd^2): it must go to 1 (keep the input) as sigma -> 0",
        ),
        (
            hint(lambda s: sd**2 / (s**2 + sd**2), lambda s: s * sd / (s**2 + sd**2)),
            "c_out is a standard deviation, sigma sd / SQRT(sigma^2 + sd^2)",
        ),
        (
            hint(lambda s: sd / (s**2 + sd**2) ** 0.5, lambda s: s * sd / (s**2 + sd**2) ** 0.5),
            "c_skip is a regression coefficient Cov(f_0, y) / Var(y) = sd^2 / (sigma^2 + sd^2), "
            "no square root",
        ),
    ]
    return _check(
        "check_edm_coefficients",
        pair,
        lambda s: torch.stack(edm_coefficients(s)[:2]),
        cases,
        hints,
        rtol=1e-6,
        atol=1e-9,
    )

"""Checkers of notebook 06 (priors): the score from a denoiser's estimate (Tweedie's formula
solved for the score), the EDM preconditioning coefficients of the bundled prior, and the Gaussian
prior's exact denoiser (a Wiener filter in Fourier space) written by the reader."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu.exercises.harness import Case, check, random_image
from ddfm_edu.priors.gaussian import GaussianPrior


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
    mean, std = 0.5 * random_image(1, 1, 4, 5, seed=100), 0.2 + random_image(1, 1, 4, 5, seed=101).abs()
    cases = []
    for label, alpha_bar in (("t = 25", 0.9910), ("t = 250", 0.5214), ("t = 500", 0.0778)):
        f_t = alpha_bar**0.5 * mean + random_image(1, 1, 4, 5, seed=102)
        x0 = _gaussian_tweedie(f_t, mean, std, alpha_bar)
        cases.append(Case(label, (f_t, x0, alpha_bar), f"alpha_bar = {alpha_bar}, Gaussian pixels"))
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
    return check("check_score_from_x0", fn, _score_from_x0, cases, hints, rtol=1e-6, atol=1e-8)


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
    return check(
        "check_edm_coefficients",
        pair,
        lambda s: torch.stack(edm_coefficients(s)[:2]),
        cases,
        hints,
        rtol=1e-6,
        atol=1e-9,
    )


def full_spectrum(prior: GaussianPrior, height: int, width: int) -> torch.Tensor:
    """The Gaussian prior's P_eff on the full fft2 grid (height, width), float64: A / |w|^alpha + floor,
    and H W s_mu^2 at w = 0 (`GaussianPrior.spectrum` holds its rfft2 half)."""
    fit = prior.fit
    w = torch.hypot(torch.fft.fftfreq(height, dtype=torch.float64)[:, None],
                    torch.fft.fftfreq(width, dtype=torch.float64)[None, :])  # fmt: skip
    power = fit.amplitude * w.clamp_min(1e-12) ** -fit.exponent + fit.floor
    power[0, 0] = height * width * fit.mean_std**2
    return power


def _wiener_with(f_t, alpha_bar, power, mean, *, gain=None, centre=True, part=torch.real):
    """E[f_0 | f_t] by a Wiener filter, with one step replaceable by a typical mistake."""
    a = alpha_bar
    g = a**0.5 * power / (a * power + 1 - a) if gain is None else gain(a, power)
    shift = a**0.5 * mean if centre else 0.0
    out = part(torch.fft.ifft2(g * torch.fft.fft2(f_t - shift, norm="ortho"), norm="ortho"))
    return out + mean if centre else out


def check_wiener_denoiser(fn: Callable) -> bool:
    r"""fn(f_t, alpha_bar, power, mean) = E[f_0 | f_t] for the stationary Gaussian prior
    (`GaussianPrior.posterior_mean`): f_0 has mean `mean` (a number) and power spectrum `power`
    (H, W) on the unitary fft2 grid; per frequency
        E[F_0 | F_t] = M + sqrt(ab) P / (ab P + 1 - ab) (F_t - sqrt(ab) M)."""
    prior = GaussianPrior()
    mean = prior.fit.mean
    cases, lookup = [], {}
    for label, t, shape, seed in (("t = 50", 50, (1, 1, 8, 8), 110), ("t = 400", 400, (1, 1, 8, 8), 111),
                                  ("a batch, 6x10, t = 150", 150, (2, 1, 6, 10), 112)):  # fmt: skip
        a = float(prior.alpha_bar[t])
        lookup[a] = t
        f_t = a**0.5 * (mean + 0.3 * random_image(*shape, seed=seed)) + (1 - a) ** 0.5 * random_image(
            *shape, seed=seed + 10
        )
        power = full_spectrum(prior, *shape[-2:])
        cases.append(Case(label, (f_t, a, power, mean), f"f_t {shape}, alpha_bar = {a:.4f}"))

    def reference(f_t, a, power, mean):
        return prior.posterior_mean(f_t, torch.full((f_t.shape[0],), lookup[a]))

    hints = [
        (
            lambda *args: _wiener_with(*args, centre=False),
            "the prior's mean matters: filter f_t - sqrt(alpha_bar) mu_0, then add mu_0 back",
        ),
        (
            lambda *args: _wiener_with(*args, gain=lambda a, p: p / (a * p + 1 - a)),
            "the gain has sqrt(alpha_bar) in its numerator (Cov(F_0, F_t) = sqrt(alpha_bar) P)",
        ),
        (
            lambda *args: _wiener_with(*args, gain=lambda a, p: p / (p + 1 - a)),
            "Var F_t = alpha_bar P + 1 - alpha_bar: the signal is scaled by sqrt(alpha_bar)",
        ),
        (lambda *args: _wiener_with(*args, part=torch.abs), "take the REAL part of the inverse FFT, not |.|"),
    ]
    return check("check_wiener_denoiser", fn, reference, cases, hints, rtol=1e-6, atol=1e-9)

"""Checkers of notebook 05 (diffusion primer): the forward process q(f_t | f_0), Tweedie's
estimate from the predicted noise, the DDIM update, and one step of the whole family of
non-Markovian reverse steps q_sigma (DDIM at sigma = 0, DDPM at sigma = sigma_tilde)."""

from __future__ import annotations

from collections.abc import Callable

from ddfm_edu import diffusion
from ddfm_edu.exercises.harness import Case, check, random_image


def _diffusion_cases(n_images: int, seed: int) -> list[Case]:
    """Random (1, 1, 4, 5) images and a few alpha_bar values of the linear schedule."""
    images = [random_image(1, 1, 4, 5, seed=seed + j) for j in range(n_images)]
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
    return check("check_q_sample", fn, diffusion.q_sample, cases, hints, atol=1e-9)


def check_tweedie(fn: Callable) -> bool:
    """fn(f_t, eps, alpha_bar) = f_{0|t} = (f_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)."""
    cases = [Case(c.label, c.args, f"{c.where}, random f_t and eps") for c in _diffusion_cases(2, seed=30)]
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
    return check("check_tweedie", fn, diffusion.x0_from_eps, cases, hints, rtol=1e-6, atol=1e-8)


def check_ddim_step(fn: Callable) -> bool:
    """fn(f_t, f0, alpha_bar, alpha_bar_prev) = the DDIM (eta = 0) update
    sqrt(alpha_bar_prev) f0 + sqrt(1 - alpha_bar_prev) eps', eps' = (f_t - sqrt(alpha_bar) f0) /
    sqrt(1 - alpha_bar)."""
    f_t, f0 = random_image(1, 1, 4, 5, seed=40), random_image(1, 1, 4, 5, seed=41)
    cases = [
        Case("t = 500 -> 490", (f_t, f0, 0.0784, 0.0848), "alpha_bar = 0.0784, alpha_bar_prev = 0.0848"),
        Case("t = 999 -> 949", (f_t, f0, 4.04e-5, 1.23e-4), "alpha_bar = 4.04e-5, alpha_bar_prev = 1.23e-4"),
        Case("the last step t = 0", (f_t, f0, 0.9999, 1.0), "alpha_bar = 0.9999, alpha_bar_prev = 1"),
    ]
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
    return check("check_ddim_step", fn, diffusion.ddim_step, cases, hints, rtol=1e-6, atol=1e-8)


def generalised_step(f_t, f0, alpha_bar, alpha_bar_prev, sigma, noise):
    r"""A draw of q_sigma(f_{t-1} | f_t, f_0) (Song et al. 2021, the family that keeps the marginals):
    sqrt(ab_prev) f0 + sqrt(1 - ab_prev - sigma^2) eps' + sigma noise, eps' = (f_t - sqrt(ab) f0) /
    sqrt(1 - ab). sigma = 0 is `diffusion.ddim_step`, sigma = sigma_tilde `diffusion.ddpm_step`."""
    eps = (f_t - alpha_bar**0.5 * f0) / (1 - alpha_bar) ** 0.5
    return alpha_bar_prev**0.5 * f0 + (1 - alpha_bar_prev - sigma**2) ** 0.5 * eps + sigma * noise


def check_generalised_step(fn: Callable) -> bool:
    r"""fn(f_t, f0, alpha_bar, alpha_bar_prev, sigma, noise) = a draw of q_sigma(f_{t-1} | f_t, f_0)
    with the standard normal `noise` (`generalised_step`; the tests check that sigma = 0 gives
    `diffusion.ddim_step` and sigma = sigma_tilde `diffusion.ddpm_step`)."""
    f_t, f0, z = (random_image(1, 1, 4, 5, seed=s) for s in (50, 51, 52))
    a, ap = 0.0784, 0.0848  # t = 500 -> 490
    sigma_tilde = float(diffusion.ddpm_posterior(f_t, f0, a, ap)[1]) ** 0.5
    cases = [
        Case("sigma = 0 (DDIM)", (f_t, f0, a, ap, 0.0, z), "t = 500 -> 490, sigma = 0"),
        Case("sigma = sigma_tilde (DDPM)", (f_t, f0, a, ap, sigma_tilde, z),
             f"t = 500 -> 490, sigma = {sigma_tilde:.4f}"),
        Case("a larger sigma", (f_t, f0, a, ap, 0.9, z), "t = 500 -> 490, sigma = 0.9"),
    ]  # fmt: skip
    hints = [
        (
            lambda f, x0, a, ap, s, z: generalised_step(f, x0, a, ap, 0.0, z) + s * z,
            "the re-used noise must make room for the fresh one: its coefficient is "
            "sqrt(1 - alpha_bar_prev - sigma^2), so that the variance stays 1 - alpha_bar_prev",
        ),
        (
            lambda f, x0, a, ap, s, z: generalised_step(f, x0, a, ap, s, 0 * z) + s**2 * z,
            "sigma is a standard deviation: add sigma * noise, not sigma^2 * noise",
        ),
        (
            lambda f, x0, a, ap, s, z: generalised_step(f, x0, ap, a, s, z),
            "alpha_bar (of t) and alpha_bar_prev (of the next, less noisy step) are swapped",
        ),
    ]
    return check("check_generalised_step", fn, generalised_step, cases, hints, rtol=1e-6, atol=1e-8)

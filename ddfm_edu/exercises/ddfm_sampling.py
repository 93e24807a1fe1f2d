"""Checkers of notebook 07 (DDFM sampling): the mean of Algorithm 1's DDPM update on the
respaced chain, the swap of an RGB estimate's luma for EM's rectified one, and the whole DDFM loop
written by the reader (prior estimate, EM rectification, DDIM or DDPM update)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import colour, diffusion, em, sample
from ddfm_edu.exercises.harness import Case, check, random_image, random_rgb
from ddfm_edu.priors.gaussian import GaussianPrior


def _ddpm_mean(
    f_t: torch.Tensor, f_hat: torch.Tensor, alpha_bar: float, alpha_bar_prev: float
) -> torch.Tensor:
    return diffusion.ddpm_posterior(f_t, f_hat, alpha_bar, alpha_bar_prev)[0]


def check_ddpm_mean(fn: Callable) -> bool:
    """fn(f_t, f_hat, alpha_bar, alpha_bar_prev) = mu_tilde, the mean of Algorithm 1's update
    (`diffusion.ddpm_posterior`): beta = 1 - alpha_bar / alpha_bar_prev (the step's beta on the
    respaced chain), mu_tilde = (beta sqrt(alpha_bar_prev) f_hat + (1 - alpha_bar_prev)
    sqrt(1 - beta) f_t) / (1 - alpha_bar)."""
    f_t, f_hat = random_image(1, 1, 4, 5, seed=60), random_image(1, 1, 4, 5, seed=61)
    cases = [
        Case("t = 500 -> 458", (f_t, f_hat, 0.0778, 0.1169), "alpha_bar = 0.0778, alpha_bar_prev = 0.1169"),
        Case("t = 999 -> 957", (f_t, f_hat, 4.04e-5, 9.26e-5), "alpha_bar 4.04e-5, alpha_bar_prev 9.26e-5"),
        Case("the last step t = 0", (f_t, f_hat, 0.9999, 1.0), "alpha_bar = 0.9999, alpha_bar_prev = 1"),
    ]  # fmt: skip

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
    return check("check_ddpm_mean", fn, _ddpm_mean, cases, hints, rtol=1e-6, atol=1e-8)


def check_replace_luma(fn: Callable) -> bool:
    """fn(rgb, y) = the RGB image with luma y (B, 1, H, W) and the chroma of rgb (B, 3, H, W),
    BT.601 full range on [-1, 1] (`colour.replace_luma`): what DDFM does with an RGB prior's
    estimate after EM has rectified its luma."""
    rgb, y = random_rgb(1, 3, 4, 5, seed=62), random_rgb(1, 1, 4, 5, seed=63)
    grey = random_rgb(1, 1, 4, 5, seed=64).expand(1, 3, 4, 5)
    cases = [
        Case("a colour estimate", (rgb, y), "rgb (1, 3, 4, 5) and y (1, 1, 4, 5), random in [-1, 1]"),
        Case("a grey estimate", (grey, y), "R = G = B: the result is y in all three channels"),
        Case(
            "a batch", (random_rgb(2, 3, 3, 2, seed=65), random_rgb(2, 1, 3, 2, seed=66)), "rgb (2, 3, 3, 2)"
        ),
    ]
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
    return check("check_replace_luma", fn, colour.replace_luma, cases, hints, atol=1e-9)


def _ddfm_reference(i, v, prior, steps, sampler, x_T, noise):
    """The library's loop: `sample.ddfm_step` at every kept step, the EM state carried; returns the
    last rectified estimate clipped to [-1, 1] (what `ddfm(...)` returns as `fused`)."""
    schedule = diffusion.respace(prior.alpha_bar, steps)
    x, state = x_T, None
    for k in range(steps - 1, -1, -1):
        z = noise[k] if sampler == "ddpm" and k > 0 else None
        step = sample.ddfm_step(x, i, v, prior, schedule, k, state, sampler=sampler, noise=z)
        x, state = step.x_prev, step.state
    return step.f_hat.clamp(-1.0, 1.0)


def _ddfm_with(i, v, prior, steps, sampler, x_T, noise, mistake: str = ""):
    """The DDFM loop with one typical mistake (the hints), from the library's formulas."""
    schedule = diffusion.respace(prior.alpha_bar, steps)
    x, state = x_T, None
    order = range(steps) if mistake == "ascending" else range(steps - 1, -1, -1)
    for k in order:
        t = k if mistake == "t is k" else schedule.timesteps[k]
        f_tilde = prior.predict_x0(x, torch.full((x.shape[0],), t, dtype=torch.long))
        f_hat, state = em.em_step(f_tilde, i, v, None if mistake == "fresh state" else state, check=False)
        x0 = f_tilde if mistake == "no em" else f_hat
        a, a_prev = schedule.alpha_bar[k], schedule.alpha_bar_prev(k)
        if mistake == "original alpha_bar":
            a, a_prev = float(prior.alpha_bar[k]), float(prior.alpha_bar[k - 1]) if k > 0 else 1.0
        if (sampler == "ddim") != (mistake == "other sampler"):
            x = diffusion.ddim_step(x, x0, a, a_prev)
        else:
            mean, variance = diffusion.ddpm_posterior(x, x0, a, a_prev)
            spread = variance if mistake == "variance" else variance**0.5
            x = mean + spread * noise[k] if k > 0 else mean
    return f_hat.clamp(-1.0, 1.0)


def check_ddfm_loop(fn: Callable) -> bool:
    r"""fn(i, v, prior, steps, sampler, x_T, noise) = DDFM's fused image (B, 1, H, W): the loop of
    `ddfm(...)` with the paper's EM on a grey prior. schedule = diffusion.respace(prior.alpha_bar,
    steps); from k = steps-1 down to 0, with t = schedule.timesteps[k]:
        f_tilde = prior.predict_x0(f_t, t);  f_hat, state = em_step(f_tilde, i, v, state);
        f_{t-1} = DDIM (sampler "ddim") or mu_tilde + sigma_tilde noise[k] (sampler "ddpm", no noise
        at k = 0);
    the result is the last f_hat clipped to [-1, 1] (equal to the last sample: the update at k = 0,
    with alpha_bar_prev = 1, returns f_hat). noise: (steps, B, 1, H, W), noise[k] for step k."""
    prior = GaussianPrior()
    i, v = (random_rgb(1, 1, 8, 8, seed=s) for s in (70, 71))
    ib, vb = (random_rgb(2, 1, 6, 6, seed=s) for s in (72, 73))
    x_T, x_Tb = random_image(1, 1, 8, 8, seed=74), random_image(2, 1, 6, 6, seed=75)
    noise, noise_b = random_image(6, 1, 1, 8, 8, seed=76), random_image(4, 2, 1, 6, 6, seed=77)
    cases = [
        Case("DDIM, 6 steps", (i, v, prior, 6, "ddim", x_T, noise), "8x8 i, v, the Gaussian prior"),
        Case("DDPM, 6 steps", (i, v, prior, 6, "ddpm", x_T, noise), "the same, sampler='ddpm'"),
        Case("a batch, DDPM, 4 steps", (ib, vb, prior, 4, "ddpm", x_Tb, noise_b), "2 pairs of 6x6 images"),
    ]

    def wrong(mistake: str) -> Callable:
        return lambda *args: _ddfm_with(*args, mistake=mistake)

    hints = [
        (wrong("t is k"), "the prior takes the ORIGINAL timestep schedule.timesteps[k], not the index k"),
        (wrong("ascending"), "walk the chain from k = steps-1 (pure noise) DOWN to k = 0"),
        (
            wrong("original alpha_bar"),
            "the update takes the RESPACED chain's schedule.alpha_bar[k] and schedule.alpha_bar_prev(k) "
            "(= prior.alpha_bar at t_k and t_{k-1}), not prior.alpha_bar[k]",
        ),
        (wrong("fresh state"), "carry the EM state from step to step (state = None only at the start)"),
        (wrong("no em"), "the update takes EM's rectified f_hat, not the prior's f_tilde"),
        (wrong("other sampler"), "sampler='ddim' is the deterministic DDIM update, 'ddpm' Algorithm 1's"),
        (wrong("variance"), "the noise is scaled by sigma_tilde, the SQUARE ROOT of the posterior variance"),
    ]
    return check("check_ddfm_loop", fn, _ddfm_reference, cases, hints, rtol=1e-6, atol=1e-9)

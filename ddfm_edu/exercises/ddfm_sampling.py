"""Checkers of notebook 06 (DDFM sampling): the mean of Algorithm 1's DDPM update on the
respaced chain, and the swap of an RGB estimate's luma for EM's rectified one."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import colour, diffusion
from ddfm_edu.exercises.harness import Case, check, random_image, random_rgb


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

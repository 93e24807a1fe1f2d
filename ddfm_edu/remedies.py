r"""Changes to DDFM's likelihood model or to its inference, each an EM step with the signature of
`ddfm_edu.em`'s steps: step(f0, i, v, state, config) -> (f_hat, x, state), config an `EMConfig`
(psi, eta used; variant and phi not).

Notation as in ddfm_edu.em: x = f - v, y = i - v, (B, 1, H, W) on [-1, 1]; the paper's model is
|f - i| / s_i + |f - v| / s_v with learned scales s_i = sqrt(gamma/2), s_v = sqrt(rho/2).

The remedy that meets the course's bar lives in `ddfm_edu.em` (variant "one-sided",
`one_sided_x_update`, `_em_step_one_sided`), so that the sampler and the command line reach it by name:
a one-sided likelihood. Each sensor records the scene minus what it cannot see:
    i = f - m, v = f - n with m ~ EXP(gamma), n ~ EXP(rho) NONNEGATIVE (gamma, rho: their means). Then
        -log p(i, v | f) = (f - i)/gamma + (f - v)/rho + const   for f >= max(i, v), else +inf,
    i.e. in x: c sum x + const with c = 1/gamma + 1/rho, subject to x >= l = max(y, 0).
    M-step by the paper's HQS (k and u blocks unchanged); the x-block becomes
        argmin_{x >= l} c sum x + (eta/2) ||k - x||^2   =   max(l, k - c/eta)      (element-wise)
    and the scales their maximum-likelihood values given the new estimate (the mean of an
    exponential): gamma <- mean(f - i), rho <- mean(f - v) (+ RESIDUAL_FLOOR, so c stays finite).
    No scale can run away: whatever gamma and rho are, the likelihood's mode is the same,
    f = max(i, v); the scales weigh the data against the HQS copy k only (with eta = 1e-3, c/eta
    ~ 1e4 and the output is max(i, v): the pixel-wise maximum rule).

The others are the remedies that did not meet the bar (notebook 11 measures them); they share the
paper's E-step formula, with per-pixel scale maps (B, 1, H, W) in place of the per-image scales:

local_scales_step: the scales estimated over windows. With gamma constant over a window, the
    M-step of EM for it is the window mean of E[m | y - x]; with a Gaussian window w,
        gamma <- w * (|y - x| sqrt(gamma/2) + gamma/2),   rho <- w * (|x| sqrt(rho/2) + rho/2).
salience_scales_step: the scales set by the sources' local contrast, not by the residuals:
        s_i(p) = s a_bar / a_i(p),  a_i = sqrt(w * (i - w * i)^2) + floor  (likewise v),
    a_bar the mean of (a_i + a_v)/2 over the image, so the sources' contrasts are compared:
    the more textured source (larger local standard deviation of its detail) is trusted more; the
    per-image scale s is learned as the paper's with gamma and rho tied (phi = 1).
exact_m_step_step: the paper's E-step, then the M-step quadratic solved exactly
    (`ddfm_edu.em.solve_m_step`, conjugate gradients), so the smoothness term psi ||grad x||^2 is
    enforced instead of the HQS pass with eta = 1e-3 that barely feels it.

`run_em` iterates any of them from the average (EM alone, no prior).
"""

from __future__ import annotations

import torch

from ddfm_edu.em import RESIDUAL_FLOOR, EMConfig, EMState, e_step, initial_state, m_step, solve_m_step
from ddfm_edu.operators import grad
from ddfm_edu.share import SIGMA, gaussian_blur
from ddfm_edu.validation import check_images, check_integer


def _smooth_abs(r: torch.Tensor) -> torch.Tensor:
    """|r| with the E-step's smooth floor: sqrt(r^2 + RESIDUAL_FLOOR^2)."""
    return torch.sqrt(r * r + RESIDUAL_FLOOR**2)


def _per_pixel(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (B,) per-image scale as a (B, 1, H, W) map; a map is returned unchanged."""
    return scale.view(-1, 1, 1, 1).expand_as(like).clone() if scale.dim() == 1 else scale


def local_scales_step(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig,
    sigma: float = SIGMA,
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    r"""The paper's EM step with scale maps learned over Gaussian windows (module docstring):
    m_bar = sqrt(2/gamma)/|y - x|, n_bar = sqrt(2/rho)/|x| with the OLD maps, then
    gamma <- w * E[m | y - x], rho <- w * E[n | x]; HQS M-step as the paper's."""
    x0, y = f0 - v, i - v
    gamma, rho = _per_pixel(state.gamma, x0), _per_pixel(state.rho, x0)
    abs_m, abs_n = _smooth_abs(y - x0), _smooth_abs(x0)
    m_bar = (2.0 / gamma).sqrt() / abs_m
    n_bar = (2.0 / rho).sqrt() / abs_n
    gamma_new = gaussian_blur(abs_m * (gamma / 2.0).sqrt() + gamma / 2.0, sigma)
    rho_new = gaussian_blur(abs_n * (rho / 2.0).sqrt() + rho / 2.0, sigma)
    k, u, x = m_step(x0, y, m_bar, n_bar, state.u, config.psi, config.eta)
    return x + v, x, EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=gamma_new, rho=rho_new)


def local_contrast(s: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    r"""a(p) = sqrt(w * (s - w * s)^2)(p) + RESIDUAL_FLOOR: the local standard deviation of the
    detail of s over a Gaussian window w of width sigma. (B, 1, H, W) -> (B, 1, H, W)."""
    detail = s - gaussian_blur(s, sigma)
    return gaussian_blur(detail * detail, sigma).sqrt() + RESIDUAL_FLOOR


def salience_scales_step(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig,
    sigma: float = SIGMA,
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    r"""The paper's EM step with scales s_i = s a_bar / a_i, s_v = s a_bar / a_v set by local
    contrast (module docstring): m_bar = 1/(s_i |y - x|), n_bar = 1/(s_v |x|); the per-image s is
    the paper's learned scale with gamma and rho tied to their mean. Returns (f_hat, x, state)."""
    x0, y = f0 - v, i - v
    a_i, a_v = local_contrast(i, sigma), local_contrast(v, sigma)
    s = (state.gamma / 2.0).sqrt().view(-1, 1, 1, 1)
    a_bar = 0.5 * (a_i + a_v).mean(dim=(1, 2, 3), keepdim=True)
    s_i, s_v = s * a_bar / a_i, s * a_bar / a_v
    m_bar = 1.0 / (s_i * _smooth_abs(y - x0))
    n_bar = 1.0 / (s_v * _smooth_abs(x0))
    _, _, gamma, rho = e_step(x0, y, state.gamma, state.rho)
    tied = 0.5 * (gamma + rho)
    k, u, x = m_step(x0, y, m_bar, n_bar, state.u, config.psi, config.eta)
    return x + v, x, EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=tied, rho=tied.clone())


def exact_m_step_step(
    f0: torch.Tensor, i: torch.Tensor, v: torch.Tensor, state: EMState, config: EMConfig
) -> tuple[torch.Tensor, torch.Tensor, EMState]:
    r"""The paper's E-step (learned scales), then the exact minimiser of
    sum m_bar (x - y)^2 + sum n_bar x^2 + psi ||grad x||^2 (`solve_m_step`; eta unused).
    k and u are set to x and grad x, the HQS copies at the exact solution."""
    x0, y = f0 - v, i - v
    m_bar, n_bar, gamma, rho = e_step(x0, y, state.gamma, state.rho)
    x = solve_m_step(y, m_bar, n_bar, config.psi)
    return x + v, x, EMState(m_bar=m_bar, n_bar=n_bar, k=x, u=grad(x), gamma=gamma, rho=rho)


def run_em(
    step, i: torch.Tensor, v: torch.Tensor, *, iters: int = 50, psi: float = EMConfig.psi,
    eta: float = EMConfig.eta, f_init: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""EM alone with a given step function: `iters` steps from f_init (default (i + v) / 2), each
    from the previous output, from `ddfm_edu.em.initial_state`. Returns f (B, 1, H, W)."""
    check_images(i=i, v=v)
    check_integer("iters", iters)
    config = EMConfig(psi=psi, eta=eta)
    f = 0.5 * (i + v) if f_init is None else f_init
    state = initial_state(i)
    for _ in range(iters):
        f, _, state = step(f, i, v, state, config)
    return f

r"""Ground truth: exact samples of the posterior that DDFM claims to sample, for the Gaussian prior.

The posterior (ddfm_math.md section 2, with the analytic Gaussian prior p_prior of
ddfm_edu.priors.gaussian):

    p(f | i, v) ~ p_prior(f) exp(-|f - i|/s_i - |f - v|/s_v - (psi/2) ||grad(f - v)||^2),
    s_i = sqrt(gamma/2),  s_v = sqrt(rho/2).

By Proposition 1 each Laplace factor is a Gaussian scale mixture,
exp(-|r|/s) ~ integral N(r; 0, m) EXP(m; 2 s^2) dm, so with latent variances m (for f - i) and
n (for f - v) per pixel the joint p(f, m, n | i, v) has two tractable conditionals (`gibbs_posterior`):

  f | m, n   Gaussian with precision and linear term
                 Q = Sigma^{-1} + diag(1/m + 1/n) + psi grad^T grad,
                 h = Sigma^{-1} mu_0 + i/m + v/n + psi grad^T grad v,
             Sigma the prior covariance (diagonal in Fourier: the spectrum P_eff). Drawn exactly by
             perturbation-optimisation: solve Q f = h + Sigma^{-1/2} e0 + e1/sqrt(m) + e2/sqrt(n)
             + sqrt(psi) grad^T e3 (e white) by conjugate gradients; the right side has mean h and
             covariance Q, so f ~ N(Q^{-1} h, Q^{-1}) (`sample_conditional_f`).
  1/m | f    inverse Gaussian IG(mean sqrt(2/gamma)/|f - i|, shape 2/gamma) per pixel (p(m | r) is
             GIG(1/2, 2/gamma, r^2)); likewise 1/n | f with rho and f - v (`sample_inverse_gaussian`).

Several chains run as a batch; `split_r_hat` is the split-R-hat convergence diagnostic (Gelman et
al., Bayesian Data Analysis, 3rd ed., section 11.4). Everything runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ddfm_edu.operators import grad_adjoint, grad_t_grad
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.validation import check_images

TINY_RESIDUAL = 1e-12
"""|f - i| below this is raised to it in the inverse-Gaussian mean (a zero residual has probability
zero; the guard only keeps the arithmetic finite)."""


def sample_inverse_gaussian(
    mean: torch.Tensor, shape: torch.Tensor | float, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Draws of IG(mean, shape) (density sqrt(shape/(2 pi w^3)) exp(-shape (w - mean)^2/(2 mean^2 w)))
    by Michael, Schucany and Haas (1976): y = z^2 with z ~ N(0, 1), c = mean y/(2 shape),
        w = mean (1 + c - sqrt(2c + c^2)) = mean / (1 + c + sqrt(2c + c^2))   (the stable form),
    then w with probability mean/(mean + w), else mean^2/w. Elementwise on `mean`'s shape."""
    z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    c = mean * z * z / (2.0 * shape)
    w = mean / (1.0 + c + torch.sqrt(c * (2.0 + c)))
    u = torch.rand(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return torch.where(u * (mean + w) <= mean, w, mean * mean / w)


def _apply_prior_precision(f: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """Sigma^{-1} f = irfft2(rfft2(f) / P_eff) (unitary DFT)."""
    return torch.fft.irfft2(torch.fft.rfft2(f, norm="ortho") / power, s=f.shape[-2:], norm="ortho")


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(dim=1).view(-1, 1, 1, 1)


def solve_precision(
    b: torch.Tensor, inv_m: torch.Tensor, inv_n: torch.Tensor, power: torch.Tensor, psi: float,
    *, tol: float = 1e-8, max_iter: int = 2000, check_every: int = 10,
) -> torch.Tensor:
    r"""Q^{-1} b for Q = Sigma^{-1} + diag(inv_m + inv_n) + psi grad^T grad (one system per image),
    by Jacobi-preconditioned conjugate gradients; stops when every image has ||residual|| <= tol ||b||
    (tested every `check_every` iterations: one host sync each). b, inv_m, inv_n: (B, 1, H, W)."""
    diagonal = inv_m + inv_n

    def apply_q(p: torch.Tensor) -> torch.Tensor:
        out = _apply_prior_precision(p, power) + diagonal * p
        return out + psi * grad_t_grad(p) if psi else out

    # diag(Sigma^{-1}) = mean of 1/P_eff over the full frequency grid; diag(grad^T grad) = 4
    height, width = b.shape[-2:]
    weights = torch.full_like(power, 2.0)
    weights[:, 0] = 1.0
    if width % 2 == 0:
        weights[:, -1] = 1.0
    prior_diagonal = float((weights / power).sum()) / (height * width)
    preconditioner = 1.0 / (diagonal + prior_diagonal + 4.0 * psi)
    b_norm = _batch_dot(b, b).sqrt()
    x = torch.zeros_like(b)
    r = b.clone()
    z = r * preconditioner
    p = z.clone()
    rz = _batch_dot(r, z)
    for iteration in range(max_iter):
        if iteration % check_every == 0 and bool((_batch_dot(r, r).sqrt() <= tol * b_norm).all()):
            break
        qp = apply_q(p)
        p_qp = _batch_dot(p, qp)
        alpha = torch.where(p_qp > 0, rz / p_qp, torch.zeros_like(rz))  # 0 once an image has converged
        x += alpha * p
        r -= alpha * qp
        z = r * preconditioner
        rz_new = _batch_dot(r, z)
        p = z + torch.where(rz > 0, rz_new / rz, torch.zeros_like(rz)) * p
        rz = rz_new
    return x


def sample_conditional_f(
    i: torch.Tensor, v: torch.Tensor, inv_m: torch.Tensor, inv_n: torch.Tensor, prior: GaussianPrior,
    psi: float, generator: torch.Generator | None = None, *, tol: float = 1e-8,
) -> torch.Tensor:
    r"""One exact draw of f | m, n ~ N(Q^{-1} h, Q^{-1}) per image (module docstring), by
    perturbation-optimisation. i, v: (1 or B, 1, H, W); inv_m = 1/m, inv_n = 1/n: (B, 1, H, W)."""
    shape, dtype, device = inv_m.shape, inv_m.dtype, inv_m.device
    power = prior.spectrum(*shape[-2:], dtype=dtype).to(device)

    def white(*size: int) -> torch.Tensor:
        return torch.randn(size, generator=generator, dtype=dtype, device=device)

    mu_0 = torch.full(shape, prior.fit.mean, dtype=dtype, device=device)
    e0 = torch.fft.irfft2(torch.fft.rfft2(white(*shape), norm="ortho") / power.sqrt(),
                          s=shape[-2:], norm="ortho")
    rhs = _apply_prior_precision(mu_0, power) + e0
    rhs = rhs + inv_m * i + inv_m.sqrt() * white(*shape) + inv_n * v + inv_n.sqrt() * white(*shape)
    if psi:
        rhs = rhs + psi * grad_t_grad(v.expand(shape).contiguous())
        rhs = rhs + math.sqrt(psi) * grad_adjoint(white(shape[0], 2, *shape[-2:]))
    return solve_precision(rhs, inv_m, inv_n, power, psi, tol=tol)


def split_r_hat(draws: torch.Tensor) -> torch.Tensor:
    r"""Split R-hat per element: draws (K, C, ...) are K kept draws of C chains; each chain is cut
    into two halves of n = K // 2 draws (a middle draw of odd K dropped), giving 2C chains, and
        W = mean of the within-chain variances (divisor n - 1),  B/n = variance of the chain means,
        var+ = (n - 1)/n W + B/n,   R-hat = sqrt(var+ / W).
    Values near 1 (below ~1.01-1.05) say the chains have mixed. Returns draws.shape[2:]."""
    n = draws.shape[0] // 2
    if n < 2:
        raise ValueError(f"split R-hat needs at least 4 draws per chain, got {draws.shape[0]}")
    halves = torch.cat([draws[:n], draws[-n:]], dim=1)  # (n, 2C, ...)
    within = halves.var(dim=0).mean(dim=0)
    between_over_n = halves.mean(dim=0).var(dim=0)
    return torch.sqrt(((n - 1) / n * within + between_over_n) / within)


@dataclass
class PosteriorSamples:
    r"""What `gibbs_posterior` returns. draws: (K, C, 1, H, W) the kept draws of f, C chains;
    mean, std: (1, 1, H, W) posterior mean and pixel-wise standard deviation over all kept draws;
    r_hat: (1, 1, H, W) split R-hat per pixel; chain_means: (C, 1, H, W)."""

    draws: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    r_hat: torch.Tensor
    chain_means: torch.Tensor


def _check_scale(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_count(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def gibbs_posterior(
    i: torch.Tensor,
    v: torch.Tensor,
    prior: GaussianPrior,
    *,
    gamma: float,
    rho: float,
    psi: float = 0.0,
    chains: int = 4,
    draws: int = 400,
    burn_in: int = 100,
    seed: int = 0,
) -> PosteriorSamples:
    r"""Exact samples of p(f | i, v) (module docstring) by Gibbs sampling with `chains` chains.

    i, v: (1, 1, H, W) on [-1, 1]. gamma, rho: the scales of the exponential mixing densities
    (s_i = sqrt(gamma/2), s_v = sqrt(rho/2)); psi >= 0 the smoothness weight. Each chain starts at
    (i + v)/2 plus independent noise of standard deviation 0.1, runs `burn_in` sweeps, then keeps
    `draws` sweeps (a sweep: 1/m, 1/n | f, then f | m, n). The random draws come from a CPU
    generator seeded with `seed` when i is on the CPU, else from one on i's device.
    """
    check_images(i=i, v=v)
    if i.shape[0] != 1:
        raise ValueError(f"i and v must be one image pair (1, 1, H, W), got shape {tuple(i.shape)}")
    if not isinstance(prior, GaussianPrior):
        raise ValueError(
            f"prior must be a GaussianPrior (the sampler needs its spectrum), got {type(prior).__name__}"
        )
    _check_scale("gamma", gamma)
    _check_scale("rho", rho)
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not (math.isfinite(psi) and psi >= 0):
        raise ValueError(f"psi must be a nonnegative finite number, got {psi!r}")
    _check_count("chains", chains, 1)
    _check_count("draws", draws, 4)
    _check_count("burn_in", burn_in, 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")

    generator = torch.Generator(device=i.device).manual_seed(seed)
    i64, v64 = i.double(), v.double()
    shape = (chains, 1, *i.shape[-2:])
    start_noise = torch.randn(shape, generator=generator, device=i.device, dtype=torch.float64)
    f = 0.5 * (i64 + v64) + 0.1 * start_noise
    shape_m, shape_n = 2.0 / gamma, 2.0 / rho
    kept = torch.empty((draws, *shape), device=i.device, dtype=torch.float64)
    for sweep in range(burn_in + draws):
        r_m = (f - i64).abs().clamp(min=TINY_RESIDUAL)
        r_n = (f - v64).abs().clamp(min=TINY_RESIDUAL)
        inv_m = sample_inverse_gaussian(math.sqrt(shape_m) / r_m, shape_m, generator)
        inv_n = sample_inverse_gaussian(math.sqrt(shape_n) / r_n, shape_n, generator)
        f = sample_conditional_f(i64, v64, inv_m, inv_n, prior, psi, generator)
        if sweep >= burn_in:
            kept[sweep - burn_in] = f
    flat = kept.flatten(0, 1)
    return PosteriorSamples(
        draws=kept,
        mean=flat.mean(dim=0, keepdim=True),
        std=flat.std(dim=0, keepdim=True),
        r_hat=split_r_hat(kept).unsqueeze(0),
        chain_means=kept.mean(dim=0),
    )

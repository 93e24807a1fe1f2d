"""The schedule, the respacing and the one-step formulas against closed forms and sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddfm_edu import diffusion


def test_linear_alpha_bar_is_the_product_of_one_minus_beta():
    alpha_bar = diffusion.linear_alpha_bar()
    betas = np.linspace(1e-4, 0.02, 1000)
    expected = np.array([math.prod(1.0 - betas[: t + 1]) for t in (0, 1, 499, 999)])
    np.testing.assert_allclose(alpha_bar[[0, 1, 499, 999]].numpy(), expected, rtol=1e-12)
    assert alpha_bar.dtype == torch.float64
    assert alpha_bar[-1] == pytest.approx(4.0358e-5, rel=1e-3)  # almost pure noise at T - 1


def test_respaced_timesteps_for_100_steps_are_the_releases():
    steps = diffusion.respaced_timesteps(1000, 100)
    assert steps[:4] == [0, 10, 20, 30] and steps[-3:] == [979, 989, 999]
    assert len(steps) == 100 and len(set(steps)) == 100


@pytest.mark.parametrize("S", [1, 2, 10, 21, 50, 99, 100, 250, 1000])
def test_respaced_timesteps_round_k_times_the_stride(S):
    """t_k = round(k (T-1)/(S-1)) up to the release's floating accumulation of the stride: every
    kept step lies within half a step (plus rounding) of k (T-1)/(S-1), strictly ascending."""
    steps = np.array(diffusion.respaced_timesteps(1000, S))
    exact = np.arange(S) * (999 / (S - 1) if S > 1 else 0.0)
    assert np.all(np.abs(steps - exact) <= 0.5 + 1e-9)
    assert steps[0] == 0 and (S == 1 or steps[-1] == 999)
    assert np.all(np.diff(steps) > 0)


def test_respaced_timesteps_rejects_bad_counts():
    with pytest.raises(ValueError, match="S"):
        diffusion.respaced_timesteps(1000, 0)
    with pytest.raises(ValueError, match="S"):
        diffusion.respaced_timesteps(1000, 1001)


def test_respaced_betas_rebuild_the_kept_alpha_bars():
    """prod_{j <= k} (1 - beta'_j) = alpha_bar_{t_k}: the respaced chain keeps q(f_t | f_0)."""
    alpha_bar = diffusion.linear_alpha_bar()
    schedule = diffusion.respace(alpha_bar, 100)
    assert schedule.timesteps == tuple(diffusion.respaced_timesteps(1000, 100))
    rebuilt = torch.cumprod(1.0 - schedule.betas, dim=0)
    torch.testing.assert_close(rebuilt, alpha_bar[list(schedule.timesteps)], rtol=1e-12, atol=0)
    # The first respaced beta is the original beta_0; later ones cover 10 original steps each.
    assert float(schedule.betas[0]) == pytest.approx(1e-4, rel=1e-9)
    assert float(schedule.betas[1]) == pytest.approx(float(1 - alpha_bar[10] / alpha_bar[0]), rel=1e-12)
    assert schedule.alpha_bar_prev(0) == 1.0 and schedule.alpha_bar_prev(5) == schedule.alpha_bar[4]


def test_tweedie_and_eps_are_inverse_and_q_sample_matches():
    g = torch.Generator().manual_seed(0)
    f0, z = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64).unbind(0)
    alpha_bar = 0.37
    f_t = diffusion.q_sample(f0, alpha_bar, z)
    torch.testing.assert_close(f_t, math.sqrt(0.37) * f0 + math.sqrt(0.63) * z)
    torch.testing.assert_close(diffusion.x0_from_eps(f_t, z, alpha_bar), f0)
    torch.testing.assert_close(diffusion.eps_from_x0(f_t, f0, alpha_bar), z)


def test_ddpm_posterior_is_the_product_of_gaussians():
    """q(f_{t-1} | f_t, f_0) proportional to q(f_t | f_{t-1}) q(f_{t-1} | f_0), both Gaussian in
    f_{t-1}: precision 1/s^2 = alpha/beta + 1/(1 - ab_prev), mean s^2 (sqrt(alpha) f_t / beta +
    sqrt(ab_prev) f_0 / (1 - ab_prev)) with alpha = 1 - beta = ab / ab_prev."""
    alpha_bar_prev, alpha_bar = 0.8, 0.62
    alpha = alpha_bar / alpha_bar_prev
    beta = 1.0 - alpha
    f0 = torch.tensor([0.3, -0.7], dtype=torch.float64)
    f_t = torch.tensor([-0.2, 1.1], dtype=torch.float64)
    precision = alpha / beta + 1.0 / (1.0 - alpha_bar_prev)
    expected_mean = (
        math.sqrt(alpha) * f_t / beta + math.sqrt(alpha_bar_prev) * f0 / (1.0 - alpha_bar_prev)
    ) / precision
    mean, variance = diffusion.ddpm_posterior(f_t, f0, alpha_bar, alpha_bar_prev)
    torch.testing.assert_close(mean, expected_mean)
    assert variance == pytest.approx(1.0 / precision, rel=1e-12)


def test_ddpm_posterior_by_monte_carlo():
    """Draw (f_{t-1}, f_t) from the forward chain given f_0 and regress f_{t-1} on f_t: the
    regression line and residual variance are mu_tilde and sigma_tilde^2."""
    alpha_bar_prev, alpha_bar, f0 = 0.5, 0.3, 0.4
    g = torch.Generator().manual_seed(1)
    n = 400_000
    f_prev = diffusion.q_sample(
        torch.full((n,), f0, dtype=torch.float64),
        alpha_bar_prev,
        torch.randn(n, generator=g, dtype=torch.float64),
    )
    alpha = alpha_bar / alpha_bar_prev
    f_t = math.sqrt(alpha) * f_prev + math.sqrt(1 - alpha) * torch.randn(n, generator=g, dtype=torch.float64)
    slope, intercept = np.polyfit(f_t.numpy(), f_prev.numpy(), 1)
    residual = f_prev.numpy() - (slope * f_t.numpy() + intercept)
    grid = torch.tensor([0.0, 1.0], dtype=torch.float64)
    mean, variance = diffusion.ddpm_posterior(grid, torch.full_like(grid, f0), alpha_bar, alpha_bar_prev)
    assert intercept == pytest.approx(float(mean[0]), abs=5e-3)
    assert slope == pytest.approx(float(mean[1] - mean[0]), abs=5e-3)
    assert residual.var() == pytest.approx(variance, rel=1e-2)


def test_ddpm_step_is_deterministic_at_the_last_step_and_ddim_keeps_the_noise():
    g = torch.Generator().manual_seed(2)
    f0, z, noise = torch.randn(3, 1, 1, 6, 6, generator=g).unbind(0)
    alpha_bar = 0.9999
    f_t = diffusion.q_sample(f0, alpha_bar, z)
    # Last step (alpha_bar_prev = 1): the posterior collapses onto f_0, no noise is added.
    torch.testing.assert_close(diffusion.ddpm_step(f_t, f0, alpha_bar, 1.0, noise), f0)
    torch.testing.assert_close(diffusion.ddim_step(f_t, f0, alpha_bar, 1.0), f0)
    # DDIM (eta = 0) moves along the same noise: f_{t-1} = q_sample(f_0, ab_prev, z) exactly when
    # f_t = q_sample(f_0, ab, z).
    f_t = diffusion.q_sample(f0, 0.3, z)
    torch.testing.assert_close(diffusion.ddim_step(f_t, f0, 0.3, 0.7), diffusion.q_sample(f0, 0.7, z))


def test_formulas_broadcast_per_batch_alpha_bars():
    g = torch.Generator().manual_seed(3)
    f0, z = torch.randn(2, 2, 1, 4, 4, generator=g).unbind(0)
    alpha_bar = torch.tensor([0.2, 0.6]).view(2, 1, 1, 1)
    f_t = diffusion.q_sample(f0, alpha_bar, z)
    for b, ab in enumerate((0.2, 0.6)):
        torch.testing.assert_close(f_t[b], diffusion.q_sample(f0[b], ab, z[b]))
        torch.testing.assert_close(
            diffusion.ddim_step(f_t, f0, alpha_bar, alpha_bar + 0.1)[b],
            diffusion.ddim_step(f_t[b], f0[b], ab, ab + 0.1),
        )


def test_sampler_objects_take_the_step_of_their_update_rule():
    schedule = diffusion.respace(diffusion.linear_alpha_bar(), 10)
    f_t, f0, z = torch.randn(3, 2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for k in (9, 4, 0):
        ab, ab_prev = schedule.alpha_bar[k], schedule.alpha_bar_prev(k)
        ddim, ddpm = diffusion.SAMPLERS["ddim"], diffusion.SAMPLERS["ddpm"]
        torch.testing.assert_close(ddim.step(f_t, f0, schedule, k), diffusion.ddim_step(f_t, f0, ab, ab_prev))
        torch.testing.assert_close(
            ddpm.step(f_t, f0, schedule, k, z), diffusion.ddpm_step(f_t, f0, ab, ab_prev, z)
        )
        mean = diffusion.ddpm_posterior(f_t, f0, ab, ab_prev)[0]
        torch.testing.assert_close(ddpm.step(f_t, f0, schedule, k), mean)
    assert not ddim.stochastic and ddpm.stochastic

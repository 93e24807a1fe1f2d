"""`sample_prior` (the DDFM loop without EM) on a Gaussian prior, where every step is linear per
frequency: the DDIM path is a fixed gain on each Fourier coefficient of x_T, and the DDPM output's
power follows a scalar variance recursion; both are computed here independently in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfm_edu.diffusion import linear_alpha_bar, respaced_timesteps
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.sample import sample_prior

# small power and a zero mean: the estimates never reach the clipping at +-1, so the prior is linear
PRIOR = dict(amplitude=1e-5, mean=0.0, mean_std=0.05)


def gain_and_variance(power: np.ndarray, steps: int, sampler: str) -> tuple[np.ndarray, np.ndarray]:
    """Per coefficient with E|F_0|^2 = power: the factor c on x_T's coefficient and the added
    variance after the whole chain (Wiener estimate g = sqrt(ab) P / (ab P + 1 - ab) per step)."""
    alpha_bar = linear_alpha_bar().numpy()[respaced_timesteps(1000, steps)]
    c, added = np.ones_like(power), np.zeros_like(power)
    for k in range(steps - 1, -1, -1):
        a, a_prev = alpha_bar[k], alpha_bar[k - 1] if k else 1.0
        g = np.sqrt(a) * power / (a * power + 1 - a)
        if sampler == "ddim":
            step = np.sqrt(a_prev) * g + np.sqrt(1 - a_prev) * (1 / np.sqrt(a) - g) / np.sqrt(1 / a - 1)
            noise = 0.0
        else:
            beta = 1 - a / a_prev
            step = (beta * np.sqrt(a_prev) * g + (1 - a_prev) * np.sqrt(1 - beta)) / (1 - a)
            noise = beta * (1 - a_prev) / (1 - a)
        c, added = step * c, step**2 * added + noise
    return c, added


def test_ddim_path_is_the_per_frequency_gain():
    prior = GaussianPrior(**PRIOR)
    x_T = torch.randn(2, 1, 12, 10, generator=torch.Generator().manual_seed(0))
    out = sample_prior(prior, (2, 1, 12, 10), steps=20, sampler="ddim", x_T=x_T)
    c, added = gain_and_variance(prior.spectrum(12, 10, dtype=torch.float64).numpy(), 20, "ddim")
    assert np.all(added == 0)
    expected = np.fft.irfft2(c * np.fft.rfft2(x_T.double().numpy(), norm="ortho"), s=(12, 10), norm="ortho")
    np.testing.assert_allclose(out.double().numpy(), expected, atol=2e-5)
    assert out.abs().max() < 0.9  # the clipping never acted


def test_ddpm_output_power_follows_the_variance_recursion():
    prior = GaussianPrior(**PRIOR)
    out = sample_prior(prior, (64, 1, 16, 16), steps=30, sampler="ddpm", seed=1)
    power = prior.spectrum(16, 16, dtype=torch.float64).numpy()
    c, added = gain_and_variance(power, 30, "ddpm")
    whitened = np.abs(np.fft.rfft2(out.double().numpy(), norm="ortho")) ** 2 / (c**2 + added)
    # E|X|^2 = 1 per coefficient; 64 x 144 coefficients (the real-valued ones count twice as noisy)
    assert whitened.mean() == pytest.approx(1.0, abs=0.04)
    assert whitened[..., 8:, :].mean() == pytest.approx(1.0, abs=0.06)  # the high frequencies too
    again = sample_prior(prior, (64, 1, 16, 16), steps=30, sampler="ddpm", seed=1)
    assert torch.equal(out, again)


def test_sample_prior_refuses_bad_shapes():
    prior = GaussianPrior()
    with pytest.raises(ValueError, match="shape"):
        sample_prior(prior, (1, 3, 8, 8), steps=2)
    with pytest.raises(ValueError, match="x_T"):
        sample_prior(prior, (1, 1, 8, 8), steps=2, x_T=torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="sampler"):
        sample_prior(prior, (1, 1, 8, 8), steps=2, sampler="euler")

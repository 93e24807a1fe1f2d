"""The Gaussian prior: Fourier Tweedie estimate against a dense solve, sampling, Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddfm_edu import train_prior
from ddfm_edu.diffusion import q_sample
from ddfm_edu.priors import gaussian
from ddfm_edu.priors.base import Prior
from ddfm_edu.priors.gaussian import GaussianPrior


def dense_covariance(prior: GaussianPrior, height: int, width: int) -> np.ndarray:
    """Cov(f_0) built pixel by pixel from the model's definition, without any FFT:
    Cov(f_0)_{pq} = s_mu^2 + r(p - q),  r(d) = (1/N) sum_{w != 0} P(w) cos(2 pi w . d),
    the autocovariance of a periodic stationary field with spectrum P (w on the full DFT grid)."""
    fit = prior.fit
    w_y, w_x = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
    w_y = np.where(w_y >= 0.5, w_y - 1, w_y)  # frequencies in [-1/2, 1/2)
    w_x = np.where(w_x >= 0.5, w_x - 1, w_x)
    radius = np.hypot(w_y, w_x)
    power = np.zeros_like(radius)
    nonzero = radius > 0
    power[nonzero] = fit.amplitude * radius[nonzero] ** -fit.exponent + fit.floor
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    y, x = y.ravel(), x.ravel()
    d_y = y[:, None] - y[None, :]
    d_x = x[:, None] - x[None, :]
    phase = 2 * np.pi * (d_y[..., None] * w_y.ravel() + d_x[..., None] * w_x.ravel())
    autocovariance = (np.cos(phase) * power.ravel()).sum(-1) / (height * width)
    return fit.mean_std**2 + autocovariance


@pytest.mark.parametrize(("height", "width"), [(8, 8), (5, 7)])
@pytest.mark.parametrize("t", [0, 300, 999])
def test_fourier_tweedie_equals_the_dense_posterior_mean(height, width, t):
    """E[f_0 | f_t] = mu_0 + sqrt(ab) C (ab C + (1 - ab) I)^{-1} (f_t - sqrt(ab) mu_0) by a dense
    solve with the explicitly built covariance C, on square, odd and non-square sizes."""
    prior = GaussianPrior().double()
    C = dense_covariance(prior, height, width)
    alpha_bar = float(prior.alpha_bar[t])
    g = torch.Generator().manual_seed(t)
    f_t = torch.randn(2, 1, height, width, generator=g, dtype=torch.float64)
    mu_0 = prior.fit.mean
    n = height * width
    rhs = f_t.reshape(2, n).numpy().T - math.sqrt(alpha_bar) * mu_0
    dense = mu_0 + math.sqrt(alpha_bar) * C @ np.linalg.solve(
        alpha_bar * C + (1 - alpha_bar) * np.eye(n), rhs
    )
    fourier = prior.posterior_mean(f_t, torch.tensor([t, t]))
    np.testing.assert_allclose(fourier.reshape(2, n).numpy().T, dense, rtol=1e-8, atol=1e-10)
    # eps is the exact E[z | f_t] that the same posterior mean implies; x0 the clipped one.
    eps = prior.predict_eps(f_t, torch.tensor([t, t]))
    torch.testing.assert_close(eps, (f_t - math.sqrt(alpha_bar) * fourier) / math.sqrt(1 - alpha_bar))
    torch.testing.assert_close(prior.predict_x0(f_t, torch.tensor([t, t])), fourier.clamp(-1, 1))


def test_samples_have_the_model_covariance_and_mean():
    prior = GaussianPrior().double()
    C = dense_covariance(prior, 4, 6)
    samples = prior.sample(40_000, 4, 6, generator=torch.Generator().manual_seed(4))
    assert samples.shape == (40_000, 1, 4, 6)
    flat = samples.reshape(40_000, 24).double().numpy()
    assert np.abs(flat.mean(0) - prior.fit.mean).max() < 5 * math.sqrt(C.max() / 40_000)
    np.testing.assert_allclose(np.cov(flat.T), C, atol=0.04 * C.max())


def test_posterior_mean_by_self_normalised_importance_sampling():
    """E[f_0 | f_t] = sum_j f_0^j p(f_t | f_0^j) / sum_j p(f_t | f_0^j), f_0^j ~ prior: a Monte
    Carlo estimate of the conditional mean that uses only prior samples and the Gaussian noise
    likelihood (on a 2 x 3 image, where importance sampling works)."""
    prior = GaussianPrior().double()
    t = torch.tensor([700])
    alpha_bar = float(prior.alpha_bar_at(t, torch.zeros(1, dtype=torch.float64)))
    g = torch.Generator().manual_seed(5)
    f_t = q_sample(prior.sample(1, 2, 3, generator=g), alpha_bar, torch.randn(1, 1, 2, 3, generator=g))
    draws = prior.sample(400_000, 2, 3, generator=g)
    log_w = -((f_t - math.sqrt(alpha_bar) * draws) ** 2).sum((1, 2, 3)) / (2 * (1 - alpha_bar))
    weights = torch.softmax(log_w, 0).view(-1, 1, 1, 1)
    monte_carlo = (weights * draws).sum(0, keepdim=True)
    effective = 1.0 / float((weights**2).sum())
    assert effective > 1000  # enough effective samples for the tolerance below
    torch.testing.assert_close(prior.posterior_mean(f_t, t), monte_carlo, atol=0.02, rtol=0)


def test_error_of_the_tweedie_estimate_is_the_posterior_variance():
    """E||f_0 - E[f_0|f_t]||^2 / N = (1/N) sum_w P(w)(1 - ab) / (ab P(w) + 1 - ab), by sampling."""
    prior = GaussianPrior()
    g = torch.Generator().manual_seed(6)
    t = torch.full((4000,), 400)
    alpha_bar = float(prior.alpha_bar[400])
    f_0 = prior.sample(4000, 16, 16, generator=g)
    f_t = q_sample(f_0, alpha_bar, torch.randn(f_0.shape, generator=g))
    mse = float(((prior.posterior_mean(f_t, t) - f_0) ** 2).mean())
    power = prior.spectrum(16, 16, dtype=torch.float64)
    power = torch.cat([power, power[:, 1:-1]], dim=1)  # the full grid from the half (W even)
    expected = float((power * (1 - alpha_bar) / (alpha_bar * power + 1 - alpha_bar)).mean())
    assert mse == pytest.approx(expected, rel=0.03)


def test_prior_interface_batches_and_moves():
    prior = GaussianPrior()
    assert isinstance(prior, Prior) and prior.channels == 1 and prior.stride == 1
    g = torch.Generator().manual_seed(7)
    x_t = torch.randn(3, 1, 9, 12, generator=g)
    t = torch.tensor([999, 500, 0])
    batched = prior.predict_x0(x_t, t)
    assert batched.shape == x_t.shape and batched.dtype == torch.float32
    assert batched.abs().max() <= 1.0
    for b in range(3):
        torch.testing.assert_close(batched[b : b + 1], prior.predict_x0(x_t[b : b + 1], t[b : b + 1]))
    # Almost no noise (t = 0): the estimate is the image itself.
    clean = prior.sample(1, 32, 32, generator=g).clamp(-1, 1)
    almost = q_sample(clean, float(prior.alpha_bar[0]), torch.randn(clean.shape, generator=g))
    assert float((prior.predict_x0(almost, torch.tensor([0])) - clean).abs().mean()) < 0.01


def test_fitted_constants_are_reproduced_by_the_fit():
    fit = gaussian.fit_power_spectrum()
    assert fit.amplitude == pytest.approx(gaussian.AMPLITUDE, rel=1e-3)
    assert fit.exponent == pytest.approx(gaussian.EXPONENT, rel=1e-3)
    assert fit.floor == pytest.approx(gaussian.FLOOR, abs=1e-9)
    assert fit.mean == pytest.approx(gaussian.MEAN, rel=1e-3)
    assert fit.mean_std == pytest.approx(gaussian.MEAN_STD, rel=1e-3)
    assert not {"camera", "rocket", "phantom", "moon", "page"} & set(train_prior.TRAINING_IMAGES)
    with pytest.raises(ValueError, match="camera"):
        gaussian.fit_power_spectrum(("astronaut", "camera"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    prior = GaussianPrior()
    x_t = torch.randn(2, 1, 24, 20, generator=torch.Generator().manual_seed(8))
    t = torch.tensor([900, 50])
    on_gpu = prior.to("cuda").predict_x0(x_t.cuda(), t.cuda())
    torch.testing.assert_close(on_gpu.cpu(), GaussianPrior().predict_x0(x_t, t), atol=1e-5, rtol=0)


def test_radial_power_spectrum_small_image_has_nan_bins_without_warning():
    """A 16 x 16 image has no frequency below 1/16 cycle per pixel: those bins are NaN, silently."""
    import warnings

    image = np.random.default_rng(0).normal(size=(16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        centres, power = gaussian.radial_power_spectrum(image)
    assert np.all(np.isnan(power[centres < 1 / 16 / 1.2]))
    filled = np.isfinite(power)
    assert filled.sum() >= 8 and np.all(power[filled] > 0)

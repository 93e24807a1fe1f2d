"""The exact Gibbs sampler of DDFM's posterior (ddfm_edu.posterior), against independent computations:
quadrature of the 1-D posterior, a dense linear-algebra build of the conditional Gaussian, the
moments of the inverse Gaussian, and the limit of a tiny scale."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from ddfm_edu.posterior import (
    gibbs_posterior,
    sample_conditional_f,
    sample_inverse_gaussian,
    solve_precision,
    split_r_hat,
)
from ddfm_edu.priors.gaussian import GaussianPrior


@pytest.fixture(scope="module")
def prior():
    return GaussianPrior()


def test_inverse_gaussian_moments():
    # IG(mean mu, shape lam): E = mu, Var = mu^3 / lam
    g = torch.Generator().manual_seed(0)
    mu = torch.full((400_000,), 0.7, dtype=torch.float64)
    w = sample_inverse_gaussian(mu, 2.5, g)
    n = w.numel()
    var = 0.7**3 / 2.5
    assert (w > 0).all()
    assert abs(w.mean().item() - 0.7) < 5 * math.sqrt(var / n)
    assert abs(w.var().item() - var) < 0.02 * var


def _dense_precision(prior, H, W, inv_diag, psi):
    """Q = Sigma^{-1} + diag(inv_diag) + psi Dx^T Dx + psi Dy^T Dy, built from a dense unitary DFT
    matrix and explicit periodic difference matrices (row-major flattening)."""
    fit = prior.fit
    w = np.hypot(np.fft.fftfreq(H)[:, None], np.fft.fftfreq(W)[None, :])
    w[0, 0] = 1.0
    power = fit.amplitude * w**-fit.exponent + fit.floor
    power[0, 0] = H * W * fit.mean_std**2
    dft = np.kron(np.fft.fft(np.eye(H), norm="ortho"), np.fft.fft(np.eye(W), norm="ortho"))
    sigma_inv = np.real(dft.conj().T @ np.diag(1.0 / power.ravel()) @ dft)

    def forward_difference(n):
        return np.roll(np.eye(n), 1, axis=1) - np.eye(n)

    dx = np.kron(np.eye(H), forward_difference(W))
    dy = np.kron(forward_difference(H), np.eye(W))
    lap = dx.T @ dx + dy.T @ dy
    return sigma_inv + np.diag(inv_diag.ravel()) + psi * lap, sigma_inv, lap


def test_solve_precision_matches_dense(prior):
    H, W, psi = 3, 4, 0.3
    g = torch.Generator().manual_seed(1)
    inv_m = torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 50 + 0.1
    inv_n = torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 5 + 0.1
    b = torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    power = prior.spectrum(H, W, dtype=torch.float64)
    x = solve_precision(b, inv_m, inv_n, power, psi, tol=1e-12)
    Q, _, _ = _dense_precision(prior, H, W, (inv_m + inv_n).numpy(), psi)
    expected = np.linalg.solve(Q, b.numpy().ravel())
    np.testing.assert_allclose(x.numpy().ravel(), expected, rtol=1e-8, atol=1e-10)


def test_conditional_f_mean_and_covariance_match_dense(prior):
    H, W, psi, n = 3, 4, 0.3, 20_000
    g = torch.Generator().manual_seed(2)
    i = torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 2 - 1
    v = torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 2 - 1
    inv_m = (torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 20 + 0.5).expand(n, 1, H, W)
    inv_n = (torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 20 + 0.5).expand(n, 1, H, W)
    draws = sample_conditional_f(i, v, inv_m, inv_n, prior, psi, g, tol=1e-12).reshape(n, -1).numpy()
    Q, sigma_inv, lap = _dense_precision(prior, H, W, (inv_m[0] + inv_n[0]).numpy(), psi)
    h = (sigma_inv @ np.full(H * W, prior.fit.mean) + (inv_m[0] * i).numpy().ravel()
         + (inv_n[0] * v).numpy().ravel() + psi * lap @ v.numpy().ravel())
    cov = np.linalg.inv(Q)
    mean = cov @ h
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * se)
    empirical = np.cov(draws.T)
    # entries of a sample covariance: standard error ~ sqrt((S_jj S_kk + S_jk^2) / n)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(empirical - cov) < 5 * se_cov)


def test_single_pixel_matches_quadrature(prior):
    # 1 x 1 image: the prior is N(mu_0, s_mu^2) and the posterior is 1-D
    gamma, rho, i_val, v_val = 0.2, 0.5, 0.5, -0.4
    i, v = torch.tensor([[[[i_val]]]]), torch.tensor([[[[v_val]]]])
    result = gibbs_posterior(i, v, prior, gamma=gamma, rho=rho, chains=400, draws=150, burn_in=50, seed=3)
    mu0, s = prior.fit.mean, prior.fit.mean_std
    s_i, s_v = math.sqrt(gamma / 2), math.sqrt(rho / 2)

    def density(f):
        return math.exp(-((f - mu0) ** 2) / (2 * s * s) - abs(f - i_val) / s_i - abs(f - v_val) / s_v)

    def moment(k):
        return integrate.quad(lambda f: f**k * density(f), -6, 6, points=[v_val, i_val],
                              epsabs=0, epsrel=1e-11, limit=200)[0]

    z = moment(0)
    mean, sd = moment(1) / z, math.sqrt(moment(2) / z - (moment(1) / z) ** 2)
    # Monte Carlo error from the spread of the 400 chains' means (independent chains)
    se = result.chain_means.std().item() / math.sqrt(400)
    assert abs(result.mean.item() - mean) < 5 * se
    assert abs(result.std.item() - sd) < 0.03 * sd
    assert result.r_hat.item() < 1.02


def test_tiny_scale_concentrates_on_that_source(prior):
    g = torch.Generator().manual_seed(4)
    i = torch.rand(1, 1, 8, 8, generator=g) * 2 - 1
    v = torch.rand(1, 1, 8, 8, generator=g) * 2 - 1
    # s_i = sqrt(gamma/2) = 1e-3, s_v = 0.5: the posterior sits on i to within ~s_i
    result = gibbs_posterior(i, v, prior, gamma=2e-6, rho=0.5, psi=0.5, chains=2, draws=40, burn_in=20)
    assert (result.mean - i.double()).abs().max().item() < 1e-2
    assert result.std.max().item() < 1e-2
    # and on v for the mirrored scales
    result = gibbs_posterior(i, v, prior, gamma=0.5, rho=2e-6, psi=0.5, chains=2, draws=40, burn_in=20)
    assert (result.mean - v.double()).abs().max().item() < 1e-2


def test_chains_agree_on_a_small_image(prior):
    g = torch.Generator().manual_seed(5)
    i = prior.sample(1, 12, 12, generator=g).clamp(-1, 1)
    v = prior.sample(1, 12, 12, generator=g).clamp(-1, 1)
    result = gibbs_posterior(i, v, prior, gamma=0.1, rho=0.1, psi=0.5, chains=4, draws=200, burn_in=50,
                             seed=6)
    assert result.r_hat.max().item() < 1.1
    assert result.draws.shape == (200, 4, 1, 12, 12)
    # each chain's mean is within 5 standard errors (sd / sqrt(draws / 10), a generous allowance
    # for autocorrelation) of the pooled mean, at 99% of the pixels
    se = result.std / math.sqrt(200 / 10)
    inside = ((result.chain_means - result.mean).abs() < 5 * se).double().mean().item()
    assert inside > 0.99


def test_split_r_hat_detects_disagreeing_chains():
    g = torch.Generator().manual_seed(7)
    iid = torch.randn(400, 4, 10, generator=g)
    assert (split_r_hat(iid) - 1).abs().max().item() < 0.05
    shifted = iid + torch.tensor([0.0, 0.0, 0.0, 3.0]).view(1, 4, 1)
    assert split_r_hat(shifted).min().item() > 1.3
    drifting = iid + torch.linspace(0, 5, 400).view(400, 1, 1)  # non-stationary: halves disagree
    assert split_r_hat(drifting).min().item() > 1.3
    with pytest.raises(ValueError, match="at least 4 draws"):
        split_r_hat(iid[:3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"rho": float("nan")}, "rho"),
        ({"psi": -1.0}, "psi"),
        ({"chains": 0}, "chains"),
        ({"draws": 2}, "draws"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_gibbs_posterior_rejects_bad_arguments(prior, kwargs, match):
    i = v = torch.zeros(1, 1, 4, 4)
    arguments = {"gamma": 0.1, "rho": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        gibbs_posterior(i, v, prior, **arguments)


def test_gibbs_posterior_rejects_a_batch_and_a_learned_prior(prior):
    with pytest.raises(ValueError, match="one image pair"):
        gibbs_posterior(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), prior, gamma=0.1, rho=0.1)
    with pytest.raises(ValueError, match="GaussianPrior"):
        gibbs_posterior(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), object(), gamma=0.1, rho=0.1)

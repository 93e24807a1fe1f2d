"""Propositions 1 and 2 checked by independent computations: quadrature, sampling, Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from ddfm_edu import gsm


def test_laplace_and_exponential_are_normalised_densities():
    assert integrate.quad(lambda x: gsm.laplace_pdf(x, 0.3, 0.7), -np.inf, np.inf)[0] == (
        pytest.approx(1.0, abs=1e-10)
    )
    assert integrate.quad(lambda a: gsm.exponential_pdf(a, 2.5), 0, np.inf)[0] == pytest.approx(1.0)
    # b is the MEAN of EXP(a; b)
    assert integrate.quad(lambda a: a * gsm.exponential_pdf(a, 2.5), 0, np.inf)[0] == (pytest.approx(2.5))
    assert gsm.exponential_pdf(-0.1, 2.0) == 0.0
    np.testing.assert_allclose(gsm.laplace_pdf([0.3, 1.0], 0.3, 0.5), [1.0, np.exp(-1.4)])


@pytest.mark.parametrize("mu,b", [(0.0, 1.0), (0.4, 0.3), (-1.0, 5.0)])
def test_proposition_1_by_quadrature(mu, b):
    x = np.linspace(mu - 4, mu + 4, 17)  # includes x = mu, where N(x; mu, a) is singular at a = 0
    np.testing.assert_allclose(gsm.gsm_pdf(x, mu, b), gsm.laplace_pdf(x, mu, np.sqrt(b / 2)), rtol=1e-8)
    # and not the Laplace of scale b (the confusion the convention note warns about)
    assert not np.allclose(gsm.gsm_pdf(x, mu, b), gsm.laplace_pdf(x, mu, b), rtol=1e-2)


def test_proposition_1_by_sampling_ks():
    rng = np.random.default_rng(0)
    mu, b = 0.2, 0.8
    xi = gsm.sample_gsm(mu, b, 20_000, rng)
    p_right = stats.kstest(xi, stats.laplace(loc=mu, scale=gsm.laplace_scale(b)).cdf).pvalue
    p_wrong = stats.kstest(xi, stats.laplace(loc=mu, scale=b).cdf).pvalue
    assert p_right > 0.01
    assert p_wrong < 1e-6


def test_fusion_model_marginals_are_laplace():
    rng = np.random.default_rng(1)
    gamma, rho = 0.3, 1.2
    s = gsm.sample_fusion_model(gamma, rho, 20_000, rng)
    assert stats.kstest(s.x, stats.laplace(scale=np.sqrt(rho / 2)).cdf).pvalue > 0.01
    assert stats.kstest(s.y - s.x, stats.laplace(scale=np.sqrt(gamma / 2)).cdf).pvalue > 0.01
    assert s.m.mean() == pytest.approx(gamma, rel=0.03)
    assert s.n.mean() == pytest.approx(rho, rel=0.03)


R_SCALE = [(0.3, 0.5), (-0.3, 0.5), (-0.7, 0.1), (5.0, 1.1), (0.01, 0.5), (2.0, 3.0)]


@pytest.mark.parametrize("r,scale", R_SCALE)
def test_proposition_2_by_quadrature(r, scale):
    e_inv, e = gsm.posterior_moments(r, scale)
    q_inv, q = gsm.posterior_moments_quadrature(r, scale)
    assert e_inv == pytest.approx(q_inv, rel=1e-7)
    assert e == pytest.approx(q, rel=1e-7)


@pytest.mark.parametrize("r,scale", [(0.3, 0.5), (1.5, 1.0)])
def test_proposition_2_by_monte_carlo(r, scale):
    rng = np.random.default_rng(2)
    mc_inv, mc = gsm.posterior_moments_monte_carlo(r, scale, 400_000, rng)
    e_inv, e = gsm.posterior_moments(r, scale)
    assert mc_inv == pytest.approx(e_inv, rel=0.02)
    assert mc == pytest.approx(e, rel=0.02)


def test_posterior_moments_broadcast_and_zero_residual():
    e_inv, e = gsm.posterior_moments(np.array([[0.3], [-2.0]]), np.array([0.5, 2.0]))
    assert e_inv.shape == (2, 2)
    np.testing.assert_allclose(e_inv, np.sqrt(2 / np.array([0.5, 2.0])) / np.array([[0.3], [2.0]]))
    e_inv0, e0 = gsm.posterior_moments(0.0, 0.5)
    assert np.isinf(e_inv0) and e0 == pytest.approx(0.25)


def test_erratum_is_wrong_by_a_number():
    q_inv, _ = gsm.posterior_moments_quadrature(0.3, 0.5)
    e_inv, _ = gsm.posterior_moments(0.3, 0.5)
    assert q_inv == pytest.approx(6.6667, abs=1e-4)
    assert e_inv == pytest.approx(6.6667, abs=1e-4)
    assert gsm.inverted_m_bar_erratum(0.3, 0.5) == pytest.approx(0.6)
    # the inverted formula up-weights outliers: its weight grows with |r|
    assert gsm.inverted_m_bar_erratum(5.0, 0.5) > gsm.inverted_m_bar_erratum(0.3, 0.5)
    assert gsm.posterior_moments(5.0, 0.5)[0] < gsm.posterior_moments(0.3, 0.5)[0]


def test_phi_and_rho_are_inverse():
    """phi = sqrt(gamma/rho) is the weight that makes -log p the L1 fusion loss (up to a factor)."""
    gamma, rho = 0.4, 0.1
    phi = gsm.phi_from_scales(gamma, rho)
    assert phi == pytest.approx(2.0)
    assert gsm.rho_from_phi(gamma, phi) == pytest.approx(rho)
    # -log p(x, y) ~ |y - x|/sqrt(gamma/2) + |x|/sqrt(rho/2) is proportional to |y - x| + phi |x|
    x, y = np.array([0.1, -0.3, 0.7]), np.array([0.5, 0.2, -0.4])
    nll = -np.log(gsm.laplace_pdf(y, x, np.sqrt(gamma / 2)) * gsm.laplace_pdf(x, 0, np.sqrt(rho / 2)))
    l1 = np.abs(y - x) + phi * np.abs(x)
    np.testing.assert_allclose(np.diff(nll), np.diff(l1) / np.sqrt(gamma / 2))

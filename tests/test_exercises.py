"""The exercise checkers: a right answer passes, each typical wrong answer fails with a message that
says where and how it is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfm_edu import exercises as ex


def test_right_answers_pass(capsys):
    def laplace_pdf(x, mu, s):
        return np.exp(-np.abs(x - mu) / s) / (2 * s)

    def gsm_sampler(mu, b, size, rng):
        return rng.normal(mu, np.sqrt(rng.exponential(b, size)))

    def m_bar(x, y, gamma):
        return np.sqrt(2 / gamma) / np.abs(y - x)

    def e_m(x, y, gamma):
        return np.abs(y - x) * np.sqrt(gamma / 2) + gamma / 2

    def gamma_update(x, y, gamma):
        return np.mean(e_m(x, y, gamma))

    def grad(x):
        return torch.cat([x.roll(-1, -1) - x, x.roll(-1, -2) - x], dim=1)

    def k_update(x, u):
        H, W = x.shape[-2:]
        dx = torch.exp(2j * torch.pi * torch.arange(W) / W) - 1
        dy = (torch.exp(2j * torch.pi * torch.arange(H) / H) - 1)[:, None]
        fft2 = torch.fft.fft2
        num = fft2(x) + dx.conj() * fft2(u[:, :1]) + dy.conj() * fft2(u[:, 1:])
        return torch.fft.ifft2(num / (1 + dx.abs() ** 2 + dy.abs() ** 2)).real

    def x_update(y, m_bar, n_bar, k, eta):
        return (2 * m_bar * y + eta * k) / (2 * m_bar + 2 * n_bar + eta)

    assert ex.check_laplace_pdf(laplace_pdf)
    assert ex.check_laplace_scale(lambda b: np.sqrt(b / 2))
    assert ex.check_gsm_sampler(gsm_sampler)
    assert ex.check_m_bar(m_bar)
    assert ex.check_posterior_mean_m(e_m)
    assert ex.check_gamma_update(gamma_update)
    assert ex.check_grad(grad)
    assert ex.check_k_update(k_update)
    assert ex.check_x_update(x_update)
    assert ex.check_phi_from_scales(lambda g, r: np.sqrt(g / r))
    assert ex.check_rho_from_phi(lambda g, p: g / p**2)
    assert ex.check_l1_fusion_loss(lambda f, i, v, p: np.abs(f - i).sum() + p * np.abs(f - v).sum())
    out = capsys.readouterr().out
    assert "check_m_bar: correct on 5 cases" in out and "check_k_update: correct" in out


WRONG = [
    (ex.check_laplace_pdf, lambda x, mu, s: np.exp(-np.abs(x - mu) / s) / s, "1/\\(2s\\), not 1/s"),
    (
        ex.check_laplace_scale,
        lambda b: b / 2,
        "wrong for a small b: expected 0.1, got 0.01 at b = 0.02.*square root",
    ),
    (ex.check_laplace_scale, lambda b: np.sqrt(b), "s\\^2 = b/2"),
    (
        ex.check_m_bar,
        lambda x, y, g: np.sqrt(2 * (y - x) ** 2 / g),
        "wrong for a moderate residual: expected 6.67, got 0.6 .*inverted formula",
    ),
    (
        ex.check_m_bar,
        lambda x, y, g: np.sqrt(2 / g) / (y - x),
        "wrong for a negative residual: expected 6.67, got -6.67 .*absolute value",
    ),
    (
        ex.check_m_bar,
        lambda x, y, g: 1 / (np.abs(y - x) * np.sqrt(g / 2) + g / 2),
        "expected 6.67, got 2.5 at r = y - x = 0.3, gamma = 0.5.*Jensen",
    ),
    (ex.check_posterior_mean_m, lambda x, y, g: np.abs(y - x) * np.sqrt(g / 2), "gamma/2 is missing"),
    (ex.check_gamma_update, lambda x, y, g: np.abs(y - x) * np.sqrt(g / 2) + g / 2, "wrong shape"),
    (
        ex.check_grad,
        lambda x: torch.cat([x.roll(-1, -2) - x, x.roll(-1, -1) - x], 1),
        "channel 0 is horizontal",
    ),
    (ex.check_k_update, lambda x, u: x, "wrong for u = 0: expected \\[-0.358.*not equal x"),
    (
        ex.check_x_update,
        lambda y, m, n, k, eta: (m * y + eta * k) / (m + n + eta),
        "wrong for eta = 0.5.*factors 2",
    ),
    (ex.check_phi_from_scales, lambda g, r: np.sqrt(r / g), "wrong for gamma > rho: expected 2, got 0.5"),
    (ex.check_rho_from_phi, lambda g, p: g / p, "wrong for phi = 2: expected 0.1, got 0.2"),
    (
        ex.check_l1_fusion_loss,
        lambda f, i, v, p: np.abs(f - v).sum() + p * np.abs(f - i).sum(),
        "phi weights",
    ),
]


@pytest.mark.parametrize("checker,answer,message", WRONG)
def test_wrong_answers_fail_with_a_diagnosis(checker, answer, message):
    with pytest.raises(ex.ExerciseError, match=message):
        checker(answer)


def test_large_residual_message_and_reader_errors():
    # the example of the style guide: a weight that grows with the residual
    with pytest.raises(
        ex.ExerciseError, match="wrong for a large residual: expected 0.27, got 3.7 at r = y - x = 5"
    ):
        ex.check_m_bar(
            lambda x, y, g: np.where(np.abs(y - x) > 1, np.abs(y - x) * 0.74, np.sqrt(2 / g) / np.abs(y - x))
        )
    with pytest.raises(ex.ExerciseError, match="returned None"):
        ex.check_laplace_scale(lambda b: None)
    with pytest.raises(ex.ExerciseError, match="raised ZeroDivisionError"):
        ex.check_laplace_scale(lambda b: 1 / 0)
    with pytest.raises(ex.ExerciseError, match="KS p = .*numpy's exponential takes the MEAN"):
        ex.check_gsm_sampler(lambda mu, b, size, rng: rng.normal(mu, np.sqrt(rng.exponential(1 / b, size))))

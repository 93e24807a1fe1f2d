"""The exercise checkers: a right answer passes, each typical wrong answer fails with a message that
says where and how it is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfm_edu import colour, diffusion
from ddfm_edu import exercises as ex


def test_right_answers_report_what_was_checked(capsys):
    # Every notebook answer passes (test_notebook_answers_pass_and_stubs_are_not_attempted, below);
    # the success line also says on how many cases.
    assert ex.check_m_bar(answer_m_bar) and ex.check_k_update(answer_k_update)
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


def test_large_residual_message_and_reader_errors():
    # the example of the style guide: a weight that grows with the residual
    with pytest.raises(
        ex.ExerciseError, match="wrong for a large residual: expected 0.27, got 3.7 at r = y - x = 5"
    ):
        ex.check_m_bar(
            lambda x, y, g: np.where(np.abs(y - x) > 1, np.abs(y - x) * 0.74, np.sqrt(2 / g) / np.abs(y - x))
        )
    with pytest.raises(ex.ExerciseError, match="returned None"):  # None for a later case only
        ex.check_laplace_scale(lambda b: None if b < 1 else np.sqrt(b / 2))
    with pytest.raises(ex.ExerciseError, match="raised ZeroDivisionError"):
        ex.check_laplace_scale(lambda b: 1 / 0)
    with pytest.raises(ex.ExerciseError, match="KS p = .*numpy's exponential takes the MEAN"):
        ex.check_gsm_sampler(lambda mu, b, size, rng: rng.normal(mu, np.sqrt(rng.exponential(1 / b, size))))


# The answers of the collapsed "Answer" blocks of notebooks 01 and 02, verbatim.
def answer_laplace_pdf(x, mu, s):
    return np.exp(-np.abs(x - mu) / s) / (2 * s)


def answer_laplace_scale(b):
    return np.sqrt(b / 2)


def answer_gsm_sampler(mu, b, size, rng):
    return rng.normal(mu, np.sqrt(rng.exponential(b, size)))


def answer_m_bar(x, y, gamma):
    return np.sqrt(2 / gamma) / np.abs(y - x)


def answer_posterior_mean_m(x, y, gamma):
    return np.abs(y - x) * np.sqrt(gamma / 2) + gamma / 2


def answer_gamma_update(x, y, gamma):
    return np.mean(np.abs(y - x) * np.sqrt(gamma / 2) + gamma / 2)


ANSWERS_01_02 = [
    (ex.check_laplace_pdf, answer_laplace_pdf),
    (ex.check_laplace_scale, answer_laplace_scale),
    (ex.check_gsm_sampler, answer_gsm_sampler),
    (ex.check_m_bar, answer_m_bar),
    (ex.check_posterior_mean_m, answer_posterior_mean_m),
    (ex.check_gamma_update, answer_gamma_update),
]


# ------------------------------------------------------------------ notebooks 00, 08, 09
# The answers the notebooks give in their collapsed "Answer" blocks.
def answer_max_abs(a, b):
    return torch.where(a.abs() >= b.abs(), a, b)


def answer_entropy(f):
    levels = np.round(np.asarray(f, dtype=np.float64)).astype(int)
    p = np.bincount(levels.ravel(), minlength=256) / levels.size
    p = p[p > 0]
    return -(p * np.log2(p)).sum()


def answer_spatial_frequency(f):
    f = np.asarray(f, dtype=np.float64)
    return np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2))


def answer_luma(rgb):
    return 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]


def answer_merge(y, chroma):
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    return torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)


NOTEBOOK_ANSWERS = [
    (ex.check_max_abs, answer_max_abs),
    (ex.check_entropy, answer_entropy),
    (ex.check_spatial_frequency, answer_spatial_frequency),
    (ex.check_luma, answer_luma),
    (ex.check_merge_luma_chroma, answer_merge),
]


def test_notebook_answers_are_independent_of_the_library_on_known_values():
    # closed forms, not the library: a 4 x 256 ramp has 8 bits of entropy, two equal halves 1 bit
    assert answer_entropy(np.tile(np.arange(256.0), (4, 1))) == pytest.approx(8.0)
    assert answer_entropy(np.repeat([[10.0, 200.0]], 6, axis=0)) == pytest.approx(1.0)
    # a horizontal ramp of slope 3: RF = 3, CF = 0
    assert answer_spatial_frequency(np.tile(np.arange(0.0, 30.0, 3.0), (5, 1))) == pytest.approx(3.0)
    white = torch.ones(1, 3, 1, 1)
    assert float(answer_luma(white)) == pytest.approx(1.0)
    rgb = torch.tensor([0.2, -0.5, 0.9], dtype=torch.float64).reshape(1, 3, 1, 1)
    y = answer_luma(rgb)
    cb, cr = 0.564 * (rgb[:, 2:3] - y), 0.713 * (rgb[:, 0:1] - y)  # BT.601: Cb = (B - Y)/1.772 ...
    np.testing.assert_allclose(answer_merge(y, torch.cat([cb, cr], 1)).numpy(), rgb.numpy(), atol=2e-3)


WRONG_NOTEBOOK = [
    (ex.check_max_abs, lambda a, b: torch.maximum(a, b), "wrong for two random bands.*compare \\|a\\|"),
    (ex.check_max_abs, lambda a, b: torch.maximum(a.abs(), b.abs()), "with its sign"),
    (
        ex.check_entropy,
        lambda f: answer_entropy(f) * np.log(2),
        "wrong for a ramp over all 256 levels: expected 8, got 5.55.*natural log",
    ),
    (
        ex.check_entropy,
        lambda f: (lambda p: -(p * np.log2(p)).sum())(np.unique(f, return_counts=True)[1] / np.size(f)),
        "wrong for non-integer values.*round to the 256 grey levels",
    ),
    (
        ex.check_spatial_frequency,
        lambda f: np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)),
        "wrong for a noisy uint8 image.*wrap around",
    ),
    (
        ex.check_spatial_frequency,
        lambda f: answer_spatial_frequency(f) ** 2,
        "wrong for a two-level image: expected 190, got 3.61e\\+04.*square root",
    ),
    (ex.check_luma, lambda x: x.mean(dim=1, keepdim=True), "plain mean"),
    (
        ex.check_luma,
        lambda x: 0.2126 * x[:, :1] + 0.7152 * x[:, 1:2] + 0.0722 * x[:, 2:],
        "BT.709",
    ),
    (ex.check_merge_luma_chroma, lambda y, c: answer_merge(y, c.flip(1)), "swapped"),
    (ex.check_merge_luma_chroma, lambda y, c: torch.cat([y, y, y], 1) + 0 * c[:, :1], "wrong for a fused"),
]


# ------------------------------------------------------------------ notebook 05
# The answers of 05_diffusion_primer.ipynb's collapsed "Answer" blocks.
def answer_q_sample(f0, alpha_bar, noise):
    return alpha_bar**0.5 * f0 + (1 - alpha_bar) ** 0.5 * noise


def answer_tweedie(f_t, eps, alpha_bar):
    return (f_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def answer_ddim_step(f_t, f0, alpha_bar, alpha_bar_prev):
    eps = (f_t - alpha_bar**0.5 * f0) / (1 - alpha_bar) ** 0.5
    return alpha_bar_prev**0.5 * f0 + (1 - alpha_bar_prev) ** 0.5 * eps


DIFFUSION_ANSWERS = [
    (ex.check_q_sample, answer_q_sample),
    (ex.check_tweedie, answer_tweedie),
    (ex.check_ddim_step, answer_ddim_step),
]


DIFFUSION_WRONG = [
    (ex.check_q_sample, lambda f0, a, z: a * f0 + (1 - a) * z, "wrong for t = 50.*VARIANCES"),
    (ex.check_q_sample, lambda f0, a, z: (1 - a) ** 0.5 * f0 + a**0.5 * z, "swapped"),
    (ex.check_tweedie, lambda f, e, a: f - (1 - a) ** 0.5 * e, "divide by it"),
    (ex.check_tweedie, lambda f, e, a: (f - (1 - a) * e) / a**0.5, "subtract sqrt\\(1 - alpha_bar\\) eps"),
    (
        ex.check_ddim_step,
        lambda f, x0, a, ap: answer_ddim_step(f, x0, ap, a),
        "wrong for t = 500 -> 490.*swapped",
    ),
    (
        ex.check_ddim_step,
        lambda f, x0, a, ap: (
            ((1 - a / ap) * ap**0.5 * x0 + (1 - ap) * (a / ap) ** 0.5 * f) / (1 - a)
        ),
        "DDPM posterior mean",
    ),
]


# ------------------------------------------------------------------ notebooks 03, 04
# The answers of 03_hqs_m_step.ipynb's and 04_em_fusion.ipynb's collapsed "Answer" blocks.
def answer_grad(x):
    return torch.cat([x.roll(-1, dims=-1) - x, x.roll(-1, dims=-2) - x], dim=1)


def answer_k_update(x, u):
    H, W = x.shape[-2:]
    dx_hat = torch.exp(2j * torch.pi * torch.arange(W) / W) - 1  # along columns
    dy_hat = (torch.exp(2j * torch.pi * torch.arange(H) / H) - 1)[:, None]  # along rows
    fft2 = torch.fft.fft2
    numerator = fft2(x) + dx_hat.conj() * fft2(u[:, 0:1]) + dy_hat.conj() * fft2(u[:, 1:2])
    return torch.fft.ifft2(numerator / (1 + dx_hat.abs() ** 2 + dy_hat.abs() ** 2)).real


def answer_x_update(y, m_bar, n_bar, k, eta):
    return (2 * m_bar * y + eta * k) / (2 * m_bar + 2 * n_bar + eta)


EM_ANSWERS = [
    (ex.check_grad, answer_grad),
    (ex.check_k_update, answer_k_update),
    (ex.check_x_update, answer_x_update),
    (ex.check_phi_from_scales, lambda gamma, rho: np.sqrt(gamma / rho)),
    (ex.check_rho_from_phi, lambda gamma, phi: gamma / phi**2),
    (ex.check_l1_fusion_loss, lambda f, i, v, phi: np.abs(f - i).sum() + phi * np.abs(f - v).sum()),
]


def test_em_notebook_answers_on_known_values():
    # independent of the library: a horizontal ramp 0..4 (W = 5) has differences 1, 1, 1, 1, -4
    x = torch.arange(5.0).repeat(3, 1)[None, None]
    assert answer_grad(x)[0, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0, -4.0]
    assert answer_grad(x)[0, 1].abs().max() == 0
    # a constant image is its own k for u = 0 (grad^T grad of a constant is 0)
    c = torch.full((1, 1, 4, 6), 0.7, dtype=torch.float64)
    torch.testing.assert_close(answer_k_update(c, torch.zeros(1, 2, 4, 6, dtype=torch.float64)), c)


# ------------------------------------------------------------------ notebook 10


def answer_released_output(i, v, c, d):
    return i - (i - v) * c / (c + d)


def answer_studio_luma(rgb):
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255


RELEASED_ANSWERS = [
    (ex.check_released_output, answer_released_output),
    (ex.check_studio_luma, answer_studio_luma),
]


def test_released_notebook_answers_match_the_release_independently():
    from ddfm_edu import released

    # the release's EM step itself, RHO -> 0, on an estimate between the sources (cap D <= 2C inactive)
    g = torch.Generator().manual_seed(5)
    i = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    v = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    v = torch.where((i - v).abs() < 0.2, v - 0.3 * torch.sign(i - v + 1e-9), v)
    f0 = v + (0.5 + 0.3 * torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)) * (i - v)
    ones = torch.ones(1, dtype=torch.float64)
    F, _, C, D, *_ = released.em_onestep(f0, i, v, torch.zeros(1, 2, 8, 8, dtype=torch.float64), ones, ones,
                                         RHO=1e-12)  # fmt: skip
    assert (D < 2 * C).all()
    torch.testing.assert_close(answer_released_output(i, v, C, D), F, atol=1e-9, rtol=0)
    # studio range on [-1, 1] grey values, by hand: 16/255 at 0, 235/255 at +1, (16 - 219)/255 at -1
    grey = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    assert answer_studio_luma(grey).flatten().tolist() == pytest.approx([-203 / 255, 16 / 255, 235 / 255])


RELEASED_WRONG = [
    (ex.check_released_output, lambda i, v, c, d: v + (i - v) * c / (c + d), "paper's f = x \\+ v"),
    (ex.check_released_output, lambda i, v, c, d: (i - v) * c / (c + d), "the output is F = I - X"),
    (ex.check_studio_luma, colour.luma, "full-range luma"),
    (ex.check_studio_luma, lambda x: answer_studio_luma((x + 1) / 2), "NOT rescale"),
    (ex.check_studio_luma, lambda x: answer_studio_luma(x) - 16 / 255, "offset 16"),
]


# ------------------------------------------------------------------ notebook 07
# The answers of 07_ddfm_sampling.ipynb's collapsed "Answer" blocks.
def answer_ddpm_mean(f_t, f_hat, alpha_bar, alpha_bar_prev):
    beta = 1 - alpha_bar / alpha_bar_prev
    mean = beta * alpha_bar_prev**0.5 * f_hat + (1 - alpha_bar_prev) * (1 - beta) ** 0.5 * f_t
    return mean / (1 - alpha_bar)


def answer_replace_luma(rgb, y):
    return rgb + (y - (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]))


SAMPLING_ANSWERS = [(ex.check_ddpm_mean, answer_ddpm_mean), (ex.check_replace_luma, answer_replace_luma)]


def test_sampling_notebook_answers_on_known_values():
    # DDPM mean: E[f_{t-1} | f_t, f_0] by conditioning the jointly Gaussian pair (f_{t-1}, f_t) given f_0
    a, ap = 0.3, 0.5
    f0, ft = torch.tensor([0.7], dtype=torch.float64), torch.tensor([-0.4], dtype=torch.float64)
    # f_{t-1} = sqrt(ap) f0 + sqrt(1 - ap) z1, f_t = sqrt(a / ap) f_{t-1} + sqrt(1 - a / ap) z2
    s = (a / ap) ** 0.5
    cov_prev_t, var_t = s * (1 - ap), s**2 * (1 - ap) + (1 - a / ap)
    expected = ap**0.5 * f0 + cov_prev_t / var_t * (ft - s * ap**0.5 * f0)
    torch.testing.assert_close(answer_ddpm_mean(ft, f0, a, ap), expected, atol=1e-12, rtol=0)
    # replace_luma: the result's luma is y and its chroma the input's, through the YCbCr matrix
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                     dtype=torch.float64)  # fmt: skip
    before, after = (torch.einsum("ij,bjhw->bihw", m, x) for x in (rgb, answer_replace_luma(rgb, y)))
    torch.testing.assert_close(after[:, :1], y, atol=1e-12, rtol=0)
    torch.testing.assert_close(after[:, 1:], before[:, 1:], atol=1e-5, rtol=0)


SAMPLING_WRONG = [
    (ex.check_ddpm_mean, lambda f, x0, a, ap: diffusion.ddim_step(f, x0, a, ap), "DDIM"),
    (
        ex.check_ddpm_mean,
        lambda f, x0, a, ap: ((1 - a) * ap**0.5 * x0 + (1 - ap) * a**0.5 * f) / (1 - a),
        "step's own beta",
    ),
    (ex.check_ddpm_mean, lambda f, x0, a, ap: answer_ddpm_mean(x0, f, a, ap), "swapped"),
    (ex.check_replace_luma, lambda x, y: y.expand_as(x), "loses the colour"),
    (ex.check_replace_luma, lambda x, y: x * y / colour.luma(x), "ADD y - Y"),
    (ex.check_replace_luma, lambda x, y: x + y - x.mean(dim=1, keepdim=True), "not the mean"),
]


# The answers of 06_priors.ipynb's collapsed "Answer" blocks.
def answer_score_from_x0(f_t, x0_hat, alpha_bar):
    return (alpha_bar**0.5 * x0_hat - f_t) / (1 - alpha_bar)


def answer_edm_coefficients(sigma, sigma_data=0.5):
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


PRIORS_ANSWERS = [
    (ex.check_score_from_x0, answer_score_from_x0),
    (ex.check_edm_coefficients, answer_edm_coefficients),
]


def test_priors_notebook_answers_on_known_values():
    # score: f_0 ~ N(m, s^2) in 1-D, so p_t = N(sqrt(a) m, a s^2 + 1 - a); its log-density gradient
    # (autograd) against the answer applied to the posterior mean E[f_0 | f_t] by quadrature
    normal = torch.distributions.Normal
    m, s = 0.3, 0.7
    f0 = torch.linspace(m - 12 * s, m + 12 * s, 40001, dtype=torch.float64)
    for a in (0.99, 0.5, 0.05):
        x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64, requires_grad=True)
        log_p = normal(a**0.5 * m, (a * s**2 + 1 - a) ** 0.5).log_prob(x).sum()
        (score,) = torch.autograd.grad(log_p, x)
        log_joint = normal(m, s).log_prob(f0)[None] + normal(a**0.5 * f0, (1 - a) ** 0.5).log_prob(
            x.detach()[:, None]
        )
        posterior_mean = (torch.softmax(log_joint, dim=1) * f0).sum(dim=1)
        torch.testing.assert_close(answer_score_from_x0(x.detach(), posterior_mean, a), score,
                                   atol=1e-5, rtol=0)  # fmt: skip
    # EDM, Monte Carlo with Var f_0 = sd^2 and y = f_0 + sigma z: c_skip is the least-squares
    # coefficient of f_0 on y (residual uncorrelated with y), and c_out the residual's standard
    # deviation, so that the network's target (f_0 - c_skip y) / c_out has unit variance
    g = torch.Generator().manual_seed(0)
    clean = 0.5 * torch.randn(400_000, generator=g, dtype=torch.float64)
    noise = torch.randn(400_000, generator=g, dtype=torch.float64)
    for sigma in (0.1, 0.5, 3.0):
        y = clean + sigma * noise
        c_skip, c_out = answer_edm_coefficients(torch.tensor(sigma, dtype=torch.float64))
        target = (clean - c_skip * y) / c_out
        assert abs(float(torch.corrcoef(torch.stack([target, y]))[0, 1])) < 0.01
        assert abs(float(target.var()) - 1.0) < 0.01


PRIORS_WRONG = [
    (ex.check_score_from_x0, lambda f, x0, a: (x0 - f) / (1 - a), "sqrt\\(alpha_bar\\) x0_hat"),
    (ex.check_score_from_x0, lambda f, x0, a: (a**0.5 * x0 - f) / (1 - a) ** 0.5, "VARIANCE"),
    (ex.check_score_from_x0, lambda f, x0, a: (f - a**0.5 * x0) / (1 - a), "wrong sign"),
    (ex.check_edm_coefficients, lambda s: (s**2 / (s**2 + 0.25), answer_edm_coefficients(s)[1]),
     "go to 1"),
    (ex.check_edm_coefficients, lambda s: (answer_edm_coefficients(s)[0], s * 0.5 / (s**2 + 0.25)),
     "SQRT"),
    (ex.check_edm_coefficients, lambda s: answer_edm_coefficients(s)[0], "the pair"),
]  # fmt: skip


# ------------------------------------------------------------------ every notebook
# Each notebook section above lists its answers (checker, answer) and its typical wrong answers
# (checker, answer, expected diagnosis); one pair of tests runs them all.
ANSWERS = [
    *((checker, answer, "correct") for checker, answer in ANSWERS_01_02),
    *((checker, answer, "correct on") for checker, answer in
      NOTEBOOK_ANSWERS + EM_ANSWERS + RELEASED_ANSWERS),
    *((checker, answer, "correct on 3 cases") for checker, answer in
      DIFFUSION_ANSWERS + SAMPLING_ANSWERS + PRIORS_ANSWERS),
]  # fmt: skip


@pytest.mark.parametrize("checker,answer,expected", ANSWERS)
def test_notebook_answers_pass_and_stubs_are_not_attempted(checker, answer, expected, capsys):
    assert checker(answer) is True
    out = capsys.readouterr().out
    assert f"{checker.__name__}: correct" in out and expected in out
    # The committed notebooks run their exercise cells with the stub in place: they print,
    # return False and never raise.
    assert checker(lambda *args: None) is False
    assert f"{checker.__name__}: not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "checker,answer,message",
    WRONG + WRONG_NOTEBOOK + DIFFUSION_WRONG + RELEASED_WRONG + SAMPLING_WRONG + PRIORS_WRONG,
)
def test_wrong_answers_fail_with_a_diagnosis(checker, answer, message):
    with pytest.raises(ex.ExerciseError, match=message):
        checker(answer)


# ------------------------------------------------------------------ build it yourself (02, 03, 06)
# The answers of the "build it yourself" exercises: the whole E-step (02), one EM step from the
# library's blocks (03), the DDFM loop (06).
def answer_e_step(x, y, gamma, rho, floor=1e-3):
    abs_r_m = torch.sqrt((y - x) ** 2 + floor**2)
    abs_r_n = torch.sqrt(x**2 + floor**2)
    g, p = gamma.view(-1, 1, 1, 1), rho.view(-1, 1, 1, 1)
    m_bar, n_bar = torch.sqrt(2 / g) / abs_r_m, torch.sqrt(2 / p) / abs_r_n
    gamma_new = abs_r_m.mean(dim=(1, 2, 3)) * torch.sqrt(gamma / 2) + gamma / 2
    rho_new = abs_r_n.mean(dim=(1, 2, 3)) * torch.sqrt(rho / 2) + rho / 2
    return m_bar, n_bar, gamma_new, rho_new


def answer_em_step(f0, i, v, state, psi, eta):
    from ddfm_edu import em

    x, y = f0 - v, i - v
    m_bar, n_bar, gamma, rho = em.e_step(x, y, state.gamma, state.rho)
    k = em.k_update(x, state.u)
    u = em.u_update(k, psi, eta)
    x = em.x_update(y, m_bar, n_bar, k, eta)
    return x + v, em.EMState(m_bar=m_bar, n_bar=n_bar, k=k, u=u, gamma=gamma, rho=rho)


def answer_ddfm_loop(i, v, prior, steps, sampler, x_T, noise):
    from ddfm_edu import em

    schedule = diffusion.respace(prior.alpha_bar, steps)
    x, state = x_T, None
    for k in range(steps - 1, -1, -1):
        t = torch.full((x.shape[0],), schedule.timesteps[k], dtype=torch.long)
        f_hat, state = em.em_step(prior.predict_x0(x, t), i, v, state)
        a, a_prev = schedule.alpha_bar[k], schedule.alpha_bar_prev(k)
        if sampler == "ddim":
            eps = (x / a**0.5 - f_hat) / (1 / a - 1) ** 0.5
            x = a_prev**0.5 * f_hat + (1 - a_prev) ** 0.5 * eps
        else:
            beta = 1 - a / a_prev
            mean = (beta * a_prev**0.5 * f_hat + (1 - a_prev) * (1 - beta) ** 0.5 * x) / (1 - a)
            x = mean + (beta * (1 - a_prev) / (1 - a)) ** 0.5 * noise[k] if k > 0 else mean
    return f_hat.clamp(-1, 1)


BUILD_ANSWERS = [
    (ex.check_e_step, answer_e_step, "correct on 4 cases"),
    (ex.check_em_step, answer_em_step, "correct on 3 cases"),
    (ex.check_ddfm_loop, answer_ddfm_loop, "correct on 3 cases"),
]


def test_build_answers_on_known_values():
    # E-step by quadrature (gsm's numerical integrals of the posterior), not by the closed form
    from ddfm_edu import gsm

    x = torch.tensor([[[[0.1, -0.3, 0.6]]]], dtype=torch.float64)
    y = torch.tensor([[[[0.5, 0.2, -0.2]]]], dtype=torch.float64)
    gamma, rho = torch.tensor([0.7], dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64)
    m_bar, n_bar, gamma_new, rho_new = answer_e_step(x, y, gamma, rho, floor=0.0)
    for j in range(3):
        r_m, r_n = float(y[0, 0, 0, j] - x[0, 0, 0, j]), float(x[0, 0, 0, j])
        quad_m = gsm.posterior_moments_quadrature(r_m, 0.7)
        quad_n = gsm.posterior_moments_quadrature(r_n, 1.3)
        assert float(m_bar[0, 0, 0, j]) == pytest.approx(quad_m[0], rel=1e-8)
        assert float(n_bar[0, 0, 0, j]) == pytest.approx(quad_n[0], rel=1e-8)
    mean_m = np.mean([gsm.posterior_moments_quadrature(float(r), 0.7)[1] for r in (y - x).flatten()])
    mean_n = np.mean([gsm.posterior_moments_quadrature(float(r), 1.3)[1] for r in x.flatten()])
    assert float(gamma_new) == pytest.approx(mean_m, rel=1e-8)
    assert float(rho_new) == pytest.approx(mean_n, rel=1e-8)


def test_ddfm_loop_reference_is_ddfm():
    # the checker's reference (a loop of ddfm_step) is what ddfm(...) returns, for both samplers,
    # when the same start noise and per-step noise are used (ddfm draws z on a generator seeded
    # with `seed`, in the loop's order k = steps-1 .. 1)
    from ddfm_edu.exercises.ddfm_sampling import _ddfm_reference
    from ddfm_edu.priors.gaussian import GaussianPrior
    from ddfm_edu.sample import ddfm

    prior = GaussianPrior()
    g = torch.Generator().manual_seed(0)
    i, v = (torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    steps, seed = 5, 11
    x_T = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(seed)).double()
    z = torch.Generator().manual_seed(seed)
    noise = torch.zeros(steps, 1, 1, 8, 8, dtype=torch.float64)
    for k in range(steps - 1, 0, -1):
        noise[k] = torch.randn(1, 1, 8, 8, generator=z, dtype=torch.float64)
    for sampler in ("ddim", "ddpm"):
        fused = ddfm(i, v, prior, steps=steps, sampler=sampler, seed=seed, progress=False).fused
        mine = _ddfm_reference(i, v, prior, steps, sampler, x_T, noise)
        torch.testing.assert_close(mine, fused, atol=1e-12, rtol=0)
        torch.testing.assert_close(answer_ddfm_loop(i, v, prior, steps, sampler, x_T, noise), fused,
                                   atol=1e-12, rtol=0)  # fmt: skip


def _e_step_wrong(**change):
    from ddfm_edu.exercises.e_step import _e_step_with

    return lambda x, y, g, r: _e_step_with(x, y, g, r, **change)


def _em_step_wrong(**mistake):
    from ddfm_edu.exercises.m_step import _em_step_with

    return lambda *args: _em_step_with(*args, **mistake)


def _loop_wrong(mistake):
    from ddfm_edu.exercises.ddfm_sampling import _ddfm_with

    return lambda *args: _ddfm_with(*args, mistake=mistake)


def _k_without_conj(x, u):
    H, W = x.shape[-2:]
    dx_hat = torch.exp(2j * torch.pi * torch.arange(W) / W) - 1
    dy_hat = (torch.exp(2j * torch.pi * torch.arange(H) / H) - 1)[:, None]
    fft2 = torch.fft.fft2
    numerator = fft2(x) + dx_hat * fft2(u[:, 0:1]) + dy_hat * fft2(u[:, 1:2])
    return torch.fft.ifft2(numerator / (1 + dx_hat.abs() ** 2 + dy_hat.abs() ** 2)).real


def _e_wrong(part, formula):
    """answer_e_step with one of its four outputs replaced by formula(x, y, gamma, rho)."""

    def wrong(x, y, gamma, rho):
        out = list(answer_e_step(x, y, gamma, rho))
        out[part] = formula(x, y, gamma, rho)
        return tuple(out)

    return wrong


def _floored(r):
    return torch.sqrt(r**2 + 1e-6)


BUILD_WRONG = [
    # the E-step: each typical mistake, written as a reader would, gets its hint
    (ex.check_e_step, _e_wrong(0, lambda x, y, g, r: torch.sqrt(2 * (y - x) ** 2 / g.view(-1, 1, 1, 1))),
     "wrong m_bar for a 4x5 image.*inverted"),
    (ex.check_e_step, _e_wrong(0, lambda x, y, g, r: 2 / g.view(-1, 1, 1, 1) / _floored(y - x)),
     "square root is missing"),
    (ex.check_e_step, _e_wrong(0, lambda x, y, g, r: torch.sqrt(2 / g.view(-1, 1, 1, 1)) / (y - x).abs()),
     "floored"),
    (ex.check_e_step, _e_wrong(0, lambda x, y, g, r: (2 / g) ** 0.5 / ((y - x).abs() + 1e-3)),
     "not \\|r\\| \\+ eps"),
    (ex.check_e_step, _e_wrong(1, lambda x, y, g, r: torch.sqrt(2 / r.view(-1, 1, 1, 1)) / _floored(y - x)),
     "wrong n_bar.*its residual is x itself"),
    (ex.check_e_step, _e_wrong(2, lambda x, y, g, r: 1 / answer_e_step(x, y, g, r)[2]), "not its rate"),
    (ex.check_e_step, _e_wrong(2, lambda x, y, g, r: _floored(y - x).mean(dim=(1, 2, 3)) * torch.sqrt(g / 2)),
     "gamma/2 is missing"),
    (ex.check_e_step, _e_wrong(2, lambda x, y, g, r: _floored(y - x).mean() * torch.sqrt(g / 2) + g / 2),
     "wrong gamma_new for a batch of two.*PER IMAGE"),
    (ex.check_e_step, _e_step_wrong(new_scales_in_weights=True), "OLD gamma"),
    (ex.check_e_step, lambda x, y, g, r: answer_e_step(x, y, g, r)[:2], "return a tuple"),
    # one EM step
    (ex.check_em_step, _em_step_wrong(add_v=False), "wrong f_hat for the initial state.*x \\+ v"),
    (ex.check_em_step, _em_step_wrong(swap=True), "reference"),
    (ex.check_em_step, _em_step_wrong(carry_u=False), "wrong f_hat for a carried state.*state.u"),
    (ex.check_em_step, _em_step_wrong(k_first=False), "the NEW k"),
    (ex.check_em_step, _em_step_wrong(new_scales=False), "wrong gamma.*NEW gamma"),
    (ex.check_em_step, lambda *args: answer_em_step(*args)[0], "return \\(f_hat, state\\)"),
    (ex.check_k_update, _k_without_conj, "wrong for a nonzero u.*CONJUGATE"),
    # the DDFM loop
    (ex.check_ddfm_loop, _loop_wrong("t is k"), "wrong for DDIM, 6 steps.*ORIGINAL timestep"),
    (ex.check_ddfm_loop, _loop_wrong("ascending"), "DOWN to k = 0"),
    (ex.check_ddfm_loop, _loop_wrong("original alpha_bar"), "RESPACED"),
    (ex.check_ddfm_loop, _loop_wrong("fresh state"), "carry the EM state"),
    (ex.check_ddfm_loop, _loop_wrong("no em"), "not the prior's f_tilde"),
    (ex.check_ddfm_loop, _loop_wrong("other sampler"), "deterministic DDIM"),
    (ex.check_ddfm_loop, _loop_wrong("variance"), "wrong for DDPM, 6 steps.*SQUARE ROOT"),
]  # fmt: skip


@pytest.mark.parametrize("checker,answer,expected", BUILD_ANSWERS)
def test_build_answers_pass_and_stubs_are_not_attempted(checker, answer, expected, capsys):
    assert checker(answer) is True
    assert expected in capsys.readouterr().out
    assert checker(lambda *args: None) is False
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("checker,answer,message", BUILD_WRONG)
def test_build_wrong_answers_fail_with_a_diagnosis(checker, answer, message):
    with pytest.raises(ex.ExerciseError, match=message):
        checker(answer)


# ------------------------------------------------------------------ notebook 01: the mixture by quadrature
def answer_gsm_pdf(xi, mu, b):
    from scipy import integrate

    def integrand(a):  # N(xi; mu, a) EXP(a; b), a the variance
        return np.exp(-((xi - mu) ** 2) / (2 * a)) / np.sqrt(2 * np.pi * a) * np.exp(-a / b) / b

    return integrate.quad(integrand, 0, np.inf)[0]


def test_gsm_pdf_answer_is_the_laplace_and_mistakes_get_hints(capsys):
    # Proposition 1 independently of gsm: the quadrature equals scipy's Laplace of scale sqrt(b/2)
    from scipy import integrate, stats

    for xi, mu, b in [(0.3, 0.0, 1.0), (-1.2, 0.5, 0.7), (2.0, 0.0, 3.0)]:
        assert answer_gsm_pdf(xi, mu, b) == pytest.approx(stats.laplace(mu, np.sqrt(b / 2)).pdf(xi), rel=1e-7)
    assert ex.check_gsm_pdf(answer_gsm_pdf) is True
    assert ex.check_gsm_pdf(lambda *args: None) is False
    assert "check_gsm_pdf: correct on 4 cases" in capsys.readouterr().out

    def quad(integrand):
        return integrate.quad(integrand, 0, np.inf)[0]

    wrong = [
        (lambda xi, mu, b: quad(lambda a: stats.norm(mu, np.sqrt(a)).pdf(xi) * b * np.exp(-a * b)), "MEAN b"),
        (lambda xi, mu, b: quad(lambda a: stats.norm(mu, a).pdf(xi) * np.exp(-a / b) / b), "VARIANCE"),
        (lambda xi, mu, b: quad(lambda a: stats.norm(mu, np.sqrt(a)).pdf(xi) * np.exp(-a / b)), "1/b"),
    ]
    for answer, message in wrong:
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_gsm_pdf(answer)


# ------------------------------------------------------------------ notebook 06: the Wiener denoiser
def answer_wiener_denoiser(f_t, alpha_bar, power, mean):
    F_t = torch.fft.fft2(f_t - alpha_bar**0.5 * mean)                    # centred, per frequency
    gain = alpha_bar**0.5 * power / (alpha_bar * power + 1 - alpha_bar)  # Cov(F_0, F_t) / Var F_t
    return torch.fft.ifft2(gain * F_t).real + mean


def test_wiener_denoiser_answer_and_mistakes(capsys):
    from ddfm_edu.exercises.priors import _wiener_with, full_spectrum
    from ddfm_edu.priors.gaussian import GaussianPrior

    prior = GaussianPrior()
    # the full-grid spectrum the checker hands out is the prior's own rfft2 half, mirrored
    full = full_spectrum(prior, 6, 10)
    torch.testing.assert_close(full[:, :6], prior.spectrum(6, 10, dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(full[1:, 1:], full[1:, 1:].flip(0, 1), rtol=1e-12, atol=0)
    # the answer is the posterior mean, by a dense solve in pixel space: f_0 ~ N(mu, C) with the
    # circulant C = F^H diag(P) F (F the unitary 2-D DFT), so E[f_0 | f_t] = mu + sqrt(a) C
    # (a C + (1 - a) I)^{-1} (f_t - sqrt(a) mu)
    H, W, a, mu = 4, 6, float(prior.alpha_bar[300]), prior.fit.mean
    dft = torch.kron(*(torch.fft.fft(torch.eye(n, dtype=torch.float64), norm="ortho") for n in (H, W)))
    cov = (dft.conj().T @ torch.diag(full_spectrum(prior, H, W).flatten().to(dft.dtype)) @ dft).real
    f_t = torch.randn(1, 1, H, W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dense = mu + a**0.5 * cov @ torch.linalg.solve(a * cov + (1 - a) * torch.eye(H * W, dtype=torch.float64),
                                                   (f_t - a**0.5 * mu).flatten())  # fmt: skip
    mine = answer_wiener_denoiser(f_t, a, full_spectrum(prior, H, W), mu).flatten()
    torch.testing.assert_close(mine, dense, rtol=1e-9, atol=1e-12)
    assert ex.check_wiener_denoiser(answer_wiener_denoiser) is True
    assert ex.check_wiener_denoiser(lambda *args: None) is False
    assert "check_wiener_denoiser: correct on 3 cases" in capsys.readouterr().out
    for change, message in [
        (dict(centre=False), "prior's mean matters"),
        (dict(gain=lambda a, p: p / (a * p + 1 - a)), "sqrt\\(alpha_bar\\) in its numerator"),
        (dict(gain=lambda a, p: p / (p + 1 - a)), "scaled by sqrt"),
        (dict(part=torch.abs), "REAL part"),
    ]:
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_wiener_denoiser(lambda *args, change=change: _wiener_with(*args, **change))


# ------------------------------------------------------------------ notebook 05: the DDIM family
def answer_generalised_step(f_t, f0, alpha_bar, alpha_bar_prev, sigma, noise):
    eps = (f_t - alpha_bar**0.5 * f0) / (1 - alpha_bar) ** 0.5               # the noise f_t implies
    mean = alpha_bar_prev**0.5 * f0 + (1 - alpha_bar_prev - sigma**2) ** 0.5 * eps
    return mean + sigma * noise


def test_generalised_step_is_ddim_and_ddpm_and_keeps_the_marginals(capsys):
    from ddfm_edu.exercises.diffusion_primer import generalised_step

    g = torch.Generator().manual_seed(0)
    f_t, f0, z = (torch.randn(1, 1, 4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    a, ap = 0.0784, 0.0848
    torch.testing.assert_close(generalised_step(f_t, f0, a, ap, 0.0, z), diffusion.ddim_step(f_t, f0, a, ap))
    sigma_tilde = float(diffusion.ddpm_posterior(f_t, f0, a, ap)[1]) ** 0.5
    torch.testing.assert_close(generalised_step(f_t, f0, a, ap, sigma_tilde, z),
                               diffusion.ddpm_step(f_t, f0, a, ap, z))  # fmt: skip
    # every sigma keeps q(f_{t-1} | f_0) = N(sqrt(ap) f_0, 1 - ap) when f_t ~ q(f_t | f_0): Monte Carlo
    n, f0_val = 400_000, 0.3
    f_t = diffusion.q_sample(torch.full((n,), f0_val, dtype=torch.float64), a,
                             torch.randn(n, generator=g, dtype=torch.float64))  # fmt: skip
    for sigma in (0.0, sigma_tilde, 0.9):
        fresh = torch.randn(n, generator=g, dtype=torch.float64)
        prev = answer_generalised_step(f_t, f0_val, a, ap, sigma, fresh)
        assert abs(float(prev.mean()) - ap**0.5 * f0_val) < 0.005
        assert abs(float(prev.var()) - (1 - ap)) < 0.005
    assert ex.check_generalised_step(answer_generalised_step) is True
    assert ex.check_generalised_step(lambda *args: None) is False
    assert "check_generalised_step: correct on 3 cases" in capsys.readouterr().out
    for wrong, message in [
        (lambda f, x0, a, ap, s, z: answer_generalised_step(f, x0, a, ap, 0.0, z) + s * z, "make room"),
        (lambda f, x0, a, ap, s, z: answer_generalised_step(f, x0, a, ap, s, 0 * z) + s**2 * z, "deviation"),
        (lambda f, x0, a, ap, s, z: answer_generalised_step(f, x0, ap, a, s, z), "swapped"),
    ]:
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_generalised_step(wrong)


# ------------------------------------------------------------------ notebook 04: EM alone as a loop
def answer_em_alone(i, v, iters):
    from ddfm_edu import em

    f, state = (i + v) / 2, None
    for _ in range(iters):
        f, state = em.em_step(f, i, v, state)
    return f


def test_em_alone_answer_is_baselines_em_alone_and_mistakes_get_hints(capsys):
    from ddfm_edu import baselines
    from ddfm_edu.exercises.em_fusion import _em_alone_with

    g = torch.Generator().manual_seed(0)
    i, v = (torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    torch.testing.assert_close(answer_em_alone(i, v, 7), baselines.em_alone(i, v, iters=7), rtol=0, atol=0)
    assert ex.check_em_alone(answer_em_alone) is True
    assert ex.check_em_alone(lambda *args: None) is False
    assert "check_em_alone: correct on 3 cases" in capsys.readouterr().out
    for mistake, message in [
        (dict(start="v"), "not from v"),
        (dict(start="i"), "not from i"),
        (dict(carry=False), "carry the EM state"),
        (dict(feed_back=False), "PREVIOUS"),
    ]:
        with pytest.raises(ex.ExerciseError, match=message):
            ex.check_em_alone(lambda i, v, n, mistake=mistake: _em_alone_with(i, v, n, **mistake))

"""The remedies of DDFM's likelihood step: the one-sided EM variant (ddfm_edu.em) and the ones that
did not meet the bar (ddfm_edu.remedies)."""

import numpy as np
import pytest
import torch

from ddfm_edu import em, remedies
from ddfm_edu.em import EMConfig, em_fuse, em_step, m_step_objective, one_sided_x_update
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.sample import ddfm


def _pair(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 1, size, size, generator=g) * 2 - 1 for _ in range(2))


def test_one_sided_is_a_registered_variant():
    assert "one-sided" in em.VARIANTS
    with pytest.raises(ValueError, match="phi"):
        em_fuse(*_pair(), variant="one-sided", phi=1.0)


def test_one_sided_x_update_is_the_constrained_minimiser():
    # brute force per pixel over a fine grid of x >= max(y, 0)
    g = torch.Generator().manual_seed(1)
    y, k = torch.randn(2, 1, 1, 6, generator=g).double().unbind(0)
    y, k = y.unsqueeze(0), k.unsqueeze(0)
    c, eta = torch.tensor([3.0], dtype=torch.float64), 2.0
    x = one_sided_x_update(y, k, c, eta)
    for p in range(6):
        low = max(float(y[0, 0, 0, p]), 0.0)
        grid = np.linspace(low, low + 5.0, 200_001)
        objective = 3.0 * grid + 0.5 * eta * (float(k[0, 0, 0, p]) - grid) ** 2
        assert abs(float(x[0, 0, 0, p]) - grid[objective.argmin()]) < 1e-4


def test_one_sided_step_gives_the_maximum_and_the_maximum_likelihood_scales():
    i, v = _pair()
    f0 = torch.rand_like(i) * 2 - 1
    f, state = em_step(f0, i, v, variant="one-sided")
    # c / eta = (1/gamma + 1/rho) / eta = 2000 from the initial gamma = rho = 1: x = max(y, 0)
    torch.testing.assert_close(f, torch.maximum(i, v))
    torch.testing.assert_close(state.gamma, (f - i).mean(dim=(1, 2, 3)) + em.RESIDUAL_FLOOR)
    torch.testing.assert_close(state.rho, (f - v).mean(dim=(1, 2, 3)) + em.RESIDUAL_FLOOR)
    # with a large eta the HQS copy k wins wherever k - c/eta is above the bound
    f_big, _ = em_step(f0, i, v, variant="one-sided", eta=1e6)
    assert (f_big >= torch.maximum(i, v) - 1e-6).all()
    assert (f_big > torch.maximum(i, v) + 1e-3).any()


def test_one_sided_ddfm_is_the_pixelwise_maximum():
    i, v = _pair(size=24)
    result = ddfm(i, v, GaussianPrior(), steps=5, em_variant="one-sided", seed=0, progress=False)
    torch.testing.assert_close(result.fused, torch.maximum(i, v))


def test_local_scales_reduce_to_the_paper_when_the_residuals_are_uniform():
    # |y - x| and |x| constant over the image: the window means equal the image means
    i = torch.full((1, 1, 32, 32), 0.6)
    v = torch.full((1, 1, 32, 32), -0.2)
    f0 = torch.full((1, 1, 32, 32), 0.1)
    state = em.initial_state(i)
    f_local, _, s_local = remedies.local_scales_step(f0, i, v, state, EMConfig())
    f_paper, _, s_paper = em._em_step_paper(f0, i, v, state, EMConfig())
    torch.testing.assert_close(f_local, f_paper)
    torch.testing.assert_close(s_local.gamma, s_paper.gamma.view(-1, 1, 1, 1).expand_as(i))


def test_salience_scales_trust_the_textured_source():
    g = torch.Generator().manual_seed(2)
    textured = (torch.rand(1, 1, 48, 48, generator=g) * 2 - 1) * 0.8
    flat = torch.full_like(textured, 0.1)
    f = remedies.run_em(remedies.salience_scales_step, textured, flat, iters=30)
    # closer to the textured source than to the flat one at most pixels
    assert ((f - textured).abs() < (f - flat).abs()).double().mean() > 0.9


def test_exact_m_step_has_a_lower_objective_than_one_hqs_pass():
    i, v = _pair(size=24)
    f0 = 0.5 * (i + v) + 0.05 * torch.randn(i.shape, generator=torch.Generator().manual_seed(3))
    state = em.initial_state(i)
    _, x_exact, s_exact = remedies.exact_m_step_step(f0, i, v, state, EMConfig())
    _, x_hqs, _ = em._em_step_paper(f0, i, v, state, EMConfig())
    y = i - v
    objective = m_step_objective(x_exact, y, s_exact.m_bar, s_exact.n_bar, 0.5)
    assert (objective < m_step_objective(x_hqs, y, s_exact.m_bar, s_exact.n_bar, 0.5)).all()


def test_run_em_checks_iters():
    i, v = _pair()
    with pytest.raises(ValueError, match="iters"):
        remedies.run_em(remedies.local_scales_step, i, v, iters=0)


def test_cli_fuses_with_the_one_sided_variant(tmp_path, capsys):
    from PIL import Image

    from ddfm_edu import cli

    rng = np.random.default_rng(0)
    ir, vis = (rng.integers(0, 256, (20, 24), dtype=np.uint8) for _ in range(2))
    Image.fromarray(ir).save(tmp_path / "ir.png")
    Image.fromarray(vis).save(tmp_path / "vis.png")
    status = cli.main(["fuse", "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "vis.png"),
                       "-o", str(tmp_path / "f.png"), "--prior", "gaussian", "--steps", "2",
                       "--em-variant", "one-sided", "--no-stretch"])
    assert status == 0, capsys.readouterr().err
    fused = np.asarray(Image.open(tmp_path / "f.png")).astype(int)
    assert np.abs(fused - np.maximum(ir, vis)).max() <= 1

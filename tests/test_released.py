"""The released variant against an independent transcription of the release's EM function, the
paper-vs-release identity of docs/method.md section 7, and the release's studio-range YCbCr."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from release_transcription import release_em_onestep, release_initial
from skimage import color

from ddfm_edu import em, released


def sources(H=24, W=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 1, H, W, generator=g) * 2 - 1 for _ in range(3)]


def test_released_variant_equals_the_transcribed_release_over_several_steps():
    f0, i, v = sources()
    psi, eta = 0.5, 1e-3
    hp, state = release_initial(i), None
    f_release, f_ours = f0, f0
    capped = 0
    for _ in range(5):
        X = f_release - v
        capped += int((torch.sqrt(2 / hp["tau_b"] / (X**2 + 1e-6)) > 2 * torch.sqrt(
            2 / hp["tau_a"] / ((i - v - X + 1e-6) ** 2))).sum())  # fmt: skip
        f_release, hp = release_em_onestep(f_release, i, v, hp, psi, eta)
        f_ours, state = em.em_step(f_ours, i, v, state, psi=psi, eta=eta, variant="released")
        torch.testing.assert_close(f_ours, f_release, rtol=1e-6, atol=1e-6)
    assert capped > 0  # the D <= 2C cap was exercised
    torch.testing.assert_close(state.m_bar, hp["C"], rtol=1e-6, atol=0)
    torch.testing.assert_close(state.n_bar, hp["D"], rtol=1e-6, atol=0)
    torch.testing.assert_close(state.k, hp["H"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state.u, torch.cat([hp["F1"], hp["F2"]], dim=1), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(state.gamma, hp["tau_a"].reshape(1), rtol=1e-6, atol=0)
    torch.testing.assert_close(state.rho, hp["tau_b"].reshape(1), rtol=1e-6, atol=0)


def test_release_transfer_functions_are_the_periodic_forward_differences():
    fft_k1, fft_k2, fft_k1sq, _ = released.otfs(6, 8, torch.device("cpu"), torch.float32)
    q, p = np.arange(8), np.arange(6)
    np.testing.assert_allclose(
        fft_k1.numpy(), np.broadcast_to(np.exp(2j * np.pi * q / 8) - 1, (6, 8)), atol=1e-6
    )
    np.testing.assert_allclose(
        fft_k2.numpy(), np.broadcast_to((np.exp(2j * np.pi * p / 6) - 1)[:, None], (6, 8)), atol=1e-6
    )
    np.testing.assert_allclose(
        fft_k1sq.numpy().real, 2 - 2 * np.cos(2 * np.pi * q / 8)[None].repeat(6, 0), atol=1e-6
    )


def test_released_equals_i_plus_v_minus_paper_as_eta_vanishes_with_the_cap_inactive():
    """Section 7: F_code = I + V - F_paper (eta -> 0, D <= 2C inactive): where the estimate lies
    between the sources (and gamma = rho) the release reflects it about their mean."""
    g = torch.Generator().manual_seed(3)
    v = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64) - 0.5
    sign = torch.randint(0, 2, v.shape, generator=g) * 2 - 1
    i = v + sign * (0.1 + 0.4 * torch.rand(v.shape, generator=g, dtype=torch.float64))  # |y| >= 0.1
    t = 0.4 + 0.5 * torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)  # x = t y, t >= 1/3
    f0 = v + t * (i - v)
    f_paper, _ = em.em_step(f0, i, v, eta=1e-9)
    f_released, state = em.em_step(f0, i, v, eta=1e-9, variant="released")
    assert (state.n_bar < 2 * state.m_bar).all()  # the cap is inactive
    # up to the guards: the paper's sqrt(r^2 + 1e-6) and the release's 1e-6 terms (|r| >= 0.01)
    torch.testing.assert_close(f_released, i + v - f_paper, rtol=0, atol=1e-4)
    assert (f_released - f_paper).abs().max() > 0.1  # and the two really differ


def test_released_ycbcr_matches_the_studio_range_formula_and_skimage():
    g = torch.Generator().manual_seed(4)
    rgb = torch.rand(2, 3, 5, 7, generator=g) * 2 - 1  # [-1, 1], NOT rescaled, as the release
    ycbcr = released.released_rgb_to_ycbcr(rgb)
    assert ycbcr.dtype == torch.float32
    R, G, B = rgb.double().unbind(1)
    expected = torch.stack([
        (16 + 65.481 * R + 128.553 * G + 24.966 * B) / 255,
        (128 - 37.797 * R - 74.203 * G + 112.0 * B) / 255,
        (128 + 112.0 * R - 93.786 * G - 18.214 * B) / 255,
    ], dim=1)  # fmt: skip
    torch.testing.assert_close(ycbcr.double(), expected, rtol=0, atol=1e-6)
    # as the release computes it: skimage on a float32 (B, H, W, 3) array, then / 255
    sk = color.rgb2ycbcr(rgb.permute(0, 2, 3, 1).numpy())
    sk = torch.from_numpy(sk).float().permute(0, 3, 1, 2) / 255
    torch.testing.assert_close(ycbcr, sk, rtol=0, atol=1e-6)
    back = released.released_ycbcr_to_rgb(ycbcr)
    sk_back = color.ycbcr2rgb((ycbcr * 255).double().permute(0, 2, 3, 1).numpy())
    torch.testing.assert_close(back, torch.from_numpy(sk_back).float().permute(0, 3, 1, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(back, rgb, rtol=0, atol=1e-5)
    assert back.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_released_on_cuda_matches_cpu():
    f0, i, v = sources(32, 32)
    f_cpu, _ = em.em_fuse(i, v, iters=3, f_init=f0, variant="released")
    f_gpu, _ = em.em_fuse(i.cuda(), v.cuda(), iters=3, f_init=f0.cuda(), variant="released")
    torch.testing.assert_close(f_gpu.cpu(), f_cpu, rtol=1e-4, atol=1e-4)
    rgb = torch.rand(1, 3, 8, 8, device="cuda") * 2 - 1
    assert released.released_rgb_to_ycbcr(rgb).device.type == "cuda"

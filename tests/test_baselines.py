"""Classical baselines: closed forms, the pyramid against scipy, exact reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ddfm_edu import baselines
from ddfm_edu.em import em_fuse

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]


def _pair(shape=(2, 1, 23, 30), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(shape, generator=g, dtype=dtype) * 2 - 1,
        torch.rand(shape, generator=g, dtype=dtype) * 2 - 1,
    )


def test_average_and_max_closed_forms():
    i, v = _pair()
    a, b = i.numpy(), v.numpy()
    np.testing.assert_allclose(baselines.average(i, v).numpy(), (a + b) / 2, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(baselines.maximum(i, v).numpy(), np.where(a > b, a, b))


def test_select_max_abs_keeps_the_larger_magnitude_and_prefers_a_on_ties():
    a = torch.tensor([0.5, -0.9, 0.2, -0.3])
    b = torch.tensor([-0.7, 0.4, -0.2, 0.3])
    assert baselines.select_max_abs(a, b).tolist() == pytest.approx([-0.7, -0.9, 0.2, -0.3])


def test_blur_matches_scipy_mirror_convolution():
    x = _pair((1, 1, 17, 12), dtype=torch.float64)[0]
    w = np.array(baselines.BINOMIAL_5) / 16
    expected = ndimage.convolve(x[0, 0].numpy(), np.outer(w, w), mode="mirror")
    np.testing.assert_allclose(baselines._blur(x)[0, 0].numpy(), expected, rtol=0, atol=1e-12)


def test_pyramid_of_a_constant_has_zero_detail_and_constant_base():
    x = torch.full((1, 1, 37, 50), 0.3)
    pyramid = baselines.laplacian_pyramid(x, levels=4)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    for band in pyramid[:-1]:
        assert band.abs().max() < 1e-6
    torch.testing.assert_close(pyramid[-1], torch.full_like(pyramid[-1], 0.3))


@pytest.mark.parametrize("device", DEVICES)
def test_pyramid_reconstruction_is_exact_for_every_level_count(device):
    x = _pair((2, 3, 37, 50))[0].to(device)
    for levels in range(1, baselines.max_levels(37, 50) + 1):
        pyramid = baselines.laplacian_pyramid(x, levels)
        assert len(pyramid) == levels and pyramid[0].device == x.device
        assert (baselines.reconstruct_laplacian(pyramid) - x).abs().max() < 1e-5


def test_max_levels_keeps_every_blurred_level_at_least_three_pixels():
    assert baselines.max_levels(2, 100) == 1
    assert baselines.max_levels(3, 3) == 2
    assert baselines.max_levels(37, 50) == 6  # sizes 37, 19, 10, 5, 3 (blurred last), base 2
    with pytest.raises(ValueError, match="levels"):
        baselines.laplacian_pyramid(torch.zeros(1, 1, 37, 50), levels=7)
    with pytest.raises(ValueError, match="levels"):
        baselines.laplacian_pyramid(torch.zeros(1, 1, 37, 50), levels=0)


def test_laplacian_fusion_of_identical_inputs_returns_the_input():
    x = _pair()[0]
    assert (baselines.laplacian_fusion(x, x.clone(), levels=4) - x).abs().max() < 1e-5


def test_laplacian_fusion_with_one_level_is_the_average():
    i, v = _pair()
    torch.testing.assert_close(baselines.laplacian_fusion(i, v, levels=1), (i + v) / 2)


def test_laplacian_fusion_with_a_constant_source_keeps_all_detail_of_the_other():
    """v = c has zero detail bands, so the max-abs rule takes every band of i and only the base is
    averaged: f - i = up(up((c - G_i) / 2)), half the base difference brought up to full size."""
    i = _pair((1, 1, 40, 33), dtype=torch.float64)[0]
    base = baselines.laplacian_pyramid(i, 3)[-1]
    c = 0.1
    fused = baselines.laplacian_fusion(i, torch.full_like(i, c), levels=3)
    up = baselines._up(baselines._up((c - base) / 2, (20, 17)), (40, 33))
    torch.testing.assert_close(fused - i, up, atol=1e-12, rtol=0)
    assert fused.dtype == torch.float64


def test_fusion_keeps_a_bright_target_that_only_one_source_has():
    v = torch.zeros(1, 1, 32, 32)
    i = v.clone()
    i[..., 14:18, 14:18] = 0.8
    fused = baselines.laplacian_fusion(i, v, levels=3)
    assert fused[..., 15, 15].item() > 0.6  # the average would give 0.4
    assert baselines.average(i, v)[..., 15, 15].item() == pytest.approx(0.4)


def test_em_alone_is_em_fuse_without_trace():
    i, v = _pair((1, 1, 16, 16))
    expected, _ = em_fuse(i, v, iters=5, psi=0.5, eta=1e-3, variant="released")
    torch.testing.assert_close(baselines.em_alone(i, v, iters=5, variant="released"), expected)


def test_baselines_reject_bad_arguments():
    i, v = _pair()
    with pytest.raises(ValueError, match="v"):
        baselines.average(i, v[..., :-1])
    with pytest.raises(ValueError, match="i"):
        baselines.laplacian_fusion(i.repeat(1, 3, 1, 1), v)
    assert set(baselines.BASELINES) == {"average", "max", "laplacian", "em"}


def test_em_alone_with_equal_fixed_scales_keeps_the_average():
    g = torch.Generator().manual_seed(3)
    i, v = torch.rand(2, 1, 1, 10, 12, generator=g) * 2 - 1
    f = baselines.em_alone(i, v, phi=1.0)  # the smoothing term moves it by a few 1e-3 at most
    assert torch.allclose(f, 0.5 * (i + v), atol=1e-2)
    position = (f - v) / (i - v)
    assert position.min() > 0.49 and position.max() < 0.51
    assert (baselines.em_alone(i, v) - v).abs().max() < 1e-2  # learned scales: a copy of v

"""The two-band share and the copy test (ddfm_edu.share)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ddfm_edu.share import gaussian_blur, is_copy, two_band_share


def _pair(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    i = torch.rand(1, 1, size, size, generator=g) * 2 - 1
    v = torch.rand(1, 1, size, size, generator=g) * 2 - 1
    # give both sources a coarse part too
    return gaussian_blur(i, 4.0) + 0.3 * i, gaussian_blur(v, 4.0) + 0.3 * v


def test_gaussian_blur_matches_scipy():
    x = _pair()[0]
    expected = ndimage.gaussian_filter(x[0, 0].double().numpy(), 8.0, mode="mirror", truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(x.double())[0, 0].numpy(), expected, atol=1e-10)


def test_shares_of_the_average_the_copies_and_a_two_band_mix():
    i, v = _pair()
    np.testing.assert_allclose(two_band_share(0.5 * (i + v), i, v).numpy(), [[0.5, 0.5]], atol=1e-5)
    np.testing.assert_allclose(two_band_share(0.7 * i - 0.1, i, v).numpy(), [[1.0, 1.0]], atol=1e-5)
    np.testing.assert_allclose(two_band_share(v, i, v).numpy(), [[0.0, 0.0]], atol=1e-5)
    # sources with separate bands (period 128 px: coarse; 4 px: detail); the coarse part of i with
    # the detail of v reads ~1 in the coarse band, ~0 in the detail band
    r, c = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    low_i, low_v = torch.cos(2 * torch.pi * r / 128), torch.cos(2 * torch.pi * c / 128)
    high_i, high_v = torch.cos(2 * torch.pi * (r + c) / 4), torch.cos(2 * torch.pi * c / 4)
    i2, v2 = (0.5 * low_i + 0.2 * high_i)[None, None], (0.5 * low_v + 0.2 * high_v)[None, None]
    mix = (0.5 * low_i + 0.2 * high_v)[None, None]
    share = two_band_share(mix, i2, v2)[0]
    assert share[0] > 0.9 and share[1] < 0.1
    fused = (i2, v2, 0.5 * (i2 + v2), mix)
    copies = is_copy(torch.cat([two_band_share(f, i2, v2) for f in fused]))
    assert copies.tolist() == [True, True, False, False]


def test_share_checks_its_arguments():
    i, v = _pair()
    with pytest.raises(ValueError, match="sigma"):
        two_band_share(i, i, v, sigma=0)
    with pytest.raises(ValueError, match="f"):
        two_band_share(i[..., :10], i, v)

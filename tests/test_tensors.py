"""Padding to a stride, cropping back, and the min-max stretch (ddfm_edu.tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddfm_edu import tensors


def test_pad_to_multiple_reflects_like_numpy_and_crops_back():
    x = torch.rand(2, 3, 21, 30)
    padded, info = tensors.pad_to_multiple(x, 8)
    assert padded.shape == (2, 3, 24, 32) and info == tensors.Padding(21, 30, 3, 2)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect")
    np.testing.assert_array_equal(padded.numpy(), expected)
    assert torch.equal(tensors.crop(padded, info), x)
    same, info = tensors.pad_to_multiple(x[..., :16, :24], 8)
    assert same.shape == (2, 3, 16, 24) and info.bottom == info.right == 0


def test_pad_larger_than_the_image_reflects_repeatedly():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    padded, info = tensors.pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    # 1 row: replicated; 3 columns: 0 1 2 | 1 0 | 1 2 1  (reflect by at most size - 1 at a time)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert torch.equal(padded[0, 0], padded[0, 0, :1].expand(8, 8))
    assert torch.equal(tensors.crop(padded, info), x)
    with pytest.raises(ValueError, match="stride"):
        tensors.pad_to_multiple(x, 0)


def test_stretch_maps_each_image_to_the_full_range_and_leaves_constants():
    x = torch.stack([torch.linspace(-0.2, 0.3, 12).view(1, 3, 4), torch.full((1, 3, 4), 0.5)])
    s = tensors.stretch(x)
    torch.testing.assert_close(s[0], ((x[0] + 0.2) / 0.5) * 2 - 1)
    torch.testing.assert_close(s[1], x[1])


def test_stretch_leaves_an_image_that_is_constant_at_8_bit_precision():
    """A (near-)constant fused image stays constant: its rounding noise is not stretched to 0..255."""
    base = torch.full((2, 1, 8, 8), 0.2)
    noisy = base + 1e-8 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(tensors.stretch(noisy), noisy, rtol=0, atol=0)
    half_level = base.clone()
    half_level[..., 0, 0] += 1.01 * tensors.MIN_STRETCH_SPAN  # just over: stretched
    assert tensors.stretch(half_level).amin() == -1 and tensors.stretch(half_level).amax() == 1

r"""How much of each source a fused image carries, in a coarse band and a detail band.

Split every image into a coarse part, a Gaussian blur with sigma = 8 px (`gaussian_blur`), and its
detail, the rest. In each band fit the fused image by least squares as a mix of the sources,

    f_band ~ a i_band + b v_band + c,

and report the infrared share a / (a + b) per band (`two_band_share`). The average (i + v) / 2
reads 0.5 / 0.5, a copy of the infrared image 1 / 1, of the visible image 0 / 0; an infrared base
with visible detail (gradient-transfer fusion) reads about 1 / 0.3. An output is a copy of one
source (`is_copy`) when its share is >= 0.9 in both bands, or <= 0.1 in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ddfm_edu.validation import check_images, check_positive

SIGMA = 8.0
"""The blur of the coarse band, in pixels."""

COPY_THRESHOLD = 0.9
"""A share at or above this in both bands (or at or below 1 - this in both) is a copy."""


def gaussian_blur(x: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    r"""Separable Gaussian blur, kernel exp(-t^2 / (2 sigma^2)) for |t| <= 3 sigma, normalised to
    sum 1, reflect borders. An image smaller than the kernel gets the kernel truncated to
    |t| <= min(H, W) - 1 (renormalised). x: (B, C, H, W) -> (B, C, H, W)."""
    B, C, H, W = x.shape
    radius = min(math.ceil(3.0 * sigma), H - 1, W - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    y = F.pad(x.reshape(B * C, 1, H, W), (radius,) * 4, mode="reflect")
    y = F.conv2d(F.conv2d(y, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return y.reshape(B, C, H, W)


def _mix_share(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """a / (a + b) of the least-squares fit f ~ a i + b v + c, per image: (B,)."""
    design = torch.stack([i.flatten(1), v.flatten(1), torch.ones_like(i.flatten(1))], dim=-1)
    coef = torch.linalg.lstsq(design.double(), f.flatten(1).double().unsqueeze(-1)).solution
    a, b = coef[:, 0, 0], coef[:, 1, 0]
    return (a / (a + b)).to(f.dtype)


def two_band_share(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    r"""The infrared share a / (a + b) of f ~ a i + b v + c in the coarse band (blur sigma) and the
    detail band (the rest), per image. f, i, v: (B, 1, H, W). Returns (B, 2): [coarse, detail]."""
    check_images(f=f, i=i, v=v)
    check_positive("sigma", sigma)
    coarse = [gaussian_blur(t, sigma) for t in (f, i, v)]
    detail = [t - c for t, c in zip((f, i, v), coarse, strict=True)]
    return torch.stack([_mix_share(*coarse), _mix_share(*detail)], dim=1)


def is_copy(share: torch.Tensor, threshold: float = COPY_THRESHOLD) -> torch.Tensor:
    r"""Copy test on `two_band_share` output (B, 2): share >= threshold in both bands (a copy of i)
    or <= 1 - threshold in both (a copy of v). Returns a bool tensor (B,)."""
    return (share >= threshold).all(dim=1) | (share <= 1.0 - threshold).all(dim=1)

r"""BT.601 full-range luma/chroma (JPEG convention), on tensors in [-1, 1].

DDFM fuses grey values. Colour sources (a colour visible image, a pseudo-colour PET/SPECT image) are
split into luma Y and chroma (Cb, Cr); the luma is fused and the colour source's chroma restored:

    Y  =  0.299 R + 0.587 G + 0.114 B
    Cb = -0.168736 R - 0.331264 G + 0.5 B          (centred: 0 for grey)
    Cr =  0.5 R - 0.418688 G - 0.081312 B

On [-1, 1] data the map is linear (no offsets), so grey (R = G = B) gives Y = R, Cb = Cr = 0.
"""

from __future__ import annotations

from functools import lru_cache

import torch

RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ],
    dtype=torch.float64,
)


@lru_cache(maxsize=16)
def _matrices(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward matrix and its inverse (computed in float64) on a device, made once per
    (device, dtype) so that a per-step conversion copies nothing from the host."""
    return RGB_TO_YCBCR.to(device, dtype), torch.linalg.inv(RGB_TO_YCBCR).to(device, dtype)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [-1, 1] -> (B, 3, H, W) stacked Y, Cb, Cr (Y in [-1, 1], chroma centred)."""
    matrix, _ = _matrices(rgb.device, rgb.dtype)
    return torch.einsum("ij,bjhw->bihw", matrix, rgb)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycbcr` (the exact matrix inverse, computed in float64)."""
    _, inverse = _matrices(ycbcr.device, ycbcr.dtype)
    return torch.einsum("ij,bjhw->bihw", inverse, ycbcr)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B, keeping a channel dimension: (B, 3, H, W) -> (B, 1, H, W)."""
    return rgb_to_ycbcr(rgb)[:, :1]


def replace_luma(rgb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The RGB image with luma y (B, 1, H, W) and the chroma of rgb (B, 3, H, W)."""
    ycbcr = rgb_to_ycbcr(rgb)
    return ycbcr_to_rgb(torch.cat([y, ycbcr[:, 1:]], dim=1))

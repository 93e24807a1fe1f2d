"""Tensor operations on image batches (B, C, H, W) shared by the sampler and the file I/O:
reflect-padding to a multiple of a stride and cropping back, and the min-max stretch.

Torch only: the core (`em`, `diffusion`, `sample`) imports this, not `ddfm_edu.data` (PIL, files).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ddfm_edu.validation import check_integer


class Padding(NamedTuple):
    """What `pad_to_multiple` added: the original height and width (padding is bottom/right)."""

    height: int
    width: int
    bottom: int
    right: int


def pad_to_multiple(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, Padding]:
    """Reflect-pad (B, C, H, W) at the bottom and right to the next multiples of `stride`.

    The top-left corner keeps its place, so `crop(padded, info)` returns exactly x. Pads larger
    than the image are done by reflecting repeatedly (a 1-pixel side is replicated).
    """
    check_integer("stride", stride)
    height, width = x.shape[-2:]
    info = Padding(height, width, -height % stride, -width % stride)
    padded = x
    for dim, total in ((-2, info.bottom), (-1, info.right)):
        while total > 0:
            size = padded.shape[dim]
            step = min(total, size - 1) if size > 1 else total
            mode = "reflect" if size > 1 else "replicate"
            pad = (0, 0, 0, step) if dim == -2 else (0, step, 0, 0)
            padded = F.pad(padded, pad, mode=mode)
            total -= step
    return padded, info


def crop(x: torch.Tensor, info: Padding) -> torch.Tensor:
    """Undo `pad_to_multiple`: the top-left (height, width) of x."""
    return x[..., : info.height, : info.width]


MIN_STRETCH_SPAN = 1.0 / 255.0
"""Half a grey level on the [-1, 1] scale (one level is 2/255): an image whose values span less is
constant at 8-bit precision, and `stretch` leaves it as it is instead of blowing its rounding
noise (1e-8 from a solver, say) up into a 0..255 pattern."""


def stretch(x: torch.Tensor) -> torch.Tensor:
    r"""Min-max stretch of each image of a batch (B, C, H, W) to the full range [-1, 1]:

        x' = 2 (x - min x) / (max x - min x) - 1

    (the reference protocol saves the fused image stretched to 0..255). An image whose span
    max x - min x is below MIN_STRETCH_SPAN (constant at 8-bit precision) is returned unchanged.
    """
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    span = high - low
    flat = span < MIN_STRETCH_SPAN
    stretched = 2.0 * (x - low) / torch.where(flat, torch.ones_like(span), span) - 1.0
    return torch.where(flat, x, stretched)

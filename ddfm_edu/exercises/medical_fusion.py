"""Checkers of notebook 09 (medical fusion): the BT.601 luma of an RGB image and the merge of
a fused luma with a colour source's chroma."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import colour, data
from ddfm_edu.exercises.harness import Case, check, random_rgb


def check_luma(fn: Callable) -> bool:
    """fn(rgb) = BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B, (B, 3, H, W) -> (B, 1, H, W)."""
    rgb = random_rgb(1, 3, 4, 5, seed=20)
    cases = [
        Case("a random colour image", (rgb,), "rgb of shape (1, 3, 4, 5) in [-1, 1]"),
        Case("a batch", (random_rgb(2, 3, 3, 2, seed=21),), "rgb of shape (2, 3, 3, 2)"),
    ]
    hints = [
        (lambda x: x.mean(dim=1, keepdim=True), "not the plain mean: green counts most (0.587), blue least"),
        (
            lambda x: torch.einsum("c,bchw->bhw", x.new_tensor([0.2126, 0.7152, 0.0722]), x)[:, None],
            "these are the BT.709 (HDTV) weights; the fusion literature uses BT.601: 0.299, 0.587, 0.114",
        ),
        (lambda x: colour.luma(x)[:, 0], "keep the channel axis: (B, 1, H, W)"),
    ]
    return check("check_luma", fn, colour.luma, cases, hints, atol=1e-9)


def check_merge_luma_chroma(fn: Callable) -> bool:
    """fn(y, chroma) = RGB (B, 3, H, W) with luma y (B, 1, H, W) and chroma (Cb, Cr) (B, 2, H, W),
    BT.601 full range on [-1, 1] (centred chroma): R = Y + 1.402 Cr, G = Y - 0.344136 Cb -
    0.714136 Cr, B = Y + 1.772 Cb (`ddfm_edu.data.merge_chroma`)."""
    ycbcr = colour.rgb_to_ycbcr(random_rgb(1, 3, 4, 5, seed=22))
    y, chroma = random_rgb(1, 1, 4, 5, seed=23), ycbcr[:, 1:]
    batch_chroma = colour.rgb_to_ycbcr(random_rgb(2, 3, 3, 2, seed=25))[:, 1:]
    cases = [
        Case("a fused luma with PET chroma", (y, chroma), "random y (1, 1, 4, 5), a colour image's chroma"),
        Case("grey (zero chroma)", (y, torch.zeros_like(chroma)), "the same y, Cb = Cr = 0: R = G = B = Y"),
        Case("a batch", (random_rgb(2, 1, 3, 2, seed=24), batch_chroma),
             "y (2, 1, 3, 2), chroma (2, 2, 3, 2)"),
    ]  # fmt: skip
    hints = [
        (lambda y, c: data.merge_chroma(y, c.flip(1)), "Cb and Cr are swapped: channel 0 is Cb, 1 is Cr"),
        (
            lambda y, c: torch.einsum("ij,bjhw->bihw", colour.RGB_TO_YCBCR.to(y), torch.cat([y, c], 1)),
            "that is the forward (RGB -> YCbCr) matrix; merging needs its inverse",
        ),
        (
            lambda y, c: torch.cat([y + c[:, 1:], y - c[:, :1] - c[:, 1:], y + c[:, :1]], 1),
            "the chroma coefficients are 1.402 (Cr in R), 0.344136 and 0.714136 (G), 1.772 (Cb in B)",
        ),
    ]
    return check("check_merge_luma_chroma", fn, data.merge_chroma, cases, hints, atol=1e-9)

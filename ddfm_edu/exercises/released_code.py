"""Checkers of notebook 10 (paper vs released code): the release's output F = I - X in the
limit RHO -> 0, and the studio-range luma the release hands to EM."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddfm_edu import colour
from ddfm_edu.exercises.harness import Case, check, random_image, random_rgb


def _released_from_weights(
    i: torch.Tensor, v: torch.Tensor, c: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """The release's output as eta -> 0 with the cap inactive: X = C Y / (C + D), F = I - X,
    i.e. i + v - f_paper with f_paper = v + (i - v) C / (C + D)."""
    return i + v - (v + (i - v) * c / (c + d))


def check_released_output(fn: Callable) -> bool:
    """fn(i, v, c, d) = the release's F = I - X as RHO -> 0 (cap D <= 2C inactive), with I = i,
    V = v and its weights C (m_bar), D (n_bar): X = C (I - V) / (C + D)."""
    i, v = random_image(1, 1, 4, 5, seed=90), random_image(1, 1, 4, 5, seed=91)
    c = 1 + torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(92), dtype=torch.float64)
    d = 1 + torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(93), dtype=torch.float64)
    cases = [
        Case("random sources and weights", (i, v, c, d), "i, v in [-1, 1], C, D in [1, 2], (1, 1, 4, 5)"),
        Case("equal weights C = D", (i, v, c, c), "C = D: the paper gives the mean of the sources"),
        Case("a strong data weight", (i, v, 50 * c, d), "C = 50..100, D in [1, 2]"),
        Case("a batch", (random_image(2, 1, 3, 2, seed=94), random_image(2, 1, 3, 2, seed=95),
                         c[..., :3, :2].expand(2, 1, 3, 2), d[..., :3, :2].expand(2, 1, 3, 2)),
             "shape (2, 1, 3, 2)"),
    ]  # fmt: skip
    hints = [
        (lambda i, v, c, d: v + (i - v) * c / (c + d),
         "that is the paper's f = x + v; the release outputs F = I - X"),
        (lambda i, v, c, d: (i - v) * c / (c + d), "that is X = C Y / (C + D); the output is F = I - X"),
        (lambda i, v, c, d: i - (i - v) * c / (c + 2 * d),
         "as RHO -> 0 the denominator is 2C + 2D: C / (C + D)"),
    ]  # fmt: skip
    return check("check_released_output", fn, _released_from_weights, cases, hints, atol=1e-9)


def _studio_luma(rgb: torch.Tensor) -> torch.Tensor:
    from ddfm_edu.released import released_rgb_to_ycbcr

    return released_rgb_to_ycbcr(rgb)[:, :1]


def check_studio_luma(fn: Callable) -> bool:
    """fn(rgb) = the luma the release hands to EM: Y' = (16 + 65.481 R + 128.553 G + 24.966 B) / 255
    with R, G, B the network's x0 estimate in [-1, 1] as is, (B, 3, H, W) -> (B, 1, H, W)."""
    rgb = random_rgb(1, 3, 4, 5, seed=96)
    grey = torch.linspace(-1, 1, 5, dtype=torch.float64).view(1, 1, 1, 5).expand(1, 3, 2, 5)
    cases = [
        Case("a random colour estimate", (rgb,), "rgb of shape (1, 3, 4, 5) in [-1, 1]"),
        Case("grey values -1 .. 1", (grey,), "R = G = B = -1, -0.5, 0, 0.5, 1"),
        Case("a batch", (random_rgb(2, 3, 3, 2, seed=97),), "rgb of shape (2, 3, 3, 2)"),
    ]
    hints = [
        (colour.luma, "that is the full-range luma 0.299 R + 0.587 G + 0.114 B; the release uses the "
                      "studio-range matrix: (16 + 65.481 R + 128.553 G + 24.966 B) / 255"),
        (lambda x: _studio_luma((x + 1) / 2), "the release does NOT rescale [-1, 1] to [0, 1] first"),
        (lambda x: _studio_luma(x) * 255, "divide by 255 (the release's scaling before EM)"),
        (lambda x: _studio_luma(x) - 16 / 255, "add the offset 16 before dividing by 255"),
    ]  # fmt: skip
    return check("check_studio_luma", fn, _studio_luma, cases, hints, rtol=1e-5, atol=1e-6)

r"""Classical fusion rules to compare DDFM with. All take i, v (B, 1, H, W) in [-1, 1] on any device.

    average:    f = (i + v) / 2
    maximum:    f = max(i, v)
    laplacian:  Laplacian-pyramid fusion (Burt and Adelson): detail bands by the max-absolute rule,
                the coarsest (base) level by the average
    em_alone:   the EM of DDFM without the diffusion prior (`ddfm_edu.em.em_fuse`)

The Laplacian pyramid uses the 5-tap binomial kernel w = [1, 4, 6, 4, 1] / 16 (separable, reflect
borders):

    G_0 = x,  G_{l+1} = down(w * G_l),  L_l = G_l - up(G_{l+1}),  up(g) = 4 w * (g with zeros between)

so a pyramid [L_0, ..., L_{n-2}, G_{n-1}] reconstructs x exactly: G_l = L_l + up(G_{l+1}).
Odd sizes are handled by keeping ceil(H / 2) rows and columns per level.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ddfm_edu.em import em_fuse
from ddfm_edu.validation import check_images, check_integer

BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def average(i: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """f = (i + v) / 2."""
    check_images(i=i, v=v)
    return 0.5 * (i + v)


def maximum(i: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """f = max(i, v), pixel by pixel."""
    check_images(i=i, v=v)
    return torch.maximum(i, v)


def select_max_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The coefficient of larger magnitude, pixel by pixel: a where |a| >= |b|, else b
    (the usual rule for detail/high-frequency coefficients)."""
    return torch.where(a.abs() >= b.abs(), a, b)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable binomial blur w * x (w = [1, 4, 6, 4, 1] / 16), reflect borders: along H, then W,
    each as a weighted sum of five shifted views (faster than a convolution for a 5-tap kernel)."""
    for dim, pad in ((-2, (0, 0, 2, 2)), (-1, (2, 2, 0, 0))):
        padded, size = F.pad(x, pad, mode="reflect"), x.shape[dim]
        x = sum(w / 16.0 * padded.narrow(dim, k, size) for k, w in enumerate(BINOMIAL_5))
    return x


def _down(x: torch.Tensor) -> torch.Tensor:
    """down(w * x): blur, then keep every other row and column (ceil(H/2) x ceil(W/2))."""
    return _blur(x)[..., ::2, ::2]


def _up(g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """up(g) = 4 w * (g with zeros between), to the finer level's size (H, W)."""
    filled = g.new_zeros(*g.shape[:2], *size)
    filled[..., ::2, ::2] = g
    return 4.0 * _blur(filled)


def max_levels(height: int, width: int) -> int:
    """The most pyramid levels an image of this size allows (every blurred level >= 3 px a side)."""
    levels, size = 1, min(height, width)
    while size >= 3:
        levels, size = levels + 1, (size + 1) // 2
    return levels


def laplacian_pyramid(x: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """[L_0, ..., L_{levels-2}, G_{levels-1}] of x (B, C, H, W): detail bands, then the base."""
    check_images(channels=None, x=x)
    limit = max_levels(*x.shape[-2:])
    check_integer(f"levels (for a {tuple(x.shape[-2:])} image)", levels, 1, limit)
    pyramid, g = [], x
    for _ in range(levels - 1):
        coarser = _down(g)
        pyramid.append(g - _up(coarser, g.shape[-2:]))
        g = coarser
    return [*pyramid, g]


def reconstruct_laplacian(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Collapse a Laplacian pyramid: G_l = L_l + up(G_{l+1}), from the base to level 0."""
    g = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        g = band + _up(g, band.shape[-2:])
    return g


DEFAULT_LEVELS = 4


def laplacian_fusion(i: torch.Tensor, v: torch.Tensor, levels: int | None = None) -> torch.Tensor:
    """Laplacian-pyramid fusion: max-absolute rule on the detail bands, average on the base.

    levels=None: DEFAULT_LEVELS (4), or as many as the image size allows (`max_levels`) if fewer."""
    check_images(i=i, v=v)
    if levels is None:
        levels = min(DEFAULT_LEVELS, max_levels(*i.shape[-2:]))
    pyramid_i, pyramid_v = laplacian_pyramid(i, levels), laplacian_pyramid(v, levels)
    bands = [select_max_abs(a, b) for a, b in zip(pyramid_i[:-1], pyramid_v[:-1], strict=True)]
    return reconstruct_laplacian([*bands, 0.5 * (pyramid_i[-1] + pyramid_v[-1])])


def em_alone(i: torch.Tensor, v: torch.Tensor, **options) -> torch.Tensor:
    """DDFM's EM without the diffusion prior: the f of `ddfm_edu.em.em_fuse(i, v, **options)`
    (the same keyword options: iters, psi, eta, variant, phi, f_init), without the trace.

    With learned scales (phi=None) EM alone leaves the symmetric start and converges to a copy of
    one source (see em_fuse); phi=1 holds the scales equal and keeps the pixel-wise average."""
    return em_fuse(i, v, **options)[0]


# The methods by their command-line names; each maps (i, v) -> f.
BASELINES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "average": average,
    "max": maximum,
    "laplacian": laplacian_fusion,
    "em": em_alone,
}

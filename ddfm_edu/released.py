r"""The released code's EM function and colour conversion, reproduced operation by operation.

Source: MMIF-DDFM (the official code of Zhao et al., ICCV 2023), guided_diffusion/EM_onestep.py
(EM_Initial, EM_onestep, prox_tv, psf2otf) and the YCbCr conversion its DDIM step uses
(util/pytorch_colors.py -> skimage.color.rgb2ycbcr / ycbcr2rgb). Written from a reading of that
code; the differences from the paper are listed in docs/method.md section 7.

Name map, release -> paper (used only in this module):
    C = m_bar, D = n_bar, tau_a = gamma, tau_b = rho, RHO = eta, LAMBDA = psi, H = k, (F1, F2) = u,
    f_pre = f0 (the estimate), I = i, V = v, Y = i - v, X = x. The release calls EM_onestep with
    I = the VISIBLE image and V = the INFRARED image.

One deliberate difference: the release averages tau_a, tau_b over the whole tensor (it runs one
image at a time); here they are averaged per image, so a batch equals its images run one by one, and
for B = 1 the two are the same.
"""

from __future__ import annotations

from functools import lru_cache

import torch

# ITU-R BT.601 studio-range matrix (skimage's ycbcr_from_rgb), for RGB in [0, 1] nominally.
YCBCR_FROM_RGB = torch.tensor(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=torch.float64,
)
YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


@lru_cache(maxsize=32)
def otfs(H: int, W: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    r"""The release's transfer functions (fft_k1, fft_k2, fft_k1sq, fft_k2sq), full complex (H, W).

    As psf2otf does: the kernel [[1, -1]] (and its transpose) zero-padded to H x W, rolled by
    -(kernel size // 2) along each axis (so -1 sits at [0, 0] and +1 at column -1), then fftn;
    fft_k1sq = conj(fft_k1) * fft_k1 (complex, zero imaginary part). Cached (the release computes
    them once per image in EM_Initial).
    """
    out = []
    for kernel in (torch.tensor([[1.0, -1.0]]), torch.tensor([[1.0], [-1.0]])):
        kernel = kernel.to(device=device, dtype=dtype)
        padded = torch.nn.functional.pad(kernel, (0, W - kernel.shape[1], 0, H - kernel.shape[0]))
        for axis, size in enumerate(kernel.shape):
            padded = torch.roll(padded, -(size // 2), axis)
        out.append(torch.fft.fftn(padded))
    fft_k1, fft_k2 = out
    return fft_k1, fft_k2, torch.conj(fft_k1) * fft_k1, torch.conj(fft_k2) * fft_k2


def prox_tv(Z: torch.Tensor, F1: torch.Tensor, F2: torch.Tensor) -> torch.Tensor:
    r"""The release's k-update: H = real(ifft2[(fft2(Z) + conj(k1) fft2(F1) + conj(k2) fft2(F2))
    / (1 + |k1|^2 + |k2|^2)]), full complex FFTs. The release feeds it Z = Y - X (the paper: x)."""
    fft_k1, fft_k2, fft_k1sq, fft_k2sq = otfs(*Z.shape[-2:], Z.device, Z.dtype)
    H = torch.fft.fft2(Z) + torch.conj(fft_k1) * torch.fft.fft2(F1) + torch.conj(fft_k2) * torch.fft.fft2(F2)
    H = H / (1 + fft_k1sq + fft_k2sq)
    return torch.real(torch.fft.ifft2(H))


def em_onestep(
    f_pre: torch.Tensor,
    I: torch.Tensor,
    V: torch.Tensor,
    F12: torch.Tensor,
    tau_a: torch.Tensor,
    tau_b: torch.Tensor,
    LAMBDA: float = 0.5,
    RHO: float = 1e-3,
) -> tuple[torch.Tensor, ...]:
    r"""The release's EM_onestep, unchecked. f_pre, I, V: (B, 1, H, W); F12 = (F1, F2) stacked,
    (B, 2, H, W); tau_a, tau_b: (B,). The release's C, D, H of the previous step are not inputs
    (it overwrites them before use). Returns (F, X, C, D, H, F12, tau_a, tau_b).

        Y = I - V,  X = f_pre - V
        D = sqrt(2/tau_b / (X^2 + 1e-6)),  C = sqrt(2/tau_a / (Y - X + 1e-6)^2),  D <- min(D, 2C)
        tau_b <- mean(1/(D + 1e-10) + tau_b/2),  tau_a <- mean(1/(C + 1e-10) + tau_a/2)
        H = prox_tv(Y - X, F1, F2)
        F1 = RHO/(2 LAMBDA + RHO) a1,  a1[r, c] = H[r, c] - H[r, c+1],  a1[r, W-1] = H[r, W-1]
        F2 = RHO/(2 LAMBDA + RHO) a2,  a2[r, c] = H[r, c] - H[r+1, c],  a2[H-1, c] = H[H-1, c]
        X = (2 C Y + RHO (Y - H)) / (2 C + 2 D + RHO),   F = I - X
    """
    tau_a = tau_a.view(-1, 1, 1, 1)
    tau_b = tau_b.view(-1, 1, 1, 1)
    Y = I - V
    X = f_pre - V
    # e-step
    D = torch.sqrt(2 / tau_b / (X**2 + 1e-6))
    C = torch.sqrt(2 / tau_a / ((Y - X + 1e-6) ** 2))
    D = torch.minimum(D, 2 * C)  # the release: D[D > 2 * C] = 2 * C[D > 2 * C]
    tau_b = (1.0 / (D + 1e-10) + tau_b / 2).mean(dim=(1, 2, 3))
    tau_a = (1.0 / (C + 1e-10) + tau_a / 2).mean(dim=(1, 2, 3))
    # m-step (one pass)
    H = prox_tv(Y - X, F12[:, 0:1], F12[:, 1:2])
    a = torch.zeros_like(F12)
    a[:, 0:1, :, :-1] = H[..., :-1] - H[..., 1:]
    a[:, 0:1, :, -1] = H[..., -1]
    a[:, 1:2, :-1, :] = H[..., :-1, :] - H[..., 1:, :]
    a[:, 1:2, -1, :] = H[..., -1, :]
    F12 = (RHO / (2 * LAMBDA + RHO)) * a
    X = (2 * C * Y + RHO * (Y - H)) / (2 * C + 2 * D + RHO)
    F = I - X
    return F, X, C, D, H, F12, tau_a, tau_b


def released_rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    r"""The release's luma/chroma of the network's x0 estimate, as EM sees it (section 7):

        [Y', Cb', Cr'] = (M [R, G, B] + [16, 128, 128]) / 255

    with M the BT.601 studio-range matrix (YCBCR_FROM_RGB) applied to RGB in [-1, 1] as is (NOT
    rescaled to [0, 1] first), in float32 as the release (skimage on a float32 array, then / 255).
    (B, 3, H, W) -> (B, 3, H, W) float32, on the input's device.
    """
    rgb = rgb.float()
    matrix = YCBCR_FROM_RGB.to(device=rgb.device, dtype=torch.float32)
    offset = YCBCR_OFFSET.to(device=rgb.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (torch.einsum("ij,bjhw->bihw", matrix, rgb) + offset) / 255


def released_ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    r"""Inverse of `released_rgb_to_ycbcr` as the release does it:

        RGB = M^-1 (255 [Y', Cb', Cr'] - [16, 128, 128])

    (the product by 255 in the input's precision, then float64 for the offsets and M^-1, as
    skimage.color.ycbcr2rgb on a float64 array), returned as float32. (B, 3, H, W) -> (B, 3, H, W).
    """
    scaled = (ycbcr * 255).double()
    inverse = torch.linalg.inv(YCBCR_FROM_RGB).to(scaled.device)
    offset = YCBCR_OFFSET.to(scaled.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", inverse, scaled - offset).float()

r"""Periodic finite differences and their Fourier diagonalisation (docs/method.md section 4).

grad = (Dx, Dy) are forward differences with a PERIODIC boundary:

    (Dx x)[r, c] = x[r, c+1] - x[r, c],      (Dy x)[r, c] = x[r+1, c] - x[r, c]      (indices mod H, W)

so each is a circular convolution with a two-tap kernel, and its 2-D transfer function (the DFT of
the kernel placed at the origin of an H x W array) is

    Dx_hat[p, q] = exp(2 pi i q / W) - 1,      Dy_hat[p, q] = exp(2 pi i p / H) - 1.

Hence I + grad^T grad is diagonal in Fourier space, with the real symbol 1 + |Dx_hat|^2 + |Dy_hat|^2,
and the k-update of HQS is one rfft2 / irfft2 pair. Real images have Hermitian spectra, so only the
half-spectrum of rfft2 (W // 2 + 1 columns) is kept. Symbols are computed once per
(H, W, device, dtype) and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch


def grad(x: torch.Tensor) -> torch.Tensor:
    r"""Periodic forward differences: (B, 1, H, W) -> (B, 2, H, W), channel 0 horizontal, 1 vertical.

    (grad x)_0[r, c] = x[r, c+1] - x[r, c],   (grad x)_1[r, c] = x[r+1, c] - x[r, c]   (periodic)
    """
    if torch.is_grad_enabled() and x.requires_grad:  # autograd-friendly path
        return torch.cat([x.roll(-1, dims=-1) - x, x.roll(-1, dims=-2) - x], dim=1)
    out = x.new_empty(x.shape[0], 2, *x.shape[2:])  # written in place: no temporaries
    dx, dy = out[:, 0:1], out[:, 1:2]
    torch.sub(x[..., 1:], x[..., :-1], out=dx[..., :-1])
    torch.sub(x[..., :1], x[..., -1:], out=dx[..., -1:])
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=dy[..., :-1, :])
    torch.sub(x[..., :1, :], x[..., -1:, :], out=dy[..., -1:, :])
    return out


def grad_adjoint(u: torch.Tensor, add_to: torch.Tensor | None = None) -> torch.Tensor:
    r"""The adjoint grad^T: (B, 2, H, W) -> (B, 1, H, W), so that <grad x, u> = <x, grad^T u>;
    with `add_to` = x, returns x + grad^T u (one pass less).

    (grad^T u)[r, c] = u_0[r, c-1] - u_0[r, c] + u_1[r-1, c] - u_1[r, c]   (periodic)
    """
    ux, uy = u[:, 0:1], u[:, 1:2]
    out = -ux if add_to is None else add_to - ux
    out -= uy
    out[..., 1:] += ux[..., :-1]
    out[..., :1] += ux[..., -1:]
    out[..., 1:, :] += uy[..., :-1, :]
    out[..., :1, :] += uy[..., -1:, :]
    return out


def grad_t_grad(x: torch.Tensor) -> torch.Tensor:
    r"""grad^T grad x (the negative periodic 5-point Laplacian), (B, 1, H, W) -> (B, 1, H, W)."""
    return grad_adjoint(grad(x))


@lru_cache(maxsize=32)
def transfer_functions(
    H: int, W: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""(Dx_hat, Dy_hat): rfft2 of the two difference kernels placed at the origin, (H, W // 2 + 1).

    The kernel of Dx has -1 at [0, 0] and +1 at [0, W - 1] (that is, at column -1), so
    Dx_hat[p, q] = exp(2 pi i q / W) - 1; likewise Dy along the rows. Cached per argument set.
    """
    kx = torch.zeros(H, W, device=device, dtype=dtype)
    kx[0, 0], kx[0, -1] = -1.0, 1.0
    ky = torch.zeros(H, W, device=device, dtype=dtype)
    ky[0, 0], ky[-1, 0] = -1.0, 1.0
    return torch.fft.rfft2(kx), torch.fft.rfft2(ky)


@lru_cache(maxsize=32)
def inverse_symbol_eye_plus_gtg(H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    r"""1 / (1 + |Dx_hat|^2 + |Dy_hat|^2), real, (H, W // 2 + 1): the inverse of I + grad^T grad
    in the rfft2 basis. Cached per (H, W, device, dtype)."""
    dx_hat, dy_hat = transfer_functions(H, W, device, dtype)
    return 1.0 / (1.0 + dx_hat.abs().square() + dy_hat.abs().square())


@lru_cache(maxsize=32)
def _complex_inverse_symbol(H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # the same values stored as complex, so that the product with a spectrum needs no conversion
    return inverse_symbol_eye_plus_gtg(H, W, device, dtype).to(torch.promote_types(dtype, torch.complex64))


def solve_eye_plus_gtg(b: torch.Tensor) -> torch.Tensor:
    r"""The exact solution k of (I + grad^T grad) k = b for periodic grad, (B, 1, H, W):

    k = irfft2[ rfft2(b) / (1 + |Dx_hat|^2 + |Dy_hat|^2) ]     (one FFT pair, cached symbol)
    """
    H, W = b.shape[-2:]
    symbol = _complex_inverse_symbol(H, W, b.device, b.dtype)
    b_hat = torch.fft.rfft2(b)
    b_hat.mul_(symbol)
    return torch.fft.irfft2(b_hat, s=(H, W))


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner products <a, b> of (B, ...) tensors, shaped (B, 1, 1, 1)."""
    return (a * b).flatten(1).sum(dim=1).view(-1, 1, 1, 1)


def conjugate_gradients(
    apply_a: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    preconditioner: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    check_every: int = 1,
) -> torch.Tensor:
    r"""x with A x = b for a symmetric positive definite A (one system per image of the batch), by
    preconditioned conjugate gradients from x = 0, M = diag(preconditioner) ~ A^{-1}:

        r = b - A x,  z = M r,  alpha = <r, z> / <p, A p>,  x += alpha p,  r -= alpha A p,
        beta = <r', z'> / <r, z>,  p = z' + beta p

    Stops when every image has ||r|| <= tol ||b||, tested every `check_every` iterations (one host
    sync each: for notebooks, tests and exact references, not for a sampler's loop). An image that
    has converged takes steps of 0 while the others go on."""
    b_norm = batch_dot(b, b).sqrt()
    x = torch.zeros_like(b)
    r = b.clone()
    z = r * preconditioner
    p = z.clone()
    rz = batch_dot(r, z)
    for iteration in range(max_iter):
        if iteration % check_every == 0 and bool((batch_dot(r, r).sqrt() <= tol * b_norm).all()):
            break
        ap = apply_a(p)
        p_ap = batch_dot(p, ap)
        alpha = torch.where(p_ap > 0, rz / p_ap, torch.zeros_like(rz))
        x += alpha * p
        r -= alpha * ap
        z = r * preconditioner
        rz_new = batch_dot(r, z)
        p = z + torch.where(rz > 0, rz_new / rz, torch.zeros_like(rz)) * p
        rz = rz_new
    return x

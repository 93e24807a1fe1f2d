"""The release's EM function (MMIF-DDFM, guided_diffusion/EM_onestep.py: psf2otf, EM_Initial,
EM_onestep), transcribed statement by statement, independently of ddfm_edu.released.

The tests use it as the reference the released variant must equal (tests/test_released.py); the
EM benchmark times it as the release-style baseline (benchmarks/em_step.py imports it from here).
"""

from __future__ import annotations

import torch


def release_psf2otf(kernel: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """psf2otf of the release: pad to H x W, roll the centre to [0, 0], fftn, and drop the
    imaginary part when it is below the rounding error of the FFT (its host-side check)."""
    psf_size = torch.tensor(kernel.shape)
    psf = torch.nn.functional.pad(kernel, (0, W - kernel.shape[1], 0, H - kernel.shape[0]))
    for axis in range(2):
        psf = torch.roll(psf, -int(psf_size[axis] / 2), axis)
    otf = torch.fft.fftn(psf)
    n_ops = sum(float(s * torch.log2(s.float()) * psf_size.prod() / s) for s in psf_size)
    if torch.max(torch.abs(torch.imag(otf))) / torch.max(torch.abs(otf)) <= n_ops * 1.19e-7:
        otf = torch.real(otf)
    return otf


def release_initial(image: torch.Tensor) -> dict:
    """EM_Initial of the release (dictionary, int kernels, python-int tau)."""
    H, W = image.shape[-2:]
    hp = {}
    for name, kernel in (("fft_k1", [[1, -1]]), ("fft_k2", [[1], [-1]])):
        hp[name] = release_psf2otf(torch.tensor(kernel, device=image.device), H, W)
    hp["fft_k1sq"] = torch.conj(hp["fft_k1"]) * hp["fft_k1"]
    hp["fft_k2sq"] = torch.conj(hp["fft_k2"]) * hp["fft_k2"]
    hp.update(F1=torch.zeros_like(image), F2=torch.zeros_like(image), tau_a=1, tau_b=1)
    return hp


def release_em_onestep(f_pre, I, V, hp, lamb, rho):  # noqa: E741
    """EM_onestep of the release (B = 1): returns (I - X, hp with C, D, H, F1, F2, tau_a, tau_b)."""
    Y = I - V
    X = f_pre - V
    D = torch.sqrt(2 / hp["tau_b"] / (X**2 + 1e-6))
    C = torch.sqrt(2 / hp["tau_a"] / ((Y - X + 1e-6) ** 2))
    D[D > 2 * C] = 2 * C[D > 2 * C]
    tau_b = torch.mean(1.0 / (D + 1e-10) + hp["tau_b"] / 2)
    tau_a = torch.mean(1.0 / (C + 1e-10) + hp["tau_a"] / 2)
    Z = Y - X
    Hf = torch.fft.fft2(Z) + torch.conj(hp["fft_k1"]) * torch.fft.fft2(hp["F1"])
    Hf = Hf + torch.conj(hp["fft_k2"]) * torch.fft.fft2(hp["F2"])
    Hf = Hf / (1 + hp["fft_k1sq"] + hp["fft_k2sq"])
    H = torch.real(torch.fft.ifft2(Hf))
    a1 = torch.zeros_like(H)
    a1[:, :, :, :-1] = H[:, :, :, :-1] - H[:, :, :, 1:]
    a1[:, :, :, -1] = H[:, :, :, -1]
    a2 = torch.zeros_like(H)
    a2[:, :, :-1, :] = H[:, :, :-1, :] - H[:, :, 1:, :]
    a2[:, :, -1, :] = H[:, :, -1, :]
    F1 = (rho / (2 * lamb + rho)) * a1
    F2 = (rho / (2 * lamb + rho)) * a2
    X = (2 * C * Y + rho * (Y - H)) / (2 * C + 2 * D + rho)
    hp = dict(hp, C=C, D=D, H=H, F1=F1, F2=F2, tau_a=tau_a, tau_b=tau_b)
    return I - X, hp

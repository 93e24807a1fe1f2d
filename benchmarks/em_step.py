"""Time of one EM step against one rfft2 + irfft2 pair of the same size, and against a baseline
written in the release's style.

Columns, per image size and device (one image, float32, times are medians of repeated calls,
the contenders interleaved call by call):
  fft pair      one torch.fft.rfft2 + irfft2 of the image (the cost unit)
  paper         ddfm_edu.em.em_step(variant="paper", check=False), the sampler's per-step call
  pairs         paper / fft pair (target: at most 2.5 at 576x768)
  released      em_step(variant="released", check=False): the release's operations (full complex
                FFTs), with its transfer functions cached
  release-style the release's EM as it runs per call, transfer functions recomputed every call
                (psf2otf with its host-side checks), full complex fft2 of x, F1 and F2, the
                release's operation order (boolean-mask cap)
  speed-up      release-style / paper
  checks        em_step(variant="paper") with its default checks, given a carried state (what a
                student's loop calls), / paper (target: at most 1.15)

Run: python benchmarks/em_step.py [--reps N] [--sizes 256x256,576x768,1024x1024] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ddfm_edu.em import em_step


def release_style_em_step(f_pre, I, V, hp, lamb=0.5, rho=1e-3):  # noqa: E741
    """The release's EM_Initial transfer functions + EM_onestep, as it computes them (baseline)."""
    H_, W_ = I.shape[-2:]
    otf = []
    for kernel in (torch.tensor([[1, -1]], device=I.device), torch.tensor([[1], [-1]], device=I.device)):
        psf_size = torch.tensor(kernel.shape)
        psf = torch.nn.functional.pad(kernel, (0, W_ - kernel.shape[1], 0, H_ - kernel.shape[0]))
        for axis in range(2):
            psf = torch.roll(psf, -int(psf_size[axis] / 2), axis)
        o = torch.fft.fftn(psf)
        n_ops = sum(float(s * torch.log2(s.float()) * psf_size.prod() / s) for s in psf_size)
        if torch.max(torch.abs(torch.imag(o))) / torch.max(torch.abs(o)) <= n_ops * 1.19e-7:
            o = torch.real(o)
        otf.append(o)
    fft_k1, fft_k2 = otf
    fft_k1sq, fft_k2sq = torch.conj(fft_k1) * fft_k1, torch.conj(fft_k2) * fft_k2
    tau_a, tau_b, F1, F2 = hp["tau_a"], hp["tau_b"], hp["F1"], hp["F2"]
    Y = I - V
    X = f_pre - V
    D = torch.sqrt(2 / tau_b / (X**2 + 1e-6))
    C = torch.sqrt(2 / tau_a / ((Y - X + 1e-6) ** 2))
    D[D > 2 * C] = 2 * C[D > 2 * C]
    tau_b = torch.mean(1.0 / (D + 1e-10) + tau_b / 2)
    tau_a = torch.mean(1.0 / (C + 1e-10) + tau_a / 2)
    Z = Y - X
    Hf = torch.fft.fft2(Z) + torch.conj(fft_k1) * torch.fft.fft2(F1) + torch.conj(fft_k2) * torch.fft.fft2(F2)
    H = torch.real(torch.fft.ifft2(Hf / (1 + fft_k1sq + fft_k2sq)))
    a1 = torch.zeros_like(H)
    a1[:, :, :, :-1] = H[:, :, :, :-1] - H[:, :, :, 1:]
    a1[:, :, :, -1] = H[:, :, :, -1]
    a2 = torch.zeros_like(H)
    a2[:, :, :-1, :] = H[:, :, :-1, :] - H[:, :, 1:, :]
    a2[:, :, -1, :] = H[:, :, -1, :]
    F1 = (rho / (2 * lamb + rho)) * a1
    F2 = (rho / (2 * lamb + rho)) * a2
    X = (2 * C * Y + rho * (Y - H)) / (2 * C + 2 * D + rho)
    return I - X, {"tau_a": tau_a, "tau_b": tau_b, "F1": F1, "F2": F2}


def timed(fns: dict, device: torch.device, reps: int) -> dict[str, float]:
    """Median wall time in seconds of each fn() (after two warm-up calls). The contenders are
    timed in turn, one call each per round, so that a change in the machine's load (other
    processes on a shared machine) affects them alike and their ratios stay meaningful."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(H: int, W: int, device: torch.device, reps: int) -> dict[str, float]:
    """Median seconds of each contender on one random H x W image on `device`."""
    g = torch.Generator().manual_seed(0)
    f0, i, v = (torch.rand(1, 1, H, W, generator=g).mul(2).sub(1).to(device) for _ in range(3))
    _, state = em_step(f0, i, v)  # a realistic (non-initial) state
    _, state_released = em_step(f0, i, v, variant="released")
    hp = {"tau_a": 1, "tau_b": 1, "F1": torch.zeros_like(i), "F2": torch.zeros_like(i)}
    contenders = {
        "fft": lambda: torch.fft.irfft2(torch.fft.rfft2(f0), s=(H, W)),
        "paper": lambda: em_step(f0, i, v, state, check=False),
        "checked": lambda: em_step(f0, i, v, state),
        "released": lambda: em_step(f0, i, v, state_released, variant="released", check=False),
        "base": lambda: release_style_em_step(f0, i, v, hp),
    }
    return timed(contenders, device, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--sizes", default="256x256,576x768,1024x1024")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, median of {args.reps}")
    header = (
        f"{'size':>10} {'device':>6} {'fft pair':>9} {'paper':>9} {'pairs':>6} "
        f"{'released':>9} {'rel-style':>9} {'speed-up':>8} {'checks':>7}"
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        for H, W in sizes:
            t = bench(H, W, device, args.reps)
            print(
                f"{f'{H}x{W}':>10} {device.type:>6} {t['fft'] * 1e3:7.2f}ms {t['paper'] * 1e3:7.2f}ms "
                f"{t['paper'] / t['fft']:6.2f} {t['released'] * 1e3:7.2f}ms {t['base'] * 1e3:7.2f}ms "
                f"{t['base'] / t['paper']:7.1f}x {t['checked'] / t['paper']:7.3f}"
            )
    if torch.cuda.is_available():
        print(f"CUDA device: {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()

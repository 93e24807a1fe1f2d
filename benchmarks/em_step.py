"""Time of one EM step against one rfft2 + irfft2 pair of the same size, and against a baseline
written in the release's style.

Columns, per image size and device (one image, float32, times are medians of repeated calls,
the contenders interleaved call by call):
  fft pair      one torch.fft.rfft2 + irfft2 of the image (the cost unit)
  paper         ddfm_edu.em.em_step(variant="paper", check=False), the sampler's per-step call
  pairs         paper / fft pair (target: at most 2.5 at 576x768)
  released      em_step(variant="released", check=False): the release's operations (full complex
                FFTs), with its transfer functions cached
  release-style the release's EM as it runs per call (tests/release_transcription.py: EM_Initial
                then EM_onestep), transfer functions recomputed every call (psf2otf with its
                host-side checks), full complex fft2 of x, F1 and F2, the release's operation
                order (boolean-mask cap)
  speed-up      release-style / paper
  checks        em_step(variant="paper") with its default checks, given a carried state (what a
                student's loop calls), / paper (target: at most 1.15)

Run: python benchmarks/em_step.py [--reps N] [--sizes 256x256,576x768,1024x1024] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from ddfm_edu.em import em_step

# The release's EM, transcribed once, beside the tests that check the released variant against it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from release_transcription import release_em_onestep, release_initial  # noqa: E402


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
    contenders = {
        "fft": lambda: torch.fft.irfft2(torch.fft.rfft2(f0), s=(H, W)),
        "paper": lambda: em_step(f0, i, v, state, check=False),
        "checked": lambda: em_step(f0, i, v, state),
        "released": lambda: em_step(f0, i, v, state_released, variant="released", check=False),
        "base": lambda: release_em_onestep(f0, i, v, release_initial(i), lamb=0.5, rho=1e-3),
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

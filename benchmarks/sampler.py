"""Time per DDFM step, split into prior, EM and the rest, and the memory of `record`.

    python benchmarks/sampler.py [--sizes 128 256] [--steps 20] [--device cpu|cuda|all] [--threads N]

For each prior (Gaussian; the embedded prior when its weights are present), device and size:
a full `ddfm` run gives the time per step; the prior's predict_x0 and em_step alone, called as often
and on tensors of the same size, give their shares; the rest (the update, colour, bookkeeping) is the
difference. Then the bytes per recorded step of the trace: every step in float32 (the baseline),
every 10th step, float16, and both. On a busy shared machine, --threads 1 gives steadier figures
(two threads contending with other work can be many times slower than one).
"""

from __future__ import annotations

import argparse
import time

import torch

from ddfm_edu.diffusion import respace
from ddfm_edu.em import em_step
from ddfm_edu.priors import CheckpointError, Prior, load_prior
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.sample import ddfm


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, rounds: int = 3) -> float:
    """Seconds per call of fn(): one warm-up call, then the fastest of `rounds` rounds of `repeats`
    calls (the minimum is the least disturbed by other work on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    i, v = (torch.rand(2, 1, 1, size, size, generator=g) * 2 - 1).unbind(0)
    return i.to(device), v.to(device)


def split_step_time(prior: Prior, size: int, steps: int, device: torch.device) -> dict[str, float]:
    """Seconds per step: total, prior, EM and the rest."""
    i, v = inputs(size, device)
    total = timed(lambda: ddfm(i, v, prior, steps=steps, seed=0, progress=False), device, 1) / steps
    schedule = respace(prior.alpha_bar, steps)
    x_t = torch.randn(1, prior.channels, size, size, device=device)
    t = torch.full((1,), schedule.timesteps[steps // 2], device=device)
    with torch.no_grad():
        prior_time = timed(lambda: prior.predict_x0(x_t, t), device, steps)
        f0 = prior.predict_x0(x_t, t)[:, :1]
        _, state = em_step(f0, i, v)
        em_time = timed(lambda: em_step(f0, i, v, state, check=False), device, steps)
    return {"total": total, "prior": prior_time, "em": em_time, "rest": total - prior_time - em_time}


def record_memory(prior: Prior, size: int, steps: int, device: torch.device) -> dict[str, tuple[int, int]]:
    """(bytes, kept steps) of the trace of one run for several record settings."""
    i, v = inputs(size, device)
    out = {}
    for label, record, dtype in (
        ("every step, float32", True, None),
        ("every 10th step, float32", 10, None),
        ("every step, float16", True, torch.float16),
        ("every 10th step, float16", 10, torch.float16),
    ):
        trace = ddfm(
            i, v, prior, steps=steps, seed=0, record=record, record_dtype=dtype, progress=False
        ).trace
        out[label] = (trace.nbytes(), len(trace))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")]
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        devices = [torch.device("cuda")] + ([torch.device("cpu")] if args.device == "all" else [])
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")

    named = [("gaussian", lambda device: GaussianPrior().to(device))]
    try:
        load_prior("embedded", device="cpu")
        named.append(("embedded", lambda device: load_prior("embedded", device=device)))
    except CheckpointError as err:
        print(f"(embedded prior skipped: {err})")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.steps} steps per run")
    print(f"{'prior':10s} {'device':6s} {'size':>5s} {'ms/step':>9s} {'prior':>8s} {'EM':>8s} {'rest':>8s}"
          "   (shares of the step)")  # fmt: skip
    for name, make in named:
        for device in devices:
            prior = make(device)
            for size in args.sizes:
                t = split_step_time(prior, size, args.steps, device)
                shares = "".join(f" {100 * t[k] / t['total']:7.1f}%" for k in ("prior", "em", "rest"))
                print(f"{name:10s} {device.type:6s} {size:5d} {1e3 * t['total']:9.2f}{shares}")

    size = args.sizes[-1]
    print(f"\nmemory of record (gaussian prior, {size}x{size}, batch 1, a run of {args.steps} steps):")
    memory = record_memory(GaussianPrior().to(devices[0]), size, args.steps, devices[0])
    baseline = memory["every step, float32"][0]
    for label, (nbytes, kept) in memory.items():
        print(
            f"  {label:26s} {kept:3d} kept, {nbytes / kept / 2**20:7.3f} MiB per kept step, "
            f"{nbytes / 2**20:8.3f} MiB in all (x{nbytes / baseline:.3f})"
        )
    print(
        f"  a 3-channel (RGB) prior adds 2 channels of x_t: {8 * size * size / 2**20:.3f} MiB per kept step"
    )


if __name__ == "__main__":
    main()

"""One prepared check for a machine with a CUDA GPU (well under 5 minutes there).

    python benchmarks/gpu_check.py              # on the GPU machine
    python benchmarks/gpu_check.py --cpu-smoke  # small and quick, CPU only: checks that the script runs

1. Agreement of the CUDA path with the CPU path: ddfm with the Gaussian prior (both EM variants),
   em_fuse (both variants), a small ADMUNet forward (random weights) and ddfm with it.
2. Host-device synchronisations inside the sampler's steps (torch.cuda.set_sync_debug_mode), with
   the lines that cause them: the loop is meant to have none.
3. Time per DDFM step with the published ADM 256x256 configuration and RANDOM weights (no download)
   at 256 x 256, batch 1: the network alone, ddfm in float32 and with the network's body in float16,
   and a loop with the release's structure (float32, batch 1, the YCbCr conversion on the CPU at every
   step, schedule arrays copied to the device at every step) as the baseline; peak GPU memory.

Prints a table and writes it to $OUT/gpu_check.txt when the environment variable OUT is set.
Needs torch, numpy, tqdm, pillow (the package's imports); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ddfm_edu.diffusion import respace
from ddfm_edu.em import EMConfig, em_fuse
from ddfm_edu.priors.adm import ADM256_UNCOND_CONFIG, ADMPrior, ADMUNet
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.released import YCBCR_FROM_RGB, YCBCR_OFFSET, em_onestep
from ddfm_edu.sample import ddfm, ddfm_step

# A small ADM configuration with every feature of the published one (stride 4).
SMALL_ADM = dict(
    image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2,2", learn_sigma=True,
    attention_resolutions="16,8", num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True,
)  # fmt: skip

LINES: list[str] = []


def log(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights of sensible size everywhere (also where the release initialises zeros)."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype)
            if p.ndim > 1:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)
    return module


def pair(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    i = 1.6 * torch.exp(-(yy**2 + xx**2) / 0.2) - 0.8 + 0.05 * torch.randn(batch, 1, size, size, generator=g)
    v = 0.5 * torch.sin(6 * xx) * torch.cos(4 * yy) + 0.2 * torch.randn(batch, 1, size, size, generator=g)
    return i.clamp(-1, 1), v.clamp(-1, 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().cpu().double() - b.detach().cpu().double()).abs().max())


def check(label: str, diff: float, tol: float, failures: list[str]) -> None:
    ok = diff <= tol
    log(f"  {label:58s} {diff:10.2e}  (tol {tol:.0e})  {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append(label)


def compare_ddfm(
    label: str, pair_cpu: tuple[torch.Tensor, torch.Tensor], cpu_prior, dev_prior, steps: int,
    seed: int, tol: float, failures: list[str],
) -> None:
    """ddfm on the CPU against ddfm on the prior's device, for both EM variants (max |difference|)."""
    i, v = pair_cpu
    for variant in ("paper", "released"):
        a = ddfm(i, v, cpu_prior, steps=steps, em_variant=variant, seed=seed, progress=False).fused
        b = ddfm(
            i.to(dev_prior.device), v.to(dev_prior.device), dev_prior,
            steps=steps, em_variant=variant, seed=seed, progress=False,
        ).fused  # fmt: skip
        check(f"{label}, em {variant}", max_diff(a, b), tol, failures)


def agreement(device: torch.device, size: int, steps: int, failures: list[str]) -> None:
    log(f"1. {device.type} against cpu (max |difference|)")
    i, v = pair(2, size)
    cpu_prior, dev_prior = GaussianPrior(), GaussianPrior().to(device)
    label = f"ddfm, Gaussian prior, {size}x{size}, {steps} steps"
    compare_ddfm(label, (i, v), cpu_prior, dev_prior, steps, seed=1, tol=1e-3, failures=failures)
    for variant in ("paper", "released"):
        a = em_fuse(i, v, iters=10, variant=variant)[0]
        b = em_fuse(i.to(device), v.to(device), iters=10, variant=variant)[0]
        check(f"em_fuse, 10 iterations, {variant}", max_diff(a, b), 1e-4, failures)

    unet_cpu = randomize(ADMUNet(**SMALL_ADM)).eval()
    unet_dev = copy.deepcopy(unet_cpu).to(device)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([10, 900])
    with torch.no_grad():
        reference = unet_cpu(x, t)
        scale = float(reference.abs().max())
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            out = unet_dev(x.to(device), t.to(device))
            tol = 1e-2 if tf32 else 1e-4
            label = f"small ADMUNet forward, relative, TF32 {'on' if tf32 else 'off'}"
            check(label, max_diff(out, reference) / scale, tol, failures)
    torch.backends.cudnn.allow_tf32 = True  # torch's defaults
    torch.backends.cuda.matmul.allow_tf32 = False
    adm_cpu, adm_dev = ADMPrior(unet_cpu), ADMPrior(unet_dev).to(device)
    i32, v32 = pair(1, 32)
    # A random network amplifies rounding differences step after step: a loose bound.
    label = f"ddfm, small random ADM prior, 32x32, {steps} steps"
    compare_ddfm(label, (i32, v32), adm_cpu, adm_dev, steps, seed=3, tol=5e-2, failures=failures)


def sync_audit(device: torch.device, failures: list[str]) -> None:
    log("2. host-device synchronisations in 3 sampler steps (after one warm-up step)")
    if device.type != "cuda":
        log("  skipped: needs CUDA")
        return
    unet = randomize(ADMUNet(**SMALL_ADM)).eval().to(device)
    cases = [
        ("Gaussian prior", GaussianPrior().to(device), 1),
        ("small ADM prior (RGB)", ADMPrior(unet).to(device), 3),
    ]
    i, v = (x.to(device) for x in pair(1, 32))
    for name, prior, channels in cases:
        schedule = respace(prior.alpha_bar, 10)
        for variant in ("paper", "released"):
            x = torch.randn(1, channels, 32, 32, device=device)
            with torch.no_grad():
                em = EMConfig(variant=variant)
                step = ddfm_step(x, i, v, prior, schedule, 9, em=em)
                torch.cuda.synchronize()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    torch.cuda.set_sync_debug_mode("warn")
                    try:
                        for k in (8, 7, 6):
                            step = ddfm_step(step.x_prev, i, v, prior, schedule, k, step.state, em=em)
                    finally:
                        torch.cuda.set_sync_debug_mode("default")
            where = Counter(
                f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)
            )
            total = sum(where.values())
            log(
                f"  {name:24s} em {variant:8s}: {total} syncs in 3 steps"
                + (f"  at {dict(where)}" if total else "")
            )
            if total:
                failures.append(f"syncs: {name}, em {variant}")


def release_structured_loop(
    prior: ADMPrior, x_T: torch.Tensor, I: torch.Tensor, V: torch.Tensor, steps: int
) -> torch.Tensor:
    """The structure of the release's DDIM loop (p_sample_loop / p_sample), for timing: float64
    numpy schedule arrays copied to the device and indexed at every use, a `time == ...` test and a
    `t != 0` test on device tensors (host syncs), the learned-range variance computed and unused,
    the YCbCr conversion on the CPU (float32 forward, float64 inverse), the release's EM on the
    device, noise drawn though eta = 0. I = visible, V = infrared, as the release passes them."""
    device = x_T.device
    schedule = respace(prior.alpha_bar, steps)
    ac = np.array(schedule.alpha_bar)
    ac_prev = np.append(1.0, ac[:-1])
    betas = 1 - ac / ac_prev
    posterior_var = betas * (1 - ac_prev) / (1 - ac)
    min_log = np.log(np.append(posterior_var[1], posterior_var[1:]))
    max_log = np.log(betas)
    timestep_map = list(schedule.timesteps)
    matrix = YCBCR_FROM_RGB.numpy().astype(np.float32)
    inverse = np.linalg.inv(YCBCR_FROM_RGB.numpy())
    offset = YCBCR_OFFSET.numpy()

    def extract(array: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(array).to(device)[t].float().view(-1, 1, 1, 1).expand_as(like)

    img = x_T
    for idx in reversed(range(steps)):
        t = torch.tensor([idx] * img.shape[0], device=device)
        if t == torch.tensor([steps - 1], device=device):
            F12 = torch.zeros(img.shape[0], 2, *img.shape[-2:], device=device)
            tau_a = tau_b = torch.ones(img.shape[0], device=device)
        mapped = torch.tensor(timestep_map, device=device, dtype=t.dtype)[t]
        out = prior.unet(img, mapped)
        eps, var_values = out[:, :3], out[:, 3:]
        x0 = (extract(np.sqrt(1 / ac), t, img) * img - extract(np.sqrt(1 / ac - 1), t, img) * eps).clamp(
            -1, 1
        )
        frac = (var_values + 1) / 2
        torch.exp(frac * extract(max_log, t, img) + (1 - frac) * extract(min_log, t, img))
        rgb = x0.cpu().permute(0, 2, 3, 1).numpy()
        ycbcr = (
            torch.from_numpy(rgb @ matrix.T + offset.astype(np.float32)).permute(0, 3, 1, 2).to(device) / 255
        )
        F, _, _, _, _, F12, tau_a, tau_b = em_onestep(ycbcr[:, :1], I, V, F12, tau_a, tau_b, 0.5, 1e-3)
        ycbcr[:, 0] = F[:, 0]
        scaled = (ycbcr * 255).cpu().permute(0, 2, 3, 1).double().numpy()
        x0 = torch.from_numpy((scaled - offset) @ inverse.T).float().permute(0, 3, 1, 2).to(device)
        eps = (extract(np.sqrt(1 / ac), t, img) * img - x0) / extract(np.sqrt(1 / ac - 1), t, img)
        sample = x0 * extract(np.sqrt(ac_prev), t, img) + extract(np.sqrt(1 - ac_prev), t, img) * eps
        noise = torch.randn_like(img)
        if t != 0:
            sample += 0.0 * noise
        img = sample
    return img


def per_step(fn, device: torch.device, steps: int) -> tuple[float, float]:
    """(ms per step, peak MiB) of fn() running `steps` steps, after a warm-up call."""
    fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    elapsed = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return 1e3 * elapsed, peak


def sampler_run(i, v, prior, steps: int, variant: str, x_T: torch.Tensor):
    """A call running ddfm with these settings (for `per_step`)."""
    return lambda: ddfm(i, v, prior, steps=steps, em_variant=variant, x_T=x_T, progress=False)


def timings(device: torch.device, config: dict, size: int, steps: int, failures: list[str]) -> None:
    name = "published ADM 256 config" if config is ADM256_UNCOND_CONFIG else "small ADM config"
    log(f"3. time per step, {name}, random weights, {size}x{size}, batch 1, {steps} steps, {device.type}")
    with torch.device(device):
        unet = ADMUNet(**config)
    unet = randomize(unet).eval()
    n_params = sum(p.numel() for p in unet.parameters())
    log(f"   {n_params / 1e6:.1f} M parameters; TF32 convolutions {torch.backends.cudnn.allow_tf32}")
    prior = ADMPrior(unet).to(device)
    i, v = (x.to(device) for x in pair(1, size))
    x_T = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3407)).to(device)
    t = torch.full((1,), 500, device=device)
    rows = []
    with torch.no_grad():
        rows.append(
            ("network forward alone, float32", *per_step(lambda: prior.predict_x0(x_T, t), device, 1))
        )
        release = per_step(lambda: release_structured_loop(prior, x_T, v, i, steps), device, steps)
        rows.append(("release's loop structure, float32 (baseline)", *release))
        for variant in ("released", "paper"):
            run = sampler_run(i, v, prior, steps, variant, x_T)
            rows.append((f"ddfm float32, em {variant}", *per_step(run, device, steps)))
        ours = ddfm(i, v, prior, steps=steps, em_variant="released", x_T=x_T, progress=False).fused
        theirs = release_structured_loop(prior, x_T, v, i, steps)
        y = (theirs * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(
            1, keepdim=True
        )
        y = 2 * (y - y.min()) / (y.max() - y.min()) - 1
        check(
            "ddfm em released == release's loop structure (min-max luma)", max_diff(ours, y), 2e-3, failures
        )

        prior_half = ADMPrior(unet, half=True).to(device)  # converts the same network's body in place
        forward = per_step(lambda: prior_half.predict_x0(x_T, t), device, 1)
        rows.append(("network forward alone, float16 body", *forward))
        for variant in ("released", "paper"):
            run = sampler_run(i, v, prior_half, steps, variant, x_T)
            rows.append((f"ddfm float16 body, em {variant}", *per_step(run, device, steps)))
        finite = bool(
            torch.isfinite(ddfm(i, v, prior_half, steps=steps, x_T=x_T, progress=False).fused).all()
        )
        log(f"   float16 result finite: {finite}")
    baseline = release[0]
    log(f"   {'':52s} {'ms/step':>9s} {'vs baseline':>12s} {'peak MiB':>9s}")
    for label, ms, peak in rows:
        log(f"   {label:52s} {ms:9.2f} {baseline / ms:11.2f}x {peak:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="small sizes on the CPU, to test the script")
    args = parser.parse_args()
    if args.cpu_smoke:
        device, size, steps, config = torch.device("cpu"), 32, 2, SMALL_ADM
        torch.set_num_threads(1)  # tiny tensors: one thread is faster and steadier
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU: run with --cpu-smoke for the small CPU version")
        device, size, steps, config = torch.device("cuda"), 256, 20, ADM256_UNCOND_CONFIG
    about = "[cpu smoke run, 1 thread]"
    if device.type == "cuda":
        about = f"({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    log(f"gpu_check: torch {torch.__version__}, device {device.type} {about}")
    failures: list[str] = []
    start = time.perf_counter()
    try:
        agreement(device, 32 if args.cpu_smoke else 64, 3 if args.cpu_smoke else 20, failures)
        sync_audit(device, failures)
        timings(device, config, size, steps, failures)
    except Exception:  # keep what was measured, and say what broke
        log(traceback.format_exc())
        failures.append("exception")
    finally:
        log(f"total {time.perf_counter() - start:.1f} s; "
            + ("all checks ok" if not failures else f"FAILED: {', '.join(failures)}"))  # fmt: skip
        if os.environ.get("OUT"):
            path = Path(os.environ["OUT"]) / "gpu_check.txt"
            path.write_text("\n".join(LINES) + "\n")
            print(f"written to {path}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()

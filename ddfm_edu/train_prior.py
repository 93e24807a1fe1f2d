r"""Train the bundled grey prior (ddfm_edu/priors/embedded.pt) on openly licensed scikit-image images.

    python -m ddfm_edu.train_prior [--device cpu|cuda] [--minutes M] [--steps N] [--out PATH] [--seed S]

Objective (EDM, see ddfm_edu.priors.embedded). For a clean crop f_0 and a timestep t of the linear
schedule, y = f_0 + sigma_t z with sigma_t = sqrt(1 / alpha_bar_t - 1) (the VE form of f_t), and

    L = E_{t, f_0, z} [ lambda(sigma_t) || c_skip y + c_out F(c_in y, c_noise) - f_0 ||^2 ],
    lambda(sigma) = 1 / c_out(sigma)^2,

an x0 mean-square error whose minimiser at every t is the posterior mean E[f_0 | f_t] (Tweedie's
estimate, what DDFM asks of its prior); the weight keeps every noise level's loss of order one.
Timesteps: half uniform on 0..999, half uniform on 0..599 (where the estimate carries detail).

Data: random crops (64, 96, 128 px cycled), random rescaling by 0.4..1.2 (antialiased), the eight flips and
right-angle rotations, random contrast in [0.5, 1] and inversion with probability 1/4, of these
images bundled with scikit-image, converted to grey (BT.601 luma) and scaled to [-1, 1]:

    astronaut             NASA, public domain ("no known copyright restrictions")
    brick, grass, gravel  CC0Textures, Creative Commons CC0
    cell                  CC0 (public-domain dedication)
    chelsea, coffee       CC0 by the photographers (Stefan van der Walt, Rachel Michetti)
    clock                 public domain (photographer Stefan van der Walt)
    coins                 Brooklyn Museum, "no known copyright restrictions"
    hubble_deep_field     NASA, public domain
    immunohistochemistry  "no known copyright restrictions"
    microaneurysms        CC0 (Andreas Maier)
    retina                CC0 1.0 Universal
    text                  public domain ("no known copyright restrictions")

(licences as the scikit-image data docstrings state them). `camera`, `rocket` and `phantom` are
RESERVED (package sample data and held-out test images) and never used; images whose docstring
states no licence (moon, page, stereo_motorcycle) are left out too.

Reproducible for a given seed, step count and device (CPU, fixed thread count). Training stops after
`--steps` optimiser steps or `--minutes` of wall time, whichever comes first; a checkpoint (the EMA
weights, fp16) and a json record are written every `--checkpoint-every` steps and at the end.

The shipped weights (priors/embedded.pt, record in priors/embedded.json) are this script's defaults
with `--device cuda --minutes 5.5 --log-every 500 --checkpoint-every 1000`: 7000 steps of 64 crops
in 5.0 minutes on one NVIDIA H100. On a CPU a step of the default configuration costs seconds, so
the default 180-minute cap stops a 2-core CPU run early (it still writes the EMA weights); smaller
runs (`--batch 16 --steps 2000`) fit in well under an hour but give a weaker prior. On a busy CPU,
`--threads 1` can be much faster than two threads that wait on each other.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from ddfm_edu.colour import luma
from ddfm_edu.diffusion import linear_alpha_bar
from ddfm_edu.priors.embedded import (
    WEIGHTS_PATH,
    EmbeddedUNet,
    denoise,
    edm_coefficients,
    save_weights,
)

# The training images and their licences, as the scikit-image data docstrings state them.
TRAINING_LICENCES = {
    "astronaut": "NASA, public domain",
    "brick": "CC0 (CC0Textures)",
    "cell": "CC0",
    "chelsea": "CC0 (Stefan van der Walt)",
    "clock": "public domain (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "coins": "no known copyright restrictions (Brooklyn Museum)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "hubble_deep_field": "NASA, public domain",
    "immunohistochemistry": "no known copyright restrictions",
    "microaneurysms": "CC0 (Andreas Maier)",
    "retina": "CC0 1.0 Universal",
    "text": "public domain",
}
TRAINING_IMAGES = tuple(TRAINING_LICENCES)
RESERVED_IMAGES = ("camera", "rocket", "phantom", "shepp_logan_phantom")


def to_grey(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) -> (1, H, W) float32 grey in [-1, 1] (BT.601 luma for colour)."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
    if x.ndim == 3:
        return luma(x[..., :3].permute(2, 0, 1)[None])[0]
    return x[None]


@functools.lru_cache(maxsize=2)
def load_training_images(names: tuple[str, ...] = TRAINING_IMAGES) -> tuple[torch.Tensor, ...]:
    """The bundled scikit-image images named, grey in [-1, 1] (cached); refuses the reserved ones."""
    reserved = sorted(set(names) & set(RESERVED_IMAGES))
    if reserved:
        raise ValueError(f"names include reserved held-out images {reserved}")
    return tuple(to_grey(getattr(skimage.data, name)()) for name in names)


def random_crops(images: tuple[torch.Tensor, ...], batch: int, crop: int,
                 generator: torch.Generator) -> torch.Tensor:
    """(batch, 1, crop, crop) augmented crops: rescale, crop, dihedral flip, contrast, inversion.

    The random choices come from `generator` (CPU); the crops are on the images' device."""
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    out = []
    for _ in range(batch):
        image = images[int(torch.randint(len(images), (), generator=generator))]
        height, width = image.shape[-2:]
        scale = max(math.exp(uniform(math.log(0.4), math.log(1.2))), crop / min(height, width))
        size = min(round(crop / scale), height, width)
        top = int(torch.randint(height - size + 1, (), generator=generator))
        left = int(torch.randint(width - size + 1, (), generator=generator))
        patch = image[None, :, top:top + size, left:left + size]
        if size != crop:
            patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", antialias=True,
                                  align_corners=False)
        patch = torch.rot90(patch, int(torch.randint(4, (), generator=generator)), dims=(2, 3))
        if torch.rand((), generator=generator) < 0.5:
            patch = patch.flip(3)
        contrast = uniform(0.5, 1.0)
        shift = uniform(-1.0, 1.0) * (1.0 - contrast)
        patch = contrast * patch + shift
        if torch.rand((), generator=generator) < 0.25:
            patch = -patch
        out.append(patch.clamp(-1.0, 1.0))
    return torch.cat(out)


def sample_timesteps(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Half uniform on 0..999, half uniform on 0..599."""
    high = torch.where(torch.rand(batch, generator=generator) < 0.5, 1000, 600)
    return (torch.rand(batch, generator=generator) * high).long()


def edm_loss(net: EmbeddedUNet, f0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
             ) -> torch.Tensor:
    r"""mean of lambda(sigma) (x0_hat - f_0)^2 with lambda = 1 / c_out^2 (module docstring)."""
    c_out = edm_coefficients(sigma)[1]
    x0_hat = denoise(net, f0 + sigma.view(-1, 1, 1, 1) * noise, sigma)
    return ((x0_hat - f0) / c_out.view(-1, 1, 1, 1)).square().mean()


def train(*, steps: int = 7000, minutes: float = 180.0, out: str | Path = WEIGHTS_PATH, seed: int = 0,
          device: str = "cpu", batch: int = 64, crops: tuple[int, ...] = (64, 96, 128),
          widths: tuple[int, ...] = (32, 64, 96, 128), lr: float = 2e-3, ema_decay: float = 0.999,
          checkpoint_every: int = 500, log_every: int = 100, threads: int | None = 2,
          verbose: bool = True) -> dict:
    """Train the EDM U-Net; write EMA weights to `out` and the record to `out` with suffix .json.

    Returns the record: config, seed, steps done, minutes, the training images and the loss curve.
    `threads` sets torch's CPU threads for the run (restored afterwards).
    """
    if steps < 1 or minutes <= 0 or batch < 1:
        raise ValueError("steps, minutes and batch must be positive")
    previous_threads = torch.get_num_threads()
    if threads is not None and device == "cpu":
        torch.set_num_threads(threads)
    try:
        return _train(steps, minutes, Path(out), seed, torch.device(device), batch, crops, widths,
                      lr, ema_decay, checkpoint_every, log_every, verbose)
    finally:
        torch.set_num_threads(previous_threads)


def _train(steps: int, minutes: float, out: Path, seed: int, device_: torch.device, batch: int,
           crops: tuple[int, ...], widths: tuple[int, ...], lr: float, ema_decay: float,
           checkpoint_every: int, log_every: int, verbose: bool) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images = tuple(image.to(device_) for image in load_training_images())
    alpha_bar = linear_alpha_bar().float()
    net = EmbeddedUNet(widths=widths).to(device_)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, min(100, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup)
                                                 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"seed": seed, "steps_planned": steps, "batch": batch, "crops": list(crops),
              "config": net.config, "lr": lr, "ema_decay": ema_decay, "device": device_.type,
              "threads": torch.get_num_threads(), "training_images": TRAINING_LICENCES,
              "losses": []}
    start, running, step = time.perf_counter(), torch.zeros((), device=device_), 0
    while step < steps and time.perf_counter() - start < 60.0 * minutes:
        crop = crops[step % len(crops)]
        f0 = random_crops(images, batch, crop, generator)
        t = sample_timesteps(batch, generator)
        sigma = (1.0 / alpha_bar[t] - 1.0).sqrt().to(device_)
        noise = torch.randn(f0.shape, generator=generator).to(device_)
        loss = edm_loss(net, f0, sigma, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        step += 1
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
                p_ema.lerp_(p, 1.0 - decay)
        running += loss.detach()
        if step % log_every == 0 or step == steps:
            n = log_every if step % log_every == 0 else step % log_every
            record["losses"].append([step, float(running) / n])
            running.zero_()
            if verbose:
                elapsed = (time.perf_counter() - start) / 60
                print(f"step {step:5d}  loss {record['losses'][-1][1]:.4f}  {elapsed:.1f} min",
                      flush=True)
        if step % checkpoint_every == 0 or step == steps:
            _checkpoint(ema, out, record, step, start)
    return _checkpoint(ema, out, record, step, start)


def _checkpoint(ema: EmbeddedUNet, out: Path, record: dict, step: int, start: float) -> dict:
    record.update(steps_done=step, minutes=round((time.perf_counter() - start) / 60, 2))
    save_weights(ema, out, record)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ddfm_edu.train_prior", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--minutes", type=float, default=180.0, help="wall-clock cap (default 180)")
    parser.add_argument("--steps", type=int, default=7000, help="optimiser steps (default 7000)")
    parser.add_argument("--out", default=str(WEIGHTS_PATH), help="weights file (default: the package's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crops", type=int, nargs="+", default=[64, 96, 128], help="crop sizes, cycled")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 96, 128])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--ema", type=float, default=0.999, help="EMA decay of the saved weights")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args(argv)
    if any(c % 16 for c in args.crops):
        parser.error("--crops must be multiples of 16")
    return train(steps=args.steps, minutes=args.minutes, out=args.out, seed=args.seed,
                 device=args.device, batch=args.batch, crops=tuple(args.crops),
                 widths=tuple(args.widths), lr=args.lr, ema_decay=args.ema,
                 checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                 threads=args.threads)


if __name__ == "__main__":
    main()

"""How good is the bundled learned prior? Its x0 estimate, DDFM with it, and its speed.

    python benchmarks/prior_quality.py [--weights PATH] [--size 256] [--steps 100] [--pairs N]
                                       [--no-ddfm] [--threads N]

1. Denoising: on grey images the prior never saw in training (scikit-image's held-out camera and
   rocket, and, when the real pairs are present (DDFM_EDU_SHARED_DATA or ../shared/data), the luma
   of every TNO, RoadScene and Harvard MRI/CT/PET/SPECT source image), centre-cropped to size x size:
   PSNR of predict_x0(f_t, t) against f_0 at t = 25, 100, 250, 500 (fixed noise seeds), for the
   embedded prior and the analytic Gaussian prior (the baseline), and the per-t gain.
2. Fusion: on the real pairs (centre-cropped), EN, SD, MI, VIF, Qabf, SSIM (`metrics.evaluate`,
   reference mode, after `stretch_to_uint8`) of EM alone, DDFM with the Gaussian prior and DDFM with
   the embedded prior (DDIM, `--steps` steps, seed 0).
3. Speed: seconds per predict_x0 at size x size on the CPU (best of 3 rounds), Gaussian as baseline.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from ddfm_edu.baselines import em_alone
from ddfm_edu.data import find_pairs, load_pair, to_array
from ddfm_edu.diffusion import linear_alpha_bar
from ddfm_edu.metrics import evaluate, stretch_to_uint8
from ddfm_edu.priors import Prior
from ddfm_edu.priors.embedded import load_embedded
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.sample import ddfm
from ddfm_edu.train_prior import to_grey

TIMESTEPS = (25, 100, 250, 500)
PAIR_FOLDERS = (  # (set, infrared/functional folder, visible/structural folder)
    ("ivf/tno", "ir", "vi"), ("ivf/roadscene", "ir", "vi"), ("mif/mri_ct", "CT", "MRI"),
    ("mif/mri_pet", "PET", "MRI"), ("mif/mri_spect", "SPECT", "MRI"),
)
FUSION_METRICS = ("EN", "SD", "MI", "VIF", "Qabf", "SSIM")


def shared_data() -> Path | None:
    root = Path(os.environ.get("DDFM_EDU_SHARED_DATA",
                               Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    return root if (root / "ivf").is_dir() else None


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) -> (..., size, size) centre crop; images smaller than size are first enlarged."""
    height, width = x.shape[-2:]
    if min(height, width) < size:
        x = F.interpolate(x.reshape(-1, 1, height, width), scale_factor=size / min(height, width),
                          mode="bicubic", align_corners=False).clamp(-1, 1)
        height, width = x.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return x[..., top:top + size, left:left + size]


def pairs(root: Path | None) -> list[tuple[str, object]]:
    found = []
    for folder, ir, vis in PAIR_FOLDERS if root else ():
        if (root / folder).is_dir():
            for pair in find_pairs(root / folder / ir, root / folder / vis)[0]:
                found.append((f"{folder}/{pair.name}", load_pair(pair.ir, pair.vis)))
    return found


def held_out_images(found_pairs: list, size: int) -> dict[str, torch.Tensor]:
    images = {name: centre_crop(to_grey(getattr(skimage.data, name)())[None], size)
              for name in ("camera", "rocket")}
    for name, pair in found_pairs:
        images[f"{name}/ir"] = centre_crop(pair.i, size)
        images[f"{name}/vis"] = centre_crop(pair.v, size)
    return images


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR on [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4.0 / (x - y).square().mean()))


def denoising_psnr(priors: dict[str, Prior], images: dict[str, torch.Tensor]
                   ) -> dict[str, np.ndarray]:
    """PSNR (images x timesteps) of each prior's predict_x0 on f_t = sqrt(ab) f_0 + sqrt(1-ab) z."""
    alpha_bar = linear_alpha_bar().float()
    table = {name: np.zeros((len(images), len(TIMESTEPS))) for name in priors}
    for row, f0 in enumerate(images.values()):
        for col, t in enumerate(TIMESTEPS):
            z = torch.randn(f0.shape, generator=torch.Generator().manual_seed(1000 * row + t))
            f_t = alpha_bar[t].sqrt() * f0 + (1 - alpha_bar[t]).sqrt() * z
            for name, prior in priors.items():
                table[name][row, col] = psnr(prior.predict_x0(f_t, torch.tensor([t])), f0)
    return table


def best_time(fn, rounds: int = 3, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="embedded-prior weights (default: bundled)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="DDFM steps")
    parser.add_argument("--pairs", type=int, default=None, help="fuse only the first N pairs")
    parser.add_argument("--no-ddfm", action="store_true", help="skip the fusion comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    priors = {"gaussian": GaussianPrior().eval(), "embedded": load_embedded("cpu", args.weights)}
    root = shared_data()
    found = pairs(root)
    print(f"real pairs: {len(found)} from {root}" if root else "real pairs: absent (skimage only)")

    images = held_out_images(found, args.size)
    table = denoising_psnr(priors, images)
    gain = table["embedded"] - table["gaussian"]
    print(f"\nDenoising PSNR (dB) of predict_x0 on {len(images)} held-out images, "
          f"{args.size}x{args.size}: embedded / gaussian / gain")
    print(f"{'image':34s}" + "".join(f"{'t=' + str(t):>20s}" for t in TIMESTEPS))
    for row, name in enumerate(images):
        print(f"{name:34s}" + "".join(f"{table['embedded'][row, c]:7.2f}{table['gaussian'][row, c]:7.2f}"
                                      f"{gain[row, c]:+6.2f}" for c in range(len(TIMESTEPS))))
    print(f"{'mean':34s}" + "".join(f"{table['embedded'][:, c].mean():7.2f}"
                                    f"{table['gaussian'][:, c].mean():7.2f}{gain[:, c].mean():+6.2f}"
                                    for c in range(len(TIMESTEPS))))
    print(f"mean gain over t: {gain.mean():+.2f} dB; smallest per-t mean gain: "
          f"{gain.mean(axis=0).min():+.2f} dB; smallest per-image gain: {gain.min():+.2f} dB")

    x_t = torch.randn(1, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([250])
    print(f"\nSeconds per predict_x0 at {args.size}x{args.size} on the CPU "
          f"({torch.get_num_threads()} threads):")
    seconds = {name: best_time(lambda p=prior: p.predict_x0(x_t, t)) for name, prior in priors.items()}
    for name, s in seconds.items():
        print(f"  {name:9s} {s:.4f} s  ({s / seconds['gaussian']:.0f}x gaussian)")

    if args.no_ddfm or not found:
        return
    chosen = found[: args.pairs]
    methods = {
        "EM alone": lambda i, v: em_alone(i, v),
        "DDFM gaussian": lambda i, v: ddfm(i, v, priors["gaussian"], steps=args.steps, seed=0,
                                           progress=False).fused,
        "DDFM embedded": lambda i, v: ddfm(i, v, priors["embedded"], steps=args.steps, seed=0,
                                           progress=False).fused,
    }
    scores = {name: [] for name in methods}
    print(f"\nFusion on {len(chosen)} real pairs ({args.size}x{args.size} centre crops, DDIM "
          f"{args.steps} steps); metrics.evaluate, reference mode:")
    print(f"{'pair':26s}{'method':16s}" + "".join(f"{m:>8s}" for m in FUSION_METRICS))
    for name, pair in chosen:
        i, v = centre_crop(pair.i, args.size), centre_crop(pair.v, args.size)
        a, b = to_array(v), to_array(i)
        for method, fuse in methods.items():
            fused = stretch_to_uint8(to_array(fuse(i, v)))
            values = evaluate(fused, a, b)
            scores[method].append([values[m] for m in FUSION_METRICS])
            print(f"{name:26s}{method:16s}" + "".join(f"{values[m]:8.3f}" for m in FUSION_METRICS),
                  flush=True)
    for method, rows in scores.items():
        print(f"{'mean':26s}{method:16s}" + "".join(f"{x:8.3f}" for x in np.mean(rows, axis=0)))


if __name__ == "__main__":
    with torch.no_grad():
        main()

"""How good is the bundled learned prior? Its x0 estimate, DDFM with it, and its speed.

    python benchmarks/prior_quality.py [--weights PATH] [--size 256] [--steps 100] [--pairs N]
                                       [--fit resize|crop] [--no-ddfm] [--threads N]

1. Denoising: on grey images the prior never saw in training (scikit-image's held-out camera and
   rocket, and, when the real pairs are present (DDFM_EDU_SHARED_DATA or ../shared/data), the luma
   of every TNO, RoadScene and Harvard MRI/CT/PET/SPECT source image), centre-cropped to size x size:
   PSNR of predict_x0(f_t, t) against f_0 at t = 25, 100, 250, 500 (fixed noise seeds), for the
   embedded prior and the analytic Gaussian prior (the baseline), and the per-t gain.
2. Fusion: on the real pairs (luma of colour sources; shorter side scaled to size and centre-cropped,
   or only cropped with --fit crop; then quantised to 8 bits), EN, SD, MI, VIF, Qabf, SSIM
   (`metrics.evaluate`, reference mode, on the fused image as saved: `stretch_to_uint8`) of
   DDFM with the embedded prior (em_variant "paper" and "released") and with the Gaussian prior
   (paper), DDIM, `--steps` steps, seed 0; EM alone (`baselines.em_alone`: learned scales, the
   baseline), EM alone with the scales held equal (phi = 1) and its released variant; the average,
   the Laplacian pyramid, and the two sources themselves as reference rows. Per pair, then the
   means per pair type (IVF: TNO + RoadScene; MIF: Harvard MRI-CT/PET/SPECT) and overall, with the
   position of each output between the sources (median of (f - v)/(i - v) where |i - v| > 0.1:
   0 = the visible image, 1 = the infrared) and, for each DDFM row, on how many of the six mean
   metrics it is above each EM-alone row.
3. Speed: seconds per predict_x0 at size x size on the CPU (best of 3 rounds), Gaussian as baseline.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from ddfm_edu.baselines import average, em_alone, laplacian_fusion
from ddfm_edu.data import find_pairs, load_pair, resize_pair, to_array, to_tensor, to_uint8
from ddfm_edu.diffusion import linear_alpha_bar
from ddfm_edu.em import em_fuse
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


def fusion_sources(pair, size: int, fit: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """The pair at size x size as 8-bit images (the metrics' sources must be 8-bit: MI has one bin
    per distinct value) and as the [-1, 1] tensors the methods fuse: fit="resize" scales the shorter
    side to `size` (antialiased bilinear, `resize_pair`) and then centre-crops; "crop" only crops.
    Returns (i, v, i8, v8)."""
    if fit == "resize":
        height, width = pair.i.shape[-2:]
        pair = resize_pair(pair, math.ceil(size * max(height, width) / min(height, width)))
    i8, v8 = (to_uint8(centre_crop(x, size), stretch_luma=False) for x in (pair.i, pair.v))
    return to_tensor(i8), to_tensor(v8), i8, v8


def position(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor) -> float:
    """Where f sits between the sources: median of (f - v) / (i - v) over the pixels with
    |i - v| > 0.1 (0: the visible image, 1: the infrared image, 0.5: their average)."""
    d = i - v
    mask = d.abs() > 0.1
    return float(((f - v)[mask] / d[mask]).median())


def fusion_methods(priors: dict[str, Prior], steps: int) -> dict[str, Callable]:
    """Every row of the fusion table: (i, v) -> fused (1, 1, H, W) on [-1, 1], as each returns it.
    DDFM rows return (fused, f_hat): also EM's last output f_hat_{0|0}, in the coordinates in which
    EM compares it with i and v (for em_variant="released" the fused image is instead the min-max
    stretched luma of the last sample, which moves it between the sources)."""

    def ddfm_with(prior: str, variant: str):
        def fuse(i: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            result = ddfm(i, v, priors[prior], steps=steps, em_variant=variant, seed=0,
                          record=steps, progress=False)  # keeps the first and the last step
            return result.fused, result.trace.f_hat[-1]
        return fuse

    return {
        "DDFM embedded paper": ddfm_with("embedded", "paper"),
        "DDFM embedded released": ddfm_with("embedded", "released"),
        "DDFM gaussian paper": ddfm_with("gaussian", "paper"),
        "EM alone (learned)": em_alone,
        "EM alone phi=1": lambda i, v: em_fuse(i, v, phi=1.0)[0],
        "EM alone released": lambda i, v: em_alone(i, v, variant="released"),
        "average": average,
        "laplacian": laplacian_fusion,
        "copy visible": lambda i, v: v,
        "copy infrared": lambda i, v: i,
    }


def print_means(title: str, scores: dict[str, list[list[float]]], rows: list[int]) -> dict:
    """Means over the given pair rows of the metrics, pos and pos EM, then the mean |pos EM - 0.5|;
    printed and returned as {method: that row}."""
    means = {}
    for method, values in scores.items():
        chosen = np.array([values[r] for r in rows])
        means[method] = np.append(chosen.mean(axis=0), np.abs(chosen[:, -1] - 0.5).mean())
    print(f"\n{title} ({len(rows)} pairs): mean of each metric; pos: mean over pairs of the "
          "median (f - v)/(i - v); pos EM: the same of DDFM's last EM output f_hat; |EM-.5|: mean "
          "over pairs of |pos EM - 0.5| (0: halfway, 0.5: a copy of one source)")
    print(f"{'method':24s}" + "".join(f"{m:>8s}" for m in (*FUSION_METRICS, "pos", "pos EM", "|EM-.5|")))
    for method, row in means.items():
        print(f"{method:24s}" + "".join(f"{x:8.3f}" for x in row))
    return means


def print_beats(title: str, means: dict[str, np.ndarray]) -> None:
    """For each DDFM row: on how many of the six mean metrics it is strictly above each EM-alone row."""
    em_rows = [m for m in means if m.startswith("EM alone")]
    print(f"\n{title}: metrics (of {len(FUSION_METRICS)}) on which the DDFM row's mean is higher")
    print(f"{'':24s}" + "".join(f"{m:>20s}" for m in em_rows))
    for method in (m for m in means if m.startswith("DDFM")):
        n = len(FUSION_METRICS)
        counts = [int(np.sum(means[method][:n] > means[em][:n])) for em in em_rows]
        print(f"{method:24s}" + "".join(f"{c:>18d}/{len(FUSION_METRICS)}" for c in counts))


def fusion_comparison(chosen: list, priors: dict[str, Prior], size: int, steps: int, fit: str) -> None:
    """Fuse every pair with every method; per pair, per pair type (IVF, MIF) and overall: the six
    metrics on the 8-bit images as saved (`stretch_to_uint8`), the position between the sources, and
    how many metrics each DDFM row wins against each EM-alone row."""
    methods = fusion_methods(priors, steps)
    scores = {method: [] for method in methods}
    print(f"\nFusion on {len(chosen)} real pairs ({size}x{size}, fit={fit}; DDFM: DDIM {steps} "
          "steps, seed 0; EM alone: 50 iterations from the average); metrics.evaluate, reference "
          "mode, on 8-bit images (fused: stretch_to_uint8; sources: 8-bit luma); pos: median of "
          "(f - v)/(i - v) where |i - v| > 0.1, on the output as returned (0 = visible, 1 = infrared); "
          "pos EM: the same for DDFM's last EM output f_hat (other rows: = pos)")
    print(f"{'pair':26s}{'method':24s}" + "".join(f"{m:>8s}" for m in (*FUSION_METRICS, "pos", "pos EM")))
    for name, pair in chosen:
        i, v, i8, v8 = fusion_sources(pair, size, fit)
        for method, fuse in methods.items():
            outputs = fuse(i, v)
            fused, f_hat = outputs if isinstance(outputs, tuple) else (outputs, outputs)
            values = evaluate(stretch_to_uint8(to_array(fused)), v8, i8)
            row = [*(values[m] for m in FUSION_METRICS), position(fused, i, v), position(f_hat, i, v)]
            scores[method].append(row)
            print(f"{name:26s}{method:24s}" + "".join(f"{x:8.3f}" for x in row), flush=True)
    names = [name for name, _ in chosen]
    groups = {"IVF (TNO + RoadScene)": [r for r, n in enumerate(names) if n.startswith("ivf/")],
              "MIF (MRI-CT/PET/SPECT)": [r for r, n in enumerate(names) if n.startswith("mif/")],
              "All pairs": list(range(len(names)))}
    for title, rows in groups.items():
        if rows:
            print_beats(title, print_means(title, scores, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="embedded-prior weights (default: bundled)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="DDFM steps")
    parser.add_argument("--pairs", type=int, default=None, help="fuse only the first N pairs")
    parser.add_argument("--fit", choices=("resize", "crop"), default="resize",
                        help="fusion pairs: shorter side scaled to --size, then centre crop; or crop only")
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
    fusion_comparison(found[: args.pairs], priors, args.size, args.steps, args.fit)

if __name__ == "__main__":
    with torch.no_grad():
        main()

"""Time the twelve fusion metrics on a 768 x 576 triple: ddfm_edu.metrics (vectorised: separable
'valid' filtering, bincount histograms) against a straightforward baseline in the published
evaluator's style (scipy.signal.convolve2d with 2-D windows, boolean-mask assignments, np.unique
contingency tables, scikit-image SSIM), both timed here in the same process (best of --repeat).

    python benchmarks/metrics.py [--repeat 3] [--mode reference|standard]

Uses TNO pair 01 from the shared data folder (DDFM_EDU_SHARED_DATA, default ../shared/data) when
present, else a synthetic pair of the same size.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

from ddfm_edu import metrics

REPO = Path(__file__).resolve().parents[1]


def load_triple() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(fused, visible, infrared) on 0..255 as float64, 576 x 768; fused = stretched mean."""
    root = Path(os.environ.get("DDFM_EDU_SHARED_DATA", REPO.parent / "shared" / "data"))
    folder = root / "ivf" / "tno"
    if (folder / "vi" / "01.png").is_file():
        a, b = (
            metrics.to_grey(np.asarray(Image.open(folder / kind / "01.png").convert("RGB")))
            for kind in ("vi", "ir")
        )
        source = f"TNO 01 from {root}"
    else:
        rng = np.random.default_rng(0)
        a, b = (np.round(rng.uniform(0, 255, (576, 768))) for _ in range(2))
        source = "synthetic uniform noise (shared data not found)"
    fused = metrics.stretch_to_uint8((a + b) / 2).astype(np.float64)
    return fused, a, b, source


# --------------------------------------------------------------------------------- the baseline
def _pearson(x, y):
    dx, dy = x - np.mean(x), y - np.mean(y)
    return np.sum(dx * dy) / np.sqrt(np.sum(dx**2) * np.sum(dy**2))


def _mi_pair(x, y):
    _, cx = np.unique(x.ravel(), return_inverse=True)
    _, cy = np.unique(y.ravel(), return_inverse=True)
    pairs, counts = np.unique(np.stack([cx.ravel(), cy.ravel()]), axis=1, return_counts=True)
    n = x.size
    px, py = np.bincount(cx.ravel()) / n, np.bincount(cy.ravel()) / n
    p = counts / n
    return np.sum(p * np.log(p / (px[pairs[0]] * py[pairs[1]])))


def _vif_pair(ref, dist):
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        half = (n - 1) / 2
        y, x = np.ogrid[-half : half + 1, -half : half + 1]
        win = np.exp(-(x * x + y * y) / (2 * (n / 5) ** 2))
        win /= win.sum()
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 * mu1, 0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 * mu2, 0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10], sv[s1 < 1e-10] = 0, s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10], sv[s2 < 1e-10] = 0, 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g * g * s1 / (sv + 2)))
        den += np.sum(np.log10(1 + s1 / 2))
    return num / den


def _qabf_arrays(img):
    sx = convolve2d(img, metrics.SOBEL_X, mode="same")
    sy = convolve2d(img, metrics.SOBEL_Y, mode="same")
    angle = np.zeros_like(img)
    angle[sx == 0] = math.pi / 2
    angle[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
    return np.sqrt(sx * sx + sy * sy), angle


def _qabf_q(a_s, g_s, a_f, g_f):
    ratio = np.zeros_like(g_s)
    ratio[g_s > g_f] = g_f[g_s > g_f] / g_s[g_s > g_f]
    ratio[g_s == g_f] = g_f[g_s == g_f]
    ratio[g_s < g_f] = g_s[g_s < g_f] / g_f[g_s < g_f]
    orient = 1 - np.abs(a_s - a_f) / (math.pi / 2)
    return 0.9994 / (1 + np.exp(-15 * (ratio - 0.5))) * 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))


def _qabf(f, a, b):
    (ga, aa), (gb, ab), (gf, af) = _qabf_arrays(a), _qabf_arrays(b), _qabf_arrays(f)
    return np.sum(_qabf_q(aa, ga, af, gf) * ga + _qabf_q(ab, gb, af, gf) * gb) / np.sum(ga + gb)


def _ag(f):
    gx, gy = np.zeros_like(f), np.zeros_like(f)
    gx[:, 0], gx[:, -1], gx[:, 1:-1] = f[:, 1] - f[:, 0], f[:, -1] - f[:, -2], (f[:, 2:] - f[:, :-2]) / 2
    gy[0], gy[-1], gy[1:-1] = f[1] - f[0], f[-1] - f[-2], (f[2:] - f[:-2]) / 2
    return np.mean(np.sqrt((gx**2 + gy**2) / 2))


def _en(f):
    h = np.bincount(np.uint8(np.round(f)).ravel()) / f.size
    return -sum(h * np.log2(h + (h == 0)))


def _mse(f, a, b):
    return (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2


BASELINE = {
    "EN": lambda f, a, b: _en(f),
    "SD": lambda f, a, b: np.std(f),
    "SF": lambda f, a, b: np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:] - f[:-1]) ** 2)),
    "AG": lambda f, a, b: _ag(f),
    "MI": lambda f, a, b: _mi_pair(f, a) + _mi_pair(f, b),
    "SCD": lambda f, a, b: _pearson(a, f - b) + _pearson(b, f - a),
    "VIF": lambda f, a, b: _vif_pair(a, f) + _vif_pair(b, f),
    "Qabf": _qabf,
    "SSIM": lambda f, a, b: sum(structural_similarity(f, s, data_range=2) for s in (a, b)),
    "CC": lambda f, a, b: (_pearson(a, f) + _pearson(b, f)) / 2,
    "MSE": _mse,
    "PSNR": lambda f, a, b: 10 * np.log10(np.max(f) ** 2 / _mse(f, a, b)),
}


# ---------------------------------------------------------------------------------- the package
def package_metric(name: str, mode: str):
    """The package's metric `name` as a function of (f, a, b)."""
    function = getattr(metrics, name.lower())
    if name in ("EN", "SD", "SF", "AG"):
        return (lambda f, a, b: function(f, mode)) if name == "EN" else (lambda f, a, b: function(f))
    if name in ("MI", "Qabf", "SSIM", "PSNR"):
        return lambda f, a, b: function(f, a, b, mode)
    return function


def best_time(function, args, repeat: int) -> tuple[float, float]:
    """(best wall time in seconds over `repeat` runs, the value returned)."""
    best, value = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=metrics.MODES, default="reference")
    args = parser.parse_args()
    f, a, b, source = load_triple()
    print(f"{f.shape[1]} x {f.shape[0]} triple: {source}; mode {args.mode}; best of {args.repeat}")
    print(f"{'metric':>6} {'package ms':>11} {'baseline ms':>12} {'speed-up':>9} {'value':>11}")
    total_package = total_baseline = 0.0
    for name in metrics.METRIC_NAMES:
        t_package, value = best_time(package_metric(name, args.mode), (f, a, b), args.repeat)
        t_baseline, baseline_value = best_time(BASELINE[name], (f, a, b), args.repeat)
        total_package += t_package
        total_baseline += t_baseline
        note = "" if args.mode == "standard" or np.isclose(value, baseline_value, rtol=1e-6) else " !"
        print(
            f"{name:>6} {1e3 * t_package:11.1f} {1e3 * t_baseline:12.1f} "
            f"{t_baseline / t_package:8.1f}x {value:11.5g}{note}"
        )
    print(
        f"{'sum':>6} {1e3 * total_package:11.1f} {1e3 * total_baseline:12.1f} "
        f"{total_baseline / total_package:8.1f}x"
    )
    wall, cpu = math.inf, math.inf
    for _ in range(args.repeat):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        metrics.evaluate(f, a, b, args.mode)
        wall = min(wall, time.perf_counter() - start_wall)
        cpu = min(cpu, time.process_time() - start_cpu)
    print(
        f"metrics.evaluate (all twelve, one call): {1e3 * wall:.1f} ms wall, {1e3 * cpu:.1f} ms CPU"
        " (wall above CPU means other processes share the cores)"
    )


if __name__ == "__main__":
    main()

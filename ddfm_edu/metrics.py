r"""Fusion metrics: EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, CC, MSE, PSNR.

F is the fused image, A the visible (structural) source, B the infrared (functional) source, all on
the 0..255 scale. Two modes:

- ``"reference"`` (default) reproduces the public Python evaluator behind the published tables
  (DDFM's and CDDFuse's ``utils/Evaluator.py``), quirks included, so numbers compare with the papers.
- ``"standard"`` uses the textbook definitions where they differ (SSIM, Qabf, PSNR, and MI of a
  non-integer fused image); every docstring below states both.

Input convention (reference protocol): grey images are used as given, colour images (H, W, 3) are
reduced to rounded BT.601 luma ``round(0.299 R + 0.587 G + 0.114 B)``; everything is computed in
float64 (never on uint8: differences wrap around; never on [0, 1] data: VIF and Qabf constants are
absolute). The fused output is min-max stretched and quantised to 8 bits before evaluation, which is
what the published protocol saves and reads back: see `stretch_to_uint8`.

Degenerate images: a correlation with a constant image is 0/0, so SCD and CC are undefined (NaN)
when an image they correlate is constant, and Qabf when neither source has an edge; each then warns
(`UndefinedMetricWarning`, one warning per `evaluate` call naming every such metric and why). PSNR
of a fused image equal to both sources is +inf (MSE = 0), its limit; see each docstring.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = ("reference", "standard")
METRIC_NAMES = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "MSE", "PSNR")
BT601_LUMA_PER_MILLE = (299, 587, 114)  # Y = 0.299 R + 0.587 G + 0.114 B

# VIF (Sheikh & Bovik, pixel domain): model noise variance and the small-variance threshold.
VIF_SIGMA_N_SQ = 2.0
VIF_EPS = 1e-10
VIF_SCALES = 4
VIF_MIN_SIZE = 41  # smallest side that leaves a non-empty 'valid' map at all four scales

# Qabf (Xydeas & Petrovic) sigmoid constants for edge strength (g) and orientation (a).
QABF_TG, QABF_KG, QABF_DG = 0.9994, -15.0, 0.5
QABF_TA, QABF_KA, QABF_DA = 0.9879, -22.0, 0.8
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])

# SSIM constants (Wang et al. 2004).
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_REFERENCE_WIN, SSIM_REFERENCE_DATA_RANGE = 7, 2.0
SSIM_STANDARD_WIN, SSIM_STANDARD_SIGMA, SSIM_STANDARD_DATA_RANGE = 11, 1.5, 255.0


class UndefinedMetricWarning(RuntimeWarning):
    """A metric is undefined (0/0) for the images given and was returned as NaN."""


def _undefined(metric: str, reason: str) -> float:
    """Warn that `metric` is undefined for these images, and why; return NaN."""
    warnings.warn(f"{metric} is undefined (NaN): {reason}", UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def _constant(named: dict[str, np.ndarray]) -> str:
    """'X, Y and Z are constant' for the named images with zero spread (max = min), else ''."""
    names = [name for name, x in named.items() if x.max() == x.min()]
    if len(names) <= 1:
        return f"{names[0]} is constant" if names else ""
    return f"{', '.join(names[:-1])} and {names[-1]} are constant"


# --------------------------------------------------------------------------------------- inputs
def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def to_grey(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A float64 (H, W) grey image from an (H, W) grey or (H, W, 3) RGB array of any real dtype.

    RGB is reduced to rounded BT.601 luma, round(0.299 R + 0.587 G + 0.114 B), as the reference
    evaluator reads images (OpenCV BGR2GRAY, then np.round). For integer-valued RGB the rounding is
    exact, (299 R + 587 G + 114 B) / 1000 rounded half to even; the evaluator's float32 arithmetic
    decides the exact ties (x.5) either way, so about 1 RGB triple in 20,000 may differ from it by one
    grey level. PIL's convert("L") is a different integer approximation (it differs on ~1 triple in
    2,000). Grey input is converted to float64 unchanged (uint8 is never used for arithmetic).
    Raises ValueError naming `name` for a non-array, a wrong shape, a non-real dtype or NaN /
    infinite values.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype == bool or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise ValueError(f"{name} must have a real numeric dtype, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        grey = _rounded_luma(image)
    elif image.ndim == 2:
        grey = image.astype(np.float64, copy=False)  # never modified in place below
    else:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 3), got {image.shape}")
    if min(grey.shape) < 2:
        raise ValueError(f"{name} must be at least 2 x 2 pixels, got {grey.shape}")
    if not np.isfinite(grey).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return grey


def _rounded_luma(rgb: np.ndarray) -> np.ndarray:
    """round(0.299 R + 0.587 G + 0.114 B) as float64, exactly (half to even) for integer values."""
    weights = np.asarray(BT601_LUMA_PER_MILLE)
    values = rgb.astype(np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.array_equal(values, np.round(values)) and np.abs(values).max() < 2**40
    if not integral:
        return np.round(values @ (weights / 1000.0))
    quotient, remainder = np.divmod(values.astype(np.int64) @ weights, 1000)
    round_up = (remainder > 500) | ((remainder == 500) & (quotient % 2 == 1))
    return (quotient + round_up).astype(np.float64)


def _grey_triple(
    fused: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, a, b = to_grey(fused, "fused"), to_grey(a, "a"), to_grey(b, "b")
    for name, x in (("a", a), ("b", b)):
        if x.shape != f.shape:
            raise ValueError(f"{name} has (grey) shape {x.shape} but fused has {f.shape}")
    return f, a, b


def stretch_to_uint8(x: np.ndarray) -> np.ndarray:
    r"""Prepare a fused image as the reference protocol saves it: min-max stretch, 8-bit quantise.

        q = floor( 255 (x - min x) / (max x - min x) + 0.499999999 )

    The published protocol stretches the network output to [0, 255] and saves it with
    skimage.io.imsave, whose image writer (imageio) applies exactly this formula (round half down);
    the evaluator then reads the 8-bit file back. A constant image gives zeros. Accepts any real
    (H, W) array (or (H, W, 3), reduced to luma first); returns uint8 (H, W).
    """
    x = to_grey(x, "x")
    low, high = x.min(), x.max()
    if high == low:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.floor((x - low) / (high - low) * 255.0 + 0.499999999).astype(np.uint8)


def round_both_ways(x: np.ndarray, window: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    r"""Quantise values to integers twice, each value within `window` of a rounding boundary k + 1/2
    sent once down and once up:

        low = ceil(x - 1/2 - window),   high = floor(x + 1/2 + window)   (low = high = round(x) elsewhere)

    Why: float32 results differ between machines by rounding noise (other vector kernels, thread
    counts, FFT libraries), and a value that close to k + 1/2 is quantised either way. Any
    round(x + e) with |e| <= window lies between low and high, so a metric that is the same for both
    (to the precision it is printed with) does not depend on that noise. Returns two float64 arrays.
    """
    if not 0 <= window < 0.5:
        raise ValueError(f"window must be in [0, 0.5), got {window!r}")
    x = np.asarray(x, dtype=np.float64)
    return np.ceil(x - 0.5 - window), np.floor(x + 0.5 + window)


# ------------------------------------------------------------------------- single-image metrics
def en(fused: np.ndarray, mode: str = "reference") -> float:
    r"""Entropy (bits): EN = -sum_l p_l log2 p_l, p_l = #{round(F) = l} / N over 256 grey levels
    (empty bins skipped).

    Reference: the evaluator histograms np.uint8(np.round(F)), so values outside 0..255 wrap around
    modulo 256 (-1 counts as 255), as that cast does on common platforms.
    Standard: values are clipped to 0..255 after rounding (the textbook 8-bit Shannon entropy).
    Both agree on 0..255 data.
    """
    _check_mode(mode)
    rounded = np.round(to_grey(fused, "fused")).ravel()
    if mode == "reference":
        levels = rounded.astype(np.int64) % 256
    else:
        levels = np.clip(rounded, 0, 255).astype(np.int64)
    p = np.bincount(levels, minlength=256) / levels.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sd(fused: np.ndarray) -> float:
    r"""Standard deviation: SD = sqrt( mean (F - mean F)^2 ) (population, divide by N).

    Reference: np.std(F). Standard: the same.
    """
    return float(np.std(to_grey(fused, "fused")))


def sf(fused: np.ndarray) -> float:
    r"""Spatial frequency: SF = sqrt(RF^2 + CF^2),
    RF^2 = mean over M(N-1) pairs of (F[i, j+1] - F[i, j])^2 (horizontal differences),
    CF^2 = mean over (M-1)N pairs of (F[i+1, j] - F[i, j])^2 (vertical differences).

    Reference: exactly this, on float data (on uint8 the differences wrap around, which lowers SF).
    Standard: the same.
    """
    f = to_grey(fused, "fused")
    return float(np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)))


def ag(fused: np.ndarray) -> float:
    r"""Average gradient: AG = mean over all M N pixels of sqrt( (Gx^2 + Gy^2) / 2 ),
    with central differences Gx[i, j] = (F[i, j+1] - F[i, j-1]) / 2 inside and one-sided
    differences at the borders (numpy.gradient).

    Reference: exactly this. Standard: the same.
    """
    gy, gx = np.gradient(to_grey(fused, "fused"))
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2.0)))


# --------------------------------------------------------------------- mutual information (MI)
def _labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes 0..n-1 of the distinct values of x, and n (fast path for 8-bit values)."""
    flat = x.ravel()
    if flat.min() >= 0 and flat.max() <= 255 and np.array_equal(flat, np.round(flat)):
        return flat.astype(np.int64), 256
    values, codes = np.unique(flat, return_inverse=True)
    return codes.ravel(), values.size


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI (nats) of the joint distribution of the values of x and y, one bin per distinct value."""
    (cx, nx), (cy, ny) = _labels(x), _labels(y)
    keys = cx * ny + cy
    if nx * ny <= 1 << 22:
        joint = np.bincount(keys, minlength=nx * ny)
        nonzero = np.flatnonzero(joint)
        counts = joint[nonzero]
    else:
        nonzero, counts = np.unique(keys, return_counts=True)
    n = cx.size
    px, py = np.bincount(cx, minlength=nx) / n, np.bincount(cy, minlength=ny) / n
    p = counts / n
    mi = np.sum(p * np.log(p / (px[nonzero // ny] * py[nonzero % ny])))
    return float(max(mi, 0.0))


def mi(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str = "reference") -> float:
    r"""Mutual information (nats): MI = MI(F, A) + MI(F, B),
    MI(F, X) = sum_{f,x} p(f, x) ln( p(f, x) / (p(f) p(x)) ), from the joint histogram.

    Reference: sklearn.metrics.mutual_info_score on the flattened images, i.e. one bin per distinct
    value (a 256 x 256 joint histogram for 8-bit data), natural log. A fused image that was not
    quantised (raw float) gets one bin per distinct float value, which inflates MI strongly: quantise
    first (`stretch_to_uint8`).
    Standard: the 256 x 256 joint histogram of the 8-bit values, round(.) clipped to 0..255, so a raw
    float input is quantised first; identical to reference on 8-bit data.
    """
    _check_mode(mode)
    f, a, b = _grey_triple(fused, a, b)
    if mode == "standard":
        f, a, b = (np.clip(np.round(x), 0, 255) for x in (f, a, b))
    return _mutual_information(f, a) + _mutual_information(f, b)


# ----------------------------------------------------------------------- correlations and errors
def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over the whole image: sum(dx dy) / sqrt(sum dx^2 sum dy^2), for x and y
    that are not constant (callers check: for a constant image it is 0/0)."""
    dx, dy = x - x.mean(), y - y.mean()
    return float(np.sum(dx * dy) / np.sqrt(np.sum(dx**2) * np.sum(dy**2)))


def scd(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    r"""Sum of the correlations of differences: SCD = r(A, F - B) + r(B, F - A), r = Pearson
    correlation over the whole image.

    Undefined (NaN, with an `UndefinedMetricWarning`) when A, B, F - B or F - A is constant: r of a
    constant image is 0 / 0 (its deviations from the mean are all zero). In particular a fused
    image equal to a source (F = A makes F - A = 0) has no SCD; no value would be neutral.
    Reference: exactly this, on float data (on uint8, F - B wraps around and SCD collapses).
    Standard: the same.
    """
    f, a, b = _grey_triple(fused, a, b)
    constant = _constant({"A": a, "B": b, "F - B": f - b, "F - A": f - a})
    if constant:
        return _undefined("SCD", f"{constant}, and a correlation with a constant image is 0/0")
    return _pearson(a, f - b) + _pearson(b, f - a)


def cc(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    r"""Correlation coefficient: CC = (r(A, F) + r(B, F)) / 2, r = Pearson correlation.

    Undefined (NaN, with an `UndefinedMetricWarning`) when F, A or B is constant: r of a constant
    image is 0 / 0. Reference: exactly this. Standard: the same.
    """
    f, a, b = _grey_triple(fused, a, b)
    constant = _constant({"F": f, "A": a, "B": b})
    if constant:
        return _undefined("CC", f"{constant}, and a correlation with a constant image is 0/0")
    return (_pearson(a, f) + _pearson(b, f)) / 2.0


def mse(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    r"""Mean squared error: MSE = ( mean (A - F)^2 + mean (B - F)^2 ) / 2.

    Reference: exactly this. Standard: the same.
    """
    f, a, b = _grey_triple(fused, a, b)
    return float((np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2.0)


def psnr(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str = "reference") -> float:
    r"""Peak signal-to-noise ratio (dB): PSNR = 10 log10( peak^2 / MSE ), MSE as in `mse`.

    Reference: peak = max(F), the fused image's own maximum (a quirk of the evaluator).
    Standard: peak = 255.
    MSE = 0 (F equal to both sources) gives +inf, the limit as MSE -> 0: no error is infinitely
    good. In reference mode a fused image with max(F) <= 0 (all black) and MSE > 0 gives -inf, the
    formula's value for peak = 0 (10 log10 0).
    """
    _check_mode(mode)
    f, a, b = _grey_triple(fused, a, b)
    peak = float(f.max()) if mode == "reference" else 255.0
    error = mse(f, a, b)
    if error == 0.0:
        return float("inf")
    if peak <= 0.0:
        return float("-inf")
    return float(10.0 * np.log10(peak**2 / error))


# ------------------------------------------------------------------------------------------ VIF
def _vif_window(scale: int) -> np.ndarray:
    """1-D factor of the scale's N x N Gaussian window: N = 2^(5-scale) + 1, sd = N / 5, sum 1.

    The 2-D window exp(-(x^2 + y^2) / (2 sd^2)) / sum is the outer product of this factor with
    itself (its MATLAB-style cut-off at eps * max never removes an entry for these sizes)."""
    n = 2 ** (5 - scale) + 1
    x = np.arange(n) - (n - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'valid' 2-D filtering with the separable symmetric window outer(g, g): output (i, j) is
    sum_{k,l} g_k g_l x[i + k, j + l], for every window lying inside the image."""
    y = np.einsum("ijk,k->ij", sliding_window_view(x, g.size, axis=0), g)
    return np.einsum("ijk,k->ij", sliding_window_view(y, g.size, axis=1), g)


def _vif_scale_terms(
    ref: np.ndarray, dist: np.ndarray, mu2: np.ndarray, sigma2_sq: np.ndarray, g_win: np.ndarray
) -> tuple[float, float]:
    """Numerator and denominator sums of VIFp at one scale (reference evaluator's clamping)."""
    mu1 = _filter_valid(ref, g_win)
    sigma1_sq = np.maximum(_filter_valid(ref * ref, g_win) - mu1 * mu1, 0.0)
    sigma12 = _filter_valid(ref * dist, g_win) - mu1 * mu2
    g = sigma12 / (sigma1_sq + VIF_EPS)
    sv_sq = sigma2_sq - g * sigma12
    # The evaluator's clamps, in its order.
    flat1 = sigma1_sq < VIF_EPS
    flat2 = sigma2_sq < VIF_EPS
    np.copyto(sv_sq, sigma2_sq, where=flat1)
    np.copyto(sigma1_sq, 0.0, where=flat1)
    np.copyto(g, 0.0, where=flat1 | flat2)
    np.copyto(sv_sq, 0.0, where=flat2)
    negative = g < 0
    np.copyto(sv_sq, sigma2_sq, where=negative)
    np.copyto(g, 0.0, where=negative)
    np.maximum(sv_sq, VIF_EPS, out=sv_sq)  # reference: sv_sq[sv_sq <= eps] = eps
    num = np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + VIF_SIGMA_N_SQ)))
    den = np.sum(np.log10(1.0 + sigma1_sq / VIF_SIGMA_N_SQ))
    return float(num), float(den)


def _vif_pair_sums(sources: list[np.ndarray], dist: np.ndarray) -> list[tuple[float, float]]:
    """VIFp(source -> dist) = num / den for each source, sharing the distorted image's filtering."""
    sums = [[0.0, 0.0] for _ in sources]
    for scale in range(1, VIF_SCALES + 1):
        g_win = _vif_window(scale)
        if scale > 1:
            sources = [_filter_valid(s, g_win)[::2, ::2] for s in sources]
            dist = _filter_valid(dist, g_win)[::2, ::2]
        mu2 = _filter_valid(dist, g_win)
        sigma2_sq = np.maximum(_filter_valid(dist * dist, g_win) - mu2 * mu2, 0.0)
        for total, ref in zip(sums, sources, strict=True):
            num, den = _vif_scale_terms(ref, dist, mu2, sigma2_sq, g_win)
            total[0] += num
            total[1] += den
    return [(num, den) for num, den in sums]


def vif(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    r"""Visual information fidelity (Sheikh & Bovik VIFp, pixel domain, 4 scales):
    VIF = VIF(A -> F) + VIF(B -> F), each source taken as the reference image.

    At scale s = 1..4 the window is the N x N Gaussian, N = 2^(5-s) + 1 (17, 9, 5, 3), sd N/5, sum 1,
    applied with 'valid' filtering; for s >= 2 both images are first filtered with that window and
    decimated by 2. From local moments mu, sigma^2, sigma_12:
    g = sigma_12 / (sigma_1^2 + eps), sv^2 = sigma_2^2 - g sigma_12, with the clamps
    (sigma_1^2 < eps: g = 0, sv^2 = sigma_2^2, sigma_1^2 = 0; sigma_2^2 < eps: g = 0, sv^2 = 0;
    g < 0: sv^2 = sigma_2^2, g = 0; sv^2 >= eps), eps = 1e-10, sigma_n^2 = 2, and
    VIF(R -> D) = sum_s sum log10(1 + g^2 sigma_1^2 / (sv^2 + sigma_n^2))
                  / sum_s sum log10(1 + sigma_1^2 / sigma_n^2)   (NaN -> 1).

    Reference: exactly the evaluator's VIFF (scipy convolve2d loops there, separable filtering here).
    sigma_n^2 = 2 is an absolute noise variance, so the value depends on the data scale: use 0..255
    (on [0, 1] data VIF changes). Standard: the same (this *is* the textbook VIFp with the
    fusion convention of summing both sources). Images must be at least 41 x 41 pixels.
    """
    f, a, b = _grey_triple(fused, a, b)
    if min(f.shape) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE} x {VIF_MIN_SIZE}, got {f.shape}")
    total = 0.0
    for num, den in _vif_pair_sums([a, b], f):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = num / den if den != 0 else np.nan
        total += 1.0 if np.isnan(ratio) else ratio
    return float(total)


# ----------------------------------------------------------------------------------------- Qabf
def _sobel(x: np.ndarray, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """'same' convolutions Sx = x * SOBEL_X and Sy = x * SOBEL_Y with "zero" or "symmetric"
    (d c b a | a b c d) padding, evaluated separably: SOBEL_X = [1, 2, 1]^T [-1, 0, 1] and
    SOBEL_Y = [1, 0, -1]^T [1, 2, 1], so (convolution flips the kernel)
    Sx[i, j] = s[i, j-1] - s[i, j+1] with s the [1, 2, 1] smoothing along axis 0, and
    Sy[i, j] = t[i+1, j] - t[i-1, j] with t the [1, 2, 1] smoothing along axis 1."""
    p = np.pad(x, 1, mode="constant" if padding == "zero" else "symmetric")
    s = p[:-2] + 2.0 * p[1:-1] + p[2:]  # shape (H, W + 2)
    t = p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]  # shape (H + 2, W)
    return s[:, :-2] - s[:, 2:], t[2:] - t[:-2]


def _sobel_strength_angle(x: np.ndarray, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g = sqrt(Sx^2 + Sy^2) and angle arctan(Sy / Sx) (pi/2 where Sx = 0)."""
    sx, sy = _sobel(x, padding)
    strength = np.sqrt(sx * sx + sy * sy)
    ratio = np.divide(sy, sx, out=np.full_like(sx, np.inf), where=sx != 0)
    return strength, np.arctan(ratio)  # arctan(inf) = pi/2 exactly where Sx = 0


def _edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray, mode: str
) -> np.ndarray:
    """Q^{XF} = Tg / (1 + exp(kg (G - Dg))) * Ta / (1 + exp(ka (A - Da)))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.minimum(g_src, g_f) / np.maximum(g_src, g_f)
    equal_value = g_f if mode == "reference" else 1.0  # reference quirk: G = gF where gX == gF
    strength = np.where(g_src == g_f, equal_value, ratio)
    orientation = 1.0 - np.abs(a_src - a_f) / (np.pi / 2)
    q_g = QABF_TG / (1.0 + np.exp(QABF_KG * (strength - QABF_DG)))
    q_a = QABF_TA / (1.0 + np.exp(QABF_KA * (orientation - QABF_DA)))
    return q_g * q_a


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str = "reference") -> float:
    r"""Edge-information preservation Q^{AB/F} (Xydeas & Petrovic):
    Qabf = sum(Q^{AF} g_A + Q^{BF} g_B) / sum(g_A + g_B)   (weights g^L, L = 1).

    Sobel Sx = [[-1,0,1],[-2,0,2],[-1,0,1]], Sy = [[1,2,1],[0,0,0],[-1,-2,-1]] (convolution),
    g = sqrt(Sx^2 + Sy^2), alpha = arctan(Sy / Sx) (arctan, not arctan2; pi/2 where Sx = 0).
    G^{XF} = min(g_X, g_F) / max(g_X, g_F), A^{XF} = 1 - |alpha_X - alpha_F| / (pi/2),
    Q^{XF} = Tg / (1 + exp(kg (G - Dg))) * Ta / (1 + exp(ka (A - Da))), Tg = 0.9994, kg = -15,
    Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8.

    Reference: 'same' convolution with zero padding, and G^{XF} = g_F where g_X == g_F (a quirk; on
    0..255 data it acts like 1 except where both gradients are 0, where it gives 0).
    Standard: symmetric padding (edge pixel repeated) and G^{XF} = 1 where g_X == g_F.
    Both compute on float 0..255 data (on uint8 the Sobel responses wrap around and Qabf collapses).
    Undefined (NaN, with an `UndefinedMetricWarning`) when neither source has an edge, sum(g_A + g_B)
    = 0: the weighted mean has no weight (0/0). That happens when both sources are constant in
    standard mode; in reference mode the zero padding makes the border of a constant non-zero image
    an edge, so only all-zero sources have none.
    """
    _check_mode(mode)
    f, a, b = _grey_triple(fused, a, b)
    padding = "zero" if mode == "reference" else "symmetric"
    g_f, a_f = _sobel_strength_angle(f, padding)
    numerator, denominator = 0.0, 0.0
    for source in (a, b):
        g_x, a_x = _sobel_strength_angle(source, padding)
        numerator += np.sum(_edge_preservation(g_x, a_x, g_f, a_f, mode) * g_x)
        denominator += np.sum(g_x)
    if denominator == 0.0:
        return _undefined("Qabf", "neither source has an edge (sum of Sobel strengths g_A + g_B is 0)")
    return float(numerator / denominator)


# ----------------------------------------------------------------------------------------- SSIM
def _ssim_window(mode: str) -> np.ndarray:
    """1-D factor of the SSIM window (sum 1): 7-tap uniform (reference) or 11-tap Gaussian with
    sigma 1.5 (standard)."""
    if mode == "reference":
        return np.full(SSIM_REFERENCE_WIN, 1.0 / SSIM_REFERENCE_WIN)
    t = np.arange(SSIM_STANDARD_WIN) - (SSIM_STANDARD_WIN - 1) / 2.0
    window = np.exp(-(t**2) / (2.0 * SSIM_STANDARD_SIGMA**2))
    return window / window.sum()


def _ssim_means(f: np.ndarray, sources: list[np.ndarray], mode: str) -> list[float]:
    """Mean SSIM map of f with each source, over the windows inside the image ('valid'; the
    reference's reflect padding only touches the border it crops), sharing f's local moments."""
    window = _ssim_window(mode)
    if min(f.shape) < window.size:
        raise ValueError(f"SSIM ({mode}) needs images of at least {window.size} pixels a side")
    reference = mode == "reference"
    data_range = SSIM_REFERENCE_DATA_RANGE if reference else SSIM_STANDARD_DATA_RANGE
    cov_norm = window.size**2 / (window.size**2 - 1.0) if reference else 1.0  # sample covariance
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_f = _filter_valid(f, window)
    var_f = cov_norm * (_filter_valid(f * f, window) - mu_f * mu_f)
    means = []
    for x in sources:
        mu_x = _filter_valid(x, window)
        var_x = cov_norm * (_filter_valid(x * x, window) - mu_x * mu_x)
        cov = cov_norm * (_filter_valid(f * x, window) - mu_f * mu_x)
        s = (2.0 * mu_f * mu_x + c1) * (2.0 * cov + c2) / ((mu_f**2 + mu_x**2 + c1) * (var_f + var_x + c2))
        means.append(float(s.mean()))
    return means


def ssim(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str = "reference") -> float:
    r"""Structural similarity: SSIM = SSIM(F, A) + SSIM(F, B), with the local map
    S = (2 mu_F mu_X + C1)(2 sigma_FX + C2) / ((mu_F^2 + mu_X^2 + C1)(sigma_F^2 + sigma_X^2 + C2)),
    C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03, averaged over the valid windows.

    Reference: 7 x 7 uniform window, sample covariance (N / (N - 1)), reflect padding then the
    3-pixel border cropped, and data range L = 2 (C1 = 4e-4, C2 = 3.6e-3 on 0..255 data): what the
    evaluator's call of an old scikit-image on float32 input did. Equal to
    skimage.metrics.structural_similarity(F, X, data_range=2) on float input (computed here in
    float64; the evaluator's float32 arithmetic differs by ~1e-5 relative). The tiny constants hardly
    stabilise low-contrast windows, so values are far lower than with L = 255.
    Standard (Wang et al. 2004): 11 x 11 Gaussian window (sigma 1.5, normalised), 'valid' filtering,
    population moments, L = 255.
    """
    _check_mode(mode)
    f, a, b = _grey_triple(fused, a, b)
    return sum(_ssim_means(f, [a, b], mode))


# ------------------------------------------------------------------------------------ all twelve
def evaluate(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str = "reference") -> dict[str, float]:
    """All twelve metrics of fused image `fused` from sources `a` (visible / structural) and `b`
    (infrared / functional), as a dict with keys EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, CC, MSE,
    PSNR.

    Inputs: numpy arrays on the 0..255 scale, (H, W) grey or (H, W, 3) RGB (reduced to rounded BT.601
    luma), any real dtype (converted to float64), all of the same (grey) shape, at least 41 x 41 (for
    VIF), finite. `mode` is "reference" (the published evaluator, quirks included) or "standard"
    (textbook definitions); see each metric's docstring. For numbers comparable with published tables
    pass the fused image through `stretch_to_uint8` first, as the reference protocol does.

    A metric undefined for these images (SCD, CC, Qabf: see their docstrings) is NaN; the call then
    emits one `UndefinedMetricWarning` that names each such metric and why.
    """
    _check_mode(mode)
    f, a, b = _grey_triple(fused, a, b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        values = _all_metrics(f, a, b, mode)
    undefined = []
    for warning in caught:
        if issubclass(warning.category, UndefinedMetricWarning):
            undefined.append(str(warning.message))
        else:  # not ours: passed on unchanged
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if undefined:
        warnings.warn("; ".join(undefined), UndefinedMetricWarning, stacklevel=2)
    return values


def _all_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str) -> dict[str, float]:
    return {
        "EN": en(f, mode),
        "SD": sd(f),
        "SF": sf(f),
        "AG": ag(f),
        "MI": mi(f, a, b, mode),
        "SCD": scd(f, a, b),
        "VIF": vif(f, a, b),
        "Qabf": qabf(f, a, b, mode),
        "SSIM": ssim(f, a, b, mode),
        "CC": cc(f, a, b),
        "MSE": mse(f, a, b),
        "PSNR": psnr(f, a, b, mode),
    }

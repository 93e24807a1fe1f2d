"""Fusion metrics: closed forms on small images, VIF / Qabf against straightforward loop-and-
convolve2d implementations written here from metrics.md, SSIM against scikit-image, and the
pitfalls of metrics.md measured on a real TNO pair (sizes quoted in metrics.md)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

from ddfm_edu import metrics

RNG = np.random.default_rng(20230601)


# ------------------------------------------------------------------------------------- helpers
def smooth_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A 0..255 integer test image with edges, texture, a flat block and saturated corners."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(shape[0] + 8, shape[1] + 8))
    kernel = np.outer(np.hanning(9), np.hanning(9))
    img = convolve2d(noise, kernel / kernel.sum(), mode="valid")
    img = (img - img.min()) / (img.max() - img.min()) * 255
    rows, cols = np.indices(shape)
    img = img + 60.0 * (cols > shape[1] // 2)
    img[: shape[0] // 4, : shape[1] // 4] = 117.0  # flat block: the VIF clamps and G = 0/0
    img[-6:, -6:] = 255.0
    return np.clip(np.round(img), 0, 255)


def read_luma(path) -> np.ndarray:
    """Rounded BT.601 luma of an image file, from its RGB array (not PIL's convert("L"))."""
    return metrics.to_grey(np.asarray(Image.open(path).convert("RGB")), str(path))


def exact_luma(r: int, g: int, b: int) -> int:
    """round((299 R + 587 G + 114 B) / 1000), half to even, in exact rational arithmetic."""
    return round(Fraction(299 * r + 587 * g + 114 * b, 1000))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation, the textbook formula, in the arrays' own dtypes (no conversion)."""
    dx, dy = x - x.mean(), y - y.mean()
    return float(np.sum(dx * dy) / math.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))


def loop_vif(ref: np.ndarray, dist: np.ndarray) -> float:
    """VIFp(ref -> dist) following metrics.md: explicit 2-D Gaussian windows, convolve2d 'valid',
    per-pixel clamps in a Python loop."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        sd = n / 5.0
        win = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                win[i, j] = math.exp(-((i - (n - 1) / 2) ** 2 + (j - (n - 1) / 2) ** 2) / (2 * sd * sd))
        win /= win.sum()
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        s1_map = convolve2d(ref * ref, win, mode="valid") - mu1**2
        s2_map = convolve2d(dist * dist, win, mode="valid") - mu2**2
        s12_map = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        for s1, s2, s12 in zip(s1_map.ravel(), s2_map.ravel(), s12_map.ravel(), strict=True):
            s1, s2 = max(s1, 0.0), max(s2, 0.0)
            g = s12 / (s1 + 1e-10)
            sv = s2 - g * s12
            if s1 < 1e-10:
                g, sv, s1 = 0.0, s2, 0.0
            if s2 < 1e-10:
                g, sv = 0.0, 0.0
            if g < 0:
                sv, g = s2, 0.0
            sv = max(sv, 1e-10)
            num += math.log10(1 + g * g * s1 / (sv + 2.0))
            den += math.log10(1 + s1 / 2.0)
    return 1.0 if den == 0 else num / den


def loop_qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray, standard: bool = False) -> float:
    """Qabf following metrics.md: convolve2d Sobel (zero padding, or symmetric padding), then a
    per-pixel Python loop. Angle and strength-ratio arrays are stored in arrays allocated like the
    input image (np.zeros_like), as the published evaluator does: fine on float input, not on
    uint8 (angles and ratios truncate to integers)."""
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    sobel_y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float32)

    def strength_angle(img):
        if standard:
            padded = np.pad(img, 1, mode="symmetric")
            sx, sy = (convolve2d(padded, k, mode="valid") for k in (sobel_x, sobel_y))
        else:
            sx, sy = (convolve2d(img, k, mode="same") for k in (sobel_x, sobel_y))
        angle = np.zeros_like(img)
        angle[...] = np.reshape(
            [math.pi / 2 if x == 0 else math.atan(y / x) for x, y in zip(sx.flat, sy.flat, strict=True)],
            img.shape,
        )
        return np.sqrt(sx * sx + sy * sy), angle

    g_f, a_f = strength_angle(f)
    num = den = 0.0
    for src in (a, b):
        g_s, a_s = strength_angle(src)
        ratio = np.zeros_like(src)
        ratio[...] = np.reshape(
            [
                (1.0 if standard else gf) if gs == gf else min(gs, gf) / max(gs, gf)
                for gs, gf in zip(g_s.flat, g_f.flat, strict=True)
            ],
            src.shape,
        )
        for idx in np.ndindex(src.shape):
            orient = 1 - abs(float(a_s[idx]) - float(a_f[idx])) / (math.pi / 2)
            q = 0.9994 / (1 + math.exp(min(-15 * (float(ratio[idx]) - 0.5), 700.0)))
            q *= 0.9879 / (1 + math.exp(min(-22 * (orient - 0.8), 700.0)))  # exp(700): Q ~ 0
            num += q * g_s[idx]
            den += g_s[idx]
    return num / den


@pytest.fixture(scope="module")
def tno(shared_data):
    """TNO pair 01: (visible A, infrared B) as rounded-luma float64 arrays."""
    folder = shared_data / "ivf" / "tno"
    return read_luma(folder / "vi" / "01.png"), read_luma(folder / "ir" / "01.png")


# ---------------------------------------------------------------------------- inputs and errors
def test_to_grey_is_exactly_rounded_bt601_luma():
    rgb = RNG.integers(0, 256, size=(40, 50, 3))
    rgb[0, 0], rgb[0, 1] = (0, 80, 110), (0, 4, 168)  # exact ties 59.5 -> 60 and 21.5 -> 22
    expected = np.array([[exact_luma(*map(int, px)) for px in row] for row in rgb], dtype=float)
    for dtype in (np.uint8, np.int32, np.float32, np.float64):
        grey = metrics.to_grey(rgb.astype(dtype))
        assert grey.dtype == np.float64 and grey.shape == (40, 50)
        np.testing.assert_array_equal(grey, expected)
    assert metrics.to_grey(rgb.astype(float))[0, 1] == 22.0
    pil = np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert("L"))
    assert pil[0, 1] == 21  # PIL's convert("L") is not the rounded luma


def test_bad_inputs_raise_clear_errors():
    f = smooth_image((48, 48), 1)
    with pytest.raises(ValueError, match="b has"):
        metrics.evaluate(f, f, f[:, :-1])
    with pytest.raises(ValueError, match="a must have shape"):
        metrics.evaluate(f, np.stack([f, f], -1), f)
    with pytest.raises(ValueError, match="fused contains NaN"):
        bad = f.copy()
        bad[3, 3] = np.nan
        metrics.evaluate(bad, f, f)
    with pytest.raises(ValueError, match="numpy array"):
        metrics.sf(f.tolist())
    with pytest.raises(ValueError, match="mode"):
        metrics.evaluate(f, f, f, mode="matlab")
    with pytest.raises(ValueError, match="at least 41"):
        metrics.vif(f[:40, :40], f[:40, :40], f[:40, :40])


def test_uint8_input_is_converted_not_wrapped():
    f, a, b = smooth_image((64, 80), 2), smooth_image((64, 80), 3), smooth_image((64, 80), 4)
    as_float = metrics.evaluate(f, a, b)
    as_uint8 = metrics.evaluate(*(x.astype(np.uint8) for x in (f, a, b)))
    as_rgb = metrics.evaluate(*(np.repeat(x[..., None], 3, -1).astype(np.uint8) for x in (f, a, b)))
    assert as_float == as_uint8 == as_rgb
    assert list(as_float) == list(metrics.METRIC_NAMES)


# ------------------------------------------------------------------------- closed-form values
def test_entropy_and_standard_deviation_closed_forms():
    two_levels = np.zeros((8, 10))
    two_levels[:, 5:] = 2.0
    assert metrics.en(two_levels) == pytest.approx(1.0, abs=1e-12)  # two equiprobable levels
    assert metrics.sd(two_levels) == pytest.approx(1.0, abs=1e-12)  # population: +-1 about 1
    all_levels = np.arange(256.0).reshape(16, 16)
    assert metrics.en(all_levels) == pytest.approx(8.0, abs=1e-12)
    assert metrics.en(np.full((5, 5), 37.0)) == 0.0
    assert metrics.en(all_levels + 0.4) == pytest.approx(8.0, abs=1e-12)  # rounded first
    # Out of range: reference wraps like np.uint8 (-1 -> 255); standard clips (-1 -> 0).
    out_of_range = np.where(two_levels > 0, 255.0, -1.0)
    assert metrics.en(out_of_range, mode="reference") == 0.0
    assert metrics.en(out_of_range, mode="standard") == pytest.approx(1.0, abs=1e-12)


def test_spatial_frequency_and_average_gradient_of_a_plane():
    rows, cols = np.indices((30, 40), dtype=float)
    plane = 3.0 * rows + 4.0 * cols  # every difference is exact: SF = 5, AG = 5 / sqrt(2)
    assert metrics.sf(plane) == pytest.approx(5.0, rel=1e-12)
    assert metrics.ag(plane) == pytest.approx(5.0 / math.sqrt(2.0), rel=1e-12)
    ramp = 2.0 * cols
    assert metrics.sf(ramp) == pytest.approx(2.0, rel=1e-12)
    checker = 10.0 * ((rows + cols) % 2)  # every neighbour differs by 10; central differences 0
    assert metrics.sf(checker) == pytest.approx(10.0 * math.sqrt(2.0), rel=1e-12)
    # AG: interior central differences vanish; only the 2 one-sided border rows / columns count.
    border = np.zeros((30, 40))
    border[:, [0, -1]] += 100.0
    border[[0, -1], :] += 100.0
    assert metrics.ag(checker) == pytest.approx(np.mean(np.sqrt(border / 2.0)), rel=1e-12)


def test_mutual_information_closed_forms():
    rows, cols = np.indices((32, 32))
    x = 200.0 * (cols % 2)
    # MI(X, X) = H(X) = ln 2 nats for two equiprobable levels: MI(F = X; X) + MI(F; X) = 2 ln 2.
    assert metrics.mi(x, x, x) == pytest.approx(2.0 * math.log(2.0), rel=1e-12)
    levels = RNG.integers(0, 256, size=(64, 64)).astype(float)
    p = np.bincount(levels.astype(int).ravel()) / levels.size
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    assert metrics.mi(levels, levels, levels) == pytest.approx(2.0 * entropy, rel=1e-12)
    y = 100.0 * (rows % 2)  # independent of x: MI = 0 exactly
    assert metrics.mi(x, x, y) == pytest.approx(math.log(2.0), rel=1e-12)
    assert metrics.mi(x, y, 50.0 + y) == pytest.approx(0.0, abs=1e-12)
    # Reference: one bin per distinct value, so a raw float F with all values distinct determines
    # any source: MI(F, X) = H(X). Standard quantises F to 8 bits first (here back to x).
    jitter = x + RNG.uniform(-0.4, 0.4, x.shape)
    assert np.unique(jitter).size == jitter.size
    assert metrics.mi(jitter, x, y, mode="reference") == pytest.approx(2 * math.log(2), rel=1e-12)
    assert metrics.mi(jitter, x, y, mode="standard") == pytest.approx(math.log(2), rel=1e-12)


def test_correlations_errors_and_psnr_closed_forms():
    a, b = smooth_image((40, 48), 5), smooth_image((40, 48), 6)
    # F = A + B: F - B = A and F - A = B, so SCD = r(A, A) + r(B, B) = 2.
    assert metrics.scd(a + b, a, b) == pytest.approx(2.0, rel=1e-12)
    # CC: r(A, 2A + 3) = 1 and r(5 - A, 2A + 3) = -1.
    assert metrics.cc(2.0 * a + 3.0, a, 5.0 - a) == pytest.approx(0.0, abs=1e-12)
    assert metrics.cc(2.0 * a + 3.0, a, a) == pytest.approx(1.0, rel=1e-12)
    f = np.clip(a, 10, 200)
    assert metrics.mse(f, f + 1.0, f - 3.0) == pytest.approx(5.0, rel=1e-12)  # (1 + 9) / 2
    assert metrics.psnr(f, f + 1.0, f - 3.0) == pytest.approx(10 * math.log10(200.0**2 / 5.0))
    assert metrics.psnr(f, f + 1.0, f - 3.0, mode="standard") == pytest.approx(
        10 * math.log10(255.0**2 / 5.0)
    )
    assert metrics.scd(f, a, b) == pytest.approx(pearson(a, f - b) + pearson(b, f - a), rel=1e-12)


def test_stretch_to_uint8_is_the_saved_protocol():
    x = np.array([[-1.0, 0.0], [1.0, 3.0]])  # stretch: 0, 63.75, 127.5, 255
    q = metrics.stretch_to_uint8(x)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [[0, 64], [127, 255]])  # imageio: x.5 rounds down
    assert not metrics.stretch_to_uint8(np.full((3, 3), 7.0)).any()
    f = smooth_image((50, 60), 7) * 0.3 + 40.0
    np.testing.assert_array_equal(
        metrics.stretch_to_uint8(f), np.floor((f - f.min()) / np.ptp(f) * 255 + 0.499999999)
    )


def test_round_both_ways_brackets_any_rounding_noise_below_the_window():
    x = np.array([0.0, 3.3, 3.5, 3.5 + 5e-5, 3.5 - 5e-5, 3.5 + 2e-4, 4.7, 254.5, 255.0])
    low, high = metrics.round_both_ways(x)
    np.testing.assert_array_equal(low, [0, 3, 3, 3, 3, 4, 5, 254, 255])
    np.testing.assert_array_equal(high, [0, 3, 4, 4, 4, 4, 5, 255, 255])
    # against brute force: every rounding of x + e, |e| <= window, lies in [low, high], both ends taken
    values = np.random.default_rng(3).uniform(0, 20, 20_000)
    values[::7] = (
        np.round(values[::7]) + 0.5 + np.random.default_rng(4).uniform(-2e-4, 2e-4, values[::7].size)
    )
    low, high = metrics.round_both_ways(values)
    shifted = np.rint(values[None] + np.linspace(-1e-4, 1e-4, 201)[:, None])
    np.testing.assert_array_equal(shifted.min(axis=0), low)
    np.testing.assert_array_equal(shifted.max(axis=0), high)
    with pytest.raises(ValueError, match="window"):
        metrics.round_both_ways(values, window=0.5)


# ------------------------------------------------------------------ degenerate images (0 / 0 cases)
def undefined_metrics(fused, a, b, mode):
    """evaluate(...) and the metrics its single UndefinedMetricWarning names (none: no warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = metrics.evaluate(fused, a, b, mode)
    assert len(caught) <= 1, [str(w.message) for w in caught]
    if not caught:
        return values, set()
    assert caught[0].category is metrics.UndefinedMetricWarning
    return values, {part.split(" is undefined")[0] for part in str(caught[0].message).split("; ")}


def degenerate(case):
    """(fused, a, b) for a degenerate case, from two textured 48 x 48 sources."""
    a, b = smooth_image((48, 48), 11), smooth_image((48, 48), 12)
    grey, black = np.full_like(a, 90.0), np.zeros_like(a)
    return {
        "constant fused": (grey, a, b),
        "constant sources": (a, grey, grey),
        "fused == a == b": (a, a, a),
        "fused == a": (a, a, b),
        "all equal and constant": (grey, grey, grey),
        "black sources": (a, black, black),
    }[case]


# the metrics undefined (NaN, named in the warning) in reference and in standard mode: SCD and CC
# correlate with a constant image; Qabf has no source edge (reference zero padding makes the border of
# a constant grey source an edge, not of a black one)
UNDEFINED = {
    "constant fused": ({"CC"}, {"CC"}),
    "constant sources": ({"SCD", "CC"}, {"SCD", "CC", "Qabf"}),
    "fused == a == b": ({"SCD"}, {"SCD"}),
    "fused == a": ({"SCD"}, {"SCD"}),
    "all equal and constant": ({"SCD", "CC"}, {"SCD", "CC", "Qabf"}),
    "black sources": ({"SCD", "CC", "Qabf"}, {"SCD", "CC", "Qabf"}),
}


@pytest.mark.parametrize("case", UNDEFINED)
@pytest.mark.parametrize("mode", metrics.MODES)
def test_degenerate_images_give_defined_values_or_one_warning(case, mode):
    fused, a, b = degenerate(case)
    values, undefined = undefined_metrics(fused, a, b, mode)
    assert undefined == UNDEFINED[case][metrics.MODES.index(mode)]
    assert {k for k, v in values.items() if np.isnan(v)} == undefined
    finite = {k for k, v in values.items() if np.isfinite(v)}
    if np.array_equal(fused, a) and np.array_equal(fused, b):
        assert values["PSNR"] == math.inf and values["MSE"] == 0.0  # MSE = 0: the limit +inf
        assert finite == set(values) - undefined - {"PSNR"}
    else:
        assert finite == set(values) - undefined


def test_degenerate_values_are_the_documented_ones():
    a, b = smooth_image((48, 48), 11), smooth_image((48, 48), 12)
    black = np.zeros_like(a)
    # reference PSNR uses peak = max(F): an all-black fused image has 10 log10(0 / MSE) = -inf
    assert metrics.psnr(black, a, b) == -math.inf
    assert metrics.psnr(black, a, b, mode="standard") == pytest.approx(
        10 * math.log10(255.0**2 / metrics.mse(black, a, b))
    )
    # a fused image equal to both (non-constant) sources: CC = 1, PSNR = inf, SCD undefined
    with pytest.warns(
        metrics.UndefinedMetricWarning, match=r"SCD is undefined \(NaN\): F - B and F - A are constant"
    ):
        assert np.isnan(metrics.scd(a, a, a))
    assert metrics.cc(a, a, a) == pytest.approx(1.0, rel=1e-12)
    # a constant image that is not exactly representable: its mean is not exactly its value, yet CC
    # is reported undefined, not a correlation of rounding errors
    with pytest.warns(metrics.UndefinedMetricWarning, match="CC is undefined.*F is constant"):
        assert np.isnan(metrics.cc(np.full_like(a, 0.1), a, b))
    with pytest.warns(metrics.UndefinedMetricWarning, match="Qabf is undefined.*neither source has an edge"):
        assert np.isnan(metrics.qabf(a, black, black))


def test_normal_images_give_no_warning():
    a, b = smooth_image((48, 48), 11), smooth_image((48, 48), 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in metrics.MODES:
            assert all(np.isfinite(v) for v in metrics.evaluate(np.round((a + b) / 2), a, b, mode).values())


# --------------------------------------------------- VIF, Qabf, SSIM against independent versions
@pytest.fixture(scope="module")
def triple():
    a, b = smooth_image((56, 64), 8), smooth_image((56, 64), 9)
    f = np.round(0.5 * a + 0.5 * b + RNG.normal(0, 4, a.shape))
    f[: a.shape[0] // 4, : a.shape[1] // 4] = 117.0  # gradients equal to the sources' (0) there
    return f, a, b


def test_vif_matches_a_loop_implementation(triple, tno):
    f, a, b = triple
    assert metrics.vif(f, a, b) == pytest.approx(loop_vif(a, f) + loop_vif(b, f), rel=1e-9)
    crop_a, crop_b = tno[0][200:264, 300:380], tno[1][200:264, 300:380]
    crop_f = np.maximum(crop_a, crop_b)
    expected = loop_vif(crop_a, crop_f) + loop_vif(crop_b, crop_f)
    assert metrics.vif(crop_f, crop_a, crop_b) == pytest.approx(expected, rel=1e-9)
    assert metrics.vif(a, a, a) == pytest.approx(2.0, rel=1e-9)  # identical images: 1 each


@pytest.mark.parametrize("mode", ["reference", "standard"])
def test_qabf_matches_a_loop_implementation(triple, mode):
    f, a, b = triple
    expected = loop_qabf(f, a, b, standard=mode == "standard")
    assert metrics.qabf(f, a, b, mode=mode) == pytest.approx(expected, rel=1e-9)


def test_ssim_matches_scikit_image(triple, tno):
    f, a, b = triple
    crop_a, crop_b = tno[0][100:220, 200:360], tno[1][100:220, 200:360]
    crop_f = np.round((crop_a + crop_b) / 2)
    for x, y, z in ((f, a, b), (crop_f, crop_a, crop_b)):
        reference = sum(structural_similarity(x, s, data_range=2) for s in (y, z))
        standard = sum(
            structural_similarity(
                x, s, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            for s in (y, z)
        )
        assert metrics.ssim(x, y, z) == pytest.approx(reference, rel=1e-9)
        assert metrics.ssim(x, y, z, mode="standard") == pytest.approx(standard, rel=1e-9)
    assert metrics.ssim(a, a, a) == pytest.approx(2.0, rel=1e-12)


# ------------------------------------------------------------- the pitfalls, on a real TNO pair
def test_tno_mean_fusion_reference_numbers_and_pitfalls(tno):
    """metrics.md's 'sizes of the effects' refer to the rounded mean round((A + B) / 2), unstretched
    (the MI pair to a 0.6 IR + 0.4 VIS blend, see the next test)."""
    a, b = tno
    f = np.round((a + b) / 2)
    ref = metrics.evaluate(f, a, b)
    quoted = {"SSIM": 1.02, "SF": 6.67, "SCD": 1.77, "Qabf": 0.331, "VIF": 0.508}
    for name, value in quoted.items():
        assert ref[name] == pytest.approx(value, abs=0.006), name
    # SSIM data range 2 (reference) vs 255: 1.02 vs 1.53.
    ssim_255 = sum(structural_similarity(f, s, data_range=255) for s in (a, b))
    assert ssim_255 == pytest.approx(1.53, abs=0.006)
    assert metrics.ssim(f, a, b, mode="standard") > 1.5 * ref["SSIM"]
    # uint8 arithmetic: SF 6.67 -> 5.01, SCD 1.77 -> -1.02, Qabf 0.33 -> 0.002.
    f8, a8, b8 = (x.astype(np.uint8) for x in (f, a, b))
    naive_sf = math.sqrt(np.mean(np.diff(f8, axis=1) ** 2) + np.mean(np.diff(f8, axis=0) ** 2))
    assert naive_sf == pytest.approx(5.01, abs=0.01)
    assert pearson(a8, f8 - b8) + pearson(b8, f8 - a8) == pytest.approx(-1.02, abs=0.01)
    crop = np.s_[250:290, 330:380]  # the loop version is slow: compare on a crop
    assert loop_qabf(f8[crop], a8[crop], b8[crop]) < 0.02 < 0.2 < loop_qabf(f[crop], a[crop], b[crop])
    assert metrics.sf(f8) == ref["SF"] and metrics.scd(f8, a8, b8) == ref["SCD"]
    # [0, 1] data: VIF 0.508 -> 0.546 (sigma_n^2 = 2 is absolute).
    assert metrics.vif(f / 255, a / 255, b / 255) == pytest.approx(0.546, abs=0.002)
    # Zero vs symmetric padding in Qabf: 0.331 vs 0.306.
    assert metrics.qabf(f, a, b, mode="standard") == pytest.approx(0.306, abs=0.002)
    # Min-max stretch before saving raises SD (metrics.md: +17 %; measured +18.6 % here).
    assert metrics.sd(metrics.stretch_to_uint8(f)) / ref["SD"] == pytest.approx(1.17, abs=0.02)


def test_tno_raw_float_mutual_information(tno):
    """MI 1.28 (quantised) -> 3.78 (raw float) is the 0.6 IR + 0.4 VIS blend of metrics.md."""
    a, b = tno
    blend = 0.6 * b + 0.4 * a
    assert metrics.mi(np.round(blend), a, b) == pytest.approx(1.28, abs=0.005)
    assert metrics.mi(blend, a, b) == pytest.approx(3.78, abs=0.005)
    assert metrics.mi(blend, a, b, mode="standard") == metrics.mi(np.round(blend), a, b)


# The published evaluator (CDDFuse utils/Evaluator.py, its SSIM call given data_range=2; run with
# scikit-learn 1.9, OpenCV 5.0, scikit-image 0.26, reading the PNGs with its own image_read_cv2) on
# TNO 01, the fused image being the mean or max fusion saved as the protocol does (stretch, 8 bits).
PUBLISHED_EVALUATOR_TNO01 = {
    "mean": {"EN": 6.62458, "SD": 27.7141, "SF": 7.9057, "AG": 3.08701, "MI": 1.49403,
             "SCD": 1.83853, "VIF": 0.536119, "Qabf": 0.414124, "SSIM": 1.07035, "CC": 0.397175,
             "MSE": 1827.12, "PSNR": 15.5131},
    "max": {"EN": 6.56787, "SD": 58.2522, "SF": 12.3504, "AG": 4.4092, "MI": 4.47894,
            "SCD": 1.59723, "VIF": 0.957899, "Qabf": 0.553207, "SSIM": 0.911672, "CC": 0.318831,
            "MSE": 3253.74, "PSNR": 13.007},
}  # fmt: skip


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_tno_reference_mode_reproduces_the_published_evaluator(tno, fusion):
    a, b = tno
    fused = (a + b) / 2 if fusion == "mean" else np.maximum(a, b)
    values = metrics.evaluate(metrics.stretch_to_uint8(fused), a, b)
    for name, expected in PUBLISHED_EVALUATOR_TNO01[fusion].items():
        # 1e-4: the evaluator works on float32 images (SSIM differs by up to ~2e-5 relative).
        assert values[name] == pytest.approx(expected, rel=1e-4), name

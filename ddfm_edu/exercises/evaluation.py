"""Checkers of notebook 08 (evaluation): two no-reference fusion metrics, the entropy EN and
the spatial frequency SF of a grey image."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ddfm_edu import metrics
from ddfm_edu.exercises.harness import Case, check


def _grey_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 256, (40, 50)).astype(np.float64)
    return [
        Case("a ramp over all 256 levels", (np.tile(np.arange(256.0), (4, 1)),), "a 4 x 256 ramp 0..255"),
        Case("a two-level image", (np.repeat([[10.0, 200.0]], 6, axis=0),), "half 10, half 200 (6 x 2)"),
        Case("a noisy uint8 image", (noisy.astype(np.uint8),), "random uint8 values, 40 x 50"),
        Case("non-integer values", (noisy + rng.uniform(-0.45, 0.45, noisy.shape),),
             "the same image + uniform noise in (-0.45, 0.45) (float64)"),
    ]  # fmt: skip


def check_entropy(fn: Callable) -> bool:
    """fn(f) = EN of a grey image on 0..255 (numpy): -sum p_l log2 p_l over the 256-bin histogram
    of round(f), empty bins skipped (`ddfm_edu.metrics.en`)."""
    cases = _grey_cases()

    def per_value(f):
        _, counts = np.unique(np.asarray(f, dtype=np.float64), return_counts=True)
        p = counts / counts.sum()
        return -(p * np.log2(p)).sum()

    hints = [
        (lambda f: metrics.en(f) * np.log(2), "EN is in bits: log base 2, not the natural log"),
        (lambda f: metrics.en(f) * np.log10(2), "EN is in bits: log base 2, not log10"),
        (per_value, "round to the 256 grey levels first: a float image has one value per pixel"),
    ]
    return check("check_entropy", fn, metrics.en, cases, hints)


def check_spatial_frequency(fn: Callable) -> bool:
    """fn(f) = SF = sqrt(RF^2 + CF^2) of a grey image (numpy, float or uint8 on 0..255), RF^2 and
    CF^2 the means of the squared horizontal and vertical neighbour differences (`metrics.sf`)."""
    cases = _grey_cases()

    def naive(f):  # differences and squares in f's own dtype: uint8 wraps around
        return np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2))

    def no_root(f):
        return metrics.sf(f) ** 2

    def root_sum(f):
        f = np.asarray(f, dtype=np.float64)
        return np.sqrt(np.mean(np.diff(f, axis=1) ** 2)) + np.sqrt(np.mean(np.diff(f, axis=0) ** 2))

    hints = [
        (naive, "convert to float first: on uint8, differences (and squares) wrap around modulo 256"),
        (no_root, "take the square root of RF^2 + CF^2"),
        (root_sum, "SF = sqrt(RF^2 + CF^2), not RF + CF"),
    ]
    return check("check_spatial_frequency", fn, metrics.sf, cases, hints)

"""Does a remedied DDFM fuse? Every real pair at full resolution, against the average and the release.

    python benchmarks/remedies.py [--variants one-sided,released] [--steps 100] [--size N]
                                  [--pairs N] [--threads N]

For each real pair of DDFM_EDU_SHARED_DATA (or ../shared/data): the luma of the sources quantised
to 8 bits, fused at full resolution (or, with --size, shorter side scaled to N and centre-cropped)
by DDFM with the bundled prior (DDIM, --steps, seed 0, psi = 0.5, eta = 1e-3) for each EM variant,
and by the average, the pixel-wise maximum and the two source copies (reference rows). Every output
goes through the same 8-bit conversion (`stretch_to_uint8`) before `metrics.evaluate` (reference
mode). Per output: the six paper metrics, the two-band infrared share (`ddfm_edu.share`: coarse /
detail) and the copy test. For the released variant also how close it is to the min-max stretched
average (Pearson correlation and mean absolute difference on [0, 1]). Then the mean per metric and,
for each DDFM variant, on how many of the six means it beats the average and the released variant,
and on how many pairs it beats each on at least 4 of 6.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from prior_quality import FUSION_METRICS, fusion_sources, pairs, shared_data

from ddfm_edu.baselines import average, maximum
from ddfm_edu.data import stretch, to_array, to_tensor, to_uint8
from ddfm_edu.metrics import evaluate, stretch_to_uint8
from ddfm_edu.priors import load_prior
from ddfm_edu.sample import ddfm
from ddfm_edu.share import is_copy, two_band_share


def closeness(f: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """(Pearson correlation, mean absolute difference) of f and g, both min-max stretched to [0, 1]."""
    a, b = ((stretch(x).flatten() + 1.0) / 2.0 for x in (f, g))
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1]), float((a - b).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="one-sided,released", help="DDFM EM variants, comma-separated")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=None, help="default: full resolution")
    parser.add_argument("--pairs", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = load_prior("embedded", device="cpu")
    variants = args.variants.split(",")
    methods = {f"DDFM {name}": name for name in variants}
    methods.update({"average": average, "maximum": maximum, "copy infrared": lambda i, v: i,
                    "copy visible": lambda i, v: v})
    found = pairs(shared_data())[: args.pairs]
    print(f"{len(found)} pairs from {shared_data()}; size: {args.size or 'full'}; DDFM: embedded prior, "
          f"DDIM {args.steps} steps, seed 0; {torch.get_num_threads()} threads")
    print(f"{'pair':26s}{'method':18s}" + "".join(f"{m:>8s}" for m in FUSION_METRICS)
          + f"{'share c':>9s}{'share d':>9s}  copy   seconds")
    scores = {m: [] for m in methods}
    copies = {m: 0 for m in methods}
    for name, pair in found:
        if args.size:
            i, v, i8, v8 = fusion_sources(pair, args.size, "resize")
        else:
            i8, v8 = (to_uint8(x, stretch_luma=False) for x in (pair.i, pair.v))
            i, v = to_tensor(i8), to_tensor(v8)
        for method, how in methods.items():
            start = time.perf_counter()
            if isinstance(how, str):
                f = ddfm(i, v, prior, steps=args.steps, em_variant=how, seed=0, progress=False).fused
            else:
                f = how(i, v)
            seconds = time.perf_counter() - start
            values = evaluate(stretch_to_uint8(to_array(f)), v8, i8)
            scores[method].append([values[m] for m in FUSION_METRICS])
            share = two_band_share(f, i, v)
            copy = bool(is_copy(share)[0])
            copies[method] += copy
            print(f"{name:26s}{method:18s}" + "".join(f"{x:8.3f}" for x in scores[method][-1])
                  + f"{share[0, 0]:9.2f}{share[0, 1]:9.2f}  {'COPY' if copy else '-':4s} {seconds:8.1f}",
                  flush=True)
            if how == "released":
                corr, mad = closeness(f, average(i, v))
                print(f"{'':26s}released vs stretched average: correlation {corr:.4f}, "
                      f"mean |difference| {mad:.4f} (on [0, 1])", flush=True)

    table = {m: np.array(s) for m, s in scores.items()}
    print(f"\nMeans over {len(found)} pairs (stretch_to_uint8, reference mode); copies: outputs that "
          "are a copy of one source (two-band share >= 0.9 or <= 0.1 in both bands)")
    print(f"{'method':18s}" + "".join(f"{m:>8s}" for m in FUSION_METRICS) + "  copies")
    for method, t in table.items():
        print(f"{method:18s}" + "".join(f"{x:8.3f}" for x in t.mean(axis=0)) + f"  {copies[method]}/{len(t)}")
    rivals = ["average"] + (["DDFM released"] if "DDFM released" in table else [])
    print("\nFor each DDFM variant against each rival: metrics (of 6) whose mean it beats; pairs on "
          "which it beats the rival on >= 4 of 6")
    for method in (m for m in table if m.startswith("DDFM")):
        for rival in rivals:
            if rival == method:
                continue
            means = int(np.sum(table[method].mean(axis=0) > table[rival].mean(axis=0)))
            per_pair = int(np.sum((table[method] > table[rival]).sum(axis=1) >= 4))
            print(f"{method:18s} vs {rival:14s}: means {means}/6; pairs {per_pair}/{len(found)}")


if __name__ == "__main__":
    with torch.no_grad():
        main()

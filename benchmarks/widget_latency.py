"""Latency of the explorers of ddfm_edu.widgets: the time from a slider's value change to the new
picture's bytes in the explorer's Image widget (the observer runs synchronously in the kernel, so the
time of `slider.value = x` is that latency; the browser adds the transfer and the decoding).

Moves, on the bundled camera pair at the notebooks' toy sizes:
  EM iteration      em_explorer (128 x 128, 60 iterations): the iteration slider, every value once
                    (the first time each is shown)
  EM psi            the same explorer: psi moved to new values (each runs em_fuse once, then draws)
  DDFM step         diffusion_explorer of a 25-step run (96 x 96, embedded prior): the step slider,
                    every value once
Printed: median and 90th percentile of the wall time per move, and the median CPU time of this
process per move (the work runs on one thread, so on an idle machine the wall time is about the CPU
time), in milliseconds (target: median at most 150 ms on a 2-core CPU).

Run: python benchmarks/widget_latency.py [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from ddfm_edu import widgets  # noqa: E402
from ddfm_edu.data import load_pair, sample_pairs  # noqa: E402
from ddfm_edu.priors import load_prior  # noqa: E402
from ddfm_edu.sample import ddfm  # noqa: E402


def move(slider, values) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per move of `slider` to each of `values`."""
    times = []
    for value in values:
        wall, cpu = time.perf_counter(), time.process_time()
        slider.value = value
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def report(name: str, times: list[tuple[float, float]]) -> None:
    wall = sorted(1000 * t for t, _ in times)
    cpu = statistics.median(1000 * c for _, c in times)
    p90 = wall[min(len(wall) - 1, int(0.9 * len(wall)))]
    print(
        f"{name:16s} {len(wall):4d} moves   median {statistics.median(wall):6.0f} ms   p90 {p90:6.0f} ms   "
        f"CPU median {cpu:6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    camera = next(p for p in sample_pairs("ivf") if p.name == "camera")
    pair = load_pair(camera.ir, camera.vis)

    i, v = pair.i[..., 42:170, 42:170], pair.v[..., 42:170, 42:170]
    box = widgets.em_explorer(i, v, iters=60)
    iteration = widgets.find_control(box, "iteration")
    report("EM iteration", move(iteration, [j for j in range(60, -1, -1) if j != iteration.value]))
    report("EM psi", move(widgets.find_control(box, "psi"), [0.2, 1.0, 2.0, 5.0, 0.1, 0.05, 0.02]))

    i, v = pair.i[..., 30:126, 40:136], pair.v[..., 30:126, 40:136]
    trace = ddfm(i, v, load_prior("embedded", "cpu"), steps=25, seed=0, record=True, progress=False).trace
    box = widgets.diffusion_explorer(trace)
    step = widgets.find_control(box, "step")
    report("DDFM step", move(step, [k for k in range(25) if k != step.value]))


if __name__ == "__main__":
    main()

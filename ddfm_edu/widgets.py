r"""ipywidgets explorers of EM and DDFM, built on the figures of `ddfm_edu.figures`.

* `em_explorer(i, v)`: EM alone, a slider over the iterations and controls for the variant, psi,
  eta and phi. Each parameter set runs `em_fuse` once (cached); the iteration slider only indexes
  that trace.
* `diffusion_explorer(trace)`: a recorded DDFM run, a slider over its kept steps; it only reads
  the trace.
* `ddfm_explorer()`: the whole method live: a pair (bundled, or the reader's own), the EM variant,
  psi, eta, phi and the number of steps; each change re-runs `ddfm` on a small version of the pair
  and shows the output beside the sources, their average and where it lies between them.

One figure per explorer is made once and updated in place (`draw_*(..., figure=)`), then rendered
to PNG bytes into an Image widget: a slider move shows its picture in tens of milliseconds
(benchmarks/widget_latency.py). Callbacks print nothing. The drawing functions are importable from
here as before.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ddfm_edu import em
from ddfm_edu.data import ImagePair, PairPaths, load_pair, resize_pair, sample_pairs
from ddfm_edu.em import EMTrace, em_fuse
from ddfm_edu.figures import (
    MapFigure,
    comparison_figure,
    diffusion_maps,
    draw_diffusion_step,
    draw_em_maps,
    draw_fusion,
    draw_maps,
    em_maps,
    figure_png,
    fusion_maps,
    position,
)
from ddfm_edu.priors import Prior, load_prior
from ddfm_edu.sample import DDFMTrace, ddfm

__all__ = [
    "MapFigure", "comparison_figure", "ddfm_explorer", "diffusion_explorer", "diffusion_maps",
    "draw_diffusion_step", "draw_em_maps", "draw_fusion", "draw_maps", "em_explorer", "em_maps",
    "figure_png", "find_control", "fusion_maps", "one_two_five", "position", "takes_phi",
]  # fmt: skip

_STYLE = {"description_width": "initial"}  # the whole description, never cut


def find_control(box, description: str):
    """The control with this description inside an explorer (nested ipywidgets boxes), or None."""
    for child in getattr(box, "children", ()):
        if getattr(child, "description", None) == description:
            return child
        found = find_control(child, description)
        if found is not None:
            return found
    return None


def one_two_five(low: float, high: float) -> list[tuple[str, float]]:
    """Slider options 1, 2, 5 x 10^e from low to high (labels, values): exact decimal values, so
    the library defaults (psi = 0.5, eta = 1e-3) are among them, unlike a log slider's steps."""
    exponents = range(int(f"{low:e}".split("e")[1]), int(f"{high:e}".split("e")[1]) + 1)
    values = [float(f"{m}e{e}") for e in exponents for m in (1, 2, 5)]
    return [(f"{x:g}", x) for x in values if low <= x <= high]


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with n torch threads, then restore the previous number. Small images (up to 128 px) run
    several times faster on one thread than on two that wait on each other on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def takes_phi(variant: str) -> bool:
    """Whether EM `variant` accepts a chosen phi (`em.EMConfig` says so by refusing it or not)."""
    try:
        em.EMConfig(variant=variant, phi=1.0)
    except ValueError:
        return False
    return True


def _image_widget():
    import ipywidgets as widgets

    # at its own size (not stretched to the box: crisp), narrower only where the page is
    return widgets.Image(
        format="png", layout=widgets.Layout(align_self="flex-start", max_width="100%", height="auto")
    )


def _scale_controls(widgets):
    """psi, eta (1-2-5 steps through the library defaults, `em.EMConfig`) and phi sliders, acting
    when released, and their legend."""
    kwargs = dict(style=_STYLE, continuous_update=False, layout=widgets.Layout(width="330px"))
    defaults = em.EMConfig()
    psi = widgets.SelectionSlider(options=one_two_five(1e-3, 100), value=defaults.psi, description="psi",
                                  **kwargs)  # fmt: skip
    eta = widgets.SelectionSlider(options=one_two_five(1e-4, 100), value=defaults.eta, description="eta",
                                  **kwargs)  # fmt: skip
    phi = widgets.FloatSlider(value=0.0, min=0.0, max=4.0, step=0.25, description="phi", **kwargs)
    legend = widgets.HTML(
        "psi: weight of the smoothness term &middot; eta: HQS penalty &middot; "
        "phi = 0: EM learns the scales gamma, rho; phi &gt; 0 holds rho = gamma / phi&sup2; "
        "(variants that accept it; the slider is greyed out otherwise)"
    )
    return psi, eta, phi, legend


def _variant_control(widgets, value: str):
    return widgets.ToggleButtons(
        options=list(em.VARIANTS), value=value, description="EM variant", style=_STYLE
    )


def em_explorer(i: torch.Tensor, v: torch.Tensor, *, iters: int = 30, variant: str = "paper"):
    """An ipywidgets explorer of EM alone on the pair (i, v) (1, 1, H, W): a slider over the
    iterations, the variant (em.VARIANTS) and sliders for psi, eta and phi (phi = 0 lets EM learn
    gamma and rho; phi > 0 fixes rho = gamma / phi^2, see `ddfm_edu.em.em_fuse`; greyed out for
    variants without it). Each parameter set runs `em_fuse` once (cached); moving the iteration
    slider only indexes that trace."""
    import ipywidgets as widgets

    traces: dict[tuple[str, float, float, float | None], EMTrace] = {}

    iteration = widgets.IntSlider(
        value=iters, min=0, max=iters, description="iteration", style=_STYLE,
        layout=widgets.Layout(width="500px"),
    )  # fmt: skip
    choice = _variant_control(widgets, variant)
    psi, eta, phi, legend = _scale_controls(widgets)
    image = _image_widget()
    figure: MapFigure | None = None

    def redraw(_change=None) -> None:
        nonlocal figure
        phi.disabled = not takes_phi(choice.value)
        key = (choice.value, psi.value, eta.value, None if phi.disabled or phi.value == 0 else phi.value)
        if key not in traces:
            with _torch_threads(1):
                _, traces[key] = em_fuse(
                    i, v, iters=iters, variant=key[0], psi=key[1], eta=key[2], phi=key[3], record=True
                )
        figure = draw_em_maps(traces[key], iteration.value, figure=figure)
        image.value = figure_png(figure)

    for control in (iteration, choice, psi, eta, phi):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([iteration, choice, widgets.HBox([psi, eta, phi]), legend, image])


def diffusion_explorer(trace: DDFMTrace, b: int = 0):
    """An ipywidgets explorer of a recorded DDFM run: a slider over the kept steps (shown as
    "n of K: t = ...", numbered from 1 like the figure's title) with x_t, f_tilde, f_hat, their
    difference, m_bar, n_bar, k and |u|. It only reads the trace."""
    import ipywidgets as widgets

    count = len(trace)
    step = widgets.SelectionSlider(
        options=[(f"{n + 1} of {count}: t = {int(trace.t[n])}", n) for n in range(count)],
        value=count - 1, description="step", style=_STYLE, layout=widgets.Layout(width="500px"),
    )  # fmt: skip
    image = _image_widget()
    figure: MapFigure | None = None

    def redraw(_change=None) -> None:
        nonlocal figure
        figure = draw_diffusion_step(trace, step.value, b, figure=figure)
        image.value = figure_png(figure)

    step.observe(redraw, names="value")
    redraw()
    return widgets.VBox([step, image])


def _bundled_pairs() -> dict[str, PairPaths]:
    return {paths.name: paths for paths in sample_pairs()}


def ddfm_explorer(
    prior: Prior | str = "embedded",
    pairs: dict[str, ImagePair | PairPaths] | None = None,
    *,
    size: int = 64,
    steps: int = 25,
    seed: int = 0,
):
    """A live explorer of the whole method: pick a pair, the EM variant (em.VARIANTS), psi, eta,
    phi (where the variant and `ddfm` accept it) and the number of steps; every change re-runs
    `ddfm` (DDIM, start noise from `seed`) on the pair resized to `size` pixels on its longer side
    (64, 96 or 128: about a second on a CPU) and shows the output beside the sources, their
    average, the output minus the average and where the output lies between the sources.

    prior: a Prior or a `load_prior` name. pairs: name -> ImagePair (`load_pair(ir, vis)`) or
    PairPaths; None: the bundled sample pairs. The sliders act when released."""
    import ipywidgets as widgets

    if isinstance(prior, str):
        prior = load_prior(prior)
    pairs = _bundled_pairs() if pairs is None else dict(pairs)
    if not pairs:
        raise ValueError("pairs must name at least one pair, got an empty dict")
    for name, pair in pairs.items():
        if not isinstance(pair, (ImagePair, PairPaths)):
            raise TypeError(
                f"pairs[{name!r}] must be an ImagePair (ddfm_edu.data.load_pair(ir, vis)) or PairPaths, "
                f"got {type(pair).__name__}"
            )
    if size not in (64, 96, 128):
        raise ValueError(f"size must be 64, 96 or 128, got {size!r}")

    @functools.cache
    def resized(name: str, longest: int) -> ImagePair:
        pair = pairs[name]
        if isinstance(pair, PairPaths):
            pair = load_pair(pair.ir, pair.vis)
        return resize_pair(pair, longest)

    layout = widgets.Layout(width="330px")
    choose_pair = widgets.Dropdown(options=list(pairs), description="pair", style=_STYLE, layout=layout)
    choose_size = widgets.Dropdown(options=[64, 96, 128], value=size, description="size (px)", style=_STYLE)
    choice = _variant_control(widgets, em.EMConfig().variant)
    psi, eta, phi, legend = _scale_controls(widgets)
    step_count = widgets.IntSlider(
        value=steps, min=5, max=50, step=5, description="steps", continuous_update=False, style=_STYLE,
        layout=layout,
    )  # fmt: skip
    status = widgets.HTML()
    image = _image_widget()
    figure: MapFigure | None = None

    def run(_change=None) -> None:
        nonlocal figure
        phi.disabled = not takes_phi(choice.value)
        pair = resized(choose_pair.value, choose_size.value)
        i, v = (x.to(prior.device) for x in (pair.i, pair.v))
        options = dict(em_variant=choice.value, psi=psi.value, eta=eta.value)
        if not phi.disabled and phi.value > 0:
            options["phi"] = phi.value
        start = time.perf_counter()
        with _torch_threads(1):
            fused = ddfm(i, v, prior, steps=step_count.value, seed=seed, progress=False, **options).fused
        seconds = time.perf_counter() - start
        t_bar = position(fused, i, v)
        settings = ", ".join(f"{k} {value:g}" if k != "em_variant" else value for k, value in options.items())
        title = f"{pair.name}, {i.shape[-1]} x {i.shape[-2]} px, {step_count.value} steps, {settings}"
        figure = draw_fusion(i, v, fused, title=title, figure=figure)
        image.value = figure_png(figure)
        status.value = (
            f"DDFM ran in {seconds:.1f} s; the output lies at t = {t_bar:.2f} between the sources "
            "(least squares over the pixels: 0 = visible v, 1 = infrared i, 0.5 = the average)"
        )

    for control in (choose_pair, choose_size, choice, psi, eta, phi, step_count):
        control.observe(run, names="value")
    run()
    return widgets.VBox([
        widgets.HBox([choose_pair, choose_size, step_count]), choice, widgets.HBox([psi, eta, phi]),
        legend, status, image,
    ])  # fmt: skip

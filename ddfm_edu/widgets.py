r"""Per-step maps of EM and DDFM: plain drawing functions, and the ipywidgets explorers built on them.

One drawing function, two uses: `draw_em_maps(trace, j)` and `draw_diffusion_step(trace, k)` return a
matplotlib Figure; a notebook calls them for a few iterations to make the static figure, and the
explorers call them on every slider move. The explorers never re-run the algorithm when only the
iteration (or step) changes: they index a trace computed once per parameter set (and cached), so a
slider answers at once. Callbacks print nothing: the figure is rendered to PNG into an Image widget.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ddfm_edu.em import EMTrace, em_fuse
from ddfm_edu.sample import DDFMTrace


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _log10(weights: torch.Tensor) -> np.ndarray:
    """log10 of E-step weights (they span orders of magnitude)."""
    return np.log10(np.maximum(_numpy(weights), 1e-12))


def draw_maps(
    panels: dict[str, tuple[np.ndarray, str]], *, title: str | None = None, cols: int = 4
) -> Figure:
    """A grid of images: panels maps a caption to (array, colormap). 'gray': an H x W image in
    [-1, 1] on that fixed range; 'rgb': an H x W x 3 image in [0, 1]; 'coolwarm': a signed map,
    symmetric about zero; any other colormap: a map on its own range with a colour bar."""
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax, (caption, (image, cmap)) in zip(axes.flat, panels.items(), strict=False):
        if cmap == "gray":
            ax.imshow(image, cmap="gray", vmin=-1, vmax=1)
        elif cmap == "rgb":
            ax.imshow(image)
        elif cmap == "coolwarm":  # signed maps: white at zero, the same range either side
            limit = float(np.nanmax(np.abs(image))) or 1.0
            shown = ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        else:
            shown = ax.imshow(image, cmap=cmap)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(caption, fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def em_maps(trace: EMTrace, j: int, b: int = 0) -> dict[str, tuple[np.ndarray, str]]:
    """The maps of EM iteration j for image b: log10 m_bar, log10 n_bar, k, u (both components),
    x = f - v and the estimate f."""
    return {
        "log10 m_bar (weight of |f - i|)": (_log10(trace.m_bar[j][b, 0]), "magma"),
        "log10 n_bar (weight of |f - v|)": (_log10(trace.n_bar[j][b, 0]), "magma"),
        "k (HQS copy of x)": (_numpy(trace.k[j][b, 0]), "coolwarm"),
        "u, horizontal": (_numpy(trace.u[j][b, 0]), "coolwarm"),
        "u, vertical": (_numpy(trace.u[j][b, 1]), "coolwarm"),
        "x = f - v": (_numpy(trace.x[j][b, 0]), "coolwarm"),
        "f (estimate)": (_numpy(trace.f[j][b, 0]), "gray"),
    }


def draw_em_maps(trace: EMTrace, j: int, b: int = 0) -> Figure:
    """Figure of the EM maps after j iterations (j = 0: the start), with gamma, rho in the title."""
    gamma, rho = float(trace.gamma[j][b]), float(trace.rho[j][b])
    title = f"EM iteration {j} of {len(trace) - 1}: gamma = {gamma:.3g}, rho = {rho:.3g}"
    return draw_maps(em_maps(trace, j, b), title=title)


def _rgb_or_grey(x: torch.Tensor) -> tuple[np.ndarray, str]:
    """(C, H, W) in [-1, 1] -> an image to show: RGB in [0, 1] for 3 channels, else grey."""
    if x.shape[0] == 3:
        return (np.clip(_numpy(x).transpose(1, 2, 0), -1, 1) + 1) / 2, "rgb"
    return np.clip(_numpy(x[0]), -1, 1), "gray"


def diffusion_maps(trace: DDFMTrace, k: int, b: int = 0) -> dict[str, tuple[np.ndarray, str]]:
    """The maps of kept step k for image b: the sample x_t, the prior's estimate f_tilde, the
    rectified f_hat, EM's correction f_hat - f_tilde, log10 m_bar, log10 n_bar, k and |u|."""
    return {
        "x_t (sample)": _rgb_or_grey(trace.x_t[k][b]),
        "f_tilde (prior)": (np.clip(_numpy(trace.f_tilde[k][b, 0]), -1, 1), "gray"),
        "f_hat (after EM)": (np.clip(_numpy(trace.f_hat[k][b, 0]), -1, 1), "gray"),
        "f_hat - f_tilde": (_numpy(trace.f_hat[k][b, 0] - trace.f_tilde[k][b, 0]), "coolwarm"),
        "log10 m_bar": (_log10(trace.m_bar[k][b, 0]), "magma"),
        "log10 n_bar": (_log10(trace.n_bar[k][b, 0]), "magma"),
        "k": (_numpy(trace.k[k][b, 0]), "coolwarm"),
        "|u|": (_numpy(trace.u[k][b].float().norm(dim=0)), "magma"),
    }


def draw_diffusion_step(trace: DDFMTrace, k: int, b: int = 0) -> Figure:
    """Figure of kept step k of a DDFM run (k = 0: the first step, t = T - 1)."""
    title = f"DDFM step {k + 1} of {len(trace)} kept: t = {int(trace.t[k])}"
    return draw_maps(diffusion_maps(trace, k, b), title=title)


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes and close it (what the explorers show)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    return buffer.getvalue()


def _image_widget():
    import ipywidgets as widgets

    return widgets.Image(format="png")


def em_explorer(i: torch.Tensor, v: torch.Tensor, *, iters: int = 30, variant: str = "paper"):
    """An ipywidgets explorer of EM alone on the pair (i, v) (1, 1, H, W): a slider over the
    iterations and sliders for psi, eta and phi (phi = 0 lets EM learn gamma and rho; phi > 0 fixes
    rho = gamma / phi^2, see `ddfm_edu.em.em_fuse`). Each parameter set runs `em_fuse` once (cached);
    moving the iteration slider only indexes that trace."""
    import ipywidgets as widgets

    traces: dict[tuple[float, float, float], EMTrace] = {}

    def trace_for(psi: float, eta: float, phi: float) -> EMTrace:
        key = (psi, eta, phi)
        if key not in traces:
            _, traces[key] = em_fuse(
                i, v, iters=iters, psi=psi, eta=eta, phi=phi or None, variant=variant, record=True
            )
        return traces[key]

    iteration = widgets.IntSlider(value=iters, min=0, max=iters, description="iteration")
    psi = widgets.FloatLogSlider(value=0.5, base=10, min=-3, max=2, description="psi")
    eta = widgets.FloatLogSlider(value=1e-3, base=10, min=-4, max=2, description="eta")
    phi = widgets.FloatSlider(value=0.0, min=0.0, max=4.0, step=0.25, description="phi (0: learn)")
    image = _image_widget()

    def redraw(_change=None) -> None:
        trace = trace_for(psi.value, eta.value, phi.value)
        image.value = figure_png(draw_em_maps(trace, iteration.value))

    for slider in (iteration, psi, eta, phi):
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([iteration, phi]), widgets.HBox([psi, eta]), image])


def diffusion_explorer(trace: DDFMTrace, b: int = 0):
    """An ipywidgets explorer of a recorded DDFM run: a slider over the kept steps showing x_t,
    f_tilde, f_hat, their difference, m_bar, n_bar, k and |u|. It only reads the trace."""
    import ipywidgets as widgets

    step = widgets.IntSlider(value=len(trace) - 1, min=0, max=len(trace) - 1, description="step")
    image = _image_widget()

    def redraw(_change=None) -> None:
        image.value = figure_png(draw_diffusion_step(trace, step.value, b))

    step.observe(redraw, names="value")
    redraw()
    return widgets.VBox([step, image])


def comparison_figure(panels: list[list[tuple[str, np.ndarray]]]) -> Figure:
    """A matplotlib Figure (no pyplot state): one row per pair, one titled panel per image (uint8,
    shown on the fixed range 0..255)."""
    columns = max(len(row) for row in panels)
    figure = Figure(figsize=(2.0 * columns, 2.1 * len(panels)))
    axes = figure.subplots(len(panels), columns, squeeze=False)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.15)
    for row, ax_row in zip(panels, axes, strict=True):
        for ax, (title, image) in zip(ax_row, row, strict=False):
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=9)
        for ax in ax_row:
            ax.set_axis_off()
    return figure

r"""Per-step maps of EM and DDFM as figures: a grid of image panels of fixed layout, updated in place.

One drawing function, two uses: `draw_em_maps(trace, j)` and `draw_diffusion_step(trace, k)` return a
`MapFigure`; a notebook shows it for a few iterations (the static figure), and the explorers of
`ddfm_edu.widgets` pass the figure back (`figure=`) on every slider move, so that only the pixels,
the ranges and the titles change (`set_data`, no new figure, no new layout) and the picture is
ready in tens of milliseconds.

Every panel says what its range is on its second title line, in numbers written out (no offset
text, so a map of values around 1e-6 reads as such): grey images on the fixed range [-1, 1], signed
maps (white at zero) on +-(their largest magnitude), other maps on their own [min, max].
"""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ddfm_edu.em import EMTrace
from ddfm_edu.sample import DDFMTrace

DPI = 100
"""Pixels per inch of the figures: a 4-column grid is 896 pixels wide, shown at its own size in
JupyterLab on a 1366-pixel screen with the file browser open."""

# Layout of one panel, in pixels: title (two lines), image box, colour bar and its tick labels.
_TITLE, _GAP, _TOP, _BOTTOM, _LEFT = 34, 14, 30, 6, 8
_BAR_GAP, _BAR, _LABELS = 6, 10, 56

Panels = dict[str, tuple]
"""Caption -> (array, colormap) or (array, colormap, (low, high)); see `draw_maps`."""


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _log10(weights: torch.Tensor) -> np.ndarray:
    """log10 of E-step weights (they span orders of magnitude)."""
    return np.log10(np.maximum(_numpy(weights), 1e-12))


def _g(value: float, digits: int = 3) -> str:
    """A number as written on a panel: `digits` significant digits, -0 written as 0."""
    return f"{value:.{digits}g}" if value != 0 else "0"


def colour_range(
    image: np.ndarray, cmap: str, limits: tuple[float, float] | None = None
) -> tuple[float, float, str]:
    """(low, high, range text) of a panel, the rules of `draw_maps`."""
    if limits is not None:
        low, high = limits
        return low, high, f"fixed range [{_g(low)}, {_g(high)}]"
    if cmap in ("gray", "rgb"):
        return -1.0, 1.0, f"{'grey' if cmap == 'gray' else 'RGB'}, fixed range [-1, 1]"
    finite = image[np.isfinite(image)]
    if cmap == "coolwarm":  # signed: white at zero, the same range either side
        limit = float(np.abs(finite).max()) if finite.size else 0.0
        if limit == 0.0:
            return -1.0, 1.0, "zero everywhere"
        return -limit, limit, f"signed, within \u00b1{_g(limit)}"
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high - low <= 1e-6 * max(1.0, abs(high)):  # constant up to rounding: say so
        centre = 0.5 * (low + high)
        return centre - 1, centre + 1, f"constant, {_g(centre)}"
    return low, high, f"min {_g(low)}, max {_g(high)}"


def bar_labels(cmap: str, limits: tuple[float, float] | None = None) -> dict[float, str]:
    """The colour bar's labels (position on the bar from 0 to 1 -> text) for a panel: numbers for
    fixed ranges, else words that the panel's range line gives in numbers."""
    if limits is not None:
        return {0.0: _g(limits[0]), 1.0: _g(limits[1])}
    if cmap == "gray":
        return {0.0: "-1", 0.5: "0", 1.0: "1"}
    if cmap == "coolwarm":
        return {0.0: "-max", 0.5: "0", 1.0: "+max"}
    return {0.0: "min", 1.0: "max"}


class MapFigure(Figure):
    """A grid of image panels, each with a two-line title (caption; range) and a colour bar, at
    fixed positions: a panel keeps its size whatever it shows. `update` swaps
    the pixels, ranges and titles in place. Not registered with pyplot: show it with IPython's
    `display`, or render it with `figure_png`.

    What changes between updates (images, range lines, heading) is "animated": the rest is drawn
    once into a background, and `render` pastes the background and draws only those (blitting),
    several times faster than drawing the whole figure. A colour bar shows its colormap from low
    to high whatever the range, labelled -1/0/1 (grey), -max/0/+max (signed), min/max (own range)
    or with the fixed limits; the range line gives the numbers."""

    def __init__(self, panels: Panels, *, cols: int = 4, cell: int = 144) -> None:
        if not panels:
            raise ValueError("panels must hold at least one map, got none")
        rows = -(-len(panels) // cols)
        width = _LEFT + cell + _BAR_GAP + _BAR + _LABELS
        height = _TITLE + cell + _GAP
        size = (cols * width, _TOP + rows * height + _BOTTOM)
        super().__init__(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
        FigureCanvasAgg(self)
        self.captions = list(panels)
        self.shapes = [np.shape(p[0]) for p in panels.values()]
        self.image_of, self.title_of, self.range_of = {}, {}, {}
        self._background = None

        def box(x: float, y: float, w: float, h: float) -> list[float]:  # pixels from top left
            return [x / size[0], 1 - (y + h) / size[1], w / size[0], h / size[1]]

        for n, (caption, (image, cmap, *limits)) in enumerate(panels.items()):
            x, y = (n % cols) * width + _LEFT, _TOP + (n // cols) * height + _TITLE
            ax = self.add_axes(box(x, y, cell, cell))
            ax.set_anchor("NE")  # next to the colour bar, below the title
            ax.set_axis_off()
            colours = colormaps["gray" if cmap == "rgb" else cmap].with_extremes(bad="0.8")
            self.image_of[caption] = ax.imshow(
                np.zeros(image.shape), cmap=colours, interpolation="nearest", animated=True
            )
            line = dict(transform=self.transFigure, fontsize=9, va="bottom", ha="left")
            self.title_of[caption] = ax.text(x / size[0], 1 - (y - 18) / size[1], caption, **line)
            self.range_of[caption] = ax.text(x / size[0], 1 - (y - 3) / size[1], "", animated=True, **line)
            cax = self.add_axes(box(x + cell + _BAR_GAP, y, _BAR, cell))
            if cmap == "rgb":
                cax.set_visible(False)
                continue
            cax.imshow(np.linspace(0, 1, 256)[:, None], cmap=colours, aspect="auto", origin="lower",
                       extent=(0, 1, 0, 1))  # fmt: skip
            cax.set_xticks([])
            cax.yaxis.tick_right()
            cax.tick_params(length=3, labelsize=8, pad=2)
            labels = bar_labels(cmap, *limits)
            cax.set_yticks(list(labels), labels=list(labels.values()))
            for label, end in zip(cax.get_yticklabels(), labels, strict=True):  # ends inside the bar
                label.set_verticalalignment({0.0: "bottom", 1.0: "top"}.get(end, "center"))
        self.heading = ax.text(
            0.5, 1 - 8 / size[1], "", transform=self.transFigure, ha="center", va="top", fontsize=10,
            animated=True,
        )  # fmt: skip
        self.update(panels)

    def fits(self, panels: Panels) -> bool:
        """Whether `update` can show these panels (same captions, same array shapes)."""
        return list(panels) == self.captions and [np.shape(p[0]) for p in panels.values()] == self.shapes

    def update(self, panels: Panels, title: str = "") -> None:
        """Show new arrays (same captions and shapes as at construction) and a new title."""
        for caption, (image, cmap, *limits) in panels.items():
            low, high, text = colour_range(image, cmap, *limits)
            shown = self.image_of[caption]
            shown.set_data(image)
            shown.set_clim(low, high)
            self.range_of[caption].set_text(text)
        self.heading.set_text(title)

    def animated(self) -> list:
        """The artists that `update` changes."""
        return [*self.image_of.values(), *self.range_of.values(), self.heading]

    def render(self) -> None:
        """Draw onto the canvas: the background (drawn once), then the animated artists."""
        if self._background is None:
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.bbox)
        self.canvas.restore_region(self._background)
        for artist in self.animated():
            self.draw_artist(artist)


def draw_maps(
    panels: Panels,
    *,
    title: str | None = None,
    cols: int = 4,
    cell: int = 144,
    figure: MapFigure | None = None,
) -> MapFigure:
    """A grid of images: panels maps a caption to (array, colormap) or (array, colormap, (low,
    high)). 'gray': an H x W image in [-1, 1] on that fixed range; 'rgb': an H x W x 3 image in
    [0, 1]; 'coolwarm': a signed map on a range symmetric about zero; any other colormap: a map on
    its own [min, max]; explicit (low, high): that fixed range. NaN pixels are light grey.
    `figure`: a MapFigure from an earlier call with the same captions and shapes, updated in place
    (a new one is made when it does not fit)."""
    if figure is None or not figure.fits(panels):
        figure = MapFigure(panels, cols=cols, cell=cell)
    figure.update(panels, title or "")
    return figure


def figure_png(fig: Figure) -> bytes:
    """Render a figure at its own size to PNG bytes (what the explorers show). Fast zlib level:
    the bytes go to the browser, not to disk."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    if isinstance(fig, MapFigure):
        fig.render()
    else:
        canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def em_maps(trace: EMTrace, j: int, b: int = 0) -> Panels:
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


def draw_em_maps(trace: EMTrace, j: int, b: int = 0, *, figure: MapFigure | None = None) -> MapFigure:
    """Figure of the EM maps after j iterations (j = 0: the start), with gamma, rho in the title;
    `figure`: an earlier one to update in place."""
    gamma, rho = float(trace.gamma[j][b]), float(trace.rho[j][b])
    title = f"EM iteration {j} of {len(trace) - 1} (0: the start): gamma = {gamma:.3g}, rho = {rho:.3g}"
    return draw_maps(em_maps(trace, j, b), title=title, figure=figure)


def _rgb_or_grey(x: torch.Tensor) -> tuple[np.ndarray, str]:
    """(C, H, W) in [-1, 1] -> an image to show: RGB in [0, 1] for 3 channels, else grey."""
    if x.shape[0] == 3:
        return (np.clip(_numpy(x).transpose(1, 2, 0), -1, 1) + 1) / 2, "rgb"
    return np.clip(_numpy(x[0]), -1, 1), "gray"


def diffusion_maps(trace: DDFMTrace, k: int, b: int = 0) -> Panels:
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


def draw_diffusion_step(
    trace: DDFMTrace, k: int, b: int = 0, *, figure: MapFigure | None = None
) -> MapFigure:
    """Figure of kept step k of a DDFM run (k = 0: the first step, t = T - 1), numbered from 1 in
    its title; `figure`: an earlier one to update in place."""
    title = f"DDFM step {k + 1} of {len(trace)}: t = {int(trace.t[k])}"
    return draw_maps(diffusion_maps(trace, k, b), title=title, figure=figure)


def position(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor) -> float:
    r"""Where f lies between the sources, one number: the least-squares t of f - v = t (i - v),

        t = sum((f - v)(i - v)) / sum((i - v)^2)        (0: f = v, 1: f = i, 0.5: the average)."""
    y = (i - v).double()
    return float(((f - v).double() * y).sum() / (y * y).sum().clamp_min(1e-30))


def position_map(f: torch.Tensor, i: torch.Tensor, v: torch.Tensor, floor: float = 0.05) -> np.ndarray:
    r"""Per pixel t = (f - v) / (i - v) where the sources differ (|i - v| >= floor on [-1, 1]),
    NaN where they agree (there any f is "between" them)."""
    y = _numpy(i - v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(y) >= floor, _numpy(f - v) / y, np.nan)


def fusion_maps(i: torch.Tensor, v: torch.Tensor, fused: torch.Tensor) -> Panels:
    """A fused image (1, 1, H, W) beside its sources: i, v, their average, the output, the output
    minus the average, and the output's position between the sources (0: v, 1: i)."""
    average = 0.5 * (i + v)
    t = position_map(fused[0, 0], i[0, 0], v[0, 0])
    return {
        "infrared / functional i": (_numpy(i[0, 0]), "gray"),
        "visible / structural v": (_numpy(v[0, 0]), "gray"),
        "average (i + v) / 2": (_numpy(average[0, 0]), "gray"),
        "DDFM output f": (np.clip(_numpy(fused[0, 0]), -1, 1), "gray"),
        "f - average": (_numpy(fused[0, 0] - average[0, 0]), "coolwarm"),
        "position (f-v)/(i-v): 0 v, 1 i": (t, "coolwarm", (0.0, 1.0)),
    }


def draw_fusion(
    i: torch.Tensor, v: torch.Tensor, fused: torch.Tensor, *, title: str = "", figure: MapFigure | None = None
) -> MapFigure:
    """Figure of `fusion_maps` in two rows of three (grey where the sources agree in the position
    map); `figure`: an earlier one to update in place."""
    return draw_maps(fusion_maps(i, v, fused), title=title, cols=3, cell=180, figure=figure)


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

"""The figures of ddfm_edu.figures and the ipywidgets explorers of ddfm_edu.widgets, headless (Agg):
the figures have the expected panels and say every panel's range, keep their layout when updated in
place, and an in-place update draws the same picture as a fresh figure; the explorers answer a
slider move by indexing the recorded trace (never re-running the algorithm) and print nothing; the
live DDFM explorer runs `ddfm` with the chosen settings."""

from __future__ import annotations

import inspect
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ddfm_edu import em, figures, sample, widgets  # noqa: E402
from ddfm_edu.data import ImagePair  # noqa: E402
from ddfm_edu.priors.adm import ADMPrior, ADMUNet  # noqa: E402
from ddfm_edu.priors.gaussian import GaussianPrior  # noqa: E402

DIFFUSION_PANELS = [
    "x_t (sample)",
    "f_tilde (prior)",
    "f_hat (after EM)",
    "f_hat - f_tilde",
    "log10 m_bar",
    "log10 n_bar",
    "k",
    "|u|",
]


def _pair(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    i = torch.rand(1, 1, size, size, generator=g) * 2 - 1
    v = torch.rand(1, 1, size, size, generator=g) * 2 - 1
    return i, v


@pytest.fixture(scope="module")
def grey_trace() -> sample.DDFMTrace:
    i, v = _pair()
    return sample.ddfm(i, v, GaussianPrior(), steps=4, seed=0, record=True, progress=False).trace


@pytest.fixture(scope="module")
def rgb_trace() -> sample.DDFMTrace:
    torch.manual_seed(0)
    unet = ADMUNet(
        image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2", learn_sigma=True,
        attention_resolutions="8", num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True,
    ).eval()  # fmt: skip
    i, v = _pair()
    return sample.ddfm(i, v, ADMPrior(unet), steps=3, seed=0, record=True, progress=False).trace


def _pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize("name,channels", [("grey_trace", 1), ("rgb_trace", 3)])
def test_diffusion_step_figure_has_the_panels_of_the_step(request, name, channels):
    trace = request.getfixturevalue(name)
    assert trace.x_t.shape[2] == channels
    k = 1
    fig = widgets.draw_diffusion_step(trace, k)
    shown = {caption: np.asarray(image.get_array()) for caption, image in fig.image_of.items()}
    assert list(shown) == DIFFUSION_PANELS
    assert fig.heading.get_text() == f"DDFM step {k + 1} of {len(trace)}: t = {int(trace.t[k])}"
    # the sample: grey (H, W) for a grey prior, RGB (H, W, 3) in [0, 1] for an RGB one
    x_t = trace.x_t[k, 0]
    if channels == 1:
        np.testing.assert_allclose(shown["x_t (sample)"], x_t[0].clamp(-1, 1).numpy(), atol=1e-6)
    else:
        expected = (x_t.clamp(-1, 1).permute(1, 2, 0).numpy() + 1) / 2
        np.testing.assert_allclose(shown["x_t (sample)"], expected, atol=1e-6)
    # the other maps are those of step k, not of another step
    np.testing.assert_allclose(shown["f_tilde (prior)"], trace.f_tilde[k, 0, 0].clamp(-1, 1), atol=1e-6)
    np.testing.assert_allclose(
        shown["f_hat - f_tilde"], (trace.f_hat[k, 0, 0] - trace.f_tilde[k, 0, 0]).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        shown["log10 m_bar"], np.log10(trace.m_bar[k, 0, 0].numpy()), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(shown["|u|"], trace.u[k, 0].norm(dim=0).numpy(), atol=1e-6)
    # 8 image axes, and a colour bar beside each but an RGB sample's
    assert len(fig.axes) == 16 and sum(ax.get_visible() for ax in fig.axes) == 16 - (channels == 3)


def test_every_panel_says_its_range_in_numbers_without_offset_text(grey_trace):
    fig = widgets.draw_diffusion_step(grey_trace, 2)
    ranges = {caption: text.get_text() for caption, text in fig.range_of.items()}
    assert ranges["f_tilde (prior)"] == "grey, fixed range [-1, 1]"
    correction = float((grey_trace.f_hat[2, 0, 0] - grey_trace.f_tilde[2, 0, 0]).abs().max())
    assert ranges["f_hat - f_tilde"] == f"signed, within \u00b1{correction:.3g}"
    assert fig.image_of["f_hat - f_tilde"].get_clim() == pytest.approx((-correction, correction), rel=1e-6)
    log_m = np.log10(grey_trace.m_bar[2, 0, 0].numpy())
    assert ranges["log10 m_bar"] == f"min {log_m.min():.3g}, max {log_m.max():.3g}"
    # colour bars are labelled with fixed words or numbers, never with an offset
    fig.canvas.draw()
    for ax in fig.axes[1::2]:
        labels = [label.get_text() for label in ax.get_yticklabels()]
        assert labels in (["-1", "0", "1"], ["-max", "0", "+max"], ["min", "max"])
        assert ax.yaxis.get_offset_text().get_text() == ""


def test_a_constant_map_says_so():
    low, high, text = figures.colour_range(np.full((4, 4), 5.53884) + np.eye(4) * 1e-8, "magma")
    assert text == "constant, 5.54" and (low, high) == pytest.approx((4.53884, 6.53884))
    assert figures.colour_range(np.zeros((2, 2)), "coolwarm")[2] == "zero everywhere"
    tiny = np.array([[-3e-6, 1e-6]])
    assert figures.colour_range(tiny, "coolwarm") == (-3e-6, 3e-6, "signed, within \u00b13e-06")


def test_titles_stay_inside_their_panel_and_panels_keep_their_size(grey_trace):
    fig = widgets.draw_diffusion_step(grey_trace, 0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_position().bounds for ax in fig.axes]
    columns = sorted({round(ax.get_position().x0, 6) for ax in fig.axes[0::2]})
    column_width = (columns[1] - columns[0]) * fig.bbox.width
    for k in range(len(grey_trace)):
        widgets.draw_diffusion_step(grey_trace, k, figure=fig)
        fig.render()
        for caption, ax in zip(fig.captions, fig.axes[0::2], strict=True):
            left = ax.get_position().x0 * fig.bbox.width
            for text in (fig.title_of[caption], fig.range_of[caption]):
                extent = text.get_window_extent(renderer)
                assert extent.x0 >= left - 1 and extent.x1 <= left + column_width, text.get_text()
                assert extent.y1 <= fig.bbox.height
        assert [ax.get_position().bounds for ax in fig.axes] == boxes


def test_an_update_in_place_draws_what_a_fresh_figure_draws(grey_trace):
    fig = widgets.draw_diffusion_step(grey_trace, 0)
    first = widgets.figure_png(fig)
    again = widgets.draw_diffusion_step(grey_trace, 3, figure=fig)
    assert again is fig
    updated = _pixels(widgets.figure_png(fig))
    fresh = _pixels(widgets.figure_png(widgets.draw_diffusion_step(grey_trace, 3)))
    np.testing.assert_array_equal(updated, fresh)
    assert not np.array_equal(updated, _pixels(first))
    # the static picture (savefig draws every artist) shows the same maps
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    saved = _pixels(buffer.getvalue())[..., :3].astype(int)
    assert saved.shape == updated.shape and np.abs(saved - updated).mean() < 1.0


def test_diffusion_explorer_slider_redraws_from_the_trace(grey_trace, monkeypatch, capsys):
    import ipywidgets

    def must_not_run(*args, **kwargs):
        raise AssertionError("the algorithm was re-run on a slider move")

    # the names the widgets module runs the algorithms through (the DDFM explorer uses them)
    monkeypatch.setattr(widgets, "ddfm", must_not_run)
    monkeypatch.setattr(widgets, "em_fuse", must_not_run)
    figures_before = plt.get_fignums()
    box = widgets.diffusion_explorer(grey_trace)
    slider = widgets.find_control(box, "step")
    image = next(w for w in box.children if isinstance(w, ipywidgets.Image))
    count = len(grey_trace)
    assert slider.value == count - 1 and slider.options[0] == (f"1 of {count}: t = {int(grey_trace.t[0])}", 0)
    assert slider.label == f"{count} of {count}: t = {int(grey_trace.t[-1])}"
    last = image.value
    slider.value = 0
    first = image.value
    np.testing.assert_array_equal(
        _pixels(first), _pixels(widgets.figure_png(widgets.draw_diffusion_step(grey_trace, 0)))
    )
    slider.value = count - 1
    assert image.value == last != first  # the same step gives the same picture
    assert plt.get_fignums() == figures_before  # nothing left open in pyplot
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_one_two_five_options_hold_the_library_defaults_exactly():
    options = dict(widgets.one_two_five(1e-3, 100))
    assert list(options)[:4] == ["0.001", "0.002", "0.005", "0.01"] and list(options)[-1] == "100"
    defaults = inspect.signature(em.em_fuse).parameters
    assert defaults["psi"].default in options.values()
    assert defaults["eta"].default in dict(widgets.one_two_five(1e-4, 100)).values()


def test_position_against_a_known_mixture():
    i, v = _pair(8)
    i[..., 0, 0] = v[..., 0, 0]  # one pixel where the sources agree
    f = v + 0.3 * (i - v)
    assert figures.position(f, i, v) == pytest.approx(0.3, abs=1e-6)
    t = figures.position_map(f[0, 0], i[0, 0], v[0, 0])
    agree = (i - v).abs()[0, 0].numpy() < 0.05
    assert np.isnan(t[agree]).all() and agree[0, 0]
    np.testing.assert_allclose(t[~agree], 0.3, atol=1e-4)


@pytest.fixture
def small_pairs() -> dict[str, ImagePair]:
    i, v = _pair(32)
    pair = ImagePair(i, v, None, None, "noise", None, None)
    return {"noise": pair, "swapped": ImagePair(v, i, None, None, "swapped", None, None)}


def test_ddfm_explorer_runs_ddfm_with_the_chosen_settings(small_pairs, monkeypatch, capsys):
    import ipywidgets

    calls = []
    real = widgets.ddfm

    def counting(i, v, prior, **kwargs):
        calls.append((tuple(i.shape), kwargs))
        return real(i, v, prior, **kwargs)

    monkeypatch.setattr(widgets, "ddfm", counting)
    box = widgets.ddfm_explorer(GaussianPrior(), small_pairs, steps=5)
    image = next(w for w in box.children if isinstance(w, ipywidgets.Image))
    status = next(w for w in box.children if isinstance(w, ipywidgets.HTML) and "DDFM ran" in w.value)
    shape, kwargs = calls[-1]
    assert shape == (1, 1, 64, 64)  # resized to the chosen size
    assert kwargs["steps"] == 5 and kwargs["em_variant"] == em.VARIANTS[0]
    assert (kwargs["psi"], kwargs["eta"]) == (0.5, 1e-3)
    variant = widgets.find_control(box, "EM variant")
    assert list(variant.options) == list(em.VARIANTS)
    first = image.value
    widgets.find_control(box, "psi").value = 5.0
    assert calls[-1][1]["psi"] == 5.0 and image.value != first
    widgets.find_control(box, "pair").value = "swapped"
    assert len(calls) == 3 and "lies at t = " in status.value
    phi = widgets.find_control(box, "phi")
    for name in em.VARIANTS:
        variant.value = name
        assert calls[-1][1]["em_variant"] == name
        assert phi.disabled == (not widgets.takes_phi(name))
    assert widgets.takes_phi("paper") and not widgets.takes_phi("released")
    variant.value = "paper"
    phi.value = 2.0
    assert calls[-1][1]["phi"] == 2.0  # ddfm holds the scales at rho = gamma / phi^2
    assert capsys.readouterr().out == ""


def test_ddfm_explorer_and_draw_maps_refuse_what_they_cannot_show(small_pairs):
    with pytest.raises(ValueError, match="size must be 64, 96 or 128"):
        widgets.ddfm_explorer(GaussianPrior(), small_pairs, size=100)
    with pytest.raises(ValueError, match="pairs must name at least one pair"):
        widgets.ddfm_explorer(GaussianPrior(), {})
    i, v = _pair(8)
    with pytest.raises(TypeError, match=r"pairs\['mine'\] must be an ImagePair"):
        widgets.ddfm_explorer(GaussianPrior(), {"mine": (i, v)})
    with pytest.raises(ValueError, match="panels must hold at least one map"):
        widgets.draw_maps({})

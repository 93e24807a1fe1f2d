"""The drawing functions and ipywidgets explorers of ddfm_edu.widgets, headless (Agg backend):
the figures have the expected panels, the explorers answer a slider move by indexing the recorded
trace (never re-running the algorithm) and print nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddfm_edu import sample, widgets  # noqa: E402
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


def _images(fig: Figure) -> dict[str, np.ndarray]:
    """Caption -> the array shown, for every axes that holds an image."""
    return {ax.get_title(): np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images}


@pytest.mark.parametrize("name,channels", [("grey_trace", 1), ("rgb_trace", 3)])
def test_diffusion_step_figure_has_the_panels_of_the_step(request, name, channels):
    trace = request.getfixturevalue(name)
    assert trace.x_t.shape[2] == channels
    k = 1
    fig = widgets.draw_diffusion_step(trace, k)
    try:
        assert isinstance(fig, Figure)
        shown = _images(fig)
        assert list(shown) == DIFFUSION_PANELS
        assert f"t = {int(trace.t[k])}" in fig._suptitle.get_text()
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
        # 8 image panels, 6 of them with a colour bar (all but the two grey images and x_t)
        assert len(fig.axes) == 8 + 5
    finally:
        plt.close(fig)


def test_diffusion_explorer_slider_redraws_from_the_trace(grey_trace, monkeypatch, capsys):
    import ipywidgets

    box = widgets.diffusion_explorer(grey_trace)
    slider = next(w for w in box.children if isinstance(w, ipywidgets.IntSlider))
    image = next(w for w in box.children if isinstance(w, ipywidgets.Image))
    assert (slider.min, slider.max, slider.value) == (0, len(grey_trace) - 1, len(grey_trace) - 1)
    last = image.value
    assert last[:8] == b"\x89PNG\r\n\x1a\n"

    def must_not_run(*args, **kwargs):
        raise AssertionError("ddfm was re-run on a slider move")

    monkeypatch.setattr(sample, "ddfm", must_not_run)
    monkeypatch.setattr(sample, "ddfm_step", must_not_run)
    figures_before = plt.get_fignums()
    slider.value = 0
    first = image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first != last
    slider.value = len(grey_trace) - 1
    assert image.value == last  # the same step gives the same picture
    assert plt.get_fignums() == figures_before  # figures are closed after rendering
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""

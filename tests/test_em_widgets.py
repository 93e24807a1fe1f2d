"""The EM drawing function and explorer, headless (Agg): right panels, instant slider, the variant
and phi controls, no printing."""

import inspect

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from ddfm_edu import em, widgets


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 12, 16, generator=g) * 2 - 1, torch.rand(1, 1, 12, 16, generator=g) * 2 - 1


def test_draw_em_maps_shows_every_map_of_the_iteration(pair):
    i, v = pair
    _, trace = em.em_fuse(i, v, iters=3, f_init=i, record=True)
    panels = widgets.em_maps(trace, 2)
    assert list(panels) == [
        "log10 m_bar (weight of |f - i|)", "log10 n_bar (weight of |f - v|)", "k (HQS copy of x)",
        "u, horizontal", "u, vertical", "x = f - v", "f (estimate)",
    ]  # fmt: skip
    assert torch.allclose(torch.from_numpy(panels["f (estimate)"][0]), trace.f[2][0, 0])
    log_m_bar = torch.from_numpy(panels["log10 m_bar (weight of |f - i|)"][0]).double()
    assert torch.allclose(10**log_m_bar, trace.m_bar[2][0, 0].double(), rtol=1e-5)
    fig = widgets.draw_em_maps(trace, 2)
    assert fig.heading.get_text().startswith("EM iteration 2 of 3 (0: the start): gamma = ")
    assert [text.get_text() for text in fig.title_of.values()] == list(panels)


def test_em_explorer_indexes_a_cached_trace_and_prints_nothing(pair, monkeypatch, capsys):
    i, v = pair
    calls = []
    real = widgets.em_fuse
    monkeypatch.setattr(widgets, "em_fuse", lambda *a, **k: calls.append(k) or real(*a, **k))
    box = widgets.em_explorer(i, v, iters=4)
    iteration, psi, phi = (widgets.find_control(box, name) for name in ("iteration", "psi", "phi"))
    image = box.children[-1]
    first = image.value
    iteration.value = 1
    assert image.value != first and len(calls) == 1  # the slider only indexes the trace
    phi.value = 2.0
    assert len(calls) == 2 and calls[-1]["phi"] == 2.0
    phi.value = 0.0  # back to learned scales: served from the cache
    assert len(calls) == 2
    psi.value = 1.0
    assert len(calls) == 3 and calls[-1]["psi"] == 1.0
    assert capsys.readouterr().out == ""


def test_em_explorer_starts_at_the_library_defaults(pair):
    box = widgets.em_explorer(*pair, iters=2)
    defaults = inspect.signature(em.em_fuse).parameters
    assert widgets.find_control(box, "psi").value == defaults["psi"].default  # not a log slider's 0.501
    assert widgets.find_control(box, "eta").value == defaults["eta"].default


def test_phi_is_offered_only_to_variants_that_take_it(pair, monkeypatch):
    i, v = pair
    calls = []
    real = widgets.em_fuse
    monkeypatch.setattr(widgets, "em_fuse", lambda *a, **k: calls.append(k) or real(*a, **k))
    box = widgets.em_explorer(i, v, iters=2)
    variant, phi = widgets.find_control(box, "EM variant"), widgets.find_control(box, "phi")
    assert list(variant.options) == list(em.VARIANTS)
    phi.value = 2.0
    for name in em.VARIANTS:
        variant.value = name
        takes = widgets.takes_phi(name)
        assert phi.disabled == (not takes)
        assert calls[-1]["variant"] == name and calls[-1]["phi"] == (2.0 if takes else None)
    assert widgets.takes_phi("paper") and not widgets.takes_phi("released")


def test_signed_maps_are_shown_symmetric_about_zero(pair):
    i, v = pair
    _, trace = em.em_fuse(i, v, iters=2, f_init=i, record=True)
    fig = widgets.draw_em_maps(trace, 2)
    low, high = fig.image_of["x = f - v"].get_clim()
    assert low == -high and high == pytest.approx(float(trace.x[2].abs().max()), rel=1e-6)

"""The DDFM sampler: determinism, batching, sizes, the trace, and the released pipeline against an
independent transcription of the release's loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.color
import torch

from ddfm_edu import priors
from ddfm_edu.diffusion import ddpm_step, linear_alpha_bar, respace
from ddfm_edu.em import em_step
from ddfm_edu.priors.base import Prior
from ddfm_edu.priors.gaussian import GaussianPrior
from ddfm_edu.sample import DDFMResult, ddfm, ddfm_step

SIZE = 32
STEPS = 10


def pair(batch: int = 1, height: int = SIZE, width: int = SIZE, seed: int = 0):
    """A smooth 'infrared' blob image and a textured 'visible' image in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    blob = torch.exp(-((yy - 0.2) ** 2 + (xx + 0.1) ** 2) / 0.2)
    i = (1.6 * blob - 0.8 + 0.05 * torch.randn(batch, 1, height, width, generator=g)).clamp(-1, 1)
    v = 0.5 * torch.sin(6 * xx) * torch.cos(4 * yy) + 0.2 * torch.randn(batch, 1, height, width, generator=g)
    return i, v.clamp(-1, 1)


@pytest.fixture(scope="module")
def prior():
    return GaussianPrior()


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_ddfm_runs_and_is_deterministic_for_a_seed(prior, sampler):
    i, v = pair()
    first = ddfm(i, v, prior, steps=STEPS, sampler=sampler, seed=11, progress=False)
    again = ddfm(i, v, prior, steps=STEPS, sampler=sampler, seed=11, progress=False)
    other = ddfm(i, v, prior, steps=STEPS, sampler=sampler, seed=12, progress=False)
    assert isinstance(first, DDFMResult) and first.trace is None
    assert first.fused.shape == (1, 1, SIZE, SIZE) and first.fused.abs().max() <= 1
    torch.testing.assert_close(first.fused, again.fused, rtol=0, atol=0)
    assert float((first.fused - other.fused).abs().max()) > 1e-3  # the seed matters
    # The fused image lies between the sources almost everywhere and correlates with both.
    for source in (i, v):
        assert np.corrcoef(first.fused.flatten(), source.flatten())[0, 1] > 0.3


def test_ddpm_step_composes_prior_em_and_the_posterior(prior):
    """One step = Tweedie estimate -> EM -> mu_tilde + sigma_tilde z, recomputed by hand."""
    i, v = pair(batch=2)
    schedule = respace(prior.alpha_bar, STEPS)
    g = torch.Generator().manual_seed(3)
    x_t, z = torch.randn(2, 2, 1, SIZE, SIZE, generator=g).unbind(0)
    k = 6
    step = ddfm_step(x_t, i, v, prior, schedule, k, sampler="ddpm", noise=z)
    t = schedule.timesteps[k]
    f_tilde = prior.predict_x0(x_t, torch.tensor([t, t]))
    f_hat, state = em_step(f_tilde, i, v, None)
    expected = ddpm_step(x_t, f_hat, schedule.alpha_bar[k], schedule.alpha_bar[k - 1], z)
    torch.testing.assert_close(step.f_tilde, f_tilde)
    torch.testing.assert_close(step.f_hat, f_hat)
    torch.testing.assert_close(step.x_prev, expected)
    torch.testing.assert_close(step.state.gamma, state.gamma)
    assert step.t == t == 666


@pytest.mark.parametrize("em_variant", ["paper", "released"])
def test_a_batch_equals_its_images_one_by_one(prior, em_variant):
    i, v = pair(batch=3)
    x_T = torch.randn(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    batched = ddfm(i, v, prior, steps=STEPS, em_variant=em_variant, x_T=x_T, progress=False)
    for b in range(3):
        single = ddfm(
            i[b : b + 1], v[b : b + 1], prior, steps=STEPS, em_variant=em_variant,
            x_T=x_T[b : b + 1], progress=False,
        )  # fmt: skip
        torch.testing.assert_close(batched.fused[b : b + 1], single.fused, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_equal_sources_are_returned_unchanged(prior, sampler):
    """If i == v, the L1 loss is minimised by f = v whatever the prior says: EM maps every estimate
    to (almost exactly) v, and the last sample is v."""
    _, v = pair()
    result = ddfm(v, v, prior, steps=STEPS, sampler=sampler, seed=2, progress=False)
    torch.testing.assert_close(result.fused, v, atol=1e-3, rtol=0)
    torch.testing.assert_close(result.sample, v, atol=1e-3, rtol=0)


def test_released_variant_with_equal_sources_returns_the_stretched_source(prior):
    """The release's EM returns F = I - X with X ~ 0 when I == V: the output is the source,
    min-max stretched."""
    _, v = pair()
    result = ddfm(v, v, prior, steps=STEPS, em_variant="released", seed=2, progress=False)
    stretched = 2 * (v - v.min()) / (v.max() - v.min()) - 1
    torch.testing.assert_close(result.fused, stretched, atol=2e-3, rtol=0)


class StridedGaussian(GaussianPrior):
    """A Gaussian prior that, like a U-Net, only accepts multiples of 8."""

    stride = 8

    def predict_x0(self, x_t, t):
        assert x_t.shape[-2] % 8 == 0 and x_t.shape[-1] % 8 == 0, x_t.shape
        return super().predict_x0(x_t, t)


def test_any_size_comes_back_with_its_size():
    i, v = pair(batch=2, height=29, width=35)
    result = ddfm(i, v, StridedGaussian(), steps=4, seed=0, record=True, progress=False)
    assert result.fused.shape == (2, 1, 29, 35) and result.sample.shape == (2, 1, 29, 35)
    assert result.trace.x_t.shape == (4, 2, 1, 29, 35) and result.trace.u.shape == (4, 2, 2, 29, 35)
    with pytest.raises(ValueError, match="x_T"):  # x_T is at the padded size
        ddfm(i, v, StridedGaussian(), steps=4, x_T=torch.randn(2, 1, 29, 35), progress=False)
    ddfm(i, v, StridedGaussian(), steps=2, x_T=torch.randn(2, 1, 32, 40), progress=False)


def test_record_every_k_th_step_and_half_precision(prior):
    i, v = pair(batch=2)
    full = ddfm(i, v, prior, steps=STEPS, seed=1, record=True, progress=False)
    every_3 = ddfm(i, v, prior, steps=STEPS, seed=1, record=3, progress=False)
    half = ddfm(i, v, prior, steps=STEPS, seed=1, record=3, record_dtype=torch.float16, progress=False)
    schedule = respace(prior.alpha_bar, STEPS)
    assert full.trace.t.tolist() == list(reversed(schedule.timesteps))
    assert every_3.trace.t.tolist() == [999, 666, 333, 0]  # steps 0, 3, 6 and the last
    assert len(full.trace) == STEPS and len(every_3.trace) == 4
    per_step = full.trace.nbytes() / STEPS
    # x_t, f_tilde, f_hat, m_bar, n_bar, k: 1 channel each, u: 2, float32, plus 2 scalars per image
    assert per_step == pytest.approx(2 * SIZE * SIZE * 8 * 4 + 2 * 2 * 4 + 8)
    assert every_3.trace.nbytes() == pytest.approx(4 * per_step)
    assert half.trace.f_hat.dtype == torch.float16
    assert half.trace.nbytes() < 0.51 * every_3.trace.nbytes()
    # the kept steps are the same steps, and the recorded values are the run's
    torch.testing.assert_close(every_3.trace.f_hat, full.trace.f_hat[[0, 3, 6, 9]])
    torch.testing.assert_close(half.trace.f_hat.float(), every_3.trace.f_hat, atol=2e-3, rtol=0)
    torch.testing.assert_close(full.trace.f_hat[-1].clamp(-1, 1), full.fused)
    torch.testing.assert_close(
        full.trace.x_t[0], torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    )
    assert torch.all(full.trace.gamma > 0) and full.trace.gamma.shape == (STEPS, 2)
    assert ddfm(i, v, prior, steps=2, record=False, progress=False).trace is None


def test_bad_arguments_are_named(prior):
    i, v = pair()
    with pytest.raises(ValueError, match="sampler"):
        ddfm(i, v, prior, sampler="euler", progress=False)
    with pytest.raises(ValueError, match="em_variant"):
        ddfm(i, v, prior, em_variant="other", progress=False)
    with pytest.raises(ValueError, match="steps"):
        ddfm(i, v, prior, steps=0, progress=False)
    with pytest.raises(ValueError, match="record"):
        ddfm(i, v, prior, steps=2, record=-1, progress=False)
    with pytest.raises(ValueError, match="v"):
        ddfm(i, v[..., :-1], prior, progress=False)
    with pytest.raises(ValueError, match="psi"):
        ddfm(i, v, prior, psi=0.0, progress=False)
    with pytest.raises(ValueError, match="prior"):
        ddfm(i, v, "gaussian", progress=False)


# ---------------------------------------------------------------------------------------------
# The released pipeline against a transcription of the release's loop
# ---------------------------------------------------------------------------------------------


class TinyRGBPrior(Prior):
    """A 3-channel prior with a fixed random 'network': eps = tanh(conv(x)) + 0.1 x, and the x0
    estimate as the release computes it (float64 coefficients cast to float32, clipped)."""

    channels = 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = (t.float() / 1000).view(-1, 1, 1, 1)
        return torch.tanh(self.conv(x)) * scale + 0.1 * x

    def predict_x0(self, x_t, t):
        alpha_bar = self.alpha_bar[t].view(-1, 1, 1, 1)
        recip, recipm1 = (1 / alpha_bar).sqrt().float(), (1 / alpha_bar - 1).sqrt().float()
        return (recip * x_t - recipm1 * self.eps(x_t, t)).clamp(-1, 1)


def release_loop(model: TinyRGBPrior, x_start: torch.Tensor, I: torch.Tensor, V: torch.Tensor, steps: int):
    """The release's p_sample_loop (DDIM, eta = 0) with its EM_onestep, transcribed for this test:
    numpy float64 schedule, float32 coefficients, skimage YCbCr on the CPU, scalar tau_a/tau_b.
    I is the visible image, V the infrared (as the release passes them). Returns the saved image
    before its 8-bit conversion, on [0, 255]."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas)
    stride, position, use = (999) / (steps - 1), 0.0, []
    for _ in range(steps):
        use.append(round(position))
        position += stride
    new_betas, last, timestep_map = [], 1.0, []
    for t, ac in enumerate(alphas_cumprod):
        if t in use:
            new_betas.append(1 - ac / last)
            last = ac
            timestep_map.append(t)
    ac = np.cumprod(1.0 - np.array(new_betas))
    ac_prev = np.append(1.0, ac[:-1])

    def coef(array, idx):
        return torch.tensor(array[idx]).float()

    H_, W_ = I.shape[-2:]
    k1 = torch.zeros(H_, W_)
    k1[0, 0], k1[0, -1] = -1.0, 1.0  # psf2otf([[1, -1]]): rolled so that -1 sits at the origin
    k2 = torch.zeros(H_, W_)
    k2[0, 0], k2[-1, 0] = -1.0, 1.0
    fk1, fk2 = torch.fft.fft2(k1), torch.fft.fft2(k2)
    C = D = None
    F1 = F2 = torch.zeros_like(I)
    tau_a = tau_b = 1
    img = x_start
    for idx in reversed(range(steps)):
        t = torch.tensor([timestep_map[idx]])
        eps = model.eps(img, t)
        pred = (coef(np.sqrt(1 / ac), idx) * img - coef(np.sqrt(1 / ac - 1), idx) * eps).clamp(-1, 1)
        ycbcr = torch.from_numpy(skimage.color.rgb2ycbcr(pred.permute(0, 2, 3, 1).numpy())).permute(
            0, 3, 1, 2
        )
        ycbcr = ycbcr.float() / 255
        f_pre = ycbcr[:, :1]
        # EM_onestep(f_pre, I, V, HP, lamb=0.5, rho=0.001)
        Y, X = I - V, f_pre - V
        D = torch.sqrt(2 / tau_b / (X**2 + 1e-6))
        C = torch.sqrt(2 / tau_a / ((Y - X + 1e-6) ** 2))
        D[D > 2 * C] = 2 * C[D > 2 * C]
        tau_b = torch.mean(1.0 / (D + 1e-10) + tau_b / 2)
        tau_a = torch.mean(1.0 / (C + 1e-10) + tau_a / 2)
        Hk = (
            torch.fft.fft2(Y - X)
            + torch.conj(fk1) * torch.fft.fft2(F1)
            + torch.conj(fk2) * torch.fft.fft2(F2)
        )
        Hk = torch.real(torch.fft.ifft2(Hk / (1 + torch.conj(fk1) * fk1 + torch.conj(fk2) * fk2)))
        a1 = torch.zeros_like(Hk)
        a1[..., :-1] = Hk[..., :-1] - Hk[..., 1:]
        a1[..., -1] = Hk[..., -1]
        a2 = torch.zeros_like(Hk)
        a2[..., :-1, :] = Hk[..., :-1, :] - Hk[..., 1:, :]
        a2[..., -1, :] = Hk[..., -1, :]
        F1, F2 = (0.001 / (1.0 + 0.001)) * a1, (0.001 / (1.0 + 0.001)) * a2
        X = (2 * C * Y + 0.001 * (Y - Hk)) / (2 * C + 2 * D + 0.001)
        ycbcr[:, 0] = (I - X)[:, 0]
        rgb = skimage.color.ycbcr2rgb((ycbcr * 255).permute(0, 2, 3, 1).double().numpy())
        pred = torch.from_numpy(rgb).float().permute(0, 3, 1, 2)
        eps = (coef(np.sqrt(1 / ac), idx) * img - pred) / coef(np.sqrt(1 / ac - 1), idx)
        img = pred * coef(np.sqrt(ac_prev), idx) + coef(np.sqrt(1 - ac_prev), idx) * eps
    rgb = img[0].permute(1, 2, 0).numpy()
    y = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (y - y.min()) / (y.max() - y.min()) * 255


def test_released_variant_equals_the_release_loop():
    torch.manual_seed(3407)  # the release's start noise: manual_seed(3407), randn with 3 channels
    infrared, visible = pair(seed=4)
    prior = TinyRGBPrior()
    x_T = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3407))
    with torch.no_grad():
        reference = release_loop(prior, x_T, I=visible, V=infrared, steps=STEPS)
        ours = ddfm(infrared, visible, prior, steps=STEPS, em_variant="released", seed=3407, progress=False)
    ours_255 = ((ours.fused[0, 0] + 1) * 127.5).numpy()
    assert np.abs(ours_255 / 255 - reference / 255).max() < 1e-3
    # and the paper's variant is a different method on the same inputs
    paper = ddfm(infrared, visible, prior, steps=STEPS, x_T=x_T, progress=False)
    assert np.abs((paper.fused[0, 0].numpy() + 1) / 2 - reference / 255).max() > 0.05


def test_rgb_prior_fuses_the_luma_in_the_paper_variant():
    infrared, visible = pair(batch=2, seed=6)
    prior = TinyRGBPrior()
    result = ddfm(infrared, visible, prior, steps=STEPS, seed=0, record=True, progress=False)
    assert result.sample.shape == (2, 3, SIZE, SIZE) and result.fused.shape == (2, 1, SIZE, SIZE)
    assert result.trace.x_t.shape == (STEPS, 2, 3, SIZE, SIZE)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    # The last sample is the last rectified estimate, whose luma is EM's output.
    torch.testing.assert_close(
        (result.sample * luma).sum(1, keepdim=True).clamp(-1, 1), result.fused, atol=1e-5, rtol=0
    )


# ---------------------------------------------------------------------------------------------
# load_prior
# ---------------------------------------------------------------------------------------------


def test_load_prior_by_name_path_and_error(monkeypatch, tmp_path):
    gaussian = priors.load_prior("gaussian", device="cpu")
    assert isinstance(gaussian, GaussianPrior) and not gaussian.training
    calls = []
    import ddfm_edu.priors.adm as adm
    import ddfm_edu.priors.embedded as embedded

    monkeypatch.setattr(
        embedded, "load_embedded", lambda device: calls.append(("embedded", device)) or gaussian
    )
    monkeypatch.setattr(
        adm,
        "load_adm_checkpoint",
        lambda path, config=None, device="cpu", half=False: (
            calls.append(("adm", str(path), device, half)) or gaussian
        ),
    )
    assert priors.load_prior() is gaussian
    checkpoint = tmp_path / "weights.bin"
    checkpoint.write_bytes(b"")
    priors.load_prior(checkpoint, device="cpu", half=True)
    assert calls == [("embedded", torch.device("cpu")), ("adm", str(checkpoint), torch.device("cpu"), True)]
    with pytest.raises(ValueError, match="'no-such-prior'.*embedded.*gaussian"):
        priors.load_prior("no-such-prior")


def test_load_prior_refuses_a_missing_checkpoint(tmp_path):
    missing = tmp_path / "256x256_diffusion_uncond.pt"
    with pytest.raises(ValueError, match="256x256_diffusion_uncond.pt"):
        priors.load_prior(missing, device="cpu")


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("em_variant", ["paper", "released"])
def test_cuda_path_matches_the_cpu_path(prior, em_variant):
    i, v = pair(batch=2)
    on_cpu = ddfm(i, v, prior, steps=STEPS, em_variant=em_variant, seed=3, progress=False)
    on_gpu = ddfm(
        i.cuda(), v.cuda(), GaussianPrior().cuda(), steps=STEPS, em_variant=em_variant, seed=3, progress=False
    )
    assert on_gpu.fused.device.type == "cuda"
    torch.testing.assert_close(on_gpu.fused.cpu(), on_cpu.fused, atol=1e-3, rtol=0)


def test_schedule_of_the_prior_is_used():
    """A prior with another schedule (here 500 steps) gets its own respacing."""
    prior = GaussianPrior(alpha_bar=linear_alpha_bar(500, 2e-4, 0.04))
    i, v = pair()
    result = ddfm(i, v, prior, steps=5, seed=0, record=True, progress=False)
    assert result.trace.t.tolist() == [499, 374, 250, 125, 0]
    assert math.isfinite(float(result.fused.sum()))


def test_adm_prior_any_size_is_padded_to_its_networks_stride():
    """The guided-diffusion network only takes multiples of its stride (4 for this small one)."""
    from ddfm_edu.priors.adm import ADMPrior, ADMUNet

    torch.manual_seed(0)
    unet = ADMUNet(
        image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2,2", learn_sigma=True,
        attention_resolutions="8", num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True,
    ).eval()  # fmt: skip
    i, v = pair(height=30, width=29)
    for variant in ("paper", "released"):
        result = ddfm(i, v, ADMPrior(unet), steps=3, em_variant=variant, seed=0, progress=False)
        assert result.fused.shape == (1, 1, 30, 29) and result.sample.shape == (1, 3, 30, 29)
        assert torch.isfinite(result.fused).all()


def test_ddfm_refuses_what_em_step_refuses(prior):
    i, v = pair()
    for name in ("psi", "eta"):
        with pytest.raises(ValueError, match=name):
            ddfm(i, v, prior, steps=2, progress=False, **{name: float("inf")})


def test_ddfm_runs_in_float64_and_refuses_half_precision(prior):
    """float64 sources run EM in float64 (a network prior computes in float32 and is cast back); the
    result agrees with float32 to rounding. Half precision is refused up front, naming the dtypes."""
    i, v = pair()
    single = ddfm(i, v, prior, steps=4, seed=0, progress=False).fused
    double = ddfm(i.double(), v.double(), prior, steps=4, seed=0, progress=False).fused
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="float16: this needs float32 or float64"):
        ddfm(i.half(), v.half(), prior, steps=2, progress=False)
    with pytest.raises(ValueError, match="values up to"):
        ddfm(i * 127.5 + 127.5, v, prior, steps=2, progress=False)


def test_ddfm_holds_the_scales_with_phi(prior):
    """phi holds rho = gamma / phi^2 at every step (EMConfig), as em_fuse does; the release refuses it."""
    i, v = pair()
    result = ddfm(i, v, prior, steps=3, seed=0, phi=2.0, record=True, progress=False)
    torch.testing.assert_close(result.trace.rho, result.trace.gamma / 4.0)
    with pytest.raises(ValueError, match="phi"):
        ddfm(i, v, prior, steps=2, em_variant="released", phi=1.0, progress=False)

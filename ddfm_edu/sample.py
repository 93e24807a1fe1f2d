r"""The DDFM sampler (docs/method.md section 5): diffusion prior + EM rectification, step by step.

Per kept timestep t = t_k, from k = S-1 down to 0 (`ddfm_step`):
    1. f_tilde_{0|t} = prior.predict_x0(f_t, t)                         (Tweedie, clipped to [-1, 1])
    2. f_hat_{0|t}, state = em_step(f_tilde_{0|t}, i, v, state)          (EM, state carried over)
    3. f_{t-1} = mu_tilde(f_t, f_hat) + sigma_tilde z                    (sampler="ddpm", Algorithm 1)
       f_{t-1} = sqrt(ab_{t-1}) f_hat + sqrt(1 - ab_{t-1}) eps'(f_t, f_hat)   (sampler="ddim", release)
The result is f_hat_{0|0}, the last rectified estimate.

With an RGB prior (prior.channels == 3) EM acts on the luma of the prior's estimate and its output
replaces that luma (BT.601 full range, ddfm_edu.colour), as the release does. With
em_variant="released" the conversion, its scaling and the EM function are the release's (section 7):
the estimate goes to studio-range Y'Cb'Cr' / 255 (on [-1, 1] values), EM_onestep gets Y' with
I = the VISIBLE image and V = the INFRARED one, its output replaces Y', the inverse conversion gives
the rectified RGB x0 (not clipped), and the update uses it; the output is the luma
0.299 R + 0.587 G + 0.114 B of the last sample, min-max stretched per image. A grey prior in the
released variant is treated as an RGB prior with R = G = B.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ddfm_edu.colour import luma, replace_luma
from ddfm_edu.diffusion import SAMPLERS, RespacedSchedule, respace
from ddfm_edu.em import EM_DTYPES, STATE_FIELDS, EMConfig, EMState, em_step_unchecked
from ddfm_edu.em import VARIANTS as EM_VARIANTS
from ddfm_edu.priors.base import Prior
from ddfm_edu.released import released_rgb_to_ycbcr, released_ycbcr_to_rgb
from ddfm_edu.tensors import Padding, crop, pad_to_multiple, stretch
from ddfm_edu.validation import IMAGE_LIMIT, check_choice, check_images, check_integer

RELEASE_SEED = 3407
"""The release's seed: torch.manual_seed(3407), then randn of the 3-channel start noise."""


def _progress(steps: Iterable[int], desc: str, show: bool) -> Iterable[int]:
    """The steps, behind a tqdm bar (notebook-aware) when `show`: tqdm is imported only then."""
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc)


@dataclass
class DDFMStep:
    r"""What one DDFM step produces (diffusers-style: everything a reader wants to look at).

    t: the ORIGINAL timestep index of this step; x_t: f_t (B, C, H, W), C = prior.channels;
    x_prev: the next sample f_{t-1}; f_tilde: what EM received (B, 1, H, W): the prior's estimate,
    its luma for an RGB prior (for em_variant="released" the release's Y', on its 16..235 / 255
    scale); f_hat: EM's output (B, 1, H, W); x0: the rectified estimate the update used
    (B, C, H, W); state: the EM state after this step.
    """

    t: int
    x_t: torch.Tensor
    x_prev: torch.Tensor
    f_tilde: torch.Tensor
    f_hat: torch.Tensor
    x0: torch.Tensor
    state: EMState


@dataclass
class DDFMTrace(EMState):
    r"""The kept steps of a run: the EM state's fields and t, x_t, f_tilde, f_hat, each stacked along
    a leading axis of length K (the kept steps, in the order run: from t = T-1 down to 0).
    t: (K,) original timesteps (CPU); x_t: (K, B, C, H, W); f_tilde, f_hat, m_bar, n_bar, k:
    (K, B, 1, H, W); u: (K, B, 2, H, W); gamma, rho: (K, B). Images are cropped to the input size;
    they live on the sampler's device, in the record dtype.
    """

    t: torch.Tensor
    x_t: torch.Tensor
    f_tilde: torch.Tensor
    f_hat: torch.Tensor

    FIELDS = ("x_t", "f_tilde", "f_hat", *STATE_FIELDS)

    def __len__(self) -> int:
        return len(self.t)

    def nbytes(self) -> int:
        """Memory held by the trace's tensors, in bytes."""
        return sum(getattr(self, name).nbytes for name in ("t", *self.FIELDS))


@dataclass
class DDFMResult:
    r"""fused: (B, 1, H, W) the fused image in [-1, 1]. em_variant="paper": f_hat_{0|0} clipped to
    [-1, 1]; em_variant="released": the release's output, the luma of the last sample min-max
    stretched per image, on [-1, 1] (so (fused + 1) * 127.5 is the release's saved image before its
    8-bit conversion). sample: the last sample f_0 (B, C, H, W), not clipped. trace: DDFMTrace or
    None."""

    fused: torch.Tensor
    sample: torch.Tensor
    trace: DDFMTrace | None


def ddfm_step(
    x_t: torch.Tensor,
    i: torch.Tensor,
    v: torch.Tensor,
    prior: Prior,
    schedule: RespacedSchedule,
    k: int,
    state: EMState | None = None,
    *,
    sampler: str = "ddim",
    em: EMConfig | None = None,
    noise: torch.Tensor | None = None,
) -> DDFMStep:
    r"""One DDFM step at the k-th kept timestep t = schedule.timesteps[k] (module docstring).

    x_t: (B, prior.channels, H, W); i, v: (B, 1, H, W), H and W multiples of the prior's stride.
    state=None starts EM from its initial state. sampler: a name of `diffusion.SAMPLERS`; em: the
    EM's settings (None: `EMConfig()`, the defaults). noise: z of the DDPM update (None: the
    posterior mean, as at the last step); unused by DDIM. No tensor checks (it runs once per step;
    `ddfm` validates once at entry), no host-device synchronisation.
    """
    em = EMConfig() if em is None else em
    t = schedule.timesteps[k]
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    x_in = x_t if prior.compute_dtype in (None, x_t.dtype) else x_t.to(prior.compute_dtype)
    estimate = prior.predict_x0(x_in, t_batch).to(x_t.dtype)
    grey = x_t.shape[1] == 1
    if em.variant == "released":
        ycbcr = released_rgb_to_ycbcr(estimate.expand(-1, 3, -1, -1))
        f_tilde = ycbcr[:, :1]
        # The release passes the visible image as I and the infrared as V.
        f_hat, state = em_step_unchecked(f_tilde, v, i, state, em)
        rgb = released_ycbcr_to_rgb(torch.cat([f_hat, ycbcr[:, 1:]], dim=1)).to(x_t.dtype)
        x0 = luma(rgb) if grey else rgb
    else:
        f_tilde = estimate if grey else luma(estimate)
        f_hat, state = em_step_unchecked(f_tilde, i, v, state, em)
        x0 = f_hat if grey else replace_luma(estimate, f_hat)
    x_prev = SAMPLERS[sampler].step(x_t, x0, schedule, k, noise)
    return DDFMStep(t, x_t, x_prev, f_tilde, f_hat, x0, state)


def _record_every(record: bool | int) -> int:
    """0: no trace; n: keep every n-th step (and the last)."""
    if record is True:
        return 1
    if record is False or record is None:
        return 0
    return check_integer("record (every k-th step; or True, False)", record)


def _check_arguments(prior: Prior, steps: int, sampler: str, seed: int | None) -> None:
    if not isinstance(prior, Prior):
        raise ValueError(f"prior must be a ddfm_edu Prior, got {type(prior).__name__}")
    if prior.channels not in (1, 3):
        raise ValueError(f"prior.channels must be 1 or 3, got {prior.channels}")
    check_integer("steps", steps, 1, len(prior.alpha_bar))
    check_choice("sampler", sampler, SAMPLERS)
    if seed is not None:
        check_integer("seed (or None)", seed, 0, 2**64 - 1)


def _keep(
    trace: DDFMTrace | None,
    slots: dict[int, int],
    n: int,
    step: DDFMStep,
    padding: Padding,
    schedule: RespacedSchedule,
    dtype: torch.dtype | None,
) -> DDFMTrace:
    """Write step n (loop counter) into its slot of the trace, allocating the trace at the first
    kept step (so its memory is known and bounded from the start: no lists, no final stacking)."""
    values = {"x_t": step.x_t, "f_tilde": step.f_tilde, "f_hat": step.f_hat}
    values.update({name: getattr(step.state, name) for name in STATE_FIELDS})
    values = {name: crop(value, padding) if value.ndim == 4 else value for name, value in values.items()}
    if trace is None:
        steps = len(schedule)
        kept_t = [schedule.timesteps[steps - 1 - kept_n] for kept_n in slots]
        empty = {
            name: value.new_empty((len(slots), *value.shape), dtype=dtype or value.dtype)
            for name, value in values.items()
        }
        trace = DDFMTrace(t=torch.tensor(kept_t), **empty)
    for name, value in values.items():
        getattr(trace, name)[slots[n]] = value
    return trace


def ddfm(
    i: torch.Tensor,
    v: torch.Tensor,
    prior: Prior,
    *,
    steps: int = 100,
    sampler: str = "ddim",
    em_variant: str = EMConfig.variant,
    psi: float = EMConfig.psi,
    eta: float = EMConfig.eta,
    phi: float | None = EMConfig.phi,
    seed: int | None = None,
    x_T: torch.Tensor | None = None,
    record: bool | int = False,
    record_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> DDFMResult:
    r"""Fuse i (infrared / functional) and v (visible / structural) with DDFM.

    i, v: (B, 1, H, W) in [-1, 1], any H, W (reflect-padded to a multiple of the prior's stride,
    cropped back), on the prior's device. steps: S respaced steps (the release: 100).
    sampler: "ddim" (the release, deterministic) or "ddpm" (the paper's Algorithm 1).
    em_variant: "paper", "released" or "one-sided" (module docstring, `em.VARIANTS`). psi, eta: the
    EM's smoothness weight and HQS penalty (the release's lamb = 0.5 and rho = 0.001); phi: None
    learns the scales, a chosen phi > 0 holds them at rho = gamma / phi^2 (paper variant, `EMConfig`).

    Start noise: x_T (B, prior.channels, H', W') at the PADDED size H', W', or else randn drawn on
    the CPU from a torch.Generator seeded with `seed` (None: the global generator) and moved to the
    device, so a seed gives the same start on any device; on the CPU seed=RELEASE_SEED gives the
    release's start noise (on CUDA the release draws on the GPU: pass its x_T to reproduce it).
    The DDPM sampler's per-step noise z is drawn on the device itself (a generator on i's device
    seeded with `seed`, so no host-device transfer per step): a seed fixes it on each device, but
    CPU and CUDA draw different z, and a batch draws different z than its images one by one.

    record: False, True (every step) or k (every k-th step, and the last); record_dtype (e.g.
    torch.float16) stores the trace in lower precision. progress: a tqdm bar (notebook-aware).
    Returns a DDFMResult.
    """
    check_images(i=i, v=v, limit=IMAGE_LIMIT, dtypes=EM_DTYPES)
    check_choice("em_variant", em_variant, EM_VARIANTS)
    em = EMConfig(psi=psi, eta=eta, variant=em_variant, phi=phi)
    _check_arguments(prior, steps, sampler, seed)
    if prior.device != i.device:
        raise ValueError(f"prior is on {prior.device} but i and v are on {i.device}: move one to the other")
    every = _record_every(record)
    if record_dtype is not None and not (
        isinstance(record_dtype, torch.dtype) and record_dtype.is_floating_point
    ):
        raise ValueError(f"record_dtype must be a floating torch dtype or None, got {record_dtype!r}")

    i_pad, padding = pad_to_multiple(i, prior.stride)
    v_pad, _ = pad_to_multiple(v, prior.stride)
    shape = (i.shape[0], prior.channels, *i_pad.shape[-2:])
    if x_T is None:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        x_T = torch.randn(shape, generator=generator).to(device=i.device, dtype=i.dtype)
    else:
        check_images(channels=prior.channels, x_T=x_T)
        if tuple(x_T.shape) != shape or x_T.device != i.device or x_T.dtype != i.dtype:
            raise ValueError(
                f"x_T must be {shape} {i.dtype} on {i.device} (the padded size), got "
                f"{tuple(x_T.shape)} {x_T.dtype} on {x_T.device}"
            )

    schedule = respace(prior.alpha_bar, steps)
    # Loop counter n of the kept steps -> their slot in the trace, allocated once at the first one.
    slots = {
        n: j for j, n in enumerate(n for n in range(steps) if every and (n % every == 0 or n == steps - 1))
    }
    trace = None
    stochastic = SAMPLERS[sampler].stochastic
    noise_generator = None
    if stochastic and seed is not None:
        noise_generator = torch.Generator(device=i.device).manual_seed(seed)
    x, state = x_T, None
    with torch.no_grad():
        for n, k in enumerate(_progress(range(steps - 1, -1, -1), "DDFM", progress)):
            noise = None
            if stochastic and k > 0:
                noise = torch.randn(shape, generator=noise_generator, device=i.device, dtype=i.dtype)
            step = ddfm_step(x, i_pad, v_pad, prior, schedule, k, state, sampler=sampler, em=em, noise=noise)
            if n in slots:
                trace = _keep(trace, slots, n, step, padding, schedule, record_dtype)
            x, state = step.x_prev, step.state

    sample = crop(x, padding)
    if em.variant == "released":
        fused = stretch(sample if prior.channels == 1 else luma(sample))
    else:
        fused = crop(step.f_hat, padding).clamp(-1.0, 1.0)
    return DDFMResult(fused=fused, sample=sample, trace=trace)


def sample_prior(
    prior: Prior,
    shape: tuple[int, int, int, int],
    *,
    steps: int = 100,
    sampler: str = "ddim",
    seed: int | None = None,
    x_T: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""What the prior alone generates: the DDFM loop without EM (f_hat_{0|t} = f_tilde_{0|t}).

    Per kept step t = t_k, k = S-1 .. 0: f_tilde = prior.predict_x0(f_t, t), then the same update
    as `ddfm` (sampler="ddpm": f_{t-1} = mu_tilde + sigma_tilde z; "ddim": eta = 0). shape:
    (B, prior.channels, H, W), H and W multiples of prior.stride. x_T and the noise are drawn as in
    `ddfm` (x_T on the CPU from `seed`, z on the prior's device). Returns the last sample f_0
    (B, C, H, W) on the prior's device, equal to the last estimate f_tilde_{0|0}.
    """
    _check_arguments(prior, steps, sampler, seed)
    shape = tuple(shape)
    if len(shape) != 4 or shape[1] != prior.channels:
        raise ValueError(f"shape must be (B, {prior.channels}, H, W) for this prior, got {shape}")
    if shape[2] % prior.stride or shape[3] % prior.stride:
        raise ValueError(f"shape's H and W must be multiples of the prior's stride {prior.stride}: {shape}")
    device = prior.device
    if x_T is None:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        x_T = torch.randn(shape, generator=generator).to(device)
    elif tuple(x_T.shape) != shape or x_T.device != device:
        raise ValueError(f"x_T must have shape {shape} on {device}, got {tuple(x_T.shape)} on {x_T.device}")
    update = SAMPLERS[sampler]
    noise_generator = None
    if update.stochastic and seed is not None:
        noise_generator = torch.Generator(device=device).manual_seed(seed)
    schedule = respace(prior.alpha_bar, steps)
    x = x_T
    with torch.no_grad():
        for k in _progress(range(steps - 1, -1, -1), "prior", progress):
            t_batch = torch.full((shape[0],), schedule.timesteps[k], dtype=torch.long, device=device)
            f_tilde = prior.predict_x0(x, t_batch).to(x.dtype)
            noise = None
            if update.stochastic and k > 0:
                noise = torch.randn(shape, generator=noise_generator, device=device, dtype=x.dtype)
            x = update.step(x, f_tilde, schedule, k, noise)
    return x

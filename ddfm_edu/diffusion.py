r"""The diffusion schedule of DDPM/ADM as DDFM uses it (docs/method.md section 5).

Forward process: f_t = sqrt(alpha_bar_t) f_0 + sqrt(1 - alpha_bar_t) z,  z ~ N(0, I),
with alpha_bar_t = prod_{s <= t} (1 - beta_s) and a linear beta schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def linear_alpha_bar(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    r"""alpha_bar_t = prod_{s=0}^{t} (1 - beta_s),  beta_s = linspace(beta_start, beta_end, T).

    Returned in float64 (shape (T,)), as the release keeps its schedule in float64.
    """
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def respaced_timesteps(T: int, S: int) -> list[int]:
    r"""The S kept timesteps t_k = round(k (T-1)/(S-1)), ascending, exactly as the release respaces.

    The release accumulates the stride k times in floating point (rather than multiplying), so the
    same accumulation is done here: for S = 100 and T = 1000 this gives 0, 10, 20, ..., 989, 999.
    """
    if not 1 <= S <= T:
        raise ValueError(f"S (number of steps) must be in 1..{T}, got {S}")
    if S == 1:
        return [0]
    stride = (T - 1) / (S - 1)
    steps, position = [], 0.0
    for _ in range(S):
        steps.append(round(position))
        position += stride
    return steps


# ---------------------------------------------------------------------------------------------------
# The respaced chain t_0 < t_1 < ... < t_{S-1}: the sampler walks it from k = S-1 down to 0.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RespacedSchedule:
    r"""The S kept timesteps and their alpha-bars, as the release's SpacedDiffusion builds them.

    The kept chain is a diffusion of its own with betas
        beta'_k = 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}},   alpha_bar_{t_{-1}} = 1,
    so that prod_{j <= k} (1 - beta'_j) = alpha_bar_{t_k}: the respaced chain keeps the marginals
    q(f_{t_k} | f_0) of the original one. The network is still called with the original t_k.

    Values are plain Python floats (float64), so a sampling loop reads them without touching a device.
    """

    timesteps: tuple[int, ...]
    alpha_bar: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.timesteps)

    def alpha_bar_prev(self, k: int) -> float:
        """alpha_bar_{t_{k-1}}, with 1 before the first kept step (k = 0)."""
        return 1.0 if k == 0 else self.alpha_bar[k - 1]

    @property
    def betas(self) -> torch.Tensor:
        r"""beta'_k = 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}} (float64, shape (S,))."""
        return torch.tensor(
            [1.0 - ab / self.alpha_bar_prev(k) for k, ab in enumerate(self.alpha_bar)],
            dtype=torch.float64,
        )


def respace(alpha_bar: torch.Tensor, S: int) -> RespacedSchedule:
    """Keep S of the T = len(alpha_bar) timesteps (`respaced_timesteps`) and their alpha-bars."""
    timesteps = respaced_timesteps(len(alpha_bar), S)
    values = alpha_bar.detach().to("cpu", torch.float64)
    return RespacedSchedule(tuple(timesteps), tuple(float(values[t]) for t in timesteps))


# ---------------------------------------------------------------------------------------------------
# Formulas of one step. alpha_bar, alpha_bar_prev: Python floats or tensors broadcastable to x.
# ---------------------------------------------------------------------------------------------------


def q_sample(f0: torch.Tensor, alpha_bar: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    r"""f_t = sqrt(alpha_bar_t) f_0 + sqrt(1 - alpha_bar_t) z  (a draw from q(f_t | f_0), z = noise)."""
    return alpha_bar**0.5 * f0 + (1.0 - alpha_bar) ** 0.5 * noise


def x0_from_eps(f_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    r"""Tweedie: f_{0|t} = (f_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)  (not clipped)."""
    return (f_t - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_from_x0(f_t: torch.Tensor, f0: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    r"""eps' = (f_t / sqrt(alpha_bar_t) - f_{0|t}) / sqrt(1 / alpha_bar_t - 1), the noise that
    f_{0|t} implies (the inverse of `x0_from_eps`)."""
    return (f_t / alpha_bar**0.5 - f0) / (1.0 / alpha_bar - 1.0) ** 0.5


def ddpm_posterior(
    f_t: torch.Tensor,
    f0: torch.Tensor,
    alpha_bar: float | torch.Tensor,
    alpha_bar_prev: float | torch.Tensor,
) -> tuple[torch.Tensor, float | torch.Tensor]:
    r"""q(f_{t-1} | f_t, f_0) = N(mu_tilde, sigma_tilde^2) for one step of a (respaced) chain:

        beta = 1 - alpha_bar_t / alpha_bar_{t-1}
        mu_tilde = beta sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) f_0
                 + (1 - alpha_bar_{t-1}) sqrt(1 - beta) / (1 - alpha_bar_t) f_t
        sigma_tilde^2 = beta (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

    Returns (mu_tilde, sigma_tilde^2); the variance is 0 at the last step (alpha_bar_{t-1} = 1).
    """
    beta = 1.0 - alpha_bar / alpha_bar_prev
    mean = (beta * alpha_bar_prev**0.5 * f0 + (1.0 - alpha_bar_prev) * (1.0 - beta) ** 0.5 * f_t) / (
        1.0 - alpha_bar
    )
    variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    return mean, variance


def ddpm_step(
    f_t: torch.Tensor,
    f0: torch.Tensor,
    alpha_bar: float | torch.Tensor,
    alpha_bar_prev: float | torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    r"""The paper's update (Algorithm 1): f_{t-1} = mu_tilde(f_t, f_0) + sigma_tilde z, z = noise."""
    mean, variance = ddpm_posterior(f_t, f0, alpha_bar, alpha_bar_prev)
    return mean + variance**0.5 * noise


def ddim_step(
    f_t: torch.Tensor,
    f0: torch.Tensor,
    alpha_bar: float | torch.Tensor,
    alpha_bar_prev: float | torch.Tensor,
) -> torch.Tensor:
    r"""The release's update, DDIM with eta = 0 (deterministic):

    eps'    = (f_t / sqrt(alpha_bar_t) - f_{0|t}) / sqrt(1 / alpha_bar_t - 1)
    f_{t-1} = sqrt(alpha_bar_{t-1}) f_{0|t} + sqrt(1 - alpha_bar_{t-1}) eps'
    """
    eps = eps_from_x0(f_t, f0, alpha_bar)
    return alpha_bar_prev**0.5 * f0 + (1.0 - alpha_bar_prev) ** 0.5 * eps


# ---------------------------------------------------------------------------------------------------
# The update rules as sampler objects (as diffusers' schedulers): f_{t-1} from f_t and f_{0|t}.
# ---------------------------------------------------------------------------------------------------


class Sampler:
    """An update rule f_{t_{k-1}} = step(f_t, f_{0|t}) on a respaced chain; `stochastic` samplers
    take the noise z of each step but the last (whose variance is 0)."""

    name: str
    stochastic: bool

    def step(
        self, f_t: torch.Tensor, f0: torch.Tensor, schedule: RespacedSchedule, k: int,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """f_{t_{k-1}} from f_t = f_{t_k} and the estimate f_{0|t}, at the k-th kept step."""
        return self.update(f_t, f0, schedule.alpha_bar[k], schedule.alpha_bar_prev(k), noise)

    def update(self, f_t, f0, alpha_bar: float, alpha_bar_prev: float, noise) -> torch.Tensor:
        raise NotImplementedError


class DDIMSampler(Sampler):
    r"""The release's deterministic update (`ddim_step`, eta = 0); draws no noise:
    f_{t-1} = sqrt(alpha_bar_{t-1}) f_{0|t} + sqrt(1 - alpha_bar_{t-1}) eps'."""

    name, stochastic = "ddim", False

    def update(self, f_t, f0, alpha_bar: float, alpha_bar_prev: float, noise) -> torch.Tensor:
        return ddim_step(f_t, f0, alpha_bar, alpha_bar_prev)


class DDPMSampler(Sampler):
    r"""The paper's update (Algorithm 1, `ddpm_step`): f_{t-1} = mu_tilde(f_t, f_{0|t}) + sigma_tilde z
    with z = noise; noise None (the last step, whose variance is 0): the posterior mean mu_tilde."""

    name, stochastic = "ddpm", True

    def update(self, f_t, f0, alpha_bar: float, alpha_bar_prev: float, noise) -> torch.Tensor:
        if noise is None:
            return ddpm_posterior(f_t, f0, alpha_bar, alpha_bar_prev)[0]
        return ddpm_step(f_t, f0, alpha_bar, alpha_bar_prev, noise)


SAMPLERS: dict[str, Sampler] = {"ddim": DDIMSampler(), "ddpm": DDPMSampler()}
"""The samplers by name; `SAMPLERS[name].step(f_t, f0, schedule, k, noise)`."""

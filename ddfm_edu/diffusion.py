r"""The diffusion schedule of DDPM/ADM as DDFM uses it (ddfm_math.md section 5).

Forward process: f_t = sqrt(alpha_bar_t) f_0 + sqrt(1 - alpha_bar_t) z,  z ~ N(0, I),
with alpha_bar_t = prod_{s <= t} (1 - beta_s) and a linear beta schedule.
"""

from __future__ import annotations

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

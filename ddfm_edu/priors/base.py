r"""What DDFM needs from a prior: Tweedie's estimate of the clean image.

Given the forward process f_t = sqrt(alpha_bar_t) f_0 + sqrt(1 - alpha_bar_t) z, a prior p(f_0) defines
the minimum-mean-square-error estimate (Tweedie's formula)

    f_tilde_{0|t} = E[f_0 | f_t] = (f_t + (1 - alpha_bar_t) grad log p_t(f_t)) / sqrt(alpha_bar_t)
                  = (f_t - sqrt(1 - alpha_bar_t) eps(f_t, t)) / sqrt(alpha_bar_t),

which is all the DDFM sampler asks of a prior. Every prior is a torch Module (so `.to(device)` moves
it), keeps the schedule alpha_bar as a buffer, and takes t as the ORIGINAL timestep index 0..T-1.
"""

from __future__ import annotations

import torch
from torch import nn

from ddfm_edu.diffusion import linear_alpha_bar


class CheckpointError(ValueError):
    """A weights file (a network checkpoint) that is missing, unreadable, or does not match the
    architecture: what every prior loader raises instead of falling back to random weights."""


class Prior(nn.Module):
    """Base class: subclasses set `channels` (1 grey or 3 RGB) and `stride` (H and W must be
    multiples of it; the sampler reflect-pads to it) and implement `predict_x0`."""

    channels: int = 1
    stride: int = 1
    compute_dtype: torch.dtype | None = None
    """The dtype `predict_x0` computes in: None follows x_t's (an analytic prior); a network's
    weights fix it (float32), and the sampler casts x_t to it and the estimate back."""

    def __init__(self, alpha_bar: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("alpha_bar", linear_alpha_bar() if alpha_bar is None else alpha_bar)

    @property
    def device(self) -> torch.device:
        return self.alpha_bar.device

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""f_tilde_{0|t} = E[f_0 | f_t = x_t], clipped to [-1, 1]; x_t (B, channels, H, W), t (B,) long."""
        raise NotImplementedError

    def alpha_bar_at(self, t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_bar_t gathered for a batch of timesteps t (B,) or a scalar, shaped (B, 1, 1, 1), in
        like's dtype (None: the schedule's float64). The one gather every prior uses."""
        alpha_bar = self.alpha_bar[torch.as_tensor(t, device=self.device).long().reshape(-1)]
        return alpha_bar.view(-1, 1, 1, 1) if like is None else alpha_bar.to(like.dtype).view(-1, 1, 1, 1)

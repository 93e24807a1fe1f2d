"""Priors for DDFM: analytic (Gaussian), the learned prior bundled with the package (embedded),
and the paper's guided-diffusion ImageNet network loaded from a user's checkpoint (ADM)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddfm_edu.priors.base import Prior

__all__ = ["Prior", "load_prior", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cuda' without a GPU is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available")
    return device

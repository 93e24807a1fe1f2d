"""Priors for DDFM: analytic (Gaussian), the learned prior bundled with the package (embedded),
and the paper's guided-diffusion ImageNet network loaded from a user's checkpoint (ADM).

The ADM names (`ADMPrior`, `ADMUNet`, `load_adm_checkpoint`) are imported from `priors.adm` on
first use, so that the Gaussian and embedded priors never load the ImageNet network's module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ddfm_edu.priors.base import CheckpointError, Prior

__all__ = [
    "ADMPrior",
    "ADMUNet",
    "CheckpointError",
    "Prior",
    "load_adm_checkpoint",
    "load_prior",
    "resolve_device",
]

_ADM_NAMES = ("ADMPrior", "ADMUNet", "load_adm_checkpoint")


def __getattr__(name: str) -> Any:
    """`ADMPrior`, `ADMUNet` and `load_adm_checkpoint` from `priors.adm`, imported when first asked for."""
    if name in _ADM_NAMES:
        from ddfm_edu.priors import adm

        return getattr(adm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cuda' without a GPU is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available")
    return device


PRIOR_NAMES = ("embedded", "gaussian")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def _looks_like_a_file(path: Path) -> bool:
    return path.is_file() or path.suffix in CHECKPOINT_SUFFIXES or path.parent != Path(".")


def load_prior(
    spec: str | Path = "embedded",
    device: str | torch.device = "auto",
    half: bool = False,
    config: dict | str | Path | None = None,
) -> Prior:
    """A prior by name or checkpoint path, in eval mode on `device` (`resolve_device`).

    "embedded": the learned grey prior bundled with the package (the default);
    "gaussian": the analytic stationary Gaussian prior (`GaussianPrior`);
    a path to an ADM checkpoint (e.g. 256x256_diffusion_uncond.pt): the paper's ImageNet network
    (`load_adm_checkpoint`, architecture from the file name), which refuses a missing, truncated or
    mismatched file with an error naming it (a spec counts as a path when the file exists, or when
    it has a folder part or a checkpoint suffix). half=True runs an ADM network's body in float16
    (for CUDA); `config` (a dict or a JSON file) gives an ADM checkpoint's architecture when its
    file name does not. Anything else raises ValueError naming the spec and the choices.
    """
    device = resolve_device(device)
    if isinstance(spec, str) and spec == "embedded":
        from ddfm_edu.priors.embedded import load_embedded

        return load_embedded(device)
    if isinstance(spec, str) and spec == "gaussian":
        from ddfm_edu.priors.gaussian import GaussianPrior

        return GaussianPrior().to(device).eval()
    if isinstance(spec, (str, Path)) and _looks_like_a_file(Path(spec)):
        from ddfm_edu.priors.adm import load_adm_checkpoint

        return load_adm_checkpoint(spec, config=config, device=device, half=half)
    raise ValueError(f"prior {spec!r} is neither one of {PRIOR_NAMES} nor an existing checkpoint file")

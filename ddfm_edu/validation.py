"""Argument checks shared by the library: one clear ValueError that names the argument.

Public entry points (`em_step`, `em_fuse`, `ddfm`, the baselines, the command line) validate what a
user passes once, here; the per-step paths they call do no checks.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import torch


def check_positive(name: str, value: Any) -> float:
    """A positive finite real number (bool refused). Returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_integer(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in minimum..maximum (bool refused). Returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
        maximum is not None and value > maximum
    ):
        allowed = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """One of `choices`. Returns it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


IMAGE_LIMIT = 4.0
"""Images are on the [-1, 1] scale (x = p / 127.5 - 1 for 8-bit grey values p). An input with a
value beyond +-IMAGE_LIMIT is on another scale (0..255, say) or corrupt, and is refused at the
public entry points; prior estimates, noise and EM's own iterates are not checked."""


def check_images(
    ndim: int = 4,
    channels: int | None = 1,
    *,
    values: bool = True,
    limit: float | None = None,
    dtypes: tuple[torch.dtype, ...] | None = None,
    **tensors: torch.Tensor,
) -> None:
    """Check named image tensors: torch, floating point (one of `dtypes` if given), `ndim` dims,
    not empty, same shape, device and dtype, `channels` channels (None: any). values=True also
    scans the values (one reduction and one host sync per tensor: for user input at an entry point,
    never inside a loop): finite, and within +-limit when a limit is given. Raises ValueError
    naming the offending argument."""
    reference_name, reference = None, None
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if dtypes is not None and x.dtype not in dtypes:
            allowed = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
            raise ValueError(f"{name} has dtype {x.dtype}: this needs {allowed} (convert with .to(...))")
        if x.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions (B, C, H, W), got shape {tuple(x.shape)}")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least one pixel")
        if reference is not None:
            if x.shape != reference.shape:
                raise ValueError(
                    f"{name} has shape {tuple(x.shape)} but {reference_name} has {tuple(reference.shape)}"
                )
            if x.device != reference.device:
                raise ValueError(f"{name} is on {x.device} but {reference_name} is on {reference.device}")
            if x.dtype != reference.dtype:
                raise ValueError(f"{name} has dtype {x.dtype} but {reference_name} has {reference.dtype}")
        if values:
            largest = float(x.detach().abs().amax())  # NaN and inf propagate: one pass, one sync
            if not math.isfinite(largest):
                raise ValueError(f"{name} contains NaN or infinite values")
            if limit is not None and largest > limit:
                raise ValueError(
                    f"{name} has values up to {largest:.4g} in magnitude: images must be on the [-1, 1] "
                    "scale (x = p / 127.5 - 1 for 8-bit grey values p)"
                )
        reference_name, reference = name, x

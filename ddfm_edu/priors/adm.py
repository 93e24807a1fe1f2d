r"""The paper's prior: the guided-diffusion ("ADM", Dhariwal & Nichol 2021) network's configurations,
DDFM's prior built on it, and its checkpoints.

DDFM uses the unconditional ImageNet 256x256 model (checkpoint `256x256_diffusion_uncond.pt`, 552.8 M
parameters); the network itself, `ADMUNet`, is rebuilt in `ddfm_edu.priors.adm_unet` (imported
here too). `ADMPrior` turns the network into DDFM's prior (Tweedie's estimate from eps), and
`load_adm_checkpoint` loads a user's checkpoint, refusing (never random weights) when it is missing
or does not match.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ddfm_edu.priors.adm_unet import (
    ADMUNet,
    ResBlock,
    qkv_attention,
    qkv_attention_legacy,
    timestep_embedding,
)
from ddfm_edu.priors.base import CheckpointError, Prior

__all__ = [
    "ADM256_UNCOND_CONFIG",
    "ADMPrior",
    "ADMUNet",
    "CheckpointError",
    "KNOWN_ADM_CONFIGS",
    "ResBlock",
    "load_adm_checkpoint",
    "qkv_attention",
    "qkv_attention_legacy",
    "timestep_embedding",
]

# The configuration of the unconditional ImageNet 256x256 model as DDFM's release builds it
# (configs/model_config_imagenet.yaml there; also `config` in adm256_uncond_state_dict.json).
ADM256_UNCOND_CONFIG: dict[str, Any] = {
    "image_size": 256,
    "num_channels": 256,
    "num_res_blocks": 2,
    "channel_mult": "",
    "learn_sigma": True,
    "class_cond": False,
    "use_checkpoint": False,
    "attention_resolutions": "32,16,8",
    "num_heads": 4,
    "num_head_channels": 64,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "dropout": 0.0,
    "resblock_updown": True,
    "use_fp16": False,
    "use_new_attention_order": False,
}

# Unconditional guided-diffusion checkpoints trained with the linear 1000-step schedule, by file name.
# The LSUN models use the same architecture as the ImageNet one (flags of the guided-diffusion README;
# their dropout does not act at sampling time).
KNOWN_ADM_CONFIGS: dict[str, dict[str, Any]] = {
    "256x256_diffusion_uncond.pt": ADM256_UNCOND_CONFIG,
    "lsun_bedroom.pt": {**ADM256_UNCOND_CONFIG, "dropout": 0.1},
    "lsun_cat.pt": {**ADM256_UNCOND_CONFIG, "dropout": 0.1},
    "lsun_horse.pt": {**ADM256_UNCOND_CONFIG, "dropout": 0.1},
    "lsun_horse_nodropout.pt": ADM256_UNCOND_CONFIG,
}

# Public guided-diffusion checkpoints that cannot serve as DDFM's unconditional prior.
_UNSUPPORTED_ADM_FILES = {
    "64x64_diffusion.pt": "class-conditional, cosine schedule",
    "128x128_diffusion.pt": "class-conditional",
    "256x256_diffusion.pt": "class-conditional (use 256x256_diffusion_uncond.pt)",
    "512x512_diffusion.pt": "class-conditional",
    "64_256_upsampler.pt": "a super-resolution model",
    "128_512_upsampler.pt": "a super-resolution model",
}


class ADMPrior(Prior):
    r"""DDFM's prior from an `ADMUNet`: Tweedie's estimate from the predicted noise, as the release.

    eps = the first 3 output channels of unet(f_t, t) (t the ORIGINAL timestep: the release's
    respacing wrapper maps respaced indices back to them, and rescale_timesteps is False), then

        f_tilde_{0|t} = clip( sqrt(1/alpha_bar_t) f_t - sqrt(1/alpha_bar_t - 1) eps, -1, 1 ),

    with both coefficients computed in float64 and cast to f_t's dtype, as the release's
    _predict_xstart_from_eps does. H and W must be multiples of `unet.stride` (32 for the 256
    model: the sampler pads). `half=True` runs the network body in float16 (for CUDA; see
    `ADMUNet.convert_to_fp16`); inputs and outputs stay float32.
    """

    channels = 3
    compute_dtype = torch.float32

    def __init__(self, unet: ADMUNet, *, half: bool = False, alpha_bar: torch.Tensor | None = None):
        super().__init__(alpha_bar)
        self.unet = unet
        self.stride = unet.stride
        if half:
            unet.convert_to_fp16()

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction eps_theta(x_t, t), (B, 3, H, W)."""
        B, C, H, W = x_t.shape
        if C != self.channels:
            raise ValueError(f"x_t must have {self.channels} channels, got shape {tuple(x_t.shape)}")
        s = self.unet.stride
        if H % s or W % s:
            raise ValueError(
                f"x_t height and width must be multiples of {s} for this network, got {H}x{W} "
                "(pad the images, as the sampler does)"
            )
        if t.ndim == 0:
            t = t.expand(B)
        return self.unet(x_t, t)[:, : self.channels]

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""f_tilde_{0|t} = clip(sqrt(1/alpha_bar_t) x_t - sqrt(1/alpha_bar_t - 1) eps, -1, 1)."""
        t = torch.as_tensor(t, device=x_t.device)
        eps = self.eps(x_t, t)
        alpha_bar = self.alpha_bar_at(t)
        recip = torch.sqrt(1.0 / alpha_bar).to(x_t.dtype)
        recipm1 = torch.sqrt(1.0 / alpha_bar - 1.0).to(x_t.dtype)
        return (recip * x_t - recipm1 * eps).clamp(-1.0, 1.0)


def _read_config(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A config dict, or a JSON file holding one (directly or under a "config" key)."""
    if isinstance(config, Mapping):
        return dict(config)
    path = Path(config)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read the network config '{path}': {err}") from err
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        raise CheckpointError(f"the network config '{path}' does not hold a JSON object")
    return data


def _mismatch_message(
    path: Path, expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor], show: int = 5
) -> str | None:
    """Describe how a state dict differs from the expected names/shapes (None when it matches)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or wrong):
        return None
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > show else ""
            parts.append(f"{what}: " + ", ".join(items[:show]) + more)
    return f"checkpoint '{path}' does not match the network architecture: " + "; ".join(parts)


def load_adm_checkpoint(
    path: str | Path,
    config: Mapping[str, Any] | str | Path | None = None,
    device: str | torch.device = "cpu",
    half: bool = False,
) -> ADMPrior:
    """Load a guided-diffusion checkpoint as an `ADMPrior` (eval mode, no gradients), or refuse.

    The architecture comes from `config` (a dict of `ADMUNet` keys, or a JSON file of them) or else
    from the file name (`KNOWN_ADM_CONFIGS`, e.g. 256x256_diffusion_uncond.pt). Raises
    `CheckpointError` naming the file and the problem when the file is missing or unreadable (not a
    torch checkpoint, truncated), is not a state dict, or its names/shapes do not match the
    architecture. Never falls back to random weights. `half=True` runs the body in float16 (CUDA).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint '{path}' does not exist"
            + (" (it is a directory)" if path.is_dir() else "")
            + "; download it (e.g. 256x256_diffusion_uncond.pt of openai/guided-diffusion) first"
        )
    if config is None:
        if path.name in _UNSUPPORTED_ADM_FILES:
            raise CheckpointError(
                f"checkpoint '{path}' is {_UNSUPPORTED_ADM_FILES[path.name]}: DDFM needs an "
                "unconditional model such as 256x256_diffusion_uncond.pt"
            )
        if path.name not in KNOWN_ADM_CONFIGS:
            raise CheckpointError(
                f"unknown architecture for checkpoint '{path}': its file name is none of "
                f"{sorted(KNOWN_ADM_CONFIGS)}; give its architecture as config= (a dict or a JSON file; "
                "on the command line --config FILE)"
            )
        config = KNOWN_ADM_CONFIGS[path.name]
    config = _read_config(config)
    device = torch.device(device)
    if half and device.type != "cuda":
        raise ValueError(f"half=True needs a CUDA device (got device '{device}')")

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files (pickle, zip, EOF, runtime)
        raise CheckpointError(
            f"cannot read checkpoint '{path}' as a file of tensors saved by torch.save: it is truncated, "
            "not a checkpoint, or holds Python objects besides tensors (refused: loading those could "
            "run code)"
        ) from err
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"checkpoint '{path}' is not a state dict (a mapping of parameter names to tensors); "
            f"it holds a {type(state).__name__}"
        )

    try:
        with torch.device("meta"):
            unet = ADMUNet(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"bad network config for checkpoint '{path}': {err}") from err
    expected = {k: v.shape for k, v in unet.state_dict().items()}
    message = _mismatch_message(path, expected, state)
    if message:
        raise CheckpointError(message)
    not_float = [k for k, v in state.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"checkpoint '{path}' holds non-float tensors: {not_float[:5]}")
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    unet.eval().requires_grad_(False)
    return ADMPrior(unet, half=half).to(device)

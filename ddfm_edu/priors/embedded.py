r"""The learned grey prior bundled with the package: a small U-Net denoiser that runs on a laptop CPU.

DDFM only asks its prior for Tweedie's estimate f_tilde_{0|t} = E[f_0 | f_t] (docs/method.md section 5).
Instead of the paper's 2 GB ImageNet network, this prior is a 1.7 M parameter U-Net (3.5 MB in
fp16) trained (by `python -m ddfm_edu.train_prior`) to output that estimate directly, at every
timestep of the linear schedule, for grey images in [-1, 1]. One call at 256 x 256 takes about
0.12 s on two idle CPU cores.

Parameterisation (EDM, Karras et al. 2022). The VP sample f_t = sqrt(alpha_bar_t) f_0 +
sqrt(1 - alpha_bar_t) z is rescaled to the variance-exploding form

    y = f_t / sqrt(alpha_bar_t) = f_0 + sigma_t z,      sigma_t = sqrt(1 / alpha_bar_t - 1),

and the network F predicts the clean image through

    f_tilde_{0|t} = c_skip y + c_out F(c_in y, c_noise),
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),   c_noise = ln(sigma) / 4,

with sd = sigma_data = 0.5, so that at small sigma the estimate is close to the input (c_skip -> 1)
and at large sigma close to the network's own guess (c_skip -> 0). Trained with the x0 MSE weighted
by 1 / c_out^2, the minimiser is the posterior mean E[f_0 | f_t] at every noise level.

Architecture: pixel-unshuffle by 2, a four-level U-Net (widths 32-64-96-128 at 1/2 .. 1/16 of the
input size) of GroupNorm-SiLU-conv residual blocks whose normalisation is modulated by the noise
level (FiLM), a global-average-pool context at the bottleneck (so that per-image brightness and
contrast are seen even at t = 500, where alpha_bar is about 0.08), and pixel-shuffle back. Inputs of
any size are reflect-padded to a multiple of `PAD_MULTIPLE` and cropped back.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ddfm_edu.priors import resolve_device
from ddfm_edu.priors.base import CheckpointError, Prior

__all__ = ["EmbeddedPrior", "EmbeddedUNet", "WEIGHTS_PATH", "load_embedded"]

WEIGHTS_PATH = Path(__file__).resolve().parent / "embedded.pt"
SIGMA_DATA = 0.5
PAD_MULTIPLE = 16


class NoiseEmbedding(nn.Module):
    """c_noise -> sinusoidal features at log-spaced frequencies -> 2-layer MLP."""

    def __init__(self, emb_dim: int, n_freq: int = 16) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), n_freq)))
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class ResBlock(nn.Module):
    """h + conv(SiLU(FiLM(GN(conv(SiLU(GN(h))))))) with FiLM scale/shift from the noise embedding."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        r = self.conv2(F.silu(self.norm2(r) * (1 + scale) + shift))
        return self.skip(h) + r


class GlobalContext(nn.Module):
    """h + W mean_{x,y}(h): every position sees image-wide statistics (brightness, contrast)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.proj(h.mean(dim=(2, 3)))[:, :, None, None]


class EmbeddedUNet(nn.Module):
    """F(c_in y, c_noise): the U-Net of the EDM parameterisation; input/output (B, 1, H, W), H, W % 16 = 0."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128), emb_dim: int = 128,
                 groups: int = 8) -> None:
        super().__init__()
        self.config = {"widths": tuple(widths), "emb_dim": emb_dim, "groups": groups}
        self.embed = NoiseEmbedding(emb_dim)
        self.stem = nn.Conv2d(4, widths[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            c_prev = widths[max(level - 1, 0)]
            self.enc.append(ResBlock(c_prev, width, emb_dim, groups))
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.context = GlobalContext(widths[-1])
        self.mid = ResBlock(widths[-1], widths[-1], emb_dim, groups)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for level in range(len(widths) - 2, -1, -1):
            self.up.append(nn.Conv2d(widths[level + 1], widths[level], 3, padding=1))
            self.dec.append(ResBlock(2 * widths[level], widths[level], emb_dim, groups))
        self.out_norm = nn.GroupNorm(groups, widths[0])
        self.out = nn.Conv2d(widths[0], 4, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = self.embed(c_noise)
        h = self.stem(F.pixel_unshuffle(x, 2))
        skips = []
        for level, block in enumerate(self.enc):
            if level > 0:
                h = self.down[level - 1](h)
            h = block(h, emb)
            skips.append(h)
        h = self.mid(self.context(skips.pop()), emb)
        for up, block in zip(self.up, self.dec, strict=True):
            h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return F.pixel_shuffle(self.out(F.silu(self.out_norm(h))), 2)


def edm_coefficients(sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
    r"""(c_skip, c_out, c_in, c_noise) of EDM for sigma (B,): see the module docstring."""
    sd2 = SIGMA_DATA**2
    denom = sigma**2 + sd2
    return sd2 / denom, sigma * SIGMA_DATA / denom.sqrt(), 1.0 / denom.sqrt(), sigma.log() / 4.0


def denoise(net: EmbeddedUNet, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    r"""x0 = c_skip y + c_out F(c_in y, c_noise) for the VE form y = f_0 + sigma z; H, W % 16 = 0."""
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma)
    view = (-1, 1, 1, 1)
    return c_skip.view(view) * y + c_out.view(view) * net(c_in.view(view) * y, c_noise)


class EmbeddedPrior(Prior):
    """The bundled grey prior: f_tilde_{0|t} from `EmbeddedUNet`, clipped to [-1, 1].

    stride = 1: any H, W is accepted (reflect-padded inside `predict_x0` to a multiple of 16).
    """

    channels = 1
    stride = 1
    compute_dtype = torch.float32

    def __init__(self, net: EmbeddedUNet, alpha_bar: torch.Tensor | None = None) -> None:
        super().__init__(alpha_bar)
        self.net = net

    @torch.no_grad()
    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r"""f_tilde_{0|t} = clip(c_skip y + c_out F(c_in y, c_noise)), y = x_t / sqrt(alpha_bar_t).

        x_t (B, 1, H, W) on the prior's device; t (B,) or a scalar, original timestep indices.
        """
        alpha_bar = self.alpha_bar_at(t, x_t).expand(x_t.shape[0], 1, 1, 1)
        sigma = (1.0 / alpha_bar - 1.0).sqrt().view(-1)
        y = x_t / alpha_bar.sqrt()
        height, width = x_t.shape[-2:]
        pad_h, pad_w = -height % PAD_MULTIPLE, -width % PAD_MULTIPLE
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            y = F.pad(y, (0, pad_w, 0, pad_h), mode=mode)
        x0 = denoise(self.net, y, sigma)[..., :height, :width]
        return x0.clamp(-1.0, 1.0)


def save_weights(net: EmbeddedUNet, path: str | Path, record: dict | None = None) -> None:
    """Store the network's config and fp16 weights (float buffers too) in one torch file."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"format": "ddfm_edu.embedded/1", "config": net.config, "state_dict": state,
                "record": record or {}}, path)


def load_embedded(device: str | torch.device = "cpu", path: str | Path | None = None
                  ) -> EmbeddedPrior:
    """The learned prior bundled with the package (weights `priors/embedded.pt`), in eval mode.

    Raises `CheckpointError` (a ValueError, as the ADM loader) naming the file when it is missing,
    unreadable, truncated or does not match the architecture: never random weights.
    """
    path = WEIGHTS_PATH if path is None else Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"embedded prior weights not found at {path}; reinstall ddfm-edu or retrain them with "
            "`python -m ddfm_edu.train_prior --out <path>`")
    try:
        blob = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != "ddfm_edu.embedded/1":
            raise ValueError("not a ddfm_edu embedded-prior file (missing format tag)")
        config = dict(blob["config"])
        config["widths"] = tuple(config["widths"])
        net = EmbeddedUNet(**config)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in blob["state_dict"].items()}, strict=True)
    except Exception as error:  # unpickling/zip errors, missing keys, shape mismatch
        reason = "not a file of tensors saved by torch.save" if isinstance(error, pickle.UnpicklingError) \
            else str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"embedded prior weights at {path} are corrupt or do not match the "
                              f"architecture: {reason}") from error
    return EmbeddedPrior(net).to(resolve_device(device)).eval()

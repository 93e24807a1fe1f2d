r"""The guided-diffusion ("ADM", Dhariwal & Nichol 2021) U-Net, the network of the paper's prior.

DDFM uses the unconditional ImageNet 256x256 model (checkpoint `256x256_diffusion_uncond.pt`, 552.8 M
parameters). This module rebuilds that network in this package, module for module, so that its
`state_dict()` has the checkpoint's names and shapes and loads with strict=True, and so that, given the
same weights, it computes what the released network computes, in the same order of operations:

    emb     = MLP(timestep_embedding(t))                         sinusoidal, then Linear-SiLU-Linear
    h       = input_blocks(x, emb) -> middle_block -> output_blocks (each concatenating a skip)
    output  = out(h) = Conv(SiLU(GroupNorm(h)))                  (B, 6, H, W): eps and the variance

ResBlock (use_scale_shift_norm): h = Conv(SiLU(GN(x))); h = GN(h) (1 + scale) + shift with
(scale, shift) = Linear(SiLU(emb)); out = skip(x) + Conv(Dropout(SiLU(h))).
AttentionBlock: out = x + proj_out(softmax((q/ch^(1/4))^T (k/ch^(1/4))) applied to v), per head.

Its configurations, the prior built on it (`ADMPrior`) and the checkpoint loader are in
`ddfm_edu.priors.adm`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ADMUNet",
    "AttentionBlock",
    "ResBlock",
    "qkv_attention",
    "qkv_attention_legacy",
    "timestep_embedding",
]

# channel_mult "" means the release's default for the image size (script_util.create_model).
_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    r"""Sinusoidal embedding of timesteps t (B,) -> (B, dim), float32, cosines first.

    e(t) = [cos(t w_0), ..., cos(t w_{h-1}), sin(t w_0), ..., sin(t w_{h-1})],
    w_i = max_period^(-i/h), h = dim // 2 (a zero column is appended when dim is odd).
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def qkv_attention_legacy(qkv: torch.Tensor, n_heads: int) -> torch.Tensor:
    r"""Dot-product attention, heads split BEFORE q, k, v (the release's QKVAttentionLegacy).

    qkv (B, n_heads * 3 * ch, L) -> (B, n_heads * ch, L);
    a = v softmax_s((q / ch^(1/4))^T (k / ch^(1/4))): the scale is applied to q and k separately
    (more stable in half precision) and the softmax runs in float32.
    """
    bs, width, length = qkv.shape
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(bs * n_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(bs, -1, length)


def qkv_attention(qkv: torch.Tensor, n_heads: int) -> torch.Tensor:
    r"""As `qkv_attention_legacy`, but q, k, v are split BEFORE the heads (the release's QKVAttention).

    qkv (B, 3 * n_heads * ch, L) -> (B, n_heads * ch, L).
    """
    bs, width, length = qkv.shape
    ch = width // (3 * n_heads)
    q, k, v = qkv.chunk(3, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum(
        "bct,bcs->bts",
        (q * scale).view(bs * n_heads, ch, length),
        (k * scale).view(bs * n_heads, ch, length),
    )
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    a = torch.einsum("bts,bcs->bct", weight, v.reshape(bs * n_heads, ch, length))
    return a.reshape(bs, -1, length)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32 whatever the input's dtype."""

    def __init__(self, channels: int) -> None:
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling, then (optionally) a 3x3 convolution `conv`."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = (
            nn.Conv2d(channels, out_channels or channels, 3, padding=1) if use_conv else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x if self.conv is None else self.conv(x)


class Downsample(nn.Module):
    """x1/2 downsampling `op`: a stride-2 3x3 convolution, or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        elif out_channels != channels:
            raise ValueError("average-pool downsampling cannot change the number of channels")
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    r"""Residual block conditioned on the timestep embedding (optionally resampling, up or down).

    h = Conv(SiLU(GN(x)))  (resampling h and x between the SiLU and the Conv when up/down),
    scale-shift: h = GN(h) (1 + scale) + shift, (scale, shift) = Linear(SiLU(emb)); else h = GN(h + e),
    out = skip(x) + Conv(Dropout(SiLU(h))), skip the identity or a 1x1 conv when channels change.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, self.out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, (2 if use_scale_shift_norm else 1) * self.out_channels),
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            _zero(nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)),
        )
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions: x + proj_out(attention(qkv(GN(x))))."""

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        elif channels % num_head_channels:
            raise ValueError(
                f"num_head_channels ({num_head_channels}) must divide the channels ({channels})"
            )
        else:
            self.num_heads = channels // num_head_channels
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention = qkv_attention if use_new_attention_order else qkv_attention_legacy
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.attention(self.qkv(self.norm(x)), self.num_heads)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class TimestepEmbedSequential(nn.Sequential):
    """A Sequential that hands the timestep embedding to the ResBlocks among its layers."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


def _zero(module: nn.Module) -> nn.Module:
    """The release's zero_module: output layers start at zero, so each block starts as the identity."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def _channel_mult(channel_mult: str | Iterable[float], image_size: int) -> tuple[float, ...]:
    if isinstance(channel_mult, str):
        if channel_mult == "":
            if image_size not in _DEFAULT_CHANNEL_MULT:
                raise ValueError(
                    f"channel_mult '' has no default for image_size {image_size} "
                    f"(defaults exist for {sorted(_DEFAULT_CHANNEL_MULT)}); give it explicitly"
                )
            return _DEFAULT_CHANNEL_MULT[image_size]
        return tuple(int(m) for m in channel_mult.split(","))
    return tuple(channel_mult)


def _attention_ds(attention_resolutions: str | int | Iterable[int], image_size: int) -> set[int]:
    """Resolutions (e.g. "32,16,8") -> the downsampling rates ds = image_size // resolution."""
    if isinstance(attention_resolutions, str):
        resolutions = [int(r) for r in attention_resolutions.split(",") if r.strip()]
    elif isinstance(attention_resolutions, int):
        resolutions = [attention_resolutions]
    else:
        resolutions = [int(r) for r in attention_resolutions]
    return {image_size // r for r in resolutions}


class ADMUNet(nn.Module):
    r"""The guided-diffusion U-Net, built from the release's configuration keys.

    `ADMUNet(**config)` with `config` as in adm256_uncond_state_dict.json builds the network whose
    state_dict() equals that checkpoint's names and shapes (in 3 channels, out 6 when learn_sigma).
    `forward(x, t)`: x (B, 3, H, W) with H, W multiples of `stride` (2^(levels - 1)), t (B,) integer
    timesteps -> (B, out_channels, H, W); with learn_sigma the first 3 channels are eps.

    Parameters are float32. `convert_to_fp16()` runs the body (input, middle and output blocks) in
    half precision as the release's use_fp16 does (convolution weights in float16; GroupNorm, the
    embedding MLP and the output head stay float32); it is meant for CUDA. `use_fp16` itself is
    accepted for config compatibility only: call `convert_to_fp16()` (or load with half=True).
    `use_checkpoint` (gradient checkpointing, a training-memory option) is accepted and not needed.
    """

    def __init__(
        self,
        *,
        image_size: int = 256,
        num_channels: int = 256,
        num_res_blocks: int = 2,
        channel_mult: str | Iterable[float] = "",
        learn_sigma: bool = True,
        class_cond: bool = False,
        use_checkpoint: bool = False,
        attention_resolutions: str | int | Iterable[int] = "32,16,8",
        num_heads: int = 4,
        num_head_channels: int = 64,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        dropout: float = 0.0,
        resblock_updown: bool = True,
        use_fp16: bool = False,
        use_new_attention_order: bool = False,
        conv_resample: bool = True,
    ) -> None:
        super().__init__()
        if class_cond:
            raise ValueError("class_cond=True is not supported: DDFM uses an unconditional model")
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.config = {
            "image_size": image_size,
            "num_channels": num_channels,
            "num_res_blocks": num_res_blocks,
            "channel_mult": channel_mult,
            "learn_sigma": learn_sigma,
            "attention_resolutions": attention_resolutions,
            "num_heads": num_heads,
            "num_head_channels": num_head_channels,
            "num_heads_upsample": num_heads_upsample,
            "use_scale_shift_norm": use_scale_shift_norm,
            "dropout": dropout,
            "resblock_updown": resblock_updown,
            "use_new_attention_order": use_new_attention_order,
            "conv_resample": conv_resample,
        }
        self.in_channels = 3
        self.out_channels = 6 if learn_sigma else 3
        self.model_channels = num_channels
        self.channel_mult = _channel_mult(channel_mult, image_size)
        self.stride = 2 ** (len(self.channel_mult) - 1)
        self.body_dtype = torch.float32
        attention_ds = _attention_ds(attention_resolutions, image_size)

        time_embed_dim = num_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(num_channels, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )

        def res_block(ch_in: int, ch_out: int, **updown: bool) -> ResBlock:
            return ResBlock(ch_in, time_embed_dim, dropout, ch_out, use_scale_shift_norm, **updown)

        def attention(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, num_head_channels, use_new_attention_order)

        ch = input_ch = int(self.channel_mult[0] * num_channels)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(self.in_channels, ch, 3, padding=1))]
        )
        input_block_chans = [ch]
        ds = 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, int(mult * num_channels))]
                ch = int(mult * num_channels)
                if ds in attention_ds:
                    layers.append(attention(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                input_block_chans.append(ch)
            if level != len(self.channel_mult) - 1:
                down = res_block(ch, ch, down=True) if resblock_updown else Downsample(
                    ch, conv_resample
                )
                self.input_blocks.append(TimestepEmbedSequential(down))
                input_block_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(
            res_block(ch, ch), attention(ch, num_heads), res_block(ch, ch)
        )

        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(self.channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + input_block_chans.pop(), int(num_channels * mult))]
                ch = int(num_channels * mult)
                if ds in attention_ds:
                    layers.append(attention(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(
                        res_block(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            GroupNorm32(ch),
            nn.SiLU(),
            _zero(nn.Conv2d(input_ch, self.out_channels, 3, padding=1)),
        )

    def _body_convs(self) -> Iterable[nn.Module]:
        for part in (self.input_blocks, self.middle_block, self.output_blocks):
            yield from (m for m in part.modules() if isinstance(m, nn.Conv1d | nn.Conv2d))

    def convert_to_fp16(self) -> ADMUNet:
        """Run the body in float16, as the release's convert_to_fp16 (its convolutions only)."""
        for conv in self._body_convs():
            conv.half()
        self.body_dtype = torch.float16
        return self

    def convert_to_fp32(self) -> ADMUNet:
        """Undo `convert_to_fp16`."""
        for conv in self._body_convs():
            conv.float()
        self.body_dtype = torch.float32
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W), t (B,) integer timesteps -> (B, out_channels, H, W) in x's dtype."""
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        hs = []
        h = x.type(self.body_dtype)
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))

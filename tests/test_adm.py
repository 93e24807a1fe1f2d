"""The guided-diffusion U-Net (ADMUNet), its prior (ADMPrior) and checkpoint loading.

The published network (552.8 M parameters) is only built on the meta device here (names, shapes,
count); every computation is checked on a small configuration against closed forms and direct
formulas (embedding, attention, residual blocks, Tweedie) and against symmetries the whole network
must have (mirror and transpose equivariance, batch independence).
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddfm_edu.diffusion import linear_alpha_bar
from ddfm_edu.priors.adm import (
    KNOWN_ADM_CONFIGS,
    ADMPrior,
    ADMUNet,
    CheckpointError,
    ResBlock,
    load_adm_checkpoint,
    qkv_attention,
    qkv_attention_legacy,
    timestep_embedding,
)

REPO = Path(__file__).resolve().parents[1]
SPEC_JSON = REPO.parent / "shared" / "spec" / "adm256_uncond_state_dict.json"

# Every feature of the published model (scale-shift norm, resblock up/down, legacy attention with
# fixed head width, learned sigma) at a size that runs in milliseconds; stride 2^(3-1) = 4.
SMALL = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2,2",
    learn_sigma=True,
    attention_resolutions="16,8",
    num_head_channels=8,
    use_scale_shift_norm=True,
    resblock_updown=True,
)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Replace every parameter (including the zero-initialised ones) by a random value of sensible size."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):  # GroupNorm gains
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return module


@pytest.fixture(scope="module")
def small_unet() -> ADMUNet:
    return randomize(ADMUNet(**SMALL)).eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# ---------------------------------------------------------------- the published architecture


def test_published_config_parameter_count_and_stride():
    with torch.device("meta"):
        unet = ADMUNet(**KNOWN_ADM_CONFIGS["256x256_diffusion_uncond.pt"])
    assert sum(p.numel() for p in unet.parameters()) == 552_814_086
    assert unet.channel_mult == (1, 1, 2, 2, 4, 4)
    assert unet.stride == 32 and unet.out_channels == 6


def test_published_names_and_shapes_equal_the_checkpoint_listing():
    if not SPEC_JSON.is_file():
        pytest.skip(f"parameter listing not found at {SPEC_JSON} (the shared spec folder)")
    spec = json.loads(SPEC_JSON.read_text())
    assert spec["config"] == KNOWN_ADM_CONFIGS["256x256_diffusion_uncond.pt"]
    with torch.device("meta"):
        unet = ADMUNet(**spec["config"])
    shapes = {k: list(v.shape) for k, v in unet.state_dict().items()}
    assert list(shapes) == list(spec["state_dict_shapes"])  # same names, same order
    assert shapes == spec["state_dict_shapes"]
    assert len(shapes) == spec["n_tensors"] == 566
    assert sum(p.numel() for p in unet.parameters()) == spec["n_parameters"]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="class_cond"):
        ADMUNet(**{**SMALL, "class_cond": True})
    with pytest.raises(ValueError, match="channel_mult"):
        ADMUNet(**{**SMALL, "channel_mult": ""})  # no default for image_size 32
    with pytest.raises(ValueError, match="num_head_channels"):
        ADMUNet(**{**SMALL, "num_head_channels": 12})


# ---------------------------------------------------------------- building blocks vs formulas


def test_timestep_embedding_closed_form():
    t = torch.tensor([0, 1, 17, 500, 999])
    for dim in (10, 7):
        half = dim // 2
        w = torch.tensor([10000.0 ** (-i / half) for i in range(half)], dtype=torch.float64)
        args = t.double()[:, None] * w
        expected = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        got = timestep_embedding(t, dim)
        assert got.dtype == torch.float32 and got.shape == (5, dim)
        torch.testing.assert_close(got[:, : 2 * half].double(), expected, atol=2e-4, rtol=0)
        if dim % 2:
            assert torch.all(got[:, -1] == 0)
    assert torch.equal(timestep_embedding(torch.tensor([0]), 4), torch.tensor([[1.0, 1, 0, 0]]))


def _direct_attention(q, k, v):
    """softmax over s of q_t . k_s / sqrt(ch), applied to v; q, k, v (ch, L) float64."""
    weights = torch.softmax(q.T @ k / math.sqrt(q.shape[0]), dim=-1)  # (L_t, L_s)
    return v @ weights.T


def test_attention_both_orders_match_direct_softmax():
    g = torch.Generator().manual_seed(1)
    B, heads, ch, L = 2, 3, 4, 10
    qkv = 2 * torch.randn(B, heads * 3 * ch, L, generator=g)
    legacy = qkv_attention_legacy(qkv, heads)
    assert legacy.shape == (B, heads * ch, L)
    for b in range(B):
        for h in range(heads):
            block = qkv[b, h * 3 * ch : (h + 1) * 3 * ch].double()  # legacy: heads first
            q, k, v = block[:ch], block[ch : 2 * ch], block[2 * ch :]
            out = legacy[b, h * ch : (h + 1) * ch].double()
            torch.testing.assert_close(out, _direct_attention(q, k, v), atol=1e-5, rtol=1e-5)
    # new order: q, k, v first, then heads; the same numbers laid out that way give the same result
    new_layout = qkv.view(B, heads, 3, ch, L).transpose(1, 2).reshape(B, -1, L)
    torch.testing.assert_close(qkv_attention(new_layout, heads), legacy, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "scale_shift, up, down", [(True, False, False), (True, True, False), (False, False, True)]
)
def test_resblock_matches_its_formula(scale_shift, up, down):
    c_in, c_out, emb_ch = 64, 64 if (up or down) else 32, 16
    block = randomize(ResBlock(c_in, emb_ch, 0.0, c_out, scale_shift, up=up, down=down), seed=2)
    g = torch.Generator().manual_seed(3)
    x, emb = torch.randn(2, c_in, 8, 6, generator=g), torch.randn(2, emb_ch, generator=g)
    p = {k: v.double() for k, v in block.state_dict().items()}

    def gn(h, name):
        return F.group_norm(h, 32, p[name + ".weight"], p[name + ".bias"], eps=1e-5)

    def conv(h, name, pad=1):
        return F.conv2d(h, p[name + ".weight"], p[name + ".bias"], padding=pad)

    def resample(h):
        if up:
            return h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        if down:
            return 0.25 * (h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2])
        return h

    xd = x.double()
    h = conv(resample(F.silu(gn(xd, "in_layers.0"))), "in_layers.2")
    e = F.linear(F.silu(emb.double()), p["emb_layers.1.weight"], p["emb_layers.1.bias"])
    if scale_shift:
        scale, shift = e[:, :c_out, None, None], e[:, c_out:, None, None]
        h = gn(h, "out_layers.0") * (1 + scale) + shift
    else:
        h = gn(h + e[:, :, None, None], "out_layers.0")
    h = conv(F.silu(h), "out_layers.3")
    skip = resample(xd) if c_in == c_out else conv(xd, "skip_connection", pad=0)
    torch.testing.assert_close(block(x, emb).double(), skip + h, atol=1e-4, rtol=1e-4)


def test_downsample_and_upsample_without_resblocks():
    """resblock_updown False: stride-2 conv down, nearest x2 then conv up (conv_resample True),
    or 2x2 average pooling / plain nearest when conv_resample is False."""
    cfg = {**SMALL, "resblock_updown": False}
    unet = ADMUNet(**cfg)
    assert isinstance(unet.input_blocks[2][0].op, nn.Conv2d) and unet.input_blocks[2][0].op.stride == (2, 2)
    assert isinstance(unet.output_blocks[1][-1].conv, nn.Conv2d)
    pool = ADMUNet(**{**cfg, "conv_resample": False})
    x = torch.randn(1, 32, 6, 4)
    down = pool.input_blocks[2][0](x)
    torch.testing.assert_close(down, x.unfold(2, 2, 2).unfold(3, 2, 2).mean(dim=(-1, -2)))
    assert torch.equal(pool.output_blocks[1][-1](down), down.repeat_interleave(2, 2).repeat_interleave(2, 3))
    randomize(unet)
    assert unet(torch.randn(1, 3, 16, 12), torch.tensor([3])).shape == (1, 6, 16, 12)


# ---------------------------------------------------------------- the whole network


def test_fresh_network_outputs_exactly_zero():
    """zero_module: the output convolution starts at zero (and every block as the identity)."""
    unet = ADMUNet(**SMALL)
    out = unet(torch.randn(2, 3, 16, 16), torch.tensor([0, 999]))
    assert out.shape == (2, 6, 16, 16) and torch.all(out == 0)
    assert all(torch.all(b[0].out_layers[3].weight == 0) for b in unet.output_blocks)


def test_shapes_non_square_and_time_dependence(small_unet):
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        out = small_unet(x, torch.tensor([10, 10]))
        again = small_unet(x, torch.tensor([10, 10]))
        other_t = small_unet(x, torch.tensor([10, 900]))
    assert out.shape == (2, 6, 32, 48) and out.dtype == torch.float32
    assert torch.equal(out, again)  # deterministic (dropout 0, eval)
    assert torch.equal(other_t[0], out[0]) and rel_err(other_t[1], out[1]) > 1e-2
    assert small_unet(torch.randn(1, 3, 8, 4), torch.tensor([0])).shape == (1, 6, 8, 4)


def test_batch_elements_are_independent(small_unet):
    g = torch.Generator().manual_seed(4)
    x, t = torch.randn(3, 3, 16, 24, generator=g), torch.tensor([0, 400, 999])
    with torch.no_grad():
        batch = small_unet(x, t)
        single = torch.cat([small_unet(x[i : i + 1], t[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-5)


def _transformed_copy(unet: ADMUNet, op) -> ADMUNet:
    copy = ADMUNet(**SMALL)
    copy.load_state_dict(unet.state_dict())
    with torch.no_grad():
        for m in copy.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(op(m.weight).clone())
    return copy.eval()


def test_mirror_equivariance(small_unet):
    """With every 3x3 kernel mirrored, the network maps a mirrored image to the mirrored output
    (average-pool/nearest resampling and attention are mirror-symmetric; so is zero padding)."""
    mirrored = _transformed_copy(small_unet, lambda w: w.flip(-1))
    x, t = torch.randn(2, 3, 16, 20, generator=torch.Generator().manual_seed(5)), torch.tensor([7, 600])
    with torch.no_grad():
        torch.testing.assert_close(mirrored(x.flip(-1), t), small_unet(x, t).flip(-1), atol=1e-4, rtol=1e-4)


def test_transpose_equivariance_non_square(small_unet):
    """Transposed kernels + transposed (non-square) input give the transposed output: checks that
    attention treats all positions alike, whatever the order H x W flattens them in."""
    transposed = _transformed_copy(small_unet, lambda w: w.transpose(-1, -2))
    x, t = torch.randn(1, 3, 12, 20, generator=torch.Generator().manual_seed(6)), torch.tensor([250])
    with torch.no_grad():
        got = transposed(x.transpose(-1, -2), t)
        torch.testing.assert_close(got, small_unet(x, t).transpose(-1, -2), atol=1e-4, rtol=1e-4)


def test_half_precision_body_matches_float32():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet = randomize(ADMUNet(**SMALL)).eval().to(device)
    x, t = torch.randn(2, 3, 16, 16, device=device), torch.tensor([5, 700], device=device)
    with torch.no_grad():
        full = unet(x, t)
        unet.convert_to_fp16()
        half = unet(x, t)
    assert unet.input_blocks[1][0].in_layers[2].weight.dtype == torch.float16
    assert unet.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # GroupNorm
    assert unet.input_blocks[1][0].emb_layers[1].weight.dtype == torch.float32  # Linear
    assert unet.out[2].weight.dtype == torch.float32  # the head stays float32
    assert half.dtype == torch.float32 and half.device == x.device
    assert rel_err(half, full) < 1e-2
    unet.convert_to_fp32()
    assert unet.input_blocks[1][0].in_layers[2].weight.dtype == torch.float32


# ---------------------------------------------------------------- the prior


def test_prior_is_tweedie_from_the_first_three_channels(small_unet):
    prior = ADMPrior(small_unet)
    assert prior.channels == 3
    g = torch.Generator().manual_seed(7)
    x_t, t = 1.5 * torch.randn(2, 3, 16, 16, generator=g), torch.tensor([3, 640])
    with torch.no_grad():
        x0 = prior.predict_x0(x_t, t)
        eps = small_unet(x_t, t)[:, :3].double()
    a = linear_alpha_bar()[t].view(-1, 1, 1, 1)
    unclipped = (x_t.double() - torch.sqrt(1 - a) * eps) / torch.sqrt(a)
    torch.testing.assert_close(x0.double(), unclipped.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    inside = unclipped.abs() < 1
    assert 0 < inside.sum() < inside.numel()  # both clipped and unclipped pixels were checked
    # bit for bit the release's _predict_xstart_from_eps: float64 numpy coefficients cast to float32
    alphas_cumprod = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    c1 = torch.from_numpy(np.sqrt(1.0 / alphas_cumprod))[t].float().view(-1, 1, 1, 1)
    c2 = torch.from_numpy(np.sqrt(1.0 / alphas_cumprod - 1))[t].float().view(-1, 1, 1, 1)
    assert torch.equal(x0, (c1 * x_t - c2 * eps.float()).clamp(-1, 1))
    assert x0.dtype == torch.float32 and x0.device == x_t.device


def test_prior_without_learned_sigma_uses_all_outputs():
    unet = randomize(ADMUNet(**{**SMALL, "learn_sigma": False})).eval()
    prior = ADMPrior(unet)
    x_t, t = torch.randn(1, 3, 8, 8), torch.tensor([100])
    with torch.no_grad():
        assert torch.equal(prior.eps(x_t, t), unet(x_t, t))


def test_prior_refuses_sizes_and_channels_the_network_cannot_take(small_unet):
    prior = ADMPrior(small_unet)
    with pytest.raises(ValueError, match="multiples of 4"):
        prior.predict_x0(torch.zeros(1, 3, 16, 18), torch.tensor([0]))
    with pytest.raises(ValueError, match="3 channels"):
        prior.predict_x0(torch.zeros(1, 1, 16, 16), torch.tensor([0]))


# ---------------------------------------------------------------- checkpoints


@pytest.fixture()
def small_checkpoint(tmp_path, small_unet) -> Path:
    path = tmp_path / "small_adm.pt"
    torch.save(small_unet.state_dict(), path)
    return path


def test_checkpoint_round_trip_is_exact(small_checkpoint, small_unet, tmp_path):
    prior = load_adm_checkpoint(small_checkpoint, config=SMALL)
    assert isinstance(prior, ADMPrior) and not prior.unet.training
    assert not any(p.requires_grad for p in prior.unet.parameters())
    x_t, t = torch.randn(2, 3, 16, 12), torch.tensor([20, 980])
    with torch.no_grad():
        assert torch.equal(prior.unet(x_t, t), small_unet(x_t, t))
        assert torch.equal(prior.predict_x0(x_t, t), ADMPrior(small_unet).predict_x0(x_t, t))
    # the config may also be a JSON file, bare or under "config" as in the shared spec
    cfg_file = tmp_path / "small.json"
    cfg_file.write_text(json.dumps({"config": SMALL}))
    again = load_adm_checkpoint(small_checkpoint, config=cfg_file)
    with torch.no_grad():
        assert torch.equal(again.unet(x_t, t), small_unet(x_t, t))


def _load_error(path, config=SMALL) -> str:
    with pytest.raises(CheckpointError) as info:
        load_adm_checkpoint(path, config=config)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message
    return message


def test_missing_truncated_and_garbage_files_are_refused(tmp_path, small_checkpoint):
    assert "does not exist" in _load_error(tmp_path / "nowhere.pt")
    # one error type for both loaders, importable from each place it was
    from ddfm_edu import priors
    from ddfm_edu.priors import base, embedded

    assert CheckpointError is priors.CheckpointError is base.CheckpointError
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        embedded.load_embedded(path=tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        priors.load_prior(tmp_path / "nowhere.pt", device="cpu")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(small_checkpoint.read_bytes()[: small_checkpoint.stat().st_size // 2])
    assert "truncated" in _load_error(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch checkpoint\n" * 10)
    assert "cannot read" in _load_error(garbage)
    pickled = tmp_path / "objects.pt"  # arbitrary objects are refused by weights_only loading
    torch.save({"w": torch.zeros(1), "when": datetime.date(2020, 1, 1)}, pickled)
    assert "cannot read" in _load_error(pickled)
    for path in (garbage, pickled):  # said in the package's words, never torch's advice to unpickle
        assert "weights_only" not in _load_error(path) and "torch.save" in _load_error(path)
    not_state = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_state)
    assert "not a state dict" in _load_error(not_state)


def test_mismatched_keys_and_shapes_are_named(tmp_path, small_unet):
    state = dict(small_unet.state_dict())
    renamed = dict(state)
    renamed["out.9.weight"] = renamed.pop("out.2.weight")
    path = tmp_path / "renamed.pt"
    torch.save(renamed, path)
    message = _load_error(path)
    assert "missing: out.2.weight" in message and "unexpected: out.9.weight" in message

    wrong = dict(state)
    wrong["time_embed.0.weight"] = torch.zeros(128, 16)
    path = tmp_path / "wrong_shape.pt"
    torch.save(wrong, path)
    message = _load_error(path)
    assert "time_embed.0.weight (128, 16) (expected (128, 32))" in message

    path = tmp_path / "other_arch.pt"  # a checkpoint of a different architecture
    torch.save(state, path)
    message = _load_error(path, config={**SMALL, "num_channels": 64})
    assert "wrong shape" in message and "in all" in message


def test_architecture_from_the_file_name(tmp_path, small_unet):
    unknown = tmp_path / "mystery.pt"
    torch.save(small_unet.state_dict(), unknown)
    assert "unknown architecture" in _load_error(unknown, config=None)
    conditional = tmp_path / "256x256_diffusion.pt"
    torch.save(small_unet.state_dict(), conditional)
    assert "class-conditional" in _load_error(conditional, config=None)
    # a known name selects the published architecture (built on the meta device: no 2 GB)
    named = tmp_path / "256x256_diffusion_uncond.pt"
    torch.save(small_unet.state_dict(), named)
    assert "input_blocks.0.0.weight (32, 3, 3, 3) (expected (256, 3, 3, 3))" in _load_error(named, None)


def test_half_needs_cuda(small_checkpoint):
    with pytest.raises(ValueError, match="CUDA"):
        load_adm_checkpoint(small_checkpoint, config=SMALL, device="cpu", half=True)

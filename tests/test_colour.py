"""BT.601 full-range luma/chroma against an independent implementation (Pillow's JPEG YCbCr)."""

import numpy as np
import torch
from PIL import Image

from ddfm_edu.colour import luma, replace_luma, rgb_to_ycbcr, ycbcr_to_rgb


def _to_unit(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float64) / 127.5 - 1.0).permute(2, 0, 1)[None]


def test_matches_pillow_jpeg_ycbcr_within_rounding():
    rgb = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float64)
    ours = rgb_to_ycbcr(_to_unit(rgb))[0].permute(1, 2, 0).numpy()
    # Y is on [-1, 1] like the input; chroma is centred, with the same 127.5 scaling.
    ours_255 = np.stack(
        [(ours[..., 0] + 1) * 127.5, ours[..., 1] * 127.5 + 128, ours[..., 2] * 127.5 + 128], axis=-1
    )
    assert np.abs(ours_255 - pillow).max() <= 1.0  # Pillow rounds to integers


def test_round_trip_grey_and_luma_replacement():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64) * 2 - 1
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)
    grey = rgb[:, :1].expand(-1, 3, -1, -1)
    ycbcr = rgb_to_ycbcr(grey)
    assert torch.allclose(ycbcr[:, 0], grey[:, 0], atol=1e-12)
    assert ycbcr[:, 1:].abs().max() < 1e-12
    y = torch.rand(2, 1, 5, 7, dtype=torch.float64)
    replaced = replace_luma(rgb, y)
    assert torch.allclose(luma(replaced), y, atol=1e-12)
    assert torch.allclose(rgb_to_ycbcr(replaced)[:, 1:], rgb_to_ycbcr(rgb)[:, 1:], atol=1e-12)
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert torch.allclose(luma(rgb)[:, 0], expected, atol=1e-12)

"""Image I/O, colour pairs, pair folders, PNG output and the bundled sample data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from ddfm_edu import data, sample_data
from ddfm_edu.colour import rgb_to_ycbcr

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (9, 13), dtype=np.uint8)
RGB = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_reads_8_bit_grey_losslessly(tmp_path, suffix):
    Image.fromarray(GREY).save(tmp_path / f"g{suffix}")
    array = data.read_image(tmp_path / f"g{suffix}")
    assert array.dtype == np.float64 and array.shape == (9, 13)
    np.testing.assert_array_equal(array, GREY)


def test_grey_stored_as_rgb_is_read_as_grey_and_colour_as_colour(tmp_path):
    Image.fromarray(np.repeat(GREY[..., None], 3, axis=2)).save(tmp_path / "grey3.png")
    Image.fromarray(RGB).save(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(data.read_image(tmp_path / "grey3.png"), GREY)
    np.testing.assert_array_equal(data.read_image(tmp_path / "rgb.tif"), RGB)


def test_reads_jpeg_colour_close_to_the_original(tmp_path):
    smooth = np.clip(np.linspace(0, 255, 32)[None, :, None] + np.array([0, 40, -40]), 0, 255)
    image = np.broadcast_to(smooth, (24, 32, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "c.jpg", quality=95)
    array = data.read_image(tmp_path / "c.jpg")
    assert array.shape == (24, 32, 3) and np.abs(array - image).mean() < 2.0


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_is_rescaled_to_0_255(tmp_path, suffix):
    values = GREY.astype(np.uint16) * 250 + 100
    Image.fromarray(values).save(tmp_path / f"g16{suffix}")
    np.testing.assert_allclose(
        data.read_image(tmp_path / f"g16{suffix}"), values.astype(float) * 255 / 65535, atol=1e-9
    )


def test_alpha_is_dropped_with_a_warning(tmp_path):
    rgba = np.concatenate([RGB, np.full((9, 13, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(np.stack([GREY, GREY], axis=2), mode="LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_array_equal(data.read_image(tmp_path / "a.png"), RGB)
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_array_equal(data.read_image(tmp_path / "la.png"), GREY)


def test_palette_images_are_expanded_to_their_colours(tmp_path):
    palette = np.array([[255, 0, 0], [0, 0, 255], [10, 10, 10]], np.uint8)
    index = RNG.integers(0, 3, (9, 13)).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.ravel().tolist())
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(data.read_image(tmp_path / "p.png"), palette[index])


def test_missing_and_unreadable_files_raise_image_read_error_naming_the_file(tmp_path):
    with pytest.raises(data.ImageReadError, match="nope.png"):
        data.read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(data.ImageReadError, match="text.png"):
        data.read_image(tmp_path / "text.png")
    assert issubclass(data.ImageReadError, ValueError)


def test_tensor_conversion_maps_0_255_to_minus_one_one_and_back():
    x = data.to_tensor(RGB)
    assert x.shape == (1, 3, 9, 13) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 2, 3], torch.tensor(RGB[2, 3] / 127.5 - 1, dtype=torch.float32))
    assert data.to_tensor(np.array([[0.0, 255.0]])).tolist() == [[[[-1.0, 1.0]]]]
    np.testing.assert_allclose(data.to_array(x), RGB, atol=1e-4)
    np.testing.assert_allclose(data.to_array(data.to_tensor(GREY)), GREY, atol=1e-4)


# ---------------------------------------------------------------------------------------------- pairs


def _write_pair(tmp_path, ir, vis, names=("ir.png", "vis.png")):
    Image.fromarray(ir).save(tmp_path / names[0])
    Image.fromarray(vis).save(tmp_path / names[1])
    return tmp_path / names[0], tmp_path / names[1]


def test_load_pair_keeps_the_chroma_of_the_colour_visible_image(tmp_path):
    pair = data.load_pair(*_write_pair(tmp_path, GREY, RGB))
    assert pair.colour_source == "v" and pair.name == "vis"
    assert pair.i.shape == pair.v.shape == (1, 1, 9, 13) and pair.chroma.shape == (1, 2, 9, 13)
    rgb = data.to_tensor(RGB)
    y = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]
    torch.testing.assert_close(pair.v, y, atol=1e-6, rtol=0)
    torch.testing.assert_close(pair.i, data.to_tensor(GREY))
    # Fusing "nothing" (f = v) gives the visible image back.
    torch.testing.assert_close(pair.merge(pair.v), rgb, atol=1e-5, rtol=0)


def test_load_pair_takes_the_chroma_of_a_colour_pet_image_and_of_v_when_both_are_colour(tmp_path):
    pet = data.load_pair(*_write_pair(tmp_path, RGB, GREY))
    assert pet.colour_source == "i"
    torch.testing.assert_close(pet.chroma, rgb_to_ycbcr(data.to_tensor(RGB))[:, 1:])
    other = RGB[::-1].copy()
    with pytest.warns(UserWarning, match="both"):
        both = data.load_pair(*_write_pair(tmp_path, RGB, other))
    assert both.colour_source == "v"
    torch.testing.assert_close(both.chroma, rgb_to_ycbcr(data.to_tensor(other))[:, 1:])


def test_grey_pair_gives_a_grey_merge(tmp_path):
    pair = data.load_pair(*_write_pair(tmp_path, GREY, GREY))
    assert pair.chroma is None and pair.colour_source is None
    assert pair.merge(pair.i).shape == (1, 1, 9, 13)


def test_pair_of_different_sizes_names_both_files_and_sizes(tmp_path):
    paths = _write_pair(tmp_path, GREY, GREY[:, :-1])
    with pytest.raises(ValueError, match=r"ir\.png is 13x9.*vis\.png is 12x9"):
        data.load_pair(*paths)


# ---------------------------------------------------------------------------------------------- folders


def test_find_pairs_matches_stems_across_extensions_and_lists_the_rest(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    for name in ("b.png", "a.jpg", "only_ir.png"):
        Image.fromarray(GREY).save(tmp_path / "ir" / name)
    for name in ("a.png", "b.bmp", "only_vis.tif"):
        Image.fromarray(GREY).save(tmp_path / "vi" / name)
    (tmp_path / "vi" / "notes.txt").write_text("ignored")
    pairs, unpaired = data.find_pairs(tmp_path / "ir", tmp_path / "vi")
    assert [(p.name, p.ir.name, p.vis.name) for p in pairs] == [
        ("a", "a.jpg", "a.png"),
        ("b", "b.png", "b.bmp"),
    ]
    assert [p.name for p in unpaired] == ["only_ir.png", "only_vis.tif"]
    Image.fromarray(GREY).save(tmp_path / "vi" / "a.jpg")
    with pytest.raises(ValueError, match="two images with the name 'a'"):
        data.find_pairs(tmp_path / "ir", tmp_path / "vi")
    with pytest.raises(ValueError, match="not a folder"):
        data.find_pairs(tmp_path / "missing", tmp_path / "vi")


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        (("ir", "vi"), ("ir", "vi")),
        (("MRI", "PET"), ("PET", "MRI")),
        (("mri", "Spect"), ("Spect", "mri")),
        (("MRI", "CT"), ("CT", "MRI")),
    ],
)
def test_pair_folders_recognises_the_public_layouts(tmp_path, folders, expected):
    for name in folders:
        (tmp_path / name).mkdir()
    ir_dir, vis_dir = data.pair_folders(tmp_path)
    assert (ir_dir.name, vis_dir.name) == expected


def test_pair_folders_without_a_layout_is_an_error(tmp_path):
    (tmp_path / "left").mkdir()
    with pytest.raises(ValueError, match="none of the pair layouts"):
        data.pair_folders(tmp_path)


# ---------------------------------------------------------------------------------------------- output


def test_save_png_grey_with_and_without_stretch(tmp_path):
    data.save_png(tmp_path / "s.png", torch.linspace(-0.5, 0.5, 6).view(1, 1, 1, 6))
    clip = torch.tensor([-1.2, -1.0, -0.5, 0.1, 0.3, 1.0, 1.4]).view(1, 1, 1, 7)
    data.save_png(tmp_path / "c.png", clip, stretch=False)
    stretched = np.asarray(Image.open(tmp_path / "s.png"))
    assert stretched.dtype == np.uint8 and stretched.tolist() == [[0, 51, 102, 153, 204, 255]]
    # 127.5 (x + 1) = -25.5, 0, 63.75, 140.25, 165.75, 255, 306 -> clipped and rounded
    assert np.asarray(Image.open(tmp_path / "c.png")).tolist() == [[0, 0, 64, 140, 166, 255, 255]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png"]  # no temporary files left


def test_save_png_colour_stretches_the_luma_and_keeps_the_chroma(tmp_path):
    rgb = data.to_tensor(RGB) * 0.3
    data.save_png(tmp_path / "rgb.png", rgb)
    saved = data.to_tensor(np.asarray(Image.open(tmp_path / "rgb.png")))
    y0, chroma0 = data.split_luma_chroma(rgb)
    y = (y0 - y0.min()) / (y0.max() - y0.min()) * 2 - 1  # min-max stretch, written out
    target = data.merge_chroma(y, chroma0)
    inside = (target.abs() <= 1).all(dim=1, keepdim=True).expand_as(target)  # pixels not clipped
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(saved[inside], target[inside], atol=1 / 127.5, rtol=0)  # 8-bit rounding
    torch.testing.assert_close(saved[~inside], target[~inside].clamp(-1, 1), atol=1 / 127.5, rtol=0)


def test_save_png_is_atomic_and_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    data.save_png(target, torch.zeros(1, 1, 4, 4))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        data.save_png(target, torch.ones(1, 1, 4, 4))
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with pytest.raises(ValueError, match=r"\.png"):
        data.save_png(tmp_path / "out.jpg", torch.zeros(1, 1, 4, 4))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


# ---------------------------------------------------------------------------------------------- sample data

EXPECTED_SAMPLE_FILES = [
    "ivf/ir/camera.png",
    "ivf/ir/rocket.png",
    "ivf/mask/camera.png",
    "ivf/mask/rocket.png",
    "ivf/vi/camera.png",
    "ivf/vi/rocket.png",
    "mif/MRI/phantom.png",
    "mif/PET/phantom.png",
]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    files = sample_data.generate(out)
    return out, files


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_data_regenerates_identically(regenerated, tmp_path):
    out, files = regenerated
    assert sorted(str(p.relative_to(out)) for p in files) == EXPECTED_SAMPLE_FILES
    again = sample_data.generate(tmp_path)
    assert [_digest(p) for p in again] == [_digest(p) for p in files]


def test_bundled_sample_data_matches_its_recipe(regenerated):
    out, _ = regenerated
    total = 0
    for name in EXPECTED_SAMPLE_FILES:
        bundled, fresh = REPO / "data" / name, out / name
        total += bundled.stat().st_size
        a, b = np.asarray(Image.open(bundled)).astype(int), np.asarray(Image.open(fresh)).astype(int)
        assert a.shape == b.shape, name
        # Identical here; at most one grey level apart elsewhere (floating-point rounding ties).
        assert np.abs(a - b).max() <= 1, name
    assert total < 2_000_000


def test_sample_pairs_are_registered_and_their_targets_are_infrared_only():
    pairs = data.sample_pairs()
    assert [(p.name, p.ir.parent.name, p.vis.parent.name) for p in pairs] == [
        ("camera", "ir", "vi"),
        ("rocket", "ir", "vi"),
        ("phantom", "PET", "MRI"),
    ]
    for pair in pairs[:2]:
        loaded = data.load_pair(pair.ir, pair.vis)
        mask = torch.from_numpy(data.read_image(pair.ir.parent.parent / "mask" / pair.ir.name) > 127)
        ring = torch.from_numpy(ndimage.binary_dilation(mask.numpy(), iterations=4)) & ~mask
        i, v = loaded.i[0, 0], loaded.v[0, 0]
        ir_contrast = i[mask].mean() - i[ring].mean()
        vis_contrast = (v[mask].mean() - v[ring].mean()).abs()
        assert ir_contrast > 0.5 and vis_contrast < 0.15, (pair.name, ir_contrast, vis_contrast)
    assert data.load_pair(pairs[1].ir, pairs[1].vis).colour_source == "v"
    assert data.load_pair(pairs[2].ir, pairs[2].vis).colour_source == "i"
    assert data.sample_pairs("mif") == pairs[2:]


def test_sample_data_dir_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DDFM_EDU_SAMPLE_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="sample data not found"):
        data.sample_data_dir()
    with pytest.raises(ValueError, match="kind"):
        data.sample_pairs("xyz")


def without_source_tree(monkeypatch, tmp_path) -> Path:
    """As after a plain `pip install`: no data/ next to the package, no DDFM_EDU_SAMPLE_DATA, and
    the user cache ($XDG_CACHE_HOME) in tmp_path/cache; returns that cache folder."""
    monkeypatch.delenv("DDFM_EDU_SAMPLE_DATA", raising=False)
    monkeypatch.setattr(sample_data, "SOURCE_TREE_DATA", tmp_path / "site-packages" / "data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_sample_data_is_generated_once_into_the_user_cache_when_installed(regenerated, tmp_path, monkeypatch):
    cache = without_source_tree(monkeypatch, tmp_path)
    root = data.sample_data_dir()
    assert root == sample_data.cache_dir() and root.parent == cache / "ddfm-edu"
    assert root.name == "sample-data-" + _digest(Path(sample_data.__file__))[:12]
    out, _ = regenerated
    assert [_digest(root / name) for name in EXPECTED_SAMPLE_FILES] == [
        _digest(out / name) for name in EXPECTED_SAMPLE_FILES
    ]
    assert list(root.parent.iterdir()) == [root]  # no staging folder left behind

    def no_second_generation(out_dir):
        raise AssertionError("generated again")

    monkeypatch.setattr(sample_data, "generate", no_second_generation)
    assert data.sample_data_dir() == root
    assert [p.name for p in data.sample_pairs()] == ["camera", "rocket", "phantom"]


def test_an_interrupted_generation_leaves_no_partial_set(tmp_path, monkeypatch):
    cache = without_source_tree(monkeypatch, tmp_path)
    real_generate = sample_data.generate

    def interrupted(out_dir):
        (Path(out_dir) / "ivf").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_data, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.sample_data_dir()
    assert list((cache / "ddfm-edu").iterdir()) == []
    monkeypatch.setattr(sample_data, "generate", real_generate)
    assert (data.sample_data_dir() / "mif" / "PET" / "phantom.png").is_file()


def test_an_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    without_source_tree(monkeypatch, tmp_path)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(ValueError, match="could not be generated in .*DDFM_EDU_SAMPLE_DATA"):
        data.sample_data_dir()


# ---------------------------------------------------------------------------------------------- resizing


def test_resize_pair_matches_pil_bilinear_and_keeps_the_colour():
    pairs = {p.name: p for p in data.sample_pairs()}
    pair = data.load_pair(pairs["rocket"].ir, pairs["rocket"].vis)  # 213 x 142, colour visible
    small = data.resize_pair(pair, 96)
    assert small.i.shape == small.v.shape == (1, 1, 64, 96) and small.chroma.shape == (1, 2, 64, 96)
    assert small.colour_source == "v" and small.name == "rocket"
    # independent: PIL's antialiased bilinear resize of the 0..255 float image
    for full, resized in ((pair.i, small.i), (pair.v, small.v)):
        pil = Image.fromarray(data.to_array(full).astype(np.float32), mode="F").resize(
            (96, 64), Image.Resampling.BILINEAR
        )
        np.testing.assert_allclose(data.to_array(resized), np.asarray(pil), atol=0.02)
    # a constant image stays constant; the merge gives RGB at the new size
    grey = data.ImagePair(torch.full((1, 1, 30, 20), 0.25), -torch.ones(1, 1, 30, 20), None, None, "c",
                          Path("a"), Path("b"))  # fmt: skip
    small_grey = data.resize_pair(grey, 9)
    assert torch.allclose(small_grey.i, torch.tensor(0.25)) and small_grey.i.shape[-2:] == (9, 6)
    assert small.merge(small.i).shape == (1, 3, 64, 96)
    with pytest.raises(ValueError, match="longest"):
        data.resize_pair(pair, 1)

"""The command line: fuse (one pair, folders), eval, demo, errors; in-process and as a real process."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from PIL import Image

from ddfm_edu import cli, data, fusion

H, W = 48, 56  # >= 41 a side, as the VIF metric needs


def _grey(seed: int, shape=(H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def pair(tmp_path):
    """A grey infrared image and a colour visible image of H x W."""
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    Image.fromarray(_grey(1)).save(ir)
    Image.fromarray(np.stack([_grey(2), _grey(3), _grey(4)], axis=2)).save(vis)
    return ir, vis


@pytest.fixture
def folders(tmp_path):
    """ir/ and vi/ with two grey pairs (a, b) and one infrared image without a partner."""
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    for k, name in enumerate(("a", "b")):
        Image.fromarray(_grey(10 + k)).save(tmp_path / "ir" / f"{name}.png")
        Image.fromarray(_grey(20 + k)).save(tmp_path / "vi" / f"{name}.jpg")
    Image.fromarray(_grey(30)).save(tmp_path / "ir" / "lonely.png")
    return tmp_path / "ir", tmp_path / "vi"


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_error_line(status, err, *fragments):
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddfm-edu: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---------------------------------------------------------------------------------------------- fuse


def test_fuse_average_without_stretch_is_the_closed_form(tmp_path, pair, capsys):
    ir, _ = pair
    vis = tmp_path / "grey_vis.png"
    Image.fromarray(_grey(5)).save(vis)
    status, out, _ = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                          "--method", "average", "--no-stretch")  # fmt: skip
    assert status == 0 and "f.png" in out
    fused = np.asarray(Image.open(tmp_path / "f.png")).astype(float)
    expected = (_grey(1).astype(float) + _grey(5)) / 2
    assert fused.shape == (H, W)
    assert np.abs(fused - expected).max() <= 0.5 + 1e-9  # halves may round either way in float32
    np.testing.assert_array_equal(fused[expected % 1 == 0], expected[expected % 1 == 0])


def test_fuse_max_with_a_colour_visible_keeps_its_chroma(tmp_path, pair, capsys):
    ir, vis = pair
    status, _, _ = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "out" / "f.png",
                        "--method", "max", "--no-stretch")  # fmt: skip
    assert status == 0
    saved = Image.open(tmp_path / "out" / "f.png")
    assert saved.mode == "RGB" and saved.size == (W, H)
    loaded = data.load_pair(ir, vis)
    expected = loaded.merge(torch.maximum(loaded.i, loaded.v))
    inside = (expected.abs() <= 1).all(dim=1, keepdim=True).expand_as(expected)  # not clipped
    got = data.to_tensor(np.asarray(saved))
    torch.testing.assert_close(got[inside], expected[inside], atol=1 / 127.5, rtol=0)
    assert inside.float().mean() > 0.3


@pytest.mark.parametrize("method", ["laplacian", "em"])
def test_fuse_other_baselines_write_a_stretched_image_of_the_input_size(tmp_path, pair, capsys, method):
    ir, _ = pair
    vis = tmp_path / "grey_vis.png"
    Image.fromarray(_grey(5)).save(vis)
    status, _, _ = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                        "--method", method, "--em-iters", "3")  # fmt: skip
    saved = np.asarray(Image.open(tmp_path / "f.png"))
    assert status == 0 and saved.shape == (H, W)
    assert saved.min() == 0 and saved.max() == 255  # the min-max stretch of the reference protocol


def test_fuse_single_skips_an_existing_output_unless_overwrite(tmp_path, pair, capsys):
    ir, vis = pair
    out = tmp_path / "f.png"
    out.write_bytes(b"old")
    status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "average")
    assert status == 0 and "skipped" in err and out.read_bytes() == b"old"
    status, _, _ = _run(
        capsys, "fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "average", "--overwrite"
    )
    assert status == 0 and Image.open(out).size == (W, H)


def test_fuse_folders_pairs_by_name_skips_existing_and_overwrites_on_request(tmp_path, folders, capsys):
    ir_dir, vis_dir = folders
    out = tmp_path / "fused"
    status, stdout, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", out,
                               "--method", "average")  # fmt: skip
    assert status == 0 and "2 fused image(s)" in stdout
    assert "warning: 1 image(s) without a partner" in err and "lonely.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").size == (W, H)
    (out / "a.png").write_bytes(b"keep")
    status, stdout, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", out,
                               "--method", "average")  # fmt: skip
    assert status == 0 and "2 existing output(s) skipped" in err and (out / "a.png").read_bytes() == b"keep"
    status, _, _ = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", out,
                        "--method", "average", "--overwrite")  # fmt: skip
    assert status == 0 and Image.open(out / "a.png").size == (W, H)


# ---------------------------------------------------------------------------------------------- errors


def test_missing_and_unreadable_inputs(tmp_path, pair, capsys):
    ir, vis = pair
    out = tmp_path / "f.png"
    status, _, err = _run(
        capsys, "fuse", "--ir", tmp_path / "nope.png", "--vis", vis, "-o", out, "--method", "max"
    )
    _assert_one_error_line(status, err, "nope.png", "not found")
    (tmp_path / "bad.png").write_text("not an image")
    status, _, err = _run(
        capsys, "fuse", "--ir", ir, "--vis", tmp_path / "bad.png", "-o", out, "--method", "max"
    )
    _assert_one_error_line(status, err, "bad.png", "cannot read")
    assert not out.exists()


def test_sizes_that_differ(tmp_path, pair, capsys):
    ir, _ = pair
    small = tmp_path / "small.png"
    Image.fromarray(_grey(6, (H, W - 1))).save(small)
    status, _, err = _run(
        capsys, "fuse", "--ir", ir, "--vis", small, "-o", tmp_path / "f.png", "--method", "max"
    )
    _assert_one_error_line(status, err, "ir.png is 56x48", "small.png is 55x48")
    assert not (tmp_path / "f.png").exists()


def test_folder_without_pairs(tmp_path, capsys):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    Image.fromarray(_grey(1)).save(tmp_path / "ir" / "x.png")
    status, _, err = _run(capsys, "fuse", "--ir-dir", tmp_path / "ir", "--vis-dir", tmp_path / "vi",
                          "-o", tmp_path / "out", "--method", "max")  # fmt: skip
    _assert_one_error_line(status, err, "no pairs", "1 image(s) without a partner")
    status, _, err = _run(capsys, "fuse", "--ir-dir", tmp_path / "nowhere", "--vis-dir", tmp_path / "vi",
                          "-o", tmp_path / "out", "--method", "max")  # fmt: skip
    _assert_one_error_line(status, err, "not a folder", "nowhere")


def test_unwritable_output_path(tmp_path, pair, capsys):
    ir, vis = pair
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    status, _, err = _run(
        capsys, "fuse", "--ir", ir, "--vis", vis, "-o", blocker / "f.png", "--method", "max"
    )
    _assert_one_error_line(status, err, "cannot create output folder", "file")
    status, _, err = _run(
        capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.jpg", "--method", "max"
    )
    _assert_one_error_line(status, err, ".png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ir.png", "vis.png"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--steps", "0"], "--steps"),
        (["--sampler", "foo"], "--sampler"),
        (["--method", "median"], "--method"),
        (["--em-variant", "x"], "--em-variant"),
        (["--device", "tpu"], "--device"),
        (["--seed", "-3"], "--seed"),
        (["--seed", str(2**64)], "from 0 to 18446744073709551615"),
        (["--batch-size", "0"], "--batch-size"),
        (["--ir-dir", "somewhere"], "either --ir and --vis"),
    ],
)
def test_bad_options(tmp_path, pair, capsys, options, fragment):
    ir, vis = pair
    status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", *options)
    _assert_one_error_line(status, err, fragment)
    assert status == 2 and not (tmp_path / "f.png").exists()


def test_bad_usage_and_prior(tmp_path, pair, capsys):
    ir, vis = pair
    status, _, err = _run(capsys, "fuse", "--ir", ir, "-o", tmp_path / "f.png")
    _assert_one_error_line(status, err, "--vis")
    status, _, err = _run(capsys)
    _assert_one_error_line(status, err, "required")
    status, _, err = _run(capsys, "blend")
    _assert_one_error_line(status, err, "invalid choice")
    status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                          "--prior", tmp_path / "missing.pt")  # fmt: skip
    _assert_one_error_line(status, err, "missing.pt")
    if not torch.cuda.is_available():
        status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                              "--method", "max", "--device", "cuda")  # fmt: skip
        _assert_one_error_line(status, err, "cuda")
    assert not (tmp_path / "f.png").exists()


def test_alpha_warning_is_one_line(tmp_path, pair, capsys):
    ir, _ = pair
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([_grey(2), _grey(3), _grey(4), _grey(5)])).save(rgba)
    status, _, err = _run(
        capsys, "fuse", "--ir", ir, "--vis", rgba, "-o", tmp_path / "f.png", "--method", "max"
    )
    assert status == 0 and err.strip().splitlines() == [f"ddfm-edu: warning: {rgba}: alpha channel dropped"]


# ---------------------------------------------------------------------------------------------- ddfm


def test_fuse_ddfm_with_the_gaussian_prior_is_seeded(tmp_path, pair, capsys):
    ir, vis = pair
    runs = []
    for seed, name in ((1, "a.png"), (1, "b.png"), (2, "c.png")):
        status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / name,
                              "--prior", "gaussian", "--steps", "3", "--seed", seed,
                              "--em-variant", "paper")  # fmt: skip  (one-sided's output is max(i, v))
        assert status == 0, err
        runs.append(np.asarray(Image.open(tmp_path / name)))
    assert runs[0].shape == (H, W, 3)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0].astype(int) - runs[2]).max() > 0


# ---------------------------------------------------------------------------------------------- eval, demo


def test_eval_rows_mean_and_csv_match_the_metrics(tmp_path, folders, capsys):
    from ddfm_edu.metrics import evaluate

    ir_dir, vis_dir = folders
    fused_dir = tmp_path / "fused"
    assert cli.main(["fuse", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir), "-o", str(fused_dir),
                     "--method", "laplacian"]) == 0  # fmt: skip
    capsys.readouterr()
    csv_path = tmp_path / "m.csv"
    status, out, err = _run(capsys, "eval", "--ir-dir", ir_dir, "--vis-dir", vis_dir,
                            "--fused-dir", fused_dir, "--mode", "standard", "--csv", csv_path)  # fmt: skip
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["image", "EN", "SD"] and [ln.split()[0] for ln in lines[1:]] == [
        "a",
        "b",
        "mean",
    ]
    with open(tmp_path / "m.csv") as handle:
        table = list(csv.DictReader(handle))
    expected = {
        name: evaluate(*(data.read_image(p) for p in (fused_dir / f"{name}.png", vis_dir / f"{name}.jpg",
                                                       ir_dir / f"{name}.png")), mode="standard")
        for name in ("a", "b")
    }  # fmt: skip
    assert [row["image"] for row in table] == ["a", "b", "mean"]
    for key in ("EN", "MI", "Qabf", "PSNR"):
        for row in table[:2]:
            assert float(row[key]) == pytest.approx(expected[row["image"]][key], rel=1e-12)
        assert float(table[2][key]) == pytest.approx((expected["a"][key] + expected["b"][key]) / 2, rel=1e-12)
        assert f"{expected['a'][key]:.4f}" in lines[1]


def test_eval_errors(tmp_path, folders, capsys):
    ir_dir, vis_dir = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = _run(capsys, "eval", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "--fused-dir", empty)
    _assert_one_error_line(status, err, "no fused image")
    Image.fromarray(_grey(1, (H, W + 2))).save(empty / "a.png")
    status, _, err = _run(capsys, "eval", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "--fused-dir", empty)
    assert status != 0 and "sizes differ" in err and "a.png is 58x48" in err and "Traceback" not in err


def test_demo_writes_images_figure_and_tables(tmp_path, capsys, monkeypatch):
    phantom = [p for p in data.sample_pairs() if p.name == "phantom"]
    monkeypatch.setattr(cli.data, "sample_pairs", lambda: phantom)  # one pair keeps the test fast
    out = tmp_path / "demo"
    status, stdout, err = _run(
        capsys, "demo", "-o", out, "--prior", "gaussian", "--steps", "2", "--em-iters", "3"
    )
    assert status == 0, err
    assert str(out.resolve()) in stdout and "mean" in stdout
    for method in cli.DEMO_METHODS:
        assert [p.name for p in (out / method).iterdir()] == ["phantom.png"]
        fused = Image.open(out / method / "phantom.png")
        assert fused.mode == "RGB" and fused.size == (200, 200)  # the colour of PET, the input size
    assert Image.open(out / "comparison.png").size[0] > 500
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["image"]) for r in rows] == [
        (m, n) for m in cli.DEMO_METHODS for n in ("phantom", "mean")
    ]
    for row in rows:
        assert float(row["EN"]) > 0 and float(row["PSNR"]) > 0


def test_a_real_process_and_the_installed_entry_point(tmp_path, pair):
    ir, _ = pair
    done = subprocess.run(
        [sys.executable, "-m", "ddfm_edu", "fuse", "--ir", str(ir), "--vis", str(tmp_path / "none.png"),
         "-o", str(tmp_path / "g.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"ddfm-edu: error: image file not found: {tmp_path / 'none.png'}"
    ]
    assert not (tmp_path / "g.png").exists()
    scripts = [e for e in entry_points(group="console_scripts") if e.name == "ddfm-edu"]
    assert [e.value for e in scripts] == ["ddfm_edu.cli:main"] and scripts[0].load() is cli.main


def test_roadscene_pair_gives_a_colour_png_of_the_input_size(shared_data, tmp_path, capsys):
    folder = shared_data / "ivf" / "roadscene"
    ir, vis = folder / "ir" / "FLIR_03952.jpg", folder / "vi" / "FLIR_03952.jpg"
    for options in (["--method", "em", "--em-iters", "5"], ["--prior", "gaussian", "--steps", "2"]):
        out = tmp_path / f"{options[1]}.png"
        status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", out, *options)
        assert status == 0, err
        saved = Image.open(out)
        assert saved.mode == "RGB" and saved.size == (532, 294)


# ------------------------------------------------------------------------------------ batches, torchrun


# A small ADM network (stride 2^(3-1) = 4) saved as a checkpoint whose architecture only --config gives.
TINY_ADM = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2,2", learn_sigma=True,
                attention_resolutions="8", num_head_channels=8, use_scale_shift_norm=True,
                resblock_updown=True)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_adm(tmp_path_factory):
    """(checkpoint, config JSON) of a randomly initialised small ADM network."""
    import json
    import math

    from ddfm_edu.priors import ADMUNet

    folder = tmp_path_factory.mktemp("adm")
    unet = ADMUNet(**TINY_ADM)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in unet.parameters():  # the zero-initialised output layer too: eps must not be 0
            p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel()))
    torch.save(unet.state_dict(), folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps(TINY_ADM))
    return folder / "tiny.pt", folder / "tiny.json"


def _pair_folders(root, sizes: dict[str, tuple[int, int]], colour: bool = True):
    (root / "ir").mkdir()
    (root / "vi").mkdir()
    for k, (name, shape) in enumerate(sizes.items()):
        Image.fromarray(_grey(40 + k, shape)).save(root / "ir" / f"{name}.png")
        vis = np.stack([_grey(50 + k, shape), _grey(60 + k, shape), _grey(70 + k, shape)], axis=2)
        Image.fromarray(vis if colour else vis[..., 0]).save(root / "vi" / f"{name}.png")
    return root / "ir", root / "vi"


def _spy_batches(monkeypatch) -> list[tuple[int, ...]]:
    """Record the shape of i of every fuse_batch call."""
    shapes, fuse_batch = [], fusion.fuse_batch

    def spy(i, v, *args, **kwargs):
        shapes.append(tuple(i.shape))
        return fuse_batch(i, v, *args, **kwargs)

    monkeypatch.setattr(fusion, "fuse_batch", spy)
    return shapes


def test_folder_ddfm_runs_equal_single_pair_runs_exactly_and_batches_to_rounding(
    tmp_path, tiny_adm, capsys, monkeypatch
):
    """--prior CHECKPOINT --config FILE (stride 4): by default pairs run one at a time and every output
    equals the single-pair command's byte for byte, also after an interrupted run is resumed; with
    --batch-size 2, a, b, c pad to 20 x 24 and share batches, and agree to rounding (a batched
    convolution may sum in another order): at most one grey level, on at most 1% of the pixels."""
    checkpoint, config = tiny_adm
    sizes = {"a": (20, 24), "b": (18, 22), "c": (17, 24)}
    ir_dir, vis_dir = _pair_folders(tmp_path, sizes)
    options = ["--prior", checkpoint, "--config", config, "--steps", "2", "--seed", "11"]
    shapes = _spy_batches(monkeypatch)
    folder = ["fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir]
    status, out, err = _run(capsys, *folder, "-o", tmp_path / "out", *options)
    assert status == 0 and "3 fused image(s)" in out, err
    assert shapes == [(1, 1, 20, 24), (1, 1, 18, 22), (1, 1, 17, 24)]
    shapes.clear()
    status, out, err = _run(capsys, *folder, "-o", tmp_path / "batched", "--batch-size", "2", *options)
    assert status == 0 and "3 fused image(s)" in out, err
    assert shapes == [(2, 1, 20, 24), (1, 1, 17, 24)]  # a and b padded alike; c alone: ddfm pads it
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "a.png").write_bytes((tmp_path / "out" / "a.png").read_bytes())  # as if b, c were cut off
    status, out, err = _run(capsys, *folder, "-o", resumed, *options)
    assert status == 0 and "2 fused image(s)" in out, err
    for name, (h, w) in sizes.items():
        single = tmp_path / f"single_{name}.png"
        ir, vis = ir_dir / f"{name}.png", vis_dir / f"{name}.png"
        status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", single, *options)
        assert status == 0, err
        assert (tmp_path / "out" / f"{name}.png").read_bytes() == single.read_bytes()
        assert (resumed / f"{name}.png").read_bytes() == single.read_bytes()
        batched = np.asarray(Image.open(tmp_path / "batched" / f"{name}.png")).astype(int)
        assert batched.shape == (h, w, 3)  # the input's size, colour restored per pair
        difference = np.abs(batched - np.asarray(Image.open(single)).astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() <= 0.01


@pytest.mark.parametrize(("options", "expected"), [
    (["--em-variant", "released", "--batch-size", "8"], [(2, 1, H, W), (1, 1, H, W - 1)]),  # exact sizes
    (["--sampler", "ddpm", "--batch-size", "8"], [(1, 1, H, W)] * 2 + [(1, 1, H, W - 1)]),  # z per batch
])  # fmt: skip
def test_folder_batches_by_exact_size_for_released_em_and_one_by_one_for_ddpm(
    tmp_path, capsys, monkeypatch, options, expected
):
    ir_dir, vis_dir = _pair_folders(tmp_path, {"a": (H, W), "b": (H, W - 1), "c": (H, W)}, colour=False)
    shapes = _spy_batches(monkeypatch)
    status, _, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", tmp_path / "out",
                          "--prior", "gaussian", "--steps", "2", *options)  # fmt: skip
    assert status == 0, err
    assert shapes == expected


def test_config_and_half_options(tmp_path, pair, tiny_adm, capsys, monkeypatch):
    ir, vis = pair
    checkpoint, config = tiny_adm
    fuse = ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png", "--steps", "1"]
    status, _, err = _run(capsys, *fuse, "--prior", "gaussian", "--half")
    _assert_one_error_line(status, err, "--half applies to an ADM checkpoint")
    status, _, err = _run(capsys, *fuse, "--config", config)
    _assert_one_error_line(status, err, "--config applies to an ADM checkpoint", "embedded")
    status, _, err = _run(capsys, *fuse, "--prior", checkpoint, "--config", tmp_path / "none.json")
    _assert_one_error_line(status, err, "none.json")
    status, _, err = _run(capsys, *fuse, "--prior", checkpoint)  # tiny.pt names no architecture
    _assert_one_error_line(status, err, "tiny.pt", "config")
    if not torch.cuda.is_available():
        status, _, err = _run(capsys, *fuse, "--prior", checkpoint, "--config", config, "--half")
        _assert_one_error_line(status, err, "half precision needs a CUDA device", "cpu")
    assert not (tmp_path / "f.png").exists()
    seen = {}

    def load_prior(spec, device, half, config):
        seen.update(spec=spec, device=device, half=half, config=config)
        raise ValueError("stop here")

    monkeypatch.setattr(fusion, "load_prior", load_prior)
    monkeypatch.setattr(fusion, "resolve_device", lambda device: torch.device("cuda"))  # pretend
    status, _, err = _run(capsys, *fuse, "--prior", checkpoint, "--config", config, "--half")
    _assert_one_error_line(status, err, "stop here")
    assert seen == {
        "spec": str(checkpoint), "device": torch.device("cuda"), "half": True, "config": str(config)
    }  # fmt: skip


@pytest.mark.slow
def test_torchrun_shards_the_pairs_across_two_processes(tmp_path, capsys):
    """A real `torch.distributed.run` with 2 CPU processes: every output once, equal to one process."""
    names = ["p0", "p1", "p2", "p3"]
    ir_dir, vis_dir = _pair_folders(tmp_path, dict.fromkeys(names, (16, 20)))
    options = ["--prior", "gaussian", "--steps", "2", "--seed", "4"]
    status, _, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", tmp_path / "one",
                          "--batch-size", "1", *options)  # fmt: skip
    assert status == 0, err
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "ddfm_edu.cli", "fuse", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir),
         "-o", str(tmp_path / "two"), *options],
        capture_output=True, text=True, timeout=120, env={**env, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("fused image(s) written") == 1  # rank 0 alone reports
    assert "2 fused image(s) written" in done.stdout and "4 pairs shared by 2 processes" in done.stdout
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [f"{n}.png" for n in names]
    for name in names:
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "two" / f"{name}.png")),
            np.asarray(Image.open(tmp_path / "one" / f"{name}.png")),
        )


# ---------------------------------------------------------------------------------------------- edge cases


def test_laplacian_fits_its_levels_to_a_small_image(tmp_path, capsys):
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    Image.fromarray(_grey(1, (5, 7))).save(ir)
    Image.fromarray(_grey(2, (5, 7))).save(vis)
    status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                          "--method", "laplacian")  # fmt: skip
    assert status == 0, err
    assert Image.open(tmp_path / "f.png").size == (7, 5)


def test_a_constant_pair_gives_a_constant_image(tmp_path, capsys):
    """DDFM's output of a constant pair is constant up to solver noise: the stretch keeps it so."""
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(ir)
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(vis)
    status, _, err = _run(capsys, "fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "f.png",
                          "--prior", "gaussian", "--steps", "3")  # fmt: skip
    assert status == 0, err
    fused = np.asarray(Image.open(tmp_path / "f.png"))
    assert fused.min() == fused.max() == 100


def test_eval_csv_into_a_folder_fails_before_any_metric(tmp_path, folders, capsys, monkeypatch):
    ir_dir, vis_dir = folders
    fused_dir = tmp_path / "fused"
    fused_dir.mkdir()
    Image.fromarray(_grey(5)).save(fused_dir / "a.png")
    monkeypatch.setattr(cli, "_evaluate", lambda *a: pytest.fail("metrics computed before the check"))
    status, _, err = _run(capsys, "eval", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "--fused-dir", fused_dir,
                          "--csv", tmp_path)  # fmt: skip
    _assert_one_error_line(status, err, "is a folder", "metrics.csv")


def test_an_output_that_appears_during_the_run_is_never_replaced(tmp_path, folders, capsys, monkeypatch):
    """Without --overwrite: another run wrote a.png while this one was fusing: a.png is kept."""
    ir_dir, vis_dir = folders
    out = tmp_path / "out"
    fuse_batch = fusion.fuse_batch

    def other_run_writes_first(i, v, *args, **kwargs):
        if not (out / "a.png").exists():
            (out / "a.png").write_bytes(b"another run's output")
        return fuse_batch(i, v, *args, **kwargs)

    monkeypatch.setattr(fusion, "fuse_batch", other_run_writes_first)
    status, stdout, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", out,
                               "--method", "average")  # fmt: skip
    assert status == 0, err
    assert (out / "a.png").read_bytes() == b"another run's output"
    assert "a.png appeared during this run and was kept" in err and "1 fused image(s)" in stdout
    assert Image.open(out / "b.png").size == (W, H)
    assert not list(out.glob(".*.tmp"))


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path, folders, capsys):
    ir_dir, vis_dir = folders
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, other = out / ".a.png-k1ll3d.tmp", out / ".b.png-l1v3.tmp", out / ".notes.txt-x.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    old = time.time() - 2 * data.STALE_AFTER_S
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    status, _, err = _run(capsys, "fuse", "--ir-dir", ir_dir, "--vis-dir", vis_dir, "-o", out,
                          "--method", "average")  # fmt: skip
    assert status == 0, err
    assert not stale.exists()  # this tool's, for one of this run's outputs, and old
    assert fresh.exists() and other.exists()  # maybe a live write; not this tool's output


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """A real process terminated mid-run: exit 143, one line, no temporary file left behind."""
    ir_dir, vis_dir = _pair_folders(tmp_path, {f"p{k}": (64, 64) for k in range(6)}, colour=False)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "ddfm_edu.cli", "fuse", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir),
         "-o", str(out), "--prior", "gaussian", "--steps", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while not out.exists() and time.time() < deadline:  # the run has started its work
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "ddfm-edu: terminated" and "Traceback" not in err
    assert not list(out.glob(".*.tmp"))


def test_folder_run_writes_what_the_library_computes_bit_for_bit(tmp_path, capsys):
    # moved from the quickstart notebook: the command line's Laplacian fusion of the bundled infrared-
    # visible folder equals, file by file, the library's fusion put through pair.merge and to_uint8
    from ddfm_edu import baselines

    folder = data.sample_data_dir() / "ivf"
    status, _, _ = _run(capsys, "fuse", "--ir-dir", folder / "ir", "--vis-dir", folder / "vi",
                        "-o", tmp_path / "laplacian", "--method", "laplacian")  # fmt: skip
    assert status == 0
    for paths in data.sample_pairs("ivf"):
        pair = data.load_pair(paths.ir, paths.vis)
        expected = data.to_uint8(pair.merge(baselines.laplacian_fusion(pair.i, pair.v)))
        written = data.read_image(tmp_path / "laplacian" / f"{paths.name}.png")
        if written.ndim == 2 and expected.ndim == 3:  # a colour output whose channels happen to be equal
            written = np.repeat(written[..., None], 3, axis=2)
        assert np.array_equal(written, expected), paths.name

"""The command line: fuse (one pair, folders), eval, demo, errors; in-process and as a real process."""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from PIL import Image

from ddfm_edu import cli, data

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


def test_fuse_batch_dispatches_to_the_methods():
    i, v = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(cli.fuse_batch(i, v, "average"), (i + v) / 2)
    torch.testing.assert_close(cli.fuse_batch(i, v, "max"), torch.maximum(i, v))
    with pytest.raises(ValueError, match="prior"):
        cli.fuse_batch(i, v, "ddfm")
    with pytest.raises(ValueError, match="method"):
        cli.fuse_batch(i, v, "median")


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
                              "--prior", "gaussian", "--steps", "3", "--seed", seed)  # fmt: skip
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

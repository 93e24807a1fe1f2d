r"""The package's sample data: openly licensed images turned into fusion pairs, deterministically.

    python -m ddfm_edu.sample_data [OUT_DIR]        (default: data/ at the root of the source tree)

Infrared-visible pairs (ivf/{ir,vi,mask}/NAME.png) from scikit-image's `camera` (grey) and
`rocket` (colour). The visible image is the real photograph (downscaled). The infrared image is
SYNTHETIC: a smooth, low-contrast version of the scene (heat diffuses, texture is lost)

    ir = 0.22 + 0.3 G_4 * Y                          (Y: visible luma in [0, 1], G_s: Gaussian blur)

into which warm person-like targets are blended (people absent from, or hidden in the dark of, the
visible image: the grass field of `camera`, the unlit ground of the night-time `rocket`), then
optical blur, sensor noise (white + column fixed-pattern) and 8-bit quantisation. mask/NAME.png
marks the targets (255) for checking that a fusion keeps them.

Medical pair (mif/{MRI,PET}/phantom.png) from the Shepp-Logan phantom: an MRI-like structural
image (its grey levels remapped to T2-like contrasts, mild texture and noise) and a PET-like
functional image (activity per tissue plus a lesion that the MRI does not show, blurred, sampled on
a coarse 25x25 grid, with counting noise, shown in the `hot` colour map).

Everything is seeded (SEED) and uses only block averaging, scipy's Gaussian filter and linear
interpolation, so regenerating gives the same files (here byte for byte; elsewhere at most one grey
level apart where floating-point rounding ties).

Where the package finds the set (`locate`, behind `data.sample_data_dir`): $DDFM_EDU_SAMPLE_DATA if
set; else `data/` next to the package folder (a clone or an editable install); else, for a plain
`pip install`, a copy generated on first use into the user cache ($XDG_CACHE_HOME or ~/.cache, then
ddfm-edu/sample-data-<digest of this file>, so a changed recipe gets a fresh copy).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
from scipy import ndimage
from skimage import data as skdata

from ddfm_edu.data import write_png_array

SEED = 3407
SOURCE_TREE_DATA = Path(__file__).resolve().parents[1] / "data"  # data/ next to ddfm_edu/ in a clone


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Downscale (H, W[, C]) by an integer factor: the mean of each factor x factor block
    (the image is first cropped to multiples of the factor)."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))


def soft_ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """1 inside the ellipse ((y - cy)/ry)^2 + ((x - cx)/rx)^2 <= 1, falling to 0 over about a pixel."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return np.clip((1.0 - r) * min(ry, rx) + 0.5, 0.0, 1.0)


def person(shape: tuple[int, int], cy: float, cx: float, height: float) -> np.ndarray:
    """A standing person of the given height centred at (cy, cx): head, torso and two legs."""
    h = height
    parts = [
        soft_ellipse(shape, cy - 0.40 * h, cx, 0.09 * h, 0.08 * h),  # head
        soft_ellipse(shape, cy - 0.12 * h, cx, 0.22 * h, 0.11 * h),  # torso
        soft_ellipse(shape, cy + 0.28 * h, cx - 0.05 * h, 0.22 * h, 0.04 * h),  # legs
        soft_ellipse(shape, cy + 0.28 * h, cx + 0.05 * h, 0.22 * h, 0.04 * h),
    ]
    return np.max(parts, axis=0)


def synthetic_infrared(
    luma: np.ndarray, rng: np.random.Generator, targets: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """(infrared image in [0, 1], target mask) for a visible luma image in [0, 1]; targets are
    persons (centre y, centre x, height) as fractions of the image height and width."""
    h, w = luma.shape
    scene = 0.22 + 0.3 * ndimage.gaussian_filter(luma, sigma=4.0, mode="reflect")
    warmth = np.zeros_like(luma)
    for cy, cx, height in targets:
        temperature = rng.uniform(0.8, 0.95)
        warmth = np.maximum(warmth, temperature * person(luma.shape, cy * h, cx * w, height * h))
    infrared = ndimage.gaussian_filter(np.maximum(scene, warmth), sigma=0.7, mode="reflect")
    noise = rng.normal(0.0, 0.015, luma.shape) + rng.normal(0.0, 0.01, (1, w))
    return np.clip(infrared + noise, 0.0, 1.0), warmth > 0.5


def mri_and_pet(phantom: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(MRI-like grey image, PET-like activity) in [0, 1], both at half the phantom's size."""
    # Shepp-Logan levels (0 background, 0.1/0.2/0.3/0.4 tissues, 1 skull) -> T2-like contrasts.
    levels = [0.0, 0.1, 0.2, 0.3, 0.4, 1.0]
    mri = np.interp(phantom, levels, [0.0, 0.85, 0.5, 0.7, 0.35, 0.2])
    head = phantom > 0
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, phantom.shape), sigma=3.0)
    mri = mri + head * 0.25 * texture + rng.normal(0.0, 0.01, phantom.shape)
    activity = np.interp(phantom, levels, [0.0, 0.15, 0.45, 0.8, 1.0, 0.05])
    y, x = np.mgrid[: phantom.shape[0], : phantom.shape[1]]
    cy, cx = 0.62 * phantom.shape[0], 0.35 * phantom.shape[1]  # the lesion: function, no structure
    activity = activity + 0.9 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 10.0**2))
    coarse = block_mean(ndimage.gaussian_filter(activity, sigma=6.0), 16)
    coarse = rng.poisson(coarse * 200.0) / 200.0
    pet = ndimage.zoom(coarse, 8, order=1, mode="nearest", grid_mode=True)
    return np.clip(block_mean(mri, 2), 0, 1), np.clip(pet / max(pet.max(), 1e-12), 0, 1)


def quantise(image: np.ndarray) -> np.ndarray:
    """[0, 1] -> rounded uint8 on 0..255."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def generate(out_dir: str | Path) -> list[Path]:
    """Write the sample data set under out_dir; returns the files written (sorted)."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(SEED)
    images: dict[str, np.ndarray] = {}

    camera = block_mean(skdata.camera().astype(np.float64) / 255.0, 3)  # 170 x 170 grey
    ir, mask = synthetic_infrared(camera, rng, [(0.62, 0.8, 0.2), (0.56, 0.63, 0.1), (0.8, 0.93, 0.22)])
    images |= {"ivf/vi/camera.png": camera, "ivf/ir/camera.png": ir, "ivf/mask/camera.png": mask}

    rocket = block_mean(skdata.rocket().astype(np.float64) / 255.0, 3)  # 142 x 213 colour
    luma = rocket @ np.array([0.299, 0.587, 0.114])
    ir, mask = synthetic_infrared(luma, rng, [(0.85, 0.13, 0.2), (0.86, 0.7, 0.2), (0.88, 0.84, 0.22)])
    images |= {"ivf/vi/rocket.png": rocket, "ivf/ir/rocket.png": ir, "ivf/mask/rocket.png": mask}

    mri, pet = mri_and_pet(skdata.shepp_logan_phantom(), rng)  # 200 x 200
    pet_colour = matplotlib.colormaps["hot"](pet)[..., :3]
    images |= {"mif/MRI/phantom.png": mri, "mif/PET/phantom.png": pet_colour}

    written = []
    for name, image in sorted(images.items()):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_png_array(path, quantise(image.astype(np.float64))))
    return written


def cache_dir() -> Path:
    """The user-cache folder for a generated copy: $XDG_CACHE_HOME (or ~/.cache) /
    ddfm-edu/sample-data-<first 12 hex digits of the SHA-256 of this recipe file>."""
    recipe = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ddfm-edu" / f"sample-data-{recipe}"


def cached() -> Path:
    """The sample set in `cache_dir()`, generated there on first use (a few seconds).

    The set is written into a temporary folder beside it and renamed into place in one step, so an
    interrupted run never leaves a partial set behind, and two processes generating at once both end
    with one complete copy. Raises ValueError naming the folder if it cannot be written.
    """
    root = cache_dir()
    if (root / "ivf").is_dir():
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=root.parent))
        try:
            generate(staging)
            staging.rename(root)
        except OSError:
            if not (root / "ivf").is_dir():  # not another process's finished copy: a real failure
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:
        raise ValueError(
            f"sample data not found, and it could not be generated in {root} ({error}); set "
            "DDFM_EDU_SAMPLE_DATA to a folder made by `python -m ddfm_edu.sample_data FOLDER`"
        ) from error
    return root


def locate() -> Path:
    """The sample data folder: $DDFM_EDU_SAMPLE_DATA if set (it must hold the set), else `data/` of
    the source tree if present, else the user-cache copy (`cached`, generated on first use)."""
    if "DDFM_EDU_SAMPLE_DATA" in os.environ:
        root = Path(os.environ["DDFM_EDU_SAMPLE_DATA"])
        if not (root / "ivf").is_dir():
            raise ValueError(
                f"sample data not found at {root} (DDFM_EDU_SAMPLE_DATA): generate it there with "
                f"`python -m ddfm_edu.sample_data {root}`, or unset the variable"
            )
        return root
    if (SOURCE_TREE_DATA / "ivf").is_dir():
        return SOURCE_TREE_DATA
    return cached()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ddfm_edu.sample_data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", nargs="?", default=SOURCE_TREE_DATA)
    for path in generate(parser.parse_args(argv).out_dir):
        print(path)


if __name__ == "__main__":
    main()

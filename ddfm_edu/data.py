r"""Images in and out: reading, [-1, 1] tensors, colour pairs, pair folders, PNG output.

The library works on tensors in [-1, 1]; the 0..255 scale exists only here (and in the metrics).

    x = p / 127.5 - 1,   p = 127.5 (x + 1)        (p: grey value on the 0..255 scale)

Reading accepts PNG, JPEG, TIFF and BMP, 8- or 16-bit (16-bit values are rescaled to 0..255;
16-bit RGB is reduced to 8 bits by the reader), grey, grey stored as RGB (detected: all three
channels exactly equal), RGB, RGBA and grey+alpha (the alpha channel is dropped, with a warning) and
palette images (expanded to their colours).

Colour (docs/method.md section 8): DDFM fuses grey values. The luma Y (BT.601 full range,
`ddfm_edu.colour`) of each source is fused, and the chroma (Cb, Cr) of the colour source is put
back: the visible image in infrared-visible fusion, the PET/SPECT image in medical fusion. Roles
follow docs/method.md section 1: `i` is the infrared or functional (second) modality, `v` the visible
or structural one (MRI). If BOTH images are colour, the chroma of `v` (the visible image) is kept
and a warning says the other's colour is dropped.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ddfm_edu.colour import rgb_to_ycbcr, ycbcr_to_rgb
from ddfm_edu.tensors import stretch
from ddfm_edu.validation import check_integer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# Folder layouts of the public sets: (folder of i, folder of v). Folder names match case-insensitively.
PAIR_LAYOUTS = (
    ("ir", "vi"),
    ("ir", "vis"),
    ("infrared", "visible"),
    ("PET", "MRI"),
    ("SPECT", "MRI"),
    ("CT", "MRI"),
)


class ImageReadError(ValueError):
    """A file that is missing or cannot be read as an image; the message names the file."""


# ----------------------------------------------------------------------------------------------
# Reading and writing
# ----------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float64 on the 0..255 scale: (H, W) if grey, (H, W, 3) if colour.

    Grey stored as RGB (all channels equal) comes back as (H, W). Raises ImageReadError.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            array = _pixels(image, path)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from None
    if (
        array.ndim == 3
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 1], array[..., 2])
    ):
        array = array[..., 0]
    return array


def _pixels(image: Image.Image, path: Path) -> np.ndarray:
    """Pixel values of an opened PIL image on the 0..255 scale, alpha dropped."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        warnings.warn(f"{path}: alpha channel dropped", UserWarning, stacklevel=3)
        image = image.convert("RGB" if image.mode.startswith("RGB") else "L")
    if image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    array = np.asarray(image)
    if image.mode in ("L", "RGB") and array.dtype == np.uint8:
        return array.astype(np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) <= 65535):
        if array.min(initial=0) < 0:
            raise ImageReadError(f"cannot read image {path}: negative integer samples")
        return array.astype(np.float64) * (255.0 / 65535.0)
    raise ImageReadError(f"cannot read image {path}: unsupported pixel format (mode {image.mode})")


def to_tensor(array: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """0..255 array (H, W) or (H, W, C) -> float32 tensor (1, C, H, W) in [-1, 1]: x = p / 127.5 - 1."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"array must have shape (H, W) or (H, W, C), got {array.shape}")
    x = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None] / 127.5 - 1.0
    return x if device is None else x.to(device)


def to_array(x: torch.Tensor) -> np.ndarray:
    """Tensor (1, C, H, W), (C, H, W) or (H, W) in [-1, 1] -> float64 array on 0..255,
    (H, W) for one channel, else (H, W, C): p = 127.5 (x + 1). No clipping, no rounding."""
    x = x.detach().to("cpu", torch.float64)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"x must hold one image, got batch size {x.shape[0]}")
        x = x[0]
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be an image tensor, got shape {tuple(x.shape)}")
    return (x.numpy() + 1.0) * 127.5


def load_image(path: str | os.PathLike, device: str | torch.device | None = None) -> torch.Tensor:
    """`read_image` then `to_tensor`: (1, 1, H, W) for grey images, (1, 3, H, W) for colour."""
    return to_tensor(read_image(path), device)


def to_uint8(x: torch.Tensor, *, stretch_luma: bool = True) -> np.ndarray:
    """Tensor image in [-1, 1] -> uint8 array (H, W) or (H, W, 3) as it is saved.

    stretch_luma=True: the luma is min-max stretched to [-1, 1] first (`stretch`; for a colour image
    the chroma is kept), the reference protocol. False: values are only clipped. Then
    p = round(clip(127.5 (x + 1), 0, 255)).
    """
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if stretch_luma:
        y, chroma = split_luma_chroma(x)
        x = merge_chroma(stretch(y), chroma)
    return np.clip(np.rint(to_array(x)), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike, x: torch.Tensor, *, stretch: bool = True, replace: bool = True) -> Path:
    """Write an image tensor (grey or RGB, in [-1, 1]) as an 8-bit PNG, atomically.

    stretch: see `to_uint8` (True: min-max stretch of the luma, the reference protocol; False:
    clip). The file is first written to a temporary file in the same folder, then moved into
    place (`atomic_write`), so a failed or interrupted write never leaves a partial file.
    replace=False: FileExistsError if `path` exists, even if it appeared a moment ago.
    """
    return write_png_array(path, to_uint8(x, stretch_luma=stretch), replace=replace)


def prepare_output_dir(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed and check that it is writable, before any work is done."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot create output folder {folder}: a file is in the way") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {folder} is not writable")
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMPORARY_SUFFIX = ".tmp"
STALE_AFTER_S = 60.0
"""A temporary file of `atomic_write` lives for the milliseconds of one write: one older than this
was left by a process that was killed (SIGKILL, power loss) and is removed by the next run."""


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}-"


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, replace: bool = True) -> Iterator[IO]:
    """Open a temporary file in path's folder for writing; on success move it onto `path`
    atomically, on any error (or KeyboardInterrupt, SIGTERM in the CLI) remove it: `path` is either
    untouched or complete. replace=True: `os.replace`; False: `os.link`, which refuses an existing
    `path` (FileExistsError, the temporary removed), even one that appeared during the write."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(descriptor, mode) as handle:
            yield handle
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | os.PathLike, names: Iterable[str]) -> int:
    """Remove the temporaries that `atomic_write` left for these output file names in `folder`
    when older than STALE_AFTER_S (a killed run's; a live write's are younger). Returns how many."""
    removed, now = 0, time.time()
    for name in names:
        pattern = f"{glob.escape(_temporary_prefix(Path(name)))}*{TEMPORARY_SUFFIX}"
        for temporary in Path(folder).glob(pattern):
            try:
                if now - temporary.stat().st_mtime > STALE_AFTER_S:
                    temporary.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def write_png_array(path: str | os.PathLike, array: np.ndarray, *, replace: bool = True) -> Path:
    """Write a uint8 array (H, W) or (H, W, 3) as PNG, atomically (`atomic_write`)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file must end in .png, got {path}")
    with atomic_write(path, replace=replace) as handle:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(handle, format="PNG")
    return path


# ----------------------------------------------------------------------------------------------
# Pairs and colour
# ----------------------------------------------------------------------------------------------


def split_luma_chroma(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, 1, H, W) -> (x, None); (B, 3, H, W) RGB -> (Y (B, 1, H, W), CbCr (B, 2, H, W))."""
    if x.shape[1] == 1:
        return x, None
    ycbcr = rgb_to_ycbcr(x)
    return ycbcr[:, :1], ycbcr[:, 1:]


def merge_chroma(y: torch.Tensor, chroma: torch.Tensor | None) -> torch.Tensor:
    """Fused luma y (B, 1, H, W) and a source's chroma (B, 2, H, W) -> RGB (B, 3, H, W);
    with chroma None the grey image y itself. RGB = M^-1 [Y, Cb, Cr] (not clipped)."""
    if chroma is None:
        return y
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1))


@dataclass
class ImagePair:
    """A registered source pair as the library uses it.

    i, v: grey (luma) tensors (1, 1, H, W) in [-1, 1] of the infrared/functional and the
    visible/structural image; chroma: (1, 2, H, W) Cb, Cr of the colour source or None;
    colour_source: "i", "v" or None; name: the pair's name (file stem).
    """

    i: torch.Tensor
    v: torch.Tensor
    chroma: torch.Tensor | None
    colour_source: str | None
    name: str
    ir_path: Path
    vis_path: Path

    def merge(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused luma (1, 1, H, W) -> the output image: RGB with this pair's chroma, or grey."""
        chroma = None if self.chroma is None else self.chroma.to(fused.device, fused.dtype)
        return merge_chroma(fused, chroma)


def load_pair(
    ir_path: str | os.PathLike,
    vis_path: str | os.PathLike,
    device: str | torch.device | None = None,
) -> ImagePair:
    """Read a source pair: `ir_path` the infrared (or PET/SPECT/CT) image, `vis_path` the visible
    (or MRI) image. Both are reduced to luma; the chroma of the colour one is kept (of the visible
    one if both are colour). Different sizes raise ValueError naming both files and sizes."""
    ir_path, vis_path = Path(ir_path), Path(vis_path)
    ir, vis = load_image(ir_path, device), load_image(vis_path, device)
    if ir.shape[-2:] != vis.shape[-2:]:
        raise ValueError(
            f"the images of a pair must have the same size: {ir_path} is "
            f"{ir.shape[-1]}x{ir.shape[-2]}, {vis_path} is {vis.shape[-1]}x{vis.shape[-2]} (WxH)"
        )
    i, chroma_i = split_luma_chroma(ir)
    v, chroma_v = split_luma_chroma(vis)
    if chroma_i is not None and chroma_v is not None:
        warnings.warn(
            f"both {ir_path} and {vis_path} are colour: the chroma of {vis_path} is kept",
            UserWarning,
            stacklevel=2,
        )
    colour_source = "v" if chroma_v is not None else "i" if chroma_i is not None else None
    chroma = chroma_v if chroma_v is not None else chroma_i
    return ImagePair(i, v, chroma, colour_source, vis_path.stem, ir_path, vis_path)


# ----------------------------------------------------------------------------------------------
# Pair folders and the bundled sample data
# ----------------------------------------------------------------------------------------------


class PairPaths(NamedTuple):
    """Files of one pair: name (file stem), ir (i: infrared/functional), vis (v: visible/MRI)."""

    name: str
    ir: Path
    vis: Path


def images_by_name(folder: str | os.PathLike) -> dict[str, Path]:
    """The PNG/JPEG/TIFF/BMP files of a folder by file stem; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"not a folder: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise ValueError(f"two images with the name {path.stem!r}: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def find_pairs(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> tuple[list[PairPaths], list[Path]]:
    """Pairs of images with the same file name (stem) in two folders; extensions may differ
    (FLIR_03952.png pairs with FLIR_03952.jpg). Returns (pairs sorted by name, images without a
    partner). Files other than PNG/JPEG/TIFF/BMP are ignored."""
    ir_files, vis_files = images_by_name(Path(ir_dir)), images_by_name(Path(vis_dir))
    pairs = [
        PairPaths(name, ir_files[name], vis_files[name])
        for name in sorted(ir_files.keys() & vis_files.keys())
    ]
    unpaired = sorted(
        [ir_files[n] for n in ir_files.keys() - vis_files.keys()]
        + [vis_files[n] for n in vis_files.keys() - ir_files.keys()]
    )
    return pairs, unpaired


def pair_folders(root: str | os.PathLike) -> tuple[Path, Path]:
    """(ir_dir, vis_dir) of a data set folder in one of the layouts ir/vi, ir/vis,
    infrared/visible, MRI/PET, MRI/SPECT, MRI/CT (names case-insensitive). For medical sets the
    PET/SPECT/CT folder is the `ir` (i, functional) side and MRI the `vis` (v, structural) side."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"not a folder: {root}")
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for ir_name, vis_name in PAIR_LAYOUTS:
        if ir_name.lower() in children and vis_name.lower() in children:
            return children[ir_name.lower()], children[vis_name.lower()]
    layouts = ", ".join(f"{v}/{i}" for i, v in PAIR_LAYOUTS)
    raise ValueError(f"{root} has none of the pair layouts ({layouts})")


def sample_data_dir() -> Path:
    """The bundled sample data folder: $DDFM_EDU_SAMPLE_DATA if set, else `data/` at the root of
    the source tree (a clone, or an editable install), else a copy generated on first use in the
    user cache (a plain `pip install`): see `sample_data.locate`."""
    from ddfm_edu import sample_data  # imports this module

    return sample_data.locate()


def sample_pairs(kind: str | None = None) -> list[PairPaths]:
    """The bundled sample pairs: kind "ivf" (infrared-visible), "mif" (MRI-PET) or None (both)."""
    kinds = ("ivf", "mif") if kind is None else (kind,)
    if any(k not in ("ivf", "mif") for k in kinds):
        raise ValueError(f"kind must be 'ivf', 'mif' or None, got {kind!r}")
    root = sample_data_dir()
    return [pair for k in kinds for pair in find_pairs(*pair_folders(root / k))[0]]


def resize_pair(pair: ImagePair, longest: int) -> ImagePair:
    """The pair scaled so that its longer side has `longest` pixels, aspect ratio kept (each side
    rounded), i, v and chroma alike, by antialiased bilinear resampling (as PIL's BILINEAR resize):
    toy-size runs of the notebooks on a laptop. The file paths still name the full-size images."""
    check_integer("longest", longest, 2)
    height, width = pair.i.shape[-2:]
    scale = longest / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))

    def resize(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)

    return ImagePair(
        resize(pair.i), resize(pair.v), resize(pair.chroma), pair.colour_source, pair.name,
        pair.ir_path, pair.vis_path,
    )  # fmt: skip

"""The command line `ddfm-edu` (also `python -m ddfm_edu`): fuse, eval, demo.

    ddfm-edu fuse --ir IR.png --vis VIS.png -o OUT.png [options]
    ddfm-edu fuse --ir-dir DIR --vis-dir DIR -o OUTDIR [--overwrite] [--batch-size N] [options]
    ddfm-edu eval --ir-dir DIR --vis-dir DIR --fused-dir DIR [--mode reference|standard] [--csv FILE]
    ddfm-edu demo [-o DIR] [options]

Fusion options: --method ddfm|em|average|max|laplacian (default ddfm), --prior embedded|gaussian|
CHECKPOINT, --config FILE (an ADM checkpoint's architecture as JSON), --half (float16 network body,
CUDA only), --steps N, --sampler ddim|ddpm, --em-variant paper|released, --device auto|cpu|cuda,
--seed N (default 3407, the release's), --em-iters N (EM alone, default 50), --no-stretch (clip
instead of the min-max stretch).

Outputs have the inputs' size; a colour source (visible, PET/SPECT) gives a colour output (fused
luma, the source's chroma, `ddfm_edu.data`). Every file is written atomically. Errors (missing or
unreadable file, sizes that differ, no pairs, unwritable output, bad option) print one line
"ddfm-edu: error: ..." on stderr and exit with status 1 (2 for bad usage), with no traceback.

Folders: pairs of one size (for DDFM with em_variant "paper": one size once padded to the prior's
stride) run as batches of up to --batch-size pairs (`plan_batches`). Seeds in a batch: every image
starts from the noise `ddfm(seed=seed)` draws for it alone (`start_noise`), so an output does not
depend on the batching: a folder run equals the single-pair command on each pair with the same seed.
The DDPM sampler's per-step noise is drawn per batch, so with --sampler ddpm pairs run one at a time.

Several processes: started by `torchrun --standalone --nproc_per_node N -m ddfm_edu.cli fuse
--ir-dir ...` (environment WORLD_SIZE > 1, RANK, LOCAL_RANK), process RANK fuses the sorted pairs
[RANK::WORLD_SIZE] (`shard`; sharded before existing outputs are skipped) on cuda:LOCAL_RANK (the
CPU with --device cpu or without CUDA); there is no communication, outputs never collide, only
rank 0 prints messages (about its own share) and the progress bar. One pair is rank 0's alone.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ddfm_edu import data, em
from ddfm_edu.baselines import BASELINES, em_alone
from ddfm_edu.priors import PRIOR_NAMES, Prior, load_prior, resolve_device

PROG = "ddfm-edu"
METHODS = ("ddfm", *BASELINES)
DEFAULT_SEED = 3407  # the release's seed (ddfm_edu.sample.RELEASE_SEED)
DEFAULT_BATCH_SIZE = 8
DEMO_METHODS = ("average", "max", "laplacian", "em", "ddfm")


class UsageError(Exception):
    """A bad command line (argparse's complaint), reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message and exits; we want one line
        raise UsageError(message)


# ----------------------------------------------------------------------------------------------
# Fusion
# ----------------------------------------------------------------------------------------------


def start_noise(prior: Prior, sizes: Sequence[tuple[int, int]], seed: int) -> torch.Tensor:
    r"""The start noise x_T of a batch (B, prior.channels, H', W') on the CPU, float32: image b's
    x_T is what `ddfm(..., seed=seed)` draws for it alone, randn(1, C, H', W') from a CPU
    torch.Generator seeded with `seed` at its size padded to the prior's stride, (H', W') =
    sizes[b] rounded up to multiples of prior.stride (all equal). So a batch's result does not
    depend on how the pairs are grouped."""
    stride = prior.stride
    padded = {(-(-h // stride) * stride, -(-w // stride) * stride) for h, w in sizes}
    if len(padded) != 1:
        raise ValueError(f"the images of a batch must share one padded size, got {sorted(padded)}")
    shape = (1, prior.channels, *padded.pop())
    return torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(seed)) for _ in sizes])


def fuse_batch(
    i: torch.Tensor,
    v: torch.Tensor,
    method: str = "ddfm",
    prior: Prior | None = None,
    *,
    steps: int = 100,
    sampler: str = "ddim",
    em_variant: str = "paper",
    seed: int | None = DEFAULT_SEED,
    em_iters: int = 50,
    progress: bool = False,
) -> torch.Tensor:
    """Fuse a batch of pairs of one size, i, v (B, 1, H, W) in [-1, 1] -> f (B, 1, H, W).

    method "ddfm" needs `prior` (on i's device) and uses steps, sampler, em_variant, seed: the B
    pairs run as one batch through `ddfm_edu.sample.ddfm`, each image starting from the noise it
    would get alone with this seed (`start_noise`; seed None: the global generator, one draw for
    the batch). With sampler "ddpm" the per-step noise is drawn for the batch as a whole, so only
    a batch of one equals a single-pair run. "em" (EM alone) uses em_variant and em_iters; the
    others take nothing else.
    """
    if method == "ddfm":
        from ddfm_edu.sample import ddfm  # imported here: the baselines do not need the sampler

        if prior is None:
            raise ValueError("method 'ddfm' needs a prior")
        x_T = None
        if seed is not None:
            x_T = start_noise(prior, [tuple(i.shape[-2:])] * i.shape[0], seed).to(i.device, i.dtype)
        result = ddfm(i, v, prior, steps=steps, sampler=sampler, em_variant=em_variant, seed=seed,
                      x_T=x_T, progress=progress)  # fmt: skip
        return result.fused
    if method == "em":
        return em_alone(i, v, iters=em_iters, variant=em_variant)
    if method not in BASELINES:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return BASELINES[method](i, v)


def plan_batches(keys: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Indices of items grouped by equal key (e.g. image size), in order of first appearance,
    each group cut into batches of at most `batch_size`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return [g[start : start + batch_size] for g in groups.values() for start in range(0, len(g), batch_size)]


def process_rank(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(rank, local_rank, world_size) of this process as `torchrun` sets them (RANK, LOCAL_RANK,
    WORLD_SIZE); (0, 0, 1) when WORLD_SIZE is absent or 1."""
    environ = os.environ if environ is None else environ
    try:
        world_size = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0")) if world_size > 1 else 0
        local_rank = int(environ.get("LOCAL_RANK", str(rank))) if world_size > 1 else 0
    except ValueError:
        raise ValueError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them), got "
            + ", ".join(f"{k}={environ.get(k)!r}" for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, got {rank}, {world_size}, "
                         f"{local_rank}")  # fmt: skip
    return rank, local_rank, world_size


T = TypeVar("T")


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The share of process `rank` of `world_size`: items[rank::world_size]. The shares are
    disjoint and together hold every item once; pass the items in one order on every process."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    return list(items[rank::world_size])


def _image_size(path: Path) -> tuple[int, int] | Path:
    """(H, W) from the file's header (nothing decoded); the path itself when unreadable (a group
    of its own: reading it later raises the clear error)."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError):
        return path


class Fuser:
    """The fusion the options ask for, with the device resolved and the prior loaded once (up front,
    so that a bad --prior fails before any output is written). Under torchrun (`process_rank`) a
    CUDA device is cuda:LOCAL_RANK."""

    def __init__(self, args: argparse.Namespace, needs_prior: bool):
        self.args = args
        self.device = resolve_device(args.device)
        _, local_rank, world_size = process_rank()
        if self.device.type == "cuda" and world_size > 1:
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK {local_rank} has no GPU: {torch.cuda.device_count()} CUDA device(s)"
                )
            self.device = torch.device("cuda", local_rank)
        if not needs_prior:
            self.prior = None
            return
        checkpoint = args.prior not in PRIOR_NAMES
        if args.config is not None and not checkpoint:
            raise UsageError(f"--config applies to an ADM checkpoint, not to --prior {args.prior}")
        if args.half and not checkpoint:
            raise UsageError(f"--half applies to an ADM checkpoint, not to --prior {args.prior}")
        if args.half and self.device.type != "cuda":
            raise ValueError(f"--half needs a CUDA device, but this run is on {self.device}")
        self.prior = load_prior(args.prior, device=self.device, half=args.half, config=args.config)

    def batch_key(self, size: tuple[int, int] | Path, method: str) -> tuple[int, int] | Path:
        """Pairs with equal keys can share a batch: their size, padded to the prior's stride for
        DDFM with em_variant "paper" (whose result, cropped, does not depend on the padding)."""
        if method == "ddfm" and self.args.em_variant == "paper" and isinstance(size, tuple):
            s = self.prior.stride
            return -(-size[0] // s) * s, -(-size[1] // s) * s
        return size

    def fuse_pairs(self, pairs: Sequence[data.ImagePair], method: str, progress: bool = False):
        """The output images of pairs with one batch key, fused as one batch: a list of
        (1, C, H, W), each the fused luma with its pair's chroma, at its pair's size."""
        sizes = [tuple(pair.i.shape[-2:]) for pair in pairs]
        i = [pair.i for pair in pairs]
        v = [pair.v for pair in pairs]
        if len(set(sizes)) > 1:  # one padded size (`batch_key`): pad as `ddfm` would
            i = [data.pad_to_multiple(x, self.prior.stride)[0] for x in i]
            v = [data.pad_to_multiple(x, self.prior.stride)[0] for x in v]
        fused = fuse_batch(
            torch.cat(i).to(self.device), torch.cat(v).to(self.device), method, self.prior,
            steps=self.args.steps, sampler=self.args.sampler, em_variant=self.args.em_variant,
            seed=self.args.seed, em_iters=self.args.em_iters, progress=progress,
        )  # fmt: skip
        return [pair.merge(f[None, :, :h, :w]) for pair, f, (h, w) in zip(pairs, fused, sizes, strict=True)]

    def __call__(self, pair: data.ImagePair, method: str, progress: bool = False) -> torch.Tensor:
        """The output image of a pair (1, C, H, W): fused luma with the colour source's chroma."""
        return self.fuse_pairs([pair], method, progress)[0]


def _prepare_output_file(path: Path) -> None:
    """Fail early (before any fusion) if `path` cannot be written as a PNG."""
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file must end in .png, got {path}")
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file name ending in .png")
    _prepare_output_dir(path.parent)


def _prepare_output_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot create output folder {folder}: a file is in the way") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {folder} is not writable")


def _command_fuse(args: argparse.Namespace) -> int:
    single = args.ir is not None or args.vis is not None
    folders = args.ir_dir is not None or args.vis_dir is not None
    if (
        single == folders
        or (single and None in (args.ir, args.vis))
        or (folders and None in (args.ir_dir, args.vis_dir))
    ):
        raise UsageError("give either --ir and --vis (one pair) or --ir-dir and --vis-dir (folders)")
    rank, _, world_size = process_rank()
    output = Path(args.output)
    if single:
        if rank > 0:  # under torchrun one pair is rank 0's
            return 0
        _prepare_output_file(output)
        pair = data.load_pair(args.ir, args.vis)
        if output.exists() and not args.overwrite:
            print(f"{PROG}: {output} exists, skipped (use --overwrite)", file=sys.stderr)
            return 0
        image = Fuser(args, args.method == "ddfm")(pair, args.method, progress=True)
        data.save_png(output, image, stretch=args.stretch)
        print(output)
        return 0

    lead = rank == 0  # only rank 0 speaks
    pairs, unpaired = data.find_pairs(args.ir_dir, args.vis_dir)
    if not pairs:
        raise ValueError(
            f"no pairs in {args.ir_dir} and {args.vis_dir} (images pair by file name; "
            f"{len(unpaired)} image(s) without a partner)"
        )
    if unpaired and lead:
        _warn(
            f"{len(unpaired)} image(s) without a partner ignored: " + ", ".join(p.name for p in unpaired[:5])
        )
    _prepare_output_dir(output)
    # Shard before looking for existing outputs: another process may be writing its share.
    mine = shard(pairs, rank, world_size)
    todo = [p for p in mine if args.overwrite or not (output / f"{p.name}.png").exists()]
    if len(todo) < len(mine) and lead:
        skipped = len(mine) - len(todo)
        share = "" if world_size == 1 else f" of rank 0's {len(mine)} pairs"
        print(f"{PROG}: {skipped} existing output(s){share} skipped (use --overwrite)", file=sys.stderr)
    fuser = Fuser(args, args.method == "ddfm") if todo else None
    batch_size = 1 if args.method == "ddfm" and args.sampler == "ddpm" else args.batch_size
    keys = [fuser.batch_key(_image_size(p.ir), args.method) for p in todo]
    with tqdm(total=len(todo), desc=f"fusing ({args.method})", unit="pair", file=sys.stderr,
              disable=not lead) as bar:  # fmt: skip
        for batch in plan_batches(keys, batch_size):
            loaded = [data.load_pair(todo[n].ir, todo[n].vis) for n in batch]
            for n, image in zip(batch, fuser.fuse_pairs(loaded, args.method), strict=True):
                data.save_png(output / f"{todo[n].name}.png", image, stretch=args.stretch)
            bar.update(len(batch))
    if lead:
        by = "" if world_size == 1 else f" by rank 0 ({len(pairs)} pairs shared by {world_size} processes)"
        print(f"{len(todo)} fused image(s) written to {output}{by}")
    return 0


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _evaluate(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str) -> dict[str, float]:
    from ddfm_edu.metrics import evaluate  # imported here: fuse does not need the metrics

    return evaluate(fused, a, b, mode)


Rows = list[tuple[str, dict[str, float]]]


def with_mean(rows: Rows) -> Rows:
    """The rows (name, metrics) followed by ("mean", the mean of each metric)."""
    keys = list(rows[0][1])
    return [*rows, ("mean", {k: float(np.mean([values[k] for _, values in rows])) for k in keys})]


def format_table(rows: Rows, label: str = "image") -> str:
    """A plain-text table of (name, metrics) rows, 4 decimals, columns as wide as they need."""
    keys = list(rows[0][1])
    cells = [[label, *keys]] + [[name, *(f"{values[k]:.4f}" for k in keys)] for name, values in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]
    return "\n".join(
        row[0].ljust(widths[0])
        + "".join(cell.rjust(w + 2) for cell, w in zip(row[1:], widths[1:], strict=True))
        for row in cells
    )


def write_csv(path: str | os.PathLike, tables: dict[str, Rows], label: str = "image") -> None:
    """Tables {method: rows} as one CSV (columns method, label, metrics; full precision), atomically."""
    path = Path(path)
    _prepare_output_dir(path.parent)
    keys = list(next(iter(tables.values()))[0][1])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", label, *keys])
    for method, rows in tables.items():
        writer.writerows([method, name, *(repr(float(values[k])) for k in keys)] for name, values in rows)
    with data.atomic_write(path, "w") as handle:
        handle.write(buffer.getvalue())


def _command_eval(args: argparse.Namespace) -> int:
    pairs, _ = data.find_pairs(args.ir_dir, args.vis_dir)
    fused_files = data.images_by_name(args.fused_dir)
    found = [p for p in pairs if p.name in fused_files]
    if not found:
        raise ValueError(
            f"no fused image in {args.fused_dir} matches a pair of {args.ir_dir} and {args.vis_dir}"
        )
    if len(found) < len(pairs):
        _warn(f"{len(pairs) - len(found)} pair(s) without a fused image skipped")
    rows = []
    for paths in found:
        fused, a, b = (data.read_image(p) for p in (fused_files[paths.name], paths.vis, paths.ir))
        for name, image in ((fused_files[paths.name], fused), (paths.ir, b)):
            if image.shape[:2] != a.shape[:2]:
                raise ValueError(
                    f"sizes differ: {name} is {image.shape[1]}x{image.shape[0]}, "
                    f"{paths.vis} is {a.shape[1]}x{a.shape[0]} (WxH)"
                )
        rows.append((paths.name, _evaluate(fused, a, b, args.mode)))
    rows = with_mean(rows)
    print(format_table(rows))
    if args.csv:
        write_csv(args.csv, {"fused": rows})
    return 0


# ----------------------------------------------------------------------------------------------
# Demo
# ----------------------------------------------------------------------------------------------


def comparison_figure(panels: list[list[tuple[str, np.ndarray]]]):
    """A matplotlib Figure (no pyplot state): one row per pair, one titled panel per image (uint8)."""
    from matplotlib.figure import Figure

    columns = max(len(row) for row in panels)
    figure = Figure(figsize=(2.0 * columns, 2.1 * len(panels)))
    axes = figure.subplots(len(panels), columns, squeeze=False)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.15)
    for row, ax_row in zip(panels, axes, strict=True):
        for ax, (title, image) in zip(ax_row, row, strict=False):
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=9)
        for ax in ax_row:
            ax.set_axis_off()
    return figure


def _command_demo(args: argparse.Namespace) -> int:
    output = Path(args.output)
    pairs = data.sample_pairs()
    _prepare_output_dir(output)
    fuser = Fuser(args, needs_prior=True)
    tables: dict[str, Rows] = {method: [] for method in DEMO_METHODS}
    panels = []
    for paths in pairs:
        pair = data.load_pair(paths.ir, paths.vis)
        ir, vis = data.read_image(paths.ir), data.read_image(paths.vis)
        sources = [(paths.ir.parent.name, ir), (paths.vis.parent.name, vis)]  # e.g. ir, vi or PET, MRI
        row = [(title, np.rint(image).astype(np.uint8)) for title, image in sources]
        for method in DEMO_METHODS:
            image = data.to_uint8(fuser(pair, method, progress=method == "ddfm"), stretch_luma=args.stretch)
            folder = output / method
            folder.mkdir(exist_ok=True)
            data.write_png_array(folder / f"{paths.name}.png", image)
            tables[method].append((paths.name, _evaluate(image, vis, ir, args.mode)))
            row.append((method, image))
        panels.append([(f"{paths.name}: {row[0][0]}", row[0][1]), *row[1:]])
    tables = {method: with_mean(rows) for method, rows in tables.items()}
    table = "\n\n".join(f"{method}:\n{format_table(rows)}" for method, rows in tables.items())
    with data.atomic_write(output / "metrics.txt", "w") as handle:
        handle.write(table + "\n")
    write_csv(output / "metrics.csv", tables)
    figure = comparison_figure(panels)
    with data.atomic_write(output / "comparison.png") as handle:
        figure.savefig(handle, format="png", dpi=80)
    print(table)
    print(f"demo written to {output.resolve()}: fused images per method, comparison.png, metrics.txt/.csv")
    return 0


# ----------------------------------------------------------------------------------------------
# Parser and entry point
# ----------------------------------------------------------------------------------------------


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, else a one-line error naming `what` was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_seed = _int_at_least(0, "non-negative")


def _add_fusion_options(parser: argparse.ArgumentParser, method: bool = True) -> None:
    if method:
        parser.add_argument("--method", choices=METHODS, default="ddfm", help="fusion method (default ddfm)")
    parser.add_argument(
        "--prior",
        default="embedded",
        help="DDFM prior: embedded (default), gaussian, or an ADM checkpoint file",
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="JSON of an ADM checkpoint's network config, when its file name does not give it",
    )  # fmt: skip
    parser.add_argument(
        "--half", action="store_true", help="run an ADM checkpoint's network body in float16 (CUDA only)"
    )
    parser.add_argument("--steps", type=_positive_int, default=100, help="diffusion steps (default 100)")
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="default ddim")
    parser.add_argument("--em-variant", choices=em.VARIANTS, default="paper", help="default paper")
    parser.add_argument("--em-iters", type=_positive_int, default=50, help="iterations of --method em (50)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto")
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument(
        "--no-stretch", dest="stretch", action="store_false",
        help="clip the output to [0, 255] instead of the min-max stretch of the luma",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="DDFM image fusion, its baselines and metrics.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{fuse,eval,demo}")

    fuse = commands.add_parser("fuse", help="fuse one pair or two folders of pairs")
    fuse.add_argument("--ir", help="infrared (or PET/SPECT/CT) image")
    fuse.add_argument("--vis", help="visible (or MRI) image")
    fuse.add_argument("--ir-dir", help="folder of infrared images")
    fuse.add_argument("--vis-dir", help="folder of visible images (pairs share the file name)")
    fuse.add_argument("-o", "--output", required=True, help="OUT.png (one pair) or a folder (folders)")
    fuse.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    fuse.add_argument(
        "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
        help=f"folders: at most N pairs of one size per batch (default {DEFAULT_BATCH_SIZE})",
    )  # fmt: skip
    _add_fusion_options(fuse)
    fuse.set_defaults(run=_command_fuse)

    evaluate = commands.add_parser("eval", help="metrics of fused images, a row per image and the mean")
    evaluate.add_argument("--ir-dir", required=True)
    evaluate.add_argument("--vis-dir", required=True)
    evaluate.add_argument("--fused-dir", required=True)
    evaluate.add_argument("--mode", choices=("reference", "standard"), default="reference")
    evaluate.add_argument("--csv", help="also write the table to this CSV file")
    evaluate.set_defaults(run=_command_eval)

    demo = commands.add_parser("demo", help="fuse the bundled sample pairs with every method")
    demo.add_argument("-o", "--output", default="ddfm-edu-demo", help="folder (default ./ddfm-edu-demo)")
    demo.add_argument("--mode", choices=("reference", "standard"), default="reference", help="metrics mode")
    _add_fusion_options(demo, method=False)
    demo.set_defaults(run=_command_demo)
    return parser


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _warn(str(message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 bad usage)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args = build_parser().parse_args(argv)
            return args.run(args)
        except UsageError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2
        except (ValueError, OSError, torch.OutOfMemoryError) as error:
            print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())

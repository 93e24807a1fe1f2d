"""The command line `ddfm-edu` (also `python -m ddfm_edu`): fuse, eval, demo.

    ddfm-edu fuse --ir IR.png --vis VIS.png -o OUT.png [options]
    ddfm-edu fuse --ir-dir DIR --vis-dir DIR -o OUTDIR [--overwrite] [--batch-size N] [options]
    ddfm-edu eval --ir-dir DIR --vis-dir DIR --fused-dir DIR [--mode reference|standard] [--csv FILE]
    ddfm-edu demo [-o DIR] [options]

Fusion options: --method ddfm|em|average|max|laplacian (default ddfm), --prior embedded|gaussian|
CHECKPOINT, --config FILE (an ADM checkpoint's architecture as JSON), --half (float16 network body,
CUDA only), --steps N, --sampler ddim|ddpm, --em-variant one-sided|paper|released (default
one-sided), --device auto|cpu|cuda, --seed N (default 3407, the release's), --em-iters N (EM
alone, default 50), --no-stretch (clip instead of the min-max stretch).

Outputs have the inputs' size; a colour source (visible, PET/SPECT) gives a colour output (fused
luma, the source's chroma, `ddfm_edu.data`). Every file is written atomically. Errors (missing or
unreadable file, sizes that differ, no pairs, unwritable output, bad option) print one line
"ddfm-edu: error: ..." on stderr and exit with status 1 (2 for bad usage), with no traceback.

Folders: pairs run one at a time by default, so a folder run (resumed or not) writes exactly the
bytes the single-pair command writes for each pair with the same seed. --batch-size N lets pairs of
one size (for DDFM with an EM variant other than "released": one size once padded to the prior's
stride) run as batches of up to N (`ddfm_edu.fusion`), for GPU throughput: every image starts from
the noise it would get alone, and the outputs agree with single-pair runs to rounding (a batched
kernel may sum in another order). With --sampler ddpm, whose per-step noise is drawn per batch,
pairs always run one at a time. Without --overwrite an existing output is never replaced, even one
that appears while the run is fusing (another run writing the same folder). SIGTERM is handled like
Ctrl-C: the file being written is removed, and a temporary left by a killed run is removed by the
next one.

Several processes: started by `torchrun --standalone --nproc_per_node N -m ddfm_edu.cli fuse
--ir-dir ...` (environment WORLD_SIZE > 1, RANK, LOCAL_RANK), process RANK fuses the sorted pairs
[RANK::WORLD_SIZE] (`shard`; sharded before existing outputs are skipped) on cuda:LOCAL_RANK (the
CPU with --device cpu or without CUDA); there is no communication, outputs never collide, only
rank 0 prints messages (about its own share) and the progress bar. One pair is rank 0's alone.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ddfm_edu import data
from ddfm_edu.diffusion import SAMPLERS
from ddfm_edu.em import VARIANTS as EM_VARIANTS
from ddfm_edu.fusion import METHODS, Fuser, plan_batches, process_rank, shard
from ddfm_edu.priors import PRIOR_NAMES
from ddfm_edu.report import Rows, check_csv_path, format_table, with_mean, write_csv
from ddfm_edu.sample import RELEASE_SEED

PROG = "ddfm-edu"
DEFAULT_BATCH_SIZE = 1
DEFAULT_EM_VARIANT = "one-sided"
"""The EM variant of `fuse` and `demo`, chosen by evidence (benchmarks/README.md, notebook 11): on
14 real pairs at full resolution it fuses (no output a copy of one source) and beats the average
and the released variant on 4 of the 6 mean metrics; the paper's EM copies one source on 13 of 14.
The library's functions keep the paper's EM as their default (they teach the paper)."""
MAX_SEED = 2**64 - 1
DEMO_METHODS = ("average", "max", "laplacian", "em", "ddfm")


class UsageError(Exception):
    """A bad command line (argparse's complaint), reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message and exits; we want one line
        raise UsageError(message)


# ----------------------------------------------------------------------------------------------
# Fusion
# ----------------------------------------------------------------------------------------------


def _image_size(path: Path) -> tuple[int, int] | Path:
    """(H, W) from the file's header (nothing decoded); the path itself when unreadable (a group
    of its own: reading it later raises the clear error)."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError):
        return path


def _fuser(args: argparse.Namespace, needs_prior: bool) -> Fuser:
    """The Fuser the options ask for (`ddfm_edu.fusion`); --config and --half only with a checkpoint."""
    checkpoint = args.prior not in PRIOR_NAMES
    if needs_prior and args.config is not None and not checkpoint:
        raise UsageError(f"--config applies to an ADM checkpoint, not to --prior {args.prior}")
    if needs_prior and args.half and not checkpoint:
        raise UsageError(f"--half applies to an ADM checkpoint, not to --prior {args.prior}")
    return Fuser(
        args.prior if needs_prior else None, device=args.device, config=args.config, half=args.half,
        steps=args.steps, sampler=args.sampler, em_variant=args.em_variant, seed=args.seed,
        em_iters=args.em_iters,
    )  # fmt: skip


def _prepare_output_file(path: Path) -> None:
    """Fail early (before any fusion) if `path` cannot be written as a PNG."""
    if path.suffix.lower() != ".png":
        raise ValueError(f"output file must end in .png, got {path}")
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file name ending in .png")
    data.prepare_output_dir(path.parent)


def _save(path: Path, image: torch.Tensor, args: argparse.Namespace) -> bool:
    """Write one output; without --overwrite never replace a file, even one that appeared while this
    run was fusing (another run writing the same folder). Returns whether it was written."""
    try:
        data.save_png(path, image, stretch=args.stretch, replace=args.overwrite)
    except FileExistsError:
        _warn(f"{path} appeared during this run and was kept (use --overwrite to replace it)")
        return False
    return True


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
        image = _fuser(args, args.method == "ddfm")(pair, args.method, progress=True)
        if _save(output, image, args):
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
    data.prepare_output_dir(output)
    # Shard before looking for existing outputs: another process may be writing its share.
    mine = shard(pairs, rank, world_size)
    data.remove_stale_temporaries(output, [f"{p.name}.png" for p in mine])
    todo = [p for p in mine if args.overwrite or not (output / f"{p.name}.png").exists()]
    if len(todo) < len(mine) and lead:
        skipped = len(mine) - len(todo)
        share = "" if world_size == 1 else f" of rank 0's {len(mine)} pairs"
        print(f"{PROG}: {skipped} existing output(s){share} skipped (use --overwrite)", file=sys.stderr)
    fuser = _fuser(args, args.method == "ddfm") if todo else None
    batch_size = 1 if args.method == "ddfm" and args.sampler == "ddpm" else args.batch_size
    keys = [fuser.batch_key(_image_size(p.ir), args.method) for p in todo]
    written = 0
    with tqdm(total=len(todo), desc=f"fusing ({args.method})", unit="pair", file=sys.stderr,
              disable=not lead) as bar:  # fmt: skip
        for batch in plan_batches(keys, batch_size):
            loaded = [data.load_pair(todo[n].ir, todo[n].vis) for n in batch]
            for n, image in zip(batch, fuser.fuse_pairs(loaded, args.method), strict=True):
                written += _save(output / f"{todo[n].name}.png", image, args)
            bar.update(len(batch))
    if lead:
        by = "" if world_size == 1 else f" by rank 0 ({len(pairs)} pairs shared by {world_size} processes)"
        print(f"{written} fused image(s) written to {output}{by}")
    return 0


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _evaluate(fused: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str) -> dict[str, float]:
    from ddfm_edu.metrics import evaluate  # imported here: fuse does not need the metrics

    return evaluate(fused, a, b, mode)


def _command_eval(args: argparse.Namespace) -> int:
    if args.csv:
        check_csv_path(args.csv)
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


def _command_demo(args: argparse.Namespace) -> int:
    output = Path(args.output)
    pairs = data.sample_pairs()
    data.prepare_output_dir(output)
    fuser = _fuser(args, needs_prior=True)
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
    from ddfm_edu.widgets import comparison_figure  # imported here: fuse and eval need no matplotlib

    figure = comparison_figure(panels)
    with data.atomic_write(output / "comparison.png") as handle:
        figure.savefig(handle, format="png", dpi=80)
    print(table)
    print(f"demo written to {output.resolve()}: fused images per method, comparison.png, metrics.txt/.csv")
    return 0


# ----------------------------------------------------------------------------------------------
# Parser and entry point
# ----------------------------------------------------------------------------------------------


def _int_in(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in minimum..maximum, else a one-line error saying the range."""
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected an integer {allowed}, got {text}")
        return value

    return parse


_positive_int = _int_in(1)


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
    parser.add_argument("--sampler", choices=tuple(SAMPLERS), default="ddim", help="default ddim")
    parser.add_argument(
        "--em-variant", choices=EM_VARIANTS, default=DEFAULT_EM_VARIANT,
        help=f"default {DEFAULT_EM_VARIANT}, the variant that fuses on the package's measurements (README)",
    )  # fmt: skip
    parser.add_argument("--em-iters", type=_positive_int, default=50, help="iterations of --method em (50)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto")
    parser.add_argument(
        "--seed", type=_int_in(0, MAX_SEED), default=RELEASE_SEED,
        help=f"start noise seed, 0 to 2**64 - 1 (default {RELEASE_SEED}, the release's)",
    )  # fmt: skip
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
        help=f"folders: at most N pairs of one size per batch (default {DEFAULT_BATCH_SIZE}: outputs equal "
        "the single-pair command's byte for byte; larger batches, for GPU throughput, agree to rounding)",
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


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every write in progress is cleaned up."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 bad usage, 130
    interrupted, 143 terminated by SIGTERM)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave SIGTERM as it is
            previous = None
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
        except Terminated:
            print(f"{PROG}: terminated", file=sys.stderr)
            return 143
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

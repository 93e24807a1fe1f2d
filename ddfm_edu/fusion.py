r"""Fusing pairs with any method: one call per batch, batch planning, start noise, sharding.

`fuse_batch(i, v, method, prior)` is the one call behind the command line, the demo and the
notebooks: "ddfm" (`ddfm_edu.sample.ddfm`) or a baseline of `ddfm_edu.baselines.BASELINES`.

Batches. Pairs whose tensors can share a batch have equal `Fuser.batch_key`; `plan_batches` cuts each
group into batches of at most N. Every image of a batch starts from the noise `ddfm(seed=seed)` draws
for it alone (`start_noise`), so a result does not depend on which pairs share its batch in exact
arithmetic. In floating point it can, in the last bits: a batched convolution may take another
kernel (and summation order) than the same convolution on one image, and DDFM's 100 steps carry
such differences on. With batches of one (the default) a folder run therefore writes exactly the
bytes of the single-pair command, on any machine, resumed or not; larger batches (for GPU
throughput) agree within the tolerance that tests/test_fusion.py measures and asserts.

Several processes: `process_rank` reads torchrun's RANK, LOCAL_RANK, WORLD_SIZE, and `shard` gives
each process its share [RANK::WORLD_SIZE] of the sorted pairs; there is no communication.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from ddfm_edu.baselines import BASELINES, em_alone
from ddfm_edu.em import EMConfig
from ddfm_edu.priors import Prior, load_prior, resolve_device
from ddfm_edu.sample import RELEASE_SEED, ddfm
from ddfm_edu.tensors import pad_to_multiple
from ddfm_edu.validation import check_choice, check_integer

METHODS = ("ddfm", *BASELINES)

T = TypeVar("T")


def start_noise(prior: Prior, sizes: Sequence[tuple[int, int]], seed: int) -> torch.Tensor:
    r"""The start noise x_T of a batch (B, prior.channels, H', W') on the CPU, float32: image b's
    x_T is what `ddfm(..., seed=seed)` draws for it alone, randn(1, C, H', W') from a CPU
    torch.Generator seeded with `seed` at its size padded to the prior's stride, (H', W') =
    sizes[b] rounded up to multiples of prior.stride (all equal). So a batch's start does not
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
    em_variant: str = EMConfig.variant,
    seed: int | None = RELEASE_SEED,
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
    check_choice("method", method, METHODS)
    if method == "ddfm":
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
    return BASELINES[method](i, v)


def plan_batches(keys: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Indices of items grouped by equal key (e.g. image size), in order of first appearance,
    each group cut into batches of at most `batch_size`."""
    check_integer("batch_size", batch_size)
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


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The share of process `rank` of `world_size`: items[rank::world_size]. The shares are
    disjoint and together hold every item once; pass the items in one order on every process."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    return list(items[rank::world_size])


class Fuser:
    """A fusion set up once: the device resolved (under torchrun a CUDA device is cuda:LOCAL_RANK)
    and, when `prior` is given, the prior loaded up front (so a bad prior fails before any output is
    written). Call it on `ddfm_edu.data.ImagePair`s with a method of `METHODS`.

    prior: "embedded", "gaussian", a checkpoint path, or None (baselines only); config, half: for
    an ADM checkpoint (`load_prior`). The other settings are `fuse_batch`'s.
    """

    def __init__(
        self,
        prior: str | os.PathLike | None = "embedded",
        *,
        device: str | torch.device = "auto",
        config: str | os.PathLike | None = None,
        half: bool = False,
        steps: int = 100,
        sampler: str = "ddim",
        em_variant: str = EMConfig.variant,
        seed: int | None = RELEASE_SEED,
        em_iters: int = 50,
    ) -> None:
        self.settings = {"steps": steps, "sampler": sampler, "em_variant": em_variant, "seed": seed,
                         "em_iters": em_iters}  # fmt: skip
        self.device = resolve_device(device)
        _, local_rank, world_size = process_rank()
        if self.device.type == "cuda" and world_size > 1:
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK {local_rank} has no GPU: {torch.cuda.device_count()} CUDA device(s)"
                )
            self.device = torch.device("cuda", local_rank)
        if half and self.device.type != "cuda":
            raise ValueError(f"half precision needs a CUDA device, but this run is on {self.device}")
        self.prior = None
        if prior is not None:
            self.prior = load_prior(prior, device=self.device, half=half, config=config)

    def batch_key(self, size: tuple[int, int] | Path, method: str) -> tuple[int, int] | Path:
        """Pairs with equal keys can share a batch: their size, padded to the prior's stride for
        DDFM with an EM variant other than "released" (whose result, cropped, does not depend on
        the padding); the exact size otherwise."""
        if method == "ddfm" and self.settings["em_variant"] != "released" and isinstance(size, tuple):
            s = self.prior.stride
            return -(-size[0] // s) * s, -(-size[1] // s) * s
        return size

    def fuse_pairs(self, pairs: Sequence, method: str, progress: bool = False) -> list[torch.Tensor]:
        """The output images of pairs (`ImagePair`s) with one batch key, fused as one batch: a list
        of (1, C, H, W), each the fused luma with its pair's chroma, at its pair's size."""
        sizes = [tuple(pair.i.shape[-2:]) for pair in pairs]
        i = [pair.i for pair in pairs]
        v = [pair.v for pair in pairs]
        if len(set(sizes)) > 1:  # one padded size (`batch_key`): pad as `ddfm` would
            i = [pad_to_multiple(x, self.prior.stride)[0] for x in i]
            v = [pad_to_multiple(x, self.prior.stride)[0] for x in v]
        fused = fuse_batch(
            torch.cat(i).to(self.device), torch.cat(v).to(self.device), method, self.prior,
            progress=progress, **self.settings,
        )  # fmt: skip
        return [pair.merge(f[None, :, :h, :w]) for pair, f, (h, w) in zip(pairs, fused, sizes, strict=True)]

    def __call__(self, pair, method: str, progress: bool = False) -> torch.Tensor:
        """The output image of a pair (1, C, H, W): fused luma with the colour source's chroma."""
        return self.fuse_pairs([pair], method, progress)[0]

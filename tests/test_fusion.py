"""Fusion by method, batch planning, start noise and sharding (ddfm_edu.fusion)."""

from __future__ import annotations

import pytest
import torch

from ddfm_edu import fusion


def test_fuse_batch_dispatches_to_the_methods():
    i, v = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(fusion.fuse_batch(i, v, "average"), (i + v) / 2)
    torch.testing.assert_close(fusion.fuse_batch(i, v, "max"), torch.maximum(i, v))
    with pytest.raises(ValueError, match="prior"):
        fusion.fuse_batch(i, v, "ddfm")
    with pytest.raises(ValueError, match="method"):
        fusion.fuse_batch(i, v, "median")


def test_plan_batches_groups_equal_keys_in_order_and_caps_the_size():
    keys = ["x", "y", "x", "x", "z", "y", "x"]
    assert fusion.plan_batches(keys, 2) == [[0, 2], [3, 6], [1, 5], [4]]
    assert fusion.plan_batches(keys, 8) == [[0, 2, 3, 6], [1, 5], [4]]
    assert fusion.plan_batches([], 3) == []
    with pytest.raises(ValueError, match="batch_size"):
        fusion.plan_batches(keys, 0)


def test_shard_and_process_rank():
    items = list("abcdefg")
    for world in (1, 2, 3, 8):
        shares = [fusion.shard(items, rank, world) for rank in range(world)]
        assert sorted(x for share in shares for x in share) == items  # every item exactly once
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert fusion.shard(items, 1, 3) == ["b", "e"]
    with pytest.raises(ValueError, match="rank"):
        fusion.shard(items, 2, 2)
    assert fusion.process_rank({}) == (0, 0, 1)
    assert fusion.process_rank({"WORLD_SIZE": "1", "RANK": "0"}) == (0, 0, 1)
    assert fusion.process_rank({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == (3, 1, 4)
    for bad in ({"WORLD_SIZE": "two"}, {"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}):
        with pytest.raises(ValueError, match="RANK"):
            fusion.process_rank(bad)


def test_start_noise_is_each_images_own_draw():
    from ddfm_edu.priors import load_prior

    prior = load_prior("gaussian", device="cpu")
    prior.stride = 4  # an instance attribute: pads to multiples of 4
    noise = fusion.start_noise(prior, [(17, 22), (20, 24)], seed=5)
    alone = torch.randn((1, 1, 20, 24), generator=torch.Generator().manual_seed(5))
    assert noise.shape == (2, 1, 20, 24)
    torch.testing.assert_close(noise, alone.expand(2, -1, -1, -1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="padded size"):
        fusion.start_noise(prior, [(20, 24), (21, 24)], seed=5)

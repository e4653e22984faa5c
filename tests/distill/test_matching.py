import torch

from pointcept_distill.distill.matching import match_by_voxel, voxel_keys

import pytest


def random_stage(n=300, batch_size=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 40, (n, 4), generator=g), dim=0)
    coords[:, 0] %= batch_size
    coords = torch.unique(coords, dim=0)
    return coords[:, 1:], coords[:, 0]


def test_matching_aligns_differently_ordered_sets():
    grid, batch = random_stage()
    perm_s, perm_t = torch.randperm(len(grid)), torch.randperm(len(grid))
    key_s = voxel_keys(grid[perm_s], batch[perm_s])
    key_t = voxel_keys(grid[perm_t], batch[perm_t])
    idx_s, idx_t = match_by_voxel(key_s, key_t)
    assert torch.equal(perm_s[idx_s], perm_t[idx_t])  # same original point on both sides
    assert torch.equal(key_s[idx_s], key_t[idx_t])


def test_keys_unique_and_batch_major():
    grid, batch = random_stage()
    keys = voxel_keys(grid, batch)
    assert keys.unique().numel() == keys.numel()
    order = torch.argsort(keys)
    assert torch.all(batch[order][1:] >= batch[order][:-1])


def test_mismatched_sets_raise():
    grid, batch = random_stage()
    key = voxel_keys(grid, batch)
    other = key.clone()
    other[0] += 1 << 20
    with pytest.raises(ValueError, match="differ"):
        match_by_voxel(key, other)
    with pytest.raises(ValueError, match="points"):
        match_by_voxel(key, key[:-1])

"""Shared helpers for the model tests: the reference fixtures and a small random scene."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ptv3m1"  # see tests/fixtures/README.md


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES} (they are committed under tests/fixtures/)")
    return FIXTURES


def random_scene(counts: tuple[int, ...], extent: int = 40, in_channels: int = 4, seed: int = 0,
                 num_classes: int = 0) -> dict:
    """A batch of samples with unique voxels per sample, in Pointcept's collated input layout."""
    g = torch.Generator().manual_seed(seed)
    coords, feats, segs = [], [], []
    for n in counts:
        flat = torch.randperm(extent ** 3, generator=g)[:n]
        grid = torch.stack([flat // extent ** 2, (flat // extent) % extent, flat % extent], dim=1)
        coords.append(grid)
        feats.append(torch.randn(n, in_channels, generator=g))
        segs.append(torch.randint(0, max(num_classes, 1), (n,), generator=g))
    grid_coord = torch.cat(coords)
    data = dict(grid_coord=grid_coord, coord=grid_coord.float() * 0.1 + 0.05, feat=torch.cat(feats),
                offset=torch.tensor(counts).cumsum(0))
    if num_classes:
        data["segment"] = torch.cat(segs)
    return data


def tiny_ptv3_config(**overrides) -> dict:
    """A 3-stage PT-v3m1 small enough for CPU unit tests."""
    cfg = dict(type="PT-v3m1", in_channels=4, order=("z", "z-trans", "hilbert", "hilbert-trans"),
               stride=(2, 2), enc_depths=(1, 1, 2), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2),
               enc_patch_size=(16, 16, 16), dec_depths=(1, 1), dec_channels=(8, 16), dec_num_head=(1, 2),
               dec_patch_size=(16, 16), drop_path=0.1)
    cfg.update(overrides)
    return cfg


@pytest.fixture
def make_scene():
    return random_scene


@pytest.fixture
def tiny_config():
    return tiny_ptv3_config

"""Morton (z-order) codes of 3-D voxel coordinates: x in bit 3i+2, y in 3i+1, z in 3i."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["spread_bits", "z_order_encode"]

# Classic "part 1 by 2" masks: each step spreads the low 21 bits so that two zero bits follow each one.
_SPREAD_STEPS = (
    (32, 0x1F00000000FFFF),
    (16, 0x1F0000FF0000FF),
    (8, 0x100F00F00F00F00F),
    (4, 0x10C30C30C30C30C3),
    (2, 0x1249249249249249),
)


def spread_bits(v: Tensor) -> Tensor:
    """Insert two zero bits above each of the low 21 bits of ``v`` (int64): bit i moves to bit 3i."""
    v = v & 0x1FFFFF
    for shift, mask in _SPREAD_STEPS:
        v = (v | (v << shift)) & mask
    return v


def z_order_encode(grid_coord: Tensor, depth: int) -> Tensor:
    """Z-order code (without batch bits) of (N, 3) non-negative integer coordinates kept to ``depth`` bits."""
    g = grid_coord.long() & (2 ** depth - 1)        # 2 ** (not 1 <<): torch.compile may trace depth symbolically
    return (spread_bits(g[:, 0]) << 2) | (spread_bits(g[:, 1]) << 1) | spread_bits(g[:, 2])

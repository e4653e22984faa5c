"""Hilbert codes of 3-D voxel coordinates (Skilling's transpose, then a Gray decode of the interleaved bits)."""
from __future__ import annotations

import torch
from torch import Tensor

from .z_order import z_order_encode

__all__ = ["hilbert_encode"]


def _gray_decode(s: Tensor) -> Tensor:
    """Prefix XOR from the most significant bit down: bit t of the result is the XOR of bits >= t of ``s``."""
    for shift in (1, 2, 4, 8, 16, 32):
        s = s ^ (s >> shift)
    return s


def hilbert_encode(grid_coord: Tensor, depth: int) -> Tensor:
    """Hilbert code (without batch bits) of (N, 3) non-negative integer coordinates at ``depth`` bits.

    Follows ptv3-parity-notes F6: for each bit level from the top and each axis d in (0, 1, 2), the bit of
    axis d at that level either flips all lower bits of axis 0 (bit set) or swaps the lower bits of axes 0
    and d (bit clear). The transposed bits are interleaved with axis 0 highest and Gray-decoded as one string.
    The loops run over bit levels (at most 16), never over points.
    """
    g = grid_coord.long() & ((1 << depth) - 1)
    x = [g[:, 0], g[:, 1], g[:, 2]]
    for level in range(depth - 1, 0, -1):
        q = 1 << level
        lower = q - 1
        for d in range(3):
            bit_set = (x[d] & q) != 0
            t = (x[0] ^ x[d]) & lower
            flipped = x[0] ^ lower
            swapped0 = x[0] ^ t
            if d > 0:
                x[d] = x[d].where(bit_set, x[d] ^ t)
            x[0] = flipped.where(bit_set, swapped0)
    interleaved = z_order_encode(torch.stack(x, dim=1), depth)
    return _gray_decode(interleaved)


"""Serialization codes of Pointcept: a space-filling-curve code per voxel with the batch index in the high bits."""
from __future__ import annotations

import torch
from torch import Tensor

from .hilbert import hilbert_encode
from .z_order import z_order_encode

__all__ = ["ORDERS", "encode"]

ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")
_YXZ = [1, 0, 2]


def encode(grid_coord: Tensor, batch: Tensor | None = None, depth: int = 16, order: str = "z") -> Tensor:
    """Code of each voxel for one order: ``batch << 3*depth | curve(grid_coord)`` (int64, shape (N,)).

    Args:
        grid_coord: (N, 3) non-negative integer voxel coordinates; only their low ``depth`` bits are used.
        batch: (N,) sample index of each voxel, or None for a single sample.
        depth: bits per axis (1..16), as ``Point.serialized_depth``.
        order: one of "z", "z-trans", "hilbert", "hilbert-trans" ("-trans" swaps x and y).
    """
    if not 0 <= depth <= 16:
        raise ValueError(f"serialization.encode: depth must be in [0, 16], got {depth}")
    if order == "z":
        code = z_order_encode(grid_coord, depth)
    elif order == "z-trans":
        code = z_order_encode(grid_coord[:, _YXZ], depth)
    elif order == "hilbert":
        code = hilbert_encode(grid_coord, depth)
    elif order == "hilbert-trans":
        code = hilbert_encode(grid_coord[:, _YXZ], depth)
    else:
        raise ValueError(f"serialization.encode: unknown order {order!r}; expected one of {ORDERS}")
    if batch is not None:
        code = (batch.long() << (3 * depth)) | code
    return code

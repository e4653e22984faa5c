"""Serialization codes of Pointcept: a space-filling-curve code per voxel with the batch index in the high bits."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .hilbert import hilbert_encode
from .z_order import z_order_encode

__all__ = ["ORDERS", "encode", "encode_orders"]

ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")
_CURVES = {"z": (z_order_encode, False), "z-trans": (z_order_encode, True),
           "hilbert": (hilbert_encode, False), "hilbert-trans": (hilbert_encode, True)}


def _swap_xy(grid_coord: Tensor) -> Tensor:
    # stacking columns rather than indexing with a list: a list index is copied to the device (a host sync)
    return torch.stack((grid_coord[:, 1], grid_coord[:, 0], grid_coord[:, 2]), dim=1)


def _check(order: str, depth: int) -> None:
    if order not in _CURVES:
        raise ValueError(f"serialization.encode: unknown order {order!r}; expected one of {ORDERS}")
    if not 0 <= depth <= 16:
        raise ValueError(f"serialization.encode: depth must be in [0, 16], got {depth}")


def encode(grid_coord: Tensor, batch: Tensor | None = None, depth: int = 16, order: str = "z") -> Tensor:
    """Code of each voxel for one order: ``batch << 3*depth | curve(grid_coord)`` (int64, shape (N,)).

    Args:
        grid_coord: (N, 3) non-negative integer voxel coordinates; only their low ``depth`` bits are used.
        batch: (N,) sample index of each voxel, or None for a single sample.
        depth: bits per axis (0..16), as ``Point.serialized_depth``.
        order: one of "z", "z-trans", "hilbert", "hilbert-trans" ("-trans" swaps x and y).
    """
    return encode_orders(grid_coord, batch, depth, [order])[0]


def encode_orders(grid_coord: Tensor, batch: Tensor | None, depth: int, orders: Sequence[str]) -> Tensor:
    """(k, N) codes for several orders; orders of the same curve are encoded in one batched pass."""
    for order in orders:
        _check(order, depth)
    n = grid_coord.shape[0]
    codes: dict[str, Tensor] = {}
    for curve in (z_order_encode, hilbert_encode):
        names = [o for o in orders if _CURVES[o][0] is curve and o not in codes]
        names = list(dict.fromkeys(names))
        if names:
            coords = torch.cat([_swap_xy(grid_coord) if _CURVES[o][1] else grid_coord for o in names])
            for name, code in zip(names, curve(coords, depth).split(n)):
                codes[name] = code
    out = torch.stack([codes[o] for o in orders]) if orders else grid_coord.new_empty(0, n, dtype=torch.long)
    if batch is not None:
        out = (batch.long() << (3 * depth)) | out
    return out

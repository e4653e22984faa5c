"""``Point``: the dict that carries a batch of point clouds, and its serialization and sparse views, through PTv3."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .serialization import encode_orders
from .sparse import SparseConvTensor

__all__ = ["Point", "batch_to_offset", "offset_to_batch", "serialization_depth", "shuffle_rows"]


def serialization_depth(grid_coord: Tensor) -> int:
    """Pointcept's serialization depth, ``bit_length(max grid_coord + 1)`` (a host read of the coordinates)."""
    return int(grid_coord.max() + 1).bit_length()


def offset_to_batch(offset: Tensor, num_points: int | None = None) -> Tensor:
    """(N,) sample index of each point from cumulative ``offset`` (B,); pass ``num_points`` to avoid a host sync."""
    n = int(offset[-1]) if num_points is None else num_points
    return torch.searchsorted(offset, torch.arange(n, device=offset.device), right=True)


def shuffle_rows(*rows: Tensor, permutation: Tensor | None = None) -> tuple[Tensor, ...]:
    """Each (k, N) tensor with its rows permuted by one ``torch.randperm`` (CPU generator, as upstream); the rows
    are picked by Python index, so CUDA tensors need no host-to-device copy of the permutation (a sync).

    A given ``permutation`` (k,) on the rows' device (drawn beforehand, ``order_permutations``) is applied by a
    gather instead: a captured graph then reads a new permutation from its input at every replay."""
    if permutation is not None:
        return tuple(t.index_select(0, permutation) for t in rows)
    perm = torch.randperm(rows[0].shape[0]).tolist()
    return tuple(torch.stack([t[i] for i in perm]) for t in rows)


def batch_to_offset(batch: Tensor, batch_size: int) -> Tensor:
    """(B,) cumulative counts from a sorted (N,) ``batch`` of ``batch_size`` samples, without a host sync."""
    return torch.searchsorted(batch, torch.arange(batch_size, device=batch.device), right=True)


class Point(dict):
    """A batch of point clouds as a dict with attribute access (``point.feat`` is ``point["feat"]``).

    Input keys (Pointcept's): ``coord`` (N, 3) float, ``grid_coord`` (N, 3) int voxel coordinates, ``feat``
    (N, C), ``offset`` (B,) cumulative counts and/or ``batch`` (N,) sample index (the missing one is derived;
    points of a sample are contiguous), ``grid_size`` (only needed without ``grid_coord``).

    Optional input key: ``plan`` (``plan.BatchPlan``, the batch's host-side plan); the backbone then sets
    ``level`` (0) and each pooling passes both on with the level counted up.

    Keys set by ``serialization``: ``order`` (list of order names), ``serialized_depth`` (int),
    ``serialized_code`` / ``serialized_order`` / ``serialized_inverse`` (k, N) long, one row per order.
    Key set by ``sparsify``: ``sparse_conv_feat`` (``SparseConvTensor``; its ``indice_dict`` caches the kernel
    maps of the stage under their ``indice_key``: "stem", "stage0", ...).
    Keys set by PT-v3m1: ``attn_windows`` (the stage's attention window partition, ``WindowPartition``),
    ``pooling_parent`` / ``pooling_inverse`` on a pooled stage (removed again by unpooling; a traceable
    unpooling leaves ``unpooling_parent``), and on the backbone's output ``bottleneck`` (the deepest encoder
    stage's Point, see ``PointTransformerV3``).

    A missing attribute raises ``AttributeError`` (upstream's addict returns an empty dict instead); use
    ``"key" in point`` to test for a key.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "batch" not in self and "offset" in self:
            n = self["coord"].shape[0] if "coord" in self else self["feat"].shape[0]
            self["batch"] = offset_to_batch(self["offset"], n)
        elif "offset" not in self and "batch" in self:
            # The number of samples is data-dependent here (one host sync); pass ``offset`` to avoid it.
            self["offset"] = batch_to_offset(self["batch"], int(self["batch"][-1]) + 1)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"Point has no key {key!r} (keys: {sorted(self)})") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(f"Point has no key {key!r}") from None

    @property
    def batch_size(self) -> int:
        """Number of samples B (from the shape of ``offset``: no host sync)."""
        return int(self["offset"].shape[0])

    def _ensure_grid_coord(self) -> None:
        if "grid_coord" in self:
            return
        if "grid_size" not in self or "coord" not in self:
            raise KeyError("Point: 'grid_coord' is missing and cannot be computed without 'coord' and 'grid_size'")
        self["grid_coord"] = torch.div(self["coord"] - self["coord"].min(0)[0], self["grid_size"],
                                       rounding_mode="trunc").int()

    def serialization(self, order: str | Sequence[str] = "z", depth: int | None = None,
                      shuffle_orders: bool = False, permutation: Tensor | None = None) -> None:
        """Encode every point along each space-filling curve in ``order`` and sort by the codes.

        ``depth`` defaults to ``bit_length(max grid_coord + 1)`` over the whole batch (Pointcept's rule,
        ``serialization_depth``; on CUDA a host sync, which a depth computed beforehand avoids). Sorting is
        stable; inputs are expected to hold one point per voxel and sample (GridSample), otherwise upstream
        itself has no defined order. ``shuffle_orders`` permutes the rows (``torch.randperm`` on the CPU
        generator), as upstream does in training, or by a ``permutation`` (k,) drawn beforehand (``shuffle_rows``).
        """
        self._ensure_grid_coord()
        orders = [order] if isinstance(order, str) else list(order)
        if depth is None:
            depth = serialization_depth(self["grid_coord"])
        if depth > 16:
            raise ValueError(f"Point.serialization: depth {depth} > 16; grid_coord must be below 65536")
        if max(self.batch_size - 1, 1) >= 2 ** (63 - 3 * depth):      # batch bits above 3 * depth must fit
            raise ValueError(f"Point.serialization: {self.batch_size} samples at depth {depth} overflow int64 codes")
        code = encode_orders(self["grid_coord"], self["batch"], depth, orders)                        # (k, N)
        if shuffle_orders:
            code, = shuffle_rows(code, permutation=permutation)
        self["order"] = orders
        self["serialized_depth"] = depth
        self.set_serialized_code(code)

    def set_serialized_code(self, code: Tensor, sorted_order: Tensor | None = None) -> None:
        """Store (k, N) codes with their stable ``argsort`` (``serialized_order``; computed unless given, as
        pooling derives it from the parent's) and its inverse."""
        if sorted_order is None:
            sorted_order = torch.argsort(code, dim=1, stable=True)
        inverse = torch.empty_like(sorted_order)
        inverse.scatter_(1, sorted_order, torch.arange(code.shape[1], device=code.device).expand_as(code))
        self["serialized_code"] = code
        self["serialized_order"] = sorted_order
        self["serialized_inverse"] = inverse

    def sparsify(self, pad: int = 96) -> None:
        """Attach ``sparse_conv_feat``: ``feat`` on the voxels ``(batch, grid_coord)`` with a fresh kernel-map cache.

        After ``serialization`` the grid extent spconv needs is bounded by ``2**serialized_depth + pad``
        without reading the coordinates (upstream uses ``max + pad``; any bound gives the same results).
        """
        self._ensure_grid_coord()
        indices = torch.cat([self["batch"].unsqueeze(-1).int(), self["grid_coord"].int()], dim=1)
        shape = [2 ** self["serialized_depth"] + pad] * 3 if "serialized_depth" in self else None
        self["sparse_conv_feat"] = SparseConvTensor(self["feat"], indices, self.batch_size, shape_pad=pad,
                                                    spatial_shape=shape)

"""Serialized pooling and unpooling of PT-v3m1: merge 2^d-cubes of voxels along the codes, and undo it."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..modules import PointModule, PointSequential
from ..point import Point, batch_to_offset, shuffle_rows

__all__ = ["SerializedPooling", "SerializedUnpooling", "clusters", "fixed_capacity_clusters"]


class SerializedPooling(PointModule):
    """Pool each (stride)^3 cell of voxels into one: max of ``proj(feat)``, mean coord, then norm and act.

    Clusters are the distinct values of the codes shifted by ``3 * log2(stride)`` bits, numbered by the first
    order's shifted code (ptv3-parity-notes F31, F34). The pooled Point keeps ``pooling_parent`` and
    ``pooling_inverse`` (cluster of each parent point) for unpooling. ``torch.unique`` makes one host sync
    (the number of clusters is data-dependent). Orders are reshuffled only in training when
    ``shuffle_orders`` (upstream reshuffles in eval too).

    Args:
        in_channels, out_channels: widths before and after ``proj``.
        stride: 2, 4 or 8.
        norm_layer, act_layer: factories for the norm (BatchNorm1d) and activation (GELU), or None.
        reduce: "max" (the backbone's), "mean", "min" or "sum".
        shuffle_orders: permute the serialization orders of the pooled stage in training.
        traceable: keep ``pooling_parent`` / ``pooling_inverse`` (needed by unpooling).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2,
                 norm_layer: Callable[[int], nn.Module] | None = None,
                 act_layer: Callable[[], nn.Module] | None = None, reduce: str = "max",
                 shuffle_orders: bool = True, traceable: bool = True) -> None:
        super().__init__()
        self.pooling_depth = (int(stride) - 1).bit_length()
        if stride != 2 ** self.pooling_depth or stride < 2 or stride > 8:
            raise ValueError(f"SerializedPooling: stride must be 2, 4 or 8, got {stride}")
        if reduce not in ("max", "mean", "min", "sum"):
            raise ValueError(f"SerializedPooling: reduce must be max, mean, min or sum, got {reduce!r}")
        self.in_channels, self.out_channels, self.stride, self.reduce = in_channels, out_channels, stride, reduce
        self.shuffle_orders, self.traceable = shuffle_orders, traceable
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = PointSequential(norm_layer(out_channels)) if norm_layer is not None else None
        self.act = PointSequential(act_layer()) if act_layer is not None else None

    def forward(self, point: Point) -> Point:
        pd = self.pooling_depth if self.pooling_depth <= point.serialized_depth else 0
        code = point.serialized_code >> (3 * pd)                                   # (k, N)
        capacities = point.get("fixed_capacity")
        if capacities is None:
            cluster, counts, head = clusters(code[0])
        else:
            capacities = capacities[1:] or (code.shape[1],)      # this stage's rows first
            cluster, counts, head = fixed_capacity_clusters(code[0], capacities[0])
            counts = counts.clamp(min=1)                        # spare (empty) clusters: coordinate 0
        num_clusters = counts.shape[0]
        feat = self.proj(point.feat)
        index = cluster.unsqueeze(1).expand_as(feat)
        reduce = {"max": "amax", "min": "amin", "mean": "mean", "sum": "sum"}[self.reduce]
        pooled = feat.new_zeros(num_clusters, feat.shape[1]).scatter_reduce(
            0, index, feat, reduce, include_self=False)
        coord = point.coord.new_zeros(num_clusters, 3).index_add_(0, cluster, point.coord)
        coord = coord / counts.unsqueeze(1).to(coord.dtype)
        batch = point.batch[head]
        pooled_point = Point(
            feat=pooled, coord=coord, grid_coord=point.grid_coord[head] >> pd, batch=batch,
            offset=batch_to_offset(batch, point.batch_size), order=point.order,
            serialized_depth=point.serialized_depth - pd)
        if capacities is not None:
            pooled_point.fixed_capacity = capacities
        code = code[:, head]
        if self.shuffle_orders and self.training:
            code = shuffle_rows(code)
        pooled_point.set_serialized_code(code)
        if self.traceable:
            pooled_point.pooling_inverse = cluster
            pooled_point.pooling_parent = point
        if self.norm is not None:
            pooled_point = self.norm(pooled_point)
        if self.act is not None:
            pooled_point = self.act(pooled_point)
        pooled_point.sparsify()
        return pooled_point


def clusters(code: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Points with equal ``code`` (N,) as clusters numbered in code order: (cluster of each point (N,),
    size of each cluster (M,), first point of each cluster (M,)). M is data-dependent: one host sync."""
    _, cluster, counts = torch.unique(code, sorted=True, return_inverse=True, return_counts=True)
    head = torch.sort(cluster, stable=True)[1][torch.cumsum(counts, 0) - counts]
    return cluster, counts, head


def fixed_capacity_clusters(code: Tensor, capacity: int) -> tuple[Tensor, Tensor, Tensor]:
    """``clusters`` with ``capacity`` output rows instead of M, without a host sync (``fixed_capacity`` Points).

    Rows M..capacity-1 are empty clusters (size 0) whose first point is the last point, N-1: on a
    fixed-capacity Point that is always a point of the padding sample, so the empty clusters join the padding
    sample. M must not exceed ``capacity`` (a device-side assertion; ``capacity.stage_capacities`` plans it).
    """
    n = code.shape[0]
    sorted_code, perm = torch.sort(code, stable=True)
    starts = torch.ones_like(sorted_code, dtype=torch.bool)
    starts[1:] = sorted_code[1:] != sorted_code[:-1]                            # (N,) first of its cluster
    rank = torch.cumsum(starts, 0) - 1                                         # cluster of each sorted point
    torch._assert_async(rank[-1] < capacity, "fixed_capacity_clusters: more clusters than the stage's capacity")
    cluster = torch.empty_like(perm).scatter_(0, perm, rank)
    counts = perm.new_zeros(capacity).index_add_(0, rank, torch.ones_like(perm))
    head_slot = torch.where(starts, rank, torch.full_like(rank, capacity))     # non-first points -> spare slot
    head = perm.new_full((capacity + 1,), n - 1).scatter_(0, head_slot, perm)[:capacity]
    return cluster, counts, head


class SerializedUnpooling(PointModule):
    """Return to the parent stage: ``parent.feat = proj_skip(parent.feat) + proj(feat)[pooling_inverse]``.

    The parent's ``sparse_conv_feat`` is left holding ``proj_skip``'s output (not the sum), as upstream.

    Args:
        in_channels: width of the pooled stage's features.
        skip_channels: width of the parent's (encoder) features.
        out_channels: width of the result.
        norm_layer, act_layer: factories for the norm (BatchNorm1d) and activation (GELU), or None.
        traceable: keep the pooled Point as the parent's ``unpooling_parent``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 norm_layer: Callable[[int], nn.Module] | None = None,
                 act_layer: Callable[[], nn.Module] | None = None, traceable: bool = False) -> None:
        super().__init__()
        self.proj = PointSequential(*_linear_norm_act(in_channels, out_channels, norm_layer, act_layer))
        self.proj_skip = PointSequential(*_linear_norm_act(skip_channels, out_channels, norm_layer, act_layer))
        self.traceable = traceable

    def forward(self, point: Point) -> Point:
        if "pooling_parent" not in point or "pooling_inverse" not in point:
            raise KeyError("SerializedUnpooling: the Point has no pooling_parent/pooling_inverse "
                           "(was it produced by a traceable SerializedPooling?)")
        parent = point.pop("pooling_parent")
        inverse = point.pop("pooling_inverse")
        point = self.proj(point)
        parent = self.proj_skip(parent)
        parent.feat = parent.feat + point.feat[inverse]
        if self.traceable:
            parent.unpooling_parent = point
        return parent


def _linear_norm_act(c_in: int, c_out: int, norm_layer: Callable[[int], nn.Module] | None,
                     act_layer: Callable[[], nn.Module] | None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(c_in, c_out)]
    if norm_layer is not None:
        layers.append(norm_layer(c_out))
    if act_layer is not None:
        layers.append(act_layer())
    return layers

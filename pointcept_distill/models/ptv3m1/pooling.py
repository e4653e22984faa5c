"""Serialized pooling and unpooling of PT-v3m1: merge 2^d-cubes of voxels along the codes, and undo it."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..modules import PointModule, PointSequential
from ..point import Point, batch_to_offset, shuffle_rows

__all__ = ["SerializedPooling", "SerializedUnpooling", "cluster_starts", "clusters", "merged_levels", "pooled_order"]


class SerializedPooling(PointModule):
    """Pool each (stride)^3 cell of voxels into one: max of ``proj(feat)``, mean coord, then norm and act.

    Clusters are the distinct values of the codes shifted by ``3 * log2(stride)`` bits, numbered by the first
    order's shifted code, as upstream's. The parent's serialized orders already sort the shifted
    codes, so neither the clusters nor the pooled orders need a sort (upstream sorts five times per pooling).
    The pooled Point keeps ``pooling_parent`` and ``pooling_inverse`` (cluster of each parent point) for
    unpooling. Counting the clusters makes one host sync unless the Point carries a ``plan`` (``plan.BatchPlan``)
    and its ``level``: the pooled stage then has the plan's number of rows. Orders are reshuffled only in
    training when ``shuffle_orders`` (upstream reshuffles in eval too).

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
        if stride not in (2, 4, 8):
            raise ValueError(f"SerializedPooling: stride must be 2, 4 or 8, got {stride}")
        if reduce not in ("max", "mean", "min", "sum"):
            raise ValueError(f"SerializedPooling: reduce must be max, mean, min or sum, got {reduce!r}")
        self.in_channels, self.out_channels, self.stride, self.reduce = in_channels, out_channels, stride, reduce
        self.shuffle_orders, self.traceable = shuffle_orders, traceable
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = PointSequential(norm_layer(out_channels)) if norm_layer is not None else None
        self.act = PointSequential(act_layer()) if act_layer is not None else None

    def forward(self, point: Point) -> Point:
        pd = merged_levels(self.stride, point.serialized_depth)
        code = point.serialized_code >> (3 * pd)                                   # (k, N)
        order = point.serialized_order                                             # (k, N)
        plan = point.get("plan")
        rows = plan.sizes[point.level + 1] if plan is not None else None
        cluster, counts, head = clusters(code[0], order[0], rows)
        counts = counts.clamp(min=1)                            # spare (empty) clusters: coordinate 0
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
        if plan is not None:
            pooled_point.update(plan=plan, level=point.level + 1)
        permutations = point.get("order_permutations")                            # (stages, k) or None
        if permutations is not None:
            pooled_point.order_permutations = permutations
        code, order = code[:, head], pooled_order(order, cluster, num_clusters)
        if self.shuffle_orders and self.training:
            permutation = permutations[point.level + 1] if permutations is not None else None
            code, order = shuffle_rows(code, order, permutation=permutation)
        pooled_point.set_serialized_code(code, order)
        if self.traceable:
            pooled_point.pooling_inverse = cluster
            pooled_point.pooling_parent = point
        if self.norm is not None:
            pooled_point = self.norm(pooled_point)
        if self.act is not None:
            pooled_point = self.act(pooled_point)
        pooled_point.sparsify()
        return pooled_point


def merged_levels(stride: int, depth: int) -> int:
    """Serialization levels a pooling of ``stride`` merges at serialization ``depth``: log2(stride), or none when
    the codes are shallower than that (upstream's rule: the stage is then not pooled)."""
    levels = (int(stride) - 1).bit_length()
    return levels if levels <= depth else 0


def cluster_starts(sorted_code: Tensor) -> Tensor:
    """(N,) bool: whether each point of the sorted ``sorted_code`` (N,) starts a cluster (a new code). Its sum is
    the number of clusters: pooling numbers its clusters with it, ``plan.plan_batch`` counts them with it."""
    starts = torch.ones_like(sorted_code, dtype=torch.bool)
    starts[1:] = sorted_code[1:] != sorted_code[:-1]
    return starts


def clusters(code: Tensor, order: Tensor, capacity: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Points with equal ``code`` (N,) as clusters numbered in code order, from ``order`` (N,), an argsort of
    ``code``: (cluster of each point (N,), size of each cluster (M,), first point of each cluster in ``order``
    (M,)). M is the number of clusters, read from the device (a host sync), unless ``capacity`` is given.

    With ``capacity`` (fixed-capacity Points) there are ``capacity`` clusters without a host sync: rows from the
    real count up are empty (size 0) and their first point is the last point, N-1, which on a fixed-capacity
    Point is always a point of the padding sample, so the empty clusters join the padding sample. The real
    count must not exceed ``capacity`` (a device-side assertion; ``plan.BatchPlan`` plans it).
    """
    n = code.shape[0]
    starts = cluster_starts(code[order])                                       # (N,) first of its cluster
    rank = torch.cumsum(starts, 0) - 1                                         # cluster of each sorted point
    if capacity is None:
        capacity = int(rank[-1]) + 1 if n else 0
    else:
        torch._assert_async(rank[-1] < capacity, "clusters: more clusters than the stage's capacity")
    cluster = torch.empty_like(order).scatter_(0, order, rank)
    counts = order.new_zeros(capacity).index_add_(0, rank, torch.ones_like(order))
    head_slot = torch.where(starts, rank, torch.full_like(rank, capacity))     # non-first points -> spare slot
    head = order.new_full((capacity + 1,), n - 1).scatter_(0, head_slot, order)[:capacity]
    return cluster, counts, head


def pooled_order(order: Tensor, cluster: Tensor, num_clusters: int) -> Tensor:
    """The pooled points' (k, M) serialized order, from the parent's (k, N) ``order`` and the ``cluster`` (N,) of
    each parent point, without a sort.

    A cluster is one cell of the coarser grid, and every space-filling curve visits a cell's voxels one after
    another, so a cluster's points are adjacent in each of the parent's orders: the pooled order is the
    sequence of clusters along the parent's. Clusters without points (a fixed capacity's spare rows, which
    share the padding sample's code, the largest) come last in index order, as a stable sort puts them.
    """
    seq = cluster[order]                                                       # (k, N) cluster at each slot
    first = torch.ones_like(seq, dtype=torch.bool)
    first[:, 1:] = seq[:, 1:] != seq[:, :-1]
    slot = torch.where(first, torch.cumsum(first, 1) - 1, num_clusters)       # others -> a discarded column
    pooled = torch.arange(num_clusters + 1, device=order.device).expand(order.shape[0], -1).clone()
    return pooled.scatter_(1, slot, seq)[:, :num_clusters]


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
        # index_select, not feat[inverse]: its backward adds the rows up with index_add_ (atomics on CUDA, sorted
        # under deterministic algorithms) where indexing's backward sorts and then walks each index's duplicates
        # in turn, 5 ms per unpooling at 8 scans when a fixed capacity's padding rows all share one cluster
        parent.feat = parent.feat + point.feat.index_select(0, inverse)
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

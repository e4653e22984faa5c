"""``BatchPlan``: the shapes of a batch through a PT-v3m1 backbone, planned on the host by ``plan_batch``.

A plan holds what a forward's shapes follow from: the serialization depth, the number of samples and the rows of
every stage (the input points, then the clusters of each pooling). A backbone given an input with a ``plan``
reads nothing back from the device: it serializes at the plan's depth and each pooling makes the plan's number of
clusters. A plan is made for the strides of one backbone, which rejects a plan made for other strides.

A batch padded to fixed capacities (``padded``, ``capacity.pad_to_capacity``) has a plan too: one more sample
(the padding sample) and each stage's capacity as its rows. Its shapes follow from that plan alone, so it is the
key of a captured forward's CUDA graph (a frozen dataclass: hashable).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .point import offset_to_batch, serialization_depth
from .ptv3m1.pooling import cluster_starts, merged_levels
from .serialization import encode

__all__ = ["BatchPlan", "capacity_for", "plan_batch"]


@dataclass(frozen=True)
class BatchPlan:
    """The host-side plan of a batch for a backbone with ``strides``.

    Args:
        strides: the pooling strides the plan was made for (``backbone.strides``).
        depth: the serialization depth of the input (``point.serialization_depth``).
        samples: samples B of the batch (a padded batch's padding sample included).
        sizes: rows of every stage, ``len(strides) + 1`` of them: the input points, then the clusters of each
            pooling (a padded batch: each stage's capacity).
        padding_sample: whether the last sample is a padding sample (a padded batch's plan, ``padded``): its rows
            are left out of training statistics (``masked_norm.valid_rows``).
    """

    strides: tuple[int, ...]
    depth: int
    samples: int
    sizes: tuple[int, ...]
    padding_sample: bool = False

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.strides) + 1:
            raise ValueError(f"BatchPlan: {len(self.sizes)} stage sizes for {len(self.strides)} strides "
                             f"(one per stage: len(strides) + 1)")

    def padded(self, capacities: Sequence[int]) -> BatchPlan:
        """The plan of this batch padded to ``capacities`` (one per stage) with one padding sample.

        Each capacity must exceed its stage's size: the padding sample keeps at least one row of every stage.
        """
        capacities = tuple(int(c) for c in capacities)
        if len(capacities) != len(self.sizes):
            raise ValueError(f"BatchPlan.padded: {len(capacities)} capacities for {len(self.sizes)} stages")
        for stage, (capacity, size) in enumerate(zip(capacities, self.sizes)):
            if capacity <= size:
                raise ValueError(f"BatchPlan.padded: capacity {capacity} must exceed the {size} points of stage "
                                 f"{stage} (one padding row at least)")
        if self.padding_sample:
            raise ValueError("BatchPlan.padded: the plan is padded already")
        return BatchPlan(self.strides, self.depth, self.samples + 1, capacities, padding_sample=True)

    def bucketed(self, steps_per_octave: int = 8) -> BatchPlan:
        """``padded`` to each stage's ``capacity_for`` bucket: few distinct plans serve a stream of batches."""
        return self.padded([capacity_for(n, steps_per_octave) for n in self.sizes])


def capacity_for(num_points: int, steps_per_octave: int = 8) -> int:
    """The smallest ``m * 2**e`` with ``steps_per_octave <= m < 2 * steps_per_octave`` above ``num_points``.

    At least one padding row, at most ``1 / steps_per_octave`` of padding (12.5 % by default), and few distinct
    capacities (``steps_per_octave`` per doubling), so few captured graphs serve a stream of scans.
    """
    if num_points < 0 or steps_per_octave < 1:
        raise ValueError(f"capacity_for: need num_points >= 0 and steps_per_octave >= 1, got {num_points}, "
                         f"{steps_per_octave}")
    step = 1
    while step * 2 * steps_per_octave <= num_points + 1:
        step *= 2
    return -(-(num_points + 1) // step) * step


def plan_batch(batch: Mapping, strides: Sequence[int], depth: int | None = None) -> BatchPlan:
    """The plan of a batch (``grid_coord`` (N, 3), ``offset`` (B,)) for a backbone with ``strides``.

    The clusters of a pooling are the distinct (sample, voxel >> shift) cubes, i.e. the distinct z-order codes
    shifted by 3 bits per merged level: one sort of the codes serves every stage, and each count is the pooling's
    own (``pooling.merged_levels``, ``pooling.cluster_starts``). Meant for CPU batches (a data loader's workers);
    CUDA tensors are read back (a sync).

    Args:
        batch: the collated batch.
        strides: the backbone's pooling strides (``backbone.strides``).
        depth: the serialization depth (default: the batch's, ``serialization_depth``).
    """
    grid_coord, offset = batch["grid_coord"].cpu(), batch["offset"].cpu()
    depth = serialization_depth(grid_coord) if depth is None else int(depth)
    strides = tuple(int(s) for s in strides)
    code = torch.sort(encode(grid_coord, offset_to_batch(offset, grid_coord.shape[0]), depth, "z"))[0]   # (N,)
    sizes, stage_depth = [int(code.shape[0])], depth
    for stride in strides:
        levels = merged_levels(stride, stage_depth)
        stage_depth -= levels
        code = code >> (3 * levels)
        sizes.append(int(cluster_starts(code).sum()))
    return BatchPlan(strides, depth, int(offset.shape[0]), tuple(sizes))

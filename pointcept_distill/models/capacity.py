"""Fixed-capacity batches: static shapes for every stage of PT-v3m1, so a forward can be captured and replayed.

A batch of N points in B samples is padded to ``capacity`` rows with one extra *padding sample* (index B) of
``capacity - N`` points at the origin. Samples never meet in PT-v3m1 (convolutions look up neighbours within a
sample, attention windows and pooling clusters stay inside a sample), so the real points' outputs are those of
the unpadded batch. With ``fixed_capacity`` set, every pooled stage has a fixed number of rows (its spare
rows join the padding sample, see ``pooling.clusters``): one capacity per stage, planned on
the host from the batch's own stage sizes (``stage_sizes``, ``stage_capacities``), or the input's capacity
for every stage. With ``serialized_depth`` given, the forward reads nothing back from the device: its shapes
follow from (capacities, B, depth) alone.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from .point import offset_to_batch, serialization_depth
from .serialization import encode

__all__ = ["PADDED_KEYS", "PLAN_KEYS", "capacity_for", "pad_to_capacity", "plan_batch", "stage_capacities",
           "stage_sizes"]

# per-point model inputs that are padded; everything else in the input is dropped
PADDED_KEYS = ("coord", "grid_coord", "feat")
# a batch's host-side plan (``plan_batch``)
PLAN_KEYS = ("serialized_depth", "stage_sizes", "stage_strides")


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


def stage_sizes(grid_coord: Tensor, offset: Tensor, strides: Sequence[int], depth: int | None = None) -> list[int]:
    """Voxels of every stage of a batch: N, then the clusters of each pooling with ``strides`` (host values).

    The clusters of a pooling are the distinct (sample, voxel >> shift) cubes, i.e. the distinct z-order codes
    shifted by 3 bits per level: one sort of the codes serves every stage. Meant for CPU tensors (a data
    pipeline's batch); CUDA tensors are read back (a sync).
    """
    grid_coord, offset = grid_coord.cpu(), offset.cpu()
    depth = depth if depth is not None else serialization_depth(grid_coord)
    code = torch.sort(encode(grid_coord, offset_to_batch(offset, grid_coord.shape[0]), depth, "z"))[0]
    sizes = [int(code.shape[0])]
    for stride in strides:
        levels = (int(stride) - 1).bit_length()
        if levels > depth:                               # SerializedPooling's rule: too shallow, no merging
            levels = 0
        depth -= levels
        code = code >> (3 * levels)
        sizes.append(int((code[1:] != code[:-1]).sum()) + 1 if code.numel() else 0)
    return sizes


def plan_batch(batch: dict, strides: Sequence[int]) -> dict:
    """``batch`` with its plan added: ``serialized_depth``, ``stage_sizes`` and the ``stage_strides`` they were
    planned for (host values; meant for CPU batches, e.g. in a data loader's workers). The moved batch then needs
    no device read, padded to fixed capacities or as it is by a backbone with these strides."""
    depth = serialization_depth(batch["grid_coord"])
    return dict(batch, serialized_depth=depth, stage_strides=tuple(int(v) for v in strides),
                stage_sizes=stage_sizes(batch["grid_coord"], batch["offset"], strides, depth))


def stage_capacities(sizes: Sequence[int], steps_per_octave: int = 8) -> tuple[int, ...]:
    """``capacity_for`` of each stage's size: room for the stage's real voxels plus the padding sample."""
    return tuple(capacity_for(n, steps_per_octave) for n in sizes)


def pad_to_capacity(data_dict: dict, capacity: int | Sequence[int], labels: Mapping[str, int] | None = None
                    ) -> dict:
    """``coord``, ``grid_coord``, ``feat`` padded to ``capacity`` rows (zeros), the ``labels`` keys too (with
    their fill value, e.g. an ignore index), with ``offset`` (B+1,), ``serialized_depth`` (given, or from the
    real points: a host read, free for CPU tensors) and ``fixed_capacity`` (the rows of each stage:
    ``capacity``, or one per stage from ``stage_capacities``; a stage without its own keeps the previous
    stage's). ``Point`` derives ``batch`` from ``offset``; other keys are dropped."""
    capacities = (capacity,) if isinstance(capacity, int) else tuple(capacity)
    capacity = capacities[0]
    labels = dict(labels or {})
    missing = [k for k in PADDED_KEYS + ("offset",) + tuple(labels) if k not in data_dict]
    if missing:
        raise KeyError(f"pad_to_capacity: input lacks {missing}")
    n = data_dict["coord"].shape[0]
    if capacity <= n:
        raise ValueError(f"pad_to_capacity: capacity {capacity} must exceed the {n} points (one padding row at least)")
    fills = {**{key: 0 for key in PADDED_KEYS}, **labels}
    out = {key: _pad_rows(data_dict[key], capacity, fill) for key, fill in fills.items()}
    offset = data_dict["offset"]
    out["offset"] = torch.cat([offset, offset.new_full((1,), capacity)])
    out["serialized_depth"] = data_dict.get("serialized_depth") or serialization_depth(data_dict["grid_coord"])
    out["fixed_capacity"] = capacities
    return out


def _pad_rows(value: Tensor, capacity: int, fill: int = 0) -> Tensor:
    """(N, ...) -> (capacity, ...) with rows of ``fill`` appended."""
    return torch.cat([value, value.new_full((capacity - value.shape[0],) + tuple(value.shape[1:]), fill)])

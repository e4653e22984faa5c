"""Fixed-capacity batches: static shapes for every stage of PT-v3m1, so a forward can be captured and replayed.

A batch of N points in B samples is padded to ``capacity`` rows with one extra *padding sample* (index B) of
``capacity - N`` points at the origin. Samples never meet in PT-v3m1 (convolutions look up neighbours within a
sample, attention windows and pooling clusters stay inside a sample), so the real points' outputs are those of
the unpadded batch. The padded batch carries its plan (``plan.BatchPlan.padded``): every pooled stage has the
plan's number of rows (its spare rows join the padding sample, see ``pooling.clusters``) and the forward reads
nothing back from the device: its shapes follow from the plan alone.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from .plan import BatchPlan

__all__ = ["CARRIED_KEYS", "PADDED_KEYS", "pad_to_capacity"]

# per-point model inputs that are padded; per-batch inputs carried as they are; everything else is dropped
PADDED_KEYS = ("coord", "grid_coord", "feat")
CARRIED_KEYS = ("order_permutations",)


def pad_to_capacity(data_dict: dict, plan: BatchPlan, labels: Mapping[str, int] | None = None) -> dict:
    """``coord``, ``grid_coord``, ``feat`` padded to the padded ``plan``'s first stage rows (zeros), the
    ``labels`` keys too (with their fill value, e.g. an ignore index), with ``offset`` (B+1,), the ``plan`` and
    the ``CARRIED_KEYS`` the input has. ``Point`` derives ``batch`` from ``offset``; other keys are dropped."""
    capacity = plan.sizes[0]
    labels = dict(labels or {})
    missing = [k for k in PADDED_KEYS + ("offset",) + tuple(labels) if k not in data_dict]
    if missing:
        raise KeyError(f"pad_to_capacity: input lacks {missing}")
    n = data_dict["coord"].shape[0]
    if capacity <= n:
        raise ValueError(f"pad_to_capacity: capacity {capacity} must exceed the {n} points (one padding row at least)")
    offset = data_dict["offset"]
    if plan.samples != offset.shape[0] + 1:
        raise ValueError(f"pad_to_capacity: the plan has {plan.samples} samples, the batch {offset.shape[0]} and "
                         f"the padding sample make {offset.shape[0] + 1} (pad with BatchPlan.padded's plan)")
    fills = {**{key: 0 for key in PADDED_KEYS}, **labels}
    out = {key: _pad_rows(data_dict[key], capacity, fill) for key, fill in fills.items()}
    out["offset"] = torch.cat([offset, offset.new_full((1,), capacity)])
    out["plan"] = plan
    out.update({key: data_dict[key] for key in CARRIED_KEYS if key in data_dict})
    return out


def _pad_rows(value: Tensor, capacity: int, fill: int = 0) -> Tensor:
    """(N, ...) -> (capacity, ...) with rows of ``fill`` appended."""
    return torch.cat([value, value.new_full((capacity - value.shape[0],) + tuple(value.shape[1:]), fill)])

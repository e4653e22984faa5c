"""Distances between batches of persistence diagrams, padded to (B, P, 2) with a (B, P) validity mask.

A point is (birth, death). Where the other diagram of a pair is empty, a point is matched to its projection on
the diagonal, ((b + d) / 2, (b + d) / 2), at squared distance (d - b)^2 / 2; two empty diagrams are at distance 0.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["chamfer_diagram_distance", "sliced_wasserstein_diagram_distance"]


def _diagonal_sq(d: Tensor) -> Tensor:
    """Squared distance of each point (..., 2) to the diagonal."""
    return 0.5 * (d[..., 1] - d[..., 0]) ** 2


def _project(d: Tensor) -> Tensor:
    """Diagonal projection of each point (..., 2)."""
    mid = d.mean(-1, keepdim=True)
    return torch.cat([mid, mid], -1)


def _directed(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:
    """(B,) mean over valid points of a of the squared distance to the nearest valid point of b (or diagonal)."""
    sq = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)                      # (B, Pa, Pb)
    sq = sq.masked_fill(~b_mask[:, None], float("inf"))
    near = sq.min(2).values if b.shape[1] else a.new_full(a.shape[:2], float("inf"))
    near = torch.where(b_mask.any(1, keepdim=True), near, _diagonal_sq(a))  # (B, Pa)
    near = torch.where(a_mask, near, 0.0)
    return near.sum(1) / a_mask.sum(1).clamp_min(1)


def chamfer_diagram_distance(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:
    """Chamfer distance (the paper's): mean squared nearest-neighbour distance a -> b plus b -> a: (B,)."""
    return _directed(a, a_mask, b, b_mask) + _directed(b, b_mask, a, a_mask)


def sliced_wasserstein_diagram_distance(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor,
                                        num_directions: int = 16) -> Tensor:
    """Sliced Wasserstein distance of Carriere, Cuturi and Oudot (2017), per sample: (B,).

    Each diagram is completed by the diagonal projections of the other's points, both are projected on
    ``num_directions`` fixed directions of the half circle, and the sorted projections are compared in L1.
    """
    a_all = torch.cat([a, _project(b)], 1)                                 # (B, Pa + Pb, 2)
    b_all = torch.cat([b, _project(a)], 1)
    mask_a = torch.cat([a_mask, b_mask], 1)
    mask_b = torch.cat([b_mask, a_mask], 1)
    theta = (torch.arange(num_directions, device=a.device, dtype=a.dtype) + 0.5) * math.pi / num_directions
    theta = theta - math.pi / 2
    dirs = torch.stack([theta.cos(), theta.sin()], 0)                      # (2, D)
    # padded slots get the same largest value in both sets: they sort last and cancel exactly
    pad = torch.finfo(a.dtype).max
    pa = torch.where(mask_a[..., None], a_all @ dirs, pad).sort(1).values  # (B, P, D)
    pb = torch.where(mask_b[..., None], b_all @ dirs, pad).sort(1).values
    return (pa - pb).abs().sum(1).mean(1)

"""Per-sample reductions over a batch of concatenated point clouds described by a cumulative ``offset``."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_mean", "segment_min", "segment_max"]


def segment_mean(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Mean of ``x`` (N, ...) over the points of each sample: (B, ...); 0 for an empty sample."""
    total = x.new_zeros((num_segments,) + x.shape[1:]).index_add(0, batch, x)
    count = torch.bincount(batch, minlength=num_segments).clamp_min(1).to(x.dtype)
    return total / count.view((-1,) + (1,) * (x.dim() - 1))


def segment_min(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Minimum of ``x`` (N,) over each sample: (B,); differentiable (the gradient goes to the argmin)."""
    return x.new_full((num_segments,), float("inf")).scatter_reduce(0, batch, x, "amin")


def segment_max(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Maximum of ``x`` (N,) over each sample: (B,); differentiable (the gradient goes to the argmax)."""
    return x.new_full((num_segments,), float("-inf")).scatter_reduce(0, batch, x, "amax")

"""Per-sample reductions over a batch of concatenated point clouds described by a cumulative ``offset``."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["offset_to_batch", "segment_mean", "segment_min", "segment_max"]


def offset_to_batch(offset: Tensor) -> Tensor:
    """(N,) sample index of each point, from the cumulative ``offset`` (B,) (Pointcept's convention)."""
    counts = torch.diff(offset, prepend=offset.new_zeros(1))
    if (counts < 0).any():
        raise ValueError(f"offset_to_batch: offset must be non-decreasing, got {offset.tolist()}")
    return torch.repeat_interleave(torch.arange(len(offset), device=offset.device), counts)


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

"""Per-sample reductions over a batch of concatenated point clouds described by a cumulative ``offset``.

``x`` is (N, ...) with the points of all samples concatenated, ``batch`` (N,) the sample index of each point;
every reduction returns (B, ...) without a host sync; ``masked_loss`` averages a loss over a padded batch's valid
rows.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["segment_count", "segment_sum", "segment_mean", "segment_min", "segment_max", "segment_logsumexp",
           "segment_log_softmax", "masked_loss"]


def _rows(batch: Tensor, x: Tensor) -> Tensor:
    """``batch`` broadcast to the shape of ``x`` (N, ...), as scatter_reduce wants its index."""
    return batch.view((-1,) + (1,) * (x.dim() - 1)).expand_as(x)


def segment_sum(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Sum of ``x`` (N, ...) over the points of each sample: (B, ...); 0 for an empty sample."""
    return x.new_zeros((num_segments,) + x.shape[1:]).index_add(0, batch, x)


def segment_count(batch: Tensor, num_segments: int) -> Tensor:
    """(B,) float32 number of points of each sample (not ``torch.bincount``, which reads its input's maximum on
    the host on CUDA)."""
    ones = torch.ones(batch.shape, dtype=torch.float32, device=batch.device)
    return ones.new_zeros(num_segments).index_add(0, batch, ones)


def segment_mean(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Mean of ``x`` (N, ...) over the points of each sample: (B, ...); 0 for an empty sample."""
    count = segment_count(batch, num_segments).clamp_min(1).to(x.dtype)
    return segment_sum(x, batch, num_segments) / count.view((-1,) + (1,) * (x.dim() - 1))


def segment_min(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Minimum of ``x`` (N, ...) over each sample: (B, ...); differentiable (the gradient goes to the argmin);
    +inf for an empty sample."""
    return x.new_full((num_segments,) + x.shape[1:], float("inf")).scatter_reduce(0, _rows(batch, x), x, "amin")


def segment_max(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """Maximum of ``x`` (N, ...) over each sample: (B, ...); differentiable (the gradient goes to the argmax);
    -inf for an empty sample."""
    return x.new_full((num_segments,) + x.shape[1:], float("-inf")).scatter_reduce(0, _rows(batch, x), x, "amax")


def segment_logsumexp(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """log sum_i exp(x_i) over the points of each sample: (B, ...), stabilised by the sample's maximum;
    -inf for an empty sample."""
    peak = segment_max(x.detach(), batch, num_segments)                 # (B, ...) a constant: lse is shift-free
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    return peak + segment_sum(torch.exp(x - peak.index_select(0, batch)), batch, num_segments).log()


def segment_log_softmax(x: Tensor, batch: Tensor, num_segments: int) -> Tensor:
    """log softmax of ``x`` (N, ...) over the points of each sample (not over the trailing dimensions): (N, ...)."""
    return x - segment_logsumexp(x, batch, num_segments).index_select(0, batch)


def masked_loss(loss: Callable[..., Tensor], input: Tensor, target: Tensor, valid: Tensor | None,
                **kwargs: Any) -> Tensor:
    """An elementwise loss (``F.mse_loss``, ``F.smooth_l1_loss``) of (N, ...) tensors averaged over the rows where
    ``valid`` (N,) is True, every element of a row counted; ``valid`` None: the loss's own mean reduction
    (bit for bit the unmasked loss). 0 without a valid row."""
    if valid is None:
        return loss(input, target, **kwargs)
    error = loss(input, target, reduction="none", **kwargs)
    rows = valid.view((-1,) + (1,) * (error.dim() - 1))
    count = valid.sum() * (error.numel() // max(len(error), 1))
    return torch.where(rows, error, torch.zeros_like(error)).sum() / count.clamp_min(1)

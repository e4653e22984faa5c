"""Batch normalisation over the valid rows of a fixed-capacity batch: the padding sample's rows leave the batch
statistics and the running statistics alone.

In training a ``BatchNorm1d`` normalises with the statistics of its whole input, so on a padded batch
(``capacity.pad_to_capacity``) the padding sample's rows would shift every real point's features and the running
statistics. ``masked_batch_norm`` is ``F.batch_norm`` with the statistics taken over the rows a mask keeps: the
kept rows' outputs, the gradients and the running-statistics update (momentum, or the cumulative average when
the momentum is None; the unbiased variance for ``running_var``) are those of ``F.batch_norm`` on the kept rows
alone. Its shapes follow from the input's alone and the row count stays a tensor: nothing is read back from the
device, so it can be captured in a CUDA graph. ``point_batch_norm`` applies a module with it; ``PointSequential``
calls it for the training batch norms of a Point whose plan has a padding sample (``plan.BatchPlan.padding_sample``), so
the eager forward of an unpadded batch and the state-dict keys stay as they are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .point import Point

__all__ = ["masked_batch_norm", "point_batch_norm", "valid_rows"]


def masked_batch_norm(x: Tensor, valid: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                      weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                      momentum: float | Tensor = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.batch_norm(x, ...)`` with the batch statistics of the rows where ``valid`` is True.

    Every row is normalised with those statistics (rows left out too: their outputs are defined, and no gradient
    reaches the kept rows through them unless they reach the loss). In training the running statistics, if
    given, are updated in place as ``F.batch_norm`` updates them on the kept rows: ``running = (1 - momentum) *
    running + momentum * batch``, with the unbiased variance. Statistics are accumulated in float32 (or the
    input's wider dtype); the output has the input's dtype.

    Unlike ``F.batch_norm``, which raises on fewer than two rows per channel, fewer than two kept rows do not
    raise (that would read the count on the host): no kept row gives mean 0 and variance 0, one kept row a
    running-variance update with the biased variance.

    Args:
        x: (N, C) features.
        valid: (N,) bool, the rows whose statistics count.
        running_mean, running_var: (C,) running statistics, or None for none.
        weight, bias: (C,) affine parameters, or None.
        training: use (and update) the batch statistics; otherwise the running ones normalise.
        momentum: the running statistics' update factor: a float or a 0-dim tensor (the cumulative average's
            ``1 / num_batches_tracked``, see ``point_batch_norm``).
        eps: added to the variance.
    """
    if not training:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)
    if x.dim() != 2 or valid.shape != x.shape[:1]:
        raise ValueError(f"masked_batch_norm: expected (N, C) features and an (N,) mask, got {tuple(x.shape)} and "
                         f"{tuple(valid.shape)}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    rows = valid.to(dtype).unsqueeze(1)                                            # (N, 1): 1 kept, 0 left out
    count = rows.sum()                                                             # a tensor: no host read
    xf = x.to(dtype)
    mean = (xf * rows).sum(0) / count.clamp(min=1.0)                               # (C,)
    var = ((xf - mean) * rows).square().sum(0) / count.clamp(min=1.0)              # biased, as normalisation uses
    out = (xf - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var * (count / (count - 1.0).clamp(min=1.0))
            factor = momentum.to(running_mean.dtype) if isinstance(momentum, Tensor) else momentum
            running_mean.lerp_(mean.to(running_mean.dtype), factor)
            running_var.lerp_(unbiased.to(running_var.dtype), factor)
    return out.to(x.dtype)


def point_batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: Tensor, valid: Tensor) -> Tensor:
    """A batch-norm module's forward on (N, C) ``x`` with the statistics of the ``valid`` rows
    (``masked_batch_norm``): what the module does in its mode (batch statistics in training or without running
    statistics; ``num_batches_tracked`` counted up in training, and with ``momentum=None`` the cumulative
    average), with its own parameters and buffers. ``SyncBatchNorm`` is not supported in training (its
    statistics would need the kept rows of every process)."""
    # _BatchNorm.forward's rules: batch statistics in training or without running statistics; running statistics
    # passed (and in training updated) unless training with track_running_stats off
    batch_stats = norm.training or (norm.running_mean is None and norm.running_var is None)
    if batch_stats and isinstance(norm, nn.SyncBatchNorm):
        raise NotImplementedError("point_batch_norm: SyncBatchNorm on a padded batch is not supported (the "
                                  "statistics of the valid rows would have to be reduced across processes)")
    momentum: float | Tensor = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:                        # cumulative moving average, without a host read
            momentum = 1.0 / norm.num_batches_tracked
    running = not norm.training or norm.track_running_stats
    return masked_batch_norm(x, valid, norm.running_mean if running else None,
                             norm.running_var if running else None, norm.weight, norm.bias, batch_stats,
                             momentum, norm.eps)


def valid_rows(point: Point) -> Tensor | None:
    """(N,) bool, False on the padding sample's rows, for a Point whose plan has a padding sample (its last
    sample; ``plan.BatchPlan.padding_sample``); None for any other Point (every row is valid)."""
    plan = point.get("plan")
    if plan is None or not plan.padding_sample:
        return None
    return point.batch < point.batch_size - 1

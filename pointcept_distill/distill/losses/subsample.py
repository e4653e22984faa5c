"""Deterministic per-sample subsampling of a batch of concatenated point clouds (no N x N matrix)."""
from __future__ import annotations

import torch
from torch import Tensor

from ...utils.misc import check_tensor

__all__ = ["farthest_point_sample", "stride_sample", "SAMPLERS"]


def _layout(offset: Tensor, num: int) -> tuple[Tensor, Tensor, Tensor]:
    """Start of each sample (B,), its point count (B,) and the subsample sizes min(num, count) (B,)."""
    if num <= 0:
        raise ValueError(f"subsample: num must be > 0, got {num}")
    start = torch.cat([offset.new_zeros(1), offset[:-1]])
    count = offset - start
    check_tensor((count > 0).all(), "subsample: every sample needs points (offset has an empty sample)")
    return start, count, count.clamp(max=num)


def stride_sample(feat: Tensor, offset: Tensor, num: int) -> tuple[Tensor, Tensor]:
    """Evenly strided points of each sample: indices floor(j * count / size), j < size = min(num, count).

    Args:
        feat: (N, C) features (only its device is used).
        offset: (B,) cumulative point counts.
        num: points per sample.

    Returns:
        index (B, num) into the N points and valid (B, num) mask; padded slots repeat the sample's first point.
    """
    start, count, size = _layout(offset, num)
    j = torch.arange(num, device=feat.device)                              # (num,)
    valid = j[None] < size[:, None]                                        # (B, num)
    local = torch.div(j[None] * count[:, None], size.clamp_min(1)[:, None], rounding_mode="floor")
    return start[:, None] + torch.where(valid, local, 0), valid


def farthest_point_sample(feat: Tensor, offset: Tensor, num: int) -> tuple[Tensor, Tensor]:
    """Farthest point sampling (max-min landmarks) in feature space, per sample, all samples at once.

    Starts at each sample's first point, so the result depends only on the input. The landmarks cover the
    cloud within their covering radius, which bounds the change of the Rips diagram (stability theorem).

    Args:
        feat: (N, C) features; sampled without gradient.
        offset: (B,) cumulative point counts.
        num: points per sample.

    Returns:
        index (B, num) into the N points and valid (B, num) mask (False past min(num, count)).
    """
    start, count, size = _layout(offset, num)
    n_max = int(count.max())
    pos = torch.arange(n_max, device=feat.device)                          # (P,)
    inside = pos[None] < count[:, None]                                    # (B, P)
    gather = start[:, None] + torch.where(inside, pos[None], 0)            # (B, P)
    with torch.no_grad(), torch.autocast(device_type=feat.device.type, enabled=False):
        x = feat.detach().float()[gather]                                  # (B, P, C)
        sq = (x * x).sum(-1)                                               # (B, P)
        rows = torch.arange(len(offset), device=feat.device)
        far = torch.where(inside, float("inf"), -1.0)                      # (B, P)
        cur = torch.zeros(len(offset), dtype=torch.long, device=feat.device)
        picks = []
        for _ in range(num):
            picks.append(cur)
            # |x - r|^2 as |x|^2 - 2 x.r + |r|^2: no (B, P, C) temporary per step
            d2 = sq - 2.0 * torch.bmm(x, x[rows, cur][:, :, None])[..., 0] + sq[rows, cur][:, None]
            far = torch.where(inside, torch.minimum(far, d2), -1.0)
            cur = far.argmax(1)
    local = torch.stack(picks, 1)                                          # (B, num)
    valid = torch.arange(num, device=feat.device)[None] < size[:, None]
    return start[:, None] + torch.where(valid, local, 0), valid


SAMPLERS = {"fps": farthest_point_sample, "stride": stride_sample}

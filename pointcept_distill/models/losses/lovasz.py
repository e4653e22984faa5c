"""Lovasz-softmax loss (Berman et al., CVPR 2018), Pointcept's ``LovaszLoss`` in "multiclass" mode."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..builder import LOSSES

__all__ = ["LovaszLoss", "lovasz_softmax"]


def lovasz_softmax(probs: Tensor, labels: Tensor, ignore_index: int | None = None,
                   class_seen: Sequence[int] | None = None) -> Tensor:
    """Mean over present classes of the Lovasz extension of the Jaccard loss, all classes at once.

    For each class c: errors ``|1[label == c] - probs[:, c]|`` sorted in descending order, dotted with the
    Lovasz gradient of the sorted foreground indicator. Ignored rows are kept in place with error -1 (they
    sort last and are masked out), so no boolean indexing and no host sync is needed; the sort is stable, so
    tied errors keep their row order and ignored rows appended to a batch (a fixed-capacity batch's padding)
    change neither the loss nor its gradient. Classes count when
    present among the kept labels (and in ``class_seen`` if given); with none, the loss is 0.

    Args:
        probs: (N, C) class probabilities.
        labels: (N,) integer labels.
        ignore_index: label to drop, or None.
        class_seen: optional subset of classes that may count.
    """
    n, c = probs.shape
    labels = labels.long()
    keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    # class-major (C, N): the sorts and scans run along the last, contiguous dim (a scan along dim 0 of (N, C)
    # takes milliseconds on a GPU)
    fg = (torch.arange(c, device=labels.device).unsqueeze(1) == labels) & keep                # (C, N)
    fg = fg.to(probs.dtype)
    errors = torch.where(keep, (fg - probs.t()).abs(), probs.new_full((), -1.0))             # (C, N)
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True, stable=True)
    fg_sorted = fg.gather(1, perm)
    gts = fg_sorted.sum(1, keepdim=True)
    intersection = gts - fg_sorted.cumsum(1)
    union = gts + (1.0 - fg_sorted).cumsum(1)
    jaccard = 1.0 - intersection / union
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    kept_sorted = errors_sorted >= 0
    per_class = (errors_sorted * grad * kept_sorted).sum(1)                   # (C,)
    present = fg.sum(1) > 0
    if class_seen is not None:
        seen = torch.zeros(c, dtype=torch.bool, device=probs.device)
        seen[torch.as_tensor(list(class_seen), device=probs.device, dtype=torch.long)] = True
        present = present & seen
    present = present.to(probs.dtype)
    return (per_class * present).sum() / present.sum().clamp(min=1.0)


@LOSSES.register_module()
class LovaszLoss(nn.Module):
    """``loss_weight * lovasz_softmax(softmax(pred), target)``, as Pointcept's ``LovaszLoss``.

    Args:
        mode: "multiclass" (the LiDAR configs'); "binary" and "multilabel" are not implemented.
        class_seen: optional classes that may count.
        per_image: must be False (points of the whole batch form one set).
        ignore_index: label to drop, or None.
        loss_weight: factor on the loss.
    """

    def __init__(self, mode: str, class_seen: Sequence[int] | None = None, per_image: bool = False,
                 ignore_index: int | None = None, loss_weight: float = 1.0) -> None:
        super().__init__()
        if mode != "multiclass":
            raise NotImplementedError(f"LovaszLoss: mode {mode!r} is not implemented; use 'multiclass'")
        if per_image:
            raise NotImplementedError("LovaszLoss: per_image=True is not implemented for point clouds")
        self.mode, self.class_seen, self.ignore_index, self.loss_weight = mode, class_seen, ignore_index, loss_weight

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        probs = pred.float().softmax(dim=1)
        return lovasz_softmax(probs, target, self.ignore_index, self.class_seen) * self.loss_weight

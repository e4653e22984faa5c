"""Cross-entropy with an ignore label, Pointcept's ``CrossEntropyLoss``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..builder import LOSSES

__all__ = ["CrossEntropyLoss"]


@LOSSES.register_module()
class CrossEntropyLoss(nn.Module):
    """``loss_weight * cross_entropy(pred, target)``; targets equal to ``ignore_index`` are left out.

    Args:
        weight: optional per-class weights (moved to the prediction's device, not always to CUDA).
        size_average, reduce: deprecated torch arguments, accepted for config compatibility and ignored.
        reduction: "mean", "sum" or "none".
        label_smoothing: torch's label smoothing.
        loss_weight: factor on the loss.
        ignore_index: label excluded from the loss.
    """

    def __init__(self, weight: list[float] | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean", label_smoothing: float = 0.0,
                 loss_weight: float = 1.0, ignore_index: int = -1) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float),
                             persistent=False)
        self.reduction, self.label_smoothing = reduction, label_smoothing
        self.loss_weight, self.ignore_index = loss_weight, ignore_index

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(device=pred.device, dtype=pred.dtype)
        loss = F.cross_entropy(pred, target.long(), weight=weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)
        return loss * self.loss_weight

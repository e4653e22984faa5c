"""Logit distillation: temperature-scaled KL(teacher || student) of per-point class distributions."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...models.builder import LOSSES

__all__ = ["LogitKD"]


@LOSSES.register_module()
class LogitKD(nn.Module):
    """KL(teacher || student) at temperature tau, times tau^2, averaged over labelled points.

    The paper's code uses tau = 1, averages over all points (ignore-labelled ones too) and does not detach the
    teacher; here the teacher is detached and points with ``target == ignore_index`` are left out.

    Args:
        temperature: softening temperature tau (> 0).
        loss_weight: multiplies the loss (gamma = 0.3 in the paper's code).
        ignore_index: label of the points left out.
    """

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0, ignore_index: int = -1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"LogitKD: temperature must be > 0, got {temperature}")
        self.t, self.loss_weight, self.ignore_index = temperature, loss_weight, ignore_index

    def forward(self, student: Tensor, teacher: Tensor, target: Tensor) -> dict[str, Tensor]:
        if student.shape != teacher.shape or student.shape[:1] != target.shape:
            raise ValueError(f"LogitKD: student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and "
                             f"target {tuple(target.shape)} must be (N, C), (N, C), (N,)")
        keep = (target != self.ignore_index).float()                          # (N,)
        log_p = F.log_softmax(student.float() / self.t, dim=-1)               # (N, C)
        q = F.softmax(teacher.detach().float() / self.t, dim=-1)              # (N, C)
        kl = F.kl_div(log_p, q, reduction="none").sum(-1)                     # (N,) KL(q || p) per point
        # mean over labelled points without indexing by the mask (no host sync); t^2 keeps the gradient size
        # comparable across temperatures; no labelled point gives 0 (still in the graph)
        kd = (kl * keep).sum() / keep.sum().clamp_min(1.0) * self.t ** 2
        return {"loss_kd_logit": kd * self.loss_weight}

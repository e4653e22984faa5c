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
        class_balanced: average the KL per ground-truth class first, then over the classes present in the batch
            (every class weighs the same, as in mIoU), instead of over points (where frequent classes dominate).
        teacher_correct_only: leave out the points whose teacher prediction is wrong, so that the student learns
            the teacher's soft distribution where it is right and only the labels where it is not.
    """

    # what its KD loss hook passes, once per step (fields of distill.step.DistillStep)
    step_inputs = ("student_logits", "teacher_logits", "segment")

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0, ignore_index: int = -1,
                 class_balanced: bool = False, teacher_correct_only: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"LogitKD: temperature must be > 0, got {temperature}")
        self.t, self.loss_weight, self.ignore_index = temperature, loss_weight, ignore_index
        self.class_balanced, self.teacher_correct_only = class_balanced, teacher_correct_only

    def forward(self, student: Tensor, teacher: Tensor, target: Tensor) -> dict[str, Tensor]:
        if student.shape != teacher.shape or student.shape[:1] != target.shape:
            raise ValueError(f"LogitKD: student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and "
                             f"target {tuple(target.shape)} must be (N, C), (N, C), (N,)")
        log_p = F.log_softmax(student.float() / self.t, dim=-1)               # (N, C)
        q = F.softmax(teacher.detach().float() / self.t, dim=-1)              # (N, C)
        kl = F.kl_div(log_p, q, reduction="none").sum(-1)                     # (N,) KL(q || p) per point
        # weighted mean without indexing by a mask (no host sync); t^2 keeps the gradient size comparable across
        # temperatures; no labelled point gives 0 (still in the graph)
        keep = target != self.ignore_index                                    # (N,)
        if self.teacher_correct_only:
            keep = keep & (teacher.detach().argmax(-1) == target)
        kd = (kl * self.point_weights(keep.float(), target, student.shape[1])).sum() * self.t ** 2
        return {"loss_kd_logit": kd * self.loss_weight}

    def point_weights(self, keep: Tensor, target: Tensor, num_classes: int) -> Tensor:
        """(N,) weights summing to 1 over the kept points (0 elsewhere): uniform, or uniform per class."""
        if not self.class_balanced:
            return keep / keep.sum().clamp_min(1.0)
        label = target.clamp(0, num_classes - 1).long()
        count = keep.new_zeros(num_classes).index_add_(0, label, keep)       # (C,) labelled points per class
        present = (count > 0).sum().clamp_min(1)
        return keep / count[label].clamp_min(1.0) / present

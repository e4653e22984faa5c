"""Relation distillation of class probabilities (DIST; Huang et al., "Knowledge Distillation from A Stronger
Teacher", NeurIPS 2022).

Instead of matching the teacher's probabilities exactly (KL), the student matches their *relations*, measured
by Pearson correlation: per point, across the classes (inter-class: which classes the teacher ranks high) and per
class, across the points of the step (intra-class: which points the teacher finds most like the class). A
correlation ignores the scale and shift of the teacher's probabilities, which is why the paper finds it robust
when the teacher is much stronger than the student.
"""
from __future__ import annotations

from torch import Tensor, nn

from ...models.builder import LOSSES

__all__ = ["DISTKD", "mean_over", "pearson_rows"]


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8, valid: Tensor | None = None) -> Tensor:
    """(R,) Pearson correlation of each row of ``a`` (R, K) with the same row of ``b`` (a constant row gives 0),
    over the columns where ``valid`` (K,) bool is True (None: all)."""
    if valid is None:
        a = a - a.mean(dim=1, keepdim=True)
        b = b - b.mean(dim=1, keepdim=True)
    else:
        a, b = (_centred_on(x, valid) for x in (a, b))
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def _centred_on(x: Tensor, valid: Tensor) -> Tensor:
    """(R, K) rows of ``x`` minus their mean over the valid columns, zero on the others."""
    weight = valid.to(x.dtype)
    mean = (x * weight).sum(dim=1, keepdim=True) / weight.sum().clamp_min(1.0)
    return (x - mean) * weight


def mean_over(x: Tensor, valid: Tensor | None) -> Tensor:
    """Mean of ``x`` (R,) over the ``valid`` rows (None: all)."""
    if valid is None:
        return x.mean()
    weight = valid.to(x.dtype)
    return (x * weight).sum() / weight.sum().clamp_min(1.0)


@LOSSES.register_module()
class DISTKD(nn.Module):
    """tau^2 * (beta * (1 - mean_i r(p_i, q_i)) + gamma * (1 - mean_c r(p_:c, q_:c))), p and q the student's and
    the (detached) teacher's softmax(logits / tau) over the classes, r the Pearson correlation.

    The intra-class term correlates each class's probabilities over all points of the step (the paper's
    segmentation loss flattens batch and pixels the same way); points with no label take part, as in CWD (the
    relations need no labels).

    Args:
        temperature: tau (> 0); the paper's segmentation setting is 1.
        beta: weight of the inter-class (per point) relation.
        gamma: weight of the intra-class (per class) relation.
        loss_weight: multiplies the loss.
    """

    # what its KD loss hook passes, once per step (fields of distill.step.DistillStep)
    step_inputs = ("student_logits", "teacher_logits", "valid")

    def __init__(self, temperature: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"DISTKD: temperature must be > 0, got {temperature}")
        self.t, self.beta, self.gamma, self.loss_weight = temperature, beta, gamma, loss_weight

    def forward(self, student: Tensor, teacher: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
        """
        Args:
            student: (N, C) logits of the student's points.
            teacher: (N, C) the teacher's logits of the same points.
            valid: (N,) bool, False on rows that take no part (a padded batch's padding sample); None: all.
        """
        if student.dim() != 2 or student.shape != teacher.shape:
            raise ValueError(f"DISTKD: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must "
                             f"both be (N, C)")
        p = (student.float() / self.t).softmax(dim=1)               # (N, C) student
        q = (teacher.detach().float() / self.t).softmax(dim=1)      # (N, C) teacher
        inter = 1.0 - mean_over(pearson_rows(p, q), valid)          # across classes, per point
        intra = 1.0 - pearson_rows(p.t(), q.t(), valid=valid).mean()  # across points, per class
        kd = (self.beta * inter + self.gamma * intra) * self.t ** 2
        return {"loss_kd_dist": kd * self.loss_weight}

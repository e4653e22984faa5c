"""Gradient-guided feature distillation (arXiv 2505.08101): compare per-point task-importance maps.

Per sample, the channel weights are w_k = mean over points of |dL_task/dF_k| (constants), the importance map is
M_i = sum_k w_k F_ik, normalised per sample, and the student's map is pulled to the teacher's by SmoothL1.
Unlike the official code, the maps are normalised per sample (not over the whole batch) and the caller matches
teacher and student points one to one before the comparison.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...models.builder import LOSSES
from ...models.point import offset_to_batch
from ...utils.misc import check_tensor
from .segments import masked_loss, segment_max, segment_mean, segment_min

__all__ = ["task_gradient", "task_gradients", "importance_map", "GradGuidedKD"]

NORMS = ("minmax", "zscore", "none")


def task_gradient(loss: Tensor, feat: Tensor, retain_graph: bool = True) -> Tensor:
    """dL/dF of a captured feature ``feat`` (N, C), without a graph (the weights are constants).

    Args:
        loss: scalar task loss computed from ``feat`` (e.g. the segmentation loss of the head applied to it).
        feat: the captured feature; it must be part of ``loss``'s graph.
        retain_graph: keep the graph so that the total loss can still be back-propagated afterwards.
    """
    (grad,) = task_gradients(loss, [feat], retain_graph)
    return grad


def task_gradients(loss: Tensor, feats: Sequence[Tensor], retain_graph: bool = True) -> tuple[Tensor, ...]:
    """``task_gradient`` of several captured features (several stages) in one backward pass."""
    if not all(feat.requires_grad for feat in feats):
        raise ValueError("task_gradient: feat does not require grad; capture it inside the autograd graph")
    return torch.autograd.grad(loss, list(feats), retain_graph=retain_graph)


def importance_map(feat: Tensor, grad: Tensor, offset: Tensor, norm: str = "minmax",
                   eps: float = 1e-6) -> Tensor:
    """Per-point importance M_i = sum_k w_k F_ik with w_k = mean_i |grad_ik| per sample; normalised per sample.

    Args:
        feat: (N, C) features of all samples, concatenated.
        grad: (N, C) dL_task/dfeat; detached here, so w_k are constants.
        offset: (B,) cumulative point counts.
        norm: "minmax" (to [0, 1], the paper's), "zscore" or "none".
        eps: added to the denominator of the normalisation.

    Returns:
        (N,) map; differentiable in ``feat`` (including through the per-sample min/max or mean/std).
    """
    if feat.shape != grad.shape or feat.dim() != 2:
        raise ValueError(f"importance_map: feat {tuple(feat.shape)} and grad {tuple(grad.shape)} "
                         "must both be (N, C)")
    if norm not in NORMS:
        raise ValueError(f"importance_map: norm={norm!r} not in {NORMS}")
    check_tensor(offset[-1] == len(feat), f"importance_map: offset[-1] must be the number of points {len(feat)}")
    batch = offset_to_batch(offset, len(feat))
    num = len(offset)
    weight = segment_mean(grad.detach().abs().to(feat.dtype), batch, num)   # (B, C)
    imp = (feat * weight[batch]).sum(1)                                     # (N,)
    if norm == "minmax":
        lo, hi = segment_min(imp, batch, num), segment_max(imp, batch, num)
        return (imp - lo[batch]) / (hi - lo + eps)[batch]
    if norm == "zscore":
        mean = segment_mean(imp, batch, num)
        std = segment_mean((imp - mean[batch]) ** 2, batch, num).sqrt()
        return (imp - mean[batch]) / (std + eps)[batch]
    return imp


@LOSSES.register_module()
class GradGuidedKD(nn.Module):
    """SmoothL1 between student and teacher importance maps, averaged over the (matched) points.

    The teacher's gradient needs a graph only through the part of the teacher after the captured feature
    (the trainer runs the rest of the teacher without one); its map is detached here.

    Args:
        norm: per-sample normalisation of both maps: "minmax" (paper), "zscore" or "none".
        beta: SmoothL1 threshold (1.0 in the paper's code, where min-max maps keep it quadratic).
        loss_weight: multiplies the loss (lambda = 10 in the paper's code).
    """

    # what its KD loss hook passes, once per captured stage (fields of distill.step.MatchedStage)
    stage_inputs = ("student_feat", "student_grad", "teacher_feat", "teacher_grad", "offset", "valid")
    capturable = True       # no host work: a captured training step records it (hooks/kd_loss.py)

    def __init__(self, norm: str = "minmax", beta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"GradGuidedKD: norm={norm!r} not in {NORMS}")
        self.norm, self.beta, self.loss_weight = norm, beta, loss_weight

    def forward(self, student_feat: Tensor, student_grad: Tensor, teacher_feat: Tensor,
                teacher_grad: Tensor, offset: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
        """``valid`` (M,) bool: False on a padded batch's padding sample, left out of the mean (None: all rows)."""
        if len(student_feat) != len(teacher_feat):
            raise ValueError(f"GradGuidedKD: {len(student_feat)} student points vs {len(teacher_feat)} "
                             "teacher points; match them one to one first")
        m_s = importance_map(student_feat.float(), student_grad, offset, self.norm)
        m_t = importance_map(teacher_feat.detach().float(), teacher_grad, offset, self.norm)
        loss = masked_loss(F.smooth_l1_loss, m_s, m_t, valid, beta=self.beta)
        return {"loss_kd_grad": loss * self.loss_weight}

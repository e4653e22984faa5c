"""Channel-wise distillation (CWD; Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction",
ICCV 2021): each class channel of a sample's logits, softmax-normalised over the sample's points, is a spatial
distribution; the student's is pulled to the teacher's by KL(teacher || student).

For point clouds the "spatial" axis is a sample's points: the softmax runs over the points of each sample
(``offset``), over all of them, ignore-labelled ones included (the distributions are of where a class's evidence
lies in the scan, which needs no labels). On a padded batch (a captured step) the padding sample is left out by
``valid``.
"""
from __future__ import annotations

from torch import Tensor, nn

from ...models.builder import LOSSES
from ...models.point import offset_to_batch
from ...utils.misc import check_tensor
from .segments import segment_count, segment_log_softmax, segment_sum

__all__ = ["ChannelWiseKD"]


@LOSSES.register_module()
class ChannelWiseKD(nn.Module):
    """tau^2 / C * sum_c KL(softmax_i(t_ic / tau) || softmax_i(s_ic / tau)), averaged over the non-empty samples.

    As the official code (TorchDistiller, ``CriterionCWD``): KL summed over points and channels, divided by the
    number of samples times channels, times tau^2; the teacher is detached.

    Args:
        temperature: softening temperature tau (> 0); the paper's (and its code's) segmentation setting is 4.
        loss_weight: multiplies the loss (3 in the paper's segmentation experiments).
    """

    # what its KD loss hook passes, once per step (fields of distill.step.DistillStep)
    step_inputs = ("student_logits", "teacher_logits", "offset", "valid")

    def __init__(self, temperature: float = 4.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"ChannelWiseKD: temperature must be > 0, got {temperature}")
        self.t, self.loss_weight = temperature, loss_weight

    def forward(self, student: Tensor, teacher: Tensor, offset: Tensor,
                valid: Tensor | None = None) -> dict[str, Tensor]:
        """
        Args:
            student: (N, C) logits of the student's points.
            teacher: (N, C) the teacher's logits of the same points.
            offset: (B,) cumulative point counts of the samples.
            valid: (N,) bool, False on the rows of a padding sample (whole samples only), which then neither add
                to the KL nor count as a sample; None: every row counts.
        """
        if student.dim() != 2 or student.shape != teacher.shape or offset.dim() != 1:
            raise ValueError(f"ChannelWiseKD: student {tuple(student.shape)}, teacher {tuple(teacher.shape)} and "
                             f"offset {tuple(offset.shape)} must be (N, C), (N, C), (B,)")
        num_points, num_samples = student.shape[0], offset.shape[0]
        check_tensor(offset[-1] == num_points,
                     f"ChannelWiseKD: offset[-1] must be the number of points {num_points}")
        batch = offset_to_batch(offset, num_points)                                      # (N,)
        log_p = segment_log_softmax(student.float() / self.t, batch, num_samples)         # (N, C) student
        log_q = segment_log_softmax(teacher.detach().float() / self.t, batch, num_samples)  # (N, C) teacher
        pointwise = log_q.exp() * (log_q - log_p)                                        # (N, C)
        if valid is None:
            present = (segment_count(batch, num_samples) > 0).sum().clamp_min(1)
        else:
            pointwise = pointwise * valid.unsqueeze(1)
            present = (segment_sum(valid.float(), batch, num_samples) > 0).sum().clamp_min(1)
        kl = segment_sum(pointwise, batch, num_samples)                                 # (B, C) KL(q_c || p_c)
        kd = kl.sum() / (present * student.shape[1]) * self.t ** 2
        return {"loss_kd_cwd": kd * self.loss_weight}

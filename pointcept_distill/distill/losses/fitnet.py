"""Feature mimicking with a learned hint regressor (FitNets; Romero et al., ICLR 2015).

The student's stage features are mapped to the teacher's width by a regressor trained with the student, and
pulled to the teacher's features (matched one to one by voxel) by a mean squared error.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...models.builder import LOSSES
from .segments import masked_loss

__all__ = ["FeatureMimicKD"]


@LOSSES.register_module()
class FeatureMimicKD(nn.Module):
    """MSE (mean over points and channels) between projected student features and detached teacher features.

    The regressor is a single linear layer, FitNets' choice (one convolutional layer, no normalisation or
    activation; on points a 1x1 convolution is a linear layer): a BatchNorm would learn per-batch statistics
    of its own, and an activation would clip the teacher's signed features.

    Args:
        student_channels: width of the student's features (``DistillTrainer`` reads it from the stage).
        teacher_channels: width of the teacher's features.
        loss_weight: multiplies the loss.
    """

    # what its KD loss hook passes, once per captured stage (fields of distill.step.MatchedStage); one loss is
    # built per stage, with that stage's widths as student_channels and teacher_channels
    stage_inputs = ("student_feat", "teacher_feat", "valid")
    capturable = True       # no host work: a captured training step records it (hooks/kd_loss.py)
    stage_widths = True

    def __init__(self, student_channels: int, teacher_channels: int, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.projector = nn.Linear(student_channels, teacher_channels)
        self.loss_weight = loss_weight

    def forward(self, student_feat: Tensor, teacher_feat: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
        """
        Args:
            student_feat: (M, C_s) the student's features of the matched points.
            teacher_feat: (M, C_t) the teacher's features of the same points, in the same order.
            valid: (M,) bool, False on a padded batch's padding sample (left out of the mean); None: every row.
        """
        projector = self.projector
        if (student_feat.dim() != 2 or teacher_feat.dim() != 2 or len(student_feat) != len(teacher_feat)
                or student_feat.shape[1] != projector.in_features or teacher_feat.shape[1] != projector.out_features):
            raise ValueError(f"FeatureMimicKD: student {tuple(student_feat.shape)} and teacher "
                             f"{tuple(teacher_feat.shape)} features must be (M, {projector.in_features}) and "
                             f"(M, {projector.out_features}), matched one to one")
        loss = masked_loss(F.mse_loss, projector(student_feat).float(), teacher_feat.detach().float(), valid)
        return {"loss_kd_feat": loss * self.loss_weight}

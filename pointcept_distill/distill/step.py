"""``DistillStep``: the shared work of one distillation step, done once and read by every KD loss hook.

A KD loss class names the fields it reads: ``step_inputs`` (fields of ``DistillStep``, read once per step) or
``stage_inputs`` (fields of ``MatchedStage``, read once per captured stage); ``hooks/kd_loss.py`` passes them in
that order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor

__all__ = ["DistillStep", "MatchedStage", "StepNeeds"]


class StepNeeds(NamedTuple):
    """What a step's losses read beyond the logits: the work it must do for them."""

    stages: tuple[str, ...]     # the captured stages (none where no loss reads features)
    gradients: bool             # both models' dL_task/dF at those stages


class MatchedStage(NamedTuple):
    """One captured stage of both models on the voxels they share, in the same order."""

    index_s: Tensor                 # (M,) rows of the student's captured features
    index_t: Tensor                 # (M,) rows of the teacher's
    student_feat: Tensor            # (M, C_s)
    teacher_feat: Tensor            # (M, C_t) detached
    student_grad: Tensor | None     # (M, C_s) dL_task/dF of the student (constants); None unless a loss reads it
    teacher_grad: Tensor | None     # (M, C_t) the teacher's
    offset: Tensor                  # (B,) cumulative counts of the matched points
    valid: Tensor | None = None     # (M,) bool: False on a padded batch's padding sample (None: all rows real)


@dataclass(frozen=True)
class DistillStep:
    """The student's and teacher's outputs of one step, for the KD loss hooks."""

    student_logits: Tensor              # (N, K)
    teacher_logits: Tensor              # (N, K) detached
    segment: Tensor                     # (N,) labels
    offset: Tensor                      # (B,) cumulative point counts of the samples
    stages: dict[str, MatchedStage]     # by stage name; empty where no loss reads features
    started: dict[str, Any]             # by loss name: the losses started on every stage (``KDLossHook.start``)
    valid: Tensor | None = None         # (N,) bool: False on a padded batch's padding rows (None: all rows real)

"""``LossGradientNorms``: every few steps, each loss term's gradient norm into the student, logged."""
from __future__ import annotations

from torch import Tensor

from ...engine.hooks import HookBase
from ..grad_norms import loss_gradient_norms

__all__ = ["LossGradientNorms"]


class LossGradientNorms(HookBase):
    """Every ``interval`` steps adds ``grad_norm/<term>`` and ``grad_ratio/<term>`` (``grad_norms.py``) to the
    step's output: logged, not summed. Computed from the step's graph before its backward, so the step itself is
    unchanged; registered after the hooks that add loss terms, so that it sees all of them.

    The norms are of the terms as computed (before the division by ``gradient_accumulation_steps``), of this
    process's gradients (before DDP averages them).
    """

    def __init__(self, interval: int) -> None:
        if interval <= 0:
            raise ValueError(f"LossGradientNorms: interval must be > 0, got {interval}")
        self.interval = interval

    def after_forward(self, output: dict[str, Tensor]) -> dict[str, Tensor]:
        trainer = self.trainer
        if trainer.global_iter % self.interval:
            return {}
        student = [p for p in trainer.model.parameters() if p.requires_grad]
        scale = trainer.scaler.get_scale() if trainer.scaler is not None else 1.0
        return loss_gradient_norms(output, student, scale)

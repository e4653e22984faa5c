"""The distillation trainer's hooks, built from the ``distill`` config section (not from ``cfg.hooks``)."""
from .kd_loss import KDLossHook
from .loss_grad_norms import LossGradientNorms

__all__ = ["KDLossHook", "LossGradientNorms"]

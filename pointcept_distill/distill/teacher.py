"""The frozen teacher: built from a model config, loaded strictly from a Pointcept checkpoint, always in eval."""
from __future__ import annotations

import torch
from torch import nn

from ..engine.checkpoint import CheckpointError, is_none_path, load_checkpoint, remap_state_dict
from ..models import build_model

__all__ = ["FrozenTeacher", "load_teacher"]


class FrozenTeacher(nn.Module):
    """Wraps a segmentor so that it never trains: no gradients for its parameters, eval mode for good.

    ``train(True)`` is ignored, so drop path stays off and BatchNorm keeps its running statistics whatever
    the caller does. The wrapper is kept out of the student's module tree, so it is neither in DDP, nor in
    the optimizer, nor in the student's checkpoints.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        return super().train(False)


def load_teacher(model_cfg: dict, weight: str | None, device: torch.device) -> FrozenTeacher:
    """Build ``model_cfg`` and load ``weight`` strictly (``module.`` prefixes accepted).

    A mismatch raises with the missing and unexpected keys listed: a teacher that silently loads nothing
    (the official code's ``strict=False``) would distil noise.
    """
    if is_none_path(weight):
        raise CheckpointError("DistillTrainer: config key 'teacher_weight' is not set; the teacher must be "
                              "loaded from a trained checkpoint")
    model = build_model(model_cfg)
    state = remap_state_dict(load_checkpoint(weight)["state_dict"], with_module=False)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"teacher_weight '{weight}' does not match config key 'teacher': "
            f"{len(missing)} missing {missing[:8]}, {len(unexpected)} unexpected {unexpected[:8]}, "
            f"{len(mismatched)} with other shapes {mismatched[:8]}")
    model.load_state_dict(state, strict=True)
    return FrozenTeacher(model).to(device)

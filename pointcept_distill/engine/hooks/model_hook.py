"""``ModelHook``: forwards the lifecycle calls to the model, for models with per-step behaviour."""
from __future__ import annotations

from .base import HOOKS, HookBase

__all__ = ["ModelHook"]


@HOOKS.register_module()
class ModelHook(HookBase):
    """Calls ``model.<event>(trainer)`` for each lifecycle event the (DDP-unwrapped) model defines.

    Put it after ``CheckpointLoader``: a model's ``before_train`` may read ``trainer.start_epoch``.
    """

    def _forward(self, event: str) -> None:
        model = getattr(self.trainer.model, "module", self.trainer.model)
        method = getattr(model, event, None)
        if callable(method):
            method(self.trainer)

    def before_train(self) -> None:
        self._forward("before_train")

    def before_epoch(self) -> None:
        self._forward("before_epoch")

    def before_step(self) -> None:
        self._forward("before_step")

    def after_step(self) -> None:
        self._forward("after_step")

    def after_epoch(self) -> None:
        self._forward("after_epoch")

    def after_train(self) -> None:
        self._forward("after_train")

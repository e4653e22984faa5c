"""``HookBase`` and the ``HOOKS`` registry.

Call order of one training run (each call goes to every hook, in the trainer's order: ``build_hooks``)::

    before_train()
    for epoch:                 # trainer epochs (a trainer epoch is ``epoch // eval_epoch`` data passes)
        before_epoch()
        for iteration:
            before_step()
            <trainer.run_step()>   # forward; after_forward(output) adds loss terms; backward; optimizer step
            after_step()
        after_epoch()
    after_train()              # always runs, also after an exception; check ``trainer.completed``
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ...utils.registry import Registry

__all__ = ["HOOKS", "HookBase", "build_hooks"]

HOOKS = Registry("hooks")


class HookBase:
    """A no-op hook. ``trainer`` is set to a ``weakref.proxy`` of the trainer when registered."""

    trainer: Any = None
    # its ``after_forward`` is a function of the step's tensors alone (no host reads, no shapes that depend on the
    # data, no state changed per step): a captured training step may record it in its graphs
    capturable: bool = False

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_forward(self, output: dict[str, Tensor]) -> dict[str, Tensor]:
        """The stage where a hook adds loss terms to a step: called after the forward (``compute_loss``), under
        the step's autocast, before the total loss and the backward.

        Args:
            output: the step's entries so far (``compute_loss``'s, then those of earlier hooks); read only.

        Returns:
            entries to add: ``loss`` / ``loss_*`` terms join the total loss (and are logged), others are only
            logged. A key already in ``output`` is an error.
        """
        return {}

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass


def build_hooks(cfgs: list[dict] | None) -> list[HookBase]:
    """Build every ``dict(type=...)`` of ``cfgs`` from ``HOOKS``, in order."""
    return [HOOKS.build(dict(cfg)) for cfg in cfgs or []]

"""``CheckpointLoader``: loads ``cfg.weight`` into the model and, with ``cfg.resume``, the training state."""
from __future__ import annotations

import os

from ...utils import comm
from ..checkpoint import CheckpointError, is_none_path, load_checkpoint, remap_state_dict
from .base import HOOKS, HookBase

__all__ = ["CheckpointLoader"]


@HOOKS.register_module()
class CheckpointLoader(HookBase):
    """Pointcept's loader: ``module.`` prefixes normalised to the world size, an optional key rename.

    Args:
        keywords: substring to rename in each (``module.``-prefixed) key; ``""`` renames nothing.
        replacement: what ``keywords`` becomes (default: ``keywords``).
        strict: passed to ``load_state_dict``; missing and unexpected keys are logged either way.

    Unlike Pointcept, a ``weight`` that is set but not a file is an error (a typo must not silently
    train from scratch).
    """

    def __init__(self, keywords: str = "", replacement: str | None = None, strict: bool = False) -> None:
        self.keywords, self.replacement, self.strict = keywords, replacement, strict

    def before_train(self) -> None:
        trainer, cfg = self.trainer, self.trainer.cfg
        weight = cfg.get("weight")
        if is_none_path(weight):
            if cfg.get("resume"):
                raise CheckpointError("CheckpointLoader: resume=True but no 'weight' is set")
            return
        if not os.path.isfile(weight):
            raise CheckpointError(f"CheckpointLoader: weight '{weight}' is not a file")
        trainer.logger.info(f"=> Loading checkpoint '{weight}'")
        ckpt = load_checkpoint(weight)
        weights = remap_state_dict(ckpt["state_dict"], comm.get_world_size() > 1 or trainer.model_is_ddp,
                                   self.keywords, self.replacement)
        result = trainer.model.load_state_dict(weights, strict=self.strict)
        if result.missing_keys:
            trainer.logger.info(f"Missing keys: {result.missing_keys}")
        if result.unexpected_keys:
            trainer.logger.info(f"Unexpected keys: {result.unexpected_keys}")
        if cfg.get("resume"):
            trainer.restore_training_state(ckpt, source=weight)

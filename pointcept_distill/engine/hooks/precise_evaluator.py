"""``PreciseEvaluator``: after training, runs the configured tester on the best (or last) weights."""
from __future__ import annotations

import os

from ..checkpoint import CheckpointError, load_checkpoint, remap_state_dict
from ..test import TESTERS
from .base import HOOKS, HookBase

__all__ = ["PreciseEvaluator"]


@HOOKS.register_module()
class PreciseEvaluator(HookBase):
    """Builds ``cfg.test`` with the live model and runs it once training has completed.

    Args:
        test_last: test the weights as they are at the end; otherwise load ``model/model_best.pth``
            first (which needs ``evaluate=True``).
    """

    def __init__(self, test_last: bool = False) -> None:
        self.test_last = test_last

    def after_train(self) -> None:
        trainer, cfg = self.trainer, self.trainer.cfg
        if not trainer.completed:
            return
        trainer.logger.info(">>>>>>>>>>>>>>>> Start Precise Evaluation >>>>>>>>>>>>>>>>")
        model = trainer.model_without_ddp
        if not self.test_last:
            best = os.path.join(cfg.save_path, "model", "model_best.pth")
            if not os.path.isfile(best):
                raise CheckpointError(f"PreciseEvaluator: '{best}' does not exist (it is written only when "
                                      f"evaluate=True); use PreciseEvaluator(test_last=True) otherwise")
            trainer.logger.info(f"=> Loading checkpoint '{best}'")
            model.load_state_dict(remap_state_dict(load_checkpoint(best)["state_dict"], False), strict=True)
        tester = TESTERS.build(dict(cfg=cfg, model=model, **cfg.test))
        tester.test()

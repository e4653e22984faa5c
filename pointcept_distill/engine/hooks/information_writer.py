"""``InformationWriter``: per-iteration console log and TensorBoard scalars of the training losses."""
from __future__ import annotations

import torch

from .base import HOOKS, HookBase

__all__ = ["InformationWriter"]


@HOOKS.register_module()
class InformationWriter(HookBase):
    """Logs ``Train: [epoch/max][iter/len]``, timings, every scalar the step produced and the LR.

    TensorBoard: ``train_batch/<key>`` and ``params/lr`` per iteration, ``train/<key>`` (epoch mean) per
    epoch. Keys come from ``trainer.comm_info['model_output_dict']`` (scalars only).

    Args:
        log_interval: log to the console every this many iterations (TensorBoard gets every one).
    """

    def __init__(self, log_interval: int = 1) -> None:
        self.log_interval = log_interval
        self._keys: list[str] = []

    def before_step(self) -> None:
        trainer = self.trainer
        trainer.comm_info["iter_info"] = (f"Train: [{trainer.epoch + 1}/{trainer.max_epoch}]"
                                          f"[{trainer.comm_info['iter'] + 1}/{len(trainer.train_loader)}] ")

    def after_step(self) -> None:
        trainer = self.trainer
        outputs = trainer.comm_info.get("model_output_dict", {})
        self._keys = []
        for key, value in outputs.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                trainer.storage.put_scalar(key, float(value.item()))
                self._keys.append(key)
        lr = trainer.optimizer.param_groups[0]["lr"]
        info = " ".join(f"{k}: {trainer.storage.history(k).val:.4f}" for k in self._keys)
        trainer.comm_info["iter_info"] = trainer.comm_info.get("iter_info", "") + f"{info} Lr: {lr:.5f}"
        step = trainer.global_iter
        if (trainer.comm_info["iter"] + 1) % self.log_interval == 0:
            trainer.logger.info(trainer.comm_info["iter_info"])
        if trainer.writer is not None:
            trainer.writer.add_scalar("params/lr", lr, step)
            for key in self._keys:
                trainer.writer.add_scalar(f"train_batch/{key}", trainer.storage.history(key).val, step)

    def after_epoch(self) -> None:
        trainer = self.trainer
        means = {k: trainer.storage.history(k).avg for k in self._keys if trainer.storage.has(k)}
        trainer.logger.info("Train result: " + " ".join(f"{k}: {v:.4f}" for k, v in means.items()))
        if trainer.writer is not None:
            for key, value in means.items():
                trainer.writer.add_scalar(f"train/{key}", value, trainer.epoch + 1)

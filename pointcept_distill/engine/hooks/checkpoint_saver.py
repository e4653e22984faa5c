"""``CheckpointSaver``: ``model_last.pth`` every epoch (and optionally every N iterations),
``model_best.pth`` when the validation metric improves, ``epoch_N.pth`` every ``save_freq`` epochs."""
from __future__ import annotations

import os

from ...utils import comm
from ...utils.misc import remove_stale_temporaries
from ..checkpoint import copy_checkpoint, save_checkpoint
from .base import HOOKS, HookBase

__all__ = ["CheckpointSaver"]


@HOOKS.register_module()
class CheckpointSaver(HookBase):
    """Writes Pointcept's checkpoint dict (plus our resume keys) atomically under ``save_path/model``.

    Put it after the evaluator: it reads ``comm_info['current_metric_value']``. At the start of a run it removes
    the temporary files of checkpoint writes interrupted by a killed process.

    Args:
        save_freq: also keep ``epoch_<N>.pth`` every ``save_freq`` trainer epochs.
        save_freq_iter: also write ``model_last.pth`` every this many iterations inside an epoch (only
            right after an optimizer step), so a killed run resumes mid-epoch instead of redoing it.
    """

    def __init__(self, save_freq: int | None = None, save_freq_iter: int | None = None) -> None:
        self.save_freq, self.save_freq_iter = save_freq, save_freq_iter

    def before_train(self) -> None:
        """Remove what writes interrupted by a killed process left (``*.pth.tmp.<pid>``), before the run
        writes its own checkpoints."""
        if comm.is_main_process():
            for path in remove_stale_temporaries(os.path.dirname(self._path("model_last.pth"))):
                self.trainer.logger.info(f"Removed {path}, left by an interrupted checkpoint write")

    def _path(self, name: str) -> str:
        return os.path.join(self.trainer.cfg.save_path, "model", name)

    def _write_last(self, epochs_done: int, iters_done: int) -> None:
        # every rank takes part (the random states are gathered), rank 0 writes
        ckpt = self.trainer.training_state(epochs_done, iters_done)
        if comm.is_main_process():
            save_checkpoint(ckpt, self._path("model_last.pth"))
        comm.synchronize()

    def after_step(self) -> None:
        trainer = self.trainer
        done = trainer.comm_info["iter"] + 1
        if (self.save_freq_iter and done % self.save_freq_iter == 0 and done < len(trainer.train_loader)
                and trainer.accumulation_counter == 0):
            self._write_last(trainer.epoch, done)

    def after_epoch(self) -> None:
        trainer, cfg = self.trainer, self.trainer.cfg
        is_best = False
        if cfg.get("evaluate", True) and "current_metric_value" in trainer.comm_info:
            value = float(trainer.comm_info["current_metric_value"])
            name = trainer.comm_info.get("current_metric_name", "metric")
            if value > trainer.best_metric_value:
                trainer.best_metric_value, is_best = value, True
                trainer.logger.info(f"Best validation {name} updated to: {value:.4f}")
            trainer.logger.info(f"Currently Best {name}: {trainer.best_metric_value:.4f}")
        last = self._path("model_last.pth")
        trainer.logger.info(f"Saving checkpoint to: {last}")
        self._write_last(trainer.epoch + 1, 0)
        if comm.is_main_process():
            if is_best:
                copy_checkpoint(last, self._path("model_best.pth"))
            if self.save_freq and (trainer.epoch + 1) % self.save_freq == 0:
                copy_checkpoint(last, self._path(f"epoch_{trainer.epoch + 1}.pth"))
        comm.synchronize()

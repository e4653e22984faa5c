"""``IterationTimer``: data and batch time per iteration, and the remaining-time estimate."""
from __future__ import annotations

import datetime
import time

from .base import HOOKS, HookBase

__all__ = ["IterationTimer"]


@HOOKS.register_module()
class IterationTimer(HookBase):
    """Records ``data_time`` / ``batch_time`` and appends them and an ETA to ``comm_info['iter_info']``.

    Args:
        warmup_iter: the first ``warmup_iter`` iterations of each epoch are left out of the averages.
    """

    def __init__(self, warmup_iter: int = 1) -> None:
        self.warmup_iter = warmup_iter
        self._last = 0.0

    def before_epoch(self) -> None:
        self._last = time.perf_counter()

    def before_step(self) -> None:
        now = time.perf_counter()
        self.trainer.storage.put_scalar("data_time", now - self._last)

    def after_step(self) -> None:
        now = time.perf_counter()
        storage = self.trainer.storage
        storage.put_scalar("batch_time", now - self._last)
        self._last = now
        data, batch = storage.history("data_time"), storage.history("batch_time")
        iters_left = self.trainer.remaining_iters()
        remain = datetime.timedelta(seconds=int(iters_left * batch.avg))
        self.trainer.comm_info["iter_info"] = self.trainer.comm_info.get("iter_info", "") + (
            f"Data {data.val:.3f} ({data.avg:.3f}) Batch {batch.val:.3f} ({batch.avg:.3f}) Remain {remain} ")
        if self.trainer.comm_info["iter"] + 1 <= self.warmup_iter:
            storage.reset_history("data_time")
            storage.reset_history("batch_time")

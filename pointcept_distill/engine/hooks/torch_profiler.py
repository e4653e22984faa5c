"""``TorchProfiler``: a ``torch.profiler`` trace of a few training iterations, on every process."""
from __future__ import annotations

import os

import torch
from torch.profiler import ProfilerActivity, profile

from ...utils import comm
from .base import HOOKS, HookBase

__all__ = ["TorchProfiler"]


@HOOKS.register_module()
class TorchProfiler(HookBase):
    """Profiles global iterations ``start_iter .. start_iter + num_iters - 1`` (1-based, as logged).

    Every process writes ``<save_path>/profiler/rank<r>.json`` (a Chrome/Perfetto trace) and ``rank<r>.txt``
    (the ops sorted by self device time, then by self CPU time, totals over the profiled iterations), so that
    the processes of a multi-GPU run can be compared side by side.

    Args:
        start_iter: first profiled iteration; leave a few for warm-up (allocator, algorithm selection).
        num_iters: profiled iterations.
        row_limit: rows of each table.
    """

    def __init__(self, start_iter: int = 6, num_iters: int = 4, row_limit: int = 40) -> None:
        if start_iter < 1 or num_iters < 1:
            raise ValueError(f"TorchProfiler: start_iter ({start_iter}) and num_iters ({num_iters}) must be >= 1")
        self.start_iter, self.num_iters, self.row_limit = start_iter, num_iters, row_limit
        self._profile: profile | None = None

    def before_step(self) -> None:
        if self.trainer.global_iter == self.start_iter and self._profile is None:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
            self._profile = profile(activities=activities, record_shapes=False)
            self._profile.__enter__()

    def after_step(self) -> None:
        if self._profile is not None and self.trainer.global_iter == self.start_iter + self.num_iters - 1:
            self._finish()

    def after_train(self) -> None:
        if self._profile is not None:  # training ended inside the window
            self._finish()

    def _finish(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        prof, self._profile = self._profile, None
        prof.__exit__(None, None, None)
        folder = os.path.join(self.trainer.cfg.save_path, "profiler")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"rank{comm.get_rank()}")
        prof.export_chrome_trace(path + ".json")
        averages = prof.key_averages()
        device_key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        with open(path + ".txt", "w", encoding="utf-8") as f:
            f.write(f"iterations {self.start_iter}..{self.start_iter + self.num_iters - 1}, rank {comm.get_rank()}"
                    f" of {comm.get_world_size()}\n\n")
            f.write(averages.table(sort_by=device_key, row_limit=self.row_limit) + "\n\n")
            f.write(averages.table(sort_by="self_cpu_time_total", row_limit=self.row_limit) + "\n")
        self.trainer.logger.info(f"TorchProfiler: iterations {self.start_iter}..{self.start_iter + self.num_iters - 1}"
                                 f" written to {path}.json / .txt")

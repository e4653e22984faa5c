"""``EventStorage``: running averages of the scalars hooks log during an epoch (Pointcept's names)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

__all__ = ["AverageMeter", "EventStorage"]


class AverageMeter:
    """Last value, running sum, count and mean; values may be floats or numpy arrays."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.val: Any = 0.0
        self.total: Any = 0.0
        self.count = 0

    def update(self, val: Any, n: int = 1) -> None:
        self.val = val
        self.total = self.total + val * n
        self.count += n

    @property
    def avg(self) -> Any:
        return self.total / max(self.count, 1)


class EventStorage:
    """Named AverageMeters; ``reset_histories`` clears them at each epoch end."""

    def __init__(self) -> None:
        self._history: defaultdict[str, AverageMeter] = defaultdict(AverageMeter)

    def put_scalar(self, name: str, value: float | np.ndarray, n: int = 1) -> None:
        self._history[name].update(value, n)

    def history(self, name: str) -> AverageMeter:
        if name not in self._history:
            raise KeyError(f"EventStorage: no history named '{name}' (have: {sorted(self._history)})")
        return self._history[name]

    def has(self, name: str) -> bool:
        return name in self._history

    def reset_history(self, name: str) -> None:
        self._history[name].reset()

    def reset_histories(self) -> None:
        for meter in self._history.values():
            meter.reset()

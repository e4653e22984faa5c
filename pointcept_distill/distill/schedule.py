"""``KDWeightSchedule``: how the weight of every KD term moves over training (``distill.kd_weight_schedule``)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KDWeightSchedule"]


@dataclass(frozen=True)
class KDWeightSchedule:
    """A factor in [0, 1] on every KD term, by the share of training done (0 at the first step, 1 after the last).

    It ramps linearly from 0 to 1 over the first ``warmup`` of training (the student first learns from the labels,
    then from the teacher) and falls linearly from 1 at ``decay_from`` to 0 at the end (the last steps fit the
    labels alone); ``KDWeightSchedule()`` is the constant 1.

    Args:
        warmup: share of training of the ramp up, in [0, 1).
        decay_from: share of training after which the factor falls, in [warmup, 1].
    """

    warmup: float = 0.0
    decay_from: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup < 1.0 or not self.warmup <= self.decay_from <= 1.0:
            raise ValueError(f"distill.kd_weight_schedule needs 0 <= warmup < 1 and warmup <= decay_from <= 1, got "
                             f"warmup={self.warmup}, decay_from={self.decay_from}")

    def factor(self, progress: float) -> float:
        """The factor at ``progress`` (share of training done, in [0, 1])."""
        up = min(1.0, progress / self.warmup) if self.warmup > 0 else 1.0
        down = min(1.0, (1.0 - progress) / (1.0 - self.decay_from)) if self.decay_from < 1 else 1.0
        return max(0.0, up * down)

"""``KDLossHook``: one configured KD loss (``distill.<name>``), adding its terms to each training step."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...engine.hooks import HookBase
from ..schedule import KDWeightSchedule
from ..step import DistillStep, MatchedStage

__all__ = ["KDLossHook"]


class KDLossHook(HookBase):
    """Adds one KD loss's terms to the step (``after_forward``), computed from the step's shared work
    (``trainer.distill_step``, a ``DistillStep``).

    The loss's class names what it reads: ``step_inputs`` (fields of ``DistillStep``: called once per step) or
    ``stage_inputs`` (fields of ``MatchedStage``: called once per captured stage, its terms suffixed
    ``_<stage>`` when there are several). A per-stage loss with a ``start`` method (``TopologyKD``) is started
    as soon as the shared work is done (``start``), so that its host work overlaps the other losses' work.

    Args:
        name: the ``distill`` config key; also names the loss's parameters in the optimizer and checkpoints.
        loss: the loss, or for a loss built once per stage (``stage_widths``) a ``ModuleDict`` by stage.
        schedule: a factor on the terms by the share of training done (``distill.kd_weight_schedule``); None:
            the terms as the loss returns them. The factor is the step's, set in ``before_step`` into a device
            tensor (``factor``), so that a captured step's graphs read each step's value.

    A loss that reads only the step's logits (``step_inputs``) is ``capturable``: a captured training step records
    it in its graphs; so is a per-stage loss whose class says ``capturable = True`` (no host work: it reads the
    stage's ``valid`` rows to leave a padded batch's padding sample out); the others (``TopologyKD``: persistence
    pairs on the host) are not.
    """

    def __init__(self, name: str, loss: nn.Module, schedule: KDWeightSchedule | None = None) -> None:
        cls = type(next(iter(loss.values())) if isinstance(loss, nn.ModuleDict) else loss)
        self.stage_capturable: bool = getattr(cls, "capturable", False)
        self.step_inputs: tuple[str, ...] | None = getattr(cls, "step_inputs", None)
        self.stage_inputs: tuple[str, ...] | None = getattr(cls, "stage_inputs", None)
        if (self.step_inputs is None) == (self.stage_inputs is None):
            raise TypeError(f"distill.{name}: {cls.__name__} must name what it reads in exactly one of "
                            f"step_inputs (fields of DistillStep) or stage_inputs (fields of MatchedStage)")
        self.name, self.loss, self.schedule = name, loss, schedule
        self.factor: Tensor | None = None      # 0-d, the schedule's factor of the current step

    @property
    def capturable(self) -> bool:
        return not self.reads_stages or self.stage_capturable

    @property
    def reads_stages(self) -> bool:
        return self.stage_inputs is not None

    @property
    def reads_gradients(self) -> bool:
        return any(field.endswith("_grad") for field in self.stage_inputs or ())

    def _stage_loss(self, stage: str) -> nn.Module:
        return self.loss[stage] if isinstance(self.loss, nn.ModuleDict) else self.loss

    def start(self, stages: dict[str, MatchedStage]) -> dict[str, Any] | None:
        """The loss started on every stage (``{stage: pending}``) if it can be; None otherwise."""
        if not self.reads_stages or not all(hasattr(self._stage_loss(s), "start") for s in stages):
            return None
        return {s: self._stage_loss(s).start(*self._stage_args(m)) for s, m in stages.items()}

    def _stage_args(self, stage: MatchedStage) -> list[Tensor]:
        return [getattr(stage, field) for field in self.stage_inputs]

    def terms(self, step: DistillStep) -> dict[str, Tensor]:
        """The loss's terms of ``step``."""
        if self.step_inputs is not None:
            return self.loss(*(getattr(step, field) for field in self.step_inputs))
        started = step.started.get(self.name)
        suffix = len(step.stages) > 1
        terms = {}
        for stage, matched in step.stages.items():
            out = started[stage].result() if started else self._stage_loss(stage)(*self._stage_args(matched))
            terms.update({f"{key}_{stage}" if suffix else key: value for key, value in out.items()})
        return terms

    def before_step(self) -> None:
        if self.schedule is None:
            return
        done = (self.trainer.global_iter - 1) / self.trainer.total_iters    # 0 at the first step
        if self.factor is None:
            self.factor = torch.zeros((), device=self.trainer.device)
        self.factor.fill_(self.schedule.factor(done))

    def after_forward(self, output: dict[str, Tensor]) -> dict[str, Tensor]:
        terms = self.terms(self.trainer.distill_step)
        if self.schedule is None:
            return terms
        if self.factor is None:
            raise RuntimeError(f"distill.{self.name}: after_forward before the step's before_step (the "
                               f"kd_weight_schedule factor is set there)")
        return {key: value * self.factor for key, value in terms.items()}

"""Learning-rate schedulers stepped once per optimizer step; ``total_steps`` is filled in by the trainer.

Milestones of the multi-step schedulers are fractions of ``total_steps``, as in Pointcept configs.
"""
from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from .registry import Registry

__all__ = ["SCHEDULERS", "build_scheduler", "MultiStepLR", "MultiStepWithWarmupLR", "PolyLR", "ExpLR",
           "CosineAnnealingLR", "OneCycleLR"]

SCHEDULERS = Registry("schedulers")


@SCHEDULERS.register_module()
class MultiStepLR(lr_scheduler.MultiStepLR):
    """LR times ``gamma`` at each milestone (a fraction of ``total_steps``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[float], total_steps: int,
                 gamma: float = 0.1, last_epoch: int = -1) -> None:
        super().__init__(optimizer, milestones=[int(m * total_steps) for m in milestones], gamma=gamma,
                         last_epoch=last_epoch)


class _StepFactor:
    """Picklable LR factor of ``MultiStepWithWarmupLR`` (LambdaLR keeps it in its state)."""

    def __init__(self, milestones: list[float], total_steps: int, gamma: float, warmup_rate: float,
                 warmup_scale: float) -> None:
        self.milestones = [m * total_steps for m in milestones]
        self.total_steps, self.gamma = total_steps, gamma
        self.warmup_rate, self.warmup_scale = warmup_rate, warmup_scale

    def __call__(self, step: int) -> float:
        factor = self.gamma ** sum(step >= m for m in self.milestones)
        warm = self.warmup_rate * self.total_steps
        if warm > 0 and step <= warm:
            factor *= 1 - (1 - step / warm) * (1 - self.warmup_scale)
        return factor


@SCHEDULERS.register_module()
class MultiStepWithWarmupLR(lr_scheduler.LambdaLR):
    """Linear warm-up from ``warmup_scale`` over ``warmup_rate * total_steps``, then multi-step decay."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[float], total_steps: int,
                 gamma: float = 0.1, warmup_rate: float = 0.05, warmup_scale: float = 1e-6,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, _StepFactor(milestones, total_steps, gamma, warmup_rate, warmup_scale),
                         last_epoch=last_epoch)


class _PolyFactor:
    def __init__(self, total_steps: int, power: float) -> None:
        self.total_steps, self.power = total_steps, power

    def __call__(self, step: int) -> float:
        return (1 - step / (self.total_steps + 1)) ** self.power


@SCHEDULERS.register_module()
class PolyLR(lr_scheduler.LambdaLR):
    """LR times ``(1 - step / (total_steps + 1)) ** power``."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, _PolyFactor(total_steps, power), last_epoch=last_epoch)


class _ExpFactor:
    def __init__(self, total_steps: int, gamma: float) -> None:
        self.total_steps, self.gamma = total_steps, gamma

    def __call__(self, step: int) -> float:
        return self.gamma ** (step / self.total_steps)


@SCHEDULERS.register_module()
class ExpLR(lr_scheduler.LambdaLR):
    """LR times ``gamma ** (step / total_steps)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, gamma: float = 0.9,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, _ExpFactor(total_steps, gamma), last_epoch=last_epoch)


@SCHEDULERS.register_module()
class CosineAnnealingLR(lr_scheduler.CosineAnnealingLR):
    """Cosine decay to ``eta_min`` over ``total_steps``."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, T_max=total_steps, eta_min=eta_min, last_epoch=last_epoch)


@SCHEDULERS.register_module()
class OneCycleLR(lr_scheduler.OneCycleLR):
    """torch's OneCycleLR; ``max_lr`` may be a list, one per param group (group 0 first)."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float | list[float], total_steps: int,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1) -> None:
        if isinstance(max_lr, (list, tuple)) and len(max_lr) != len(optimizer.param_groups):
            raise ValueError(f"OneCycleLR: max_lr has {len(max_lr)} values but the optimizer has "
                             f"{len(optimizer.param_groups)} param groups (1 + len(param_dicts))")
        super().__init__(optimizer, max_lr=list(max_lr) if isinstance(max_lr, (list, tuple)) else max_lr,
                         total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal_strategy,
                         cycle_momentum=cycle_momentum, base_momentum=base_momentum,
                         max_momentum=max_momentum, div_factor=div_factor, final_div_factor=final_div_factor,
                         three_phase=three_phase, last_epoch=last_epoch)


def build_scheduler(cfg: dict, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
    """Build ``cfg`` (which must hold ``total_steps``, set by the trainer) for ``optimizer``."""
    if "total_steps" not in cfg:
        raise KeyError(f"scheduler config {dict(cfg)!r} has no 'total_steps' (the trainer sets it)")
    return SCHEDULERS.build(dict(cfg, optimizer=optimizer))

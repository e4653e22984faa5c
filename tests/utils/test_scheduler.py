"""Schedulers: total_steps-relative milestones, warm-up, OneCycle per param group."""
from __future__ import annotations

import pytest
import torch

from pointcept_distill.utils.scheduler import build_scheduler


def _opt(groups: int = 1) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=1.0, momentum=0.9)


def _lrs(cfg: dict, steps: int, groups: int = 1) -> list[float]:
    opt = _opt(groups)
    sched = build_scheduler(cfg, opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_milestones_are_fractions_of_total_steps():
    lrs = _lrs(dict(type="MultiStepLR", milestones=[0.5, 0.75], total_steps=8, gamma=0.1), 8)
    assert lrs[:4] == [1.0] * 4 and lrs[4:6] == pytest.approx([0.1] * 2) and lrs[6:] == pytest.approx([0.01] * 2)


def test_warmup_starts_small_then_decays_at_milestones():
    lrs = _lrs(dict(type="MultiStepWithWarmupLR", milestones=[0.5], total_steps=10, warmup_rate=0.2,
                    warmup_scale=0.01), 10)
    assert lrs[0] == pytest.approx(0.01) and lrs[2] == pytest.approx(1.0) and lrs[6] == pytest.approx(0.1)


def test_poly_and_exp_and_cosine_decay_monotonically():
    for cfg in (dict(type="PolyLR", total_steps=10), dict(type="ExpLR", total_steps=10, gamma=0.1),
                dict(type="CosineAnnealingLR", total_steps=10)):
        lrs = _lrs(cfg, 10)
        assert lrs[0] == 1.0 and all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.7, cfg["type"]


def test_one_cycle_per_group_max_lr_and_group_count_check():
    opt = _opt(2)
    build_scheduler(dict(type="OneCycleLR", max_lr=[0.2, 0.02], total_steps=10, pct_start=0.5), opt)
    assert [g["max_lr"] for g in opt.param_groups] == [0.2, 0.02]
    with pytest.raises(ValueError, match="max_lr has 2 values but the optimizer has 1 param groups"):
        build_scheduler(dict(type="OneCycleLR", max_lr=[0.2, 0.02], total_steps=10), _opt(1))


def test_total_steps_is_required():
    with pytest.raises(KeyError, match="total_steps"):
        build_scheduler(dict(type="PolyLR"), _opt())

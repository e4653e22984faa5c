from types import SimpleNamespace

import pytest
import torch

from pointcept_distill.distill.distiller import build_weight_schedule
from pointcept_distill.distill.hooks import KDLossHook
from pointcept_distill.distill.losses import ChannelWiseKD
from pointcept_distill.distill.schedule import KDWeightSchedule


def test_constant_by_default_and_ramps():
    assert [KDWeightSchedule().factor(p) for p in (0.0, 0.5, 1.0)] == [1.0, 1.0, 1.0]
    up = KDWeightSchedule(warmup=0.2)
    assert up.factor(0.0) == 0.0 and up.factor(0.1) == pytest.approx(0.5) and up.factor(0.2) == 1.0
    assert up.factor(0.9) == 1.0
    down = KDWeightSchedule(decay_from=0.75)
    assert down.factor(0.5) == 1.0 and down.factor(0.875) == pytest.approx(0.5) and down.factor(1.0) == 0.0
    both = KDWeightSchedule(warmup=0.5, decay_from=0.5)
    assert both.factor(0.25) == pytest.approx(0.5) and both.factor(0.5) == 1.0 and both.factor(0.75) == 0.5


@pytest.mark.parametrize("bad", [dict(warmup=1.0), dict(warmup=-0.1), dict(warmup=0.5, decay_from=0.4),
                                 dict(decay_from=1.5)])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError, match="kd_weight_schedule"):
        KDWeightSchedule(**bad)


def test_built_from_config():
    assert build_weight_schedule(None) is None and build_weight_schedule("None") is None
    assert build_weight_schedule(dict(warmup=0.1)) == KDWeightSchedule(warmup=0.1, decay_from=1.0)
    with pytest.raises(KeyError, match="kd_weight_schedule.*warm_up"):
        build_weight_schedule(dict(warm_up=0.1))


def _trainer(iteration, max_epoch=2, per_epoch=5):
    g = torch.Generator().manual_seed(0)
    step = SimpleNamespace(student_logits=torch.randn(12, 4, generator=g),
                           teacher_logits=torch.randn(12, 4, generator=g), offset=torch.tensor([5, 12]), valid=None)
    epoch, it = divmod(iteration, per_epoch)
    return SimpleNamespace(distill_step=step, total_iters=max_epoch * per_epoch, global_iter=epoch * per_epoch + it + 1,
                           device=torch.device("cpu"))


def test_hook_scales_its_terms_by_the_share_of_training_done():
    plain = KDLossHook("cwd_kd", ChannelWiseKD())
    ramped = KDLossHook("cwd_kd", ChannelWiseKD(), KDWeightSchedule(warmup=0.5))
    factors = []
    for iteration, factor in [(0, 0.0), (2, 0.4), (5, 1.0), (9, 1.0)]:   # 10 iterations in all
        plain.trainer = ramped.trainer = _trainer(iteration)
        plain.before_step()
        ramped.before_step()                    # the step's factor, into the one device tensor the terms read
        factors.append(ramped.factor)
        full = plain.after_forward({})["loss_kd_cwd"]
        assert full > 0
        torch.testing.assert_close(ramped.after_forward({})["loss_kd_cwd"], full * factor)
    assert plain.factor is None and all(f is factors[0] for f in factors)     # a captured graph reads it


def test_every_loss_hook_of_a_section_gets_its_schedule():
    from pointcept_distill.distill.distiller import build_loss_hooks
    cfg = dict(cwd_kd=dict(type="ChannelWiseKD", temperature=2.0), dist_kd=dict(type="DISTKD"),
               kd_weight_schedule=dict(decay_from=0.8))
    hooks = build_loss_hooks(cfg, ["bottleneck"], None, None)
    assert [h.name for h in hooks] == ["cwd_kd", "dist_kd"]
    assert all(h.schedule == KDWeightSchedule(decay_from=0.8) for h in hooks)
    assert all(h.schedule is None for h in build_loss_hooks(dict(cfg, kd_weight_schedule=None), [], None, None))

import pytest
import torch
import torch.nn.functional as F

from pointcept_distill.distill.losses import LogitKD
from pointcept_distill.models.builder import LOSSES


def _manual(student, teacher, target, t, ignore=-1):
    """sum_i sum_c p_ic log(p_ic / q_ic) / M * t^2 over labelled points, p teacher, q student."""
    total, m = 0.0, 0
    for s_i, t_i, y in zip(student, teacher, target):
        if y == ignore:
            continue
        p = torch.softmax(t_i.double() / t, 0)
        q = torch.softmax(s_i.double() / t, 0)
        total += float((p * (p.log() - q.log())).sum())
        m += 1
    return total / m * t * t


@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_matches_manual_kl(tau):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(20, 5, generator=g), torch.randn(20, 5, generator=g)
    y = torch.randint(-1, 5, (20,), generator=g)
    out = LogitKD(temperature=tau, loss_weight=0.3)(s, t, y)
    assert list(out) == ["loss_kd_logit"]
    assert out["loss_kd_logit"].item() == pytest.approx(0.3 * _manual(s, t, y, tau), rel=1e-5)


def test_zero_when_student_equals_teacher():
    s = torch.randn(10, 4)
    assert LogitKD(temperature=2.0)(s, s.clone(), torch.zeros(10, dtype=torch.long))["loss_kd_logit"].abs() < 1e-6


def test_ignore_index_points_left_out():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(12, 3, generator=g), torch.randn(12, 3, generator=g)
    y = torch.tensor([0, 1, 2, -1, 0, 1, -1, 2, 0, 1, 2, 0])
    kd = LogitKD()
    base = kd(s, t, y)["loss_kd_logit"]
    s2 = s.clone()
    s2[y == -1] += 10 * torch.randn(2, 3, generator=g)
    assert torch.allclose(kd(s2, t, y)["loss_kd_logit"], base)
    keep = y != -1
    assert torch.allclose(kd(s[keep], t[keep], y[keep])["loss_kd_logit"], base)


def test_teacher_detached_student_gets_gradient():
    s = torch.randn(6, 4, requires_grad=True)
    t = torch.randn(6, 4, requires_grad=True)
    LogitKD()(s, t, torch.zeros(6, dtype=torch.long))["loss_kd_logit"].backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_all_ignored_is_zero_and_backpropagates():
    s = torch.randn(4, 3, requires_grad=True)
    out = LogitKD()(s, torch.randn(4, 3), torch.full((4,), -1))["loss_kd_logit"]
    out.backward()
    assert out.item() == 0.0 and s.grad is not None


def test_built_from_registry_and_validates():
    kd = LOSSES.build(dict(type="LogitKD", temperature=3.0))
    assert isinstance(kd, LogitKD) and kd.t == 3.0
    with pytest.raises(ValueError, match="LogitKD"):
        LOSSES.build(dict(type="LogitKD", temperature=0.0))
    with pytest.raises(ValueError, match="LogitKD"):
        kd(torch.randn(3, 2), torch.randn(3, 4), torch.zeros(3, dtype=torch.long))


def test_class_balanced_averages_per_class_then_over_present_classes():
    torch.manual_seed(0)
    s, t = torch.randn(9, 4), torch.randn(9, 4)
    y = torch.tensor([0, 0, 0, 0, 0, 0, 2, 2, -1])          # class 0 frequent, class 2 rare, one ignored point
    kl = (F.softmax(t, -1) * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1)
    expected = (kl[:6].mean() + kl[6:8].mean()) / 2
    out = LogitKD(class_balanced=True)(s, t, y)["loss_kd_logit"]
    torch.testing.assert_close(out, expected)
    # the per-point mean weighs the frequent class 6:2; the balanced one 1:1
    assert not torch.allclose(LogitKD()(s, t, y)["loss_kd_logit"], expected)


def test_teacher_correct_only_leaves_out_the_teachers_mistakes():
    torch.manual_seed(1)
    s, t = torch.randn(8, 3), torch.randn(8, 3)
    y = t.argmax(-1).clone()
    y[:3] = (y[:3] + 1) % 3                                   # the teacher is wrong on the first three points
    out = LogitKD(teacher_correct_only=True)(s, t, y)["loss_kd_logit"]
    torch.testing.assert_close(out, LogitKD()(s[3:], t[3:], y[3:])["loss_kd_logit"])

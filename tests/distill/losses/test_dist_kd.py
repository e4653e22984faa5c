import pytest
import torch

from pointcept_distill.distill.losses import DISTKD, pearson_rows
from pointcept_distill.models.builder import LOSSES


def _logits(n=31, c=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 2, torch.randn(n, c, generator=g) * 2


def _pearson(x, y):
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


def _reference(student, teacher, t, beta, gamma):
    p, q = torch.softmax(student.double() / t, 1), torch.softmax(teacher.double() / t, 1)
    inter = 1 - sum(_pearson(p[i], q[i]) for i in range(len(p))) / len(p)
    intra = 1 - sum(_pearson(p[:, c], q[:, c]) for c in range(p.shape[1])) / p.shape[1]
    return t * t * (beta * inter + gamma * intra)


@pytest.mark.parametrize("tau,beta,gamma", [(1.0, 1.0, 1.0), (2.0, 0.5, 2.0)])
def test_matches_loop_reference(tau, beta, gamma):
    s, t = _logits()
    out = DISTKD(temperature=tau, beta=beta, gamma=gamma, loss_weight=3.0)(s, t)
    assert list(out) == ["loss_kd_dist"]
    assert out["loss_kd_dist"].item() == pytest.approx(3.0 * _reference(s, t, tau, beta, gamma), rel=1e-5)


def test_pearson_ignores_scale_and_shift():
    a, b = _logits(n=4, c=9)
    torch.testing.assert_close(pearson_rows(a, b), pearson_rows(3.0 * a + 5.0, b))
    assert torch.allclose(pearson_rows(a, a), torch.ones(4))
    assert torch.allclose(pearson_rows(a, -a), -torch.ones(4))
    assert pearson_rows(torch.ones(1, 9), a[:1]).item() == 0.0     # a constant row correlates with nothing


def test_zero_when_student_equals_teacher_and_bounded():
    s, t = _logits()
    assert DISTKD()(s, s.clone())["loss_kd_dist"].abs() < 1e-5
    # each relation term lies in [0, 2]
    assert 0.0 < DISTKD()(s, t)["loss_kd_dist"].item() <= 4.0


def test_inter_and_intra_terms_are_separate():
    s, t = _logits()
    inter = DISTKD(beta=1.0, gamma=0.0)(s, t)["loss_kd_dist"]
    intra = DISTKD(beta=0.0, gamma=1.0)(s, t)["loss_kd_dist"]
    torch.testing.assert_close(DISTKD(beta=2.0, gamma=3.0)(s, t)["loss_kd_dist"], 2 * inter + 3 * intra)
    # swapping the points of the teacher keeps every point's class distribution but breaks the per-class relation
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(DISTKD(beta=0.0)(s, t[perm])["loss_kd_dist"], intra)


def test_teacher_detached_student_gets_gradient():
    s, t = (x.requires_grad_(True) for x in _logits())
    DISTKD()(s, t)["loss_kd_dist"].backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_built_from_registry_and_validates():
    kd = LOSSES.build(dict(type="DISTKD", temperature=2.0, gamma=0.5))
    assert isinstance(kd, DISTKD) and kd.t == 2.0 and kd.gamma == 0.5
    with pytest.raises(ValueError, match="temperature"):
        DISTKD(temperature=-1.0)
    s, t = _logits()
    with pytest.raises(ValueError, match="DISTKD: student"):
        kd(s, t[:, :3])


def test_rows_outside_valid_take_no_part():
    """A padded batch (a captured step): padding rows with arbitrary logits, marked invalid, leave the loss and the
    real rows' gradients as on the unpadded rows."""
    s, t = _logits()
    pad_s, pad_t = _logits(n=9, seed=1)
    kd = DISTKD(temperature=2.0, gamma=0.7)
    s_real = s.clone().requires_grad_(True)
    want = kd(s_real, t)["loss_kd_dist"]
    want.backward()
    padded = torch.cat([s, pad_s * 5]).requires_grad_(True)
    valid = torch.arange(40) < 31
    got = kd(padded, torch.cat([t, pad_t]), valid)["loss_kd_dist"]
    got.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    torch.testing.assert_close(padded.grad[:31], s_real.grad, rtol=1e-4, atol=1e-7)
    assert padded.grad[31:].abs().max() == 0
    assert kd(padded.detach(), torch.cat([t, pad_t]))["loss_kd_dist"].item() != pytest.approx(want.item(), rel=1e-3)

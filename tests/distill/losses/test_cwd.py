import pytest
import torch

from pointcept_distill.distill.losses import ChannelWiseKD
from pointcept_distill.models.builder import LOSSES


def _reference(student, teacher, offset, t):
    """Per sample and channel: softmax over the sample's points, KL(teacher || student); t^2 / C * sum_c,
    averaged over the samples (the official code's n * c normalisation)."""
    starts = [0] + offset[:-1].tolist()
    total = 0.0
    for start, end in zip(starts, offset.tolist()):
        s, q = student[start:end].double() / t, teacher[start:end].double() / t   # (n_b, C)
        log_p, log_q = torch.log_softmax(s, 0), torch.log_softmax(q, 0)           # over the points
        total += float((log_q.exp() * (log_q - log_p)).sum())
    return total / (len(offset) * student.shape[1]) * t * t


def _logits(n=23, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_matches_per_sample_reference(tau):
    s, t = _logits()
    offset = torch.tensor([7, 8, 23])            # a one-point sample: its distributions are equal, KL 0
    out = ChannelWiseKD(temperature=tau, loss_weight=3.0)(s, t, offset)
    assert list(out) == ["loss_kd_cwd"]
    assert out["loss_kd_cwd"].item() == pytest.approx(3.0 * _reference(s, t, offset, tau), rel=1e-5)


def test_softmax_runs_over_points_not_classes():
    # adding a per-point constant to every class leaves per-point class softmaxes alone but moves the channel maps
    s, t = _logits()
    offset = torch.tensor([10, 23])
    kd = ChannelWiseKD(temperature=1.0)
    shift = torch.randn(23, 1)
    assert not torch.allclose(kd(s + shift, t, offset)["loss_kd_cwd"], kd(s, t, offset)["loss_kd_cwd"])
    # adding a per-sample, per-class constant does not move the channel maps
    per_sample = torch.cat([torch.full((10, 5), 2.0), torch.full((13, 5), -7.0)]) * torch.arange(5.0)
    torch.testing.assert_close(kd(s + per_sample, t, offset)["loss_kd_cwd"], kd(s, t, offset)["loss_kd_cwd"])


def test_zero_when_student_equals_teacher():
    s, _ = _logits()
    assert ChannelWiseKD()(s, s.clone(), torch.tensor([9, 23]))["loss_kd_cwd"].abs() < 1e-6


def test_teacher_detached_student_gets_gradient():
    s, t = (x.requires_grad_(True) for x in _logits())
    ChannelWiseKD()(s, t, torch.tensor([4, 23]))["loss_kd_cwd"].backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_temperature_scales_logits_and_loss():
    s, t = _logits()
    offset = torch.tensor([12, 23])
    hot = ChannelWiseKD(temperature=4.0)(s, t, offset)["loss_kd_cwd"]
    cold = ChannelWiseKD(temperature=1.0)(s / 4.0, t / 4.0, offset)["loss_kd_cwd"]
    torch.testing.assert_close(hot, 16.0 * cold)


def test_empty_sample_is_not_averaged_in():
    s, t = _logits()
    kd = ChannelWiseKD()
    with_empty = kd(s, t, torch.tensor([10, 10, 23]))["loss_kd_cwd"]
    torch.testing.assert_close(with_empty, kd(s, t, torch.tensor([10, 23]))["loss_kd_cwd"])


def test_built_from_registry_and_validates():
    kd = LOSSES.build(dict(type="ChannelWiseKD", temperature=2.0))
    assert isinstance(kd, ChannelWiseKD) and kd.t == 2.0
    assert ChannelWiseKD().t == 4.0
    with pytest.raises(ValueError, match="temperature"):
        ChannelWiseKD(temperature=0.0)
    s, t = _logits()
    with pytest.raises(ValueError, match="ChannelWiseKD: student"):
        kd(s, t[:, :3], torch.tensor([23]))
    with pytest.raises(ValueError, match="ChannelWiseKD: student"):
        kd(s[:, 0], t[:, 0], torch.tensor([23]))
    with pytest.raises(ValueError, match="ChannelWiseKD: student"):
        kd(s, t, torch.tensor([[23]]))
    with pytest.raises(ValueError, match="offset\\[-1\\]"):
        kd(s, t, torch.tensor([5, 20]))


def test_padding_sample_outside_valid_takes_no_part():
    """A padded batch (a captured step): a padding sample of arbitrary logits, marked invalid, neither adds to the
    KL nor counts as a sample; the real rows' gradients are the unpadded batch's."""
    s, t = _logits()
    pad_s, pad_t = (x[:7] * 3 for x in _logits())
    kd = ChannelWiseKD(temperature=2.0)
    s_real = s.clone().requires_grad_(True)
    want = kd(s_real, t, torch.tensor([10, 23]))["loss_kd_cwd"]
    want.backward()
    padded = torch.cat([s, pad_s]).requires_grad_(True)
    offset, valid = torch.tensor([10, 23, 30]), torch.arange(30) < 23
    got = kd(padded, torch.cat([t, pad_t.flip(0)]), offset, valid)["loss_kd_cwd"]
    got.backward()
    torch.testing.assert_close(got, want.detach())
    torch.testing.assert_close(padded.grad[:23], s_real.grad)
    assert padded.grad[23:].abs().max() == 0
    assert not torch.allclose(kd(padded.detach(), torch.cat([t, pad_t.flip(0)]), offset)["loss_kd_cwd"], want)

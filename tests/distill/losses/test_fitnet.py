import pytest
import torch

from pointcept_distill.distill.losses import FeatureMimicKD
from pointcept_distill.models.builder import LOSSES


def _feats(m=17, c_s=4, c_t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, c_s, generator=g), torch.randn(m, c_t, generator=g)


def test_mse_of_the_projected_student_features():
    s, t = _feats()
    kd = FeatureMimicKD(student_channels=4, teacher_channels=6, loss_weight=0.5)
    w, b = kd.projector.weight.detach().double(), kd.projector.bias.detach().double()
    want = ((s.double() @ w.T + b - t.double()) ** 2).mean()          # over points and channels
    out = kd(s, t)
    assert list(out) == ["loss_kd_feat"]
    assert out["loss_kd_feat"].item() == pytest.approx(0.5 * float(want), rel=1e-6)


def test_the_regressor_is_one_linear_layer():
    kd = FeatureMimicKD(student_channels=4, teacher_channels=6)
    assert isinstance(kd.projector, torch.nn.Linear) and len(list(kd.children())) == 1
    assert (kd.projector.in_features, kd.projector.out_features) == (4, 6)


def test_zero_when_the_projection_is_the_teacher():
    s, _ = _feats(c_t=4)
    kd = FeatureMimicKD(student_channels=4, teacher_channels=4)
    with torch.no_grad():
        kd.projector.weight.copy_(torch.eye(4))
        kd.projector.bias.zero_()
    assert kd(s, s.clone())["loss_kd_feat"].item() == 0.0


def test_gradients_reach_student_and_projector_not_teacher():
    s, t = (x.requires_grad_(True) for x in _feats())
    kd = FeatureMimicKD(student_channels=4, teacher_channels=6)
    kd(s, t)["loss_kd_feat"].backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in kd.parameters())


def test_built_from_registry_and_validates():
    kd = LOSSES.build(dict(type="FeatureMimicKD", student_channels=4, teacher_channels=6))
    assert isinstance(kd, FeatureMimicKD)
    s, t = _feats()
    for bad_s, bad_t in ((s[:5], t), (s[:, :3], t), (s, t[:, :5]), (s[:, 0], t)):
        with pytest.raises(ValueError, match="FeatureMimicKD: student"):
            kd(bad_s, bad_t)

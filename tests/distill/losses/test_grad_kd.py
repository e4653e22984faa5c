import pytest
import torch
import torch.nn.functional as F

from pointcept_distill.distill.losses import GradGuidedKD, importance_map, task_gradient
from pointcept_distill.models.builder import LOSSES


def _features_and_grad(seed=0, counts=(5, 7, 4), channels=6, classes=3):
    """A leaf feature, a linear head and CE; the grad is dL/dfeat from task_gradient."""
    g = torch.Generator().manual_seed(seed)
    n = sum(counts)
    feat = torch.randn(n, channels, generator=g, dtype=torch.float64, requires_grad=True)
    head = torch.randn(channels, classes, generator=g, dtype=torch.float64)
    target = torch.randint(0, classes, (n,), generator=g)
    loss = F.cross_entropy(feat @ head, target)
    offset = torch.tensor(counts).cumsum(0)
    return feat, head, target, offset, loss


def _hand_map(feat, head, target, counts, norm):
    """Per sample: w_k = mean_i |dL/dF_ik| by autograd, M_i = sum_k w_k F_ik, then normalise."""
    loss = F.cross_entropy(feat @ head, target)
    (grad,) = torch.autograd.grad(loss, feat)
    maps, start = [], 0
    for c in counts:
        w = [grad[start:start + c, k].abs().mean() for k in range(feat.shape[1])]
        m = torch.stack([sum(w[k] * feat[i, k] for k in range(feat.shape[1]))
                         for i in range(start, start + c)]).detach()
        if norm == "minmax":
            m = (m - m.min()) / (m.max() - m.min() + 1e-6)
        elif norm == "zscore":
            m = (m - m.mean()) / (m.std(unbiased=False) + 1e-6)
        maps.append(m)
        start += c
    return torch.cat(maps)


@pytest.mark.parametrize("norm", ["minmax", "zscore", "none"])
def test_importance_map_matches_hand_computation(norm):
    counts = (5, 7, 4)
    feat, head, target, offset, loss = _features_and_grad(counts=counts)
    grad = task_gradient(loss, feat)
    got = importance_map(feat, grad, offset, norm)
    assert torch.allclose(got, _hand_map(feat, head, target, counts, norm), atol=1e-10)


def test_maps_are_normalised_per_sample():
    feat, _, _, offset, loss = _features_and_grad(counts=(6, 9))
    grad = task_gradient(loss, feat)
    m = importance_map(feat, grad, offset, "minmax").detach()
    for part in (m[:6], m[6:]):
        assert part.min().abs() < 1e-9 and abs(part.max().item() - 1.0) < 1e-5
    z = importance_map(feat, grad, offset, "zscore").detach()
    for part in (z[:6], z[6:]):
        assert abs(part.mean().item()) < 1e-9 and abs(part.std(unbiased=False).item() - 1.0) < 1e-5
    # one sample's map does not depend on another sample's points
    feat2, grad2 = feat.detach().clone(), grad.clone()
    feat2[6:] *= 7.0
    grad2[6:] *= 0.1
    assert torch.allclose(importance_map(feat2, grad2, offset, "minmax")[:6], m[:6])


def test_weights_are_constants():
    feat, _, _, offset, loss = _features_and_grad()
    grad = task_gradient(loss, feat).requires_grad_(True)
    importance_map(feat, grad, offset).sum().backward()
    assert grad.grad is None and feat.grad is not None


def test_task_gradient_keeps_graph_for_backward():
    feat, _, _, _, loss = _features_and_grad()
    grad = task_gradient(loss, feat)
    assert not grad.requires_grad
    loss.backward()
    assert torch.allclose(feat.grad, grad)
    with pytest.raises(ValueError, match="task_gradient"):
        task_gradient(loss, feat.detach())


def test_loss_is_smooth_l1_of_maps_and_zero_when_equal():
    feat, head, target, offset, loss = _features_and_grad(seed=3)
    grad = task_gradient(loss, feat)
    t_feat = torch.randn_like(feat)
    t_grad = torch.randn_like(grad)
    kd = GradGuidedKD(norm="minmax", beta=0.5, loss_weight=10.0)
    out = kd(feat, grad, t_feat, t_grad, offset)["loss_kd_grad"]
    want = F.smooth_l1_loss(importance_map(feat, grad, offset), importance_map(t_feat, t_grad, offset), beta=0.5)
    assert torch.allclose(out, 10.0 * want.float())
    out.backward()
    assert feat.grad.abs().sum() > 0
    same = kd(feat.detach(), grad, feat.detach().clone(), grad.clone(), offset)["loss_kd_grad"]
    assert same.item() == 0.0


def test_teacher_gets_no_gradient_and_registry():
    kd = LOSSES.build(dict(type="GradGuidedKD", norm="zscore"))
    s = torch.randn(8, 4, requires_grad=True)
    t = torch.randn(8, 4, requires_grad=True)
    kd(s, torch.randn(8, 4), t, torch.randn(8, 4), torch.tensor([3, 8]))["loss_kd_grad"].backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match="GradGuidedKD"):
        LOSSES.build(dict(type="GradGuidedKD", norm="l2"))
    with pytest.raises(ValueError, match="GradGuidedKD"):
        kd(s, s, torch.randn(5, 4), torch.randn(5, 4), torch.tensor([8]))

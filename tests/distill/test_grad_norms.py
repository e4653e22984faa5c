"""Per-loss gradient norms: values, parameters a term does not reach, the fp16 loss scale, the logged names."""
import pytest
import torch

from pointcept_distill.distill.grad_norms import gradient_norm, loss_gradient_norms
from pointcept_distill.engine.train import sum_losses


def _net():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    x = torch.randn(5, 3)
    hidden = a(x)
    return a, b, hidden, b(hidden)


def test_norm_of_the_gradient_over_all_parameters():
    a, b, _, out = _net()
    params = [*a.parameters(), *b.parameters()]
    loss = (out ** 2).mean()
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    want = torch.cat([g.reshape(-1) for g in grads]).norm()
    torch.testing.assert_close(gradient_norm(loss, params), want)
    loss.backward()                                          # the graph is kept for the step's backward
    assert all(p.grad is not None for p in params)


def test_unreached_parameters_count_as_zero_and_constants_have_norm_zero():
    a, b, hidden, _ = _net()
    loss = hidden.abs().mean()                               # does not reach b
    want = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(a.parameters()), retain_graph=True)])
    torch.testing.assert_close(gradient_norm(loss, [*a.parameters(), *b.parameters()]), want.norm())
    assert gradient_norm(torch.tensor(3.0), list(a.parameters())).item() == 0.0


def test_loss_scale_is_divided_out():
    a, b, _, out = _net()
    params = [*a.parameters(), *b.parameters()]
    loss = out.sum()
    torch.testing.assert_close(gradient_norm(loss, params, scale=1024.0), gradient_norm(loss, params))


def test_named_norms_and_ratios_stay_out_of_the_total_loss():
    a, b, hidden, out = _net()
    params = [*a.parameters(), *b.parameters()]
    losses = {"loss_seg": (out ** 2).mean(), "loss_kd_logit": 0.1 * out.sum(), "loss_kd_feat": hidden.mean(),
              "accuracy": torch.tensor(0.5)}
    norms = loss_gradient_norms(losses, params)
    assert set(norms) == {"grad_norm/loss_seg", "grad_norm/loss_kd_logit", "grad_norm/loss_kd_feat",
                          "grad_ratio/loss_kd_logit", "grad_ratio/loss_kd_feat"}
    for key in ("loss_seg", "loss_kd_logit", "loss_kd_feat"):
        torch.testing.assert_close(norms[f"grad_norm/{key}"], gradient_norm(losses[key], params))
    assert norms["grad_ratio/loss_kd_feat"].item() == pytest.approx(
        (norms["grad_norm/loss_kd_feat"] / norms["grad_norm/loss_seg"]).item())
    total = sum_losses({**losses, **norms})
    torch.testing.assert_close(total, losses["loss_seg"] + losses["loss_kd_logit"] + losses["loss_kd_feat"])

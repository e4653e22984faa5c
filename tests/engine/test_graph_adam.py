"""engine/graph_adam.py: the Adam/AdamW step with tensor hyperparameters is torch's step, schedules included."""
from __future__ import annotations

import copy

import pytest
import torch

from pointcept_distill.engine.graph_adam import GraphAdam


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((7, 3), (5,), (2, 3, 4))]


@pytest.mark.parametrize("kind, weight_decay", [(torch.optim.AdamW, 0.05), (torch.optim.Adam, 0.01),
                                                (torch.optim.AdamW, 0.0)])
def test_graph_adam_steps_as_torch_with_changing_lr_and_betas(kind, weight_decay):
    """Six steps with a new lr and beta1 at every step (OneCycle's momentum cycle) and two param groups: the
    parameters and the state equal torch's (float rounding), and the state keeps torch's entries and types."""
    params, reference = _params(0), _params(0)
    make = lambda ps: kind([{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}], lr=1e-2,  # noqa: E731
                           weight_decay=weight_decay, betas=(0.9, 0.99))
    optimizer, torch_optimizer = make(params), make(reference)
    adam = GraphAdam(optimizer, params)
    adam.prepare()
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        grads = [torch.randn(p.shape, generator=g) * 10 ** (step % 3 - 1) for p in params]
        for group, torch_group in zip(optimizer.param_groups, torch_optimizer.param_groups):
            for gr in (group, torch_group):
                gr["lr"] = gr["lr"] * 0.7
                gr["betas"] = (0.85 + 0.02 * step, 0.99)
        for p, q, grad in zip(params, reference, grads):
            p.grad, q.grad = grad.clone(), grad.clone()
        adam.load_hyperparameters()
        adam.step()
        torch_optimizer.step()
        for p, q in zip(params, reference):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)
    for p, q in zip(params, reference):
        ours, theirs = optimizer.state[p], torch_optimizer.state[q]
        assert set(ours) == set(theirs) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(ours["step"]) == float(theirs["step"]) == 6 and ours["step"].dtype == torch.float32
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-9)


def test_graph_adam_continues_a_loaded_state_and_refuses_what_it_cannot_step():
    """A state made by torch's optimizer (a resumed run) is continued; disagreeing step counts in a group,
    amsgrad and other optimizers are refused by name."""
    params, reference = _params(2), _params(2)
    optimizer, torch_optimizer = torch.optim.AdamW(params, lr=1e-2), torch.optim.AdamW(reference, lr=1e-2)
    for p, q in zip(params, reference):
        p.grad, q.grad = torch.ones_like(p), torch.ones_like(q)
    optimizer.step()
    torch_optimizer.step()
    adam = GraphAdam(optimizer, params)
    adam.prepare()
    adam.step()
    torch_optimizer.step()
    for p, q in zip(params, reference):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)
    state = copy.deepcopy(optimizer.state_dict())
    state["state"][0]["step"] = torch.tensor(5.0)
    optimizer.load_state_dict(state)
    with pytest.raises(ValueError, match="different step counts"):
        GraphAdam(optimizer, params).prepare()
    with pytest.raises(ValueError, match=r"\['amsgrad'\] is not supported"):
        GraphAdam(torch.optim.Adam(params, amsgrad=True), params)
    with pytest.raises(TypeError, match="must be Adam or AdamW, got SGD"):
        GraphAdam(torch.optim.SGD(params, lr=0.1), params)

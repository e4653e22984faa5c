"""``GraphAdam``: the step of a ``torch.optim.Adam``/``AdamW`` on its own state, with every hyperparameter a
schedule may change (learning rate, betas) read from 0-d device tensors, so that the step can be captured in a CUDA
graph once and replayed with the values of the moment.

Torch's ``capturable`` Adam takes the learning rate as a tensor but reads a tensor beta1 back to the host (its
multi-tensor ``lerp_`` takes a Python scalar), which a capture forbids, and OneCycleLR changes beta1 at every step.
Here every operation takes its scalars as tensors: the multi-tensor ops with a 0-d tensor operand, and the bias
corrections as powers of 0-d tensors. The math is torch's (``exp_avg`` and ``exp_avg_sq`` moving averages, bias
corrections of the current betas at the current step, eps added to the corrected root, decoupled weight decay for
AdamW, L2 for Adam), on the optimizer's own state entries (``step``, ``exp_avg``, ``exp_avg_sq``), so checkpoints and
an eager optimizer read it as theirs (the step counts as 0-d float32 tensors on the device, as torch's capturable
Adam keeps them). The parameters of a group must have one step count (a captured step steps them all together);
``amsgrad``, ``maximize`` and differentiable steps are not supported.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GraphAdam"]


class GraphAdam:
    """The step of ``optimizer`` (Adam or AdamW) for the ``params`` that train, hyperparameters from tensors.

    Call ``prepare`` once before the first step (it makes missing state and moves the step counts), then
    ``load_hyperparameters`` (host values into the tensors: outside a graph) and ``step`` (capturable).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[Tensor]) -> None:
        if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            raise TypeError(f"captured_step: the optimizer must be Adam or AdamW, got {type(optimizer).__name__}")
        for group in optimizer.param_groups:
            unsupported = [k for k in ("amsgrad", "maximize", "differentiable") if group.get(k)]
            if unsupported:
                raise ValueError(f"captured_step: {type(optimizer).__name__} with {unsupported} is not supported")
        self.optimizer = optimizer
        self.decoupled = isinstance(optimizer, torch.optim.AdamW) or any(
            group.get("decoupled_weight_decay") for group in optimizer.param_groups)   # AdamW's weight decay
        trained = {id(p) for p in params}
        self.groups = [[p for p in group["params"] if id(p) in trained] for group in optimizer.param_groups]
        self.hyper: list[dict[str, Tensor]] = []

    def prepare(self) -> None:
        """State for every trained parameter (zeros, as the optimizer makes it), its step count a 0-d float32 tensor
        on its device (a group's counts must agree), and the tensors of the hyperparameters."""
        state = self.optimizer.state
        self.hyper = []
        for group, params in zip(self.optimizer.param_groups, self.groups):
            if not params:
                self.hyper.append({})
                continue
            device = params[0].device
            steps = {float(state[p]["step"]) for p in params if "step" in state[p]}
            if len(steps) > 1:
                raise ValueError(f"captured_step: the parameters of one optimizer group have different step counts "
                                 f"{sorted(steps)[:4]} (a captured step steps them together)")
            count = steps.pop() if steps else 0.0
            for p in params:
                if "exp_avg" not in state[p]:
                    state[p].update(exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                    exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
                state[p]["step"] = torch.tensor(count, dtype=torch.float32, device=device)
            self.hyper.append({k: torch.zeros((), dtype=torch.float32, device=device)
                               for k in ("lr", "beta1", "beta2")})
        self.load_hyperparameters()

    def load_hyperparameters(self) -> None:
        """The param groups' current lr and betas into the tensors the step reads (host values: a schedule's)."""
        for group, hyper in zip(self.optimizer.param_groups, self.hyper):
            if hyper:
                hyper["lr"].fill_(float(group["lr"]))
                hyper["beta1"].fill_(float(group["betas"][0]))
                hyper["beta2"].fill_(float(group["betas"][1]))

    @torch.no_grad()
    def step(self) -> None:
        for group, params, hyper in zip(self.optimizer.param_groups, self.groups, self.hyper):
            if params:
                self._group_step(group, params, hyper)

    def _group_step(self, group: dict, params: list[Tensor], hyper: dict[str, Tensor]) -> None:
        state = self.optimizer.state
        lr, beta1, beta2 = hyper["lr"], hyper["beta1"], hyper["beta2"]
        grads = [p.grad for p in params]
        exp_avgs = [state[p]["exp_avg"] for p in params]
        exp_avg_sqs = [state[p]["exp_avg_sq"] for p in params]
        steps = [state[p]["step"] for p in params]
        torch._foreach_add_(steps, 1)
        step = steps[0]                                                 # the group's count (all agree)
        weight_decay = float(group["weight_decay"])
        if weight_decay and self.decoupled:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        elif weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, torch._foreach_mul(grads, 1 - beta1))
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, torch._foreach_mul(grads, 1 - beta2))
        correction1, correction2 = 1 - torch.pow(beta1, step), 1 - torch.pow(beta2, step)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_mul_(denom, torch.rsqrt(correction2))
        torch._foreach_add_(denom, float(group["eps"]))
        update = torch._foreach_div(exp_avgs, denom)
        torch._foreach_mul_(update, -lr / correction1)
        torch._foreach_add_(params, update)

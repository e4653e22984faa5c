"""Per-loss gradient norms: how hard each term of the step pulls on the student (why does distillation not help?).

For each loss term, the L2 norm of the gradient that term alone sends into the student's parameters, as
``grad_norm/<term>``, and its ratio to the task loss's, ``grad_ratio/<term>``. The names do not start with
"loss", so the trainer logs them (TensorBoard ``train_batch/grad_norm/...``) without adding them to the total.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..engine.train import is_loss_key

__all__ = ["gradient_norm", "loss_gradient_norms"]


def gradient_norm(loss: Tensor, params: list[Tensor], scale: float = 1.0) -> Tensor:
    """L2 norm over ``params`` of d(loss)/d(params), the graph kept for the step's backward.

    Args:
        loss: a scalar in the autograd graph of ``params`` (a term that does not require grad has norm 0).
        params: the parameters; those the loss does not reach count as zero gradient.
        scale: the loss is multiplied by it before the backward and the norm divided by it after (the fp16
            loss scale, so that a small term's gradients do not underflow).
    """
    if not loss.requires_grad:
        return loss.new_zeros((), dtype=torch.float32)
    grads = torch.autograd.grad(loss * scale, params, retain_graph=True, allow_unused=True)
    norms = [torch.linalg.vector_norm(g.float()) for g in grads if g is not None]
    if not norms:
        return loss.new_zeros((), dtype=torch.float32)
    return torch.linalg.vector_norm(torch.stack(norms)) / scale


def loss_gradient_norms(losses: dict[str, Tensor], params: list[Tensor], scale: float = 1.0,
                        reference: str = "loss_seg") -> dict[str, Tensor]:
    """``grad_norm/<key>`` for every loss term of ``losses`` (``loss`` and ``loss_*`` keys) and
    ``grad_ratio/<key>`` = norm(key) / norm(reference) for the others (inf or nan where the reference's is 0).

    Args:
        losses: the step's loss dict, its graph not yet back-propagated.
        params: the student's trainable parameters.
        scale: see ``gradient_norm``.
        reference: the term the others are compared with (the task loss).
    """
    norms = {key: gradient_norm(loss, params, scale) for key, loss in losses.items() if is_loss_key(key)}
    ratios = {f"grad_ratio/{key}": norm / norms[reference] for key, norm in norms.items() if key != reference}
    return {**{f"grad_norm/{key}": norm for key, norm in norms.items()}, **ratios}

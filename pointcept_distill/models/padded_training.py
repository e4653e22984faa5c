"""The training forward and losses of a segmentor on a fixed-capacity padded batch: the ground a captured training
step (a CUDA graph of forward, backward and optimizer step per padded plan) is built on.

``padded_training_loss`` pads a batch with ``capacity.pad_to_capacity`` to a padded plan
(``plan.BatchPlan.padded`` / ``bucketed``, as inference and the captured teacher pad) with the padding rows
labelled with the criteria's ignore index, and runs the model's training forward on it. Its loss and its
parameters' gradients are those of the eager step on the unpadded batch (to float rounding) because:

- samples never meet in PT-v3m1 (``capacity``), so no real point's features depend on the padding sample's;
- every batch norm takes its statistics, and updates its running statistics, over the real samples' rows only
  (``masked_norm``; the padded plan marks the padding sample, ``BatchPlan.padding_sample``);
- the padding rows carry the ignore label, which every criterion leaves out without a data-dependent shape
  (cross entropy's ``ignore_index``; ``lovasz_softmax`` sorts ignored rows last and masks them).

Random draws are not those of the eager step: drop path and dropout draw one number per row of the padded stage,
so with the padding rows the generator advances further than eager's draws for the real rows (on the CPU the
first call's draws agree and every later call's are shifted; on CUDA, Philox offsets advance by the padded
counts). Drawing only the real rows' numbers would need their counts on the host, i.e. a data-dependent shape,
which a captured graph cannot have. The draws have the same distribution per real row; with ``drop_path=0`` and
no dropout the step equals eager's. The orders' shuffles (``point.shuffle_rows``) draw the same permutations;
a captured step draws them on the host before each replay (``draw_order_permutations``, the same CPU draws in the
same order) and gives them as the input's ``order_permutations``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .capacity import pad_to_capacity
from .plan import plan_batch

__all__ = ["draw_order_permutations", "ignore_index", "padded_training_loss"]


def ignore_index(criteria: nn.Module) -> int:
    """The one ignore index of a segmentor's ``criteria`` (``losses.Criteria``): the padding rows' label.

    Every criterion must have an ``ignore_index`` and they must agree; a criterion without one (e.g. a Lovasz
    loss with ``ignore_index=None``) would count the padding rows, so it is an error.
    """
    losses = list(criteria.criteria)
    values = {getattr(loss, "ignore_index", None) for loss in losses}
    if not losses or None in values or len(values) != 1:
        names = {type(loss).__name__: getattr(loss, "ignore_index", None) for loss in losses}
        raise ValueError(f"padded training needs one ignore index shared by every criterion to label the padding "
                         f"rows with, got {names or 'no criteria'}")
    return int(values.pop())


def draw_order_permutations(backbone: nn.Module) -> Tensor | None:
    """(stages, k) permutations of the k serialization orders for one forward of ``backbone``, or None when no
    stage shuffles them (eval mode).

    Drawn on the CPU generator as the eager forward draws them (a ``randperm(k)`` for each stage that shuffles,
    ``backbone.shuffled_stages``: the serialization, then each pooling; the identity for a stage that does not),
    so a forward given them as ``order_permutations`` (with its plan) orders its points exactly as the eager
    forward would have from the same generator state; the permutations are applied on the device.
    """
    shuffled = backbone.shuffled_stages()
    if not any(shuffled):
        return None
    k = len(backbone.order)
    return torch.stack([torch.randperm(k) if s else torch.arange(k) for s in shuffled])             # (stages, k)


def padded_training_loss(model: nn.Module, input_dict: dict, capacities: Sequence[int] | None = None,
                         steps_per_octave: int = 8) -> dict[str, Tensor]:
    """The segmentor's training outputs (``{"loss"}``) on ``input_dict`` padded to fixed capacities.

    Args:
        model: a segmentor in training mode whose forward takes ``segment`` (``DefaultSegmentorV2``) and whose
            ``backbone.strides`` plan the batch.
        input_dict: the collated batch (``coord``, ``grid_coord``, ``feat``, ``offset``, ``segment``), with its
            host-side ``plan`` (``plan.plan_batch``) or without (it is then planned here, reading the coordinates).
        capacities: rows of every stage (each above the stage's size), or None for the ``capacity_for`` buckets
            of ``steps_per_octave`` (``BatchPlan.bucketed``).
        steps_per_octave: bucket granularity when ``capacities`` is None.
    """
    if not model.training:
        raise ValueError("padded_training_loss: the model is in eval mode (use CapturedSegmentor for inference)")
    plan = input_dict.get("plan")
    if plan is None:
        plan = plan_batch(input_dict, model.backbone.strides)
    padded_plan = plan.bucketed(steps_per_octave) if capacities is None else plan.padded(capacities)
    padded = pad_to_capacity(input_dict, padded_plan, {"segment": ignore_index(model.criteria)})
    return model(padded)

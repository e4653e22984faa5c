"""``PreciseBN``: BatchNorm statistics recomputed with the final weights, before the model is evaluated and saved."""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator

import torch
from torch import nn

from ...utils import comm
from ...utils.misc import get_rng_state, set_rng_state
from .base import HOOKS, HookBase

__all__ = ["PreciseBN", "recompute_bn_statistics"]


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable) -> int:
    """Set the running mean and variance of every BatchNorm layer of ``model`` to their plain average over
    ``batches`` (the model's inputs) forwarded in training mode, then over the processes of a distributed run.
    Returns the number of layers."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None            # a cumulative average: every batch weighs the same
    was_training = model.training
    model.train()
    try:
        for inputs in batches:
            model(inputs)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    world = comm.get_world_size()
    if world > 1:
        for m in layers:
            for stat in (m.running_mean, m.running_var):
                stat.copy_(comm.all_reduce_sum(stat) / world)
    return len(layers)


@HOOKS.register_module()
class PreciseBN(HookBase):
    """After the last epoch (and every ``period`` epochs), recompute the BatchNorm statistics of the model
    (detectron2's PreciseBN).

    During training a BatchNorm layer's running statistics are an exponential average (momentum 0.01 in
    PT-v3m1: about the last few hundred steps) taken while the weights still changed, so at the end they can
    disagree with what the final weights produce, and every evaluation and saved checkpoint uses them. This
    hook forwards ``num_iter`` training batches (the training transforms, the trainer's device and autocast)
    through the final weights without gradients and stores the plain average of their statistics. The random
    generators are restored afterwards, so the training run itself is unchanged. List it before the evaluator
    and the ``CheckpointSaver`` in ``hooks``: they run in list order and should see the new statistics.

    Args:
        num_iter: training batches per process to average over.
        period: also every this many epochs (None: after the last epoch only).
    """

    def __init__(self, num_iter: int = 200, period: int | None = None) -> None:
        if num_iter < 1:
            raise ValueError(f"PreciseBN: num_iter must be >= 1, got {num_iter}")
        self.num_iter, self.period = num_iter, period

    def after_epoch(self) -> None:
        done = self.trainer.epoch + 1
        if done == self.trainer.max_epoch or (self.period and done % self.period == 0):
            self.update()

    def update(self) -> None:
        trainer = self.trainer
        state = get_rng_state()
        try:
            with torch.autocast(trainer.device.type, enabled=trainer.amp_enabled, dtype=trainer.amp_dtype):
                layers = recompute_bn_statistics(trainer.model_without_ddp, self._inputs())
        finally:
            set_rng_state(state)
        if layers:
            trainer.logger.info(f"PreciseBN: statistics of {layers} BatchNorm layers recomputed over "
                                f"{self.num_iter} training batches")

    def _inputs(self) -> Iterator[dict]:
        """``num_iter`` training batches on the trainer's device, the loader read again as often as it takes (one
        batch at a time: nothing is kept)."""
        loader, left = self.trainer.train_loader, self.num_iter
        while left:
            if len(loader) == 0:
                raise ValueError("PreciseBN: the training loader yields no batches")
            for input_dict in itertools.islice(loader, left):
                yield self.trainer.to_device(input_dict)
                left -= 1

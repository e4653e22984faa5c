"""PreciseBN: BatchNorm statistics recomputed with the final weights, before evaluation and saving."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pointcept_distill.engine import Trainer, default_setup
from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.engine.hooks import HOOKS
from pointcept_distill.engine.hooks.precise_bn import recompute_bn_statistics
from toy_components import toy_cfg


class FeatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 5)
        self.norm = nn.BatchNorm1d(5, momentum=0.1)

    def forward(self, input_dict: dict) -> torch.Tensor:
        return self.norm(self.linear(input_dict["feat"]))


def test_statistics_are_the_plain_average_over_the_batches():
    torch.manual_seed(0)
    model = FeatNet().eval()
    batches = [dict(feat=torch.randn(7, 3) * (i + 1) + i) for i in range(4)]
    hidden = [model.linear(b["feat"]).detach() for b in batches]
    assert recompute_bn_statistics(model, batches) == 1
    torch.testing.assert_close(model.norm.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(model.norm.running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert model.norm.momentum == 0.1 and not model.training     # the layer's settings and the mode are kept


def _trainer(tmp_path, hooks):
    cfg = toy_cfg(tmp_path, hooks=hooks, model=dict(type="ToySegmentor", batch_norm=True), evaluate=False)
    return Trainer(default_setup(cfg))


def test_runs_after_the_last_epoch_before_the_saver_and_leaves_training_unchanged(tmp_path):
    saver = dict(type="CheckpointSaver")
    plain = _trainer(tmp_path / "plain", [saver])
    plain.train()
    precise = _trainer(tmp_path / "precise", [dict(type="PreciseBN", num_iter=6), saver])
    seen = []       # the inputs of the hook's forwards: training mode without gradients
    precise.model.register_forward_pre_hook(
        lambda module, args: seen.append(args[0]["feat"]) if not torch.is_grad_enabled() else None)
    precise.train()
    for name, value in plain.model.state_dict().items():          # the same training run: equal weights
        if "norm.running" not in name and "num_batches" not in name:
            torch.testing.assert_close(precise.model.state_dict()[name], value, rtol=0, atol=0)
    # 6 batches: the loader's 4, then the first 2 again (its batches are a function of seed, epoch and index)
    assert len(seen) == 6 and torch.equal(seen[4], seen[0]) and not torch.equal(seen[1], seen[0])
    hidden = [precise.model.block(feat).detach() for feat in seen]
    norm = precise.model.norm
    torch.testing.assert_close(norm.running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0))
    torch.testing.assert_close(norm.running_var, torch.stack([h.var(0) for h in hidden]).mean(0))
    assert not torch.allclose(norm.running_mean, plain.model.norm.running_mean)
    saved = load_checkpoint(str(tmp_path / "precise" / "model" / "model_last.pth"))["state_dict"]
    key = next(k for k in saved if k.endswith("norm.running_mean"))
    torch.testing.assert_close(saved[key], norm.running_mean)
    assert "PreciseBN: statistics of 1 BatchNorm layers recomputed over 6 training batches" in \
        (tmp_path / "precise" / "train.log").read_text()


def test_period_and_a_model_without_batch_norm(tmp_path):
    hook = HOOKS.build(dict(type="PreciseBN", num_iter=2, period=1))
    calls = []
    hook.update = lambda: calls.append(1)
    hook.trainer = type("T", (), {"epoch": 0, "max_epoch": 3})()
    hook.after_epoch()
    hook.trainer.epoch = 2
    hook.after_epoch()
    assert len(calls) == 2
    once = HOOKS.build(dict(type="PreciseBN"))
    once.update = lambda: calls.append(2)
    once.trainer = type("T", (), {"epoch": 0, "max_epoch": 3})()
    once.after_epoch()
    assert calls == [1, 1]
    assert recompute_bn_statistics(nn.Linear(2, 2), [dict(feat=torch.zeros(1, 2))]) == 0


def test_rejects_num_iter_below_one():
    with pytest.raises(ValueError, match="PreciseBN: num_iter must be >= 1, got 0"):
        HOOKS.build(dict(type="PreciseBN", num_iter=0))

"""Trainer: hook lifecycle, loss handling, accumulation, scheduler stepping, AMP, NaN handling."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from pointcept_distill.engine import Trainer, default_setup
from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.engine.hooks import HookBase
from pointcept_distill.utils.config import Config
from toy_components import toy_cfg, toy_cfg_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _trainer(tmp_path, **overrides) -> Trainer:
    return Trainer(default_setup(toy_cfg(tmp_path, **overrides)))


def test_hooks_called_in_lifecycle_order(tmp_path):
    trainer = _trainer(tmp_path, epoch=2, eval_epoch=2, evaluate=False,
                       hooks=[dict(type="RecorderHook")])
    trainer.train()
    per_epoch = ["before_epoch"] + ["before_step", "after_forward", "after_step"] * 4 + ["after_epoch"]
    assert trainer.calls == ["before_train"] + per_epoch * 2 + ["after_train"]
    assert trainer.completed


def test_iteration_counts_over_a_run(tmp_path):
    class CountsHook(HookBase):
        def after_step(self):
            self.trainer.__dict__.setdefault("counts", []).append(
                (self.trainer.global_iter, self.trainer.remaining_iters()))

    trainer = _trainer(tmp_path, epoch=2, eval_epoch=2, evaluate=False, hooks=[])
    trainer.register_hooks([CountsHook()])
    trainer.train()
    assert trainer.total_iters == 8                      # 2 epochs of 4 iterations
    assert trainer.counts == [(i, 8 - i) for i in range(1, 9)]


def test_after_train_runs_after_exception(tmp_path):
    trainer = _trainer(tmp_path, evaluate=False,
                       hooks=[dict(type="RecorderHook"), dict(type="CrashAt", global_iter=2)])
    with pytest.raises(RuntimeError, match="planned crash"):
        trainer.train()
    assert trainer.calls[-1] == "after_train"
    assert not trainer.completed


def test_scheduler_steps_once_per_optimizer_step_with_accumulation(tmp_path):
    # 8 samples / batch 2 = 4 iterations per epoch; accumulation 3 -> steps after iters 3 and 4 (flush)
    trainer = _trainer(tmp_path, gradient_accumulation_steps=3, evaluate=False, hooks=[],
                       scheduler=dict(type="MultiStepLR", milestones=[0.5], gamma=0.1))
    assert trainer.cfg.scheduler.total_steps == 2 * 2
    trainer.train()
    assert trainer.scheduler.last_epoch == 4
    assert trainer.accumulation_counter == 0


def test_loss_terms_are_summed_and_logged(tmp_path):
    class TwoTermTrainer(Trainer):
        def compute_loss(self, input_dict):
            out = self.model(input_dict)
            return {"loss_seg": out["loss"], "loss_extra": out["loss"] * 0 + 2.0, "acc": torch.tensor(0.5)}

    trainer = TwoTermTrainer(default_setup(toy_cfg(tmp_path, evaluate=False, hooks=[])))
    trainer.train()
    logged = trainer.comm_info["model_output_dict"]
    assert set(logged) == {"loss_seg", "loss_extra", "acc", "loss"}
    assert logged["loss"].item() == pytest.approx(logged["loss_seg"].item() + 2.0, rel=1e-6)


class _AddsTerm(HookBase):
    """Adds ``key``: the model's loss again (a loss term) or a logged-only value; records the keys it saw."""

    def __init__(self, key: str) -> None:
        self.key, self.seen = key, []

    def after_forward(self, output):
        self.seen.append(list(output))
        return {self.key: output["loss"] * 1.0 if self.key.startswith("loss") else torch.tensor(3.0)}


def test_hooks_add_terms_to_the_step_before_its_backward(tmp_path):
    trainer = _trainer(tmp_path, evaluate=False, hooks=[], epoch=1, eval_epoch=1)
    term, note = _AddsTerm("loss_again"), _AddsTerm("note")
    trainer.register_hooks([term, note])
    trainer.model.train()
    output = trainer.forward_losses(trainer.to_device(next(iter(trainer.train_loader))))
    assert list(output) == ["loss", "loss_again", "note"]
    assert term.seen == [["loss"]] and note.seen == [["loss", "loss_again"]]   # each sees the earlier terms
    assert trainer.total_loss(output).item() == pytest.approx(2 * output["loss"].item(), rel=1e-6)  # note: logged
    trainer.train()
    assert {"loss_again", "note"} <= set(trainer.comm_info["model_output_dict"])
    assert len(term.seen) == 1 + len(trainer.train_loader)                   # once per step


def test_a_hook_may_not_replace_a_term(tmp_path):
    trainer = _trainer(tmp_path, evaluate=False, hooks=[])
    trainer.register_hooks([_AddsTerm("loss")])
    with pytest.raises(KeyError, match=r"_AddsTerm.after_forward: \['loss'\] already in the step's output"):
        trainer.forward_losses(trainer.to_device(next(iter(trainer.train_loader))))


def test_nonfinite_loss_skips_step_and_warns(tmp_path, caplog):
    trainer = _trainer(tmp_path, evaluate=False, hooks=[], epoch=1, eval_epoch=1, batch_size=1,
                       optimizer=dict(type="SGD", lr=0.1),
                       data=dict(num_classes=4, ignore_index=-1, names=list("abcd"),
                                 train=dict(type="ToyPointDataset", num_samples=1, nan_samples=(0,)),
                                 val=dict(type="ToyPointDataset", num_samples=1)))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    logging.getLogger("pointcept_distill").propagate = True
    with caplog.at_level(logging.WARNING, logger="pointcept_distill"):
        with pytest.raises(FloatingPointError, match="all 1 steps of epoch 1 were skipped"):  # its only step
            trainer.train()
    assert "Non-finite loss" in caplog.text and "iteration 1" in caplog.text
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert trainer.scheduler.last_epoch == 0


def test_consecutive_nonfinite_losses_stop_training(tmp_path):
    trainer = _trainer(tmp_path, evaluate=False, hooks=[], max_bad_steps=3,
                       data=dict(num_classes=4, ignore_index=-1, names=list("abcd"),
                                 train=dict(type="ToyPointDataset", nan_samples=tuple(range(8))),
                                 val=dict(type="ToyPointDataset")))
    with pytest.raises(FloatingPointError, match="3 consecutive non-finite losses.*max_bad_steps=3"):
        trainer.train()


class _BlowUpAt(HookBase):
    """Sets an infinite learning rate before ``global_iter``: that update makes the weights infinite
    although its loss is finite."""

    def __init__(self, global_iter: int) -> None:
        self.global_iter = global_iter

    def before_step(self) -> None:
        if self.trainer.global_iter == self.global_iter:
            for group in self.trainer.optimizer.param_groups:
                group["lr"] = float("inf")


SAVING = [dict(type="SemSegEvaluator"), dict(type="CheckpointSaver", save_freq_iter=1)]
CONSTANT_LR = dict(type="MultiStepLR", milestones=[0.5], gamma=1.0)


def _finite_checkpoints(model_dir) -> list[str]:
    names = sorted(n for n in os.listdir(model_dir) if n.endswith(".pth"))
    for name in names:
        state = torch.load(model_dir / name, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), name
    return names


def test_update_that_makes_weights_nonfinite_stops_before_they_are_saved(tmp_path):
    trainer = _trainer(tmp_path, hooks=SAVING, scheduler=CONSTANT_LR)
    trainer.register_hooks([_BlowUpAt(6)])
    with pytest.raises(FloatingPointError, match=r"update at epoch 2, iteration 2 \(global 6\) made weights "
                                                 r"non-finite \(block\.weight.*stopping before"):
        trainer.train()
    # the epoch-1 files and the iteration-5 state were written; nothing after the bad update
    assert _finite_checkpoints(tmp_path / "model") == ["model_best.pth", "model_last.pth"]
    assert torch.load(tmp_path / "model" / "model_last.pth", weights_only=True)["iter"] == 1


def test_epoch_whose_every_step_was_skipped_stops_before_evaluating_or_saving(tmp_path):
    trainer = _trainer(tmp_path, hooks=[dict(type="SemSegEvaluator"), dict(type="CheckpointSaver")], max_bad_steps=100,
                       data=dict(num_classes=4, ignore_index=-1, names=list("abcd"),
                                 train=dict(type="ToyPointDataset", nan_samples=tuple(range(8))),
                                 val=dict(type="ToyPointDataset", val=True)))
    with pytest.raises(FloatingPointError, match=r"all 4 steps of epoch 1 were skipped"):
        trainer.train()
    assert os.listdir(tmp_path / "model") == []
    assert "current_metric_value" not in trainer.comm_info


def test_tools_train_exits_nonzero_when_every_step_was_skipped(tmp_path):
    cfg = toy_cfg_dict(str(tmp_path / "exp"), max_bad_steps=100, evaluate=False,
                       data=dict(num_classes=4, ignore_index=-1, names=list("abcd"),
                                 train=dict(type="ToyPointDataset", nan_samples=tuple(range(8))),
                                 val=dict(type="ToyPointDataset", val=True)))
    Config(cfg).dump(str(tmp_path / "toy.py"))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config-file",
                           str(tmp_path / "toy.py")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "were skipped" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "exp" / "model" / "model_last.pth").exists()


def test_param_dicts_give_keyword_lr(tmp_path):
    trainer = _trainer(tmp_path, evaluate=False, hooks=[], param_dicts=[dict(keyword="block", lr=0.01)],
                       optimizer=dict(type="AdamW", lr=0.1),
                       scheduler=dict(type="OneCycleLR", max_lr=[0.1, 0.01], pct_start=0.3))
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2
    block_ids = {id(p) for p in trainer.model.block.parameters()}
    assert {id(p) for p in groups[1]["params"]} == block_ids
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in trainer.model.seg_head.parameters()}
    assert groups[0]["max_lr"] == 0.1 and groups[1]["max_lr"] == 0.01


@pytest.mark.parametrize("dtype,has_scaler", [("bfloat16", False), ("float16", True)])
def test_amp_scaler_only_for_fp16_and_always_in_checkpoint(tmp_path, dtype, has_scaler):
    trainer = _trainer(tmp_path, enable_amp=True, amp_dtype=dtype, evaluate=False, epoch=1, eval_epoch=1,
                       hooks=[dict(type="CheckpointSaver")])
    assert (trainer.scaler is not None) == has_scaler
    trainer.train()
    ckpt = load_checkpoint(tmp_path / "model" / "model_last.pth")
    assert "scaler" in ckpt
    assert (ckpt["scaler"] is not None) == has_scaler
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_bf16_resume_accepts_a_pointcept_scaler_state(tmp_path):
    first = _trainer(tmp_path, enable_amp=True, amp_dtype="float16", evaluate=False,
                     hooks=[dict(type="CheckpointSaver"), dict(type="CrashAt", global_iter=5)])
    with pytest.raises(RuntimeError, match="planned crash"):
        first.train()
    assert load_checkpoint(tmp_path / "model" / "model_last.pth")["scaler"] is not None
    weight = str(tmp_path / "model" / "model_last.pth")
    resumed = _trainer(tmp_path, enable_amp=True, amp_dtype="bfloat16", evaluate=False, resume=True,
                       weight=weight, hooks=[dict(type="CheckpointLoader")])
    resumed.train()
    assert resumed.start_epoch == 1 and resumed.scaler is None and resumed.completed

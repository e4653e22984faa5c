"""InformationWriter (TensorBoard scalars), IterationTimer, default_setup checks, gradient clipping."""
from __future__ import annotations

import glob

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pointcept_distill.engine import Trainer, default_setup
from pointcept_distill.utils import comm
from toy_components import toy_cfg


def test_information_writer_logs_losses_lr_and_val_metrics(tmp_path):
    hooks = [dict(type="IterationTimer"), dict(type="InformationWriter"),
             dict(type="SemSegEvaluator", write_cls_iou=True)]
    trainer = Trainer(default_setup(toy_cfg(tmp_path, hooks=hooks)))
    trainer.train()
    events = EventAccumulator(glob.glob(str(tmp_path / "events.out.tfevents.*"))[0])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_batch/loss", "params/lr", "train/loss", "val/mIoU", "val/mAcc", "val/allAcc",
            "val/loss", "val/cls_0-a IoU"} <= tags
    assert [e.step for e in events.Scalars("train_batch/loss")] == list(range(1, 9))
    assert trainer.storage.has("batch_time") and trainer.storage.has("data_time")
    log = (tmp_path / "train.log").read_text()
    assert "Train: [2/2][4/4]" in log and "Remain" in log and "Lr:" in log


def test_batch_size_must_divide_by_world_size(tmp_path, monkeypatch):
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="batch_size=3 .* not divisible by the world size 2"):
        default_setup(toy_cfg(tmp_path, batch_size=3))


def test_clip_grad_bounds_the_gradient_norm(tmp_path):
    trainer = Trainer(default_setup(toy_cfg(tmp_path, clip_grad=1e-3, evaluate=False, hooks=[], epoch=1,
                                            eval_epoch=1, optimizer=dict(type="SGD", lr=1.0),
                                            scheduler=dict(type="MultiStepLR", milestones=[1.0]))))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    # 4 plain SGD steps at lr 1 with the total gradient norm clipped to 1e-3 move the weights at most 4e-3
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.model.parameters(), before)])
    assert 0 < moved.norm() <= 4e-3 + 1e-6


def test_torch_profiler_writes_a_trace_and_table_of_its_iterations(tmp_path):
    hooks = [dict(type="TorchProfiler", start_iter=3, num_iters=2, row_limit=5)]
    Trainer(default_setup(toy_cfg(tmp_path, hooks=hooks, evaluate=False))).train()
    table = (tmp_path / "profiler" / "rank0.txt").read_text()
    assert table.startswith("iterations 3..4, rank 0 of 1") and "aten::" in table
    trace = (tmp_path / "profiler" / "rank0.json").read_text()
    assert '"traceEvents"' in trace and "ProfilerStep" not in trace and "aten::" in trace


def test_torch_profiler_rejects_an_empty_window():
    from pointcept_distill.engine.hooks import HOOKS
    with pytest.raises(ValueError, match="start_iter .* must be >= 1"):
        HOOKS.build(dict(type="TorchProfiler", start_iter=0))

"""A toy dataset, model and hooks for fast engine tests (registered on import)."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pointcept_distill.data.builder import DATASETS
from pointcept_distill.engine.hooks import HOOKS, HookBase
from pointcept_distill.models.builder import MODELS
from pointcept_distill.utils.config import Config

NUM_CLASSES = 4


def _register(registry, cls):
    registry.register_module(module=cls, force=True)
    return cls


class ToyPointDataset(Dataset):
    """Fixed random clouds whose label is a linear function of the features, plus global-RNG jitter.

    ``val=True`` adds ``origin_segment``/``inverse`` for twice as many original points (shuffled map).
    ``nan_samples`` are indices whose features are NaN (a non-finite loss).
    """

    def __init__(self, split: str = "train", num_samples: int = 8, num_points: int = 16, jitter: float = 0.05,
                 val: bool = False, nan_samples: tuple = (), loop: int = 1, test_mode: bool = False,
                 **_: object) -> None:
        rng = np.random.default_rng(0 if split == "train" else 1)
        self.feats = rng.normal(size=(num_samples, num_points, 4)).astype(np.float32)
        w = np.random.default_rng(42).normal(size=(4, NUM_CLASSES))
        self.labels = (self.feats @ w).argmax(-1)
        self.labels[:, 0] = -1
        self.inverse = [rng.permutation(np.repeat(np.arange(num_points), 2)) for _ in range(num_samples)]
        self.num_samples, self.jitter, self.val, self.loop = num_samples, jitter, val, loop
        self.nan_samples = set(nan_samples)
        self.test_mode = test_mode

    def __len__(self) -> int:
        return self.num_samples * self.loop

    def __getitem__(self, idx: int) -> dict:
        i = idx % self.num_samples
        feat = self.feats[i] + np.random.normal(0, self.jitter, self.feats[i].shape).astype(np.float32)
        if i in self.nan_samples:
            feat = feat * np.nan
        n = len(feat)
        sample = dict(coord=torch.from_numpy(feat[:, :3].copy()), grid_coord=torch.zeros(n, 3, dtype=torch.long),
                      feat=torch.from_numpy(feat), segment=torch.from_numpy(self.labels[i]).long(),
                      offset=torch.tensor([n]))
        if self.val:
            sample["inverse"] = torch.from_numpy(self.inverse[i]).long()
            sample["origin_segment"] = sample["segment"][sample["inverse"]]
        if self.test_mode:  # two overlapping fragments that cover every point
            halves = [torch.arange(0, n * 3 // 4), torch.arange(n // 4, n)]
            fragments = [dict(feat=sample["feat"][h], coord=sample["coord"][h], index=h, offset=torch.tensor([len(h)]))
                         for h in halves]
            return dict(segment=sample["segment"], name=f"toy_{i}", fragment_list=fragments)
        return sample


class ToySegmentor(nn.Module):
    """Per-point linear classifier with optional dropout (which draws from the global torch RNG) and optional
    BatchNorm after the hidden layer."""

    def __init__(self, in_channels: int = 4, num_classes: int = NUM_CLASSES, dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.block = nn.Linear(in_channels, 8)
        self.norm = nn.BatchNorm1d(8, momentum=0.01) if batch_norm else nn.Identity()
        self.seg_head = nn.Linear(8, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_dict: dict) -> dict:
        logits = self.seg_head(self.dropout(torch.relu(self.norm(self.block(input_dict["feat"])))))
        if "segment" not in input_dict:
            return {"seg_logits": logits}
        loss = F.cross_entropy(logits, input_dict["segment"], ignore_index=-1)
        return {"loss": loss} if self.training else {"loss": loss, "seg_logits": logits}


class RecorderHook(HookBase):
    """Appends every lifecycle call to ``trainer.calls``."""

    def _rec(self, name: str) -> None:
        self.trainer.__dict__.setdefault("calls", []).append(name)

    def before_train(self) -> None:
        self._rec("before_train")

    def before_epoch(self) -> None:
        self._rec("before_epoch")

    def before_step(self) -> None:
        self._rec("before_step")

    def after_forward(self, output: dict) -> dict:
        self._rec("after_forward")
        return {}

    def after_step(self) -> None:
        self._rec("after_step")

    def after_epoch(self) -> None:
        self._rec("after_epoch")

    def after_train(self) -> None:
        self._rec("after_train")


class CrashAt(HookBase):
    """Ends the process at a global iteration: ``mode='raise'`` raises, ``mode='kill'`` sends SIGKILL."""

    def __init__(self, global_iter: int, mode: str = "raise") -> None:
        self.global_iter, self.mode = global_iter, mode

    def after_step(self) -> None:
        if self.trainer.global_iter == self.global_iter:
            if self.mode == "kill":
                os.kill(os.getpid(), 9)
            raise RuntimeError(f"CrashAt: planned crash at iteration {self.global_iter}")


for _cls in (ToyPointDataset,):
    _register(DATASETS, _cls)
_register(MODELS, ToySegmentor)
for _cls in (RecorderHook, CrashAt):
    _register(HOOKS, _cls)


def toy_cfg_dict(save_path: str, **overrides: object) -> dict:
    """A complete run config on the toy dataset and model."""
    cfg = dict(
        weight=None, resume=False, evaluate=True, seed=3, save_path=str(save_path), num_worker=0,
        batch_size=2, batch_size_val=2, batch_size_test=None, gradient_accumulation_steps=1, epoch=2,
        eval_epoch=2, clip_grad=None, max_bad_steps=3, sync_bn=False, enable_amp=False, amp_dtype="float16",
        find_unused_parameters=False, mix_prob=0, param_dicts=None,
        model=dict(type="ToySegmentor", dropout=0.2),
        optimizer=dict(type="SGD", lr=0.1, momentum=0.9),
        scheduler=dict(type="OneCycleLR", max_lr=0.1, pct_start=0.3),
        data=dict(num_classes=NUM_CLASSES, ignore_index=-1, names=["a", "b", "c", "d"],
                  train=dict(type="ToyPointDataset", split="train", num_samples=8),
                  val=dict(type="ToyPointDataset", split="val", num_samples=5, val=True)),
        hooks=[dict(type="CheckpointLoader"), dict(type="IterationTimer", warmup_iter=1),
               dict(type="InformationWriter"), dict(type="SemSegEvaluator"),
               dict(type="CheckpointSaver", save_freq=1)],
        train=dict(type="DefaultTrainer"),
        test=dict(type="SemSegTester"),
        custom_imports=dict(imports=["toy_components"]),
    )
    cfg.update(overrides)
    return cfg


def toy_cfg(save_path: str, **overrides: object) -> Config:
    """``toy_cfg_dict`` as a Config, with ``save_path/model`` created and ``data.train.loop`` set."""
    cfg = Config(toy_cfg_dict(save_path, **overrides))
    cfg.data.train.loop = cfg.epoch // cfg.eval_epoch
    os.makedirs(os.path.join(cfg.save_path, "model"), exist_ok=True)
    return cfg

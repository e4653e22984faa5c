"""A dataset's base config shrunk for CPU tests (importable from every test: tests/ is on sys.path via conftest)."""
from __future__ import annotations

import os

from pointcept_distill.utils.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(dataset: str, data_root: str) -> Config:
    """``configs/<dataset>/semseg-pt-v3m1-0-base.py`` with the simulator configs' tiny PT-v3m1
    (configs/_base_/models/sim-tiny.py), its data at ``data_root``, seed 0, fp32 and 2 test-time views."""
    cfg = Config.fromfile(os.path.join(ROOT, "configs", dataset, "semseg-pt-v3m1-0-base.py"))
    tiny_backbone = Config.fromfile(os.path.join(ROOT, "configs", "_base_", "models", "sim-tiny.py")).tiny_backbone
    cfg.merge_from_dict({"seed": 0, "enable_amp": False, "model.backbone_out_channels": 16,
                         **{f"model.backbone.{k}": v for k, v in tiny_backbone.items()},
                         **{f"data.{s}.data_root": data_root for s in ("train", "val", "test")}})
    cfg.data.test.test_cfg.aug_transform = cfg.data.test.test_cfg.aug_transform[:2]
    return cfg

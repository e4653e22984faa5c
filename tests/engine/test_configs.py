"""Teacher and simulator configs: Pointcept's values, and the sim configs build on simulator frames."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pointcept_distill.data.builder import build_dataset
from pointcept_distill.utils.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASETS = {"nuscenes": 16, "semantic_kitti": 19, "waymo": 22}


@pytest.mark.parametrize("dataset,num_classes", DATASETS.items())
def test_teacher_config_values(dataset, num_classes):
    cfg = Config.fromfile(os.path.join(ROOT, "configs", dataset, "semseg-pt-v3m1-0-base.py"))
    assert cfg.model.num_classes == cfg.data.num_classes == len(cfg.data.names) == num_classes
    assert cfg.model.backbone.enc_channels == (32, 64, 128, 256, 512)
    assert [h["type"] for h in cfg.hooks] == ["CheckpointLoader", "ModelHook", "IterationTimer",
                                               "InformationWriter", "SemSegEvaluator", "CheckpointSaver",
                                               "PreciseEvaluator"]
    assert cfg.scheduler.max_lr == [0.002, 0.0002] and cfg.param_dicts == [dict(keyword="block", lr=0.0002)]
    assert (cfg.epoch, cfg.eval_epoch, cfg.batch_size, cfg.mix_prob, cfg.enable_amp) == (50, 50, 12, 0.8, True)
    assert len(cfg.data.test.test_cfg.aug_transform) == (10 if dataset == "nuscenes" else 4)


@pytest.mark.parametrize("dataset", DATASETS)
def test_sim_config_builds_on_simulator_frames(tmp_path, dataset):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_synthetic.py"), "--profile", dataset,
                    "--out", str(tmp_path), "--train", "1", "--val", "1", "--seed", "0", "--scale", "0.05"],
                   check=True, capture_output=True)
    cfg = Config.fromfile(os.path.join(ROOT, "configs", dataset, "semseg-pt-v3m1-sim-tiny.py"))
    for split in ("train", "val", "test"):
        cfg.data[split].data_root = str(tmp_path)
    train, val, test = (build_dataset(cfg.data[s]) for s in ("train", "val", "test"))
    assert len(train) == len(val) == len(test) == 1
    sample = val[0]
    assert sample["feat"].shape[1] == cfg.model.backbone.in_channels
    assert sample["inverse"].max() < len(sample["coord"]) and len(sample["inverse"]) == len(sample["origin_segment"])
    assert len(test[0]["fragment_list"]) >= 2

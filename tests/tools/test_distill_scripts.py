"""The distillation commands as a user types them, on simulator frames in each dataset's on-disk format (CPU):
``sh scripts/train.sh -g 1 -d <dataset> -c distill-ptv3`` with the real configs (46M teacher, paper student), and
joint distillation followed by a cross-dataset ``scripts/test.sh``."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from pointcept_distill.data.simulator import generate
from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow


def _sh(script: str, exp_root, *args: str, options=()) -> str:
    cmd = ["sh", os.path.join(ROOT, "scripts", script), "-p", sys.executable, "-g", "1", *args, "--", *options]
    proc = subprocess.run(cmd, env=dict(os.environ, EXP_ROOT=str(exp_root)), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _roots(options_prefix: str, root) -> list[str]:
    return [f"{options_prefix}.{split}.data_root={root}" for split in ("train", "val", "test")]


# CPU-sized run settings (everything else is the config's): one epoch of 2 scans, data loading in this process, fp32
SMALL = ["epoch=1", "eval_epoch=1", "batch_size=2", "batch_size_val=1", "num_worker=0", "enable_amp=false"]
PAPER = ["distill.topo_kd.workers=0"]   # the paper's topology loss: persistence pairs computed in-process
RECIPES = {"distill-ptv3": (("loss_seg", "loss_kd_cwd", "loss_kd_dist"), []),   # config -> (losses logged, options)
           "distill-ptv3-paper": (("loss_seg", "loss_kd_logit", "loss_kd_grad", "loss_kd_topo"), PAPER)}


@pytest.mark.parametrize("dataset,config", [("nuscenes", "distill-ptv3"), ("nuscenes", "distill-ptv3-paper"),
                                            ("semantic_kitti", "distill-ptv3"), ("waymo", "distill-ptv3-paper")])
def test_distill_ptv3_config_trains_through_train_sh(tmp_path, dataset, config):
    data = tmp_path / "data"
    generate(dataset, str(data), train=2, val=1, seed=1, scale=0.03)
    losses, options = RECIPES[config]
    cfg = Config.fromfile(os.path.join(ROOT, "configs", dataset, f"{config}.py"))
    torch.manual_seed(0)
    teacher_weight = tmp_path / "teacher.pth"   # a Pointcept-style checkpoint with DDP's "module." prefixes
    torch.save({"epoch": 50, "state_dict": {f"module.{k}": v for k, v in build_model(cfg.teacher).state_dict().items()}},
               teacher_weight)
    _sh("train.sh", tmp_path / "exp", "-d", dataset, "-c", config, "-n", "distill",
        options=[*_roots("data", data), f"teacher_weight={teacher_weight}", *SMALL, *options])
    run = tmp_path / "exp" / dataset / "distill"
    log = (run / "train.log").read_text()
    assert re.search(r"loss_seg: \d", log)
    assert set(re.findall(r"(loss_kd_\w+): \d", log)) == set(losses) - {"loss_seg"}   # the recipe's losses, only
    state = load_checkpoint(run / "model" / "model_last.pth")["state_dict"]
    student = build_model(cfg.model)            # a plain DefaultSegmentorV2 checkpoint: no teacher keys
    student.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    assert (run / "result").is_dir()            # PreciseEvaluator tested the student after training


def test_joint_distillation_then_cross_dataset_test(tmp_path):
    roots = {p: tmp_path / "data" / p for p in ("nuscenes", "semantic_kitti", "waymo")}
    for profile, root in roots.items():
        generate(profile, str(root), train=1, val=1, seed=2, scale=0.03)
    exp = tmp_path / "exp"
    joint_roots = [f"data.train.datasets.{i}.data_root={r}" for i, r in enumerate(roots.values())]
    joint_roots += [f"data.val.datasets.{i}.data_root={r}" for i, r in enumerate(roots.values())]
    joint_roots += [f"data.test.data_root={roots['nuscenes']}"]
    tiny = ["epoch=1", "eval_epoch=1"]
    _sh("train.sh", exp, "-d", "joint", "-c", "semseg-pt-v3m1-sim-tiny", "-n", "sim-tiny",
        options=[*joint_roots, *tiny])
    teacher = exp / "joint" / "sim-tiny" / "model" / "model_last.pth"
    _sh("train.sh", exp, "-d", "joint", "-c", "distill-ptv3-sim-tiny", "-n", "distill",
        options=[*joint_roots, *tiny, f"teacher_weight={teacher}"])
    log = (exp / "joint" / "distill" / "train.log").read_text()
    assert re.search(r"loss_kd_topo: \d", log)
    assert all(f"Val {name}: mIoU/mAcc/allAcc" in log for name in roots)   # per-dataset validation
    _sh("test.sh", exp, "-d", "joint", "-n", "distill", "-w", "model_last",
        options=["test.type=CrossDatasetTester", "test.target=waymo", f"test.target_root={roots['waymo']}",
                 "test.single_pass=True"])
    results = list((exp / "joint" / "distill" / "result").glob("cross_*_to_waymo_single_pass.json"))
    assert len(results) == 1
    summary = json.loads(results[0].read_text())
    assert 0.0 <= summary["mIoU"] <= 1.0 and "car" in summary["iou_per_class"]


def test_joint_distill_ptv3_config_trains_through_train_sh(tmp_path):
    """``sh scripts/train.sh -d joint -c distill-ptv3`` (46M joint teacher, one head per dataset) on mixed batches."""
    roots = {p: tmp_path / "data" / p for p in ("nuscenes", "semantic_kitti", "waymo")}
    for profile, root in roots.items():
        generate(profile, str(root), train=1, val=1, seed=4, scale=0.03)
    cfg = Config.fromfile(os.path.join(ROOT, "configs", "joint", "distill-ptv3.py"))
    torch.manual_seed(0)
    teacher_weight = tmp_path / "teacher.pth"
    torch.save({"state_dict": build_model(cfg.teacher).state_dict()}, teacher_weight)
    options = [*(f"data.{split}.datasets.{i}.data_root={r}" for split in ("train", "val")
                 for i, r in enumerate(roots.values())), f"data.test.data_root={roots['nuscenes']}",
               f"teacher_weight={teacher_weight}", *SMALL[:2], "batch_size=3", "batch_size_val=3", *SMALL[4:]]
    _sh("train.sh", tmp_path / "exp", "-d", "joint", "-c", "distill-ptv3", "-n", "distill", options=options)
    log = (tmp_path / "exp" / "joint" / "distill" / "train.log").read_text()
    assert re.search(r"loss_kd_cwd: \d", log)
    assert all(f"Val {name}: mIoU/mAcc/allAcc" in log for name in roots)
    state = load_checkpoint(tmp_path / "exp" / "joint" / "distill" / "model" / "model_last.pth")["state_dict"]
    build_model(cfg.model).load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)

"""DistillTrainer (frozen teacher outside DDP, KD terms added by hooks, task gradients of the student) under the
config's ``ddp`` options on two gloo processes; the per-term gradient norms are refused under a static graph."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pointcept_distill.distill  # noqa: F401
from pointcept_distill.data.simulator import generate
from pointcept_distill.engine import default_config_parser, default_setup
from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.engine.train import TRAINERS
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import parse_options

REPO = Path(__file__).parents[2]
CONFIG = REPO / "configs" / "nuscenes" / "distill-ptv3-sim-tiny.py"
FAST = ("ddp.static_graph=True", "ddp.gradient_as_bucket_view=True", "ddp.bucket_cap_mb=1")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    generate("nuscenes", str(root), train=4, val=1, seed=3, scale=0.08)
    weight = root / "teacher.pth"
    cfg = default_config_parser(str(CONFIG), {"save_path": str(root / "unused")}, dump=False)
    torch.manual_seed(0)
    torch.save({"epoch": 0, "state_dict": build_model(cfg.teacher).state_dict()}, weight)
    return root, weight


def _options(tmp_path, setup, name: str, *extra: str) -> list[str]:
    root, weight = setup
    return [f"save_path={tmp_path / name}", f"data_root={root}",
            *(f"data.{s}.data_root={root}" for s in ("train", "val", "test")), f"teacher_weight={weight}",
            "epoch=1", "eval_epoch=1", "batch_size=2", "num_worker=0", "seed=1", *extra]


def _train(tmp_path, setup, name: str, *extra: str) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "--config-file", str(CONFIG),
                           "--num-gpus", "2", "--options", *_options(tmp_path, setup, name, *extra)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return load_checkpoint(str(tmp_path / name / "model" / "model_last.pth"))["state_dict"]


@pytest.mark.slow
def test_distillation_trains_alike_under_every_ddp_option(tmp_path, setup):
    # the tiny config has the paper's losses: grad_kd's task gradients are a backward of their own before the step's,
    # which under a static graph must not pass through DDP's output (it would start step 1's all-reduce too early)
    default = _train(tmp_path, setup, "default")
    fast = _train(tmp_path, setup, "fast", *FAST)
    assert default.keys() == fast.keys()
    for key, value in default.items():
        torch.testing.assert_close(fast[key], value, rtol=1e-5, atol=1e-6)


def test_gradient_norms_are_refused_under_a_static_graph(tmp_path, setup):
    opts = _options(tmp_path, setup, "norms", "distill.grad_norm_interval=5", "ddp.static_graph=True")
    cfg = default_config_parser(str(CONFIG), parse_options(opts), dump=False)
    with pytest.raises(ValueError, match=r"distill\.grad_norm_interval=5 cannot be used with ddp\.static_graph=True"):
        TRAINERS.build(dict(type=cfg.train.type, cfg=default_setup(cfg)))

"""tools/train.py: two gloo processes give the result of one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.utils.config import Config
from toy_components import toy_cfg_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(tmp_path, name: str, num_gpus: int, torchrun: bool = False) -> dict:
    save_path = tmp_path / name
    cfg = toy_cfg_dict(str(save_path), model=dict(type="ToySegmentor", dropout=0.0), batch_size=4,
                       batch_size_val=2, hooks=[dict(type="CheckpointLoader"), dict(type="InformationWriter"),
                                                dict(type="SemSegEvaluator"), dict(type="CheckpointSaver")])
    config = tmp_path / f"{name}.py"
    Config(cfg).dump(str(config))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    script = [os.path.join(ROOT, "tools", "train.py"), "--config-file", str(config)]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(num_gpus),
               "--master_port", str(29400 + os.getpid() % 1000), *script]
    else:
        cmd = [sys.executable, *script, "--num-gpus", str(num_gpus)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = load_checkpoint(save_path / "model" / "model_last.pth")
    ckpt["state_dict"] = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    return ckpt


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    one, two = _train(tmp_path, "one", 1), _train(tmp_path, "two", 2)
    assert two["world_size"] == 2 and len(two["rng_states"]) == 2
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    assert two["best_metric_value"] == pytest.approx(one["best_metric_value"], abs=1e-6)
    assert os.path.isfile(tmp_path / "two" / "config.py")


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    one, two = _train(tmp_path, "one", 1), _train(tmp_path, "two", 2, torchrun=True)
    assert two["world_size"] == 2
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, rtol=1e-5, atol=1e-6)

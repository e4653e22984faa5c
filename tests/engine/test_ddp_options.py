"""The config's ``ddp`` dict (DistributedDataParallel's communication options): checked by name and type, passed to
DDP by the trainer, and training under the non-default options on two gloo processes gives the default's weights."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pointcept_distill.engine import default_config_parser
from pointcept_distill.engine.checkpoint import load_checkpoint
from pointcept_distill.engine.defaults import DDP_DEFAULTS, ddp_options
from pointcept_distill.utils.config import Config, OptionError, parse_options
from toy_components import toy_cfg_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "nuscenes", "semseg-pt-v3m1-0-base.py")
FAST = dict(static_graph=True, gradient_as_bucket_view=True, bucket_cap_mb=1)


def _env() -> dict:
    """The spawned processes import this checkout (not an installed copy) and the toy components."""
    path = [os.path.dirname(os.path.abspath(__file__)), ROOT, os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p), CUDA_VISIBLE_DEVICES="")


def _parse(tmp_path, *options: str) -> Config:
    return default_config_parser(CONFIG, parse_options([f"save_path={tmp_path / 'exp'}", *options]), dump=False)


def test_defaults_are_the_options_the_trainer_passed_before():
    # bucket_cap_mb None is left to DDP (25 MiB, a first bucket of 1 MiB), as before the key existed
    assert ddp_options(Config({})) == dict(static_graph=False, gradient_as_bucket_view=False,
                                           broadcast_buffers=False, find_unused_parameters=False)
    base = Config.fromfile(os.path.join(ROOT, "configs", "_base_", "default_runtime.py"))
    assert base.ddp.to_dict() == DDP_DEFAULTS
    assert ddp_options(Config({"ddp": None, "find_unused_parameters": True}))["find_unused_parameters"] is True


def test_options_override_and_keep_find_unused_parameters(tmp_path):
    cfg = _parse(tmp_path, "ddp.static_graph=true", "ddp.bucket_cap_mb=2.5", "find_unused_parameters=true")
    assert ddp_options(cfg) == dict(DDP_DEFAULTS, static_graph=True, bucket_cap_mb=2.5, find_unused_parameters=True)


@pytest.mark.parametrize("option,message", [
    ("ddp.bucket_size=4", r"ddp: unknown option\(s\) 'bucket_size'; known: bucket_cap_mb, static_graph"),
    ("ddp.find_unused_parameters=true", r"'find_unused_parameters'.*a top-level config key"),
    ("ddp.static_graph=maybe", r"ddp\.static_graph=maybe: expected True or False"),
    ("ddp.bucket_cap_mb=0", r"ddp\.bucket_cap_mb=0: expected a positive number"),
    ("ddp=fast", r"ddp=fast: expected a dict"),
])
def test_bad_ddp_options_name_the_key(tmp_path, option, message):
    with pytest.raises(OptionError, match=message):
        _parse(tmp_path, option)


def test_a_config_without_the_base_runtime_takes_ddp_options_too(tmp_path):
    config = tmp_path / "toy.py"
    Config(toy_cfg_dict(str(tmp_path / "exp"))).dump(str(config))
    cfg = default_config_parser(str(config), {"ddp.gradient_as_bucket_view": True}, dump=False)
    assert ddp_options(cfg)["gradient_as_bucket_view"] is True
    with pytest.raises(OptionError, match=r"ddp: unknown option\(s\) 'static'"):
        default_config_parser(str(config), {"ddp.static": True}, dump=False)


_WRAPPED = """
import sys
import torch
from pointcept_distill.engine.defaults import create_ddp_model, ddp_options
from pointcept_distill.engine.launch import launch
from pointcept_distill.utils import comm
from pointcept_distill.utils.config import Config

def main():
    model = create_ddp_model(torch.nn.Linear(3, 2), ddp_options(Config({"ddp": %r})))
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
    assert model.static_graph and model.gradient_as_bucket_view and model.bucket_bytes_cap == 2**20
    assert not model.broadcast_buffers and not model.find_unused_parameters
    for step in range(3):  # the first steps of a static graph take their own path
        model.zero_grad()
        model(torch.full((1, 3), float(comm.get_rank() + step))).sum().backward()
        assert torch.allclose(model.module.weight.grad, torch.full((2, 3), 0.5 + step))

if __name__ == "__main__":
    launch(main, num_gpus_per_machine=2)
    print("wrapped")
"""


@pytest.mark.slow
def test_create_ddp_model_passes_the_options_to_ddp(tmp_path):
    script = tmp_path / "wrapped.py"
    script.write_text(_WRAPPED % (FAST,))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrapped" in done.stdout


def _train(tmp_path, name: str, **ddp) -> dict:
    save_path = tmp_path / name
    cfg = toy_cfg_dict(str(save_path), model=dict(type="ToySegmentor", dropout=0.0), batch_size=4, epoch=2,
                       eval_epoch=1, gradient_accumulation_steps=2, batch_size_val=2, ddp=ddp or None,
                       hooks=[dict(type="CheckpointLoader"), dict(type="InformationWriter"),
                              dict(type="SemSegEvaluator"), dict(type="CheckpointSaver")])
    config = tmp_path / f"{name}.py"
    Config(cfg).dump(str(config))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config-file", str(config),
                           "--num-gpus", "2"], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return load_checkpoint(str(save_path / "model" / "model_last.pth"))["state_dict"]


@pytest.mark.slow
def test_two_gloo_processes_train_alike_under_every_option(tmp_path):
    default, fast = _train(tmp_path, "default"), _train(tmp_path, "fast", **FAST)
    assert default.keys() == fast.keys()
    for key, value in default.items():
        torch.testing.assert_close(fast[key], value, rtol=1e-5, atol=1e-6)

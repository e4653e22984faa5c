"""Command-line config overrides (``--options`` / ``scripts/train.sh -- KEY=VALUE``): an unknown top-level key or a
malformed value is an error naming the key and what is expected; ``data_root`` reaches every data section built
from it, or is refused with the keys to set."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pointcept_distill.engine import default_config_parser
from pointcept_distill.utils.config import OptionError, parse_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "nuscenes", "semseg-pt-v3m1-0-base.py")
JOINT = os.path.join(ROOT, "configs", "joint", "semseg-pt-v3m1-0-base.py")


def _parse(tmp_path, config: str, *options: str):
    return default_config_parser(config, parse_options([f"save_path={tmp_path / 'exp'}", *options]), dump=False)


def test_unknown_top_level_key_lists_the_closest_known_keys(tmp_path):
    with pytest.raises(OptionError, match=r"epochs=3: unknown config key 'epochs'.*closest known keys: 'epoch'"):
        _parse(tmp_path, CONFIG, "epochs=3")


@pytest.mark.parametrize("option,message", [
    ("batch_size=abc", r"batch_size=abc: expected an integer \(the config has 12\)"),
    ("optimizer.lr=[1,", r"optimizer\.lr=\[1,: unbalanced brackets"),
    ("optimizer.lr.x=1", r"optimizer\.lr\.x=1: 'optimizer\.lr' is 0\.002 \(float\), not a dict"),
    ("amp_dtype=fp16", r"amp_dtype='fp16': expected one of 'float16', 'bfloat16'"),
    ("enable_amp=maybe", r"enable_amp=maybe: expected True or False"),
    ("optimizer=adamw", r"optimizer=adamw: expected a dict .*optimizer\.KEY=VALUE"),
])
def test_malformed_values_name_the_key_and_the_expected_form(tmp_path, option, message):
    with pytest.raises(OptionError, match=message):
        _parse(tmp_path, CONFIG, option)


def test_well_formed_overrides_still_apply(tmp_path):
    cfg = _parse(tmp_path, CONFIG, "batch_size=4", "optimizer.lr=0.01", "clip_grad=None", "enable_amp=false",
                 "scheduler.max_lr=[0.01,0.001]", "model.backbone.enc_depths=(1,1,1,1,1)", "weight=None")
    assert (cfg.batch_size, cfg.optimizer.lr, cfg.clip_grad, cfg.enable_amp) == (4, 0.01, None, False)
    assert cfg.scheduler.max_lr == [0.01, 0.001] and cfg.model.backbone.enc_depths == (1, 1, 1, 1, 1)


def test_data_root_override_reaches_every_data_section(tmp_path):
    cfg = _parse(tmp_path, CONFIG, f"data_root={tmp_path}")
    assert cfg.data_root == str(tmp_path)
    assert [cfg.data[s].data_root for s in ("train", "val", "test")] == [str(tmp_path)] * 3


def test_data_root_of_a_joint_config_is_refused_with_the_keys_to_set(tmp_path):
    with pytest.raises(OptionError, match=r"data_root=.*data\.train\.datasets\.0\.data_root.*data\.test\.data_root"):
        _parse(tmp_path, JOINT, f"data_root={tmp_path}")
    cfg = _parse(tmp_path, JOINT, f"data_roots.waymo={tmp_path}")
    waymo = [d.data_root for d in cfg.data.train.datasets + cfg.data.val.datasets if d.type == "WaymoDataset"]
    assert waymo == [str(tmp_path)] * 2
    assert cfg.data.test.data_root == "data/nuscenes"


def test_tools_train_reports_a_bad_option_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config-file", CONFIG,
                           "--options", f"save_path={tmp_path / 'exp'}", "epochs=3"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0 and "closest known keys: 'epoch'" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "exp").exists()

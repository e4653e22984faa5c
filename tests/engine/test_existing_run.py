"""Starting a run never silently replaces an earlier one: ``tools/train.py`` (``default_config_parser(...,
for_training=True)``) refuses a save_path that already holds a run unless resuming or ``overwrite=True``."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pointcept_distill.engine import default_config_parser
from pointcept_distill.utils.config import Config
from toy_components import toy_cfg_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _earlier_run(tmp_path, what: str):
    """A config file and a save_path holding an earlier run's ``what`` (and its config.py and train.log)."""
    save = tmp_path / "exp"
    (save / "model").mkdir(parents=True)
    (save / "config.py").write_text("# the earlier run's config\n")
    (save / "train.log").write_text("earlier run's log\n" if what == "train.log" else "")
    if what != "train.log":
        (save / "model" / what).write_bytes(b"earlier weights")
    config = tmp_path / "toy.py"
    Config(toy_cfg_dict(str(save))).dump(str(config))
    return str(config), save


@pytest.mark.parametrize("what", ["model_last.pth", "model_best.pth", "train.log"])
def test_existing_run_is_refused_before_anything_is_written(tmp_path, what):
    config, save = _earlier_run(tmp_path, what)
    with pytest.raises(FileExistsError, match=rf"{save}' already holds a run \(.*{what}.*-r true.*overwrite=True"):
        default_config_parser(config, {}, for_training=True)
    assert (save / "config.py").read_text() == "# the earlier run's config\n"


@pytest.mark.parametrize("options", [{"resume": True}, {"overwrite": True}, {"save_path": "OTHER"}])
def test_resume_overwrite_or_another_folder_start(tmp_path, options):
    config, save = _earlier_run(tmp_path, "model_last.pth")
    options = {k: str(tmp_path / "other") if v == "OTHER" else v for k, v in options.items()}
    cfg = default_config_parser(config, options, for_training=True)
    assert cfg.save_path == options.get("save_path", str(save))


def test_fresh_folder_and_other_callers_are_not_checked(tmp_path):
    config, save = _earlier_run(tmp_path, "model_last.pth")
    default_config_parser(config, {}, dump=False)           # testers, benchmarks: their own folders
    (save / "model" / "model_last.pth").unlink()
    default_config_parser(config, {}, for_training=True)    # empty train.log, no checkpoint: nothing lost
    with pytest.raises(ValueError, match="overwrite must be True or False"):
        default_config_parser(config, {"overwrite": "yes"}, for_training=True)


def test_tools_train_refuses_and_keeps_log_and_best_checkpoint(tmp_path):
    config, save = _earlier_run(tmp_path, "model_best.pth")
    (save / "train.log").write_text("earlier run's log\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config-file", config],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "already holds a run" in proc.stderr, proc.stderr[-3000:]
    assert (save / "train.log").read_text() == "earlier run's log\n"
    assert (save / "model" / "model_best.pth").read_bytes() == b"earlier weights"

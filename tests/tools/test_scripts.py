"""End-to-end: scripts/train.sh and scripts/test.sh on simulator frames with a tiny PT-v3m1 (CPU)."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pointcept_distill.engine.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "semseg-pt-v3m1-sim-tiny"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("sim") / "nuscenes"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_synthetic.py"), "--profile", "nuscenes",
                    "--out", str(out), "--train", "4", "--val", "2", "--seed", "0", "--scale", "0.1"],
                   check=True, capture_output=True)
    return str(out)


def _data_options(sim_root: str) -> list[str]:
    return [f"data.{split}.data_root={sim_root}" for split in ("train", "val", "test")]


def _script(name: str, exp_root, *args: str, extra=(), wait=True, env_extra=None):
    cmd = ["sh", os.path.join(ROOT, "scripts", name), "-p", sys.executable, "-d", "nuscenes", *args, "--", *extra]
    env = dict(os.environ, EXP_ROOT=str(exp_root), **(env_extra or {}))
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _weights(path) -> dict:
    return load_checkpoint(path)["state_dict"]


def test_train_evaluate_save_then_test(tmp_path, sim_root):
    _script("train.sh", tmp_path, "-g", "1", "-c", CONFIG, "-n", "run", extra=_data_options(sim_root))
    exp = tmp_path / "nuscenes" / "run"
    files = set(os.listdir(exp))
    assert {"config.py", "train.log", "model", "code", "result"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert {"model_last.pth", "model_best.pth"} <= set(os.listdir(exp / "model"))
    assert os.path.isfile(exp / "code" / "git_commit.txt")
    assert os.path.isfile(exp / "code" / "pointcept_distill" / "engine" / "train.py")
    log = (exp / "train.log").read_text()
    assert "Val result: mIoU/mAcc/allAcc" in log and "Train: [2/2]" in log
    assert json.loads((exp / "result" / "summary.json").read_text())["mode"] == "fragment_voting"

    _script("test.sh", tmp_path, "-n", "run", extra=["test.single_pass=true"])
    summary = json.loads((exp / "result" / "summary.json").read_text())
    assert summary["mode"] == "single_pass" and summary["num_scans"] == 2
    assert set(summary["iou_per_class"]) >= {"car", "vegetation"} and summary["seconds_per_scan"] > 0
    preds = sorted((exp / "result").glob("*_pred.npy"))
    assert len(preds) == 2
    # one prediction per original point: nuScenes frames are float32 x 5 per point
    frames = {os.path.getsize(f) // 20 for f in pathlib.Path(sim_root).glob("raw/samples/LIDAR_TOP/*.bin")}
    assert {np.load(p).shape[0] for p in preds} <= frames
    assert "Seconds per scan" in (exp / "test.log").read_text()


# Imported by the killed run (custom_imports): after the checkpoint saved inside an epoch after the first, the run
# writes $PAUSE_MARKER and waits, so that the test kills it at that point whatever the machine's load.
PAUSE_MODULE = """
import os, pathlib, time
from pointcept_distill.engine.hooks.checkpoint_saver import CheckpointSaver

_after_step = CheckpointSaver.after_step


def after_step(self):
    _after_step(self)
    marker, trainer = os.environ.get("PAUSE_MARKER"), self.trainer
    done = trainer.comm_info["iter"] + 1
    if marker and trainer.epoch >= 1 and done % self.save_freq_iter == 0 and done < len(trainer.train_loader):
        pathlib.Path(marker).write_text(f"{trainer.epoch} {done}")
        time.sleep(600)


CheckpointSaver.after_step = after_step
"""


def test_resume_after_sigkill_is_exact(tmp_path, sim_root):
    opts = _data_options(sim_root) + ["epoch=3", "eval_epoch=3", "batch_size=1", "evaluate=false",
                                      "hooks.5.save_freq_iter=1", "hooks.6.test_last=true"]
    (tmp_path / "pause_after_save.py").write_text(PAUSE_MODULE)
    path = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    marker = tmp_path / "paused"
    _script("train.sh", tmp_path, "-g", "1", "-c", CONFIG, "-n", "ref", extra=opts)
    proc = _script("train.sh", tmp_path, "-g", "1", "-c", CONFIG, "-n", "killed", wait=False,
                   extra=opts + ["custom_imports.imports=[pause_after_save]"],
                   env_extra=dict(path, PAUSE_MARKER=str(marker)))
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    output = proc.communicate()[0].decode(errors="replace")
    assert marker.exists() and proc.returncode == -signal.SIGKILL, output[-3000:]
    last = tmp_path / "nuscenes" / "killed" / "model" / "model_last.pth"
    killed_at = load_checkpoint(last)
    assert 1 <= killed_at["epoch"] < 3 and killed_at["iter"] >= 1, output[-3000:]
    _script("train.sh", tmp_path, "-g", "1", "-c", CONFIG, "-n", "killed", "-r", "true", env_extra=path)
    reference = _weights(tmp_path / "nuscenes" / "ref" / "model" / "model_last.pth")
    resumed = _weights(last)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key
    assert "Resuming train at eval epoch" in (tmp_path / "nuscenes" / "killed" / "train.log").read_text()


def test_two_cpu_processes(tmp_path, sim_root):
    _script("train.sh", tmp_path, "-g", "2", "-c", CONFIG, "-n", "ddp", extra=_data_options(sim_root))
    exp = tmp_path / "nuscenes" / "ddp"
    state = _weights(exp / "model" / "model_last.pth")
    assert all(key.startswith("module.") for key in state)
    _script("test.sh", tmp_path, "-g", "2", "-n", "ddp", "-w", "model_last")
    summary = json.loads((exp / "result" / "summary.json").read_text())
    assert summary["num_scans"] == 2 and 0 <= summary["mIoU"] <= 1

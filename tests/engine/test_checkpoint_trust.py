"""Checkpoints are data: loading one (weights, resume, tester, teacher) never runs code stored in the file,
and the training checkpoints we write hold only tensors and plain Python types."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pointcept_distill.distill.teacher import load_teacher
from pointcept_distill.engine import SemSegTester, Trainer, default_setup
from pointcept_distill.engine.checkpoint import CheckpointError, load_checkpoint
from payloads import WritesMarker
from toy_components import toy_cfg

HOOKS = [dict(type="CheckpointLoader"), dict(type="InformationWriter"), dict(type="SemSegEvaluator"),
         dict(type="CheckpointSaver", save_freq_iter=1)]


def _evil_checkpoint(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"epoch": 1, "state_dict": {"seg_head.weight": torch.ones(4, 8)}, "note": WritesMarker(marker)},
               path)
    return str(path), marker


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"evil\.pth' is refused.*pathlib") as err:
        load_checkpoint(path)
    assert "could run code" in str(err.value)
    assert not marker.exists()


def test_resume_tester_and_teacher_refuse_pickled_code(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    trainer = Trainer(default_setup(toy_cfg(tmp_path / "run", hooks=HOOKS, resume=True, weight=path)))
    with pytest.raises(CheckpointError, match="is refused"):
        trainer.train()
    cfg = toy_cfg(tmp_path / "test", weight=path)
    with pytest.raises(CheckpointError, match="is refused"):
        SemSegTester(default_setup(cfg))
    with pytest.raises(CheckpointError, match="is refused"):
        load_teacher(dict(type="ToySegmentor"), path, torch.device("cpu"))
    assert not marker.exists()


def test_corrupt_file_is_still_reported_as_corrupt(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(str(path))


def test_training_checkpoint_holds_only_tensors_and_plain_types(tmp_path):
    Trainer(default_setup(toy_cfg(tmp_path, hooks=HOOKS, epoch=1, eval_epoch=1))).train()
    ckpt = torch.load(tmp_path / "model" / "model_last.pth", map_location="cpu", weights_only=True)
    numpy_state = ckpt["rng_states"][0]["numpy"]
    assert isinstance(numpy_state["key"], torch.Tensor) and numpy_state["key"].shape == (624,)


def test_checkpoint_with_numpy_random_states_still_loads(tmp_path):
    """Checkpoints written before the random states were stored as tensors hold numpy arrays: exactly the
    globals those need are allowed."""
    state = np.random.get_state()
    path = tmp_path / "old.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "rng_states": [{"numpy": state}]}, path)
    loaded = load_checkpoint(str(path))["rng_states"][0]["numpy"]
    assert loaded[0] == "MT19937" and np.array_equal(loaded[1], state[1]) and loaded[1].dtype == np.uint32

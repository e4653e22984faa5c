"""Checkpoints: exact resume mid-epoch and at epoch boundaries, Pointcept keys, corrupt files, atomicity."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from pointcept_distill.engine import Trainer, default_setup
from pointcept_distill.engine.checkpoint import CheckpointError, copy_checkpoint, save_checkpoint
from toy_components import toy_cfg

HOOKS = [dict(type="CheckpointLoader"), dict(type="InformationWriter"), dict(type="SemSegEvaluator"),
         dict(type="CheckpointSaver", save_freq_iter=1)]


def _run(path, crash_at=None, save_freq_iter=1, **overrides) -> Trainer:
    hooks = HOOKS[:-1] + [dict(type="CheckpointSaver", save_freq_iter=save_freq_iter)]
    hooks += [dict(type="CrashAt", global_iter=crash_at)] if crash_at else []
    trainer = Trainer(default_setup(toy_cfg(path, hooks=hooks, **overrides)))
    if crash_at:
        with pytest.raises(RuntimeError, match="planned crash"):
            trainer.train()
    else:
        trainer.train()
    return trainer


def _assert_same_weights(a: Trainer, b: Trainer) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# 4 iterations per epoch, 2 epochs; (epoch, iter) of the checkpoint the crashed run leaves behind
@pytest.mark.parametrize("crash_at,workers,save_freq_iter,saved", [
    (6, 0, 1, (1, 2)),      # mid-epoch iteration checkpoint
    (4, 0, 1, (0, 3)),      # crash before the epoch checkpoint: the last iteration checkpoint
    (7, 2, 2, (1, 2)),      # loader workers; checkpoint every 2 iterations
    (7, 0, None, (1, 0)),   # epoch checkpoints only: the epoch restarts from its beginning
])
def test_resume_after_crash_repeats_the_uninterrupted_run(tmp_path, crash_at, workers, save_freq_iter, saved):
    reference = _run(tmp_path / "ref", num_worker=workers)
    _run(tmp_path / "run", crash_at=crash_at, num_worker=workers, save_freq_iter=save_freq_iter)
    ckpt = torch.load(tmp_path / "run" / "model" / "model_last.pth", weights_only=True)
    assert (ckpt["epoch"], ckpt["iter"]) == saved
    resumed = _run(tmp_path / "run", num_worker=workers, resume=True,
                   weight=str(tmp_path / "run" / "model" / "model_last.pth"))
    _assert_same_weights(reference, resumed)
    assert resumed.best_metric_value == reference.best_metric_value


def test_resume_from_a_checkpoint_with_numpy_random_states_is_exact(tmp_path):
    """Checkpoints written before the random states were stored as tensors (numpy's state as
    ``np.random.get_state()``'s tuple with a uint32 array) still resume bit for bit."""
    reference = _run(tmp_path / "ref")
    _run(tmp_path / "run", crash_at=6)
    path = tmp_path / "run" / "model" / "model_last.pth"
    ckpt = torch.load(path, weights_only=True)
    for state in ckpt["rng_states"]:
        s = state["numpy"]
        state["numpy"] = (s["bit_generator"], s["key"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                          s["cached_gaussian"])
    torch.save(ckpt, path)
    resumed = _run(tmp_path / "run", resume=True, weight=str(path))
    _assert_same_weights(reference, resumed)


def test_different_seed_gives_different_weights(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", seed=4)
    assert not torch.equal(a.model.seg_head.weight, b.model.seg_head.weight)


def test_checkpoint_has_pointcept_keys_and_files(tmp_path):
    trainer = _run(tmp_path)
    model_dir = tmp_path / "model"
    assert {"model_last.pth", "model_best.pth"} <= set(os.listdir(model_dir))
    assert not [f for f in os.listdir(model_dir) if ".tmp" in f]
    ckpt = torch.load(model_dir / "model_last.pth", weights_only=True)
    for key in ("epoch", "state_dict", "optimizer", "scheduler", "scaler", "best_metric_value"):
        assert key in ckpt
    assert ckpt["epoch"] == 2 and ckpt["iter"] == 0 and ckpt["scaler"] is None
    assert ckpt["best_metric_value"] == trainer.best_metric_value
    assert set(ckpt["state_dict"]) == set(trainer.model.state_dict())


def test_pointcept_checkpoint_without_extra_keys_resumes(tmp_path):
    _run(tmp_path / "run", crash_at=5, save_freq_iter=None)
    path = tmp_path / "run" / "model" / "model_last.pth"
    ckpt = torch.load(path, weights_only=True)
    upstream = {k: ckpt[k] for k in ("epoch", "state_dict", "optimizer", "scheduler", "scaler",
                                     "best_metric_value")}
    upstream["state_dict"] = {f"module.{k}": v for k, v in upstream["state_dict"].items()}
    torch.save(upstream, tmp_path / "upstream.pth")
    resumed = _run(tmp_path / "run2", resume=True, weight=str(tmp_path / "upstream.pth"))
    assert resumed.start_epoch == 1 and resumed.start_iter == 0 and resumed.completed


def test_corrupt_checkpoint_gives_clear_error_and_is_not_overwritten(tmp_path):
    os.makedirs(tmp_path / "model")
    path = tmp_path / "model" / "model_last.pth"
    path.write_bytes(b"not a checkpoint at all")
    trainer = Trainer(default_setup(toy_cfg(tmp_path, hooks=HOOKS, resume=True, weight=str(path))))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        trainer.train()
    assert path.read_bytes() == b"not a checkpoint at all"


def test_failed_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model_last.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}}, str(path))

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, str(path))
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["model_last.pth"]


def _no_space(obj, f):
    with open(f, "wb") as handle:
        handle.write(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_names_the_path_and_the_cause_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model_last.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}}, str(path))
    monkeypatch.setattr(torch, "save", _no_space)
    with pytest.raises(OSError, match=rf"{path}.*No space left on device") as err:
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, str(path))
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    monkeypatch.setattr(shutil, "copyfile", _no_space)
    with pytest.raises(OSError, match=r"model_best\.pth.*No space left on device"):
        copy_checkpoint(str(path), str(tmp_path / "model_best.pth"))
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["model_last.pth"]


def test_disk_full_during_training_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    saved = []
    real_save = torch.save

    def fills_up(obj, f):
        if len(saved) == 2:
            _no_space(obj, f)
        saved.append(obj["iter"])
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", fills_up)
    trainer = Trainer(default_setup(toy_cfg(tmp_path, hooks=HOOKS)))
    with pytest.raises(OSError, match=r"model_last\.pth.*No space left on device"):
        trainer.train()
    monkeypatch.undo()
    assert torch.load(tmp_path / "model" / "model_last.pth", weights_only=True)["iter"] == saved[-1] == 2
    assert not [f for f in os.listdir(tmp_path / "model") if ".tmp" in f]


def test_temporary_files_of_interrupted_writes_are_removed_when_a_run_starts(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    model = tmp_path / "model"
    model.mkdir()
    stale = [model / f"model_last.pth.tmp.{dead.pid}", model / f"model_best.pth.tmp.{dead.pid}"]
    kept = [model / f"epoch_1.pth.tmp.{os.getppid()}",  # a live process's write in progress
            model / "notes.tmp.txt", tmp_path / "my.tmp.1"]
    for f in stale + kept:
        f.write_bytes(b"x")
    trainer = Trainer(default_setup(toy_cfg(tmp_path, hooks=HOOKS)))
    trainer.before_train()
    assert not any(f.exists() for f in stale) and all(f.exists() for f in kept)


def test_weight_that_is_not_a_file_is_an_error(tmp_path):
    trainer = Trainer(default_setup(toy_cfg(tmp_path, hooks=HOOKS, weight=str(tmp_path / "missing.pth"))))
    with pytest.raises(CheckpointError, match="missing.pth' is not a file"):
        trainer.train()


def test_loader_keyword_replacement_and_module_prefix(tmp_path):
    source = _run(tmp_path / "src", epoch=1, eval_epoch=1)
    state = {f"module.net.{k}": v for k, v in source.model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "renamed.pth")
    hooks = [dict(type="CheckpointLoader", keywords="module.net.", replacement="module.", strict=True)]
    trainer = Trainer(default_setup(toy_cfg(tmp_path / "dst", hooks=hooks, epoch=1, eval_epoch=1,
                                            evaluate=False, weight=str(tmp_path / "renamed.pth"))))
    trainer.before_train()
    _assert_same_weights(source, trainer)


@pytest.mark.parametrize("change,shown", [
    (dict(optimizer=dict(type="SGD", lr=0.5, momentum=0.9)), r"optimizer\.lr: 0\.1 -> 0\.5"),
    (dict(optimizer=dict(type="AdamW", lr=0.1)), r"optimizer\.type: 'SGD' -> 'AdamW'"),
    (dict(scheduler=dict(type="OneCycleLR", max_lr=0.1, pct_start=0.5)), r"scheduler\.pct_start: 0\.3 -> 0\.5"),
    (dict(epoch=4), r"epoch: 2 -> 4.*scheduler\.total_steps: 8 -> 16"),
])
def test_resume_with_a_changed_optimizer_schedule_or_epoch_count_is_refused_naming_the_change(tmp_path, change, shown):
    _run(tmp_path, crash_at=6)
    last = tmp_path / "model" / "model_last.pth"
    saved = last.read_bytes()
    with pytest.raises(CheckpointError, match=rf"{shown}.*refused.*resume=False"):
        _run(tmp_path, resume=True, weight=str(last), **change)
    assert last.read_bytes() == saved

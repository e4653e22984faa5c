"""enable_wandb=True: the TensorBoard scalars (same tags, steps, values) go to a stand-in of wandb's API
injected through sys.modules (wandb is not installed); without wandb the run stops at its start."""
from __future__ import annotations

import glob
import os
import sys
import types

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pointcept_distill.engine import Trainer, default_config_parser, default_setup
from toy_components import toy_cfg


class FakeRun:
    def __init__(self, name: str) -> None:
        self.name, self.finished = name, False

    def finish(self) -> None:
        self.finished = True


def fake_wandb() -> types.ModuleType:
    """wandb's calls the writer uses: login, init, define_metric, log (recorded)."""
    module = types.ModuleType("wandb")
    module.logged, module.metrics, module.inits, module.logins = [], {}, [], []

    def init(**kwargs):
        module.inits.append(kwargs)
        module.run = FakeRun(kwargs["name"])
        return module.run

    def define_metric(name, step_metric=None, hidden=None):
        module.metrics[name] = step_metric

    def log(data, step=None, commit=None):
        assert step is None  # every scalar carries its own step metric
        module.logged.append(dict(data))

    module.init, module.define_metric, module.log = init, define_metric, log
    module.login = lambda key=None: module.logins.append(key)
    return module


def _tensorboard(path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(glob.glob(str(path / "events.out.tfevents.*"))[0], size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_wandb_gets_the_tensorboard_scalars(tmp_path, monkeypatch):
    wandb = fake_wandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    save = tmp_path / "toy" / "run"
    hooks = [dict(type="IterationTimer"), dict(type="InformationWriter"), dict(type="SemSegEvaluator")]
    trainer = Trainer(default_setup(toy_cfg(save, hooks=hooks, enable_wandb=True, wandb_project="proj",
                                            wandb_key="k123")))
    trainer.train()

    tensorboard = _tensorboard(save)
    assert {"params/lr", "train_batch/loss", "train/loss", "val/mIoU", "val/loss"} <= set(tensorboard)
    logged: dict[str, list[tuple[int, float]]] = {}
    for entry in wandb.logged:
        (tag,) = [k for k in entry if not k.endswith("_step")]
        logged.setdefault(tag, []).append((entry[f"{tag}_step"], entry[tag]))
    assert set(logged) == set(tensorboard)
    for tag, points in tensorboard.items():
        assert [s for s, _ in logged[tag]] == [s for s, _ in points], tag
        assert [v for _, v in logged[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag
    assert [s for s, _ in logged["train_batch/loss"]] == list(range(1, 9))   # iterations
    assert [s for s, _ in logged["val/mIoU"]] == [1, 2]                       # epochs
    assert all(wandb.metrics[tag] == f"{tag}_step" for tag in logged)
    (init,) = wandb.inits
    assert init["project"] == "proj" and init["name"] == "toy/run" and init["dir"] == str(save)
    assert init["config"]["enable_wandb"] is True and wandb.logins == ["k123"]
    assert wandb.run.finished


def test_missing_wandb_stops_the_run_at_its_start(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = default_setup(toy_cfg(tmp_path / "exp", enable_wandb=True))
    with pytest.raises(ImportError, match=r"enable_wandb=True needs the wandb package.*\.\[wandb\].*"
                                          r"enable_wandb=False"):
        Trainer(cfg)
    assert not os.path.exists(tmp_path / "exp" / "train.log")
    assert not glob.glob(str(tmp_path / "exp" / "events.out.tfevents.*"))


def test_missing_wandb_is_refused_before_the_config_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    config = tmp_path / "cfg.py"
    config.write_text("epoch = 2\neval_epoch = 2\nenable_wandb = True\n")
    with pytest.raises(ImportError, match="wandb"):
        default_config_parser(str(config), {"save_path": str(tmp_path / "exp")}, for_training=True)
    assert not os.path.exists(tmp_path / "exp")


def test_wandb_off_needs_no_wandb(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    trainer = Trainer(default_setup(toy_cfg(tmp_path, enable_wandb=False, evaluate=False, hooks=[])))
    assert type(trainer.writer).__name__ == "SummaryWriter"
    trainer.writer.close()

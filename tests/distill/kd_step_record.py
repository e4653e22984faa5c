"""Records what two distillation steps compute, for each KD loss alone and all together: every logged loss term
and the gradients of everything trained (the student's parameters and the losses' own, FitNets' projectors).

Run as a script to write the reference that ``test_kd_step_parity.py`` compares against bit for bit:

    .venv/bin/python tests/distill/kd_step_record.py     # writes tests/fixtures/kd_step/steps_<cpu>.pt

The steps run on one CPU thread with deterministic algorithms, so the bits depend only on the code, torch's
version and the CPU's vector instructions (``platform()``, recorded with the values).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

REPO = Path(__file__).parents[2]
sys.path.insert(0, str(REPO))

import pointcept_distill.data  # noqa: E402,F401  (registers datasets and transforms)
import pointcept_distill.distill  # noqa: E402,F401  (registers the trainer and losses)
from pointcept_distill.engine import HookBase, default_config_parser, default_setup  # noqa: E402
from pointcept_distill.engine.train import TRAINERS  # noqa: E402
from pointcept_distill.models import build_model  # noqa: E402
from pointcept_distill.utils.config import parse_options  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "kd_step"          # steps_<cpu capability>.pt, one per recording platform
CONFIG = REPO / "configs" / "nuscenes" / "distill-ptv3-sim-tiny.py"   # the paper's logit, grad and topo KD
CWD = ("distill.cwd_kd.type=ChannelWiseKD",)
FITNETS = ("distill.feat_kd.type=FeatureMimicKD",)
# each case: the options that leave its losses on (the config's three, plus CWD and FitNets where named)
CASES = {
    "logit": ("distill.grad_kd=None", "distill.topo_kd=None"),
    "grad": ("distill.logit_kd=None", "distill.topo_kd=None"),
    "topo": ("distill.logit_kd=None", "distill.grad_kd=None"),
    "cwd": ("distill.logit_kd=None", "distill.grad_kd=None", "distill.topo_kd=None", *CWD),
    "fitnets": ("distill.logit_kd=None", "distill.grad_kd=None", "distill.topo_kd=None", *FITNETS),
    "all": (*CWD, *FITNETS, "distill.grad_norm_interval=1"),
    "all_two_stages": (*CWD, *FITNETS, "distill.stages=[bottleneck,enc2]"),
}
STEPS = 2


def platform() -> dict:
    """What the bits of a CPU step depend on besides the code."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fixture_for(recording_platform: dict) -> Path:
    """The reference file of a platform: the bits differ between CPUs' vector instructions, so each has its own."""
    return FIXTURES / f"steps_{recording_platform['cpu_capability'].lower()}.pt"


class StepRecorder(HookBase):
    """After each step: its logged scalars and the gradients of every trained parameter, by name."""

    def __init__(self, named_parameters: dict[str, torch.nn.Parameter]) -> None:
        self.named_parameters = named_parameters
        self.steps: list[dict] = []

    def after_step(self) -> None:
        self.steps.append({
            "outputs": {k: v.clone() for k, v in self.trainer.comm_info["model_output_dict"].items()},
            "grads": {k: p.grad.clone() for k, p in self.named_parameters.items() if p.grad is not None},
        })


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def write_teacher(cfg, path: Path) -> None:
    """A random teacher (seed 0) with non-trivial BatchNorm statistics, as a Pointcept checkpoint."""
    torch.manual_seed(0)
    teacher = build_model(cfg.teacher)
    for m in teacher.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save({"epoch": 1, "state_dict": teacher.state_dict()}, path)


def make_data(root: Path) -> None:
    """The steps' data: the copy in ``FIXTURES / "data"``, written at 89388b3 by ``generate("nuscenes", root,
    train=2, val=1, seed=3, scale=0.08)`` (the scans the recordings of 60df246 and 26e8df9 read), so that a change
    of the simulator leaves the recorded steps valid."""
    shutil.copytree(FIXTURES / "data", root, dirs_exist_ok=True)


def record_case(options: tuple[str, ...], data_root: Path, work: Path) -> list[dict]:
    """``STEPS`` training steps (one per epoch: two scans, batch size 2) of the tiny distillation config."""
    opts = [f"save_path={work / 'exp'}", f"data_root={data_root}",
            *(f"data.{s}.data_root={data_root}" for s in ("train", "val", "test")),
            f"teacher_weight={work / 'teacher.pth'}", f"epoch={STEPS}", f"eval_epoch={STEPS}", "evaluate=False",
            *options]
    cfg = default_config_parser(str(CONFIG), parse_options(opts))
    cfg.hooks = []
    if not (work / "teacher.pth").exists():
        write_teacher(cfg, work / "teacher.pth")
    with one_thread():
        trainer = TRAINERS.build(dict(type=cfg.train.type, cfg=default_setup(cfg)))
        named = dict(trainer.model.named_parameters())
        named.update(trainer.distiller.loss_modules.named_parameters(prefix="distill_losses"))
        recorder = StepRecorder(named)
        trainer.register_hooks([recorder])
        trainer.train()
    return recorder.steps


def record_all(data_root: Path, work: Path) -> dict[str, list[dict]]:
    return {name: record_case(options, data_root, work / name) for name, options in CASES.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_data(tmp / "data")
        for name in CASES:
            (tmp / name).mkdir()
        steps = record_all(tmp / "data", tmp)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    path = fixture_for(platform())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"platform": platform(), "commit": commit, "cases": CASES, "steps": steps}, path)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size / 1e6:.2f} MB) at {commit[:7]}: "
          + ", ".join(f"{k}: {sorted(v[-1]['outputs'])}" for k, v in steps.items()))


if __name__ == "__main__":
    main()

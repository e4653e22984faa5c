"""The captured training step of ``DistillTrainer`` (config key ``captured_step``; engine/captured_step.py): the
teacher's forward, the student's, the task loss, the KD terms that read only the logits (our recipe's CWD + DIST,
and LogitKD) with their weight schedule, and the backward run as one graph per padded plan; the run equals the
eager distillation run. What it cannot capture yet (the per-stage losses, the gradient norms, a teacher with graphs
of its own) is refused by name. On the CPU the padded step runs eagerly; on CUDA the same tests run the graphs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pointcept_distill.distill  # noqa: F401
from pointcept_distill.data.simulator import generate
from pointcept_distill.engine import default_config_parser, default_setup
from pointcept_distill.engine.captured_step import CapturedTrainStep
from pointcept_distill.engine.train import TRAINERS
from pointcept_distill.models.captured import captured_backend
from pointcept_distill.utils.config import parse_options
from kd_step_record import write_teacher

CONFIG = Path(__file__).parents[2] / "configs" / "nuscenes" / "distill-ptv3-sim-tiny.py"
HOOKS = [dict(type="ModelHook"), dict(type="IterationTimer"), dict(type="InformationWriter")]
# our recipe's logit losses (configs/_base_/distill.py) and LogitKD, every term ramped in by a schedule
RECIPE = dict(stages=["bottleneck"], teacher_amp_dtype="bfloat16", teacher_capture=None,
              cwd_kd=dict(type="ChannelWiseKD", temperature=2.0, loss_weight=3.0),
              dist_kd=dict(type="DISTKD", temperature=1.0, loss_weight=1.0),
              logit_kd=dict(type="LogitKD", temperature=1.0, loss_weight=0.3),
              kd_weight_schedule=dict(warmup=0.5))


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    generate("nuscenes", str(root), train=4, val=1, seed=5, scale=0.08)
    return root


@pytest.fixture(scope="module")
def teacher_weight(tmp_path_factory, sim_root):
    """A random teacher with non-trivial batch-norm statistics, saved as a Pointcept checkpoint."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.pth"
    write_teacher(default_config_parser(str(CONFIG), parse_options([f"teacher_weight={path}"])), path)
    return path


def _trainer(tmp_path, sim_root, teacher_weight, *options, **values):
    opts = [f"save_path={tmp_path}", *(f"data.{s}.data_root={sim_root}" for s in ("train", "val", "test")),
            f"teacher_weight={teacher_weight}", "epoch=2", "eval_epoch=2", "evaluate=False",
            "model.backbone.drop_path=0.0", "clip_grad=1.0", *options]
    cfg = default_config_parser(str(CONFIG), parse_options(opts))
    cfg.hooks = HOOKS
    cfg.distill = dict(RECIPE)
    cfg.optimizer = dict(type="AdamW", lr=0.002, weight_decay=0.005, eps=1e-4)   # eps: see the engine's test
    for key, value in values.items():
        setattr(cfg, key, value)
    trainer = TRAINERS.build(dict(type=cfg.train.type, cfg=default_setup(cfg)))
    for backbone in (trainer.model.backbone, trainer.teacher.model.backbone):   # the captured step's kernels
        backbone.set_backend(captured_backend(backbone.backend, implicit_gemm=True))
    return trainer


def _recorded(trainer) -> list[dict[str, float]]:
    """Every step's logged loss terms, appended after the step."""
    steps, run_step = [], trainer.run_step

    def recorded() -> None:
        run_step()
        steps.append({k: float(v) for k, v in trainer.comm_info["model_output_dict"].items() if "loss" in k})
    trainer.run_step = recorded
    return steps


# (relative tolerance of the logged terms, relative and absolute tolerance of the final weights). On the CPU the two
# steps differ by fp32 summation order only; Adam's normalised update turns that rounding into up to about 1e-5 of a
# weight whose gradient is near zero (measured: one of the 4,000 stem weights 1.06e-5 apart after the 4 steps). On
# CUDA the per-sample sums (index_add) add in the order atomics land, which varies from run to run, and CWD's KL is
# a sum of terms that cancel: measured on an H100, CWD 1.8e-5 (bf16 teacher) and 2.7e-5 (fp32 teacher) apart at
# step 1. A wrong term moves a weight by about lr = 2e-3 a step, far above every bound.
TOLERANCE = (1e-4, 1e-3, 5e-5) if torch.cuda.is_available() else (1e-5, 1e-4, 2e-5)


# the per-stage losses a captured step records: voxel matching and the task gradients inside the step, the padding
# sample left out by the stage's valid rows
STAGE_LOSSES = dict(grad_kd=dict(type="GradGuidedKD", loss_weight=1.0),
                    feat_kd=dict(type="FeatureMimicKD", loss_weight=1.0))


@pytest.mark.parametrize("teacher_dtype, stage_losses", [(None, {}), ("bfloat16", {}), (None, STAGE_LOSSES)])
def test_captured_distillation_step_trains_as_the_eager_step(tmp_path, sim_root, teacher_weight, teacher_dtype,
                                                             stage_losses):
    """2 epochs x 2 steps with OneCycle and clipping: each step's task and KD terms (the schedule's factor moving
    from 0 to 1 over them: recaptured never, read from a device tensor) and the final student weights equal the
    eager DistillTrainer's; the teacher is untouched."""
    runs, (rel, weight_rel, weight_abs) = {}, TOLERANCE
    distill = dict(RECIPE, teacher_amp_dtype=teacher_dtype, **stage_losses)
    captured_step = dict(enabled=True, steps_per_octave=4)
    for name, values in (("eager", {"captured_step": False}), ("captured", {"captured_step": captured_step})):
        trainer = _trainer(tmp_path / name, sim_root, teacher_weight, distill=distill, **values)
        teacher = {k: v.clone() for k, v in trainer.teacher.model.state_dict().items()}
        steps = _recorded(trainer)
        trainer.train()
        assert all(torch.equal(v, teacher[k]) for k, v in trainer.teacher.model.state_dict().items())
        runs[name] = (trainer, steps)
    (eager, eager_steps), (captured, captured_steps) = runs["eager"], runs["captured"]
    assert isinstance(captured.captured_step, CapturedTrainStep) and captured.captured_step.steps == 4
    assert captured.captured_step.losses == captured.forward_losses     # teacher, student and the KD hooks' terms
    assert len(captured_steps) == len(eager_steps) == 4
    stage_terms = {"loss_kd_grad", "loss_kd_feat"} if stage_losses else set()
    assert set(eager_steps[0]) == {"loss", "loss_seg", "loss_kd_cwd", "loss_kd_dist", "loss_kd_logit"} | stage_terms
    assert eager_steps[0]["loss_kd_cwd"] == 0 and eager_steps[-1]["loss_kd_cwd"] > 0    # the ramp: can fail
    for step, (got, want) in enumerate(zip(captured_steps, eager_steps)):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=rel, abs=1e-7), f"step {step} {key}"
    for (name, value), want in zip(captured.model.state_dict().items(), eager.model.state_dict().values()):
        torch.testing.assert_close(value, want, rtol=weight_rel, atol=weight_abs, msg=name)
    if torch.cuda.is_available():
        step = captured.captured_step
        assert 1 <= step.captures < step.steps and step.optimizer_graph is not None


@pytest.mark.parametrize("values, match", [
    (dict(distill=dict(RECIPE, topo_kd=dict(type="TopologyKD", num_points=16, loss_weight=0.1), grad_norm_interval=2)),
     r"hooks that cannot be captured \(topo_kd, LossGradientNorms\)"),
    (dict(distill=dict(RECIPE, teacher_capture="graphs")), r"set distill.teacher_capture=None"),
    (dict(captured_step=dict(enabled=True, compile="inductor")), r"set captured_step.compile=None"),
])
def test_what_the_captured_distillation_step_cannot_run_is_refused_by_name(tmp_path, sim_root, teacher_weight,
                                                                           values, match):
    with pytest.raises(ValueError, match=match):
        _trainer(tmp_path, sim_root, teacher_weight, **{"captured_step": True, **values})

"""``DistillTrainer``: the default trainer plus a frozen teacher and the paper's distillation losses.

Per step: L = L_seg + gamma * L_KLD + lambda * L_grad + beta * L_topo (arXiv 2505.08101), where
- L_KLD compares the student's and teacher's per-point logits (``LogitKD``),
- L_grad compares per-sample gradient-weighted importance maps of captured stage features (``GradGuidedKD``),
- L_topo compares feature-space persistence diagrams of those features (``TopologyKD``);
and, off by default, CWD on the logits (``ChannelWiseKD``), DIST on the class probabilities (``DISTKD``) and FitNets
feature mimicking (``FeatureMimicKD``); our recipe (``configs/_base_/distill.py``) is CWD plus DIST.

Config keys (beside the usual ones; the student is ``model``):
    train = dict(type="DistillTrainer")
    teacher = dict(type="DefaultSegmentorV2", ...)     # the teacher's model config
    teacher_weight = "exp/.../model_best.pth"          # a Pointcept checkpoint, loaded strictly
    distill = dict(
        stages=["bottleneck"],                          # captured stages: "bottleneck", "enc<s>", "dec<s>"
        teacher_amp_dtype="bfloat16",                   # the teacher's autocast on CUDA (None: the step's)
        teacher_capture=None,                           # "graphs": the teacher's part replayed from CUDA graphs
        logit_kd=dict(type="LogitKD", temperature=1.0, loss_weight=0.3),
        grad_kd=dict(type="GradGuidedKD", norm="minmax", loss_weight=10.0),
        topo_kd=dict(type="TopologyKD", num_points=64, loss_weight=0.1),
        cwd_kd=None,                                    # e.g. dict(type="ChannelWiseKD", temperature=4.0,
                                                        #   loss_weight=3.0): the logits' per-class maps over
                                                        #   each sample's points (ignore-labelled ones too)
        dist_kd=None,                                   # e.g. dict(type="DISTKD", temperature=1.0): Pearson
                                                        #   relations per point and per class (losses/dist_kd.py)
        feat_kd=None,                                   # e.g. dict(type="FeatureMimicKD", loss_weight=1.0): a
                                                        #   learned projector per stage; widths read from the models
        grad_norm_interval=0,                           # every that many steps, log each loss term's gradient
                                                        #   norm into the student (0: off; grad_norms.py);
                                                        #   not with ddp.static_graph=True
        kd_weight_schedule=None,                        # e.g. dict(warmup=0.1, decay_from=0.8): a factor on every
                                                        #   KD term by the share of training done (schedule.py)
    )
A loss set to None or with loss_weight 0 is not computed at all (``--options distill.topo_kd=None``). A new loss
is a class registered in ``LOSSES`` that names what it reads (``step_inputs`` or ``stage_inputs``, ``step.py``)
and one config line, ``distill.<name>_kd = dict(type=...)``.

Per step, ``compute_loss`` runs the student and does the losses' shared work once (``Distiller.forward``: teacher
forward, feature capture, voxel matching, task gradients), leaving it in ``distill_step``; each active loss is a
``KDLossHook`` that adds its terms in the engine's ``after_forward`` stage, before the backward.

The projectors of ``feat_kd`` are trained with the student: the optimizer holds them beside the student's
parameters (in the same ``param_dicts`` groups, named ``distill_losses.feat_kd.<stage>.projector.*``), and
checkpoints keep them under ``distill_state_dict`` (``state_dict`` stays the student's alone).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..engine.captured_step import CapturedTrainStep, captured_step_options
from ..engine.defaults import ddp_options
from ..engine.hooks import HookBase
from ..engine.train import TRAINERS, Trainer
from ..models.captured import captured_backend
from ..utils import comm
from ..utils.misc import sha256_file
from ..utils.optimizer import build_optimizer
from .distiller import Distiller
from .hooks import LossGradientNorms
from .step import DistillStep
from .teacher import FrozenTeacher, load_teacher

__all__ = ["DistillTrainer", "DISTILL_PREFIX", "DISTILL_STATE_KEY"]

DISTILL_PREFIX = "distill_losses"            # the distillation parameters' names in the optimizer
DISTILL_STATE_KEY = "distill_state_dict"     # their checkpoint key


@TRAINERS.register_module("DistillTrainer")
class DistillTrainer(Trainer):
    """Trains ``cfg.model`` (the student) against a frozen ``cfg.teacher``; the checkpoints' ``state_dict`` is the
    student's alone (the distillation losses' parameters have a key of their own)."""

    distill_step: DistillStep | None = None     # the current step's shared work, read by the KD loss hooks

    def build_model(self) -> nn.Module:
        """The student, then the teacher and the ``Distiller`` (before the optimizer, which holds the
        distillation losses' parameters too)."""
        model = super().build_model()
        cfg = self.cfg
        self.logger.info(f"=> Loading teacher '{cfg.get('teacher_weight')}' ...")
        teacher = load_teacher(cfg.teacher, cfg.get("teacher_weight"), self.device)
        self.teacher_sha256 = sha256_file(cfg.teacher_weight)
        student = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.distiller = Distiller(teacher, cfg.get("distill", {}), self.device, student)
        if self.distiller.grad_norm_interval and ddp_options(cfg)["static_graph"]:
            # each term's gradient norm is a backward of its own through DDP's output; under a static graph the
            # first one would start step 1's gradient all-reduce before the step's backward has run
            raise ValueError(f"distill.grad_norm_interval={self.distiller.grad_norm_interval} cannot be used with "
                             f"ddp.static_graph=True (the per-term gradient norms would leave the first step's "
                             f"gradients unreduced across processes): set distill.grad_norm_interval=0 or "
                             f"ddp.static_graph=False (docs/multi_gpu.md#ddp-options)")
        n_params = sum(p.numel() for p in teacher.parameters())
        n_distill = sum(p.numel() for p in self.distiller.loss_modules.parameters())
        active = [hook.name for hook in self.distiller.loss_hooks]
        self.logger.info(f"Teacher params: {n_params}; distillation losses: {active or 'none'} "
                         f"({n_distill} params); stages: {self.distiller.stages}")
        return model

    def build_hooks(self) -> list[HookBase]:
        """The KD loss hooks in step order (the order of their terms, so of the sum), then the gradient norms
        (``distill.grad_norm_interval``; after the loss hooks, so that they see every term), then ``cfg.hooks``."""
        interval = self.distiller.grad_norm_interval
        norms = [LossGradientNorms(interval)] if interval else []
        return [*self.distiller.loss_hooks, *norms, *super().build_hooks()]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """Over the student's parameters (their names unchanged, so ``param_dicts`` keywords group them as in
        the default trainer) and the distillation losses' (named ``distill_losses.*``), in the same groups (so
        per-group scheduler settings such as OneCycleLR's ``max_lr`` list still match)."""
        named = [*self.model.named_parameters(),
                 *self.distiller.loss_modules.named_parameters(prefix=DISTILL_PREFIX)]
        return build_optimizer(self.cfg.optimizer, named, self.cfg.get("param_dicts"))

    def trained_parameters(self) -> list[nn.Parameter]:
        return [*super().trained_parameters(), *self.distiller.loss_modules.parameters()]

    def optimizer_step(self) -> None:
        # the distillation losses are outside DDP: their gradients are averaged over the processes here
        comm.average_gradients(self.distiller.loss_modules.parameters())
        super().optimizer_step()

    def training_state(self, epochs_done: int, iters_done: int) -> dict:
        return {**super().training_state(epochs_done, iters_done),
                DISTILL_STATE_KEY: self.distiller.loss_modules.state_dict()}

    def run_settings(self) -> dict:
        """The default trainer's, plus the teacher file's SHA-256: a resumed run must distil from the same teacher
        (a moved copy of the file is the same teacher; a retrained one is not)."""
        return {**super().run_settings(), "teacher_weight_sha256": self.teacher_sha256}

    def restore_training_state(self, ckpt: dict, source: str) -> None:
        """The default trainer's state, then the distillation losses' (strictly); a checkpoint without them leaves
        them at their initialisation, with a warning."""
        super().restore_training_state(ckpt, source)
        state = ckpt.get(DISTILL_STATE_KEY)
        if state is not None:
            self.distiller.loss_modules.load_state_dict(state, strict=True)
        elif self.distiller.loss_modules.state_dict():
            self.logger.warning(f"'{source}' has no '{DISTILL_STATE_KEY}': the distillation losses' parameters "
                                f"(feat_kd's projectors) start from their initialisation")

    def capture_problems(self) -> list[str]:
        """The default trainer's, plus what the distillation step cannot capture (yet): the losses with host work
        (``TopologyKD``'s persistence pairs; refused as hooks), the gradient norms, a
        teacher with its own graphs (the captured step runs the teacher inside its graphs) or other strides, and
        compiling the step."""
        problems = super().capture_problems()
        if (captured_step_options(self.cfg) or {}).get("compile") is not None:
            # the compiled backbone would have to run the feature capture's forward hooks, registered per step
            problems.append("captured_step.compile (the student's stage features are taken by forward hooks that "
                            "a compiled backbone does not run: set captured_step.compile=None)")
        if self.cfg.get("distill", {}).get("teacher_capture") not in (None, "None"):
            problems.append("distill.teacher_capture (the captured step replays the teacher inside its own graphs: "
                            "set distill.teacher_capture=None)")
        student = self.model_without_ddp.backbone
        if tuple(self.teacher.model.backbone.strides) != tuple(student.strides):
            problems.append(f"a teacher pooling with strides {tuple(self.teacher.model.backbone.strides)}, the "
                            f"student with {tuple(student.strides)} (one padded plan serves both)")
        return problems

    def build_captured_step(self) -> CapturedTrainStep | None:
        """The default trainer's captured step, the teacher's convolutions on the paths a graph can hold (the
        Triton implicit GEMM for its frozen weights where Triton runs, else the gather-GEMM)."""
        step = super().build_captured_step()
        if step is not None:
            backbone = self.teacher.model.backbone
            backbone.set_backend(captured_backend(backbone.backend, implicit_gemm=True))
        return step

    def plans_batches(self) -> bool:
        """With ``distill.teacher_capture`` the loader's workers also plan each batch for the student's strides
        (its ``plan``), so neither the student nor the captured teacher reads sizes back from the device."""
        return super().plans_batches() or self.cfg.get("distill", {}).get("teacher_capture") not in (None, "None")

    @property
    def teacher(self) -> FrozenTeacher:
        return self.distiller.teacher

    def compute_loss(self, input_dict: dict) -> dict[str, Tensor]:
        """The student's task loss; the losses' shared work goes to ``distill_step`` for the KD loss hooks."""
        output, self.distill_step = self.distiller.forward(self.model, input_dict)
        return output

    def after_forward(self, output: dict[str, Tensor]) -> dict[str, Tensor]:
        try:
            return super().after_forward(output)
        finally:
            self.distill_step = None        # its features are released with the step

"""``DistillTrainer``: the default trainer plus a frozen teacher and the paper's distillation losses.

Per step: L = L_seg + gamma * L_KLD + lambda * L_grad + beta * L_topo (arXiv 2505.08101), where
- L_KLD compares the student's and teacher's per-point logits (``LogitKD``),
- L_grad compares per-sample gradient-weighted importance maps of captured stage features (``GradGuidedKD``),
- L_topo compares feature-space persistence diagrams of those features (``TopologyKD``).

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
    )
A loss set to None or with loss_weight 0 is not computed at all (``--options distill.topo_kd=None``).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from torch import Tensor

from ..engine.train import TRAINERS, Trainer
from ..models.capacity import plan_batch
from ..models.ptv3m1.pooling import SerializedPooling
from .distiller import Distiller
from .teacher import FrozenTeacher, load_teacher

__all__ = ["DistillTrainer"]


@TRAINERS.register_module("DistillTrainer")
class DistillTrainer(Trainer):
    """Trains ``cfg.model`` (the student) against a frozen ``cfg.teacher``; checkpoints hold the student only."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.logger.info(f"=> Loading teacher '{cfg.get('teacher_weight')}' ...")
        teacher = load_teacher(cfg.teacher, cfg.get("teacher_weight"), self.device)
        self.distiller = Distiller(teacher, cfg.get("distill", {}), self.device)
        n_params = sum(p.numel() for p in teacher.parameters())
        active = [k for k, v in self.distiller.losses.items() if v is not None]
        self.logger.info(f"Teacher params: {n_params}; distillation losses: {active or 'none'}; "
                         f"stages: {self.distiller.stages}")

    def train_collate_fn(self) -> Callable[[list], Any]:
        """With ``distill.teacher_capture`` the loader's workers also plan each batch's fixed capacities (the
        stage sizes; student and teacher pool alike), so the captured teacher needs no device read."""
        collate = super().train_collate_fn()
        if self.cfg.get("distill", {}).get("teacher_capture") in (None, "None"):
            return collate
        strides = [m.stride for m in self.model.modules() if isinstance(m, SerializedPooling)]
        return partial(_planned, collate, strides)

    @property
    def teacher(self) -> FrozenTeacher:
        return self.distiller.teacher

    def compute_loss(self, input_dict: dict) -> dict[str, Tensor]:
        return self.distiller.compute_loss(self.model, input_dict)


def _planned(collate: Callable[[list], dict], strides: list[int], samples: list) -> dict:
    return plan_batch(collate(samples), strides)

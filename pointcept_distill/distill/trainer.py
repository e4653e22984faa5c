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
        logit_kd=dict(type="LogitKD", temperature=1.0, loss_weight=0.3),
        grad_kd=dict(type="GradGuidedKD", norm="minmax", loss_weight=10.0),
        topo_kd=dict(type="TopologyKD", num_points=64, loss_weight=0.1),
    )
A loss set to None or with loss_weight 0 is not computed at all (``--options distill.topo_kd=None``).
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.train import AMP_DTYPES, TRAINERS, Trainer
from ..models import LOSSES
from ..models.point import Point, batch_to_offset
from .capture import CapturedFeature, FeatureCapture
from .matching import match_by_voxel, voxel_keys
from .teacher import load_teacher

__all__ = ["DistillTrainer"]

LOSS_KEYS = ("logit_kd", "grad_kd", "topo_kd")


def _build_loss(cfg: dict | str | None) -> nn.Module | None:
    """None (or ``--options``' string 'None') or a zero loss_weight switches a loss off."""
    if cfg is None or cfg == "None" or float(cfg.get("loss_weight", 1.0)) == 0.0:
        return None
    return LOSSES.build(cfg)


@TRAINERS.register_module("DistillTrainer")
class DistillTrainer(Trainer):
    """Trains ``cfg.model`` (the student) against a frozen ``cfg.teacher``; checkpoints hold the student only."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        distill = cfg.get("distill", {})
        unknown = set(distill) - {"stages", "teacher_amp_dtype", *LOSS_KEYS}
        if unknown:
            raise KeyError(f"DistillTrainer: unknown config keys distill.{sorted(unknown)}")
        self.stages = list(distill.get("stages", ["bottleneck"]))
        self.losses = {key: _build_loss(distill.get(key)) for key in LOSS_KEYS}
        amp = distill.get("teacher_amp_dtype", "bfloat16")
        self.teacher_amp_dtype = AMP_DTYPES[amp] if amp is not None and self.device.type == "cuda" else None
        self.logger.info(f"=> Loading teacher '{cfg.teacher_weight}' ...")
        self.teacher = load_teacher(cfg.teacher, cfg.get("teacher_weight"), self.device)
        n_params = sum(p.numel() for p in self.teacher.parameters())
        active = [k for k, v in self.losses.items() if v is not None]
        self.logger.info(f"Teacher params: {n_params}; distillation losses: {active or 'none'}; "
                         f"stages: {self.stages}")

    @property
    def needs_features(self) -> bool:
        return self.losses["grad_kd"] is not None or self.losses["topo_kd"] is not None

    # ------------------------------------------------------------------------------------ the step
    def compute_loss(self, input_dict: dict) -> dict[str, Tensor]:
        student = self.model_without_ddp
        stages = self.stages if self.needs_features else []
        with FeatureCapture(student.backbone, stages) as capture_s:
            out = self.model(input_dict, return_point=True)
        seg_loss = out["loss"]
        logits_s = student.head_logits(out["point"])                         # (N, K)
        logits_t, feats_t, grads_t = self.teacher_forward(input_dict)
        losses = {"loss_seg": seg_loss}
        if self.losses["logit_kd"] is not None:
            losses.update(self.losses["logit_kd"](logits_s, logits_t, input_dict["segment"]))
        for stage in stages:
            terms = self.feature_losses(capture_s.features[stage], feats_t[stage], grads_t.get(stage),
                                        seg_loss, len(input_dict["offset"]))
            suffix = f"_{stage}" if len(stages) > 1 else ""
            losses.update({f"{k}{suffix}": v for k, v in terms.items()})
        return losses

    def teacher_autocast(self) -> contextlib.AbstractContextManager:
        if self.teacher_amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.teacher_amp_dtype)

    def teacher_forward(self, input_dict: dict) -> tuple[Tensor, dict[str, CapturedFeature], dict[str, Tensor]]:
        """Teacher logits (detached), captured features and, for the gradient loss, dL_task/dF per stage.

        The teacher's parameters are frozen, so with the captured features made leaves the autograd graph
        covers only the network after them: that is all dL_task/dF needs.
        """
        teacher = self.teacher.model
        stages = self.stages if self.needs_features else []
        need_grad = self.losses["grad_kd"] is not None
        grad_mode = torch.enable_grad() if need_grad else torch.no_grad()
        with grad_mode, self.teacher_autocast(), FeatureCapture(teacher.backbone, stages, as_leaf=True) as cap:
            point = teacher.backbone(Point(input_dict))
            logits = teacher.head_logits(point)
            grads: dict[str, Tensor] = {}
            if need_grad:
                task_loss = teacher.criteria(logits, input_dict["segment"])
                leaves = [cap.features[s].feat for s in stages]
                grads = dict(zip(stages, torch.autograd.grad(task_loss, leaves)))
        features = {s: CapturedFeature(f.feat.detach(), f.grid_coord, f.batch) for s, f in cap.features.items()}
        return logits.detach(), features, grads

    def feature_losses(self, student: CapturedFeature, teacher: CapturedFeature, teacher_grad: Tensor | None,
                       seg_loss: Tensor, batch_size: int) -> dict[str, Tensor]:
        """Gradient-guided and topology losses of one stage, on voxel-matched points."""
        idx_s, idx_t = match_by_voxel(voxel_keys(student.grid_coord, student.batch),
                                      voxel_keys(teacher.grid_coord, teacher.batch))
        offset = batch_to_offset(student.batch[idx_s], batch_size)
        feat_s, feat_t = student.feat[idx_s], teacher.feat[idx_t]
        terms: dict[str, Tensor] = {}
        if self.losses["grad_kd"] is not None:
            (grad_s,) = torch.autograd.grad(seg_loss, student.feat, retain_graph=True)
            terms.update(self.losses["grad_kd"](feat_s, grad_s[idx_s], feat_t, teacher_grad[idx_t], offset))
        if self.losses["topo_kd"] is not None:
            terms.update(self.losses["topo_kd"](feat_s, feat_t, offset))
        return terms

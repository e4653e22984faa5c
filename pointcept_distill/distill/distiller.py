"""``Distiller``: one distillation step's losses for a student against a frozen teacher (no trainer state).

Used by ``DistillTrainer`` and by ``tools/benchmark.py``, so that both time and train the same computation.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..engine.train import AMP_DTYPES
from ..models import LOSSES
from ..models.point import Point, batch_to_offset
from .capture import CapturedFeature, FeatureCapture
from .matching import match_by_voxel, voxel_keys
from .teacher import FrozenTeacher

__all__ = ["Distiller", "LOSS_KEYS", "build_distill_loss"]

LOSS_KEYS = ("logit_kd", "grad_kd", "topo_kd")


def build_distill_loss(cfg: dict | str | None) -> nn.Module | None:
    """None (or ``--options``' string 'None') or a zero loss_weight switches a loss off."""
    if cfg is None or cfg == "None" or float(cfg.get("loss_weight", 1.0)) == 0.0:
        return None
    return LOSSES.build(cfg)


class Distiller:
    """The ``distill`` config section made executable: captured stages, losses, the teacher's autocast.

    Args:
        teacher: the frozen teacher.
        cfg: the ``distill`` config dict (keys: stages, teacher_amp_dtype, logit_kd, grad_kd, topo_kd).
        device: where the models run (the teacher's autocast applies on CUDA only).
    """

    def __init__(self, teacher: FrozenTeacher, cfg: dict, device: torch.device) -> None:
        unknown = set(cfg) - {"stages", "teacher_amp_dtype", *LOSS_KEYS}
        if unknown:
            raise KeyError(f"DistillTrainer: unknown config keys distill.{sorted(unknown)}")
        self.teacher = teacher
        self.stages = list(cfg.get("stages", ["bottleneck"]))
        self.losses = {key: build_distill_loss(cfg.get(key)) for key in LOSS_KEYS}
        amp = cfg.get("teacher_amp_dtype", "bfloat16")
        self.teacher_amp_dtype = AMP_DTYPES[amp] if amp is not None and device.type == "cuda" else None
        self.device_type = device.type
        self.voxels_checked = False

    @property
    def needs_features(self) -> bool:
        return self.losses["grad_kd"] is not None or self.losses["topo_kd"] is not None

    def compute_loss(self, model: nn.Module, input_dict: dict) -> dict[str, Tensor]:
        """Named losses of one step; ``model`` is the student as trained (possibly DDP-wrapped)."""
        student = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        stages = self.stages if self.needs_features else []
        with FeatureCapture(student.backbone, stages) as capture_s:
            out = model(input_dict, return_point=True)
        seg_loss = out["loss"]
        logits_s = student.head_logits(out["point"])                         # (N, K)
        logits_t, feats_t, grads_t = self.teacher_forward(input_dict)
        losses = {"loss_seg": seg_loss}
        if self.losses["logit_kd"] is not None:
            losses.update(self.losses["logit_kd"](logits_s, logits_t, input_dict["segment"]))
        grads_s = self.task_gradients(seg_loss, capture_s.features, stages)
        for stage in stages:
            terms = self.feature_losses(capture_s.features[stage], grads_s.get(stage), feats_t[stage],
                                        grads_t.get(stage), len(input_dict["offset"]))
            suffix = f"_{stage}" if len(stages) > 1 else ""
            losses.update({f"{k}{suffix}": v for k, v in terms.items()})
        return losses

    def teacher_autocast(self) -> contextlib.AbstractContextManager:
        if self.teacher_amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.teacher_amp_dtype)

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
            grads = self.task_gradients(teacher.criteria(logits, input_dict["segment"]), cap.features, stages,
                                        retain_graph=False) if need_grad else {}
        features = {s: CapturedFeature(f.feat.detach(), f.grid_coord, f.batch) for s, f in cap.features.items()}
        return logits.detach(), features, grads

    def task_gradients(self, task_loss: Tensor, features: dict[str, CapturedFeature], stages: list[str],
                       retain_graph: bool = True) -> dict[str, Tensor]:
        """dL_task/dF of every captured stage in one backward pass (constants: no graph); {} without grad_kd."""
        if self.losses["grad_kd"] is None or not stages:
            return {}
        grads = torch.autograd.grad(task_loss, [features[s].feat for s in stages], retain_graph=retain_graph)
        return dict(zip(stages, grads))

    def feature_losses(self, student: CapturedFeature, student_grad: Tensor | None, teacher: CapturedFeature,
                       teacher_grad: Tensor | None, batch_size: int) -> dict[str, Tensor]:
        """Gradient-guided and topology losses of one stage, on voxel-matched points."""
        # the voxel sets depend only on the models' strides and the input grid: verified on the first step only,
        # since the check costs a host sync
        idx_s, idx_t = match_by_voxel(voxel_keys(student.grid_coord, student.batch),
                                      voxel_keys(teacher.grid_coord, teacher.batch), check=not self.voxels_checked)
        self.voxels_checked = True
        offset = batch_to_offset(student.batch[idx_s], batch_size)
        feat_s, feat_t = student.feat[idx_s], teacher.feat[idx_t]
        terms: dict[str, Tensor] = {}
        if self.losses["grad_kd"] is not None:
            terms.update(self.losses["grad_kd"](feat_s, student_grad[idx_s], feat_t, teacher_grad[idx_t], offset))
        if self.losses["topo_kd"] is not None:
            terms.update(self.losses["topo_kd"](feat_s, feat_t, offset))
        return terms

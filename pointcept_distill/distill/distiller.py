"""``Distiller``: one distillation step's losses for a student against a frozen teacher (no trainer state; its
only parameters are those of its losses, ``feat_kd``'s projectors, which the trainer optimises and checkpoints).

Used by ``DistillTrainer`` and by ``tools/benchmark.py``, so that both time and train the same computation.
The topology losses are started right after the teacher forward and collected last, so that their host work (the
persistence pairs) overlaps with the logit and gradient-guided losses and the student's task gradients.

With ``teacher_capture="graphs"`` the teacher's whole part of a CUDA step (forward, task loss, dL_task/dF) is
replayed from a CUDA graph on a fixed-capacity batch (``models.CapturedForward``): the padding sample's labels
are ignored by the task loss and its rows are cut off before matching, so the outputs are the eager ones.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..engine.train import AMP_DTYPES
from ..models import LOSSES, CapturedForward
from ..models.capacity import PLAN_KEYS
from ..models.point import Point, batch_to_offset
from .capture import CapturedFeature, FeatureCapture, stage_channels, stage_level
from .losses.topo_kd import PendingTopology
from .matching import match_by_voxel, voxel_keys
from .teacher import FrozenTeacher

__all__ = ["Distiller", "LOSS_KEYS", "build_distill_loss", "build_feature_mimic", "criteria_ignore_index"]

LOSS_KEYS = ("logit_kd", "grad_kd", "topo_kd", "cwd_kd", "feat_kd")
SETTING_KEYS = ("stages", "teacher_amp_dtype", "teacher_capture", "grad_norm_interval")
# The captured teacher's buckets and graph budget: augmented one-sweep nuScenes batches fall into 282 keys in
# 1000 steps with 8 buckets per doubling, 91 with 4 (8 % padding), 26 with 2 (21 %; tools/capture_keys.py)
TEACHER_STEPS_PER_OCTAVE = 4
TEACHER_MAX_GRAPHS = 128


def loss_is_off(cfg: dict | str | None) -> bool:
    """None (or ``--options``' string 'None') or a zero loss_weight switches a loss off."""
    return cfg is None or cfg == "None" or float(cfg.get("loss_weight", 1.0)) == 0.0


def build_distill_loss(cfg: dict | str | None) -> nn.Module | None:
    """The loss of ``cfg``, or None where it is switched off (``loss_is_off``)."""
    return None if loss_is_off(cfg) else LOSSES.build(cfg)


def build_feature_mimic(cfg: dict | str | None, stages: list[str], student: nn.Module | None,
                        teacher: nn.Module) -> nn.ModuleDict | None:
    """One feature-mimicking loss (with its projector) per stage, or None where ``cfg`` switches it off.

    Args:
        cfg: the ``feat_kd`` config; ``student_channels`` and ``teacher_channels`` left out are read from the
            stage modules of the two backbones (given ones must agree with them).
        stages: the captured stages.
        student: the student segmentor (None: ``cfg`` must give ``student_channels``).
        teacher: the teacher segmentor.
    """
    if loss_is_off(cfg):
        return None
    losses = {}
    for stage in stages:
        widths = {"student_channels": _stage_width(student, stage, cfg.get("student_channels")),
                  "teacher_channels": _stage_width(teacher, stage, cfg.get("teacher_channels"))}
        losses[stage] = LOSSES.build(dict(cfg, **widths))
    return nn.ModuleDict(losses)


def _stage_width(model: nn.Module | None, stage: str, given: int | None) -> int:
    """``stage``'s feature width in ``model``, checked against the configured one (which is used without a model)."""
    if model is None:
        if given is None:
            raise ValueError("distill.feat_kd: without the student model, set student_channels in its config")
        return int(given)
    width = stage_channels(model.backbone, stage)
    if given is not None and int(given) != width:
        raise ValueError(f"distill.feat_kd: configured width {given} differs from stage '{stage}''s {width}")
    return width


def criteria_ignore_index(criteria: nn.Module) -> int:
    """The label every term of ``criteria`` ignores (padding rows get it), or a ValueError naming the terms."""
    terms = list(criteria.criteria)
    ignored = {getattr(term, "ignore_index", None) for term in terms}
    if not terms or len(ignored) != 1 or None in ignored:
        raise ValueError("distill.teacher_capture needs teacher criteria that all ignore one label (ignore_index), "
                         f"got {[(type(t).__name__, getattr(t, 'ignore_index', None)) for t in terms]}")
    return ignored.pop()


class MatchedFeatures(NamedTuple):
    """One stage's features of both models on the voxels they share, in the same order."""

    index_s: Tensor         # (M,) rows of the student's captured features
    index_t: Tensor         # (M,) rows of the teacher's
    feat_s: Tensor          # (M, C_s)
    feat_t: Tensor          # (M, C_t)
    offset: Tensor          # (B,) cumulative counts of the matched points


class Distiller:
    """The ``distill`` config section made executable: captured stages, losses, the teacher's autocast.

    Args:
        teacher: the frozen teacher.
        cfg: the ``distill`` config dict (keys: ``SETTING_KEYS`` and ``LOSS_KEYS``).
        device: where the models run (the teacher's autocast applies on CUDA only).
        student: the student segmentor, for the stage widths of ``feat_kd``'s projectors (None: its config
            must give them).

    ``loss_modules`` holds the active losses, on ``device``: the parameters among them (``feat_kd``'s
    projectors) are trained with the student. ``grad_norm_interval`` (0: never) is read by the trainer: every
    that many steps it logs each loss term's gradient norm (``grad_norms.py``).
    """

    def __init__(self, teacher: FrozenTeacher, cfg: dict, device: torch.device,
                 student: nn.Module | None = None) -> None:
        unknown = set(cfg) - {*SETTING_KEYS, *LOSS_KEYS}
        if unknown:
            raise KeyError(f"DistillTrainer: unknown config keys distill.{sorted(unknown)}")
        self.teacher = teacher
        self.stages = list(cfg.get("stages", ["bottleneck"]))
        self.grad_norm_interval = int(cfg.get("grad_norm_interval", 0))
        if self.grad_norm_interval < 0:
            raise ValueError(f"distill.grad_norm_interval must be >= 0 (0: off), got {self.grad_norm_interval}")
        self.losses = {key: build_distill_loss(cfg.get(key)) for key in LOSS_KEYS if key != "feat_kd"}
        self.losses["feat_kd"] = build_feature_mimic(cfg.get("feat_kd"), self.stages, student, teacher.model)
        self.loss_modules = nn.ModuleDict({k: v for k, v in self.losses.items() if v is not None}).to(device)
        amp = cfg.get("teacher_amp_dtype", "bfloat16")
        amp = None if amp == "None" else amp                 # --options distill.teacher_amp_dtype=None
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"distill.teacher_amp_dtype must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}")
        self.teacher_amp_dtype = AMP_DTYPES[amp] if amp is not None and device.type == "cuda" else None
        self.device_type = device.type
        self.voxels_checked = False
        self.captured_teacher = self.capture_teacher(cfg.get("teacher_capture"))
        self._captured_settings: tuple | None = None

    @property
    def needs_features(self) -> bool:
        return any(self.losses[key] is not None for key in ("grad_kd", "topo_kd", "feat_kd"))

    def compute_loss(self, model: nn.Module, input_dict: dict) -> dict[str, Tensor]:
        """Named losses of one step; ``model`` is the student as trained (possibly DDP-wrapped)."""
        student = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        stages = self.stages if self.needs_features else []
        with FeatureCapture(student.backbone, stages) as capture_s:
            out = model(input_dict, return_point=True)
        seg_loss = out["loss"]
        logits_s = student.head_logits(out["point"])                         # (N, K)
        logits_t, feats_t, grads_t = self.teacher_forward(input_dict)
        matched = {s: self.match_voxels(capture_s.features[s], feats_t[s], len(input_dict["offset"]))
                   for s in stages}
        topology = self.start_topology(matched)
        losses = {"loss_seg": seg_loss}
        if self.losses["logit_kd"] is not None:
            losses.update(self.losses["logit_kd"](logits_s, logits_t, input_dict["segment"]))
        if self.losses["cwd_kd"] is not None:
            losses.update(self.losses["cwd_kd"](logits_s, logits_t, input_dict["offset"]))
        grads_s = self.task_gradients(seg_loss, capture_s.features, stages)
        gradient_guided = {s: self.gradient_guided(matched[s], grads_s.get(s), grads_t.get(s)) for s in stages}
        for stage in stages:
            terms = {**gradient_guided[stage], **self.feature_mimic(stage, matched[stage]),
                     **(topology[stage].result() if topology else {})}
            suffix = f"_{stage}" if len(stages) > 1 else ""
            losses.update({f"{k}{suffix}": v for k, v in terms.items()})
        return losses

    def teacher_autocast(self) -> contextlib.AbstractContextManager:
        if self.teacher_amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.teacher_amp_dtype)

    def capture_teacher(self, mode: str | None) -> CapturedForward | None:
        """The teacher's step part on fixed-capacity batches (``teacher_capture``: None or "graphs")."""
        if mode is None or mode == "None":
            return None
        if mode != "graphs":
            raise ValueError(f"distill.teacher_capture must be None or 'graphs', got {mode!r}")
        return CapturedForward(self.teacher.model, self.teacher_outputs, max_graphs=TEACHER_MAX_GRAPHS,
                               steps_per_octave=TEACHER_STEPS_PER_OCTAVE,
                               labels={"segment": criteria_ignore_index(self.teacher.model.criteria)})

    def teacher_forward(self, input_dict: dict) -> tuple[Tensor, dict[str, CapturedFeature], dict[str, Tensor]]:
        """Teacher logits (detached), captured features and, for the gradient loss, dL_task/dF per stage;
        replayed from a CUDA graph with ``teacher_capture`` on CUDA inputs."""
        if self.captured_teacher is not None and input_dict["feat"].is_cuda:
            return self.replay_teacher(input_dict)
        with self.teacher_autocast():
            return self.teacher_outputs(input_dict)

    def teacher_outputs(self, input_dict: dict) -> tuple[Tensor, dict[str, CapturedFeature], dict[str, Tensor]]:
        """``teacher_forward``'s outputs under the caller's autocast.

        The teacher's parameters are frozen, so with the captured features made leaves the autograd graph
        covers only the network after them: that is all dL_task/dF needs.
        """
        teacher = self.teacher.model
        stages = self.stages if self.needs_features else []
        need_grad = self.losses["grad_kd"] is not None
        grad_mode = torch.enable_grad() if need_grad else torch.no_grad()
        with grad_mode, FeatureCapture(teacher.backbone, stages, as_leaf=True) as cap:
            point = teacher.backbone(Point(input_dict))
            logits = teacher.head_logits(point)
            grads = self.task_gradients(teacher.criteria(logits, input_dict["segment"]), cap.features, stages,
                                        retain_graph=False) if need_grad else {}
        features = {s: CapturedFeature(f.feat.detach(), f.grid_coord, f.batch) for s, f in cap.features.items()}
        return logits.detach(), features, grads

    def replay_teacher(self, input_dict: dict) -> tuple[Tensor, dict[str, CapturedFeature], dict[str, Tensor]]:
        """``teacher_outputs`` of the padded batch from its graph, cut to the real points and voxels (copies).

        Real rows come first at every stage (the padding sample has the last batch index), so each stage keeps
        its planned number of voxels (``stage_sizes``, from the input's plan when it carries one).
        """
        captured = self.captured_teacher
        # what the graphs compute follows the autocast dtype and the active losses: new settings, new graphs
        dtype = self.teacher_amp_dtype or (torch.get_autocast_dtype(self.device_type)
                                           if torch.is_autocast_enabled(self.device_type) else None)
        settings = (dtype, self.needs_features, self.losses["grad_kd"] is not None)
        if settings != self._captured_settings:
            captured.captures.clear()
            captured.dtype, self._captured_settings = dtype, settings
        planned = tuple(input_dict.get("stage_strides", ())) == tuple(captured.strides)
        plan = input_dict if planned else captured.plan(input_dict)
        input_dict = dict(input_dict, **{key: plan[key] for key in PLAN_KEYS})
        logits, features, grads = captured.replay(input_dict)
        sizes = input_dict["stage_sizes"]
        rows = {s: sizes[stage_level(self.teacher.model.backbone, s)] for s in features}
        features = {s: CapturedFeature(*(t[:rows[s]].clone() for t in (f.feat, f.grid_coord, f.batch)))
                    for s, f in features.items()}
        grads = {s: g[:rows[s]].clone() for s, g in grads.items()}
        return logits[:input_dict["coord"].shape[0]].clone(), features, grads

    def task_gradients(self, task_loss: Tensor, features: dict[str, CapturedFeature], stages: list[str],
                       retain_graph: bool = True) -> dict[str, Tensor]:
        """dL_task/dF of every captured stage in one backward pass (constants: no graph); {} without grad_kd."""
        if self.losses["grad_kd"] is None or not stages:
            return {}
        grads = torch.autograd.grad(task_loss, [features[s].feat for s in stages], retain_graph=retain_graph)
        return dict(zip(stages, grads))

    def match_voxels(self, student: CapturedFeature, teacher: CapturedFeature, batch_size: int) -> MatchedFeatures:
        """A stage's student and teacher features on the voxels both have."""
        # the voxel sets depend only on the models' strides and the input grid: verified on the first step only,
        # since the check costs a host sync
        idx_s, idx_t = match_by_voxel(voxel_keys(student.grid_coord, student.batch),
                                      voxel_keys(teacher.grid_coord, teacher.batch), check=not self.voxels_checked)
        self.voxels_checked = True
        offset = batch_to_offset(student.batch[idx_s], batch_size)
        return MatchedFeatures(idx_s, idx_t, student.feat[idx_s], teacher.feat[idx_t], offset)

    def start_topology(self, matched: dict[str, MatchedFeatures]) -> dict[str, PendingTopology]:
        """The topology loss of each stage, started (its persistence pairs computed on the host meanwhile)."""
        if self.losses["topo_kd"] is None:
            return {}
        return {s: self.losses["topo_kd"].start(m.feat_s, m.feat_t, m.offset) for s, m in matched.items()}

    def gradient_guided(self, matched: MatchedFeatures, student_grad: Tensor | None,
                        teacher_grad: Tensor | None) -> dict[str, Tensor]:
        """The gradient-guided loss of one stage ({} without grad_kd)."""
        if self.losses["grad_kd"] is None:
            return {}
        return self.losses["grad_kd"](matched.feat_s, student_grad[matched.index_s], matched.feat_t,
                                      teacher_grad[matched.index_t], matched.offset)

    def feature_mimic(self, stage: str, matched: MatchedFeatures) -> dict[str, Tensor]:
        """The feature-mimicking loss of one stage, through its projector ({} without feat_kd)."""
        if self.losses["feat_kd"] is None:
            return {}
        return self.losses["feat_kd"][stage](matched.feat_s, matched.feat_t)

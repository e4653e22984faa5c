"""``Distiller``: the ``distill`` config section made executable: the shared work of a distillation step and one
``KDLossHook`` per configured loss (no trainer state; its only parameters are those of its losses, FitNets'
projectors, which the trainer optimises and checkpoints).

Each step does once what the losses share (``forward``): the student's forward with its captured stage features,
the frozen teacher's (logits, features and, where a loss reads them, dL_task/dF per stage), the two models' stage
features matched by voxel, the student's task gradients. The result, a ``DistillStep``, is handed to the loss hooks,
which add their terms in the trainer's ``after_forward`` stage. ``DistillTrainer`` steps with it, and
``tools/benchmark.py`` times the same work and hooks outside a trainer (``compute_loss``).

The losses are the ``distill`` keys ending in ``_kd``. A loss that can be started (``TopologyKD``) is started right
after the shared work and collected last, so that its host work (the persistence pairs) overlaps the other losses.

With ``teacher_capture="graphs"`` the teacher's whole part of a CUDA step (forward, task loss, dL_task/dF) is
replayed from a CUDA graph on a fixed-capacity batch (``models.CapturedForward``): the padding sample's labels
are ignored by the task loss and its rows are cut off before matching, so the outputs are the eager ones.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Collection

import torch
from torch import Tensor, nn

from ..models import LOSSES, CapturedForward
from ..models.masked_norm import valid_rows
from ..models.point import Point, batch_to_offset
from ..utils.amp import AMP_DTYPES
from .capture import CapturedFeature, FeatureCapture, stage_channels
from .hooks.kd_loss import KDLossHook
from .losses.grad_kd import task_gradients
from .matching import match_by_voxel, voxel_keys
from .schedule import KDWeightSchedule
from .step import DistillStep, MatchedStage, StepNeeds
from .teacher import FrozenTeacher

__all__ = ["Distiller", "LOSS_ORDER", "build_kd_loss", "build_loss_hooks", "criteria_ignore_index"]

# The shipped losses in the order a step computes them: the order of their terms in the step's output (so of the
# sum) and of building their graphs (so of accumulating their gradients). Other losses (any other key ending in
# "_kd") follow in config order.
LOSS_ORDER = ("logit_kd", "cwd_kd", "dist_kd", "grad_kd", "feat_kd", "topo_kd")
SETTING_KEYS = ("stages", "teacher_amp_dtype", "teacher_capture", "grad_norm_interval", "kd_weight_schedule")
# The captured teacher's buckets and graph budget: augmented one-sweep nuScenes batches fall into 282 keys in
# 1000 steps with 8 buckets per doubling, 91 with 4 (8 % padding), 26 with 2 (21 %; tools/capture_keys.py)
TEACHER_STEPS_PER_OCTAVE = 4
TEACHER_MAX_GRAPHS = 128


def is_kd_loss_key(key: str) -> bool:
    return key.endswith("_kd")


def _step_order(key: str) -> int:
    return LOSS_ORDER.index(key) if key in LOSS_ORDER else len(LOSS_ORDER)


def loss_is_off(cfg: dict | str | None) -> bool:
    """None (or ``--options``' string 'None') or a zero loss_weight switches a loss off."""
    return cfg is None or cfg == "None" or float(cfg.get("loss_weight", 1.0)) == 0.0


def build_loss_hooks(cfg: dict, stages: list[str], student: nn.Module | None,
                     teacher: nn.Module) -> list[KDLossHook]:
    """One ``KDLossHook`` per loss of the ``distill`` section ``cfg`` that is on, in step order (``LOSS_ORDER``),
    each with the section's ``kd_weight_schedule``."""
    names = sorted(filter(is_kd_loss_key, cfg), key=_step_order)       # stable: the others in config order
    schedule = build_weight_schedule(cfg.get("kd_weight_schedule"))
    return [KDLossHook(name, build_kd_loss(name, cfg[name], stages, student, teacher), schedule)
            for name in names if not loss_is_off(cfg[name])]


def build_weight_schedule(cfg: dict | str | None) -> KDWeightSchedule | None:
    """``distill.kd_weight_schedule``: None (or 'None') for none, else ``dict(warmup=..., decay_from=...)``."""
    if cfg is None or cfg == "None":
        return None
    unknown = sorted(set(cfg) - {"warmup", "decay_from"})
    if unknown:
        raise KeyError(f"distill.kd_weight_schedule: unknown keys {unknown} (keys: warmup, decay_from)")
    return KDWeightSchedule(**{key: float(value) for key, value in cfg.items()})


def build_kd_loss(name: str, cfg: dict, stages: list[str], student: nn.Module | None,
                  teacher: nn.Module) -> nn.Module:
    """The loss of ``cfg``; a loss built once per stage (``stage_widths``, e.g. FitNets' projectors) as a
    ``ModuleDict`` by stage, with the stage's widths as ``student_channels`` and ``teacher_channels``.

    Args:
        name: its ``distill`` key, for errors.
        cfg: its config; widths left out are read from the stage modules of the two backbones (given ones must
            agree with them).
        stages: the captured stages.
        student: the student segmentor (None: a per-stage loss's ``cfg`` must give ``student_channels``).
        teacher: the teacher segmentor.
    """
    if not getattr(LOSSES.get(cfg["type"]), "stage_widths", False):
        return LOSSES.build(cfg)
    losses = {}
    for stage in stages:
        widths = {"student_channels": _stage_width(name, student, stage, cfg.get("student_channels")),
                  "teacher_channels": _stage_width(name, teacher, stage, cfg.get("teacher_channels"))}
        losses[stage] = LOSSES.build(dict(cfg, **widths))
    return nn.ModuleDict(losses)


def _stage_width(name: str, model: nn.Module | None, stage: str, given: int | None) -> int:
    """``stage``'s feature width in ``model``, checked against the configured one (which is used without a model)."""
    if model is None:
        if given is None:
            raise ValueError(f"distill.{name}: without the student model, set student_channels in its config")
        return int(given)
    width = stage_channels(model.backbone, stage)
    if given is not None and int(given) != width:
        raise ValueError(f"distill.{name}: configured width {given} differs from stage '{stage}''s {width}")
    return width


def criteria_ignore_index(criteria: nn.Module) -> int:
    """The label every term of ``criteria`` ignores (padding rows get it), or a ValueError naming the terms."""
    terms = list(criteria.criteria)
    ignored = {getattr(term, "ignore_index", None) for term in terms}
    if not terms or len(ignored) != 1 or None in ignored:
        raise ValueError("distill.teacher_capture needs teacher criteria that all ignore one label (ignore_index), "
                         f"got {[(type(t).__name__, getattr(t, 'ignore_index', None)) for t in terms]}")
    return ignored.pop()


TeacherOutputs = tuple[Tensor, dict[str, CapturedFeature], dict[str, Tensor]]


class Distiller:
    """The captured stages, the teacher's autocast and capture, and the KD loss hooks of a ``distill`` section.

    Args:
        teacher: the frozen teacher.
        cfg: the ``distill`` config dict (keys: ``SETTING_KEYS`` and the losses, ending in ``_kd``).
        device: where the models run (the teacher's autocast applies on CUDA only).
        student: the student segmentor, for the stage widths of per-stage losses (FitNets' projectors; None: their
            configs must give them).

    ``loss_hooks`` holds a hook per active loss, in step order; ``loss_modules`` their losses by name, on
    ``device``: the parameters among them are trained with the student. Every ``grad_norm_interval`` steps (0:
    never) the trainer logs each loss term's gradient norm (``hooks.LossGradientNorms``).
    """

    def __init__(self, teacher: FrozenTeacher, cfg: dict, device: torch.device,
                 student: nn.Module | None = None) -> None:
        unknown = [key for key in cfg if key not in SETTING_KEYS and not is_kd_loss_key(key)]
        if unknown:
            raise KeyError(f"DistillTrainer: unknown config keys distill.{sorted(unknown)} (settings: "
                           f"{list(SETTING_KEYS)}; losses: keys ending in '_kd')")
        self.teacher = teacher
        self.stages = list(cfg.get("stages", ["bottleneck"]))
        if not self.stages:
            raise ValueError("distill.stages must name at least one stage (the feature losses' captured stages)")
        self.grad_norm_interval = int(cfg.get("grad_norm_interval", 0))
        if self.grad_norm_interval < 0:
            raise ValueError(f"distill.grad_norm_interval must be >= 0 (0: off), got {self.grad_norm_interval}")
        self.loss_hooks = build_loss_hooks(cfg, self.stages, student, teacher.model)
        self.loss_modules = nn.ModuleDict({hook.name: hook.loss for hook in self.loss_hooks}).to(device)
        amp = cfg.get("teacher_amp_dtype", "bfloat16")
        amp = None if amp == "None" else amp                 # --options distill.teacher_amp_dtype=None
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"distill.teacher_amp_dtype must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}")
        self.teacher_amp_dtype = AMP_DTYPES[amp] if amp is not None and device.type == "cuda" else None
        self.device_type = device.type
        self.voxels_checked = False
        capture = cfg.get("teacher_capture")
        if capture not in (None, "None", "graphs"):
            raise ValueError(f"distill.teacher_capture must be None or 'graphs', got {capture!r}")
        self.captured_teacher: CapturedForward | None = None
        self._captured_settings: tuple[torch.dtype | None, StepNeeds] | None = None
        if capture == "graphs":
            self.capture_teacher(self.teacher_amp_dtype, self.needs())

    def needs(self, hooks: list[KDLossHook] | None = None) -> StepNeeds:
        """What the losses of ``hooks`` (default: all) read beyond the logits."""
        hooks = self.loss_hooks if hooks is None else hooks
        stages = tuple(self.stages) if any(hook.reads_stages for hook in hooks) else ()
        return StepNeeds(stages, any(hook.reads_gradients for hook in hooks))

    def select(self, names: Collection[str] | None) -> list[KDLossHook]:
        """The hooks of the active losses ``names`` (None: all), in step order."""
        if names is None:
            return self.loss_hooks
        active = [hook.name for hook in self.loss_hooks]
        if set(names) - set(active):
            raise KeyError(f"Distiller: losses {sorted(set(names) - set(active))} are not active (active: {active})")
        return [hook for hook in self.loss_hooks if hook.name in names]

    def compute_loss(self, model: nn.Module, input_dict: dict,
                     losses: Collection[str] | None = None) -> dict[str, Tensor]:
        """A whole step's loss terms outside a trainer: ``forward``, then the terms of the loss hooks, in the order
        the trainer adds them.

        Args:
            model: the student as trained (possibly DDP-wrapped).
            input_dict: the batch.
            losses: the names of the active losses to compute (None: all): ``tools/benchmark.py`` times the step
                with each one left out.
        """
        hooks = self.select(losses)
        output, step = self.forward(model, input_dict, hooks)
        for hook in hooks:
            output.update(hook.terms(step))
        return output

    def forward(self, model: nn.Module, input_dict: dict,
                hooks: list[KDLossHook] | None = None) -> tuple[dict[str, Tensor], DistillStep]:
        """The student's task loss (``{"loss_seg": ...}``) and the step's shared work for the losses of ``hooks``
        (default: all), with those that can be started started."""
        hooks = self.loss_hooks if hooks is None else hooks
        needs = self.needs(hooks)
        student = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        inner: dict = {}
        # the student's own output, before DDP passes it on: under ddp.static_graph DDP's first backward through
        # its output starts the gradient all-reduce, so the task gradients (a backward of their own) must not
        # go through it, or step 1's parameter gradients would be left unreduced (docs/multi_gpu.md#ddp-options)
        handle = student.register_forward_hook(lambda module, args, output: inner.update(out=output))
        try:
            with FeatureCapture(student.backbone, list(needs.stages)) as capture_s:
                out = model(input_dict, return_point=True)
        finally:
            handle.remove()
        logits_s = student.head_logits(out["point"])                         # (N, K)
        logits_t, feats_t, grads_t = self.teacher_forward(input_dict, needs)
        grads_s = self.task_gradients(inner.get("out", out)["loss"], capture_s.features, needs)
        valid = valid_rows(out["point"])
        matched = {s: self.match_voxels(capture_s.features[s], feats_t[s], grads_s.get(s), grads_t.get(s),
                                        len(input_dict["offset"]), padded=valid is not None) for s in needs.stages}
        started = {hook.name: hook.start(matched) for hook in hooks}
        step = DistillStep(logits_s, logits_t, input_dict["segment"], input_dict["offset"], matched,
                           {name: pending for name, pending in started.items() if pending is not None}, valid)
        return {"loss_seg": out["loss"]}, step

    def teacher_autocast(self) -> contextlib.AbstractContextManager:
        if self.teacher_amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.teacher_amp_dtype)

    def capture_teacher(self, dtype: torch.dtype | None, needs: StepNeeds) -> CapturedForward:
        """``captured_teacher``: the teacher's step part for ``needs`` on fixed-capacity batches, under autocast
        ``dtype`` (kept while the settings stay: what its graphs compute depends on them)."""
        if self._captured_settings != (dtype, needs):
            self.captured_teacher = CapturedForward(
                self.teacher.model, partial(self.teacher_outputs, needs=needs), dtype=dtype,
                max_graphs=TEACHER_MAX_GRAPHS, steps_per_octave=TEACHER_STEPS_PER_OCTAVE,
                labels={"segment": criteria_ignore_index(self.teacher.model.criteria)})
            self._captured_settings = (dtype, needs)
        return self.captured_teacher

    def teacher_forward(self, input_dict: dict, needs: StepNeeds) -> TeacherOutputs:
        """Teacher logits (detached), captured features and, where ``needs`` says, dL_task/dF per stage;
        replayed from a CUDA graph with ``teacher_capture`` on CUDA inputs."""
        if self.captured_teacher is not None and input_dict["feat"].is_cuda:
            return self.replay_teacher(input_dict, needs)
        with self.teacher_autocast():
            return self.teacher_outputs(input_dict, needs)

    def teacher_outputs(self, input_dict: dict, needs: StepNeeds) -> TeacherOutputs:
        """``teacher_forward``'s outputs under the caller's autocast.

        The teacher's parameters are frozen, so with the captured features made leaves the autograd graph
        covers only the network after them: that is all dL_task/dF needs.
        """
        teacher = self.teacher.model
        grad_mode = torch.enable_grad() if needs.gradients else torch.no_grad()
        with grad_mode, FeatureCapture(teacher.backbone, list(needs.stages), as_leaf=True) as cap:
            point = teacher.backbone(Point(input_dict))
            logits = teacher.head_logits(point)
            grads = self.task_gradients(teacher.criteria(logits, input_dict["segment"]), cap.features, needs,
                                        retain_graph=False)
        features = {s: CapturedFeature(f.feat.detach(), f.grid_coord, f.batch) for s, f in cap.features.items()}
        return logits.detach(), features, grads

    def replay_teacher(self, input_dict: dict, needs: StepNeeds) -> TeacherOutputs:
        """``teacher_outputs`` of the padded batch from its graph, cut to the real points and voxels (copies).

        Real rows come first at every stage (the padding sample has the last batch index), so each stage keeps
        its planned number of voxels. The batch's ``plan`` is the student's (``DistillTrainer`` plans with the
        student's strides); a teacher that pools with other strides is given a plan of its own.
        """
        dtype = self.teacher_amp_dtype or (torch.get_autocast_dtype(self.device_type)
                                           if torch.is_autocast_enabled(self.device_type) else None)
        captured = self.capture_teacher(dtype, needs)
        plan = input_dict.get("plan")
        if plan is None or plan.strides != captured.strides:
            plan = captured.plan(input_dict)
        input_dict = dict(input_dict, plan=plan)
        logits, features, grads = captured.replay(input_dict)
        backbone = self.teacher.model.backbone
        rows = {s: plan.sizes[backbone.stage(s).level] for s in features}
        features = {s: CapturedFeature(*(t[:rows[s]].clone() for t in (f.feat, f.grid_coord, f.batch)))
                    for s, f in features.items()}
        grads = {s: g[:rows[s]].clone() for s, g in grads.items()}
        return logits[:input_dict["coord"].shape[0]].clone(), features, grads

    @staticmethod
    def task_gradients(task_loss: Tensor, features: dict[str, CapturedFeature], needs: StepNeeds,
                       retain_graph: bool = True) -> dict[str, Tensor]:
        """dL_task/dF of every captured stage in one backward pass (constants: no graph); {} unless ``needs``
        has gradients."""
        if not needs.gradients or not needs.stages:
            return {}
        return dict(zip(needs.stages, task_gradients(task_loss, [features[s].feat for s in needs.stages],
                                                     retain_graph)))

    def match_voxels(self, student: CapturedFeature, teacher: CapturedFeature, student_grad: Tensor | None,
                     teacher_grad: Tensor | None, batch_size: int, padded: bool = False) -> MatchedStage:
        """A stage's student and teacher features (and task gradients, where computed) on the voxels both have;
        ``padded``: the batch's last sample is a padded plan's padding sample (``valid`` False on its rows)."""
        # the voxel sets depend only on the models' strides and the input grid: verified on the first step only,
        # since the check costs a host sync
        idx_s, idx_t = match_by_voxel(voxel_keys(student.grid_coord, student.batch),
                                      voxel_keys(teacher.grid_coord, teacher.batch), check=not self.voxels_checked)
        self.voxels_checked = True
        batch = student.batch[idx_s]
        return MatchedStage(idx_s, idx_t, student.feat[idx_s], teacher.feat[idx_t],
                            None if student_grad is None else student_grad[idx_s],
                            None if teacher_grad is None else teacher_grad[idx_t], batch_to_offset(batch, batch_size),
                            batch < batch_size - 1 if padded else None)

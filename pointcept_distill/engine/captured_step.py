"""``CapturedTrainStep``: a segmentor's training step (forward, losses, backward, optimizer step) replayed from
CUDA graphs on fixed-capacity batches; config key ``captured_step``.

Two kinds of graph:

- **one per padded plan** (``CapturedForward``'s key: the batch's plan at its capacity buckets): the gradients
  zeroed, the padded training forward (``models/padded_training``: batch norms over the real rows, padding
  labelled ignored, the order permutations drawn on the host before each replay as the eager forward draws them),
  the losses, their sum and its backward into gradient tensors made before the first capture, so that every graph
  writes the same ones;
- **one optimizer graph**: gradient clipping (``clip_grad_norm_``, multi-tensor) and the Adam/AdamW step
  (``graph_adam.GraphAdam``: torch's math on the optimizer's own state, its learning rates and betas read from
  device tensors filled from the param groups before each replay, so a scheduler's changes take effect without a
  new capture).

Between the two the host reads whether the loss is finite, as the eager step does, and the trainer skips the
optimizer graph when it is not; with fp16 the ``GradScaler`` scales the loss inside the graph and unscales,
checks and updates its scale eagerly between the graphs (a few multi-tensor kernels), its ``step`` replaying the
optimizer graph. Warm-up runs before a capture leave no trace: the batch norms' running statistics, the CUDA
generator, the parameters, the optimizer state and the (clipped) gradients are restored after them.

What the step graphs compute is the trainer's ``forward_losses`` on the padded batch: the model's losses and the terms
its ``capturable`` hooks add (``DistillTrainer``: the teacher's forward and the KD terms without host work). Off CUDA
the same steps run eagerly on the padded batch (what the CPU tests check against the eager trainer). Not supported
(each refused with the reason when the trainer builds it): DDP, SyncBatchNorm, gradient accumulation, hooks whose
terms cannot be captured, optimizers other than Adam and AdamW.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..models.captured import CapturedForward
from ..models.padded_training import draw_order_permutations, ignore_index
from .graph_adam import GraphAdam
from .loss_terms import sum_losses

__all__ = ["CAPTURED_STEP_DEFAULTS", "CapturedTrainStep", "captured_step_options", "stepping_by"]

# the config key ``captured_step = dict(...)``: its entries and their defaults (configs/_base_/default_runtime.py)
CAPTURED_STEP_DEFAULTS = dict(enabled="auto", compile=None, steps_per_octave=4, warmup=2, max_graphs=None)


def captured_step_options(cfg: Any) -> dict | None:
    """The ``captured_step`` config entry with its defaults, or None when it is off (absent, None, False, or
    ``enabled=False``); ``True`` means the defaults, enabled. ``enabled`` is True or "auto" (captured where it can
    run: on CUDA, with nothing the trainer refuses; eager steps otherwise). Unknown entries are an error naming
    them."""
    value = cfg.get("captured_step")
    if value in (None, False):
        return None
    value = {"enabled": True} if value is True else dict(value)
    unknown = sorted(set(value) - set(CAPTURED_STEP_DEFAULTS))
    if unknown:
        raise KeyError(f"captured_step: unknown key(s) {unknown} (known: {sorted(CAPTURED_STEP_DEFAULTS)})")
    if value.get("compile") not in (None, "None", "inductor"):
        raise ValueError(f"captured_step.compile must be None or 'inductor', got {value['compile']!r}")
    if value.get("enabled", False) not in (True, False, "auto", "True", "False"):
        raise ValueError(f"captured_step.enabled must be True, False or 'auto', got {value['enabled']!r}")
    options = {**CAPTURED_STEP_DEFAULTS, **value}
    if options["enabled"] in (False, "False"):
        return None
    options["enabled"] = "auto" if options["enabled"] == "auto" else True
    options["compile"] = None if options["compile"] in (None, "None") else options["compile"]
    return options


class CapturedTrainStep:
    """A segmentor's training step from CUDA graphs (see the module docstring).

    Args:
        model: the segmentor in training mode (not DDP-wrapped), on its device.
        optimizer: an Adam or AdamW over (some of) its parameters (stepped by ``GraphAdam`` on its state).
        dtype: autocast dtype (torch.bfloat16 / torch.float16), or None for float32.
        scaler: the fp16 ``GradScaler`` (its scale multiplies the loss inside the graph), or None.
        clip_grad: the max gradient norm clipped inside the optimizer graph, or None.
        compile: "inductor" to compile the backbone's forward (one compilation per plan; the head, the losses and
            the backward of the rest run as they are, inside the same graphs), or None.
        steps_per_octave, warmup, max_graphs: ``CapturedForward``'s.
        losses: padded batch -> the step's output dict, its loss terms summed for the backward (the trainer's
            ``forward_losses``: the model's losses and those its hooks add); None: ``model`` alone.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, dtype: torch.dtype | None = None,
                 scaler: torch.amp.GradScaler | None = None, clip_grad: float | None = None,
                 compile: str | None = None, steps_per_octave: int = 4, warmup: int = 2,
                 max_graphs: int | None = None, losses: Callable[[dict], dict] | None = None) -> None:
        self.model, self.optimizer, self.scaler, self.clip_grad = model, optimizer, scaler, clip_grad
        self.params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        self.adam = GraphAdam(optimizer, self.params)
        self.losses: Callable[[dict], dict] = model if losses is None else losses
        self.backbone_forward = None if compile is None else \
            torch.compile(model.backbone.forward, backend=compile, fullgraph=True, dynamic=False)
        self.graphs = _StepGraphs(model, self._forward_backward, dtype=dtype, steps_per_octave=steps_per_octave,
                                  warmup=warmup, implicit_gemm=True, max_graphs=max_graphs,
                                  labels={"segment": ignore_index(model.criteria)})
        self.grads: list[Tensor] | None = None                    # the gradient tensors every graph writes
        self.optimizer_graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0

    # ------------------------------------------------------------------------------- forward and backward
    def __call__(self, input_dict: dict) -> dict[str, Tensor]:
        """Zero the gradients, run forward, losses and backward on ``input_dict`` (on the model's device, with its
        host-side ``plan``; planned here otherwise); returns the scalar outputs (new tensors). On CUDA replayed
        from the graph of the batch's padded plan (captured at its first batch)."""
        self._install_grads()
        permutations = draw_order_permutations(self.model.backbone)
        if permutations is not None:
            input_dict = dict(input_dict, order_permutations=permutations.to(input_dict["feat"].device))
        outputs = self.graphs.replay(input_dict)
        self.steps += 1
        return {k: v.detach().clone() for k, v in outputs.items()}

    def _forward_backward(self, padded: dict) -> dict[str, Tensor]:
        torch._foreach_zero_(self.grads)
        # the compiled forward inside the step only: evaluation and anything else run the eager module
        with _method_replaced(self.model.backbone, "forward", self.backbone_forward):
            output = self.losses(padded)
        loss = sum_losses(output, "CapturedTrainStep's model")
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return {k: v for k, v in output.items() if isinstance(v, Tensor) and v.numel() == 1}

    def _install_grads(self) -> None:
        """Every trained parameter's ``grad`` is its tensor of the graphs (made at the first step; put back if
        something set it to None or replaced it, e.g. ``zero_grad(set_to_none=True)``)."""
        if self.grads is None:
            self.grads = [torch.zeros_like(p) for p in self.params]
            if self.scaler is not None:
                self.scaler.scale(torch.ones((), device=self.params[0].device))   # makes its scale tensor
        for p, grad in zip(self.params, self.grads):
            if p.grad is not grad:
                p.grad = grad

    @property
    def num_graphs(self) -> int:
        """Captured step graphs held now (``max_graphs`` drops the least recently used)."""
        return len(self.graphs.captures)

    @property
    def captures(self) -> int:
        """Step graphs captured so far (a step that found its graph replayed it: ``steps - captures`` hits)."""
        return self.graphs.num_captured

    # ---------------------------------------------------------------------------------- optimizer step
    def step(self) -> None:
        """Clip and step the optimizer on the gradients of the last ``__call__``, with the param groups' current
        learning rates and betas (on CUDA the optimizer graph, captured at the first step)."""
        if not self.adam.hyper:
            self.adam.prepare()
        self.adam.load_hyperparameters()
        if not self.params[0].is_cuda:
            self._optimizer_step()
            return
        if self.optimizer_graph is None:
            self.optimizer_graph = self._capture_optimizer()
        self.optimizer_graph.replay()

    def _optimizer_step(self) -> None:
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip_grad, foreach=True)
        self.adam.step()

    def _capture_optimizer(self) -> torch.cuda.CUDAGraph:
        """Clip + step captured after one warm-up step, which is undone (parameters, optimizer state and the
        gradients, which clipping scales in place: clipped twice, the first replay would differ from later ones)."""
        with _restored(self.params + self.grads + self._state_tensors(), self.params[0].device):
            self._optimizer_step()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._optimizer_step()
        return graph

    def _state_tensors(self) -> list[Tensor]:
        return [v for p in self.params for v in self.optimizer.state.get(p, {}).values() if isinstance(v, Tensor)]


class _StepGraphs(CapturedForward):
    """The step's graphs: ``CapturedForward`` whose warm-up runs leave no trace (the batch norms' statistics and
    the CUDA generator are put back after them), counting its captures."""

    num_captured = 0

    def _capture(self, inputs: dict) -> Any:
        self.num_captured += 1
        with _restored(list(self.model.buffers()), inputs["feat"].device):
            return super()._capture(inputs)


def stepping_by(optimizer: torch.optim.Optimizer, step: Callable[[], Any]) -> contextlib.AbstractContextManager:
    """``optimizer.step`` is ``step`` inside the block: ``GradScaler.step(optimizer)``, which calls it unless it
    found inf/NaN gradients, then replays a captured optimizer step."""
    return _method_replaced(optimizer, "step", None if step == optimizer.step else step)


@contextlib.contextmanager
def _method_replaced(obj: Any, name: str, method: Callable | None) -> Iterator[None]:
    """``obj.<name>`` is ``method`` inside the block (an instance attribute over the class's method), the class's
    again after it; None: nothing replaced."""
    if method is None:
        yield
        return
    setattr(obj, name, method)
    try:
        yield
    finally:
        delattr(obj, name)


@contextlib.contextmanager
def _restored(tensors: list[Tensor], device: torch.device) -> Iterator[None]:
    """Put ``tensors`` (and the CUDA generator of ``device``) back as they were after the block."""
    saved = [t.detach().clone() for t in tensors]
    rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        with torch.no_grad():
            for t, value in zip(tensors, saved):
                t.copy_(value)
        if rng is not None:
            torch.cuda.set_rng_state(rng, device)

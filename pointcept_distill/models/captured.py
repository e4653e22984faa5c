"""Forwards on fixed-capacity batches replayed from CUDA graphs: ``CapturedForward`` (any function of a padded
batch) and ``CapturedSegmentor`` (a segmentor's inference)."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..utils.tensors import to_device
from .backend import Backend
from .capacity import CARRIED_KEYS, PADDED_KEYS, pad_to_capacity
from .plan import BatchPlan, plan_batch
from .point import serialization_depth

__all__ = ["CAPTURE_MODES", "CapturedForward", "CapturedSegmentor", "build_captured", "captured_backend"]

# ``capture`` settings of the tester and the inference API: eager, CUDA graphs, inductor + CUDA graphs
CAPTURE_MODES = (None, "graphs", "compiled")


def captured_backend(backend: Backend, implicit_gemm: bool = False) -> Backend:
    """``backend`` with the convolution path of a captured forward: the gather-GEMM (spconv reads sizes back from
    the device), or with ``implicit_gemm`` the Triton implicit GEMM (forward, input and weight gradients)."""
    return dataclasses.replace(backend, conv="implicit" if implicit_gemm else "gather")


@dataclass
class _Capture:
    """One captured forward: its static input buffers, the CUDA graph and the output buffers it writes."""

    inputs: dict[str, Any]
    graph: torch.cuda.CUDAGraph
    outputs: Any


# inductor reuses a buffer in place while a pooled stage's first block still reads it (wrong logits on the CPU
# with torch 2.13; tests/models/test_captured.py::test_compiled_forward_matches_eager): no in-place buffer reuse
INDUCTOR_OPTIONS = {"inplace_buffers": False}


class CapturedForward:
    """A function of a padded batch with static shapes, replayed from CUDA graphs: one launch, not ~2,000.

    Each batch is padded with an isolated padding sample to per-stage capacities (``BatchPlan.bucketed`` of its
    plan, made on the host; or the fixed ``capacity`` for every stage); the real points' outputs are those of
    the unpadded batch. ``run`` of each padded batch's plan (its key: stage capacities, samples, serialization
    depth) is captured once in a CUDA graph (after ``warmup`` runs on the capture stream) and replayed for
    every later batch with that plan; the graphs share one memory pool, which is safe because they never run
    concurrently and their outputs are consumed before the next replay. With ``compile`` the function is first
    compiled whole (``torch.compile(fullgraph=True, dynamic=False)``, one compilation per key), which also
    fuses its small kernels. Building it fixes the model's kernels (``backbone.set_backend``, ``captured_backend``):
    every convolution takes the gather path, or the Triton implicit GEMM (``implicit_gemm``); attention keeps the
    model's kernel.

    When it applies: on CUDA for the graphs (elsewhere the padded batch runs eagerly, which still reads nothing
    back from the device when the input carries its ``plan`` or lives on the CPU). The first batch of
    each key pays the capture (and compilation); a stream of scans of one sensor meets a few keys. Captured
    graphs keep their buffers: memory grows with the number of keys.

    Args:
        model: the segmentor ``run`` calls (its ``backbone.strides`` plan the stage capacities).
        run: padded batch -> a tensor or a pytree of tensors (outputs of a graph are reused by its next replay).
        dtype: autocast dtype (torch.bfloat16 / torch.float16), or None for the model's dtype.
        compile: a torch.compile backend ("inductor") to compile ``run`` with, or None.
        capacity: one capacity for every batch (it must exceed their point counts), or None for buckets.
        steps_per_octave: bucket granularity of ``capacity_for`` (at most 1/steps of padding).
        warmup: eager (or compiling) runs before each capture.
        implicit_gemm: run the convolutions on the Triton implicit-GEMM kernels
            (conv path "implicit") where Triton can run (CUDA): 1.3-1.8x faster captured forwards on an
            H100 than the gather-GEMM (docs/research.md); False keeps the gather-GEMM.
        labels: per-point label keys padded too, with their fill value (e.g. ``{"segment": -1}``: ignored).
        max_graphs: keep at most this many captured graphs, dropping the least recently used (None: all). Each
            keeps its outputs and the graph itself; training batches bring new keys often (tools/capture_keys.py).
    """

    def __init__(self, model: nn.Module, run: Callable[[dict], Any], dtype: torch.dtype | None = None,
                 compile: str | None = None, capacity: int | None = None, steps_per_octave: int = 8,
                 warmup: int = 2, implicit_gemm: bool = True, labels: dict[str, int] | None = None,
                 max_graphs: int | None = None) -> None:
        self.model = model
        self.dtype, self.implicit_gemm, self.labels = dtype, implicit_gemm, dict(labels or {})
        self.capacity, self.steps_per_octave, self.warmup = capacity, steps_per_octave, warmup
        self.strides: tuple[int, ...] = tuple(model.backbone.strides)
        self.backend = captured_backend(model.backbone.backend, implicit_gemm)
        model.backbone.set_backend(self.backend)
        self.forward: Callable[[dict], Any] = run
        if compile is not None:
            self.forward = torch.compile(run, backend=compile, fullgraph=True, dynamic=False,
                                         options=INDUCTOR_OPTIONS if compile == "inductor" else None)
        self.captures: dict[BatchPlan, _Capture] = {}      # by padded plan, in order of last use
        self.max_graphs = max_graphs
        self._pool: Any = None
        self._stream: Any = None

    def _context(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast in ``dtype`` (its weight cache off: a captured graph must not keep casts made outside it;
        None: off, whatever the caller's)."""
        if self.dtype is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.dtype, cache_enabled=False)

    def key(self, input_dict: dict) -> BatchPlan:
        """The plan of the batch padded for its graph: its key (stage capacities, samples, serialization depth).

        Made on the host from the input's ``plan`` when it carries one (``plan`` in a data pipeline), else from
        its coordinates (CUDA inputs are read back for that: one sync before the forward).
        """
        if self.capacity is None:
            return self.input_plan(input_dict).bucketed(self.steps_per_octave)
        plan = input_dict.get("plan")
        depth = plan.depth if plan is not None else serialization_depth(input_dict["grid_coord"])
        samples = int(input_dict["offset"].shape[0])
        return BatchPlan(self.strides, depth, samples + 1, (self.capacity,) * (len(self.strides) + 1),
                         padding_sample=True)

    def input_plan(self, input_dict: dict) -> BatchPlan:
        """The input's ``plan``, or the plan of its coordinates; a plan for other strides is an error."""
        plan = input_dict.get("plan")
        if plan is None:
            return self.plan(input_dict)
        if plan.strides != self.strides:
            raise ValueError(f"{type(self).__name__}: the input's plan was made for strides {plan.strides}, the "
                             f"model pools with {self.strides}")
        return plan

    def plan(self, batch: dict) -> BatchPlan:
        """``plan.plan_batch`` of ``batch`` with this model's strides: its host-side plan."""
        return plan_batch(batch, self.strides)

    def replay(self, input_dict: dict) -> Any:
        """``run``'s outputs for the padded batch: on CUDA the captured graph's buffers (valid until the next
        replay of this object), elsewhere a fresh eager run."""
        key = self.key(input_dict)
        n = input_dict["coord"].shape[0]
        if n >= key.sizes[0]:
            raise ValueError(f"{type(self).__name__}: {n} points do not fit the capacity {key.sizes[0]}")
        if not input_dict["feat"].is_cuda:
            with self._context(input_dict["feat"].device):
                return self.forward(pad_to_capacity(input_dict, key, self.labels))
        capture = self._graph_for(key, input_dict)
        capture.graph.replay()
        return capture.outputs

    def _graph_for(self, key: BatchPlan, input_dict: dict) -> _Capture:
        """The key's capture with the batch copied in, or a new one (the least recently used dropped beyond
        ``max_graphs``)."""
        capture = self.captures.pop(key, None)
        if capture is None:
            capture = self._capture(pad_to_capacity(input_dict, key, self.labels))
            if self.max_graphs is not None and len(self.captures) >= self.max_graphs:
                self.captures.pop(next(iter(self.captures)))
        else:
            _fill(capture.inputs, input_dict, self.labels)
        self.captures[key] = capture                     # most recently used last
        return capture

    def _capture(self, inputs: dict) -> _Capture:
        # warm-up and capture on one side stream: cuBLAS's workspace for it is then allocated outside the graph
        # (a workspace allocated during a capture lives in that graph's pool, and later graphs would reuse it)
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), self._context(inputs["feat"].device):
            for _ in range(self.warmup):
                self.forward(inputs)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()     # graphs replay one at a time: one memory pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, stream=stream), self._context(inputs["feat"].device):
            outputs = self.forward(inputs)
        return _Capture(inputs, graph, outputs)


class CapturedSegmentor(CapturedForward):
    """A segmentor's inference (eval mode, no gradients) as a ``CapturedForward``: the logits of a batch.

    Args:
        model: a segmentor whose forward returns ``seg_logits`` for inputs without ``segment``.
        **options: ``CapturedForward``'s (dtype, compile, capacity, steps_per_octave, warmup, implicit_gemm).
    """

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model.eval(), self._logits, **options)

    def _logits(self, padded: dict) -> Tensor:
        return self.model(padded)["seg_logits"]

    @torch.no_grad()
    def __call__(self, input_dict: dict, device: torch.device | str | None = None) -> Tensor:
        """(N, num_classes) logits of the batch's N points (a new tensor).

        ``input_dict`` holds the model's inputs on the model's device, or, with ``device``, a CPU batch as a
        data loader yields it: it is then planned on the host (``plan``, unless it is on CUDA already) and moved to
        ``device``.
        """
        if device is not None:
            if not input_dict["grid_coord"].is_cuda:
                input_dict = dict(input_dict, plan=self.plan(input_dict))
            input_dict = to_device(input_dict, torch.device(device))
        return self.replay(input_dict)[:input_dict["coord"].shape[0]].clone()


def build_captured(model: nn.Module, capture: str | None, dtype: str | torch.dtype | None = None,
                   labels: dict[str, int] | None = None) -> CapturedSegmentor | None:
    """The ``CapturedSegmentor`` of a ``capture`` mode (``CAPTURE_MODES``; None: eager, no wrapper), with
    autocast ``dtype`` given as a torch dtype or its name ("bfloat16", "float16") and per-point integer
    input keys padded with their fill value (``labels``, e.g. ``{"dataset_index": 1}`` for a multi-head model)."""
    if capture not in CAPTURE_MODES:
        raise ValueError(f"capture must be one of {CAPTURE_MODES}, got {capture!r}")
    if capture is None:
        return None
    if isinstance(dtype, str):
        if dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"capture dtype must be bfloat16, float16 or float32, got {dtype!r}")
        dtype = None if dtype == "float32" else getattr(torch, dtype)
    return CapturedSegmentor(model, dtype=dtype, compile="inductor" if capture == "compiled" else None,
                             labels=labels)


def _fill(inputs: dict, input_dict: dict, labels: dict[str, int]) -> None:
    """Copy a batch into the captured buffers: its rows first, padding after (zeros, or a label's fill value),
    its offsets before the last, its carried inputs (``CARRIED_KEYS``) whole."""
    n = input_dict["coord"].shape[0]
    for key, fill in [(k, 0) for k in PADDED_KEYS] + list(labels.items()):
        inputs[key][:n].copy_(input_dict[key])
        inputs[key][n:].fill_(fill)
    inputs["offset"][:-1].copy_(input_dict["offset"])
    for key in CARRIED_KEYS:
        if key in inputs:
            inputs[key].copy_(input_dict[key])

"""Timing helpers for benchmarks: median latency (CUDA events or ``perf_counter``), peak memory, named ranges.

``annotate`` wraps module forwards and functions from the outside in ``torch.autograd.profiler.record_function``
ranges (nothing in the wrapped code changes, and everything is restored on exit); ``range_times`` then
attributes every profiled op's self CPU and self device time to its innermost enclosing range.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import statistics
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.autograd import DeviceType

__all__ = ["KERNEL_LAUNCHES", "Latency", "RANGE_PREFIX", "annotate", "count_syncs", "kernel_launches", "measure",
           "peak_memory_mib", "range_times", "top_ops"]

RANGE_PREFIX = "bench::"
KERNEL_LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


@dataclass
class Latency:
    """Per-run wall times in milliseconds, with their median, min and max."""

    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
                "runs": len(self.times_ms)}


def measure(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Latency:
    """Run ``fn`` ``warmup`` times, then time ``repeats`` runs one by one.

    On CUDA each run is bracketed by CUDA events and followed by a synchronisation (so a run's time covers
    its host work and its kernels); elsewhere by ``time.perf_counter``.
    """
    if repeats < 1:
        raise ValueError(f"measure: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return Latency(times)


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> float | None:
    """``torch.cuda.max_memory_allocated`` over one run of ``fn`` (resident tensors included), in MiB.

    None off CUDA (the CPU allocator keeps no peak statistics).
    """
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def _wrap(fn: Callable, name: str) -> Callable:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with torch.autograd.profiler.record_function(RANGE_PREFIX + name):
            return fn(*args, **kwargs)
    return wrapped


@contextlib.contextmanager
def annotate(modules: Iterable[tuple[str, nn.Module]] = (),
             functions: Iterable[tuple[str, Any, str]] = ()) -> Iterator[None]:
    """Put ``record_function`` ranges around module forwards and named functions while the context is open.

    Args:
        modules: ``(range name, module)``: the module instance's ``forward`` is wrapped.
        functions: ``(range name, owner, attribute)``: ``owner.attribute`` (a module-level function or a
            method on a class) is replaced by a wrapper; callers must look it up through ``owner``.
    """
    patched_modules: list[nn.Module] = []
    patched_attrs: list[tuple[Any, str, Any]] = []
    try:
        for name, module in modules:
            if "forward" in module.__dict__:
                raise ValueError(f"annotate: {type(module).__name__} already has an instance-level forward")
            module.forward = _wrap(module.forward, name)
            patched_modules.append(module)
        for name, owner, attr in functions:
            own = attr in vars(owner)
            original = inspect.getattr_static(owner, attr)
            if isinstance(original, (staticmethod, classmethod)):
                raise TypeError(f"annotate: {owner!r}.{attr} is a {type(original).__name__}; wrap plain functions")
            patched_attrs.append((owner, attr, original if own else None))
            setattr(owner, attr, _wrap(original, name))
        yield
    finally:
        for module in patched_modules:
            del module.forward
        for owner, attr, original in reversed(patched_attrs):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def _self_device_us(event: Any) -> float:
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def range_times(events: Sequence[Any], other: str = "other") -> dict[str, dict[str, float]]:
    """Self CPU and device time (ms) per ``annotate`` range, each op going to its innermost range.

    Args:
        events: ``torch.profiler.profile(...).events()`` (FunctionEvents with ``cpu_parent`` links).
        other: name for time outside every range.

    Returns ``{range: {"cpu_ms", "device_ms", "calls"}}``; ``calls`` counts the range's own entries.
    """
    out: dict[str, dict[str, float]] = {}

    def slot(name: str) -> dict[str, float]:
        return out.setdefault(name, {"cpu_ms": 0.0, "device_ms": 0.0, "calls": 0})

    for event in events:
        if getattr(event, "device_type", DeviceType.CPU) != DeviceType.CPU:
            continue                                   # GPU-side copies of annotations: counted via their ops
        if event.name.startswith(RANGE_PREFIX):
            slot(event.name[len(RANGE_PREFIX):])["calls"] += 1
        owner, parent = other, event
        while parent is not None:
            if parent.name.startswith(RANGE_PREFIX):
                owner = parent.name[len(RANGE_PREFIX):]
                break
            parent = parent.cpu_parent
        entry = slot(owner)
        entry["cpu_ms"] += event.self_cpu_time_total / 1e3
        entry["device_ms"] += _self_device_us(event) / 1e3
    return out


def top_ops(events: Sequence[Any], device_type: str, runs: int, count: int) -> list[dict[str, Any]]:
    """The ``count`` most expensive ops of ``runs`` profiled calls, per call: on CUDA the device's own events
    (kernels, copies, memsets; also those a CUDA graph replays or a compiled function launches, which no module
    range sees), elsewhere the CPU ops' self time.

    Returns ``[{"name", "ms", "calls", "share"}]``, most expensive first; ``share`` of all such time.
    """
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    on_device = device_type == "cuda"
    for event in events:
        if (getattr(event, "device_type", DeviceType.CPU) != DeviceType.CPU) != on_device:
            continue
        if getattr(event, "is_user_annotation", False) or event.name.startswith(RANGE_PREFIX):
            continue                                   # ranges (also their device-side copies), not ops
        entry = totals[event.name]
        entry[0] += event.time_range.elapsed_us() if on_device else event.self_cpu_time_total
        entry[1] += 1
    total_us = sum(us for us, _ in totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:count]
    return [{"name": name, "ms": us / 1e3 / runs, "calls": calls / runs, "share": us / total_us}
            for name, (us, calls) in ranked]


def kernel_launches(events: Sequence[Any]) -> int:
    """Number of CUDA kernel launch calls among profiler ``events``."""
    return sum(1 for event in events if event.name in KERNEL_LAUNCHES)


@contextlib.contextmanager
def count_syncs(path_filter: str, cuda_debug_mode: bool = True) -> Iterator[collections.Counter]:
    """Count host-device synchronisations by the code line that caused them, while the context is open.

    Turns on ``torch.cuda.set_sync_debug_mode("warn")`` (unless ``cuda_debug_mode`` is False) and catches its
    warnings; each is keyed by the innermost stack frame whose file path contains ``path_filter``, as
    ``"path:line"`` (``"?"`` when no frame matches, e.g. inside autograd's backward; frames of this helper
    file are skipped).
    """
    hits: collections.Counter = collections.Counter()

    def record(message: Any, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" not in str(message):
            return
        frames = [f for f in traceback.extract_stack()[:-1] if path_filter in f.filename and f.filename != __file__]
        hits[f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        if cuda_debug_mode:
            torch.cuda.synchronize()            # finish earlier work first, so that only the block's syncs count
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield hits
        finally:
            if cuda_debug_mode:
                torch.cuda.set_sync_debug_mode("default")

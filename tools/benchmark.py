"""Benchmark PT-v3m1 configs: parameters, inference latency and peak memory, a per-component breakdown of the
forward, and training steps (student alone vs distillation, with each distillation loss's share).

    python tools/benchmark.py --device cuda --json bench.json --markdown bench.md
    python tools/benchmark.py --device cpu --threads 2 --batches 1 --dtypes fp32 --no-train --repeats 3

Inputs are simulated 32-beam nuScenes sweeps (``pointcept_distill.data.simulator``) written to a temporary
data root and read back through the nuScenes dataset with its val pipeline (GridSample 0.05 m: about 25k
points a scan), then ``point_collate_fn``: exactly what the val loader gives the model. Models have random
weights. Inference runs in eval mode under ``torch.inference_mode`` without ``segment`` (test-mode output);
each row is the median of ``--repeats`` runs after ``--warmup`` runs, timed with CUDA events on GPU and
``perf_counter`` on CPU; peak memory is ``torch.cuda.max_memory_allocated`` over one run (weights included).
Dtypes: ``fp32``; ``bf16`` / ``fp16`` (autocast); ``bf16-cast`` / ``fp16-cast`` (weights and features cast,
as upstream's ``model.half()`` measurement). A row that fails records its error instead of stopping the run.

The breakdown wraps module forwards and a few functions in ``record_function`` ranges from the outside
(``pointcept_distill.utils.profiling.annotate``; no model file changes) and sums each range's self time
under ``torch.profiler``; an op is charged to its innermost range.

The training step is ``zero_grad -> autocast forward + losses -> backward -> AdamW step`` (GradScaler for
fp16), with the student alone (``DefaultSegmentorV2`` in train mode) and through ``Distiller.compute_loss`` (the
shared work and loss hooks of a ``DistillTrainer`` step; frozen random-weight teacher, the distill config's
losses), then with each distillation loss left out to measure its share.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import itertools
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from functools import partial
from typing import Any, Callable, Iterator

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pointcept_distill.data import build_dataset, point_collate_fn  # noqa: E402
from pointcept_distill.engine.train import sum_losses  # noqa: E402
from pointcept_distill.data.pipelines import data_config  # noqa: E402
from pointcept_distill.data.simulator import generate  # noqa: E402
from pointcept_distill.models import build_model  # noqa: E402
from pointcept_distill.models import ptv3m1, sparse  # noqa: E402
from pointcept_distill.models.capacity import pad_to_capacity  # noqa: E402
from pointcept_distill.models.backend import Backend  # noqa: E402
from pointcept_distill.models.captured import CapturedSegmentor, captured_backend  # noqa: E402
from pointcept_distill.models.plan import plan_batch  # noqa: E402
from pointcept_distill.models.point import Point  # noqa: E402
from pointcept_distill.models.sparse import kernel_map  # noqa: E402
from pointcept_distill.utils.config import Config  # noqa: E402
from pointcept_distill.utils.profiling import (annotate, count_syncs, kernel_launches, measure, top_ops,  # noqa: E402
                                              peak_memory_mib, range_times)
from pointcept_distill.utils.progress import StageProgress  # noqa: E402
from pointcept_distill.utils.tensors import to_device  # noqa: E402

DEFAULT_CONFIGS = ["configs/nuscenes/semseg-pt-v3m1-0-base.py", "configs/nuscenes/semseg-pt-v3m1-student.py"]
DEFAULT_DISTILL = "configs/nuscenes/distill-ptv3.py"
QUICK_CONFIGS = ["configs/nuscenes/semseg-pt-v3m1-sim-tiny.py"]
QUICK_DISTILL = "configs/nuscenes/distill-ptv3-sim-tiny.py"
DTYPES = {"fp32": (None, False), "bf16": (torch.bfloat16, False), "fp16": (torch.float16, False),
          "bf16-cast": (torch.bfloat16, True), "fp16-cast": (torch.float16, True)}
INFER_KEYS = ("coord", "grid_coord", "feat", "offset")
TRAIN_KEYS = INFER_KEYS + ("segment",)


# ------------------------------------------------------------------------------------------------ inputs
def simulated_batches(batches: list[int], profile: str, seed: int, scale: float, copies: int = 1
                      ) -> dict[int, list[dict]]:
    """For each b in ``batches``, ``copies`` collated val-pipeline batches of b simulated sweeps each (copy i
    holds sweeps i*b .. i*b+b-1, so copies differ in their points and sizes)."""
    n = max(batches) * copies
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as root:
        generate(profile, root, train=0, val=n, seed=seed, scale=scale)
        dataset = build_dataset(data_config(profile, root)["val"])
        samples = [dataset[i] for i in range(n)]
    return {b: [point_collate_fn(samples[i * b:i * b + b]) for i in range(copies)] for b in batches}


def model_inputs(batch: dict, keys: tuple[str, ...], device: torch.device, feat_dtype: torch.dtype | None = None
                 ) -> dict:
    """The ``keys`` of ``batch`` on ``device``, ``feat`` cast to ``feat_dtype`` when one is given."""
    out = to_device({k: batch[k] for k in keys}, device)
    if feat_dtype is not None:
        out["feat"] = out["feat"].to(feat_dtype)
    return out


def planned(inputs: dict, batch: dict, run_model: Any) -> dict:
    """For a ``CapturedSegmentor`` (``--capture``), the device ``inputs`` with the host-side ``plan`` of the CPU
    ``batch`` (as a data pipeline would add), so the timed forward reads nothing back."""
    if isinstance(run_model, CapturedSegmentor):
        inputs["plan"] = run_model.plan(batch)
    return inputs


def backend(args: argparse.Namespace) -> Backend:
    """The models' kernels: the Triton attention kernels, or SDPA with ``--no-attention-kernel``."""
    return Backend(attention="triton" if args.attention_kernel else "sdpa")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------- inference
@contextlib.contextmanager
def inference_model(model: nn.Module, dtype_name: str) -> Iterator[tuple[nn.Module, Any, Any]]:
    """(model to run, autocast dtype, input feature dtype) for a ``--dtypes`` entry.

    A cast entry runs a cast copy while the original waits on the CPU, so peak memory counts one model.
    """
    dtype, cast = DTYPES[dtype_name]
    if not cast:
        yield model, dtype, None
        return
    device = next(model.parameters()).device
    model.cpu()
    try:
        yield copy.deepcopy(model).to(device=device, dtype=dtype), None, dtype
    finally:
        model.to(device)


def compiled(model: nn.Module, args: argparse.Namespace) -> nn.Module:
    """``model`` under ``torch.compile`` for ``--compile`` (a fresh compilation cache per model), else itself."""
    if not args.compile:
        return model
    torch._dynamo.reset()
    return torch.compile(model, mode=None if args.compile == "default" else args.compile,
                         backend=args.compile_backend)


def captured(model: nn.Module, amp: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """(callable, autocast dtype left to the caller) for ``--capture``: a ``CapturedSegmentor`` owns autocast."""
    if not args.capture:
        return model, amp
    torch._dynamo.reset()
    backend = args.compile_backend if args.capture == "compiled" else None
    return CapturedSegmentor(model, dtype=amp, compile=backend, steps_per_octave=args.steps_per_octave,
                             implicit_gemm=args.implicit_gemm), None


def stage(args: argparse.Namespace, what: str) -> None:
    """Announce one measured row on the console (stage k/N, time left), when ``run`` set up the progress."""
    progress = getattr(args, "progress", None)
    if progress is not None:
        progress.start(f"{getattr(args, 'stage_prefix', '')}{what}")


def bench_inference(model: nn.Module, batches: dict[int, list[dict]], device: torch.device, dtype_name: str,
                    args: argparse.Namespace) -> list[dict]:
    with inference_model(model, dtype_name) as (run_model, amp, feat_dtype):
        run_model = compiled(run_model, args)
        run_model, amp = captured(run_model, amp, args)
        return [_inference_row(run_model, amp, feat_dtype, b, inputs, device, dtype_name, args)
                for b, inputs in batches.items()]


def _inference_row(run_model: nn.Module, amp: Any, feat_dtype: Any, b: int, batches: list[dict],
                   device: torch.device, dtype_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row: forwards cycling through ``batches`` (``--inputs`` distinct batches of b scans)."""
    stage(args, f"inference {dtype_name} x{b}")
    row: dict[str, Any] = {"dtype": dtype_name, "scans": b, "points": int(batches[0]["offset"][-1]),
                           "inputs": len(batches), "compile": args.compile, "capture": args.capture}
    inputs = itertools.cycle([planned(model_inputs(batch, INFER_KEYS, device, feat_dtype), batch, run_model)
                              for batch in batches])

    def forward() -> None:
        with torch.inference_mode(), autocast(device, amp):
            run_model(next(inputs))
    try:
        t0 = time.perf_counter()
        forward()                               # the first call compiles under --compile
        row["first_call_s"] = time.perf_counter() - t0
        latency = measure(forward, device, args.warmup, args.repeats)
        row.update(latency.as_dict(), ms_per_scan=latency.median_ms / b, peak_mib=peak_memory_mib(forward, device))
        if args.top_kernels:
            row["top_ops"] = profile_top_ops(forward, device, args)
    except Exception as exc:  # a dtype the kernels do not support: record it, go on
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    print(f"  infer {dtype_name} x{b}: {row.get('median_ms', row.get('error'))}", flush=True)
    return row


def profiler_activities(device: torch.device) -> list[Any]:
    """The profiler's activities: the host, and the device's kernels on CUDA."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return activities


def profile_top_ops(forward: Callable[[], None], device: torch.device, args: argparse.Namespace
                    ) -> list[dict[str, Any]]:
    """``--top-kernels``: the most expensive kernels (CPU: ops) of ``--profile-runs`` timed forwards, as run
    (compiled, replayed from CUDA graphs or eager)."""
    with torch.profiler.profile(activities=profiler_activities(device)) as prof:
        for _ in range(args.profile_runs):
            forward()
        sync(device)
    return top_ops(prof.events(), device.type, args.profile_runs, args.top_kernels)


def breakdown_targets(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, Any, str]]]:
    """The (range, module) and (range, owner, attribute) pairs of the PT-v3m1 forward breakdown."""
    kinds: list[tuple[str, tuple[type, ...]]] = [
        ("embedding", (ptv3m1.Embedding,)), ("sparse_conv", (sparse.SubMConv3d,)),
        ("attention", (ptv3m1.SerializedAttention,)), ("mlp", (ptv3m1.MLP,)),
        ("norm", (nn.LayerNorm, nn.BatchNorm1d)), ("pooling", (ptv3m1.SerializedPooling,)),
        ("unpooling", (ptv3m1.SerializedUnpooling,))]
    modules = [(name, m) for m in model.modules() for name, types in kinds if isinstance(m, types)]
    modules += [("cpe", m.cpe) for m in model.modules() if isinstance(m, ptv3m1.Block)]
    if isinstance(getattr(model, "seg_head", None), nn.Module):
        modules.append(("head", model.seg_head))
    attention_module = sys.modules[ptv3m1.SerializedAttention.__module__]
    functions: list[tuple[str, Any, str]] = [
        ("serialization", Point, "serialization"), ("serialization", Point, "set_serialized_code"),
        ("sparsify", Point, "sparsify"), ("kernel_map", kernel_map, "build_kernel_map"),
        ("attn_windows", attention_module, "build_windows"),
        ("attn_windows", ptv3m1.WindowPartition, "gather_indices"),
        ("attn_windows", ptv3m1.WindowPartition, "kernel_tables")]
    if sparse.spconv_available():
        import spconv.pytorch.ops as spconv_ops
        functions += [("kernel_map", spconv_ops, name) for name in ("get_indice_pairs_implicit_gemm",
                                                                    "get_indice_pairs")]
    return modules, [f for f in functions if hasattr(f[1], f[2])]


def bench_breakdown(model: nn.Module, batch: dict, device: torch.device, dtype_name: str,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Per-component self time (ms per forward) of ``--profile-runs`` profiled forwards.

    Under ``--capture`` the profiled forward is the one a ``CapturedSegmentor`` captures (padded batch, gather
    path), run eagerly: the same kernels its graph replays, without the compilation's fusion."""
    stage(args, f"breakdown {dtype_name} (profiled forwards)")
    with inference_model(model, dtype_name) as (run_model, amp, feat_dtype):
        inputs = model_inputs(batch, INFER_KEYS, device, feat_dtype)
        if args.capture:
            inputs = pad_to_capacity(inputs, plan_batch(batch, run_model.backbone.strides).bucketed())
            run_model.backbone.set_backend(captured_backend(run_model.backbone.backend, args.implicit_gemm))

        def forward() -> None:
            with torch.inference_mode(), autocast(device, amp):
                run_model(inputs)
        return _profile(run_model, forward, batch, device, dtype_name, args)


def _profile(run_model: nn.Module, forward: Callable[[], None], batch: dict, device: torch.device, dtype_name: str,
             args: argparse.Namespace) -> dict[str, Any]:
    activities = profiler_activities(device)
    try:
        modules, functions = breakdown_targets(run_model)
        for _ in range(max(args.warmup, 1)):
            forward()
        with annotate(modules, functions), torch.profiler.profile(activities=activities):
            forward()                           # the profiler's start-up cost would land in the first range
        with annotate(modules, functions), torch.profiler.profile(activities=activities) as prof:
            for _ in range(args.profile_runs):
                forward()
            sync(device)
        times = range_times(prof.events())
        launches = kernel_launches(prof.events()) / args.profile_runs
        with count_syncs(ROOT, cuda_debug_mode=device.type == "cuda") as syncs:
            forward()
    except Exception as exc:
        return {"dtype": dtype_name, "scans": int(batch["offset"].shape[0]), "error": f"{type(exc).__name__}: {exc}"}
    per_run = {name: {"cpu_ms": v["cpu_ms"] / args.profile_runs, "device_ms": v["device_ms"] / args.profile_runs,
                      "calls": v["calls"] // args.profile_runs} for name, v in sorted(times.items())}
    return {"dtype": dtype_name, "scans": int(batch["offset"].shape[0]), "points": int(batch["offset"][-1]),
            "runs": args.profile_runs, "components": per_run, "kernel_launches": launches,
            "host_syncs": {os.path.relpath(k, ROOT) if k != "?" else k: n for k, n in syncs.most_common()}}


# ---------------------------------------------------------------------------------------------- training
def build_distiller(cfg: Config, device: torch.device, kernels: Backend = Backend()) -> tuple[nn.Module, Any]:
    """The student and the ``Distiller`` that ``DistillTrainer`` steps with (random frozen teacher), both models
    on ``kernels``."""
    from pointcept_distill.distill.distiller import Distiller
    from pointcept_distill.distill.teacher import FrozenTeacher

    student = build_model(cfg.model).to(device)
    teacher = FrozenTeacher(build_model(cfg.teacher)).to(device)
    for model in (student, teacher.model):
        model.backbone.set_backend(kernels)
    return student, Distiller(teacher, cfg.get("distill", {}), device)


def train_step(model: nn.Module, compute_loss: Callable[[dict], dict], total_loss: Callable[[dict], torch.Tensor],
               inputs: list[dict], device: torch.device, dtype: torch.dtype | None) -> Callable[[], None]:
    """One optimizer step as ``Trainer.run_step`` makes it (no accumulation, no clipping, no finite check), on
    the next of ``inputs`` each call (as in training, where every step brings new point counts)."""
    batches = itertools.cycle(inputs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            output = compute_loss(next(batches))
        loss = total_loss(output)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    return step


def captured_train_step(model: nn.Module, inputs: list[dict], device: torch.device, dtype: torch.dtype | None,
                        compile: str | None = None, losses: Callable[[dict], dict] | None = None
                        ) -> tuple[Callable[[], None], Any]:
    """``train_step``'s step from ``CapturedTrainStep`` (the trainer's ``captured_step``): forward, losses and
    backward from the batch's graph, then the optimizer graph; ``inputs`` carry their ``plan``; ``losses`` as
    ``CapturedTrainStep``'s (None: the model's). Returns the step and the ``CapturedTrainStep`` (its graph
    counts)."""
    from pointcept_distill.engine.captured_step import CapturedTrainStep, stepping_by
    batches = itertools.cycle(inputs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    captured = CapturedTrainStep(model, optimizer, dtype, scaler, compile=compile, losses=losses)

    def step() -> None:
        captured(next(batches))
        if scaler is None:
            captured.step()
            return
        scaler.unscale_(optimizer)
        with stepping_by(optimizer, captured.step):
            scaler.step(optimizer)
        scaler.update()
    return step, captured


def captured_distillation(cfg: Config, student: nn.Module, distiller: Any, device: torch.device
                          ) -> tuple[str, Callable[[dict], dict]]:
    """The row name and the step function of a captured distillation step as ``DistillTrainer`` builds it: the
    losses a graph can hold (``KDLossHook.capturable``), the teacher inside the step's graphs (no graphs of its
    own) on the Triton implicit GEMM for its frozen weights."""
    from pointcept_distill.distill.distiller import Distiller
    plain = Distiller(distiller.teacher, dict(cfg.get("distill", {}), teacher_capture=None), device)
    backbone = plain.teacher.model.backbone
    backbone.set_backend(captured_backend(backbone.backend, implicit_gemm=True))
    names = [hook.name for hook in plain.loss_hooks if hook.capturable]
    left_out = [hook.name for hook in plain.loss_hooks if not hook.capturable]
    name = "distill captured" + (f" (without {', '.join(left_out)})" if left_out else "")
    return name, partial(plain.compute_loss, student, losses=names)


def train_inputs(batch: dict, student: nn.Module, distiller: Any, device: torch.device) -> dict:
    """A training step's device inputs; with a captured teacher (``--teacher-capture``) also the host-side plan
    for the student's strides that ``DistillTrainer``'s loader workers add (the student rows get the same
    inputs)."""
    inputs = model_inputs(batch, TRAIN_KEYS, device)
    if distiller.captured_teacher is not None:
        inputs["plan"] = plan_batch(batch, student.backbone.strides)
    return inputs


def train_variants(losses: list[str]) -> list[tuple[str, list[str]]]:
    """(name, losses computed) for: all the active ``losses``, each one left out, none (teacher forward only)."""
    variants = [("distill", list(losses))]
    variants += [(f"distill - {k}", [j for j in losses if j != k]) for k in losses]
    variants.append(("teacher only", []))
    return variants


def bench_train(distill_cfg: Config, batches: dict[int, dict], device: torch.device, args: argparse.Namespace
                ) -> list[dict]:
    dtype = DTYPES[args.train_dtype][0]
    student, distiller = build_distiller(distill_cfg, device, backend(args))
    student.train()
    active = [hook.name for hook in distiller.loss_hooks]
    rows = []
    for b, batch in batches.items():
        inputs = [train_inputs(one, student, distiller, device) for one in batch]
        base = {"dtype": args.train_dtype, "scans": b, "points": int(batch[0]["offset"][-1]),
                "distinct_inputs": len(batch)}
        cases = [("student", None)] + train_variants(active)
        if args.captured_step:                              # last: a failed capture spoils the CUDA generator
            cases += [("student captured", "captured"), ("distill captured", "captured")]
        if args.train_rows is not None:
            cases = [case for case in cases if case[0] in args.train_rows]
        if getattr(args, "progress", None) is not None and b == next(iter(batches)):
            args.progress.add(len(batches) * len(cases))
        for name, losses in cases:
            stage(args, f"training step {name} x{b} ({args.train_dtype})")
            row = dict(base, step=name)
            kernels = student.backbone.backend, distiller.teacher.model.backbone.backend
            try:
                if losses == "captured":
                    planned = [dict(inp, plan=plan_batch(one, student.backbone.strides))
                               for inp, one in zip(inputs, batch)]
                    compute = None
                    if name == "distill captured":
                        name, compute = captured_distillation(distill_cfg, student, distiller, device)
                        row["step"] = name
                    step, captured = captured_train_step(student, planned, device, dtype, args.captured_step_compile,
                                                         compute)
                else:
                    compute = student if losses is None else partial(distiller.compute_loss, student, losses=losses)
                    step, captured = train_step(student, compute, sum_losses, inputs, device, dtype), None
                latency = measure(step, device, args.train_warmup, args.train_repeats)
                row.update(latency.as_dict(), peak_mib=peak_memory_mib(step, device))
                if args.top_kernels:
                    row["top_ops"] = profile_top_ops(step, device, args)
                if captured is not None and device.type == "cuda":      # elsewhere the step runs eagerly
                    row.update(graphs=captured.captures, hit_share=1 - captured.captures / captured.steps)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            finally:                                    # a captured step sets graph-safe convolutions
                student.backbone.set_backend(kernels[0])
                distiller.teacher.model.backbone.set_backend(kernels[1])
            rows.append(row)
            print(f"  train {name} x{b}: {row.get('median_ms', row.get('error'))}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- reports
def environment(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    try:
        import spconv
        spconv_version = getattr(spconv, "__version__", "unknown")
    except ImportError:
        spconv_version = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    return {"device": name, "device_type": device.type, "torch": torch.__version__,
            "cuda": torch.version.cuda, "spconv": spconv_version, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(cells) + " |"


def inference_table(report: dict[str, Any]) -> list[str]:
    settings = report.get("settings", {})
    lines = [f"Inference: {settings.get('inputs', 1)} distinct batch(es) per row, torch.compile: "
             f"{settings.get('compile') or 'off'}, CapturedSegmentor: {settings.get('capture') or 'off'}", "",
             "| model | params | dtype | scans | points | median ms | min ms | ms/scan | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in report["models"]:
        for r in m["inference"]:
            cells = ([r.get("median_ms"), r.get("min_ms"), r.get("ms_per_scan"), r.get("peak_mib")]
                     if "error" not in r else [f"error: {r['error'][:80]}", None, None, None])
            lines.append(_row([_fmt(c) for c in [m["name"], m["params"], r["dtype"], r["scans"], r["points"],
                                                 *cells]]))
    return lines


def breakdown_tables(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for m in report["models"]:
        for bd in m["breakdown"]:
            lines += ["", f"Breakdown of {m['name']}, {bd['dtype']}, {bd['scans']} scan(s): self time per "
                          f"forward under the profiler, each op charged to its innermost range", "",
                      "| component | calls | self CPU ms | self device ms | device share |", "|---|---|---|---|---|"]
            if "error" in bd:
                lines.append(_row([f"error: {bd['error'][:100]}", "", "", "", ""]))
                continue
            comps = bd["components"]
            total_cpu = sum(v["cpu_ms"] for v in comps.values())
            total_dev = sum(v["device_ms"] for v in comps.values())
            for name, v in sorted(comps.items(), key=lambda kv: -(kv[1]["device_ms"] or kv[1]["cpu_ms"])):
                share = f"{100 * v['device_ms'] / total_dev:.0f}%" if total_dev else "-"
                lines.append(_row([name, str(v["calls"]), f"{v['cpu_ms']:.2f}", f"{v['device_ms']:.2f}", share]))
            lines.append(_row(["total", "", f"{total_cpu:.2f}", f"{total_dev:.2f}", ""]))
            if bd["kernel_launches"] or bd["host_syncs"]:
                syncs = ", ".join(f"{k} x{n}" for k, n in bd["host_syncs"].items()) or "none"
                lines += ["", f"Kernel launches per forward: {bd['kernel_launches']:.0f}; host syncs in one forward "
                              f"({sum(bd['host_syncs'].values())}): {syncs}"]
    return lines


def top_ops_table(report: dict[str, Any], title: str, ops: list[dict[str, Any]]) -> list[str]:
    """One ``--top-kernels`` table of the ``title``d run (kernels on CUDA, ops on the CPU)."""
    what = "kernel" if report["environment"]["device_type"] == "cuda" else "op"
    lines = ["", f"Most expensive {what}s of {title}:", "", f"| {what} | ms | calls | share |", "|---|---|---|---|"]
    return lines + [_row([op["name"][:90].replace("|", "/"), f"{op['ms']:.3f}", f"{op['calls']:g}",
                          f"{100 * op['share']:.1f}%"]) for op in ops]


def top_ops_tables(report: dict[str, Any]) -> list[str]:
    return [line for m in report["models"] for r in m["inference"] if r.get("top_ops")
            for line in top_ops_table(report, f"{m['name']}, {r['dtype']}, {r['scans']} scan(s), as timed "
                                              "(per forward)", r["top_ops"])]


def train_top_ops_tables(report: dict[str, Any]) -> list[str]:
    return [line for r in report["train"] if r.get("top_ops")
            for line in top_ops_table(report, f"the training step {r['step']}, {r['dtype']}, {r['scans']} scan(s), "
                                              "as timed (per step)", r["top_ops"])]


def train_table(report: dict[str, Any]) -> list[str]:
    teacher = "captured teacher (CUDA graphs)" if report.get("settings", {}).get("teacher_capture") else "eager teacher"
    lines = ["", f"Training steps ({report['train_config']}, {teacher}; 'distill - X' is the step without loss X):",
             "",
             "| step | dtype | scans | points | median ms | vs student | peak MiB |", "|---|---|---|---|---|---|---|"]
    student = {r["scans"]: r.get("median_ms") for r in report["train"] if r["step"] == "student"}
    for r in report["train"]:
        ratio = r["median_ms"] / student[r["scans"]] if r.get("median_ms") and student.get(r["scans"]) else None
        cells = ([_fmt(r.get("median_ms")), _fmt(ratio, 2), _fmt(r.get("peak_mib"))] if "error" not in r
                 else [f"error: {r['error'][:80]}", "-", "-"])
        step = r["step"] + (f" ({r['graphs']} graphs, {100 * r['hit_share']:.0f} % hits)" if "graphs" in r else "")
        lines.append(_row([step, r["dtype"], _fmt(r["scans"]), _fmt(r["points"]), *cells]))
    return lines


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"Device: {env['device']} ({env['device_type']}, {env['cpu_threads']} torch threads); "
             f"torch {env['torch']}; spconv {env['spconv']}; {env['date']}", f"Command: `{env['command']}`", ""]
    if report["models"]:
        lines += inference_table(report) + top_ops_tables(report) + breakdown_tables(report)
    if report.get("train"):
        lines += train_table(report) + train_top_ops_tables(report)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=None,
                        help=f"model configs (default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--distill-config", default=None,
                        help=f"config with model (student), teacher and distill (default: {DEFAULT_DISTILL})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batches", default=None, help="scans per batch, comma-separated (default 1,4,8)")
    parser.add_argument("--dtypes", default=None,
                        help=f"comma-separated, of {', '.join(DTYPES)} (default fp32,bf16,fp16)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-inference", action="store_true", help="training steps only (no --config forwards)")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--breakdown-batch", type=int, default=1, help="scans of the profiled batch")
    parser.add_argument("--profile-runs", type=int, default=3)
    parser.add_argument("--top-kernels", type=int, default=0,
                        help="profile --profile-runs forwards of every inference row and --profile-runs steps of "
                             "every training row as timed (compiled and CUDA-graph runs included) and list this "
                             "many most expensive kernels (CPU: ops)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step benchmark")
    parser.add_argument("--train-batches", default=None, help="scans per training batch (default 1,4)")
    parser.add_argument("--train-dtype", default=None, choices=("fp32", "bf16", "fp16"),
                        help="autocast of the training step (default: bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--train-repeats", type=int, default=10)
    parser.add_argument("--train-warmup", type=int, default=3)
    parser.add_argument("--train-inputs", type=int, default=1,
                        help="distinct batches the training steps cycle through (>1: new point counts every step, "
                             "as in training; 1: the same batch every step)")
    parser.add_argument("--inputs", type=int, default=1,
                        help="distinct batches each inference row cycles through (>1: a new scan every forward, "
                             "as in deployment; 1: the same batch every time)")
    parser.add_argument("--compile", default=None, choices=("default", "reduce-overhead", "max-autotune"),
                        help="run the inference rows under torch.compile with this mode (dynamic shapes "
                             "automatic; reduce-overhead = CUDA graphs, which pay off only on repeated shapes)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (tests: aot_eager)")
    parser.add_argument("--capture", default=None, choices=("graphs", "compiled"),
                        help="run the inference rows through CapturedSegmentor (fixed-capacity batches replayed "
                             "from CUDA graphs; 'compiled' compiles each capacity whole first)")
    parser.add_argument("--implicit-gemm", action=argparse.BooleanOptionalAction, default=True,
                        help="--capture: convolutions on the Triton implicit-GEMM kernel (default) or, with "
                             "--no-implicit-gemm, on the gather-GEMM")
    parser.add_argument("--attention-kernel", action=argparse.BooleanOptionalAction, default=True,
                        help="attention on the Triton window-attention kernels (default on CUDA, forward and "
                             "backward) or, with --no-attention-kernel, on SDPA")
    parser.add_argument("--teacher-capture", action="store_true",
                        help="training rows: the teacher's part of a distillation step replayed from CUDA graphs "
                             "(distill.teacher_capture='graphs')")
    parser.add_argument("--captured-step", action="store_true",
                        help="training rows: also the student's and the distillation step from CUDA graphs (config "
                             "key captured_step), beside the eager steps on the same batches")
    parser.add_argument("--captured-step-compile", default=None, choices=("inductor",),
                        help="--captured-step: compile the forward and losses first")
    parser.add_argument("--train-rows", default=None,
                        help="comma-separated training rows to run, by name (student, distill, 'distill - <loss>', "
                             "'teacher only', student captured, distill captured); default all")
    parser.add_argument("--steps-per-octave", type=int, default=8,
                        help="--capture: capacity buckets per doubling of the point count")
    parser.add_argument("--profile", default="nuscenes", help="simulator profile of the input sweeps")
    parser.add_argument("--scale", type=float, default=1.0, help="simulator azimuth scale (1 = the real sensor)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke run: tiny configs, 0.1-scale sweeps, one scan, fp32, 2 repeats")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--markdown", default=None, help="write the tables here")
    args = parser.parse_args(argv)
    if args.quick:
        args.config = args.config or QUICK_CONFIGS
        args.distill_config = args.distill_config or QUICK_DISTILL
        args.scale, args.repeats, args.warmup, args.profile_runs = 0.1, 2, 1, 1
        args.train_repeats, args.train_warmup = 1, 1
        args.batches, args.train_batches, args.dtypes = (args.batches or "1", args.train_batches or "1",
                                                         args.dtypes or "fp32")
    args.config = args.config or DEFAULT_CONFIGS
    args.distill_config = args.distill_config or DEFAULT_DISTILL
    args.batches, args.train_batches = args.batches or "1,4,8", args.train_batches or "1,4"
    args.dtypes = args.dtypes or "fp32,bf16,fp16"
    args.train_dtype = args.train_dtype or ("bf16" if args.device == "cuda" else "fp32")
    args.train_rows = None if args.train_rows is None else [r.strip() for r in args.train_rows.split(",")]
    args.batch_list = [int(b) for b in args.batches.split(",")]
    args.train_batch_list = [int(b) for b in args.train_batches.split(",")]
    args.dtype_list = args.dtypes.split(",")
    unknown = [d for d in args.dtype_list if d not in DTYPES]
    if unknown:
        parser.error(f"--dtypes: unknown {unknown} (known: {list(DTYPES)})")
    return args


def bench_model(config: str, batches: dict[int, list[dict]], device: torch.device, args: argparse.Namespace
                ) -> dict[str, Any]:
    cfg = Config.fromfile(os.path.join(ROOT, config) if not os.path.isabs(config) else config)
    torch.manual_seed(args.seed)
    model = build_model(cfg.model).to(device).eval()
    model.backbone.set_backend(backend(args))
    name = os.path.splitext(os.path.basename(config))[0]
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    args.stage_prefix = f"{name}: "
    result: dict[str, Any] = {"name": name, "config": config,
                              "params": sum(p.numel() for p in model.parameters()), "inference": [],
                              "breakdown": []}
    for dtype_name in args.dtype_list:
        result["inference"] += bench_inference(model, batches, device, dtype_name, args)
    if not args.no_breakdown:
        batch = (batches.get(args.breakdown_batch) or batches[min(batches)])[0]
        result["breakdown"] = [bench_breakdown(model, batch, device, d, args) for d in args.dtype_list]
    return result


def save(report: dict[str, Any], args: argparse.Namespace) -> str:
    """Write ``--json`` and ``--markdown`` (if given); returns the markdown."""
    text = markdown(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.no_inference:
        args.config, args.batch_list = [], []
    needed = sorted(set(args.batch_list) | (set() if args.no_train else set(args.train_batch_list)))
    all_batches = simulated_batches(needed, args.profile, args.seed, args.scale, max(args.train_inputs, args.inputs))
    batches = {b: all_batches[b][:args.inputs] for b in args.batch_list}
    report: dict[str, Any] = {"environment": environment(args, device), "models": [], "train": []}
    report["settings"] = {k: v for k, v in vars(args).items() if k not in ("json", "markdown")}
    per_model = len(args.dtype_list) * (len(args.batch_list) + (0 if args.no_breakdown else 1))
    args.progress = StageProgress("benchmark", len(args.config) * per_model)  # training rows: added when known
    for config in args.config:
        report["models"].append(bench_model(config, batches, device, args))
        save(report, args)                      # partial results survive a run cut short
    if not args.no_train:
        report["train_config"] = args.distill_config
        cfg = Config.fromfile(os.path.join(ROOT, args.distill_config))
        if args.teacher_capture:
            cfg.distill = dict(cfg.get("distill", {}), teacher_capture="graphs")
        torch.manual_seed(args.seed)
        args.stage_prefix = f"{os.path.splitext(os.path.basename(args.distill_config))[0]}: "
        report["train"] = bench_train(cfg, {b: all_batches[b][:args.train_inputs] for b in args.train_batch_list},
                                      device, args)
    args.progress.done()
    print(save(report, args))
    return report


if __name__ == "__main__":
    main()

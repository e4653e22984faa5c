"""Export a trained segmentor's fixed-capacity forward to an artifact that runs on torch alone (no package code).

    python tools/export.py --release releases/nuscenes-student --capacity 32768 --out exported/nuscenes-student
    python tools/export.py --config exp/nuscenes/student/config.py --weight exp/nuscenes/student/model/model_best.pth \
        --capacity 16384 --capacity 32768 --out exported/student --format program

Each ``--capacity C`` (voxels per scan, the captured path's fixed capacity) gives one file ``model_c<C>.pt2``:

- ``--format aoti`` (default): an AOTInductor package (``torch._inductor.aoti_compile_and_package``; compiled
  C++ on the CPU, with inductor's Triton kernels on CUDA), loaded by ``torch._inductor.aoti_load_package``;
- ``--format program``: the ``torch.export`` ExportedProgram (``torch.export.save``: graph and weights), loaded by
  ``torch.export.load(path).module()``; no compiler needed, runs the graph op by op.

The exported function is ``(coord (C, 3) float32, grid_coord (C, 3) int64, feat (C, F) float32, num_points (1,)
int64) -> logits (C, K)``: one scan of ``n = num_points < C`` voxels in rows ``[0, n)``, zero rows after (the
padding sample of ``capacity.pad_to_capacity``; every stage keeps C rows). Rows ``[0, n)`` of the output are the
scan's logits. Inside the graph: the serialization depth (from the largest grid coordinate), the codes and
their sorts, the kernel maps (sort + binary search), the pooling clusters and the attention windows: nothing
is read back to the host, so nothing data-dependent is left outside. Outside it (``examples/run_exported.py``,
plain numpy): the config's validation pipeline (intensity conversion, ``PointClip``, one point per voxel as
``GridSample``, the feature columns) and choosing the smallest capacity above the scan's voxels.

``export.json`` beside the files records what a loader needs: capacities and files, feature keys, grid size,
clip range, intensity convention, class names, and the depth the artifact needs at least (see docs/export.md).
Every artifact is checked against the eager model on a random scene before it is kept (``--tolerance``,
relative to the logits' largest magnitude); a mismatch removes it and fails.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

import pointcept_distill.models  # noqa: F401  (registers models)
from pointcept_distill.inference import load_model, verify_sha256sums
from pointcept_distill.models.backend import Backend
from pointcept_distill.models.captured import INDUCTOR_OPTIONS
from pointcept_distill.models.plan import BatchPlan
from pointcept_distill.models.point import Point
from pointcept_distill.models.ptv3m1.pooling import merged_levels
from pointcept_distill.models.serialization.hilbert import HILBERT_TABLE
from pointcept_distill.models.serialization.z_order import z_order_encode
from pointcept_distill.utils.config import Config

__all__ = ["ExportedSegmentor", "FORMATS", "export_model", "export_checkpoint", "example_inputs", "main"]

FORMATS = ("aoti", "program")
MAX_DEPTH = 16          # Point.serialization's limit: grid coordinates below 2**16
# Plain torch ops for every layer: the gather-GEMM convolution (spconv is opaque C++) and SDPA attention (the
# hand-written Triton kernels are launched as raw ``triton.jit`` calls, which ``torch.export`` does not capture); on
# CUDA inductor then writes its own Triton kernels for them
EXPORT_BACKEND = Backend(conv="gather", attention="sdpa")
AOTI_CONFIGS = dict(INDUCTOR_OPTIONS)      # the captured forward's: no in-place buffer reuse (see captured.py)
# On CUDA, AOTInductor by default tunes its Triton kernels at compile time in a generated script whose
# intermediate buffers hold no real data: a fused searchsorted/index kernel then fails its bounds assert
# (docs/export.md). Without it the kernels are tuned in the compile's own run of the traced inputs.
AOTI_CUDA_CONFIGS = {"triton.autotune_at_compile_time": False}


def aoti_configs(device: torch.device) -> dict:
    """The inductor options of an AOTInductor package compiled for ``device``."""
    return {**AOTI_CONFIGS, **(AOTI_CUDA_CONFIGS if device.type == "cuda" else {})}


def _hilbert(grid_coord: Tensor, depth: Tensor) -> Tensor:
    """``serialization.hilbert_encode`` at a depth given as a 0-d tensor: all 16 levels run, those at or above
    ``depth`` leave the state and the code as they are (exactly the codes of the depth-``depth`` curve)."""
    octants = z_order_encode(grid_coord, MAX_DEPTH)
    table = torch.tensor(HILBERT_TABLE, dtype=torch.long, device=grid_coord.device)
    state8 = torch.zeros_like(octants)
    code = torch.zeros_like(octants)
    for level in range(MAX_DEPTH - 1, -1, -1):
        entry = table[state8 | ((octants >> (3 * level)) & 7)]
        on = level < depth
        code = torch.where(on, (code << 3) | (entry & 7), code)
        state8 = torch.where(on, entry & ~7, state8)
    return code


def _encode(grid_coord: Tensor, batch: Tensor, depth: Tensor, orders: Sequence[str]) -> Tensor:
    """(k, N) codes as ``serialization.encode_orders`` at a tensor ``depth``. z-order keeps 16 bits (the
    coordinates are below 2**depth, so the same codes) and the batch goes above bit 48 instead of 3*depth
    (same order, same equal codes after every pooling's shift): every cluster and order is the eager one."""
    codes = []
    for order in orders:
        g = torch.stack((grid_coord[:, 1], grid_coord[:, 0], grid_coord[:, 2]), 1) if order.endswith("-trans") \
            else grid_coord
        codes.append(_hilbert(g, depth) if order.startswith("hilbert") else z_order_encode(g, MAX_DEPTH))
    return (batch.long() << (3 * MAX_DEPTH)) | torch.stack(codes)


@contextlib.contextmanager
def _depth_in_graph(depth: Tensor) -> Iterator[None]:
    """While tracing (and in the eager check): ``Point.serialization`` encodes at the tensor ``depth`` and
    records ``MAX_DEPTH`` as the Point's depth, so the poolings shift by their full stride (the caller checks
    that the scan is deep enough for that, as eager pools only then)."""
    original = Point.serialization
    tensor_depth = depth

    def serialization(point: Point, order="z", depth=None, shuffle_orders=False, permutation=None) -> None:
        orders = [order] if isinstance(order, str) else list(order)
        point._ensure_grid_coord()
        point["order"] = orders
        point["serialized_depth"] = MAX_DEPTH
        point.set_serialized_code(_encode(point["grid_coord"], point["batch"], tensor_depth, orders))

    Point.serialization = serialization
    try:
        yield
    finally:
        Point.serialization = original


class ExportedSegmentor(nn.Module):
    """A segmentor's inference on one scan padded to ``capacity`` rows, with static shapes and no host read.

    ``forward(coord, grid_coord, feat, num_points)`` -> (capacity, num_classes) logits; rows ``[0, n)`` are the
    scan's. The graph computes the serialization depth from ``grid_coord`` (the padding rows are zeros, so the
    maximum is the scan's), as ``serialization_depth`` does on the host.
    """

    def __init__(self, model: nn.Module, capacity: int) -> None:
        super().__init__()
        self.model, self.capacity = model.eval(), int(capacity)

    def forward(self, coord: Tensor, grid_coord: Tensor, feat: Tensor, num_points: Tensor) -> Tensor:
        n = num_points.reshape(1).long()
        offset = torch.cat([n, n.new_full((1,), self.capacity)])
        powers = torch.ones(MAX_DEPTH + 1, dtype=torch.long, device=grid_coord.device) << torch.arange(
            MAX_DEPTH + 1, device=grid_coord.device)
        depth = (grid_coord.max().long() + 1 >= powers).sum()          # bit_length(max + 1)
        strides = self.model.backbone.strides
        plan = BatchPlan(strides, MAX_DEPTH, 2, (self.capacity,) * (len(strides) + 1))   # the scan and its padding
        with _depth_in_graph(depth):
            out = self.model(dict(coord=coord, grid_coord=grid_coord, feat=feat, offset=offset, plan=plan))
        return out["seg_logits"]


def min_depth(model: nn.Module) -> int:
    """The shallowest scan the artifact serves as eager does: every pooling merges (sum of their levels)."""
    return sum(merged_levels(stride, MAX_DEPTH) for stride in model.backbone.strides)


def example_inputs(capacity: int, in_channels: int, num_points: int | None = None, extent: int = 64,
                   seed: int = 0, device: str | torch.device = "cpu") -> tuple[Tensor, ...]:
    """A random scan of unique voxels padded to ``capacity`` (``num_points`` default: 3/4 of it), as the
    artifact takes it."""
    n = min(num_points if num_points is not None else capacity * 3 // 4, capacity - 1, extent ** 3)
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(extent ** 3, generator=g)[:n]
    grid = torch.stack([flat // extent ** 2, (flat // extent) % extent, flat % extent], 1)
    coord = grid.float() * 0.05 + 0.025
    feat = torch.randn(n, in_channels, generator=g)
    feat[:, :3] = coord[:, :3] if in_channels >= 3 else feat[:, :3]

    def pad(t: Tensor) -> Tensor:
        return torch.cat([t, t.new_zeros((capacity - n,) + tuple(t.shape[1:]))]).to(device)
    return pad(coord), pad(grid), pad(feat), torch.tensor([n], device=device)


def _in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if hasattr(module, "in_channels") and type(module).__name__ == "SubMConv3d":
            return int(module.in_channels)
    raise ValueError("export: cannot tell the model's input channels (no SubMConv3d)")


@contextlib.contextmanager
def _export_backend(model: nn.Module) -> Iterator[None]:
    """``model`` on ``EXPORT_BACKEND`` while it is traced; its own kernels again after (the eager reference of
    the next capacity runs on them)."""
    own = model.backbone.backend
    model.backbone.set_backend(EXPORT_BACKEND)
    try:
        yield
    finally:
        model.backbone.set_backend(own)


@contextlib.contextmanager
def _no_fake_in_caches() -> Iterator[None]:
    """Tracing runs the model on fake tensors; the constant tables that the models cache per device
    (``kernel_map._SHIFTS``, ``hilbert._TABLES``) must not keep a fake one for later eager calls."""
    from pointcept_distill.models.serialization import hilbert
    from pointcept_distill.models.sparse import kernel_map
    try:
        yield
    finally:
        for cache in (kernel_map._SHIFTS, hilbert._TABLES):
            for key in [k for k, v in cache.items() if isinstance(v, torch._subclasses.FakeTensor)]:
                del cache[key]


def _eager_logits(model: nn.Module, inputs: tuple[Tensor, ...]) -> Tensor:
    """The eager model's logits of the scan in ``inputs`` (unpadded, its own depth: the reference)."""
    coord, grid, feat, num = inputs
    n = int(num[0])
    with torch.no_grad():
        return model(dict(coord=coord[:n], grid_coord=grid[:n], feat=feat[:n],
                          offset=torch.tensor([n], device=coord.device)))["seg_logits"]


def _check(name: str, got: Tensor, ref: Tensor, tolerance: float, outcome: str = "the artifact is not kept",
           reference: str = "the eager model") -> float:
    """``got``'s largest difference from ``ref`` relative to ``ref``'s largest logit; raises above ``tolerance``,
    saying what happens to the artifact (``outcome``)."""
    error = float((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12))
    if not error <= tolerance:
        raise RuntimeError(f"export: {name} differs from {reference} by {error:.3g} (relative to the largest "
                           f"logit; tolerance {tolerance:g}); {outcome}")
    return error


def export_model(model: nn.Module, capacity: int, path: str, fmt: str = "aoti",
                 device: str | torch.device = "cpu", tolerance: float = 1e-4) -> dict:
    """Export ``model``'s fixed-``capacity`` forward to ``path`` (``fmt`` in ``FORMATS``) and check it against the
    eager model on a random scene; returns {file, capacity, format, relative_error, seconds}. ``model`` is moved
    to ``device`` in eval mode with its parameters' ``requires_grad`` off."""
    if fmt not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}, got {fmt!r}")
    if capacity < 2:
        raise ValueError(f"export: capacity must be at least 2 (one scan row and one padding row), got {capacity}")
    device = torch.device(device)
    model, inputs = _prepared(model, capacity, device)
    wrapper = ExportedSegmentor(model, capacity)
    start = time.perf_counter()
    ref = _eager_logits(model, inputs)          # first: fills the module-level caches with real tensors
    n = ref.shape[0]
    with torch.no_grad(), _export_backend(model), _no_fake_in_caches():
        program = torch.export.export(wrapper, inputs, strict=False)
    with torch.no_grad():
        _check("the exported program", program.module()(*inputs)[:n], ref, tolerance)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        if fmt == "program":
            torch.export.save(program, path)
        else:
            moved = constants_to(program, device)
            if moved:
                print(f"[export] constants moved to {device} before compiling: {', '.join(moved)}", flush=True)
            torch._inductor.aoti_compile_and_package(program, package_path=path,
                                                     inductor_configs=aoti_configs(device))
        error = check_artifact(path, fmt, inputs, ref, tolerance)
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise
    return _record(path, capacity, fmt, error, start)


def _prepared(model: nn.Module, capacity: int, device: torch.device) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """``model`` on ``device`` in eval mode without autograd on its weights (the compile runs the graph), and the
    example inputs at ``capacity``."""
    model = model.to(device).eval().requires_grad_(False)
    return model, example_inputs(capacity, _in_channels(model), device=device)


def _record(path: str, capacity: int, fmt: str, error: float, start: float) -> dict:
    return dict(file=os.path.basename(path), capacity=capacity, format=fmt, relative_error=error,
                seconds=round(time.perf_counter() - start, 1))


def constants_to(program: torch.export.ExportedProgram, device: torch.device) -> list[str]:
    """Move the program's lifted constants and state that tracing left on another device (tables the model
    makes on the host) to ``device``; returns their names. A CUDA AOTInductor package with host constants
    crashes while loading them (pytorch/pytorch#172739)."""
    moved = []
    for table in (program.constants, program.state_dict):
        for name, value in table.items():
            if isinstance(value, Tensor) and value.device.type != device.type:
                table[name] = value.to(device)
                moved.append(name)
    return moved


def load_artifact(path: str, fmt: str) -> Callable[..., Tensor]:
    """The forward of an artifact written by ``export_model``."""
    return torch.export.load(path).module() if fmt == "program" else torch._inductor.aoti_load_package(path)


def check_artifact(path: str, fmt: str, inputs: tuple[Tensor, ...], ref: Tensor, tolerance: float,
                   outcome: str = "the artifact is not kept") -> float:
    """The artifact's relative error against the eager logits ``ref`` of ``inputs``' scan; raises above
    ``tolerance`` (``_check``)."""
    with torch.no_grad():
        return _check(f"{path} ({fmt})", load_artifact(path, fmt)(*inputs)[:ref.shape[0]], ref, tolerance, outcome)


def verify_model(model: nn.Module, capacity: int, path: str, fmt: str, device: str | torch.device,
                 tolerance: float = 1e-4) -> dict:
    """``export_model``'s check of an artifact already written (``--verify``: e.g. in a fresh process, or on the
    machine that deploys it), without exporting again; the artifact is kept whatever the result."""
    model, inputs = _prepared(model, capacity, torch.device(device))
    start = time.perf_counter()
    error = check_artifact(path, fmt, inputs, _eager_logits(model, inputs), tolerance, "the artifact is kept")
    return _record(path, capacity, fmt, error, start)


def latency(model: nn.Module, path: str, fmt: str, capacity: int, device: str | torch.device,
            runs: int = 50) -> dict[str, float]:
    """Median milliseconds of the artifact beside the captured forward (``CapturedSegmentor`` at the same fixed
    capacity: CUDA graphs, and inductor + CUDA graphs; on the CPU both run the padded batch eagerly) on the
    example scene, fp32, after warm-up."""
    from pointcept_distill.models.captured import CapturedSegmentor
    device = torch.device(device)
    inputs = example_inputs(capacity, _in_channels(model), device=device)
    n = int(inputs[3][0])
    scene = dict(coord=inputs[0][:n], grid_coord=inputs[1][:n], feat=inputs[2][:n],
                 offset=torch.tensor([n], device=device))
    artifact = load_artifact(path, fmt)
    runners = {f"exported ({fmt})": lambda: artifact(*inputs),
               "captured (graphs)": CapturedSegmentor(model, capacity=capacity, implicit_gemm=True)}
    if device.type == "cuda":
        runners["captured (compiled)"] = CapturedSegmentor(model, capacity=capacity, compile="inductor")
        if fmt == "program":    # how a deployment would run it: replayed from one CUDA graph on static inputs
            graphed = cuda_graphed(artifact, inputs)
            with torch.no_grad():
                _check(f"{path} replayed from a CUDA graph", graphed()[:n], artifact(*inputs)[:n], 1e-4,
                       "it is not timed", reference="its run without the graph")
            runners["exported (program) in a CUDA graph"] = graphed
    out = {}
    for name, run in runners.items():
        call = run if name.startswith("exported") else (lambda run=run: run(scene))
        times = []
        with torch.no_grad():
            for i in range(runs + 3):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                call()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= 3:
                    times.append((time.perf_counter() - start) * 1e3)
        out[name] = sorted(times)[len(times) // 2]
    return out


def cuda_graphed(forward: Callable[..., Tensor], inputs: tuple[Tensor, ...]) -> Callable[[], Tensor]:
    """``forward(*inputs)`` captured in one CUDA graph (after warm-up on a side stream): a call replays it on
    the same input tensors (copy new data into them first) and returns its output tensor."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):
            forward(*inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = forward(*inputs)

    def replay() -> Tensor:
        graph.replay()
        return out
    return replay


def _pipeline(cfg: Config) -> dict:
    """What the loader must do before the artifact, from the config's validation pipeline."""
    out: dict = dict(grid_size=None, feat_keys=None, point_cloud_range=None, unsupported=[])
    for step in (cfg.get("data") or {}).get("val", {}).get("transform") or []:
        kind = step.get("type")
        if kind == "GridSample":
            out["grid_size"] = float(step.get("grid_size", 0.05))
        elif kind == "Collect":
            out["feat_keys"] = list(step.get("feat_keys", ()))
        elif kind == "PointClip":
            out["point_cloud_range"] = [float(v) for v in step.get("point_cloud_range")]
        elif kind not in ("Copy", "ToTensor"):
            out["unsupported"].append(kind)
    return out


def _intensity(cfg: Config) -> str:
    from pointcept_distill.inference import _convention
    try:
        return _convention(cfg, None)
    except (ValueError, KeyError):
        return "strength"


def export_checkpoint(cfg: Config, weight: str, capacities: Sequence[int], out_dir: str, fmt: str = "aoti",
                      device: str = "cpu", tolerance: float = 1e-4, log=print, latency_runs: int = 0,
                      verify: bool = False) -> dict:
    """Export ``cfg``'s model with ``weight`` at each capacity into ``out_dir`` (``verify``: check the artifacts
    already there instead); writes and returns ``export.json``."""
    model = load_model(cfg, weight, torch.device(device))
    if not hasattr(model, "head_logits"):
        raise ValueError(f"export: {type(model).__name__} is not a segmentor with one head (DefaultSegmentorV2)")
    data = cfg.get("data") or {}
    names = [str(n) for n in (data.get("names") or cfg.get("names") or [])]
    meta = dict(format=fmt, device=str(device), torch=torch.__version__, inputs=[
        "coord (C, 3) float32", "grid_coord (C, 3) int64", "feat (C, F) float32", "num_points (1,) int64"],
        output="logits (C, K) float32; rows [0, num_points) are the scan's",
        min_depth=min_depth(model), max_grid_coord=2 ** MAX_DEPTH - 1, in_channels=_in_channels(model),
        class_names=names, intensity=_intensity(cfg), **_pipeline(cfg), artifacts=[])
    for capacity in sorted(set(int(c) for c in capacities)):
        path = os.path.join(out_dir, f"model_c{capacity}.pt2")
        if verify and not os.path.isfile(path):
            raise FileNotFoundError(f"export --verify: no artifact {path}")
        log(f"[export] capacity {capacity}: {'verifying' if verify else 'exporting'} ({fmt}, {device}) ...")
        record = (verify_model if verify else export_model)(model, capacity, path, fmt, device, tolerance)
        log(f"[export] capacity {capacity}: {path} {'checked' if verify else 'written'} in {record['seconds']} s, "
            f"relative error {record['relative_error']:.2g} against eager")
        if latency_runs:
            record["latency_ms"] = latency(model, path, fmt, capacity, device, latency_runs)
            log(f"[export] capacity {capacity}: latency (ms, median of {latency_runs}) " +
                ", ".join(f"{k} {v:.2f}" for k, v in record["latency_ms"].items()))
        meta["artifacts"].append(record)
    with open(os.path.join(out_dir, "export.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--release", help="a release folder (config.py, model.pth; SHA256SUMS is verified)")
    source.add_argument("--config", help="a config file (with --weight)")
    parser.add_argument("--weight", help="a checkpoint of --config's model")
    parser.add_argument("--capacity", type=int, action="append", required=True,
                        help="voxels per scan of one artifact (repeat for several buckets); it must exceed the "
                             "scan's voxels after grid sampling")
    parser.add_argument("--out", required=True, help="output folder (model_c<C>.pt2 files and export.json)")
    parser.add_argument("--format", choices=FORMATS, default="aoti")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (an AOTInductor package runs where it was "
                                                        "compiled)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--latency", type=int, default=0, metavar="RUNS",
                        help="also time the artifact beside CapturedSegmentor at the same capacity (median of RUNS)")
    parser.add_argument("--verify", action="store_true",
                        help="do not export: check (and with --latency time) the artifacts already in --out")
    args = parser.parse_args(argv)
    if args.release:
        verify_sha256sums(args.release)
        config, weight = os.path.join(args.release, "config.py"), os.path.join(args.release, "model.pth")
    else:
        if not args.weight:
            parser.error("--config needs --weight")
        config, weight = args.config, args.weight
    export_checkpoint(Config.fromfile(config), weight, args.capacity, args.out, args.format, args.device,
                      args.tolerance, latency_runs=args.latency, verify=args.verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/benchmark.py --quick on the CPU: the report's fields, parameter counts and breakdown ranges."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.autograd import DeviceType

from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config
from pointcept_distill.utils.profiling import annotate, count_syncs, measure, range_times, top_ops
from tool_modules import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Self-contained tiny configs (3 stages), so the test does not depend on the shipped configs.
BACKBONE = dict(type="PT-v3m1", in_channels=4, order=["z", "z-trans", "hilbert", "hilbert-trans"],
                stride=(2, 2), enc_depths=(1, 1, 1), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2),
                enc_patch_size=(64, 64, 64), dec_depths=(1, 1), dec_channels=(8, 16), dec_num_head=(1, 2),
                dec_patch_size=(64, 64))
CRITERIA = [dict(type="CrossEntropyLoss", loss_weight=1.0, ignore_index=-1),
            dict(type="LovaszLoss", mode="multiclass", loss_weight=1.0, ignore_index=-1)]
MODEL = dict(type="DefaultSegmentorV2", num_classes=16, backbone_out_channels=8, backbone=BACKBONE,
             criteria=CRITERIA)
STUDENT = dict(MODEL, backbone=dict(BACKBONE, enc_channels=(8, 8, 16), dec_channels=(8, 8), dec_num_head=(1, 1)))
DISTILL = dict(stages=["bottleneck"], teacher_amp_dtype="bfloat16",
               logit_kd=dict(type="LogitKD", temperature=1.0, loss_weight=0.3, ignore_index=-1),
               grad_kd=dict(type="GradGuidedKD", norm="minmax", loss_weight=10.0),
               topo_kd=dict(type="TopologyKD", num_points=16, homology_dims=(0, 1), distance="chamfer",
                            normalize=True, loss_weight=0.1))


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("cfg")
    model, distill = folder / "tiny.py", folder / "distill_tiny.py"
    model.write_text(f"model = {MODEL!r}\n")
    distill.write_text(f"model = {STUDENT!r}\nteacher = {MODEL!r}\ndistill = {DISTILL!r}\n")
    return str(model), str(distill)


@pytest.fixture(scope="module")
def report(configs, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    md = out.with_suffix(".md")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                          "--threads", "1", "--config", configs[0], "--distill-config", configs[1],
                          "--train-inputs", "2", "--inputs", "3", "--top-kernels", "4", "--json", str(out),
                          "--markdown", str(md)],
                         check=True, capture_output=True, cwd=ROOT, timeout=300, text=True)
    data = json.loads(out.read_text())
    data["_markdown"] = md.read_text()
    data["_stdout"] = run.stdout
    return data


def test_console_shows_each_row_as_a_stage_with_the_time_left(report):
    stages = [line for line in report["_stdout"].splitlines() if line.startswith("[benchmark] stage ")]
    rows = len(report["models"][0]["inference"]) + len(report["models"][0]["breakdown"]) + len(report["train"])
    assert len(stages) == rows
    assert [int(line.split()[2].split("/")[0]) for line in stages] == list(range(1, rows + 1))
    assert stages[-1].split()[2] == f"{rows}/{rows}:"                    # the plan counted every row
    assert "inference fp32 x1" in stages[0] and "time left known after this stage" in stages[0]
    assert all("left)" in line and "elapsed" in line for line in stages[1:])
    assert any("training step student" in line for line in stages)


def test_environment_fields(report):
    env = report["environment"]
    assert env["device_type"] == "cpu" and env["torch"] == torch.__version__
    assert "tools/benchmark.py --quick" in env["command"]
    for key in ("device", "spconv", "date", "cpu_threads"):
        assert key in env


def test_inference_rows(report, configs):
    (model,) = report["models"]
    params = sum(p.numel() for p in build_model(Config.fromfile(configs[0]).model).parameters())
    assert model["config"] == configs[0] and model["params"] == params
    (row,) = model["inference"]
    assert "error" not in row, row
    assert row["dtype"] == "fp32" and row["scans"] == 1 and row["points"] > 1000
    assert row["inputs"] == 3 and row["compile"] is None and row["first_call_s"] > 0
    assert row["runs"] == 2 and 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    assert row["peak_mib"] is None          # no peak statistics on the CPU
    assert "| tiny | " in report["_markdown"]


def test_breakdown_components(report):
    (bd,) = report["models"][0]["breakdown"]
    assert "error" not in bd, bd
    comps = bd["components"]
    for name in ("serialization", "kernel_map", "sparse_conv", "attention", "attn_windows", "mlp", "norm",
                 "pooling", "unpooling", "embedding", "head", "cpe"):
        assert comps[name]["cpu_ms"] > 0, name
    # 3 encoder + 2 decoder blocks; 2 poolings and unpoolings; one embedding and head
    assert comps["attention"]["calls"] == 5 and comps["mlp"]["calls"] == 5
    assert comps["pooling"]["calls"] == 2 and comps["unpooling"]["calls"] == 2
    assert comps["embedding"]["calls"] == 1 and comps["head"]["calls"] == 1
    assert comps["sparse_conv"]["calls"] == 6           # 5 CPE convolutions and the stem
    assert comps["kernel_map"]["calls"] == 4            # one per stage (3) and the stem's kernel 5


def test_train_rows(report):
    steps = {r["step"]: r for r in report["train"]}
    assert set(steps) == {"student", "distill", "distill - logit_kd", "distill - grad_kd", "distill - topo_kd",
                          "teacher only"}
    for row in steps.values():
        assert "error" not in row, row
        assert row["median_ms"] > 0 and row["scans"] == 1


def test_range_times_innermost_range_and_restore():
    lin, act = nn.Linear(8, 8), nn.GELU()
    model = nn.Sequential(lin, act)
    x = torch.randn(64, 8)
    with annotate([("outer", model), ("inner", lin)], [("fn", torch.nn.functional, "gelu")]):
        with torch.profiler.profile() as prof:
            model(x)
            torch.nn.functional.gelu(x)
    times = range_times(prof.events())
    # nn.GELU calls F.gelu: its time goes to the innermost range "fn", not to "outer"
    assert times["outer"]["calls"] == 1 and times["inner"]["calls"] == 1 and times["fn"]["calls"] == 2
    assert times["inner"]["cpu_ms"] > 0 and times["outer"]["cpu_ms"] > 0
    assert "forward" not in lin.__dict__ and "forward" not in model.__dict__
    assert torch.nn.functional.gelu.__name__ == "gelu" and not hasattr(torch.nn.functional.gelu, "__wrapped__")


def _event(name: str, self_us: float = 0.0, device_us: float = 0.0, on_device: bool = False,
           annotation: bool = False) -> SimpleNamespace:
    """A stand-in for a profiler FunctionEvent with given times (µs): the attributes ``top_ops`` reads."""
    return SimpleNamespace(name=name, device_type=DeviceType.CUDA if on_device else DeviceType.CPU,
                           self_cpu_time_total=self_us, is_user_annotation=annotation,
                           time_range=SimpleNamespace(elapsed_us=lambda: device_us))


def _synthetic_runs(runs: int = 2) -> list[SimpleNamespace]:
    """Events of ``runs`` profiled calls with known self times, so the expected ranking is fixed."""
    events = []
    for _ in range(runs):
        events += [_event("bench::range", self_us=500.0),                    # an annotate range: not an op
                   _event("aten::relu", self_us=30.0),
                   _event("aten::mm", self_us=400.0),
                   _event("aten::add", self_us=10.0), _event("aten::add", self_us=25.0),  # 2 calls: 35 per run
                   _event("aten::copy_", self_us=20.0),
                   _event("gemm_kernel", device_us=900.0, on_device=True),   # device events
                   _event("relu_kernel", device_us=70.0, on_device=True),
                   _event("memset", device_us=40.0, on_device=True), _event("memset", device_us=40.0, on_device=True),
                   _event("bench::range", device_us=5000.0, on_device=True, annotation=True)]
    return events


def test_top_ops_ranks_self_time_per_call_without_ranges():
    events = _synthetic_runs(runs=2)
    ops = top_ops(events, "cpu", runs=2, count=3)
    # ranked by summed self time (aten::add's two calls outrank aten::relu's one), reported per run
    assert [op["name"] for op in ops] == ["aten::mm", "aten::add", "aten::relu"]
    assert [op["calls"] for op in ops] == [1, 2, 1]
    assert [op["ms"] for op in ops] == pytest.approx([0.400, 0.035, 0.030])
    total = 400 + 35 + 30 + 20                                              # ops only, per run
    assert [op["share"] for op in ops] == pytest.approx([400 / total, 35 / total, 30 / total])
    every = top_ops(events, "cpu", runs=2, count=10)
    assert [op["name"] for op in every] == ["aten::mm", "aten::add", "aten::relu", "aten::copy_"]
    assert sum(op["share"] for op in every) == pytest.approx(1.0)


def test_top_ops_ranks_device_events_without_annotations():
    ops = top_ops(_synthetic_runs(runs=2), "cuda", runs=2, count=5)
    assert [op["name"] for op in ops] == ["gemm_kernel", "memset", "relu_kernel"]
    assert [op["calls"] for op in ops] == [1, 2, 1]
    assert [op["ms"] for op in ops] == pytest.approx([0.900, 0.080, 0.070])
    assert top_ops([e for e in _synthetic_runs() if e.device_type == DeviceType.CPU], "cuda", runs=2, count=3) == []


def test_top_ops_on_real_profiler_events_is_well_formed():
    # the real profiler path: rows are well formed; their order depends on measured times and is not checked
    a = torch.randn(64, 64)
    with torch.profiler.profile() as prof:
        for _ in range(2):
            with torch.autograd.profiler.record_function("bench::range"):
                (a @ a).relu()
    ops = top_ops(prof.events(), "cpu", runs=2, count=3)
    assert 0 < len(ops) <= 3 and len({op["name"] for op in ops}) == len(ops)
    names = {op["name"] for op in top_ops(prof.events(), "cpu", runs=2, count=100)}
    assert {"aten::mm", "aten::relu"} <= names and not any("range" in name for name in names)
    for op in ops:
        assert isinstance(op["name"], str) and op["name"]
        assert op["calls"] > 0 and op["ms"] >= 0 and 0 <= op["share"] <= 1
    assert top_ops(prof.events(), "cuda", runs=2, count=3) == []        # no device events on the CPU


def test_top_kernels_of_each_inference_row_and_training_step(report):
    for row in report["models"][0]["inference"] + report["train"]:
        assert len(row["top_ops"]) == 4 and all(op["ms"] >= 0 for op in row["top_ops"])
    assert "Most expensive ops of tiny, fp32, 1 scan(s)" in report["_markdown"]
    assert "Most expensive ops of the training step distill - grad_kd, fp32, 1 scan(s)" in report["_markdown"]
    backward = [op for row in report["train"] for op in row["top_ops"] if "backward" in op["name"].lower()]
    assert backward, "the training steps' tables hold their backward ops"


def test_measure_counts_runs():
    calls = []
    latency = measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=5)
    assert len(calls) == 7 and len(latency.times_ms) == 5 and latency.median_ms >= 0
    with pytest.raises(ValueError):
        measure(lambda: None, torch.device("cpu"), warmup=0, repeats=0)


def _load_benchmark():
    return load_tool("benchmark")


def test_compile_option_wraps_the_model_and_keeps_its_outputs():
    import argparse
    bench = _load_benchmark()
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    assert bench.compiled(model, argparse.Namespace(compile=None)) is model
    run = bench.compiled(model, argparse.Namespace(compile="default", compile_backend="eager"))
    assert run is not model and isinstance(run, torch._dynamo.eval_frame.OptimizedModule)
    x = torch.randn(5, 4)
    torch.testing.assert_close(run(x), model(x))
    torch._dynamo.reset()


def test_cast_dtype_runs_a_copy_and_restores_the_model():
    bench = _load_benchmark()
    model = nn.Linear(4, 4)
    with bench.inference_model(model, "bf16-cast") as (run_model, amp, feat_dtype):
        assert run_model is not model and run_model.weight.dtype == torch.bfloat16
        assert amp is None and feat_dtype == torch.bfloat16
    assert model.weight.dtype == torch.float32
    with bench.inference_model(model, "fp16") as (run_model, amp, feat_dtype):
        assert run_model is model and amp == torch.float16 and feat_dtype is None


def test_train_variants_switch_each_loss_off():
    bench = _load_benchmark()
    variants = dict(bench.train_variants(["logit_kd", "grad_kd"]))
    assert variants["distill"] == ["logit_kd", "grad_kd"]
    assert variants["distill - grad_kd"] == ["logit_kd"]
    assert set(variants) == {"distill", "distill - logit_kd", "distill - grad_kd", "teacher only"}
    assert variants["teacher only"] == []


def _syncing_call():
    warnings.warn("called a synchronizing CUDA operation")


def test_count_syncs_keys_by_calling_line():
    with count_syncs("test_benchmark", cuda_debug_mode=False) as hits:
        _syncing_call()
        _syncing_call()
        warnings.warn("unrelated warning")
    ((where, n),) = hits.items()
    assert n == 2 and where.endswith(f"test_benchmark.py:{_syncing_call.__code__.co_firstlineno + 1}")


def test_breakdown_reports_launches_and_syncs(report):
    (bd,) = report["models"][0]["breakdown"]
    assert bd["kernel_launches"] == 0 and bd["host_syncs"] == {}      # CPU run: no kernels, no CUDA syncs


def test_training_steps_cycle_through_distinct_inputs(report):
    rows = report["train"]
    assert rows and all(r["distinct_inputs"] == 2 for r in rows)


def test_training_steps_only(configs, tmp_path):
    out = tmp_path / "train.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                    "--threads", "1", "--no-inference", "--distill-config", configs[1], "--json", str(out)],
                   check=True, capture_output=True, cwd=ROOT, timeout=300)
    data = json.loads(out.read_text())
    assert data["models"] == []
    assert {r["step"] for r in data["train"]} >= {"student", "distill", "teacher only"}


def test_capture_option_runs_captured_rows(configs, tmp_path):
    out = tmp_path / "captured.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                    "--threads", "1", "--no-train", "--no-breakdown", "--config", configs[0], "--inputs", "2",
                    "--capture", "graphs", "--json", str(out)], check=True, capture_output=True, cwd=ROOT, timeout=300)
    rows = json.loads(out.read_text())["models"][0]["inference"]
    assert rows and all(r["capture"] == "graphs" and "error" not in r and r["median_ms"] > 0 for r in rows)


def test_captured_wrapper_plans_on_the_host(configs):
    import argparse
    bench = _load_benchmark()
    model = build_model(Config.fromfile(configs[0]).model).eval()
    assert bench.captured(model, torch.bfloat16, argparse.Namespace(capture=None)) == (model, torch.bfloat16)
    run, amp = bench.captured(model, torch.bfloat16, argparse.Namespace(capture="graphs", compile_backend="inductor",
                                                                       steps_per_octave=4, implicit_gemm=True))
    assert amp is None and run.dtype == torch.bfloat16 and run.steps_per_octave == 4 and run.implicit_gemm
    grid = torch.randint(0, 50, (300, 3))
    batch = dict(grid_coord=grid, coord=grid.float(), feat=torch.randn(300, 4), offset=torch.tensor([300]))
    inputs = bench.planned(dict(batch), batch, run)
    assert inputs["plan"].depth == 6 and len(inputs["plan"].sizes) == 3
    assert "plan" not in bench.planned(dict(batch), batch, model)


def test_teacher_capture_option_plans_training_inputs(configs, tmp_path):
    out, md = tmp_path / "train.json", tmp_path / "train.md"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                    "--threads", "1", "--no-inference", "--distill-config", configs[1], "--teacher-capture",
                    "--json", str(out), "--markdown", str(md)], check=True, capture_output=True, cwd=ROOT, timeout=300)
    rows = json.loads(out.read_text())["train"]
    assert rows and all("error" not in r for r in rows)
    assert "captured teacher" in md.read_text()
    bench = _load_benchmark()
    cfg = Config.fromfile(configs[1])
    cfg.distill = dict(cfg.distill, teacher_capture="graphs")
    student, distiller = bench.build_distiller(cfg, torch.device("cpu"))
    batch = bench.simulated_batches([1], "nuscenes", 0, 0.05)[1][0]
    inputs = bench.train_inputs(batch, student, distiller, torch.device("cpu"))
    assert inputs["plan"].sizes[0] == batch["coord"].shape[0] and inputs["plan"].depth > 0



def test_captured_step_option_adds_the_captured_training_rows(configs, tmp_path):
    """``--captured-step``: the student's and the distillation step from ``CapturedTrainStep`` (on the CPU the
    padded steps run eagerly), after the eager rows, on the same batches; the distillation row keeps the losses a
    graph can hold and names those it leaves out."""
    out = tmp_path / "captured_step.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                    "--threads", "1", "--no-inference", "--distill-config", configs[1], "--captured-step",
                    "--json", str(out)], check=True, capture_output=True, cwd=ROOT, timeout=300)
    rows = json.loads(out.read_text())["train"]
    assert rows and all("error" not in r for r in rows)
    names = [r["step"] for r in rows if r["scans"] == rows[0]["scans"]]
    assert names[0] == "student" and names[-2] == "student captured" and names[-1].startswith("distill captured")
    hooks = Config.fromfile(configs[1]).distill
    left_out = [k for k in ("topo_kd",) if isinstance(hooks.get(k), dict)]     # host work: not capturable
    kept = [k for k in ("grad_kd", "feat_kd") if isinstance(hooks.get(k), dict)]
    assert left_out and all(k in names[-1] for k in left_out) and not any(k in names[-1] for k in kept)
    assert all(r["median_ms"] > 0 for r in rows)


def test_train_rows_option_runs_only_the_named_rows(configs, tmp_path):
    """``--train-rows``: only the training rows named (here the eager and captured student), in the usual order."""
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--quick", "--device", "cpu",
                    "--threads", "1", "--no-inference", "--distill-config", configs[1], "--captured-step",
                    "--train-rows", "student captured,student", "--json", str(out)],
                   check=True, capture_output=True, cwd=ROOT, timeout=300)
    rows = json.loads(out.read_text())["train"]
    assert [r["step"] for r in rows] == ["student", "student captured"]
    assert all("error" not in r and r["median_ms"] > 0 for r in rows)

"""tools/multi_gpu.py's DDP option sweep: ``--ddp`` sets (presets, JSON, LABEL=JSON) checked before any run, and
one scaling phase on two gloo processes giving a row per option set (timings positive; their order not checked)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tool_modules import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tool():
    return load_tool("multi_gpu")


def test_ddp_sets_from_presets_json_and_labels(tool):
    sets = tool.ddp_sets(["default", '{"static_graph": true}', 'big={"bucket_cap_mb": 100}'])
    assert sets == {"default": {}, "static_graph=True": {"static_graph": True}, "big": {"bucket_cap_mb": 100}}
    assert tool.ddp_sets([]) == {"default": {}}
    assert list(tool.ddp_sets(["all"])) == list(tool.DDP_PRESETS)


@pytest.mark.parametrize("spec,message", [
    ("fastest", r"neither a preset"),
    ('{"bucket_size": 4}', r"unknown option\(s\) 'bucket_size'"),
    ('{"static_graph": "yes"}', r"ddp\.static_graph='yes': expected True or False"),
    ("[1]", r"expected a JSON dict"),
])
def test_bad_ddp_sets_are_refused_before_any_run(tool, spec, message):
    with pytest.raises(SystemExit, match=message):
        tool.ddp_sets([spec])


@pytest.mark.slow
def test_scaling_sweep_of_ddp_options_on_gloo(tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "multi_gpu.py"), "--gpus", "0,1", "--phases", "scaling",
         "--counts", "1,2", "--train-frames", "6", "--scale", "0.08", "--per-gpu-batch", "1",
         "--data-root", str(tmp_path / "data"), "--exp-root", str(tmp_path / "exp"), "--out", str(out),
         "--distill-config", "distill-ptv3-sim-tiny", "--steps", "distillation", "--ddp", "default",
         "--ddp", 'fast={"static_graph": true, "gradient_as_bucket_view": true, "bucket_cap_mb": 1}',
         "--options", "enable_amp=false", "num_worker=0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.with_suffix(".json").read_text())["scaling"]
    assert [(r["step"], r["ddp"], r["gpus"]) for r in rows] == [
        ("distillation", "-", 1), ("distillation", "default", 2), ("distillation", "fast", 2)]
    assert rows[2]["ddp_options"] == {"static_graph": True, "gradient_as_bucket_view": True, "bucket_cap_mb": 1}
    for row in rows:
        assert row["step_seconds"] > 0 and row["samples_per_second"] > 0 and row["peak_memory_mib_per_gpu"] > 0
        assert row["memory"] == "process RSS (VmHWM)"
    assert rows[0]["speed_up"] is None and all(r["speed_up"] > 0 for r in rows[1:])
    table = out.with_suffix(".md").read_text()
    assert "| DDP options | GPUs |" in table and "| distillation | fast | 2 |" in table
    config = (tmp_path / "exp" / "nuscenes" / "scale-distillation-g2-fast" / "config.py").read_text()
    assert "'static_graph': True" in config and "'gradient_as_bucket_view': True" in config

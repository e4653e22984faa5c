"""tools/export_gpu.sh (issue #22 item 7's GPU measurement) run end to end on the CPU with the tiny simulator model
and the torch.export program format: the script writes a model, exports it, keeps the export record and its
latency, and reports a failed export with its exit status instead of stopping."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tiny_configs import ROOT

SCRIPT = os.path.join(ROOT, "tools", "export_gpu.sh")


def run_script(tmp_path, **changes):
    env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"), PYTHON=sys.executable,
               CONFIG="configs/nuscenes/semseg-pt-v3m1-sim-tiny.py", DEVICE="cpu", FORMATS="program",
               CAPACITY="512", RUNS="1")
    env.update(changes)
    return subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)


@pytest.mark.slow
def test_script_exports_and_times_the_model(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "export program: exit 0" in done.stdout
    record = json.loads((tmp_path / "out" / "export_program.json").read_text())
    artifact, = record["artifacts"]
    assert artifact["capacity"] == 512 and artifact["relative_error"] <= 1e-4
    assert set(artifact["latency_ms"]) == {"exported (program)", "captured (graphs)"}


def test_a_failed_export_leaves_its_status_and_log(tmp_path):
    done = run_script(tmp_path, CAPACITY="0")        # export.py refuses a capacity of 0 voxels
    assert "export program: exit" in done.stdout and "export program: exit 0" not in done.stdout
    failure = (tmp_path / "out" / "failure_program.txt").read_text()
    assert failure.startswith("exit status ") and "--- free -m" in failure

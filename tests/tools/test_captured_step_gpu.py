"""tools/captured_step_gpu.sh (issue #24's GPU measurements) run end to end on the CPU at a tiny size, without its
CUDA tests and benchmark: the two scripts/train.sh distillation runs (eager, captured_step; on the CPU the padded
step runs eagerly) train and the table compares them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tiny_configs import ROOT


@pytest.mark.slow
def test_script_runs_both_training_runs_and_tabulates_them(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"), PYTHON=sys.executable,
               CONFIG="distill-ptv3-sim-tiny", FRAMES="2", SCALE="0.05", EPOCHS="2", AMP="", TESTS="0", BENCH="0",
               OPTIONS="distill.grad_kd=None distill.topo_kd=None")     # the paper's per-stage losses: not captured
    done = subprocess.run(["bash", os.path.join(ROOT, "tools", "captured_step_gpu.sh")], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "eager run: exit 0" in done.stdout and "captured run: exit 0" in done.stdout
    out = tmp_path / "out"
    assert "Training steps from CUDA graphs" in (out / "train_captured.log").read_text()
    assert "Training steps from CUDA graphs" not in (out / "train_eager.log").read_text()
    table = (out / "runs.md").read_text().splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table[2:]}
    assert set(rows) == {"eager", "captured"}
    for cells in rows.values():
        assert int(cells[0]) == 4 and float(cells[1]) > 0      # 2 epochs x 2 sweeps, batch 1
        assert float(cells[5]) > 0 and 0 <= float(cells[6]) <= 1   # final loss, val mIoU

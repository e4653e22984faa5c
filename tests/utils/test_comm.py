"""comm.average_gradients: in place over gloo ranks, a no-op for one process."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

from pointcept_distill.utils import comm

_RANKS_AVERAGING = """
import torch
from pointcept_distill.engine.launch import launch
from pointcept_distill.utils import comm

def main():
    rank = comm.get_rank()
    a, b, unused = (torch.nn.Parameter(torch.zeros(shape)) for shape in ((2, 3), (4,), (1,)))
    a.grad, b.grad = torch.full((2, 3), float(rank + 1)), torch.arange(4.0) * (rank + 1)
    comm.average_gradients([a, b, unused])
    assert torch.equal(a.grad, torch.full((2, 3), 1.5)) and torch.equal(b.grad, torch.arange(4.0) * 1.5)
    assert unused.grad is None

if __name__ == "__main__":
    launch(main, num_gpus_per_machine=2)
    print("averaged")
"""


def test_one_process_leaves_gradients_alone():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.arange(3.0)
    comm.average_gradients([p])
    assert torch.equal(p.grad, torch.arange(3.0))


def test_gradients_are_averaged_over_two_gloo_ranks(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_AVERAGING)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "averaged" in done.stdout

"""Console progress of the long tools: stage k/N with the time left, the newest progress line of a log, and
waiting on child processes while printing theirs."""
from __future__ import annotations

import subprocess
import sys

from pointcept_distill.utils.progress import StageProgress, last_progress, wait_with_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_lines_count_stages_and_estimate_the_time_left():
    clock, lines = Clock(), []
    progress = StageProgress("tool", 3, log=lines.append, clock=clock)
    progress.start("train")
    clock.now = 60.0
    progress.start("evaluate")          # one stage of 60 s done, two to go
    clock.now = 80.0                    # second stage: 20 s -> mean 40 s, one to go
    progress.add(1)                     # a stage found only now
    progress.start("release")
    clock.now = 90.0
    progress.start("card")
    assert lines[0] == "[tool] stage 1/3: train (elapsed 0:00:00, time left known after this stage)"
    assert lines[1] == "[tool] stage 2/3: evaluate (elapsed 0:01:00, about 0:02:00 left)"
    assert lines[2] == "[tool] stage 3/4: release (elapsed 0:01:20, about 0:01:20 left)"
    assert lines[3] == "[tool] stage 4/4: card (elapsed 0:01:30, about 0:00:30 left)"
    clock.now = 100.0
    assert progress.done() == "[tool] done: 4 stage(s) in 0:01:40"


def test_more_stages_than_planned_raise_the_total():
    lines = []
    progress = StageProgress("t", 1, log=lines.append, clock=Clock())
    progress.start("a")
    progress.start("b")
    assert lines[1].startswith("[t] stage 2/2: b")


def test_last_progress_of_a_log():
    log = ("[x INFO] Train: [1/2][3/4] Data 0.1 (0.1) Batch 0.5 (0.5) Remain 0:01:05 loss: 1.0 Lr: 0.1\n"
           "[x INFO] Train: [2/2][1/4] Data 0.1 (0.1) Batch 0.5 (0.5) Remain 0:00:40 loss: 1.0 Lr: 0.1\n")
    assert last_progress(log) == "epoch 2/2, iteration 1/4, 0:00:40 left"
    log += "[x INFO] Test: [3/16] 5f6c1e0a Remain 0:00:13\n"
    assert last_progress(log) == "testing scan 3/16, 0:00:13 left"
    log += "[cross_dataset_matrix] stage 2/8: waymo teacher: evaluate on waymo (elapsed 0:00:10, about 0:01:00 left)\n"
    assert last_progress(log).startswith("[cross_dataset_matrix] stage 2/8: waymo teacher: evaluate")
    assert last_progress("nothing yet\n") == ""


def test_wait_with_progress_prints_what_the_children_log(tmp_path):
    """The child writes a training line, then waits until the parent has printed it (no timing involved)."""
    log_file, go = tmp_path / "child.log", tmp_path / "go"
    child = ("import os, time\n"
             f"open({str(log_file)!r}, 'w').write('Train: [1/3][2/5] Batch 0.2 Remain 0:00:42 loss: 1\\n')\n"
             f"for _ in range(1200):  # at most a minute if the parent never prints it\n"
             f"    if os.path.exists({str(go)!r}):\n        break\n    time.sleep(0.05)\n")
    proc = subprocess.Popen([sys.executable, "-c", child])
    printed = []

    def log(line: str) -> None:
        printed.append(line)
        if "epoch 1/3" in line:
            go.touch()
    codes = wait_with_progress({"child": (proc, str(log_file))}, every=0.0, log=log, poll=0.05)
    assert codes == {"child": 0}
    assert "  [child] epoch 1/3, iteration 2/5, 0:00:42 left" in printed

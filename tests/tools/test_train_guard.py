"""scripts/train.sh never replaces an earlier run silently: an experiment that already holds a run is refused
before anything (code snapshot, config, log, checkpoints) is written, unless ``-r true`` or
``-- overwrite=True``. A stub interpreter stands in for Python: these tests check the script, not training."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def earlier_run(tmp_path):
    """``$EXP_ROOT/nuscenes/run`` with an earlier run's log, checkpoints and code snapshot, and a stub Python
    that records its arguments."""
    run = tmp_path / "exp" / "nuscenes" / "run"
    (run / "model").mkdir(parents=True)
    (run / "code").mkdir()
    (run / "train.log").write_text("earlier run's log\n")
    (run / "model" / "model_last.pth").write_bytes(b"last")
    (run / "model" / "model_best.pth").write_bytes(b"best")
    (run / "code" / "git_commit.txt").write_text("earlier commit\n")
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return run, stub


def _train_sh(tmp_path, stub, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, EXP_ROOT=str(tmp_path / "exp"), ARGS_FILE=str(tmp_path / "args"))
    return subprocess.run(["sh", os.path.join(ROOT, "scripts", "train.sh"), "-p", str(stub), "-g", "1", "-d",
                           "nuscenes", "-c", "semseg-pt-v3m1-sim-tiny", "-n", "run", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def _untouched(run) -> bool:
    return ((run / "train.log").read_text() == "earlier run's log\n"
            and (run / "model" / "model_best.pth").read_bytes() == b"best"
            and (run / "code" / "git_commit.txt").read_text() == "earlier commit\n"
            and not (run / "config.py").exists())


def test_existing_experiment_is_refused_before_anything_is_written(tmp_path, earlier_run):
    run, stub = earlier_run
    proc = _train_sh(tmp_path, stub)
    assert proc.returncode != 0
    assert "already holds a run" in proc.stderr and "-r true" in proc.stderr and "overwrite=True" in proc.stderr
    assert not (tmp_path / "args").exists() and _untouched(run)


def test_a_log_alone_counts_as_a_run(tmp_path, earlier_run):
    run, stub = earlier_run
    for name in ("model_last.pth", "model_best.pth"):
        (run / "model" / name).unlink()
    assert _train_sh(tmp_path, stub).returncode != 0 and not (tmp_path / "args").exists()
    (run / "train.log").write_text("")
    assert _train_sh(tmp_path, stub).returncode == 0          # an empty log: nothing to lose


def test_overwrite_or_resume_go_ahead(tmp_path, earlier_run):
    run, stub = earlier_run
    proc = _train_sh(tmp_path, stub, "--", "overwrite=True")
    assert proc.returncode == 0, proc.stderr
    assert "overwrite=True" in (tmp_path / "args").read_text().split("\n")
    (tmp_path / "args").unlink()
    proc = _train_sh(tmp_path, stub, "-r", "true")
    assert proc.returncode == 0, proc.stderr
    assert "resume=true" in (tmp_path / "args").read_text().split("\n")
